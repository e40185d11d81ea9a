"""Telemetry storage side by side in one run: bytes per rack-day before and after narrowing, the
rollups' bytes, the fleet projection, and what keeping rollups costs the workers' ingest.

    python bench/storage.py [--racks 1000] [--readings 300000] [--repeats 3] [--out bench/reports/storage.md]

One embedded PostgreSQL 18 (in a temporary directory), migrated. The load is the simulator's:
every powered rack reports once a second; a worker batch holds 2,000 readings.

Ingest: the readings go through the workers' own write path (`UnitOfWork.copy_readings`, one
transaction per batch, as the telemetry pipeline calls it), into a fresh database per run,
alternating between
  (off) rollups off: `copy_readings` without its one line that marks pending minutes, no job;
  (on)  rollups on, as shipped: pending minutes marked in each batch transaction, and the rollup
        job (`roll_up`, 20 s settle) running every 2 s in another thread and connection meanwhile,
        on the same two cores.
This times the write path alone; a whole worker spends most of its time decoding and judging, so
the share rollups take of its rate is smaller than the share shown here.

Bytes: the same readings stored in the original layout (0002: double precision, rack_id first,
a b-tree on occurred_at) and in the current one (0010: real/smallint, aligned, BRIN), with indexes;
then rolled up. Bytes per rack-day = bytes per row x 86,400 readings (1 Hz), 1,440 minutes, 24 hours.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import shutil
import statistics
import sys
import tempfile
import threading
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql as pgsql

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from twin.domain.intent import IntentCatalog  # noqa: E402
from twin.embedded.simulator import FleetSimulator  # noqa: E402
from twin.embedded.stack import EmbeddedStack  # noqa: E402
from twin.store import TwinStore, rollups  # noqa: E402
from twin.store import storage as measured  # noqa: E402
from twin.store.migrations import migrate  # noqa: E402

BATCH = 2_000
WIDE = """
    CREATE TABLE telemetry_0002 (
        rack_id text NOT NULL, occurred_at timestamptz NOT NULL, source text NOT NULL,
        power_watts double precision NOT NULL, inlet_temperature_celsius double precision NOT NULL,
        outlet_temperature_celsius double precision NOT NULL,
        coolant_supply_temperature_celsius double precision NOT NULL,
        coolant_return_temperature_celsius double precision NOT NULL,
        coolant_flow_liters_per_minute double precision NOT NULL,
        coolant_differential_pressure_kilopascals double precision NOT NULL, leak_detected boolean NOT NULL,
        hottest_accelerator_temperature_celsius double precision NOT NULL, fan_speed_percent double precision NOT NULL,
        network_links_up integer NOT NULL, network_links_down integer NOT NULL,
        PRIMARY KEY (rack_id, occurred_at, source)
    ) PARTITION BY RANGE (occurred_at);
    CREATE INDEX telemetry_0002_occurred ON telemetry_0002 (occurred_at);
