"""Telemetry rollups: which minutes need rolling up, the job that rolls them up, and retention.

The worker only records, in its batch transaction, the minutes its readings fall in (a few
rows per batch: a poll cycle's readings share their instant). The job recomputes each such
minute from the raw rows, then the hours and facility minutes it touches, and advances the
watermark below which the query surface reads stored rollups (sql/0011_rollups.sql). A
recomputation from raw is what makes late and repeated readings harmless: the raw table
holds each reading once, whenever and however often it arrived.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from typing import Any

import psycopg

__all__ = ["RetentionPolicy", "RollupRun", "apply_retention", "mark_pending", "minutes_of", "roll_up"]

_LOCK_KEY = 0x726F6C6C  # 'roll': one job at a time per database
_EPOCH = datetime(2000, 1, 1, tzinfo=timezone.utc)


def minutes_of(times: Iterable[datetime]) -> list[datetime]:
    """The distinct UTC minutes of some instants (a batch has few distinct instants)."""
    return sorted({t - timedelta(seconds=t.second, microseconds=t.microsecond) for t in set(times)})


async def mark_pending(conn: psycopg.AsyncConnection[Any], times: Iterable[datetime]) -> None:
    """Record, in the caller's transaction, that the minutes of these readings need rolling up."""
    minutes = minutes_of(times)
    if minutes:
        await conn.execute("INSERT INTO rollup_pending (minute) SELECT unnest(%s::timestamptz[])", (minutes,))


@dataclass(frozen=True, slots=True)
class RollupRun:
    """What one run of the job did."""

    minutes: int
    hours: int
    rows: int
    materialized_until: datetime | None
    seconds: float
    skipped: bool = False  # another job held the lock


def _ranges(points: list[datetime], step: timedelta) -> list[tuple[datetime, datetime]]:
    """Contiguous [start, end) ranges covering sorted bucket starts, so a run of minutes is one statement."""
    ranges: list[tuple[datetime, datetime]] = []
    for p in points:
        if ranges and ranges[-1][1] == p:
            ranges[-1] = (ranges[-1][0], p + step)
        else:
            ranges.append((p, p + step))
    return ranges


def _floor(t: datetime, step: timedelta) -> datetime:
    return t - (t - _EPOCH) % step


def roll_up(conn: psycopg.Connection[Any], *, settle: timedelta = timedelta(minutes=1),
            now: datetime | None = None) -> RollupRun:
    """Roll up every pending minute that closed at least `settle` ago, in one transaction.

    `settle` leaves the open minute to the surface's live path, so a minute is normally rolled
    up once; a reading later than that marks its minute again and it is recomputed. Hours are
    stored once closed (and again when a late minute touches them).
    """
    started = time.perf_counter()
    cutoff = _floor((now or datetime.now(timezone.utc)) - settle, timedelta(minutes=1))
    with conn.transaction():
        locked = conn.execute("SELECT pg_try_advisory_xact_lock(%s)", (_LOCK_KEY,)).fetchone()
        if not (locked and locked[0]):
            return RollupRun(0, 0, 0, None, time.perf_counter() - started, skipped=True)
        pending = conn.execute("SELECT id, minute FROM rollup_pending WHERE minute < %s", (cutoff,)).fetchall()
        minutes = sorted({m for _, m in pending})
        timescale = conn.execute("SELECT EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'timescaledb')"
                                 ).fetchone()[0]  # type: ignore[index]
        rows = 0
        minute_ranges = _ranges(minutes, timedelta(minutes=1))
        # Only closed hours are stored: the open one is read from its minutes (rack_hours_live), so
        # it is not recomputed from all its minutes at every run, once per minute, for every rack.
        hour = timedelta(hours=1)
        hours = sorted({h for h in (_floor(m, hour) for m in minutes) if h + hour <= cutoff})
        if minutes:
            conn.execute("SELECT ensure_rollup_partitions(%s, %s)", (minutes[0], minutes[-1]))
        # ahead of the data: tomorrow's raw partition and the rollup partitions it will need
        ahead = cutoff + settle + timedelta(days=1)
        conn.execute("SELECT ensure_telemetry_partition(%s::date), ensure_rollup_partitions(%s, %s)",
                     (ahead.date(), cutoff, ahead))
        for start, end in minute_ranges:
            if not timescale:  # continuous aggregates refresh themselves
                conn.execute("DELETE FROM rack_minutes WHERE bucket >= %s AND bucket < %s", (start, end))
                rows += conn.execute("INSERT INTO rack_minutes SELECT * FROM rack_minutes_from_raw(%s, %s)",
                                     (start, end)).rowcount
        conn.execute("UPDATE rollup_watermark SET materialized_until = greatest(materialized_until, %s)", (cutoff,))
        if not timescale:
            for start, end in _ranges(hours, timedelta(hours=1)):
                conn.execute("DELETE FROM rack_hours WHERE bucket >= %s AND bucket < %s", (start, end))
                rows += conn.execute("INSERT INTO rack_hours SELECT * FROM rack_hours_from_minutes(%s, %s)",
                                     (start, end)).rowcount
        for start, end in minute_ranges:
            conn.execute("DELETE FROM facility_minutes WHERE bucket >= %s AND bucket < %s", (start, end))
            rows += conn.execute("INSERT INTO facility_minutes SELECT * FROM facility_minutes_from_racks(%s, %s)",
                                 (start, end)).rowcount
        for start, end in _ranges(hours, timedelta(hours=1)):
            conn.execute("DELETE FROM facility_hours WHERE bucket >= %s AND bucket < %s", (start, end))
            rows += conn.execute("INSERT INTO facility_hours SELECT * FROM facility_hours_from_minutes(%s, %s)",
                                 (start, end)).rowcount
        if pending:
            conn.execute("DELETE FROM rollup_pending WHERE id = ANY(%s)", ([i for i, _ in pending],))
        until = conn.execute("SELECT materialized_until FROM rollup_watermark").fetchone()[0]  # type: ignore[index]
    return RollupRun(len(minutes), len(hours), rows, until, time.perf_counter() - started)


@dataclass(frozen=True, slots=True)
class RetentionPolicy:
    """How long each resolution is kept, in days (None: for ever)."""

    raw_days: int | None = 14
    minute_days: int | None = 400
    hour_days: int | None = None


def apply_retention(conn: psycopg.Connection[Any], policy: RetentionPolicy,
                    today: date | None = None) -> dict[str, int]:
    """Drop whole partitions older than the policy keeps; returns how many went, per table."""
    today = today or datetime.now(timezone.utc).date()
    dropped: dict[str, int] = {}
    with conn.transaction():
        if policy.raw_days is not None:
            dropped["telemetry"] = conn.execute(
                "SELECT drop_telemetry_partitions_before(%s)", (today - timedelta(days=policy.raw_days),)
            ).fetchone()[0]  # type: ignore[index]
        for table, days in (("rack_minutes", policy.minute_days), ("facility_minutes", policy.minute_days),
                            ("rack_hours", policy.hour_days), ("facility_hours", policy.hour_days)):
            if days is not None:
                cutoff = datetime.combine(today - timedelta(days=days), datetime.min.time(), timezone.utc)
                dropped[table] = conn.execute("SELECT drop_rollup_partitions_before(%s, %s)",
                                              (table, cutoff)).fetchone()[0]  # type: ignore[index]
    return dropped
