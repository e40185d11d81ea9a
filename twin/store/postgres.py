"""The durable truth in PostgreSQL/TimescaleDB: event store, telemetry facts, current state.

A worker writes one batch as one `UnitOfWork` (one transaction): the events it appended, the
readings it copied, the current state it projected, the dead letters it recorded and the
consumer offsets it has now fully applied (eventsourcing's `Tracking`). Either all of a batch
is visible or none of it; a batch delivered again finds its offsets tracked and its
event_ids and reading keys present, and changes nothing.

psycopg errors are translated here, once, into `StoreError`/`StoreUnavailable`.
"""

from __future__ import annotations

import functools
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import date, datetime, timezone
from operator import attrgetter
from typing import Any, ParamSpec, TypeVar

import orjson
import psycopg
import structlog
from psycopg.types.json import Jsonb

from schemas import READING_FIELDS, DeadLetter, Deviation, Envelope, Facility, GenerationIntent, RackReading, RolloutTarget
from twin.domain.rack import TELEMETRY_SIDE_BLANKS, Rejection
from twin.errors import FOLD_REASONS, StoreError, StoreUnavailable, UnknownLocation, UnknownRack
from twin.store import rollups

__all__ = ["Appended", "AppendedEvent", "Copied", "Orphan", "Origin", "READING_COLUMNS", "StateRow", "StoredEvent", "StreamEvent",
           "TwinStore", "UnitOfWork"]

log = structlog.get_logger(__name__)
P = ParamSpec("P")
R = TypeVar("R")

READING_COLUMNS: tuple[str, ...] = READING_FIELDS
"""A reading's quantities as columns of `telemetry` and `rack_telemetry` (named as the fields are)."""
_COPY_COLUMNS = ("rack_id", "occurred_at", *READING_COLUMNS, "source")
"""A reading's fields in attribute order, then its source: a row is `_reading_fields(r) + (source,)`."""
_PG_TYPES = {float: "float8", bool: "bool", int: "int4"}
_VALUE_TYPES = tuple(_PG_TYPES[RackReading.model_fields[c].annotation] for c in READING_COLUMNS)  # type: ignore[index]
_NARROW = {"float8": "float4", "int4": "int2", "bool": "bool"}
_COPY_TYPES = ("text", "timestamptz", *(_NARROW[t] for t in _VALUE_TYPES), "text")
"""The telemetry table's narrow types (0010_telemetry_narrow.sql): binary COPY needs them exact."""
_reading_fields = attrgetter("rack_id", "occurred_at", *READING_COLUMNS)

# Per-connection scratch tables that a batch's rows are COPYed into (binary) before one statement
# moves them: far cheaper than a statement per row, or than arrays bound as parameters (psycopg
# adapts those element by element in Python). Emptied by that statement, and at every commit.
_SCRATCH_TABLES = f"""
    CREATE TEMP TABLE IF NOT EXISTS telemetry_incoming ON COMMIT DELETE ROWS AS
        SELECT {', '.join(_COPY_COLUMNS)}, 0 AS ord FROM telemetry WITH NO DATA;
    CREATE TEMP TABLE IF NOT EXISTS rack_telemetry_incoming ON COMMIT DELETE ROWS AS
        SELECT rack_id, telemetry_at AS occurred_at, {', '.join(READING_COLUMNS)}, health::text AS health,
               intent_revision FROM rack_telemetry WITH NO DATA;
    CREATE TEMP TABLE IF NOT EXISTS deviations_incoming ON COMMIT DELETE ROWS AS
        SELECT rack_id, check_name, severity, measured, allowed_min, allowed_max, unit, generation, intent_revision,
               detail, since FROM deviations WITH NO DATA;
"""
_STATE_TYPES = ("text", "timestamptz", *_VALUE_TYPES, "text", "int4")
_DEVIATION_TYPES = ("text", "text", "text", "text", "float8", "float8", "text", "text", "int4", "text", "timestamptz")

_INSERT_READINGS = (
    "WITH incoming AS (DELETE FROM telemetry_incoming RETURNING *)"
    f" INSERT INTO telemetry ({', '.join(_COPY_COLUMNS)}) SELECT {', '.join(_COPY_COLUMNS)} FROM incoming"
    " ON CONFLICT DO NOTHING"
)
_PROJECT_TELEMETRY = (
    "WITH i AS (DELETE FROM rack_telemetry_incoming RETURNING *)"
    f" INSERT INTO rack_telemetry AS s (rack_id, telemetry_at, {', '.join(READING_COLUMNS)}, health, intent_revision)"
    f" SELECT rack_id, occurred_at, {', '.join(READING_COLUMNS)}, health::jsonb, intent_revision FROM i"
    " ON CONFLICT (rack_id) DO UPDATE SET telemetry_at = excluded.telemetry_at, "
    + ", ".join(f"{c} = excluded.{c}" for c in READING_COLUMNS)
    + ", health = excluded.health, intent_revision = excluded.intent_revision, updated_at = now()"
    " WHERE s.telemetry_at <= excluded.telemetry_at"
)
_SAME_VALUES = " IS NOT DISTINCT FROM ".join(
    f"({', '.join(side + '.' + c for c in READING_COLUMNS)})" for side in ("i", "o"))
