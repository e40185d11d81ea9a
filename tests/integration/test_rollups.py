"""Rollups equal the aggregates of the raw rows, however late and however often readings arrive.

Readings go in through the worker's write path (`UnitOfWork.copy_readings`, which marks their
minutes pending); the rollup job runs between deliveries, so later deliveries land in minutes
and hours already rolled up. The expected aggregates are computed here, in Python, from the
distinct readings: min, max, mean and last (latest occurred_at, ties to the greatest source).
"""

from __future__ import annotations

import asyncio
import math
from collections import defaultdict
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import psycopg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from schemas import RackReading
from twin.store import READING_COLUMNS, TwinStore
from twin.store.rollups import RetentionPolicy, apply_retention, roll_up

pytestmark = pytest.mark.integration

T0 = datetime(2026, 3, 1, 22, 50, tzinfo=timezone.utc)  # the range crosses an hour and a day
RACKS = ("r-1", "r-2", "r-3")
NUMERIC = [c for c in READING_COLUMNS if c != "leak_detected"]


def _reading(rack: str, second: int, value: float, leak: bool) -> RackReading:
    return RackReading.model_construct(
        rack_id=rack, occurred_at=T0 + timedelta(seconds=second), power_watts=100_000 + value * 1000,
        inlet_temperature_celsius=20 + value, outlet_temperature_celsius=30 + value,
        coolant_supply_temperature_celsius=25 + value / 2, coolant_return_temperature_celsius=35 + value / 2,
        coolant_flow_liters_per_minute=100 + value, coolant_differential_pressure_kilopascals=50 + value,
        leak_detected=leak, hottest_accelerator_temperature_celsius=60 + value, fan_speed_percent=value,
        network_links_up=int(value) + 10, network_links_down=int(value) % 3)


readings = st.lists(
    st.tuples(st.sampled_from(RACKS), st.integers(0, 3 * 3600), st.floats(0, 99, allow_nan=False),
              st.booleans(), st.sampled_from(("bmc", "cdu"))),
    min_size=1, max_size=60, unique_by=lambda r: (r[0], r[1], r[4]),
)


def _reset(conn: psycopg.Connection[Any]) -> None:
    conn.execute("TRUNCATE telemetry, rack_minutes, rack_hours, facility_minutes, rollup_pending")
    conn.execute("UPDATE rollup_watermark SET materialized_until = '-infinity'")


async def _deliver(url: str, batch: list[tuple[str, RackReading]]) -> None:
    store = await TwinStore.connect(url)
    try:
        async with store.unit_of_work() as uow:
            await uow.copy_readings(batch)
    finally:
        await store.close()


def _expected(facts: dict[tuple[str, datetime, str], RackReading], step: timedelta) -> dict[tuple[str, datetime], dict]:
    groups: dict[tuple[str, datetime], list[tuple[datetime, str, RackReading]]] = defaultdict(list)
    epoch = datetime(2000, 1, 1, tzinfo=timezone.utc)
    for (rack, at, source), r in facts.items():
        groups[(rack, at - (at - epoch) % step)].append((at, source, r))
    out = {}
    for key, rows in groups.items():
        last = max(rows, key=lambda x: (x[0], x[1]))[2]
        agg: dict[str, Any] = {"readings": len(rows)}
        for c in NUMERIC:
            values = [_f4(getattr(r, c)) for _, _, r in rows]
            agg |= {f"{c}_min": min(values), f"{c}_max": max(values), f"{c}_mean": sum(values) / len(values),
                    f"{c}_last": _f4(getattr(last, c))}
        leaks = [r.leak_detected for _, _, r in rows]
        agg |= {"leak_detected_min": all(leaks), "leak_detected_max": any(leaks),
                "leak_detected_mean": sum(leaks) / len(leaks), "leak_detected_last": last.leak_detected}
        out[key] = agg
    return out


def _f4(x: float) -> float:
    """The value as the narrow `real` column stores it."""
    import struct
    return struct.unpack("f", struct.pack("f", x))[0]


