"""Bytes per rack-day, measured on the live database, and projected to a fleet.

A table's bytes are its heap, TOAST and indexes over all its partitions
(`pg_total_relation_size`), divided by its rows: what a row really costs on disk, indexes
included. (Under TimescaleDB, untested here, a hypertable's chunks are not partitions: its
size would need `hypertable_size()`.) A rack-day is 86,400 raw readings (1 Hz), 1,440 minutes and 24 hours.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import psycopg

__all__ = ["Projection", "TableBytes", "TIMESCALE_COMPRESSION", "measure", "project"]

ROWS_PER_RACK_DAY = {"telemetry": 86_400, "rack_minutes": 1_440, "rack_hours": 24}

TIMESCALE_COMPRESSION = (
    "TimescaleDB native compression (segmentby rack_id) is published at 90-95 % smaller for time-series "
    "like this (Timescale documentation, 'About compression'; their blog reports 10-20x). That ratio is "
    "quoted, not measured: TimescaleDB cannot be installed here."
)


@dataclass(frozen=True, slots=True)
class TableBytes:
    table: str
    rows: int
    bytes: int

    @property
    def bytes_per_row(self) -> float:
        return self.bytes / self.rows if self.rows else 0.0

    @property
    def bytes_per_rack_day(self) -> float | None:
        per_day = ROWS_PER_RACK_DAY.get(self.table)
        return self.bytes_per_row * per_day if per_day else None


def measure(conn: psycopg.Connection[Any], tables: tuple[str, ...] = ("telemetry", "rack_minutes", "rack_hours",
                                                                        "facility_minutes"),
            exact: bool = True) -> dict[str, TableBytes]:
    """Each table's rows and bytes over all its partitions. `exact=False` reads the planner's row
    estimates (instant on billions of rows, right after ANALYZE or autovacuum)."""
    out: dict[str, TableBytes] = {}
    for table in tables:
        if conn.execute("SELECT to_regclass(%s)", (table,)).fetchone()[0] is None:  # type: ignore[index]
            continue
        # a partitioned table's partitions, else the table itself (a partition tree of one)
        size = conn.execute(
            "SELECT coalesce(sum(pg_total_relation_size(relid)), pg_total_relation_size(%s::regclass))::bigint"
            " FROM pg_partition_tree(%s::regclass)", (table, table)).fetchone()[0]  # type: ignore[index]
        if exact:
            rows = conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0]  # type: ignore[index]
        else:
            rows = conn.execute(
                "SELECT coalesce(sum(greatest(c.reltuples, 0)),"
                " (SELECT greatest(reltuples, 0) FROM pg_class WHERE oid = %s::regclass))::bigint"
                " FROM pg_partition_tree(%s::regclass) t JOIN pg_class c ON c.oid = t.relid",
                (table, table)).fetchone()[0]  # type: ignore[index]
        out[table] = TableBytes(table, int(rows), int(size))
    return out


@dataclass(frozen=True, slots=True)
class Projection:
    racks: int
    raw_days: int
    minute_days: int
    hour_days: int
    raw_bytes: float
    minute_bytes: float
    hour_bytes: float

    @property
    def total_bytes(self) -> float:
        return self.raw_bytes + self.minute_bytes + self.hour_bytes

    @property
    def raw_bytes_per_day(self) -> float:
        return self.raw_bytes / self.raw_days if self.raw_days else 0.0


def project(per_rack_day: dict[str, float], racks: int = 75_000, raw_days: int = 14, minute_days: int = 400,
            hour_days: int = 5 * 365) -> Projection:
    """Steady-state footprint of a fleet keeping raw rows, minutes and hours for so many days."""
    return Projection(racks, raw_days, minute_days, hour_days,
                      per_rack_day.get("telemetry", 0.0) * racks * raw_days,
                      per_rack_day.get("rack_minutes", 0.0) * racks * minute_days,
                      per_rack_day.get("rack_hours", 0.0) * racks * hour_days)