"""


def _log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def make_load(racks: int, readings: int, start: datetime) -> list[list[tuple[str, Any]]]:
    catalog = IntentCatalog.default()
    sim = FleetSimulator(11, racks, start, {g: catalog.latest(g) for g in catalog.generations()})
    flat: list[tuple[str, Any]] = []
    t = start
    while len(flat) < readings:
        for report in sim.telemetry_cycle(t):
            flat.extend((report.source, r) for r in report.readings)
        t += timedelta(seconds=1)
    flat = flat[:readings]
    return [flat[i:i + BATCH] for i in range(0, len(flat), BATCH)]


def fresh_database(stack: EmbeddedStack, name: str, batches: list[list[tuple[str, Any]]]) -> str:
    with psycopg.connect(stack.database_url, autocommit=True) as conn:
        conn.execute(pgsql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(pgsql.Identifier(name)))
        conn.execute(pgsql.SQL("CREATE DATABASE {}").format(pgsql.Identifier(name)))
    url = stack.database_url.rsplit("/", 1)[0] + f"/{name}"
    migrate(url)
    racks = {r.rack_id for batch in batches for _, r in batch}
    with psycopg.connect(url, autocommit=True) as conn:
        with conn.cursor().copy("COPY racks (rack_id, generation, serial_number, manufactured_at) FROM STDIN") as cp:
            for rack in racks:
                cp.write_row((rack, "gen-a-130kw", f"sn-{rack}", "2026-01-01T00:00:00Z"))
    return url


async def ingest(url: str, batches: list[list[tuple[str, Any]]]) -> float:
    store = await TwinStore.connect(url)
    try:
        t0 = time.perf_counter()
        for batch in batches:
            async with store.unit_of_work() as uow:
                await uow.copy_readings(batch)
        return time.perf_counter() - t0
    finally:
        await store.close()


class Job(threading.Thread):
    """The rollup job, every `every` seconds, until stopped; then once more to finish the backlog."""

    def __init__(self, url: str, every: float = 2.0) -> None:
        super().__init__(daemon=True)
        self.url, self.every = url, every
        self.stop = threading.Event()
        self.busy = 0.0
        self.runs = 0

    def run(self) -> None:
        with psycopg.connect(self.url, autocommit=True) as conn:
            while not self.stop.wait(self.every):
                self.busy += rollups.roll_up(conn, settle=timedelta(seconds=20)).seconds
                self.runs += 1


async def _unmarked(conn: Any, times: Any) -> None:
    """`mark_pending` switched off: what the write path costs without rollups."""


def run_variant(stack: EmbeddedStack, variant: str, i: int, batches: list[list[tuple[str, Any]]]) -> dict[str, Any]:
    url = fresh_database(stack, f"bench_storage_{variant}_{i}", batches)
    shipped = rollups.mark_pending
    job = Job(url) if variant == "on" else None
    if variant == "off":
        rollups.mark_pending = _unmarked  # type: ignore[assignment]
    try:
        if job:
            job.start()
        seconds = asyncio.run(ingest(url, batches))
    finally:
        rollups.mark_pending = shipped  # type: ignore[assignment]
        if job:
            job.stop.set()
            job.join()
    readings = sum(len(b) for b in batches)
    out: dict[str, Any] = {"variant": variant, "seconds": seconds, "per_second": readings / seconds, "url": url}
    if job:
        out["job_runs_during_ingest"] = job.runs
        out["job_busy_seconds_during_ingest"] = job.busy
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--racks", type=int, default=1_000)
    parser.add_argument("--readings", type=int, default=300_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", type=Path, default=Path("bench/reports/storage.md"))
    args = parser.parse_args()
    command = "python bench/storage.py " + " ".join(sys.argv[1:])
    tmp = Path(tempfile.mkdtemp(prefix="bench-storage-"))
    began = time.monotonic()
    load_at_start = os.getloadavg()
    start = (datetime.now(timezone.utc) - timedelta(hours=2)).replace(second=0, microsecond=0)
    batches = make_load(args.racks, args.readings, start)
    readings = sum(len(b) for b in batches)
    _log(f"load: {readings:,} readings of {args.racks} racks in {len(batches)} batches of {BATCH}")
    runs: list[dict[str, Any]] = []
    try:
        with EmbeddedStack(tmp / "stack") as stack:
            for i in range(args.repeats):
                for variant in ("off", "on") if i % 2 == 0 else ("on", "off"):
                    runs.append(run_variant(stack, variant, i, batches))
                    _log(f"  ({variant}) {runs[-1]['per_second']:,.0f} readings/s")
            url = runs[-1]["url"] if runs[-1]["variant"] == "on" else runs[-2]["url"]
            with psycopg.connect(url, autocommit=True) as conn:
                t = time.perf_counter()
                backlog = rollups.roll_up(conn, settle=timedelta(0))
                job_seconds = time.perf_counter() - t
                fresh_url = fresh_database(stack, "bench_storage_job", batches)
                asyncio.run(ingest(fresh_url, batches))
                with psycopg.connect(fresh_url, autocommit=True) as fresh:
                    t = time.perf_counter()
                    whole = rollups.roll_up(fresh, settle=timedelta(0))
                    whole_seconds = time.perf_counter() - t
                    # the original layout, for the before figure
                    fresh.execute(WIDE)
                    for day in {r.occurred_at.date() for b in batches for _, r in b}:
                        fresh.execute(pgsql.SQL("CREATE TABLE {} PARTITION OF telemetry_0002"
                                                " FOR VALUES FROM ({}) TO ({})")
                                      .format(pgsql.Identifier(f"telemetry_0002_{day:%Y%m%d}"),
                                              pgsql.Literal(f"{day} 00:00:00+00"),
                                              pgsql.Literal(f"{day + timedelta(days=1)} 00:00:00+00")))
                    fresh.execute("INSERT INTO telemetry_0002 SELECT rack_id, occurred_at, source, power_watts,"
                                  " inlet_temperature_celsius, outlet_temperature_celsius,"
                                  " coolant_supply_temperature_celsius, coolant_return_temperature_celsius,"
                                  " coolant_flow_liters_per_minute, coolant_differential_pressure_kilopascals,"
                                  " leak_detected, hottest_accelerator_temperature_celsius, fan_speed_percent,"
                                  " network_links_up, network_links_down FROM telemetry ORDER BY occurred_at")
                    # two further cuts, measured, not shipped: a time-leading identity, and integer keys
                    fresh.execute("CREATE TABLE alt_time_key (LIKE telemetry, PRIMARY KEY (occurred_at, rack_id, source))")
                    fresh.execute("INSERT INTO alt_time_key SELECT * FROM telemetry ORDER BY occurred_at, rack_id")
                    fresh.execute("""
                        CREATE TABLE alt_int_keys AS SELECT occurred_at, power_watts, inlet_temperature_celsius,
                            outlet_temperature_celsius, coolant_supply_temperature_celsius,
                            coolant_return_temperature_celsius, coolant_flow_liters_per_minute,
                            coolant_differential_pressure_kilopascals, hottest_accelerator_temperature_celsius,
                            fan_speed_percent, 0::int AS rack_key, network_links_up, network_links_down,
                            0::smallint AS source_key, leak_detected FROM telemetry WITH NO DATA;
                        ALTER TABLE alt_int_keys ADD PRIMARY KEY (rack_key, occurred_at, source_key);
                        INSERT INTO alt_int_keys SELECT t.occurred_at, t.power_watts, t.inlet_temperature_celsius,
                            t.outlet_temperature_celsius, t.coolant_supply_temperature_celsius,
                            t.coolant_return_temperature_celsius, t.coolant_flow_liters_per_minute,
                            t.coolant_differential_pressure_kilopascals, t.hottest_accelerator_temperature_celsius,
                            t.fan_speed_percent, dense_rank() OVER (ORDER BY t.rack_id), t.network_links_up,
                            t.network_links_down, dense_rank() OVER (ORDER BY t.source), t.leak_detected
                        FROM telemetry t ORDER BY t.occurred_at, t.rack_id""")
                    fresh.execute("VACUUM ANALYZE")
                    tables = measured.measure(fresh, ("telemetry_0002", "telemetry", "rack_minutes", "rack_hours",
                                                      "facility_minutes", "facility_hours", "alt_time_key",
                                                      "alt_int_keys"))
                    heap = {t: fresh.execute("SELECT sum(pg_relation_size(relid)) FROM pg_partition_tree(%s::regclass)",
                                             (t,)).fetchone()[0] for t in ("telemetry_0002", "telemetry")}
                    heap |= {t: fresh.execute("SELECT pg_relation_size(%s::regclass)", (t,)).fetchone()[0]
                             for t in ("alt_time_key", "alt_int_keys")}
                    keys = fresh.execute("SELECT avg(octet_length(rack_id)), avg(octet_length(source)) FROM telemetry"
                                         ).fetchone()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    off = [r["per_second"] for r in runs if r["variant"] == "off"]
    on = [r["per_second"] for r in runs if r["variant"] == "on"]
    ratio = statistics.median(on) / statistics.median(off)
    # The same cost accounted serially: ingest and the job's whole work on one shared resource.
    off_seconds = statistics.median(r["seconds"] for r in runs if r["variant"] == "off")
    serial_ratio = off_seconds / (off_seconds + whole_seconds)
    before = tables["telemetry_0002"]
    per_day = {"telemetry": tables["telemetry"].bytes_per_row * 86_400,
               "rack_minutes": tables["rack_minutes"].bytes_per_row * 1_440,
               "rack_hours": tables["rack_hours"].bytes_per_row * 24}
    before_day = before.bytes_per_row * 86_400
    projection = measured.project(per_day)
    projection_before = measured.project({"telemetry": before_day}, minute_days=0, hour_days=0)
    report = {
        "command": command, "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, load {load_at_start}",
        "readings": readings, "racks": args.racks, "runs": runs,
        "ingest_on_over_off": ratio, "ingest_serial_on_over_off": serial_ratio,
        "heap_bytes": heap, "mean_key_bytes": {"rack_id": float(keys[0]), "source": float(keys[1])},
        "job_backlog_after_last_on_run": {"minutes": backlog.minutes, "seconds": job_seconds},
        "job_whole_load": {"minutes": whole.minutes, "hours": whole.hours, "rows": whole.rows, "seconds": whole_seconds,
                           "readings_per_second": readings / whole_seconds},
        "tables": {t.table: {"rows": t.rows, "bytes": t.bytes, "bytes_per_row": t.bytes_per_row}
                   for t in tables.values()},
        "bytes_per_rack_day": {"before (0002)": before_day, **per_day},
        "projection_75k": {"raw_per_day_before": projection_before.raw_bytes_per_day,
                           "raw_per_day_after": projection.raw_bytes_per_day,
                           "raw_14_days": projection.raw_bytes, "minutes_400_days": projection.minute_bytes,
                           "hours_5_years": projection.hour_bytes, "total": projection.total_bytes},
        "seconds": time.monotonic() - began,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_suffix(".json").write_text(json.dumps(report, indent=2, default=str) + "\n")
    mib, gib, tib = 1024**2, 1024**3, 1024**4
    lines = [
        "# Telemetry storage and the cost of rollups", "",
        f"Command: `{command}` ({report['seconds']:.0f} s). Machine: {report['machine']}.", "",
        f"Load: {readings:,} simulator readings of {args.racks:,} racks (1 Hz), batches of {BATCH:,}.", "",
        "## Bytes", "",
        "| table | rows | bytes | bytes/row | per rack-day |", "|---|---:|---:|---:|---:|",
        f"| telemetry, before (0002 layout) | {before.rows:,} | {before.bytes:,} | {before.bytes_per_row:.1f} |"
        f" {before_day / mib:.2f} MiB |",
        f"| telemetry, after (0010 layout) | {tables['telemetry'].rows:,} | {tables['telemetry'].bytes:,} |"
        f" {tables['telemetry'].bytes_per_row:.1f} | {per_day['telemetry'] / mib:.2f} MiB |",
        f"| rack_minutes | {tables['rack_minutes'].rows:,} | {tables['rack_minutes'].bytes:,} |"
        f" {tables['rack_minutes'].bytes_per_row:.1f} | {per_day['rack_minutes'] / 1024:.1f} KiB |",
        f"| rack_hours | {tables['rack_hours'].rows:,} | {tables['rack_hours'].bytes:,} |"
        f" {tables['rack_hours'].bytes_per_row:.1f} | {per_day['rack_hours'] / 1024:.1f} KiB |",
        f"| facility_minutes | {tables['facility_minutes'].rows:,} | {tables['facility_minutes'].bytes:,} |"
        f" {tables['facility_minutes'].bytes_per_row:.1f} | per group, not per rack |",
        "",
        f"Of a raw row, the heap holds {heap['telemetry_0002'] / before.rows:.0f} B before and "
        f"{heap['telemetry'] / tables['telemetry'].rows:.0f} B after; the rest is the primary key "
        f"(rack_id, occurred_at, source), whose text keys average {float(keys[0]):.0f} and {float(keys[1]):.0f} "
        "bytes here, and the time index (BRIN after: a few pages).", "",
        "Two further cuts, measured on the same rows but not shipped (they change what every reader of "
        "`telemetry` sees): a time-leading identity (occurred_at, rack_id, source), whose index fills at the right "
        f"edge, {tables['alt_time_key'].bytes_per_row:.1f} B/row (heap {heap['alt_time_key'] / readings:.0f}) "
        f"({tables['alt_time_key'].bytes_per_row * 86_400 / mib:.2f} MiB per rack-day; per-rack reads would rely on "
        "PostgreSQL 18's skip scan); integer surrogate keys for rack and source, "
        f"{tables['alt_int_keys'].bytes_per_row:.1f} B/row (heap {heap['alt_int_keys'] / readings:.0f}) "
        f"({tables['alt_int_keys'].bytes_per_row * 86_400 / mib:.2f} MiB per rack-day).", "",
        f"Raw bytes per rack-day: {before_day / mib:.2f} MiB before, {per_day['telemetry'] / mib:.2f} MiB after "
        f"({1 - per_day['telemetry'] / before_day:.0%} less). Small tables carry a fixed overhead of pages and "
        "index roots, so a short load overstates the rollups' bytes per row a little.", "",
        "Projected for 75,000 racks at 1 Hz: raw "
        f"{projection_before.raw_bytes_per_day / tib:.2f} TiB/day before, {projection.raw_bytes_per_day / tib:.2f} "
        f"TiB/day after; keeping 14 days raw ({projection.raw_bytes / tib:.1f} TiB), 400 days of 1-minute rollups "
        f"({projection.minute_bytes / tib:.1f} TiB) and 5 years of 1-hour rollups ({projection.hour_bytes / tib:.1f} "
        f"TiB): {projection.total_bytes / tib:.1f} TiB in all.", "",
        measured.TIMESCALE_COMPRESSION, "",
        "## Ingest with rollups on and off", "",
        "| run | variant | seconds | readings/s |", "|---|---|---:|---:|",
        *(f"| {n + 1} | {r['variant']} | {r['seconds']:.1f} | {r['per_second']:,.0f} |" for n, r in enumerate(runs)),
        "",
        f"Median on/off: {statistics.median(on):,.0f} / {statistics.median(off):,.0f} readings/s = {ratio:.2f} "
        f"({1 - ratio:.0%} below; the goal is at most 15 %). The machine is shared (see the load above): "
        "runs of one variant differ by more than the variants do.", "",
        f"Accounted serially instead (the job's whole work for this load, {whole_seconds:.1f} s, added to the median "
        f"ingest without rollups, {off_seconds:.1f} s, as if both shared one core): {serial_ratio:.2f} "
        f"({1 - serial_ratio:.0%} below).", "",
        f"The rollup job over the whole load at once (settle 0): {whole.minutes} minutes, {whole.hours} hours, "
        f"{whole.rows:,} rollup rows in {whole_seconds:.1f} s: {readings / whole_seconds:,.0f} readings/s rolled up "
        f"(a fleet of 75,000 racks at 1 Hz needs 75,000/s).", "",
    ]
    args.out.write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