def _assert_same(stored: dict[tuple[str, datetime], dict], expected: dict[tuple[str, datetime], dict]) -> None:
    assert set(stored) == set(expected)
    for key, want in expected.items():
        got = stored[key]
        for name, value in want.items():
            assert math.isclose(got[name], value, rel_tol=2e-6, abs_tol=1e-6), (key, name, got[name], value)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=readings, split=st.integers(1, 4), repeat=st.integers(0, 60), seed=st.randoms(use_true_random=False))
def test_rollups_equal_aggregates_of_raw_rows_after_late_and_repeated_readings(
        tenant: Any, data: list[tuple[str, int, float, bool, str]], split: int, repeat: int, seed: Any) -> None:
    facts = {(rack, T0 + timedelta(seconds=s), source): _reading(rack, s, v, leak)
             for rack, s, v, leak, source in data}
    items = [(source, r) for (_, _, source), r in facts.items()]
    seed.shuffle(items)  # out of time order: later deliveries carry earlier minutes (late readings)
    repeated = items[:repeat]  # a producer repeating itself
    batches = [items[i::split] for i in range(split)] + ([repeated] if repeated else [])
    with psycopg.connect(tenant.database_url, autocommit=True) as conn:
        conn.execute("INSERT INTO racks VALUES ('r-1', 'gen-a', 's1', now()), ('r-2', 'gen-a', 's2', now()),"
                     " ('r-3', 'gen-b', 's3', now()) ON CONFLICT DO NOTHING")
        _reset(conn)
        after = T0 + timedelta(hours=4)
        for batch in batches:
            asyncio.run(_deliver(tenant.database_url, batch))
            roll_up(conn, now=after)
        columns = ["readings", *(f"{c}_{s}" for c in READING_COLUMNS for s in ("min", "max", "mean", "last"))]
        for table, step in (("rack_minutes", timedelta(minutes=1)), ("rack_hours", timedelta(hours=1))):
            stored = {(r[0], r[1]): dict(zip(columns, r[2:])) for r in conn.execute(
                f"SELECT rack_id, bucket, {', '.join(columns)} FROM {table}")}
            _assert_same(stored, _expected(facts, step))
        assert conn.execute("SELECT count(*) FROM rollup_pending").fetchone()[0] == 0
        # the facility minutes agree with the rack minutes they were made of
        per_gen = conn.execute(
            "SELECT f.generation, sum(f.racks), sum(f.power_watts_sum) FROM facility_minutes f GROUP BY 1 ORDER BY 1"
        ).fetchall()
        from_racks = conn.execute(
            "SELECT r.generation, count(*), sum(m.power_watts_mean::float8)"
            " FROM rack_minutes m JOIN racks r USING (rack_id)"
            " GROUP BY 1 ORDER BY 1").fetchall()
        assert [(g, n) for g, n, _ in per_gen] == [(g, n) for g, n, _ in from_racks]
        assert all(math.isclose(a[2], b[2], rel_tol=1e-9) for a, b in zip(per_gen, from_racks)), (per_gen, from_racks)


