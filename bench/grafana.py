"""Dashboard query latency at fleet scale: the fleet power panel over 24 hours and the facility
hall-power panel over 30 days, as Grafana sends them, over 10,000 racks of bulk-loaded rollups.

    python bench/grafana.py [--racks 10000] [--runs 30] [--out bench/reports/grafana.md]

One embedded PostgreSQL 18 (in a temporary directory) is migrated and loaded in SQL, server-side:

  * the fleet: facilities of 4 halls x 25 rows x 10 positions, racks of three generations;
  * per-rack 1-minute rollups (`rack_minutes`) for the last 24 hours of every rack;
  * facility minutes and hours (`facility_minutes`, `facility_hours`): the last 24 hours rolled up
    from those rack minutes by the rollup job's own functions (timed: the job's cost for a day of
    the fleet), the 29 days of hours before bulk-loaded directly (rolling them up from 30 days of
    rack minutes, 432 million rows, would take hours here and measure the load, not the panel);
  * a raw tail: the last `--tail` seconds of 1 Hz readings of every rack, above the rollup
    watermark, as in production between runs of the job. The fleet surface (`facility_series`)
    reads stored rollups only and leaves it alone: aggregating it live cost these panels 4 s
    (p50) at 10,000 racks (bench/reports/grafana-live-tail.md, the run that made it so).

Each panel's SQL is taken from the exported dashboard and expanded the way Grafana's PostgreSQL
data source expands it (all facilities, all generations), then run `--runs` times; p50 and
p99 are reported. Goal: p99 under 1 s.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import psycopg
from psycopg import sql as pgsql

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from twin.embedded.stack import EmbeddedStack  # noqa: E402
from twin.grafana.dashboards import build_all  # noqa: E402
from twin.grafana.macros import GrafanaRequest, expand  # noqa: E402
from twin.store.migrations import migrate  # noqa: E402

GENERATIONS = ("gen-a-130kw", "gen-b-300kw", "gen-c-600kw")
HALLS, ROWS, POSITIONS = 4, 25, 10
TABLES = ("rack_minutes", "facility_minutes", "facility_hours", "telemetry")


def _log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def _timed(conn: psycopg.Connection, statement: str, params: tuple = ()) -> float:
    t = time.perf_counter()
    conn.execute(statement, params)
    return time.perf_counter() - t


def load(conn: psycopg.Connection, racks: int, now: datetime, tail_s: int) -> dict[str, float]:
    facilities = -(-racks // (HALLS * ROWS * POSITIONS))
    timings: dict[str, float] = {}
    conn.execute("""
        INSERT INTO facilities SELECT 'f-' || lpad(f::text, 2, '0'), 'Facility ' || f,
            CASE WHEN f % 3 = 0 THEN 'partner' ELSE 'own' END, CASE WHEN f % 3 = 0 THEN 'Partner Co' ELSE 'us' END,
            'eu', now() FROM generate_series(1, %(f)s) f;
        INSERT INTO halls SELECT facility_id, 'h' || h, 40e6, 44e6 FROM facilities, generate_series(1, %(h)s) h;
        INSERT INTO rows SELECT facility_id, hall_id, 'r' || lpad(r::text, 2, '0'), %(p)s, 2e6, 2.2e6
            FROM halls, generate_series(1, %(r)s) r;
        INSERT INTO racks SELECT 'rk-' || lpad(n::text, 6, '0'), (%(g)s::text[])[1 + n %% 3], 'sn-' || n, now()
            FROM generate_series(0, %(n)s - 1) n;
        INSERT INTO rack_lifecycle (rack_id, generation, status, facility_id, hall_id, row_id, position)
        SELECT r.rack_id, r.generation, 'active', w.facility_id, w.hall_id, w.row_id, n %% %(p)s + 1
        FROM (SELECT rack_id, generation, row_number() OVER (ORDER BY rack_id) - 1 AS n FROM racks) r
        JOIN (SELECT facility_id, hall_id, row_id, row_number() OVER (ORDER BY facility_id, hall_id, row_id) - 1 AS k
              FROM rows) w ON w.k = r.n / %(p)s;
        INSERT INTO rack_telemetry (rack_id, telemetry_at, power_watts) SELECT rack_id, now(), 100000 FROM racks;
    """.replace("%(f)s", str(facilities)).replace("%(h)s", str(HALLS)).replace("%(r)s", str(ROWS))
        .replace("%(p)s", str(POSITIONS)).replace("%(n)s", str(racks)).replace("%%", "%")
        .replace("%(g)s", "'{" + ",".join(GENERATIONS) + "}'"))
    columns = conn.execute(
        "SELECT column_name, data_type FROM information_schema.columns WHERE table_name = 'rack_minutes'"
        " ORDER BY ordinal_position").fetchall()

    def value(name: str, kind: str) -> str:
        if name == "bucket":
            return "b"
        if name == "rack_id":
            return "r.rack_id"
        if name == "readings":
            return "60"
        if kind == "boolean":
            return "false"
        if kind == "smallint":
            return "(16 + (random() * 2)::int)::smallint"
        scale = 130000 if name.startswith("power_watts") else 40
        return f"({scale} * (0.7 + random() * 0.3))::real"

    day_start = now - timedelta(days=1)
    first_minute = day_start.replace(second=0, microsecond=0)
    watermark = (now - timedelta(seconds=tail_s)).replace(second=0, microsecond=0)
    conn.execute("SELECT ensure_rollup_partitions(%s, %s)", (now - timedelta(days=31), now))
    insert = (f"INSERT INTO rack_minutes ({', '.join(c for c, _ in columns)}) "
              f"SELECT {', '.join(value(c, k) for c, k in columns)} FROM racks r, "
              "generate_series(%s::timestamptz, %s::timestamptz - interval '1 minute', interval '1 minute') b")
    _log(f"loading {racks:,} racks x {int((watermark - first_minute).total_seconds() // 60):,} rack minutes")
    timings["load rack_minutes (s)"] = _timed(conn, insert, (first_minute, watermark))
    _log(f"  {timings['load rack_minutes (s)']:.0f} s")
    minutes_step = "rollup job: facility minutes of the last 24 h from rack minutes (s)"
    timings[minutes_step] = _timed(conn, "INSERT INTO facility_minutes SELECT * FROM facility_minutes_from_racks(%s, %s)",
                                   (first_minute, watermark))
    _log(f"  facility minutes rolled up in {timings[minutes_step]:.0f} s")
    groups = conn.execute("SELECT count(DISTINCT (facility_id, hall_id, generation)) FROM facility_minutes"
                          ).fetchone()[0]
    conn.execute("UPDATE rollup_watermark SET materialized_until = %s", (watermark,))
    hours_step = "rollup job: facility hours of the last 24 h from facility minutes (s)"
    timings[hours_step] = _timed(conn, "INSERT INTO facility_hours SELECT * FROM facility_hours_from_minutes(%s, %s)"
                                 " WHERE bucket < date_bin('1 hour', %s::timestamptz, timestamptz '2000-01-01')",
                                 (first_minute.replace(minute=0), watermark, watermark))
    earlier = "load 29 earlier days of facility hours (s)"
    timings[earlier] = _timed(conn, """
        INSERT INTO facility_hours
        SELECT b, g.watts * (0.7 + random() * 0.3), g.racks * 150.0, 130000, 30, 45, 40, 80, g.racks, 0,
               g.facility_id, g.hall_id, g.generation
        FROM (SELECT facility_id, hall_id, generation, count(*) AS racks, count(*) * 100000.0 AS watts
              FROM rack_lifecycle GROUP BY 1, 2, 3) g,
             generate_series(%s::timestamptz, %s::timestamptz - interval '1 hour', interval '1 hour') b
    """, (first_minute.replace(minute=0) - timedelta(days=29), first_minute.replace(minute=0)))
    _log(f"  {groups} facility groups; facility hours in {timings[hours_step]:.1f} s + {timings[earlier]:.1f} s")
    # the raw tail above the watermark, as the workers would have written it (1 Hz per rack)
    conn.execute("SELECT ensure_telemetry_partition(d::date) FROM generate_series(%s::date, %s::date, '1 day') d",
                 (watermark, now))
    timings["load raw tail (s)"] = _timed(conn, """
        INSERT INTO telemetry (occurred_at, power_watts, inlet_temperature_celsius, outlet_temperature_celsius,
            coolant_supply_temperature_celsius, coolant_return_temperature_celsius, coolant_flow_liters_per_minute,
            coolant_differential_pressure_kilopascals, hottest_accelerator_temperature_celsius, fan_speed_percent,
            network_links_up, network_links_down, leak_detected, rack_id, source)
        SELECT t, 100000 + random() * 30000, 25, 35, 30, 40, 150, 60, 70, 50, 16, 0, false, r.rack_id, 'bench'
        FROM racks r, generate_series(%s::timestamptz, %s::timestamptz, interval '1 second') t
    """, (watermark, now))
    conn.execute("VACUUM ANALYZE")
    return timings


def measure(conn: psycopg.Connection, now: datetime, runs: int) -> list[dict]:
    facilities = [r[0] for r in conn.execute("SELECT facility_id FROM facilities ORDER BY 1")]
    variables = {"facility": facilities, "generation": list(GENERATIONS)}
    queries = {q.panel: q for spec in build_all() for q in spec.queries}
    cases = [("Fleet overview / Power against budget", queries["Power against budget"], timedelta(hours=24)),
             ("Facility / Hall power", queries["Hall power"], timedelta(days=30)),
             ("Facility / Hottest accelerator per hall", queries["Hottest accelerator per hall"], timedelta(days=30))]
    results = []
    for name, query, span in cases:
        request = GrafanaRequest(now - span, now, variables, frozenset({"facility", "generation"}),
                                 min_interval="1m")
        statement = expand(query.raw_sql, request)
        rows = len(conn.execute(statement).fetchall())  # warm
        times = []
        for _ in range(runs):
            t = time.perf_counter()
            conn.execute(statement).fetchall()
            times.append(time.perf_counter() - t)
        times.sort()
        p99 = times[min(len(times) - 1, int(round(0.99 * (len(times) - 1))))]
        results.append({"panel": name, "range": str(span), "rows": rows, "runs": runs,
                        "p50_ms": statistics.median(times) * 1000, "p99_ms": p99 * 1000, "max_ms": times[-1] * 1000})
        _log(f"{name} over {span}: {rows} points, p50 {results[-1]['p50_ms']:.0f} ms,"
             f" p99 {results[-1]['p99_ms']:.0f} ms")
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--racks", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--tail", type=int, default=70, help="seconds of raw readings above the watermark")
    parser.add_argument("--out", type=Path, default=Path("bench/reports/grafana.md"))
    args = parser.parse_args()
    command = "python bench/grafana.py " + " ".join(sys.argv[1:])
    tmp = Path(tempfile.mkdtemp(prefix="bench-grafana-"))
    began = time.monotonic()
    load_at_start = os.getloadavg()
    try:
        with EmbeddedStack(tmp / "stack") as stack:
            with psycopg.connect(stack.database_url, autocommit=True) as admin:
                admin.execute(pgsql.SQL("CREATE DATABASE bench_grafana"))
            url = stack.database_url.rsplit("/", 1)[0] + "/bench_grafana"
            migrate(url)
            now = datetime.now(timezone.utc)
            with psycopg.connect(url, autocommit=True) as conn:
                timings = load(conn, args.racks, now, args.tail)
                sizes = {t: conn.execute("SELECT pg_size_pretty(sum(pg_total_relation_size(relid)))"
                                         " FROM pg_partition_tree(%s::regclass)", (t,)).fetchone()[0]
                         for t in TABLES}
                counts = {t: conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in TABLES}
                results = measure(conn, now, args.runs)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    report = {"command": command, "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, load {load_at_start}",
              "racks": args.racks, "timings": timings, "sizes": sizes, "rows": counts, "results": results,
              "seconds": time.monotonic() - began}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_suffix(".json").write_text(json.dumps(report, indent=2, default=str) + "\n")
    lines = [
        "# Dashboard queries at fleet scale", "",
        f"Command: `{command}` ({report['seconds']:.0f} s). Machine: {report['machine']}.", "",
        f"{args.racks:,} racks. Loaded: " + ", ".join(f"{t} {counts[t]:,} rows ({sizes[t]})" for t in counts) + ".",
        "", "| step | seconds |", "|---|---:|", *(f"| {k} | {v:.1f} |" for k, v in timings.items()), "",
        "| panel | range | points | p50 ms | p99 ms | max ms | p99 < 1 s |", "|---|---|---:|---:|---:|---:|---|",
        *(f"| {r['panel']} | {r['range']} | {r['rows']} | {r['p50_ms']:.0f} | {r['p99_ms']:.0f} | {r['max_ms']:.0f} |"
          f" {'yes' if r['p99_ms'] < 1000 else 'NO'} |" for r in results), "",
        "Each panel's SQL is the exported dashboard's, expanded as Grafana's PostgreSQL data source expands it "
        "(all facilities and generations, `$__interval` from a 1,000-point panel with a 1-minute minimum). "
        "The 24-hour panel reads `facility_minutes`, the 30-day panels `facility_hours` (`facility_series` picks "
        "by range), up to the rollup watermark; the raw tail above it is in `telemetry`, as in production between "
        "runs of `twin rollup`, and not read by these panels (reading it live cost them 4 s at p50: "
        "`bench/reports/grafana-live-tail.md`).", "",
    ]
    args.out.write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