_CONFLICTING_READINGS = f"""
    WITH firsts AS (
        SELECT DISTINCT ON (rack_id, occurred_at, source) * FROM telemetry_incoming
        ORDER BY rack_id, occurred_at, source, ord
    )
    SELECT i.ord FROM telemetry_incoming i JOIN firsts o USING (rack_id, occurred_at, source)
    WHERE i.ord <> o.ord AND NOT ({_SAME_VALUES})
    UNION
    SELECT i.ord FROM telemetry_incoming i JOIN telemetry o USING (rack_id, occurred_at, source)
    WHERE NOT ({_SAME_VALUES})
"""
"""The readings of a batch (by position) whose identity is taken, in the batch or in the store, by
other values: conflicting duplicates."""
_REPLACE_DEVIATIONS = """
    WITH incoming AS (
        DELETE FROM deviations_incoming RETURNING *
    ), gone AS (
        DELETE FROM deviations d
        WHERE d.rack_id = ANY(%s::text[]) AND (d.check_name = ANY(%s::text[])) = %s
          AND NOT EXISTS (SELECT 1 FROM incoming i WHERE i.rack_id = d.rack_id AND i.check_name = d.check_name)
        RETURNING d.rack_id
    ), kept AS (
        INSERT INTO deviations (rack_id, check_name, severity, measured, allowed_min, allowed_max, unit, generation,
                                intent_revision, detail, since)
        SELECT rack_id, check_name, severity, measured, allowed_min, allowed_max, unit, generation, intent_revision,
               detail, since FROM incoming
        ON CONFLICT (rack_id, check_name) DO UPDATE SET
            severity = excluded.severity, measured = excluded.measured, allowed_min = excluded.allowed_min,
            allowed_max = excluded.allowed_max, unit = excluded.unit, generation = excluded.generation,
            intent_revision = excluded.intent_revision, detail = excluded.detail
        RETURNING rack_id
    )
    SELECT rack_id FROM gone UNION SELECT rack_id FROM kept
"""


_OWNED_RACK = (
    "EXISTS (SELECT 1 FROM events e WHERE e.stream_id = l.rack_id"
    " AND (e.topic, e.partition) IN (SELECT * FROM unnest(%s::text[], %s::int[])))"
)
"""A rack whose lifecycle events come from the given (topic, partition)s: one of the worker's own."""


def _deviation_rows(devs: Iterable[Deviation], at: datetime) -> list[tuple[Any, ...]]:
    """Rows of the deviations table (without rack_id); `at` is the `since` of a deviation new to it."""
    return [
        (d.check, d.severity, None if d.measured is None else str(d.measured), d.allowed_min, d.allowed_max, d.unit,
         d.generation, d.intent_revision, d.detail, at)
        for d in devs
    ]


def _utc_days(times: Iterable[datetime]) -> set[date]:
    """The UTC days (telemetry partitions) of some instants. A poll cycle's readings share their
    time, so the few distinct instants are converted, not every reading."""
    return {t.astimezone(timezone.utc).date() for t in set(times)}


async def _copy_rows(cur: psycopg.AsyncCursor[Any], table: str, types: Sequence[str],
                     rows: Iterable[Sequence[Any]]) -> None:
    async with cur.copy(f"COPY {table} FROM STDIN (FORMAT BINARY)") as copy:
        copy.set_types(list(types))
        for row in rows:
            await copy.write_row(row)


@dataclass(frozen=True, slots=True)
class AppendedEvent:
    """An event newly stored (not a repeat), with its place in its stream."""

    event_id: str
    stream_id: str
    stream_version: int


Origin = tuple[str, int, int]
"""Where a stored event came from: (topic, partition, offset) of its message."""


@dataclass(frozen=True, slots=True)
class StoredEvent:
    """An event to append to its stream, as received, and the message it came in (None: no message)."""

    stream_id: str
    event: Envelope
    raw: bytes | str
    origin: Origin | None = None


@dataclass(frozen=True, slots=True)
class Appended:
    """What `append_events` did: the events new to the store, and those refused as conflicting duplicates."""

    new: list[AppendedEvent]
    conflicting: list[StoredEvent]


@dataclass(frozen=True, slots=True)
class Orphan:
    """Input refused for what was not known yet (a rack, a location), taken back now that it is."""

    topic: str
    partition: int
    offset: int
    idx: int
    event_id: str | None
    source: str | None
    payload: str


@dataclass(frozen=True, slots=True)
class StreamEvent:
    """One stored event of a stream: its type, its JSON body and where it came from."""

    type: str
    body: bytes
    origin: Origin


@dataclass(frozen=True, slots=True)
class Copied:
    """What `copy_readings` did: readings stored, and the positions of those refused as conflicting duplicates."""

    stored: int
    conflicting: list[int]


@dataclass(frozen=True, slots=True)
class StateRow:
    """The lifecycle side of a rack's current state, as the lifecycle path projects it."""

    rack_id: str
    generation: str | None
    status: str
    version: int
    stream_version: int
    facility_id: str | None
    hall_id: str | None
    row_id: str | None
    position: int | None
    stage_entered_at: datetime | None
    lifecycle_at: datetime | None
    twin: dict[str, Any]


_TELEMETRY_SIDE = orjson.dumps(TELEMETRY_SIDE_BLANKS).decode()


def _translate(exc: psycopg.Error) -> StoreError:
    if isinstance(exc, psycopg.OperationalError):
        return StoreUnavailable(f"twin database unavailable: {exc}")
    return StoreError(f"twin database error: {exc}")


