"""The alert engine's memory in PostgreSQL: each alert's state, and the history of its transitions.

Why here and not in the engine's memory: an engine that restarts, or a standby that takes over,
must know which alerts it already paged (no second page) and which transitions it has not yet
delivered (no lost resolve). The history is the senders' outbox: a transition is committed
first, then delivered to each sink, and marked per sink once that sink took it. A sink a
transition is not meant for is marked `-infinity` at once (pending and cancelled transitions
page no one; PagerDuty when it is not configured).

psycopg errors are translated here into `StoreError`.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import datetime
from typing import Any, Literal

import orjson
import psycopg
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from schemas import Alert, AlertChanged
from twin.alerting.rules import AlertState, Phase, Transition
from twin.errors import StoreError, StoreUnavailable

__all__ = ["Sink", "SINKS", "AlertStore", "alert_event"]

Sink = Literal["alertmanager", "pagerduty", "published"]
SINKS: tuple[Sink, ...] = ("alertmanager", "pagerduty", "published")
PAGING_PHASES = frozenset({Phase.FIRING, Phase.RESOLVED, Phase.SUPPRESSED})
"""Transitions a notifier hears about: into firing, and out of firing (resolved, or suppressed by a stage);
an alert that was only ever pending or suppressed pages no one, so its end is no news either."""
_STATE_COLUMNS = ("alert_key, rule, rack_id, phase, labels, annotations, value, band_min, band_max, active_since,"
                  " fired_at, resolved_at, last_true_at")


def alert_event(t: Transition, source: str, seq: int) -> AlertChanged:
    """The event published on fleet.alerts.v1 for a transition."""
    s = t.state
    return AlertChanged(
        event_id=uuid.uuid4(), occurred_at=t.at, source=source, seq=seq, rack_id=s.rack_id, state=s.phase.value,
        previous=None if t.previous is None else t.previous.value,
        alert=Alert(key=s.key, rule=s.rule, labels=dict(s.labels), annotations=dict(s.annotations), value=s.value,
                    active_since=s.active_since, fired_at=s.fired_at, resolved_at=s.resolved_at),
    )


class AlertStore:
    """One connection to the twin database, used by one engine (or one CLI call)."""

    def __init__(self, conn: psycopg.Connection[Any]) -> None:
        self.conn = conn

    @classmethod
    def connect(cls, database_url: str) -> AlertStore:
        try:
            return cls(psycopg.connect(database_url, row_factory=dict_row, connect_timeout=10))
        except psycopg.OperationalError as exc:
            raise StoreUnavailable(f"cannot reach the twin database: {exc}") from exc

    def close(self) -> None:
        self.conn.close()

    @contextmanager
    def _tx(self) -> Iterator[psycopg.Connection[Any]]:
        try:
            with self.conn.transaction():
                yield self.conn
        except psycopg.Error as exc:
            raise StoreError(f"alert store: {exc}") from exc

    def states(self) -> dict[str, AlertState]:
        """Every stored alert, by key."""
        with self._tx() as conn:
            rows = conn.execute(f"SELECT {_STATE_COLUMNS} FROM alert_state").fetchall()
        return {r["alert_key"]: _state(r) for r in rows}

    def record(self, changed: Mapping[str, AlertState], transitions: Sequence[Transition], *, source: str,
               alertmanager: bool = True, pagerduty: bool = False) -> list[int]:
        """Store new states and their transitions in one transaction; the history ids, in order."""
        with self._tx() as conn:
            if changed:
                with conn.cursor() as cur:
                    cur.executemany(
                        f"INSERT INTO alert_state ({_STATE_COLUMNS}) VALUES"
                        " (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)"
                        " ON CONFLICT (alert_key) DO UPDATE SET rule = excluded.rule, rack_id = excluded.rack_id,"
                        " phase = excluded.phase, labels = excluded.labels, annotations = excluded.annotations,"
                        " value = excluded.value, band_min = excluded.band_min, band_max = excluded.band_max,"
                        " active_since = excluded.active_since, fired_at = excluded.fired_at,"
                        " resolved_at = excluded.resolved_at, last_true_at = excluded.last_true_at,"
                        " sent_at = CASE WHEN alert_state.phase = excluded.phase THEN alert_state.sent_at END,"
                        " updated_at = now()",
                        [_state_row(s) for s in changed.values()],
                    )
            if not transitions:
                return []
            seq = conn.execute("SELECT coalesce(max(id), 0) FROM alert_history").fetchone()["coalesce"]  # type: ignore[index]
            ids = []
            for i, t in enumerate(transitions, start=1):
                event = alert_event(t, source, seq + i)
                paging = t.phase is Phase.FIRING or (t.phase in PAGING_PHASES and t.previous is Phase.FIRING)
                skip = "'-infinity'"
                row = conn.execute(
                    "INSERT INTO alert_history (event_id, alert_key, rule, rack_id, phase, previous, at, labels,"
                    " annotations, value, body, alertmanager_at, pagerduty_at)"
                    f" VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, {'NULL' if paging and alertmanager else skip},"
                    f" {'NULL' if paging and pagerduty else skip}) RETURNING id",
                    (event.event_id, t.state.key, t.state.rule, t.state.rack_id, t.phase.value,
                     None if t.previous is None else t.previous.value, t.at, Jsonb(dict(t.state.labels)),
                     Jsonb(dict(t.state.annotations)), t.state.value, Jsonb(orjson.loads(event.model_dump_json()))),
                ).fetchone()
                ids.append(row["id"])  # type: ignore[index]
            return ids

    def undelivered(self, sink: Sink, limit: int = 1000) -> list[dict[str, Any]]:
        """Transitions a sink has not taken yet, oldest first."""
        with self._tx() as conn:
            return conn.execute(
                f"SELECT id, alert_key, rule, rack_id, phase, previous, at, labels, annotations, body"
                f" FROM alert_history WHERE {sink}_at IS NULL ORDER BY id LIMIT %s", (limit,),
            ).fetchall()

    def delivered(self, sink: Sink, ids: Iterable[int], at: datetime) -> None:
        with self._tx() as conn:
            conn.execute(f"UPDATE alert_history SET {sink}_at = %s WHERE id = ANY(%s)", (at, list(ids)))

    def due_for_resend(self, before: datetime) -> list[AlertState]:
        """Firing alerts Alertmanager last heard of before `before` (or never): re-sent so they do not
        expire there (Alertmanager resolves an alert whose `endsAt` passed)."""
        with self._tx() as conn:
            rows = conn.execute(f"SELECT {_STATE_COLUMNS} FROM alert_state WHERE phase = 'firing'"
                                " AND (sent_at IS NULL OR sent_at < %s)", (before,)).fetchall()
        return [_state(r) for r in rows]

    def sent(self, keys: Iterable[str], at: datetime) -> None:
        with self._tx() as conn:
            conn.execute("UPDATE alert_state SET sent_at = %s WHERE alert_key = ANY(%s)", (at, list(keys)))

    def prune(self, before: datetime) -> int:
        """Forget resolved and cancelled alerts last true before `before` (their history stays)."""
        with self._tx() as conn:
            cur = conn.execute("DELETE FROM alert_state WHERE phase IN ('resolved', 'cancelled')"
                               " AND coalesce(last_true_at, resolved_at) < %s", (before,))
            return cur.rowcount

    # -- reads for `twin alerts` ---------------------------------------------------------------

    def live(self, phases: Sequence[str] = ("firing", "pending", "suppressed")) -> list[dict[str, Any]]:
        with self._tx() as conn:
            return conn.execute(
                "SELECT alert_key, rule, rack_id, phase, labels, annotations, value, active_since, fired_at"
                " FROM alert_state WHERE phase = ANY(%s)"
                " ORDER BY (labels->>'severity') = 'critical' DESC, coalesce(fired_at, active_since)",
                (list(phases),),
            ).fetchall()

    def history(self, rack_id: str | None = None, limit: int = 50) -> list[dict[str, Any]]:
        with self._tx() as conn:
            where, args = ("WHERE rack_id = %s", [rack_id]) if rack_id else ("", [])
            return conn.execute(
                f"SELECT id, alert_key, rule, rack_id, phase, previous, at, labels, annotations, value,"
                f" alertmanager_at = '-infinity' AS not_a_page,"  # -infinity: not for that sink (see the module)
                f" nullif(alertmanager_at, '-infinity') AS alertmanager_at,"
                f" nullif(pagerduty_at, '-infinity') AS pagerduty_at, published_at FROM alert_history {where}"
                f" ORDER BY id DESC LIMIT %s", (*args, limit),
            ).fetchall()


def _state_row(s: AlertState) -> tuple[Any, ...]:
    return (s.key, s.rule, s.rack_id, s.phase.value, Jsonb(dict(s.labels)), Jsonb(dict(s.annotations)), s.value,
            s.band[0], s.band[1], s.active_since, s.fired_at, s.resolved_at, s.last_true_at)


def _state(r: Mapping[str, Any]) -> AlertState:
    return AlertState(r["alert_key"], r["rule"], Phase(r["phase"]), r["labels"], r["annotations"], r["rack_id"],
                      active_since=r["active_since"], fired_at=r["fired_at"], resolved_at=r["resolved_at"],
                      last_true_at=r["last_true_at"], value=r["value"], band=(r["band_min"], r["band_max"]))
