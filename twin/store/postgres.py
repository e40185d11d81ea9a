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

from schemas import DeadLetter, Deviation, Envelope, Facility, RackReading
from twin.errors import RejectedEvent, StoreError, StoreUnavailable
from twin.store import rollups

__all__ = ["AppendedEvent", "StateRow", "TwinStore", "UnitOfWork", "READING_COLUMNS"]

log = structlog.get_logger(__name__)
P = ParamSpec("P")
R = TypeVar("R")

READING_COLUMNS: tuple[str, ...] = (
    "power_watts",
    "inlet_temperature_celsius",
    "outlet_temperature_celsius",
    "coolant_supply_temperature_celsius",
    "coolant_return_temperature_celsius",
    "coolant_flow_liters_per_minute",
    "coolant_differential_pressure_kilopascals",
    "leak_detected",
    "hottest_accelerator_temperature_celsius",
    "fan_speed_percent",
    "network_links_up",
    "network_links_down",
)
_COPY_COLUMNS = ("rack_id", "occurred_at", *READING_COLUMNS, "source")
"""A reading's fields in attribute order, then its source: a row is `_reading_fields(r) + (source,)`."""
_VALUE_TYPES = (*("float8",) * 7, "bool", "float8", "float8", "int4", "int4")
_COPY_TYPES = ("text", "timestamptz", *("float4",) * 7, "bool", "float4", "float4", "int2", "int2", "text")
"""The telemetry table's narrow types (0010_telemetry_narrow.sql): binary COPY needs them exact."""
_reading_fields = attrgetter("rack_id", "occurred_at", *READING_COLUMNS)

# Per-connection scratch tables that a batch's rows are COPYed into (binary) before one statement
# moves them: far cheaper than a statement per row, or than arrays bound as parameters (psycopg
# adapts those element by element in Python). Emptied by that statement, and at every commit.
_SCRATCH_TABLES = f"""
    CREATE TEMP TABLE IF NOT EXISTS telemetry_incoming ON COMMIT DELETE ROWS AS
        SELECT {', '.join(_COPY_COLUMNS)} FROM telemetry WITH NO DATA;
    CREATE TEMP TABLE IF NOT EXISTS rack_state_incoming ON COMMIT DELETE ROWS AS
        SELECT rack_id, telemetry_at AS occurred_at, {', '.join(READING_COLUMNS)}, health::text AS health,
               intent_revision, deviation_count FROM rack_state WITH NO DATA;
    CREATE TEMP TABLE IF NOT EXISTS deviations_incoming ON COMMIT DELETE ROWS AS
        SELECT rack_id, check_name, severity, measured, allowed_min, allowed_max, unit, generation, intent_revision,
               detail, since FROM deviations WITH NO DATA;
"""
_STATE_TYPES = ("text", "timestamptz", *_VALUE_TYPES, "text", "int4", "int4")
_DEVIATION_TYPES = ("text", "text", "text", "text", "float8", "float8", "text", "text", "int4", "text", "timestamptz")

_INSERT_READINGS = (
    "WITH incoming AS (DELETE FROM telemetry_incoming RETURNING *)"
    f" INSERT INTO telemetry ({', '.join(_COPY_COLUMNS)}) SELECT {', '.join(_COPY_COLUMNS)} FROM incoming"
    " ON CONFLICT DO NOTHING"
)
_PROJECT_TELEMETRY = (
    "WITH i AS (DELETE FROM rack_state_incoming RETURNING *)"
    " UPDATE rack_state s SET telemetry_at = i.occurred_at, "
    + ", ".join(f"{c} = i.{c}" for c in READING_COLUMNS)
    + ", health = i.health::jsonb, intent_revision = i.intent_revision, deviation_count = i.deviation_count,"
    " updated_at = now() FROM i"
    " WHERE s.rack_id = i.rack_id AND (s.telemetry_at IS NULL OR s.telemetry_at <= i.occurred_at)"
)
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