def _translated(read: Callable[P, Awaitable[R]]) -> Callable[P, Awaitable[R]]:
    """For a read outside a unit of work: its psycopg errors (a broken connection among them) as ours."""

    @functools.wraps(read)
    async def translated(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return await read(*args, **kwargs)
        except psycopg.Error as exc:
            raise _translate(exc) from exc

    return translated


class UnitOfWork:
    """The writes of one batch, inside one transaction (commit on clean exit, rollback on error)."""

    def __init__(self, conn: psycopg.AsyncConnection[Any], store: "TwinStore") -> None:
        self._conn = conn
        self._store = store

    async def append_events(self, items: Sequence[StoredEvent]) -> Appended:
        """Append events to their streams; a repeat (an event_id already stored, same body) is skipped.

        Returns the events that are new, numbered in their stream in arrival order, and the
        event_ids that arrived with a body other than the one stored (or than an earlier copy in
        `items`): conflicting duplicates, not stored, for the caller to refuse.
        """
        first: dict[str, StoredEvent] = {}
        conflicting: list[StoredEvent] = []
        for item in items:
            key = str(item.event.event_id)
            held = first.get(key)
            if held is None:
                first[key] = item
            elif held.event != item.event:
                conflicting.append(item)
        if not first:
            return Appended([], conflicting)
        rows = [(key, i.stream_id, i.event.type, i.event.schema_version, i.event.occurred_at, i.event.source,
                 i.event.seq, i.raw.decode() if isinstance(i.raw, bytes) else i.raw, order,
                 *(i.origin or (None, None, None)))  # no message (a test, a tool): no origin
                for order, (key, i) in enumerate(first.items())]
        cur = await self._conn.execute(
            """
            WITH incoming AS (
                SELECT * FROM unnest(%s::uuid[], %s::text[], %s::text[], %s::int[], %s::timestamptz[],
                                     %s::text[], %s::bigint[], %s::jsonb[], %s::int[], %s::text[], %s::int[], %s::bigint[])
                    AS t(event_id, stream_id, type, schema_version, occurred_at, source, seq, body, ord,
                         topic, partition, "offset")
            ), stored AS (
                SELECT i.event_id, e.body FROM incoming i JOIN events e USING (event_id)
            ), fresh AS (
                SELECT i.* FROM incoming i WHERE NOT EXISTS (SELECT 1 FROM stored s WHERE s.event_id = i.event_id)
            ), numbered AS (
                SELECT f.*, coalesce((SELECT max(e.stream_version) FROM events e WHERE e.stream_id = f.stream_id), 0)
                            + row_number() OVER (PARTITION BY f.stream_id ORDER BY f.ord) AS stream_version
                FROM fresh f
            ), inserted AS (
                INSERT INTO events (event_id, stream_id, stream_version, type, schema_version, occurred_at, source, seq,
                                    body, topic, partition, "offset")
                SELECT event_id, stream_id, stream_version, type, schema_version, occurred_at, source, seq, body,
                       topic, partition, "offset"
                FROM numbered ORDER BY ord
                ON CONFLICT (event_id) DO NOTHING
                RETURNING event_id::text, stream_id, stream_version
            )
            SELECT event_id, stream_id, stream_version, NULL FROM inserted
            UNION ALL SELECT event_id::text, NULL, NULL, body::text FROM stored
            """,
            [list(c) for c in zip(*rows)],
        )
        appended = []
        for event_id, stream_id, version, stored in await cur.fetchall():
            if stream_id is not None:
                appended.append(AppendedEvent(event_id, stream_id, version))
            else:  # a repeat: the same fact, unless its body says otherwise (compared as models, not bytes)
                incoming = first[event_id]
                if type(incoming.event).model_validate_json(stored) != incoming.event:
                    conflicting.append(incoming)
        return Appended(appended, conflicting)

    async def register_racks(self, racks: Iterable[tuple[str, str, str, datetime]]) -> None:
        """Make racks known to the fleet: (rack_id, generation, serial_number, manufactured_at)."""
        rows = list(racks)
        if rows:
            async with self._conn.cursor() as cur:
                await cur.executemany(
                    "INSERT INTO racks (rack_id, generation, serial_number, manufactured_at) VALUES (%s, %s, %s, %s)"
                    " ON CONFLICT (rack_id) DO NOTHING",
                    rows,
                )
            self._store.remember_racks({r[0]: r[1] for r in rows})

    async def copy_readings(self, readings: Sequence[tuple[str, RackReading]]) -> Copied:
        """Store (source, reading) facts; a reading already stored with the same values is a no-op.

        Readings are new facts almost always (a batch delivered again is skipped by its tracked
        offsets), so the batch is COPYed (binary) straight into `telemetry` under a savepoint. Only
        when that meets a reading already stored (a producer repeating itself) is the batch COPYed
        into a scratch table and moved by INSERT ... ON CONFLICT DO NOTHING; then the positions
        (in `readings`) of readings whose identity was taken by other values, earlier in the batch
        or in the store, come back as conflicting: not stored, for the caller to refuse.
        """
        if not readings:
            return Copied(0, [])
        await self._store.ensure_partitions(self._conn, _utc_days(r.occurred_at for _, r in readings))
        await rollups.mark_pending(self._conn, (r.occurred_at for _, r in readings))
        rows = [_reading_fields(r) + (source,) for source, r in readings]
        async with self._conn.cursor() as cur:
            try:
                async with self._conn.transaction():
                    await _copy_rows(cur, f"telemetry ({', '.join(_COPY_COLUMNS)})", _COPY_TYPES, rows)
                return Copied(len(rows), [])
            except psycopg.errors.UniqueViolation:
                pass
            await _copy_rows(cur, "telemetry_incoming", (*_COPY_TYPES, "int4"),
                             (row + (i,) for i, row in enumerate(rows)))
            await cur.execute(_CONFLICTING_READINGS)
            conflicting = sorted(i for (i,) in await cur.fetchall())
            await cur.execute(_INSERT_READINGS)
            return Copied(cur.rowcount, conflicting)

    async def project_telemetry(self, latest: Iterable[tuple[RackReading, dict[str, Any], int | None]]) -> None:
        """Set each rack's current readings, health and judged intent revision (`rack_telemetry`, the
        telemetry path's own table).

        Guarded by telemetry_at: a late reading that lost to a newer one never overwrites it. One
        upsert from a scratch table for the whole batch, not one statement per rack.
        """
        rows = [_reading_fields(r) + (orjson.dumps(health).decode(), revision) for r, health, revision in latest]
        if not rows:
            return
        async with self._conn.cursor() as cur:
            await _copy_rows(cur, "rack_telemetry_incoming", _STATE_TYPES, rows)
            await cur.execute(_PROJECT_TELEMETRY)

    async def project_lifecycle(self, rows: Iterable[StateRow]) -> None:
        """Upsert the lifecycle side of current state (`rack_lifecycle`, the lifecycle path's own
        table); an older stream version never wins."""
        params = [
            (s.rack_id, s.generation, s.status, s.version, s.stream_version, s.facility_id, s.hall_id, s.row_id,
             s.position, s.stage_entered_at, s.lifecycle_at, Jsonb(s.twin))
            for s in rows
        ]
        if not params:
            return
        async with self._conn.cursor() as cur:
            await cur.executemany(
                """
                INSERT INTO rack_lifecycle (rack_id, generation, status, version, stream_version, facility_id, hall_id,
                                            row_id, position, stage_entered_at, lifecycle_at, twin,
                                            lifecycle_recorded_at)
                VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, now())
                ON CONFLICT (rack_id) DO UPDATE SET
                    generation = excluded.generation, status = excluded.status, version = excluded.version,
                    stream_version = excluded.stream_version, facility_id = excluded.facility_id,
                    hall_id = excluded.hall_id, row_id = excluded.row_id, position = excluded.position,
                    stage_entered_at = excluded.stage_entered_at, lifecycle_at = excluded.lifecycle_at,
                    twin = excluded.twin, lifecycle_recorded_at = now(), lifecycle_xid = pg_current_xact_id(),
                    updated_at = now()
                WHERE rack_lifecycle.stream_version <= excluded.stream_version
                """,
                params,
            )

    async def save_snapshots(self, snapshots: Iterable[tuple[str, int, datetime, dict[str, Any]]]) -> None:
        rows = [(rack_id, version, at, Jsonb(body)) for rack_id, version, at, body in snapshots]
        if rows:
            async with self._conn.cursor() as cur:
                await cur.executemany(
                    "INSERT INTO rack_snapshots (rack_id, stream_version, occurred_at, body) VALUES (%s, %s, %s, %s)"
                    " ON CONFLICT DO NOTHING",
                    rows,
                )

    async def record_deadletters(self, letters: Iterable[DeadLetter]) -> int:
        """Record bad input with its reason. The same message's letter again is one letter, with the
        latest reason (an adopted orphan refused again for another reason says so). A bad reading of
        a report already lettered from another copy of the report (same event_id and index) is not
        lettered again: a duplicated report's bad reading is one letter."""
        rows = [
            (d.reason, d.detail, d.topic, d.partition, d.offset, -1 if d.index is None else d.index, d.event_id,
             d.rack_id, d.source, d.payload, d.recorded_at)
            for d in letters
        ]
        if not rows:
            return 0
        async with self._conn.cursor() as cur:
            await cur.executemany(
                'INSERT INTO deadletters (reason, detail, topic, partition, "offset", idx, event_id, rack_id, source,'
                " payload, recorded_at)"
                " SELECT v.* FROM (VALUES (%s, %s, %s, %s::int, %s::bigint, %s::int, %s, %s, %s, %s, %s::timestamptz))"
                ' AS v(reason, detail, topic, partition, "offset", idx, event_id, rack_id, source, payload, recorded_at)'
                " WHERE v.idx < 0 OR v.event_id IS NULL OR NOT EXISTS (SELECT 1 FROM deadletters o"
                ' WHERE o.event_id = v.event_id AND o.idx = v.idx AND (o.topic, o.partition, o."offset")'
                ' <> (v.topic, v.partition, v."offset"))'
                ' ON CONFLICT (topic, partition, "offset", idx) DO UPDATE SET reason = excluded.reason,'
                " detail = excluded.detail, replayed_at = NULL"
                " WHERE (deadletters.reason, deadletters.detail) IS DISTINCT FROM (excluded.reason, excluded.detail)",
                rows,
            )
        return len(rows)

    async def settle_refusals(self, rack_id: str, refused: Iterable[tuple[Rejection, Origin, str]]
                              ) -> list[DeadLetter]:
        """After a fold of a rack's whole history: its open fold-refusal letters become exactly the
        fold's refusals. Each refused event (with where it came from and its payload) is lettered
        once, under its own message; a letter whose event the fold now accepts is closed. Returns
        the letters that are new or whose reason changed (to publish and count)."""
        items = list(refused)
        cur = await self._conn.execute(
            "UPDATE deadletters SET replayed_at = now() WHERE rack_id = %s AND replayed_at IS NULL"
            " AND reason = ANY(%s) AND NOT (event_id = ANY(%s))",
            (rack_id, list(FOLD_REASONS), [r.event_id for r, _, _ in items]))
        if not items:
            return []
        now = datetime.now(timezone.utc)
        letters = [DeadLetter(reason=r.reason, detail=r.detail[:2_000], topic=origin[0], partition=origin[1],
                              offset=origin[2], index=None, event_id=r.event_id, rack_id=rack_id, source=None,
                              payload=payload[:64 * 1024], recorded_at=now)
                   for r, origin, payload in items]
        changed: list[DeadLetter] = []
        async with self._conn.cursor() as cur:
            for d in letters:
                await cur.execute(
                    'INSERT INTO deadletters (reason, detail, topic, partition, "offset", idx, event_id, rack_id,'
                    " payload, recorded_at) VALUES (%s, %s, %s, %s, %s, -1, %s, %s, %s, %s)"
                    ' ON CONFLICT (topic, partition, "offset", idx) DO UPDATE SET reason = excluded.reason,'
                    " detail = excluded.detail, replayed_at = NULL"
                    " WHERE (deadletters.reason, deadletters.detail, deadletters.replayed_at IS NULL)"
                    " IS DISTINCT FROM (excluded.reason, excluded.detail, true)"
                    " RETURNING id",
                    (d.reason, d.detail, d.topic, d.partition, d.offset, d.event_id, d.rack_id, d.payload,
                     d.recorded_at))
                row = await cur.fetchone()
                if row is not None:
                    changed.append(d)
        return changed

    async def adopt_orphans(self, *, readings: bool, partitions: Iterable[tuple[str, int]] | None = None
                            ) -> list[Orphan]:
        """Take back input refused as `unknown-rack` whose rack is known now: readings (idx >= 0) or
        whole lifecycle events (idx = -1, only from `partitions`, the ones this worker owns); and,
        for lifecycle events, installs refused as `unknown-location` whose row is registered now.

        Marks them replayed in this transaction.
        """
        owned = list(partitions or ())
        cur = await self._conn.execute(
            """
            UPDATE deadletters d SET replayed_at = now()
            FROM racks r
            WHERE d.rack_id = r.rack_id AND d.reason = %(unknown_rack)s AND d.replayed_at IS NULL
              AND (CASE WHEN %(readings)s THEN d.idx >= 0
                        ELSE d.idx = -1 AND (d.topic, d.partition) IN (SELECT * FROM unnest(%(topics)s::text[], %(parts)s::int[])) END)
            RETURNING d.topic, d.partition, d."offset", d.idx, d.event_id, d.source, d.payload
            """,
            {"readings": readings, "topics": [t for t, _ in owned], "parts": [p for _, p in owned],
             "unknown_rack": UnknownRack.reason},
        )
        adopted = [Orphan(*row) for row in await cur.fetchall()]
        if not readings:
            cur = await self._conn.execute(
                """
                UPDATE deadletters d SET replayed_at = now()
                FROM rows w
                WHERE d.reason = %(unknown_location)s AND d.replayed_at IS NULL AND d.idx = -1
                  AND (d.topic, d.partition) IN (SELECT * FROM unnest(%(topics)s::text[], %(parts)s::int[]))
                  AND w.facility_id = d.payload::jsonb ->> 'facility_id' AND w.hall_id = d.payload::jsonb ->> 'hall_id'
                  AND w.row_id = d.payload::jsonb ->> 'row_id'
                RETURNING d.topic, d.partition, d."offset", d.idx, d.event_id, d.source, d.payload
                """,
                {"topics": [t for t, _ in owned], "parts": [p for _, p in owned],
                 "unknown_location": UnknownLocation.reason},
            )
            adopted += [Orphan(*row) for row in await cur.fetchall()]
        return adopted

    async def known_locations(self, places: Iterable[tuple[str, str, str]]) -> set[tuple[str, str, str]]:
        """Which of these (facility, hall, row) the fleet registry holds."""
        wanted = sorted(set(places))
        if not wanted:
            return set()
        cur = await self._conn.execute(
            "SELECT facility_id, hall_id, row_id FROM rows WHERE (facility_id, hall_id, row_id) IN"
            " (SELECT * FROM unnest(%s::text[], %s::text[], %s::text[]))",
            ([f for f, _, _ in wanted], [h for _, h, _ in wanted], [r for _, _, r in wanted]))
        return {tuple(row) for row in await cur.fetchall()}  # type: ignore[misc]

    async def replace_deviations(self, rack_id: str, deviations: Iterable[Deviation], at: datetime,
                                 checks: Iterable[str], *, family: bool = True) -> None:
        """Set the open deviations of one rack in one family of checks: those named in `checks`
        (`family=True`) or all others (`family=False`). A deviation new to the rack opens `at`; one
        still open keeps its `since`. (A rack's count of open deviations is counted from these rows
        by the `rack_state` view.)"""
        cur = await self._conn.execute(
            "DELETE FROM deviations WHERE rack_id = %s AND (check_name = ANY(%s)) = %s RETURNING check_name, since",
            (rack_id, list(checks), family),
        )
        since = dict(await cur.fetchall())
        rows = [(*row[:-1], since.get(row[0], row[-1])) for row in _deviation_rows(deviations, at)]
        if rows:
            async with self._conn.cursor() as cur:
                await cur.executemany(
                    "INSERT INTO deviations (rack_id, check_name, severity, measured, allowed_min, allowed_max, unit,"
                    " generation, intent_revision, detail, since) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
                    [(rack_id, *row) for row in rows],
                )

    async def replace_deviations_of(self, found: Mapping[str, Iterable[Deviation]], at: datetime,
                                    checks: Iterable[str], *, family: bool = True) -> None:
        """`replace_deviations` for many racks at once (rack_id -> its deviations), in a COPY and one
        statement whatever the number of racks: a deviation still open keeps its `since` (it is
        updated in place), one gone is deleted."""
        if not found:
            return
        async with self._conn.cursor() as cur:
            await _copy_rows(cur, "deviations_incoming", _DEVIATION_TYPES,
                             ((rack_id, *row) for rack_id, devs in found.items() for row in _deviation_rows(devs, at)))
            await cur.execute(_REPLACE_DEVIATIONS, (list(found), list(checks), family))

    async def stream(self, stream_id: str) -> list[StreamEvent]:
        """A stream's stored events in arrival order, with where each came from, seen from this transaction.

        An event stored before its origin was kept (migration 0005) answers ('event-store', 0,
        -its position): unique, so its refusal is still lettered once."""
        cur = await self._conn.execute(
            "SELECT type, body::text, coalesce(topic, 'event-store'), coalesce(partition, 0),"
            ' coalesce("offset", -position) FROM events WHERE stream_id = %s ORDER BY stream_version', (stream_id,)
        )
        return [StreamEvent(t, body.encode(), (topic, partition, offset)) for t, body, topic, partition, offset
                in await cur.fetchall()]

    async def twins_in_stages(self, stages: Sequence[str], partitions: Iterable[tuple[str, int]]
                              ) -> dict[str, dict[str, Any]]:
        """Twin snapshots of racks standing in these stages whose events come from `partitions` (the
        stall sweep of the worker that owns them)."""
        owned = list(partitions)
        cur = await self._conn.execute(
            f"SELECT rack_id, twin FROM rack_lifecycle l WHERE status = ANY(%s) AND {_OWNED_RACK}",
            (list(stages), [t for t, _ in owned], [p for _, p in owned]))
        return dict(await cur.fetchall())

    async def twins_of_generations(self, generations: Sequence[str], partitions: Iterable[tuple[str, int]]
                                   ) -> dict[str, dict[str, Any]]:
        """Twin snapshots of the racks of these generations whose events come from `partitions` (a new
        intent revision re-judges them, by the worker that owns them)."""
        owned = list(partitions)
        if not generations:
            return {}
        cur = await self._conn.execute(
            "SELECT rack_id, twin FROM rack_lifecycle l WHERE generation = ANY(%s) AND twin <> '{}'::jsonb"
            f" AND {_OWNED_RACK}", (list(generations), [t for t, _ in owned], [p for _, p in owned]))
        return dict(await cur.fetchall())

    async def racks_entering_service_since(self, since: Mapping[str, datetime],
                                           partitions: Iterable[tuple[str, int]]) -> list[str]:
        """Racks (generation -> instant in `since`) whose entry into service, from `partitions`, is at or
        after that instant: a revision in force from then on judges their service gate again."""
        owned = list(partitions)
        if not since or not owned:
            return []
        cur = await self._conn.execute(
            """
            SELECT DISTINCT e.stream_id FROM events e JOIN racks r ON r.rack_id = e.stream_id
            JOIN unnest(%s::text[], %s::timestamptz[]) AS s(generation, since) ON s.generation = r.generation
            WHERE e.type = 'rack.entered_service' AND e.occurred_at >= s.since
              AND (e.topic, e.partition) IN (SELECT * FROM unnest(%s::text[], %s::int[]))
            ORDER BY 1
            """,
            (list(since), list(since.values()), [t for t, _ in owned], [p for _, p in owned]))
        return [r for (r,) in await cur.fetchall()]

    async def gated_racks(self, generations: Sequence[str], partitions: Iterable[tuple[str, int]]) -> list[str]:
        """Racks of `generations` with an open fold refusal (illegal-transition, missing-tests) from `partitions`."""
        owned = list(partitions)
        cur = await self._conn.execute(
            """
            SELECT DISTINCT d.rack_id FROM deadletters d JOIN racks r USING (rack_id)
            WHERE d.reason = ANY(%s) AND d.replayed_at IS NULL AND r.generation = ANY(%s)
              AND (d.topic, d.partition) IN (SELECT * FROM unnest(%s::text[], %s::int[]))
            ORDER BY 1
            """,
            (list(FOLD_REASONS), list(generations), [t for t, _ in owned], [p for _, p in owned]),
        )
        return [r for (r,) in await cur.fetchall()]

    async def register_facility(self, facility: Facility, at: datetime) -> None:
        """Insert or update a facility with its halls and rows (the latest registration wins)."""
        await self._conn.execute(
            "INSERT INTO facilities (facility_id, name, ownership, operator, region, registered_at)"
            " VALUES (%s, %s, %s, %s, %s, %s) ON CONFLICT (facility_id) DO UPDATE SET name = excluded.name,"
            " ownership = excluded.ownership, operator = excluded.operator, region = excluded.region,"
            " registered_at = excluded.registered_at WHERE facilities.registered_at <= excluded.registered_at",
            (facility.facility_id, facility.name, facility.ownership, facility.operator, facility.region, at),
        )
        async with self._conn.cursor() as cur:
            await cur.executemany(
                "INSERT INTO halls (facility_id, hall_id, power_capacity_watts, cooling_capacity_watts)"
                " VALUES (%s, %s, %s, %s) ON CONFLICT (facility_id, hall_id) DO UPDATE SET"
                " power_capacity_watts = excluded.power_capacity_watts,"
                " cooling_capacity_watts = excluded.cooling_capacity_watts",
                [(facility.facility_id, h.hall_id, h.power_capacity_watts, h.cooling_capacity_watts)
                 for h in facility.halls],
            )
            await cur.executemany(
                "INSERT INTO rows (facility_id, hall_id, row_id, positions, power_capacity_watts,"
                " cooling_capacity_watts) VALUES (%s, %s, %s, %s, %s, %s)"
                " ON CONFLICT (facility_id, hall_id, row_id) DO UPDATE SET positions = excluded.positions,"
                " power_capacity_watts = excluded.power_capacity_watts,"
                " cooling_capacity_watts = excluded.cooling_capacity_watts",
                [(facility.facility_id, h.hall_id, r.row_id, r.positions, r.power_capacity_watts,
                  r.cooling_capacity_watts) for h in facility.halls for r in h.rows],
            )

    async def publish_intent(self, intent: GenerationIntent, at: datetime) -> None:
        """Store a design-intent revision (the first publication of a revision wins: it is immutable)."""
        await self._conn.execute(
            "INSERT INTO generation_intents (generation, revision, published_at, body) VALUES (%s, %s, %s, %s)"
            " ON CONFLICT DO NOTHING",
            (intent.generation, intent.revision, at, Jsonb(intent.model_dump(mode="json"))))

    async def publish_rollout(self, revision: int, targets: Iterable[RolloutTarget]) -> None:
        """Store a rollout plan revision's targets."""
        rows = [(revision, t.facility_id, t.generation, t.quarter, t.racks_in_service) for t in targets]
        if rows:
            async with self._conn.cursor() as cur:
                await cur.executemany(
                    "INSERT INTO rollout_targets (revision, facility_id, generation, quarter, racks_in_service)"
                    " VALUES (%s, %s, %s, %s, %s) ON CONFLICT DO NOTHING", rows)

    async def track(self, group_id: str, offsets: dict[tuple[str, int], int]) -> None:
        """Record, in this transaction, the highest offset per (topic, partition) now fully applied."""
        if offsets:
            async with self._conn.cursor() as cur:
                await cur.executemany(
                    'INSERT INTO consumer_offsets (group_id, topic, partition, "offset") VALUES (%s, %s, %s, %s)'
                    ' ON CONFLICT (group_id, topic, partition) DO UPDATE SET "offset" = GREATEST(consumer_offsets."offset",'
                    ' excluded."offset"), updated_at = now()',
                    [(group_id, t, p, o) for (t, p), o in offsets.items()],
                )


class TwinStore:
    """One async connection to the twin database, owned by one worker task."""

    def __init__(self, conn: psycopg.AsyncConnection[Any]) -> None:
        self._conn = conn
        self._partitions: set[date] = set()
        self._racks: dict[str, str] = {}

    @classmethod
    async def connect(cls, database_url: str) -> "TwinStore":
        try:
            conn = await psycopg.AsyncConnection.connect(database_url, autocommit=True, connect_timeout=10)
            await conn.execute(_SCRATCH_TABLES)
        except psycopg.Error as exc:
            raise _translate(exc) from exc
        return cls(conn)

    async def close(self) -> None:
        await self._conn.close()

    @property
    def closed(self) -> bool:
        return self._conn.closed

    @asynccontextmanager
    async def unit_of_work(self) -> AsyncIterator[UnitOfWork]:
        """One batch's writes: all visible at commit, or none."""
        partitions, racks = set(self._partitions), dict(self._racks)
        try:
            async with self._conn.transaction():
                yield UnitOfWork(self._conn, self)
        except BaseException as exc:
            # What the transaction created (a partition, a rack) is gone with it: forget it too.
            self._partitions, self._racks = partitions, racks
            if isinstance(exc, psycopg.Error):
                raise _translate(exc) from exc
            raise

    async def ensure_partitions(self, conn: psycopg.AsyncConnection[Any], days: set[date]) -> None:
        missing = days - self._partitions
        for day in sorted(missing):
            await conn.execute("SELECT ensure_telemetry_partition(%s)", (day,))
        self._partitions |= missing

    def remember_racks(self, racks: dict[str, str]) -> None:
        self._racks.update(racks)

    async def generations_of(self, rack_ids: Iterable[str]) -> dict[str, str]:
        """rack_id -> generation for the racks known to the fleet (cached; the generation never changes)."""
        wanted = set(rack_ids)
        missing = [r for r in wanted if r not in self._racks]
        if missing:
            try:
                cur = await self._conn.execute(
                    "SELECT rack_id, generation FROM racks WHERE rack_id = ANY(%s)", (missing,)
                )
                self._racks.update(dict(await cur.fetchall()))
            except psycopg.Error as exc:
                raise _translate(exc) from exc
        return {r: self._racks[r] for r in wanted if r in self._racks}

    @_translated
    async def tracked_offsets(self, group_id: str) -> dict[tuple[str, int], int]:
        cur = await self._conn.execute(
            'SELECT topic, partition, "offset" FROM consumer_offsets WHERE group_id = %s', (group_id,)
        )
        return {(t, p): o for t, p, o in await cur.fetchall()}

    @_translated
    async def states(self, rack_ids: Iterable[str], *, parts: bool = True) -> dict[str, dict[str, Any]]:
        """The stored twin snapshots (lifecycle side) of these racks.

        Without `parts`, the bill of materials and remembered refusals are left out (sent as
        empty): the telemetry path judges readings, not parts, and a worker holding 100,000
        twins cannot afford a parts list per twin.
        """
        column = "twin" if parts else f"twin || '{_TELEMETRY_SIDE}'::jsonb"
        cur = await self._conn.execute(
            f"SELECT rack_id, {column}, stream_version FROM rack_lifecycle WHERE rack_id = ANY(%s)", (list(rack_ids),)
        )
        return {rack_id: {"twin": twin, "stream_version": v} for rack_id, twin, v in await cur.fetchall()}

    async def ping(self) -> None:
        try:
            await self._conn.execute("SELECT 1")
        except psycopg.Error as exc:
            raise _translate(exc) from exc

    @_translated
    async def open_deviations(self, rack_ids: Iterable[str]) -> dict[str, list[Deviation]]:
        cur = await self._conn.execute(
            "SELECT rack_id, check_name, severity, measured, allowed_min, allowed_max, unit, generation,"
            " intent_revision, detail FROM deviations WHERE rack_id = ANY(%s)",
            (list(rack_ids),),
        )
        found: dict[str, list[Deviation]] = {}
        for rack_id, check, severity, measured, lo, hi, unit, generation, revision, detail in await cur.fetchall():
            found.setdefault(rack_id, []).append(Deviation(
                rack_id=rack_id, check=check, severity=severity, measured=_number(measured), allowed_min=lo,
                allowed_max=hi, unit=unit, generation=generation, intent_revision=revision, detail=detail,
            ))
        return found

    @_translated
    async def lifecycle_changes(self, after: int | None) -> tuple[dict[str, dict[str, Any]], int]:
        """Twins (lifecycle side) written by transactions at or after `after` (by any worker), and the
        watermark to pass next time: the oldest transaction still running now. None: only the watermark.

        Why a transaction-id watermark: a lifecycle transaction that commits late still carries its
        own id, at or after the watermark a reader kept while it ran, so no change is ever skipped
        (rows are seen again at most once more)."""
        cur = await self._conn.execute("SELECT pg_snapshot_xmin(pg_current_snapshot())::text")
        row = await cur.fetchone()
        watermark = int(row[0]) if row else 0
        if after is None:
            return {}, watermark
        cur = await self._conn.execute(
            f"SELECT rack_id, twin || '{_TELEMETRY_SIDE}'::jsonb FROM rack_lifecycle"
            " WHERE lifecycle_xid >= %s::text::xid8", (after,))
        return dict(await cur.fetchall()), watermark

    @_translated
    async def open_deadletters(self) -> list[DeadLetter]:
        """Every open dead letter, oldest first."""
        cur = await self._conn.execute(
            'SELECT reason, detail, topic, partition, "offset", idx, event_id, rack_id, source, payload, recorded_at'
            " FROM deadletters WHERE replayed_at IS NULL ORDER BY id")
        return [DeadLetter(reason=r, detail=d, topic=t, partition=p, offset=o, index=None if i < 0 else i,
                           event_id=e, rack_id=rack, source=src, payload=pl, recorded_at=at)
                for r, d, t, p, o, i, e, rack, src, pl, at in await cur.fetchall()]

    @_translated
    async def stored_reading(self, rack_id: str, at: datetime, source: str) -> dict[str, Any] | None:
        """The quantities stored for one reading identity, if any."""
        cur = await self._conn.execute(
            f"SELECT {', '.join(READING_COLUMNS)} FROM telemetry WHERE rack_id = %s AND occurred_at = %s"
            " AND source = %s", (rack_id, at, source))
        row = await cur.fetchone()
        return None if row is None else dict(zip(READING_COLUMNS, row))

    @_translated
    async def intents(self) -> list[tuple[dict[str, Any], datetime]]:
        """Every stored intent revision with when it was published."""
        cur = await self._conn.execute(
            "SELECT body, published_at FROM generation_intents ORDER BY generation, revision")
        return [(body, at) for body, at in await cur.fetchall()]

    @_translated
    async def intent_revision_marker(self) -> tuple[int, int]:
        cur = await self._conn.execute("SELECT count(*), coalesce(max(revision), 0) FROM generation_intents")
        row = await cur.fetchone()
        return (int(row[0]), int(row[1])) if row else (0, 0)


def _number(text: str | None) -> float | str | None:
    """Deviations store `measured` as text (a number or a word such as a firmware version)."""
    if text is None:
        return None
    try:
        return float(text)
    except ValueError:
        return text


def forget_tracked_offsets(database_url: str) -> None:
    """Void every tracked consumer offset: for a broker that starts empty (the embedded,
    memory-only Tansu), offsets from its previous life would make the worker skip new messages.
    Idempotency does not depend on them (event_id and reading keys are unique)."""
    try:
        with psycopg.connect(database_url, autocommit=True, connect_timeout=10) as conn:
            conn.execute("DELETE FROM consumer_offsets")
    except psycopg.Error as exc:
        raise _translate(exc) from exc
