"""Rebuild every rack twin from the event store, and check it against the live state.

A twin is the fold of its events (`RackTwin.replay`), so the event store alone must give back
exactly what the workers projected into `rack_state`. `rebuild` streams the store once, in
stream order, folds rack by rack, and either compares (`write=False`: a mismatch is a bug, and
is reported rack by rack) or writes the rebuilt lifecycle side back (after a fold-logic fix).
"""

from __future__ import annotations

import multiprocessing
import os
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from typing import Any

import orjson
import psycopg
from psycopg.types.json import Jsonb, set_json_loads

from schemas import LIFECYCLE_TYPES
from twin.errors import StoreError
from twin.domain.intent import IntentCatalog
from twin.domain.rack import RackTwin
from twin.store.stored import stored_event

__all__ = ["RebuildResult", "default_workers", "fast_json", "rack_streams", "rebuild"]


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


_RACK_STREAMS = "stream_id NOT LIKE '%%:%%' AND stream_id <> 'rollout'"
"""Rack streams: the others are reference streams (`facility:…`, `intent:…`, `rollout`)."""


def fast_json(conn: psycopg.Connection[Any]) -> None:
    """Load json/jsonb on `conn` with orjson (the same values as `json.loads`, several times faster)."""
    set_json_loads(orjson.loads, conn)


def rack_streams(conn: psycopg.Connection[Any], batch: int = 200, *, first: str | None = None,
                 after: str | None = None) -> Iterator[tuple[str, list[Any]]]:
    """(rack_id, its events as contract models) for every rack stream, via a server-side cursor.

    One row a rack, its bodies aggregated in stream order into one JSON array (`json_agg`) that
    orjson parses in one call: row by row, psycopg's per-row cost was about 15 µs an event, five
    times the fold's. Stored events were validated on the way in, so they are constructed, not
    validated again (`twin.store.stored`). `first` and `after` bound the rack ids taken
    (`first <= id`, `id < after`); `batch` is racks per fetch.
    """
    where, params = _RACK_STREAMS, []
    if first is not None:
        where += " AND stream_id >= %s"
        params.append(first)
    if after is not None:
        where += " AND stream_id < %s"
        params.append(after)
    with conn.cursor(name="rebuild") as cur:
        cur.itersize = batch
        cur.execute(f"SELECT stream_id, json_agg(body ORDER BY stream_version)::text FROM events WHERE {where}"
                    " GROUP BY stream_id ORDER BY stream_id", params)
        for stream_id, bodies in cur:
            yield stream_id, [stored_event(body["type"], body) for body in orjson.loads(bodies)]


def _rebuild_range(database_url: str, write: bool, first: str | None, after: str | None,
                   progress: Callable[[int, int], None] | None = None, total: int = 0) -> RebuildResult:
    """Fold the racks with ids in [first, after) and compare with (or write over) their live state."""
    from twin.store.views import connect, intent_catalog

    result = RebuildResult()
    with psycopg.connect(database_url) as conn, connect(database_url) as live:
        fast_json(live)
        catalog: IntentCatalog = intent_catalog(live)  # type: ignore[arg-type]
        where, params = "TRUE", []
        if first is not None:
            where += " AND rack_id >= %s"
            params.append(first)
        if after is not None:
            where += " AND rack_id < %s"
            params.append(after)
        stored = {r["rack_id"]: r["twin"] for r in live.execute(
            f"SELECT rack_id, twin FROM rack_state WHERE {where}", params)}
        for rack_id, events in rack_streams(conn, first=first, after=after):
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
                progress(result.racks, total)
    return result


def _ranges(conn: psycopg.Connection[Any], parts: int) -> tuple[int, list[tuple[str | None, str | None]]]:
    """How many rack streams there are, and `parts` contiguous id ranges holding about as many events each."""
    rows = conn.execute(f"SELECT stream_id, count(*) FROM events WHERE {_RACK_STREAMS} GROUP BY stream_id"
                        " ORDER BY stream_id").fetchall()
    if parts <= 1 or len(rows) < parts:
        return len(rows), [(None, None)]
    total = sum(n for _, n in rows)
    bounds: list[str | None] = [None]
    seen = 0
    for stream_id, n in rows:
        if seen >= total * len(bounds) / parts and len(bounds) < parts:
            bounds.append(stream_id)
        seen += n
    bounds.append(None)
    return len(rows), list(zip(bounds[:-1], bounds[1:]))


def default_workers() -> int:
    """Processes a rebuild folds in: one per core (the fold is CPU-bound Python)."""
    return max(1, os.cpu_count() or 1)


def rebuild(database_url: str, *, write: bool = False, progress: Callable[[int, int], None] | None = None,
            workers: int = 1) -> RebuildResult:
    """Fold every rack from its events; compare with (or, with `write`, replace) the live lifecycle state.

    With `workers` > 1 the racks are split into that many contiguous id ranges, each folded in its
    own process (rack streams are independent: a rack's twin is the fold of its own events only);
    `progress` then advances as each range finishes.
    """
    started = time.perf_counter()
    try:
        with psycopg.connect(database_url, autocommit=True) as conn:
            total, ranges = _ranges(conn, workers)
        if len(ranges) == 1:
            result = _rebuild_range(database_url, write, None, None, progress, total)
        else:
            result = RebuildResult()
            spawn = multiprocessing.get_context("spawn")  # no forked copy of the caller's connections
            with ProcessPoolExecutor(len(ranges), mp_context=spawn) as pool:
                futures = [pool.submit(_rebuild_range, database_url, write, a, b) for a, b in ranges]
                for future in as_completed(futures):
                    part = future.result()
                    result.racks += part.racks
                    result.events += part.events
                    result.mismatched.extend(part.mismatched)
                    result.missing.extend(part.missing)
                    if progress is not None:
                        progress(result.racks, total)
            result.mismatched.sort()
            result.missing.sort()
    except psycopg.Error as exc:
        raise StoreError(f"rebuild failed: {exc}") from exc
    result.seconds = time.perf_counter() - started
    return result