_TELEMETRY_SIDE = (
    '{"components": [], "rejected": [], "tests": {}, "stage_entered_at": {}, "stage_left_at": {},'
    ' "serial_number": null, "factory": null, "status_reason": null, "rma_number": null}'
)
"""What the telemetry path blanks out of a stored twin: it judges readings against intent by
generation and stage, and holds 100,000 twins; parts, tests and stage history stay with the
lifecycle path."""


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

    async def append_events(self, items: Sequence[tuple[str, Envelope, bytes]]) -> list[AppendedEvent]:
        """Append (stream_id, event, raw_json) items; repeats (known event_id) are skipped.

        Returns only the events that are new, numbered in their stream in arrival order.
        """
        seen: set[str] = set()
        rows = []
        for order, (stream_id, event, raw) in enumerate(items):
            key = str(event.event_id)
            if key in seen:
                continue
            seen.add(key)
            rows.append((key, stream_id, event.type, event.schema_version, event.occurred_at, event.source,
                         event.seq, raw.decode() if isinstance(raw, bytes) else raw, order))
        if not rows:
            return []
        columns = list(zip(*rows))
        cur = await self._conn.execute(
            """
            WITH incoming AS (
                SELECT * FROM unnest(%s::uuid[], %s::text[], %s::text[], %s::int[], %s::timestamptz[],
                                     %s::text[], %s::bigint[], %s::jsonb[], %s::int[])
                    AS t(event_id, stream_id, type, schema_version, occurred_at, source, seq, body, ord)
            ), fresh AS (
                SELECT i.* FROM incoming i WHERE NOT EXISTS (SELECT 1 FROM events e WHERE e.event_id = i.event_id)
            ), numbered AS (
                SELECT f.*, coalesce((SELECT max(e.stream_version) FROM events e WHERE e.stream_id = f.stream_id), 0)
                            + row_number() OVER (PARTITION BY f.stream_id ORDER BY f.ord) AS stream_version
                FROM fresh f
            )
            INSERT INTO events (event_id, stream_id, stream_version, type, schema_version, occurred_at, source, seq, body)
            SELECT event_id, stream_id, stream_version, type, schema_version, occurred_at, source, seq, body
            FROM numbered ORDER BY ord
            ON CONFLICT (event_id) DO NOTHING
            RETURNING event_id::text, stream_id, stream_version
            """,
            [list(c) for c in columns],
        )
        return [AppendedEvent(*row) for row in await cur.fetchall()]

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

    async def copy_readings(self, readings: Sequence[tuple[str, RackReading]]) -> int:
        """Store (source, reading) facts; a reading already stored is a no-op. Returns rows inserted.

        Readings are new facts almost always (a batch delivered again is skipped by its tracked
        offsets), so the batch is COPYed (binary) straight into `telemetry` under a savepoint. Only
        when that meets a reading already stored (a producer repeating itself) is the batch COPYed
        into a scratch table and moved by INSERT ... ON CONFLICT DO NOTHING.
        """
        if not readings:
            return 0
        await self._store.ensure_partitions(self._conn, _utc_days(r.occurred_at for _, r in readings))
        await rollups.mark_pending(self._conn, (r.occurred_at for _, r in readings))
        rows = [_reading_fields(r) + (source,) for source, r in readings]
        async with self._conn.cursor() as cur:
            try:
                async with self._conn.transaction():
                    await _copy_rows(cur, f"telemetry ({', '.join(_COPY_COLUMNS)})", _COPY_TYPES, rows)
                return len(rows)
            except psycopg.errors.UniqueViolation:
                pass
            await _copy_rows(cur, "telemetry_incoming", _COPY_TYPES, rows)
            await cur.execute(_INSERT_READINGS)
            return cur.rowcount

    async def project_telemetry(self, latest: Iterable[tuple[RackReading, dict[str, Any], int | None, int]]) -> None:
        """Set each rack's current readings, health, judged intent revision and deviation count.

        Guarded by telemetry_at: a late reading that lost to a newer one never overwrites it. One
        UPDATE ... FROM a scratch table for the whole batch, not one statement per rack.
        """
        rows = [_reading_fields(r) + (orjson.dumps(health).decode(), revision, count)
                for r, health, revision, count in latest]
        if not rows:
            return
        async with self._conn.cursor() as cur:
            await _copy_rows(cur, "rack_state_incoming", _STATE_TYPES, rows)
            await cur.execute(_PROJECT_TELEMETRY)

    async def project_lifecycle(self, rows: Iterable[StateRow]) -> None:
        """Upsert the lifecycle side of current state; an older stream version never wins."""
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
                INSERT INTO rack_state (rack_id, generation, status, version, stream_version, facility_id, hall_id,
                                        row_id, position, stage_entered_at, lifecycle_at, twin, lifecycle_recorded_at)
                VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, now())
                ON CONFLICT (rack_id) DO UPDATE SET
                    generation = excluded.generation, status = excluded.status, version = excluded.version,
                    stream_version = excluded.stream_version, facility_id = excluded.facility_id,
                    hall_id = excluded.hall_id, row_id = excluded.row_id, position = excluded.position,
                    stage_entered_at = excluded.stage_entered_at, lifecycle_at = excluded.lifecycle_at,
                    twin = excluded.twin, lifecycle_recorded_at = now(), updated_at = now()
                WHERE rack_state.stream_version <= excluded.stream_version
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
        latest reason (an adopted orphan refused again for another reason says so)."""
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
                " payload, recorded_at) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)"
                ' ON CONFLICT (topic, partition, "offset", idx) DO UPDATE SET reason = excluded.reason,'
                " detail = excluded.detail, replayed_at = NULL"
                " WHERE (deadletters.reason, deadletters.detail) IS DISTINCT FROM (excluded.reason, excluded.detail)",
                rows,
            )
        return len(rows)

    async def adopt_orphans(self, *, readings: bool, partitions: Iterable[tuple[str, int]] | None = None
                            ) -> list[tuple[str, int, int, str | None, str]]:
        """Take back input refused as `unknown-rack` whose rack is known now: readings (idx >= 0) or
        whole lifecycle events (idx = -1, only from `partitions`, the ones this worker owns).

        Marks them replayed in this transaction; returns (topic, partition, offset, source, payload).
        """
        owned = list(partitions or ())
        cur = await self._conn.execute(
            """
            UPDATE deadletters d SET replayed_at = now()
            FROM racks r
            WHERE d.rack_id = r.rack_id AND d.reason = 'unknown-rack' AND d.replayed_at IS NULL
              AND (CASE WHEN %(readings)s THEN d.idx >= 0
                        ELSE d.idx = -1 AND (d.topic, d.partition) IN (SELECT * FROM unnest(%(topics)s::text[], %(parts)s::int[])) END)
            RETURNING d.topic, d.partition, d."offset", d.source, d.payload
            """,
            {"readings": readings, "topics": [t for t, _ in owned], "parts": [p for _, p in owned]},
        )
        return list(await cur.fetchall())

    async def replace_deviations(self, rack_id: str, rows: Sequence[tuple[Any, ...]], checks: Iterable[str],
                                 *, family: bool = True) -> None:
        """Set the open deviations of one rack in one family of checks: those named in `checks`
        (`family=True`) or all others (`family=False`). Rows are (check_name, severity, measured,
        min, max, unit, generation, revision, detail, since); a deviation still open keeps its `since`,
        and the rack's `deviation_count` follows."""
        cur = await self._conn.execute(
            "DELETE FROM deviations WHERE rack_id = %s AND (check_name = ANY(%s)) = %s RETURNING check_name, since",
            (rack_id, list(checks), family),
        )
        since = dict(await cur.fetchall())
        rows = [(*row[:-1], since.get(row[0], row[-1])) for row in rows]
        if rows:
            async with self._conn.cursor() as cur:
                await cur.executemany(
                    "INSERT INTO deviations (rack_id, check_name, severity, measured, allowed_min, allowed_max, unit,"
                    " generation, intent_revision, detail, since) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
                    [(rack_id, *row) for row in rows],
                )
        if rows or since:
            await self._conn.execute(
                "UPDATE rack_state SET deviation_count = (SELECT count(*) FROM deviations WHERE rack_id = %s)"
                " WHERE rack_id = %s", (rack_id, rack_id))

    async def replace_deviations_of(self, rows: Mapping[str, Sequence[tuple[Any, ...]]], checks: Iterable[str],
                                    *, family: bool = True) -> None:
        """`replace_deviations` for many racks at once (rack_id -> its rows), in a COPY and two
        statements whatever the number of racks: a deviation still open keeps its `since` (it is
        updated in place), one gone is deleted, and `deviation_count` follows for every rack that
        had or has a deviation in the family."""
        if not rows:
            return
        async with self._conn.cursor() as cur:
            await _copy_rows(cur, "deviations_incoming", _DEVIATION_TYPES,
                             ((rack_id, *row) for rack_id, found in rows.items() for row in found))
            await cur.execute(_REPLACE_DEVIATIONS, (list(rows), list(checks), family))
            touched = [r for (r,) in await cur.fetchall()]
            if touched:
                await cur.execute(
                    "UPDATE rack_state s SET deviation_count ="
                    " (SELECT count(*) FROM deviations d WHERE d.rack_id = s.rack_id) WHERE s.rack_id = ANY(%s)",
                    (touched,))

    async def stream(self, stream_id: str) -> list[tuple[str, bytes]]:
        """A stream's stored events in arrival order, as (type, body JSON), seen from this transaction."""
        cur = await self._conn.execute(
            "SELECT type, body::text FROM events WHERE stream_id = %s ORDER BY stream_version", (stream_id,)
        )
        return [(t, body.encode()) for t, body in await cur.fetchall()]

    async def twins_in_stages(self, stages: Sequence[str]) -> dict[str, dict[str, Any]]:
        """Twin snapshots of racks standing in these stages (for the stall sweep)."""
        cur = await self._conn.execute("SELECT rack_id, twin FROM rack_state WHERE status = ANY(%s)", (list(stages),))
        return dict(await cur.fetchall())

    async def twins_of_generations(self, generations: Sequence[str]) -> dict[str, dict[str, Any]]:
        """Twin snapshots of every rack of these generations (a new intent revision re-judges them)."""
        cur = await self._conn.execute(
            "SELECT rack_id, twin FROM rack_state WHERE generation = ANY(%s) AND twin <> '{}'::jsonb",
            (list(generations),))
        return dict(await cur.fetchall())

    async def gated_racks(self, generations: Sequence[str], partitions: Iterable[tuple[str, int]]) -> dict[str, int]:
        """Racks of `generations` with an open `missing-tests` refusal from `partitions` -> stream version."""
        owned = list(partitions)
        cur = await self._conn.execute(
            """
            SELECT DISTINCT d.rack_id, s.stream_version FROM deadletters d
            JOIN racks r USING (rack_id) JOIN rack_state s USING (rack_id)
            WHERE d.reason IN ('missing-tests', 'illegal-transition') AND d.replayed_at IS NULL
              AND r.generation = ANY(%s)
              AND (d.topic, d.partition) IN (SELECT * FROM unnest(%s::text[], %s::int[]))
            """,
            (list(generations), [t for t, _ in owned], [p for _, p in owned]),
        )
        return dict(await cur.fetchall())

    async def resolve_rejections(self, rack_id: str, refused: Mapping[str, RejectedEvent]) -> None:
        """After a re-fold of a rack: close its refusals whose event is accepted now, and give those
        still refused the reason they are refused for now (it can change as late events arrive)."""
        await self._conn.execute(
            "UPDATE deadletters SET replayed_at = now() WHERE rack_id = %s AND replayed_at IS NULL"
            " AND reason IN ('missing-tests', 'illegal-transition') AND NOT (event_id = ANY(%s))",
            (rack_id, list(refused)),
        )
        if refused:
            async with self._conn.cursor() as cur:
                await cur.executemany(
                    "UPDATE deadletters SET reason = %s, detail = %s WHERE rack_id = %s AND event_id = %s"
                    " AND replayed_at IS NULL AND reason IN ('missing-tests', 'illegal-transition')"
                    " AND (reason, detail) IS DISTINCT FROM (%s, %s)",
                    [(e.reason, e.detail, rack_id, event_id, e.reason, e.detail) for event_id, e in refused.items()],
                )

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

    async def upsert_reference(self, sql: str, rows: Sequence[tuple[Any, ...]]) -> None:
        """Write reference data (facilities, intents, rollout targets) with a statement of the caller's."""
        if rows:
            async with self._conn.cursor() as cur:
                await cur.executemany(sql, rows)

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
            f"SELECT rack_id, {column}, stream_version FROM rack_state WHERE rack_id = ANY(%s)", (list(rack_ids),)
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
    async def lifecycle_changes(self, since_seconds: float) -> dict[str, dict[str, Any]]:
        """Twins whose lifecycle side was written in the last `since_seconds` (by any worker)."""
        cur = await self._conn.execute(
            f"SELECT rack_id, twin || '{_TELEMETRY_SIDE}'::jsonb FROM rack_state"
            " WHERE lifecycle_recorded_at > now() - make_interval(secs => %s)",
            (since_seconds,),
        )
        return dict(await cur.fetchall())

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