def test_the_surface_reads_raw_above_the_watermark_and_rollups_below(tenant: Any) -> None:
    """Before the job runs, the surface aggregates raw rows; after, it reads the same from rollups."""
    items = [("bmc", _reading("r-1", s, s % 50, s % 7 == 0)) for s in range(0, 7200, 5)]
    with psycopg.connect(tenant.database_url, autocommit=True) as conn:
        conn.execute("INSERT INTO racks VALUES ('r-1', 'gen-a', 's1', now())")
        asyncio.run(_deliver(tenant.database_url, items))
        query = ("SELECT bucket, readings, power_watts_mean, power_watts_last, leak_detected_max"
                 " FROM telemetry_series('r-1', %s, %s, %s) ORDER BY bucket")
        window = (T0, T0 + timedelta(hours=2))
        live = {res: conn.execute(query, (*window, res)).fetchall() for res in ("1m", "1h")}
        assert len(live["1m"]) == 120 and len(live["1h"]) == 3  # 22:50-23:00, 23:00-00:00, 00:00-00:50
        assert conn.execute("SELECT count(*) FROM rack_minutes").fetchone()[0] == 0
        run = roll_up(conn, now=T0 + timedelta(hours=1))  # half of it rolled up, half still live
        assert run.minutes == 59 and run.materialized_until == T0 + timedelta(minutes=59)
        assert {res: conn.execute(query, (*window, res)).fetchall() for res in ("1m", "1h")} == live
        assert conn.execute("SELECT count(*) FROM rack_minutes").fetchone()[0] == 59
        raw = conn.execute("SELECT count(*) FROM telemetry_series('r-1', %s, %s)", (T0, T0 + timedelta(hours=1))
                           ).fetchone()[0]
        assert raw == 720  # an hour is read raw: one row per reading
        assert conn.execute("SELECT telemetry_resolution(%s, %s), telemetry_resolution(%s, %s)",
                            (T0, T0 + timedelta(days=2), T0, T0 + timedelta(days=30))).fetchone() == ("1m", "1h")
        with pytest.raises(psycopg.errors.InvalidParameterValue):
            conn.execute("SELECT * FROM telemetry_series('r-1', %s, %s, '5m')", window)


def test_retention_drops_whole_partitions_of_each_resolution(tenant: Any) -> None:
    items = [("bmc", _reading("r-1", s, 1.0, False)) for s in range(0, 4 * 3600, 600)]
    with psycopg.connect(tenant.database_url, autocommit=True) as conn:
        conn.execute("INSERT INTO racks VALUES ('r-1', 'gen-a', 's1', now())")
        asyncio.run(_deliver(tenant.database_url, items))
        roll_up(conn, now=T0 + timedelta(days=1))
        today = (T0 + timedelta(days=40)).date()
        kept = conn.execute("SELECT count(*) FROM rack_minutes").fetchone()[0]
        dropped = apply_retention(conn, RetentionPolicy(raw_days=39, minute_days=20, hour_days=None), today)
        assert dropped == {"telemetry": 1, "rack_minutes": 0, "facility_minutes": 0}  # March 1st; March ends Apr 1
        assert conn.execute("SELECT count(*) FROM telemetry").fetchone()[0] == 17  # March 2nd's readings
        assert conn.execute("SELECT count(*) FROM rack_minutes").fetchone()[0] == kept == 24
        dropped = apply_retention(conn, RetentionPolicy(raw_days=None, minute_days=9, hour_days=None), today)
        assert dropped == {"rack_minutes": 1, "facility_minutes": 1}  # March ended before April 1st
        assert conn.execute("SELECT count(*) FROM rack_minutes").fetchone()[0] == 0
        assert conn.execute("SELECT count(*) FROM rack_hours").fetchone()[0] == 5  # hours are kept for ever


def test_twin_rollup_and_twin_storage_report_what_they_did(tenant: Any) -> None:
    """The operator's commands, run as a user runs them, against a database with readings."""
    import subprocess
    import sys

    items = [("bmc", _reading(r, s, 3.0, False)) for r in RACKS for s in range(0, 600, 1)]
    with psycopg.connect(tenant.database_url, autocommit=True) as conn:
        conn.execute("INSERT INTO racks VALUES ('r-1', 'gen-a', 's1', now()), ('r-2', 'gen-a', 's2', now()),"
                     " ('r-3', 'gen-b', 's3', now())")
    asyncio.run(_deliver(tenant.database_url, items))
    twin = [str(Path(sys.executable).parent / "twin")]
    done = subprocess.run([*twin, "rollup", "--once", "--keep-raw-days", "100000"], env=tenant.env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "rolled up 10 minutes, 1 hours" in " ".join(done.stdout.split())
    done = subprocess.run([*twin, "storage", "--racks", "75000"], env=tenant.env, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    out = " ".join(done.stdout.split())
    assert "rack_minutes" in out and "Projected for 75,000 racks" in out and "TimescaleDB" in out
    with psycopg.connect(tenant.database_url, autocommit=True) as conn:
        assert conn.execute("SELECT count(*) FROM rack_minutes").fetchone()[0] == 30
