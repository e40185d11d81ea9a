"""Rebuild every rack twin from the event store, and check it against the live state.

A twin is the fold of its events (`RackTwin.replay`), so the event store alone must give back
exactly what the workers projected into `rack_state`. `rebuild` streams the store once, in
stream order, folds rack by rack, and either compares (`write=False`: a mismatch is a bug, and
is reported rack by rack) or writes the rebuilt lifecycle side back (after a fold-logic fix).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

from schemas import LIFECYCLE_TYPES
from twin.errors import StoreError
from twin.domain.intent import IntentCatalog
from twin.domain.rack import RackTwin

__all__ = ["RebuildResult", "rack_streams", "rebuild"]


@dataclass(slots=True)
class RebuildResult:
    racks: int = 0
    events: int = 0
    seconds: float = 0.0
    mismatched: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    """Racks with events but no live state row."""

    @property
    def equal(self) -> bool:
        return not self.mismatched and not self.missing


def rack_streams(conn: psycopg.Connection[Any], batch: int = 5_000) -> Iterator[tuple[str, list[Any]]]:
    """(rack_id, its events as contract models) for every rack stream, via a server-side cursor."""
    with conn.cursor(name="rebuild") as cur:
        cur.itersize = batch
        cur.execute("SELECT stream_id, type, body FROM events WHERE stream_id NOT LIKE '%%:%%' AND stream_id <> 'rollout'"
                    " ORDER BY stream_id, stream_version")
        current: str | None = None
        events: list[Any] = []
        for stream_id, kind, body in cur:
            if stream_id != current:
                if current is not None:
                    yield current, events
                current, events = stream_id, []
            # Stored events were validated on the way in: construct without validating again.
            events.append(LIFECYCLE_TYPES[kind].model_validate(body))
        if current is not None:
            yield current, events


def rebuild(database_url: str, *, write: bool = False, progress: Callable[[int, int], None] | None = None
            ) -> RebuildResult:
    """Fold every rack from its events; compare with (or, with `write`, replace) the live lifecycle state."""
    import time

    from twin.store.views import connect, intent_catalog

    started = time.perf_counter()
    result = RebuildResult()
    try:
        with psycopg.connect(database_url) as conn, connect(database_url) as live:
            catalog: IntentCatalog = intent_catalog(live)  # type: ignore[arg-type]
            total = live.execute("SELECT count(DISTINCT stream_id) AS n FROM events WHERE stream_id NOT LIKE '%:%'"
                                 " AND stream_id <> 'rollout'").fetchone()
            stored = {r["rack_id"]: r["twin"] for r in live.execute("SELECT rack_id, twin FROM rack_state")}
            for rack_id, events in rack_streams(conn):
                twin = RackTwin.replay(rack_id, events, catalog)
                rebuilt = twin.snapshot()
                result.racks += 1
                result.events += len(events)
                if rack_id not in stored:
                    result.missing.append(rack_id)
                elif stored[rack_id] != rebuilt:
                    result.mismatched.append(rack_id)
                if write and stored.get(rack_id) != rebuilt:
                    live.execute(
                        "UPDATE rack_lifecycle SET twin = %s, status = %s, version = %s, generation = %s, facility_id = %s,"
                        " hall_id = %s, row_id = %s, position = %s, lifecycle_xid = pg_current_xact_id(),"
                        " updated_at = now() WHERE rack_id = %s",
                        (Jsonb(rebuilt), twin.status.value, twin.version, twin.generation, twin.facility_id,
                         twin.hall_id, twin.row_id, twin.position, rack_id))
                if progress is not None:
                    progress(result.racks, int(total["n"]) if total else 0)
    except psycopg.Error as exc:
        raise StoreError(f"rebuild failed: {exc}") from exc
    result.seconds = time.perf_counter() - started
    return result
