"""The capacity-planning API at fleet scale: latency per endpoint over 100,000 racks, and ingest rate.

    python bench/api.py [--racks 100000] [--requests 200] [--out bench/reports/api.md]

One embedded stack (Tansu + PostgreSQL 18) in a temporary directory. The store is bulk-loaded
with COPY, not simulated rack by rack: facilities (own and two partners) with halls and rows,
the default design intents, a rollout plan, `--racks` racks spread over the lifecycle with
their folded twins (full bills of materials, as the workers store them), their lifecycle
events, open deviations, and an hour of per-row draw minutes for the headroom p95. Then a
real `twin api` process serves it, and one keep-alive HTTP client times `--requests` requests
per endpoint (after a warm-up), varying ids and filters, for the admin token and a partner's.
Latency is what the client sees: request sent to answer parsed (with orjson; how long the standard
library's json takes on the largest answer is measured beside it).

Ingest: batches of lifecycle events (`rack.manufactured` of new racks) and of telemetry
reports (50 readings each) POSTed to /v1/events, each answered 202 once the broker has
acknowledged every message; the rate counts events (and readings) over the whole run.

Targets (issue 9): summary, headroom and filtered lists p99 < 50 ms; one rack p99 < 20 ms.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import httpx
import orjson
import psycopg
from psycopg import sql

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from twin.domain.intent import IntentCatalog  # noqa: E402
from twin.domain.fleet import PLAN_QUARTERS  # noqa: E402
from twin.embedded.stack import EmbeddedStack, spawn_child, stop_children  # noqa: E402
from twin.settings import Topics  # noqa: E402
from twin.store import tokens  # noqa: E402
from twin.store.migrations import migrate  # noqa: E402
from twin.topics import ensure_topics  # noqa: E402

EPOCH = datetime(2026, 7, 1, tzinfo=timezone.utc)
STAGES = [  # stage, share of the fleet
    ("active", 0.70), ("degraded", 0.02), ("maintenance", 0.02), ("installed", 0.04), ("commissioned", 0.03),
    ("received", 0.03), ("in-transit", 0.05), ("factory-tested", 0.04), ("manufactured", 0.04), ("rma", 0.02),
    ("decommissioned", 0.01),
]
PATH = ["manufactured", "factory-tested", "in-transit", "received", "installed", "commissioned", "active"]
STANDING = {"installed", "commissioned", "active", "degraded", "maintenance"}
PLACED = STANDING | {"received"}
OPERATORS = ["fleet-twin", "Cascadia Colocation", "Lone Star Compute"]
KINDS_ONSHORE = {"power-shelf", "psu", "cdu", "cooling-manifold", "cabling", "nic", "switch-tray"}


@dataclass
class Layout:
    facilities: list[tuple[str, str, str]]  # id, ownership, operator
    rows: list[tuple[str, str, str, int]]  # facility, hall, row, positions


def layout(racks: int) -> Layout:
    """Facilities of 5 halls x 100 rows x 20 positions, enough for the racks that stand in one."""
    per_facility = 5 * 100 * 20
    n = max(3, -(-int(racks * 0.9) // per_facility))
    facilities = []
    for i in range(n):
        operator = OPERATORS[0] if i % 4 in (0, 1) else OPERATORS[1 + (i % 4 == 3)]
        facilities.append((f"f{i:02d}", "own" if operator == OPERATORS[0] else "partner", operator))
    rows = [(f, f"h{h}", f"r{r:03d}", 20) for f, _, _ in facilities for h in range(1, 6) for r in range(1, 101)]
    return Layout(facilities, rows)


def _copy(conn: psycopg.Connection[Any], table: str, columns: list[str], rows: Any) -> int:
    n = 0
    with conn.cursor() as cur, cur.copy(sql.SQL("COPY {} ({}) FROM STDIN").format(
            sql.Identifier(table), sql.SQL(", ").join(map(sql.Identifier, columns)))) as copy:
        for row in rows:
            copy.write_row(row)
            n += 1
    return n


def load(url: str, racks: int, seed: int = 7) -> dict[str, Any]:
    """Bulk-load a fleet of `racks` with COPY; returns what the timing loop needs to vary its requests."""
    rng = random.Random(seed)
    catalog = IntentCatalog.default()
    intents = {g: catalog.latest(g) for g in catalog.generations()}
    generations = sorted(intents)
    lay = layout(racks)
    now = datetime.now(timezone.utc)
    counts: dict[str, int] = {}
    with psycopg.connect(url, autocommit=True) as conn:
        counts["facilities"] = _copy(conn, "facilities", ["facility_id", "name", "ownership", "operator", "region",
                                                          "registered_at"],
                                     ((f, f"Facility {f}", own, op, "us", EPOCH - timedelta(days=400))
                                      for f, own, op in lay.facilities))
        _copy(conn, "halls", ["facility_id", "hall_id", "power_capacity_watts", "cooling_capacity_watts"],
              ((f, f"h{h}", 100 * 20 * 160_000.0, 100 * 20 * 170_000.0) for f, _, _ in lay.facilities
               for h in range(1, 6)))
        counts["rows"] = _copy(conn, "rows", ["facility_id", "hall_id", "row_id", "positions", "power_capacity_watts",
                                              "cooling_capacity_watts"],
                               ((f, h, r, p, p * 170_000.0, p * 180_000.0) for f, h, r, p in lay.rows))
        _copy(conn, "generation_intents", ["generation", "revision", "published_at", "body"],
              ((g, i.revision, EPOCH - timedelta(days=365), i.model_dump_json()) for g, i in intents.items()))
        _copy(conn, "rollout_targets", ["revision", "facility_id", "generation", "quarter", "racks_in_service"],
              ((1, f, g, q, 100 * (k + 1)) for f, _, _ in lay.facilities for g in generations
               for k, q in enumerate(PLAN_QUARTERS)))

        positions = [(f, h, r, p) for f, h, r, n in lay.rows for p in range(1, n + 1)]
        rng.shuffle(positions)
        stage_pool = [s for s, share in STAGES for _ in range(int(share * 1000))]
        state_rows, telemetry_rows, event_rows, deviation_rows, ids = [], [], [], [], []
        for i in range(racks):
            rack_id = f"rk-{i:06d}"
            ids.append(rack_id)
            gen = generations[i % len(generations)]
            intent = intents[gen]
            stage = stage_pool[rng.randrange(len(stage_pool))]
            place = positions.pop() if stage in PLACED and positions else None
            facility = place[0] if place else None
            hall, row, pos = (place[1], place[2], place[3]) if place and stage in STANDING else (None, None, None)
            if stage == "received" and place:
                positions.append(place)
            start = EPOCH + timedelta(days=rng.uniform(0, 120))
            entered, left, t = {}, {}, start
            reached = PATH.index(stage) if stage in PATH else len(PATH) - 1
            for s in PATH[:reached + 1]:
                entered[s] = t
                t = t + timedelta(days=rng.uniform(0.5, 12))
                if s != stage:
                    left[s] = t
            if stage not in PATH:
                left["active"] = t
                entered[stage] = t + timedelta(days=rng.uniform(1, 20))
            since = entered[stage]
            parts = [{"slot": f"{kind[:3]}-{k:02d}", "kind": kind, "part_number": f"{kind}-{gen[-5:]}",
                      "serial_number": f"{rack_id}-{kind[:3]}{k}", "supplier": "Acme" if rng.random() < 0.5 else "Globex",
                      "country_of_manufacture": "US" if kind in KINDS_ONSHORE and rng.random() < 0.6 else "TW",
                      "firmware_version": intent.firmware_baseline.get(kind), "unit_value_usd": 1000.0}
                     for kind, n in intent.required_components.items() for k in range(n)] \
                if stage not in ("manufactured",) else []
            twin = {"format": 1, "rack_id": rack_id, "generation": gen, "status": stage, "version": len(entered),
                    "serial_number": f"SN{i}", "factory": "Fremont CA", "destination_facility_id": facility,
                    "facility_id": facility if stage in PLACED else None, "hall_id": hall, "row_id": row,
                    "position": pos, "status_reason": None, "rma_number": None, "intent_revision": intent.revision,
                    "stage_entered_at": {s: v.isoformat() for s, v in entered.items()},
                    "stage_left_at": {s: v.isoformat() for s, v in left.items()}, "tests": {}, "components": parts,
                    "rejected": [], "last_event": None}
            powered = stage in STANDING
            budget = intent.power_budget_watts.max or intent.cooling_capacity_watts
            health = rng.choices(["ok", "warning", "critical"], [0.93, 0.05, 0.02])[0] if powered else "unknown"
            devs = []
            if since < now - timedelta(days=15) and stage in ("installed", "received", "commissioned"):
                devs.append(("stalled-in-stage", "warning"))
            if parts and rng.random() < 0.02:
                devs.append(("firmware-drift-psu", "warning"))
            if powered and rng.random() < 0.01:
                devs.append(("accelerator-too-hot", "critical"))
            state_rows.append((
                rack_id, gen, stage, len(entered), len(entered), twin["facility_id"], hall, row, pos, since, since,
                now, orjson.dumps(twin).decode()))
            if powered:
                telemetry_rows.append((rack_id, now, budget * rng.uniform(0.6, 0.95), 24.0,
                                       orjson.dumps({"overall": health}).decode(), intent.revision))
            for check, severity in devs:
                deviation_rows.append((rack_id, check, severity, "1", None, None, None, gen, intent.revision, "", since))
            version = 0
            for s, at in entered.items():
                kind = {"manufactured": "rack.manufactured", "factory-tested": "rack.tested",
                        "in-transit": "rack.shipped", "received": "rack.received", "installed": "rack.installed",
                        "commissioned": "rack.commissioned", "active": "rack.entered_service",
                        "degraded": "rack.degraded", "maintenance": "rack.maintenance_started",
                        "rma": "rack.rma_opened", "decommissioned": "rack.decommissioned"}[s]
                version += 1
                body: dict[str, Any] = {"event_id": str(uuid.UUID(int=rng.getrandbits(128))), "type": kind,
                                        "schema_version": 1, "occurred_at": at.isoformat(), "source": "bench",
                                        "seq": version, "rack_id": rack_id}
                body.update({
                    "rack.manufactured": {"generation": gen, "serial_number": f"SN{i}", "factory": "Fremont CA"},
                    "rack.tested": {"test": "factory-acceptance", "passed": True, "measurements": {}},
                    "rack.shipped": {"destination_facility_id": place[0] if place else "f00", "carrier": None},
                    "rack.received": {"facility_id": place[0] if place else "f00"},
                    "rack.installed": {"facility_id": place[0] if place else "f00", "hall_id": place[1] if place else "h1",
                                       "row_id": place[2] if place else "r001", "position": place[3] if place else 1},
                    "rack.degraded": {"reason": "bench"}, "rack.maintenance_started": {"reason": "bench"},
                    "rack.rma_opened": {"rma_number": f"RMA{i}", "reason": "bench"},
                    "rack.decommissioned": {"reason": "bench"},
                }.get(kind, {}))
                event_rows.append((body["event_id"], rack_id, version, kind, 1, at, "bench", version,
                                   orjson.dumps(body).decode()))
        counts["racks"] = _copy(conn, "racks", ["rack_id", "generation", "serial_number", "manufactured_at"],
                                ((r[0], r[1], f"SN{k}", EPOCH) for k, r in enumerate(state_rows)))
        counts["rack_lifecycle"] = _copy(conn, "rack_lifecycle", [
            "rack_id", "generation", "status", "version", "stream_version", "facility_id", "hall_id", "row_id",
            "position", "stage_entered_at", "lifecycle_at", "lifecycle_recorded_at", "twin"], state_rows)
        counts["rack_telemetry"] = _copy(conn, "rack_telemetry", [
            "rack_id", "telemetry_at", "power_watts", "inlet_temperature_celsius", "health", "intent_revision"],
            telemetry_rows)
        counts["deviations"] = _copy(conn, "deviations", [
            "rack_id", "check_name", "severity", "measured", "allowed_min", "allowed_max", "unit", "generation",
            "intent_revision", "detail", "since"], deviation_rows)
        counts["events"] = _copy(conn, "events", ["event_id", "stream_id", "stream_version", "type", "schema_version",
                                                  "occurred_at", "source", "seq", "body"], event_rows)
        minute0 = now.replace(second=0, microsecond=0) - timedelta(minutes=60)
        counts["row_power_minutes"] = _copy(conn, "row_power_minutes", [
            "facility_id", "hall_id", "row_id", "minute", "racks", "power_watts"],
            ((f, h, r, minute0 + timedelta(minutes=m), 15, 15 * 120_000.0 * rng.uniform(0.8, 1.0))
             for f, h, r, _ in lay.rows for m in range(60)))
        conn.execute("SELECT ensure_telemetry_partition(current_date)")
        conn.execute("INSERT INTO telemetry (rack_id, occurred_at, source, power_watts, inlet_temperature_celsius,"
                     " outlet_temperature_celsius, coolant_supply_temperature_celsius,"
                     " coolant_return_temperature_celsius, coolant_flow_liters_per_minute,"
                     " coolant_differential_pressure_kilopascals, leak_detected,"
                     " hottest_accelerator_temperature_celsius, fan_speed_percent, network_links_up,"
                     " network_links_down)"
                     " SELECT rack_id, now(), 'bench', 1000, 24, 30, 30, 40, 10, 80, false, 60, 30, 8, 0"
                     " FROM rack_lifecycle LIMIT 100")
        conn.execute("INSERT INTO consumer_offsets VALUES ('twin-worker', 'fleet.telemetry.v1', 0, 1, now())")
        conn.execute("VACUUM ANALYZE")
        sample = {
            "racks": rng.sample(ids, 500),
            "partner_racks": [row[0] for row in conn.execute(
                "SELECT s.rack_id FROM rack_lifecycle s JOIN facilities f USING (facility_id) WHERE f.operator = %s"
                " LIMIT 500", (OPERATORS[1],)).fetchall()],
            "facilities": [f for f, _, _ in lay.facilities],
            "generations": generations,
        }
        size = conn.execute("SELECT pg_size_pretty(pg_database_size(current_database()))").fetchone()[0]
    return {"counts": counts, "sample": sample, "database_size": size}


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def time_endpoint(client: httpx.Client, path: Any, params: Any, n: int, warmup: int = 10) -> dict[str, float]:
    """p50/p99/max in ms of `n` GETs; `path` and `params` are callables of the request index."""
    samples, server, size = [], [], 0
    for k in range(warmup + n):
        url, query = path(k), params(k)
        t0 = time.perf_counter()
        r = client.get(url, params=query)
        orjson.loads(r.content)
        elapsed = (time.perf_counter() - t0) * 1000
        if r.status_code != 200:
            raise SystemExit(f"{url} {query} answered {r.status_code}: {r.text[:300]}")
        if k >= warmup:
            samples.append(elapsed)
            server.append(float(r.headers["server-timing"].split("dur=")[1]))
            size = max(size, len(r.content))
    return {"p50_ms": round(percentile(samples, 0.5), 2), "p99_ms": round(percentile(samples, 0.99), 2),
            "max_ms": round(max(samples), 2), "server_p50_ms": round(percentile(server, 0.5), 2),
            "server_p99_ms": round(percentile(server, 0.99), 2), "bytes": size, "n": n}


def time_parsers(client: httpx.Client, path: str, params: dict[str, Any], n: int = 21) -> dict[str, Any]:
    """Median ms to parse one answer with orjson (what the timings use) and with the standard library."""
    body = client.get(path, params=params).content
    out: dict[str, Any] = {"path": path, "params": params, "bytes": len(body)}
    for name, loads in (("orjson", orjson.loads), ("json", json.loads)):
        spent = []
        for _ in range(n):
            t0 = time.perf_counter()
            loads(body)
            spent.append((time.perf_counter() - t0) * 1000)
        out[f"{name}_ms"] = round(statistics.median(spent), 2)
    return out


def bench_ingest(client: httpx.Client, batches: int, batch: int) -> dict[str, Any]:
    now = datetime.now(timezone.utc)
    lifecycle_events = 0
    t0 = time.perf_counter()
    for b in range(batches):
        body = [{"event_id": str(uuid.uuid4()), "type": "rack.manufactured", "schema_version": 1,
                 "occurred_at": now.isoformat(), "source": "bench-factory", "seq": b * batch + k,
                 "rack_id": f"new-{b:03d}-{k:05d}", "generation": "gen-a-130kw", "serial_number": f"N{b}-{k}",
                 "factory": "Fremont CA"} for k in range(batch)]
        r = client.post("/v1/events", content=orjson.dumps(body), headers={"content-type": "application/json"})
        if r.status_code != 202:
            raise SystemExit(f"ingest answered {r.status_code}: {r.text[:300]}")
        lifecycle_events += len(r.json()["accepted"])
    lifecycle_s = time.perf_counter() - t0
    reading = {"power_watts": 1000.0, "inlet_temperature_celsius": 24.0, "outlet_temperature_celsius": 35.0,
               "coolant_supply_temperature_celsius": 30.0, "coolant_return_temperature_celsius": 40.0,
               "coolant_flow_liters_per_minute": 10.0, "coolant_differential_pressure_kilopascals": 80.0,
               "leak_detected": False, "hottest_accelerator_temperature_celsius": 60.0, "fan_speed_percent": 30.0,
               "network_links_up": 8, "network_links_down": 0}
    reports = readings = 0
    t0 = time.perf_counter()
    per_batch = max(1, batch // 50)
    for b in range(batches):
        body = [{"event_id": str(uuid.uuid4()), "type": "telemetry.reported", "schema_version": 1,
                 "occurred_at": now.isoformat(), "source": f"bench-collector-{k}", "seq": b,
                 "readings": [{"rack_id": f"rk-{(k * 50 + j) % 100000:06d}", "occurred_at": now.isoformat(), **reading}
                              for j in range(50)]} for k in range(per_batch)]
        r = client.post("/v1/events", content=orjson.dumps(body), headers={"content-type": "application/json"})
        if r.status_code != 202:
            raise SystemExit(f"ingest answered {r.status_code}: {r.text[:300]}")
        reports += len(r.json()["accepted"])
        readings += 50 * len(r.json()["accepted"])
    telemetry_s = time.perf_counter() - t0
    return {"lifecycle_events": lifecycle_events, "lifecycle_events_per_s": round(lifecycle_events / lifecycle_s),
            "batch": batch, "reports": reports, "readings": readings,
            "readings_per_s": round(readings / telemetry_s), "reports_per_batch": per_batch}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--racks", type=int, default=100_000)
    parser.add_argument("--requests", type=int, default=200, help="timed requests per endpoint")
    parser.add_argument("--ingest-batches", type=int, default=20)
    parser.add_argument("--ingest-batch", type=int, default=1000, help="events per POST")
    parser.add_argument("--out", type=Path, default=Path("bench/reports/api.md"))
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="twin-bench-api-") as tmp_name:
        tmp = Path(tmp_name)
        with EmbeddedStack(tmp / "stack") as stack:
            with psycopg.connect(stack.database_url, autocommit=True) as conn:
                conn.execute("CREATE DATABASE bench_api")
            url = stack.database_url.rsplit("/", 1)[0] + "/bench_api"
            migrate(url)
            topics = Topics(**{r: f"bench.api.{r}" for r in ("telemetry", "lifecycle", "intent", "deadletter",
                                                                "deviations")})
            ensure_topics(stack.kafka_bootstrap, topics.partition_counts())
            t0 = time.perf_counter()
            loaded = load(url, args.racks)
            load_s = time.perf_counter() - t0
            print(f"loaded {loaded['counts']} in {load_s:.1f} s ({loaded['database_size']})", flush=True)
            with psycopg.connect(url, autocommit=True) as conn:
                admin = tokens.create_token(conn, "bench-admin", ["admin"])[1]
                partner = tokens.create_token(conn, "bench-partner", ["read"], owner=OPERATORS[1])[1]
            port = _free_port()
            env = {**os.environ, "TWIN_DATABASE_URL": url, "TWIN_KAFKA_BOOTSTRAP": stack.kafka_bootstrap,
                   "TWIN_API_PORT": str(port), "TWIN_API_ROLLUP_SECONDS": "0",
                   **{f"TWIN_TOPIC_{r.upper()}": getattr(topics, r) for r in ("telemetry", "lifecycle", "intent",
                                                                               "deadletter", "deviations")},
                   "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
            api = spawn_child([sys.executable, "-c", "from twin.cli import main; main()", "api"], env=env,
                              log_path=tmp / "api.log")
            try:
                base = f"http://127.0.0.1:{port}"
                _wait_up(base, api, tmp / "api.log")
                results = run(base, admin, partner, loaded["sample"], args)
                with psycopg.connect(url, autocommit=True) as conn:
                    results["fleet_cube_rebuild_seconds"] = round(conn.execute(
                        "SELECT seconds FROM summary_refreshes WHERE name = 'fleet_cube'").fetchone()[0], 2)
            finally:
                stop_children({"api": api})
    report = {"racks": args.racks, "load_seconds": round(load_s, 1), **loaded, **results,
              "machine": f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}",
              "command": " ".join(["python", "bench/api.py", *sys.argv[1:]])}
    report.pop("sample")
    for k in ("load_average_before", "load_average_after"):
        report[k] = results[k]
    write_report(args.out, report)


def run(base: str, admin: str, partner: str, sample: dict[str, Any], args: argparse.Namespace) -> dict[str, Any]:
    n = args.requests
    racks, mine = sample["racks"], sample["partner_racks"]
    fac, gens = sample["facilities"], sample["generations"]
    at = (datetime.now(timezone.utc) - timedelta(days=30)).isoformat()
    endpoints: list[tuple[str, str, Any, Any, str]] = [
        # name, token, path(k), params(k), target
        ("fleet summary by facility, generation", "admin", lambda k: "/v1/fleet/summary", lambda k: {}, "50"),
        ("fleet summary by owner, stage", "admin", lambda k: "/v1/fleet/summary",
         lambda k: {"group_by": ["owner", "stage"]}, "50"),
        ("fleet summary by row (partner)", "partner", lambda k: "/v1/fleet/summary", lambda k: {"group_by": "row"}, "50"),
        ("headroom per row, one facility", "admin", lambda k: "/v1/headroom",
         lambda k: {"level": "row", "facility": fac[k % len(fac)]}, "50"),
        ("headroom per row, whole fleet", "admin", lambda k: "/v1/headroom", lambda k: {"level": "row"}, "50"),
        ("headroom per hall, one facility", "admin", lambda k: "/v1/headroom",
         lambda k: {"level": "hall", "facility": fac[k % len(fac)]}, "50"),
        ("headroom per facility", "admin", lambda k: "/v1/headroom", lambda k: {"level": "facility"}, "50"),
        ("racks, no filter", "admin", lambda k: "/v1/racks", lambda k: {}, "50"),
        ("racks by stage and generation", "admin", lambda k: "/v1/racks",
         lambda k: {"stage": "active", "generation": gens[k % len(gens)]}, "50"),
        ("racks by facility and health", "admin", lambda k: "/v1/racks",
         lambda k: {"facility": fac[k % len(fac)], "health": "critical"}, "50"),
        ("racks stalled", "admin", lambda k: "/v1/racks", lambda k: {"stalled": "true"}, "50"),
        ("racks with firmware drift", "admin", lambda k: "/v1/racks", lambda k: {"firmware_drift": "true"}, "50"),
        ("racks with deviation accelerator-too-hot", "admin", lambda k: "/v1/racks",
         lambda k: {"deviation": "accelerator-too-hot"}, "50"),
        ("racks onshore share below 0.5", "admin", lambda k: "/v1/racks", lambda k: {"onshore_below": 0.5}, "50"),
        ("racks, partner, active", "partner", lambda k: "/v1/racks", lambda k: {"stage": "active"}, "50"),
        ("one rack", "admin", lambda k: f"/v1/racks/{racks[k % len(racks)]}", lambda k: {}, "20"),
        ("one rack (partner)", "partner", lambda k: f"/v1/racks/{mine[k % len(mine)]}", lambda k: {}, "20"),
        ("rack history", "admin", lambda k: f"/v1/racks/{racks[k % len(racks)]}/history", lambda k: {}, "20"),
        ("rack as of 30 days ago", "admin", lambda k: f"/v1/racks/{racks[k % len(racks)]}/as-of",
         lambda k: {"at": at}, "20"),
        ("placement of 200 racks", "admin", lambda k: "/v1/placement",
         lambda k: {"generation": gens[k % len(gens)], "count": 200}, "-"),
        ("intents with conformance", "admin", lambda k: "/v1/intents", lambda k: {}, "-"),
        ("rollout progress", "admin", lambda k: "/v1/rollout", lambda k: {}, "-"),
        ("generation scorecard", "admin", lambda k: "/v1/scorecard", lambda k: {}, "-"),
    ]
    heavy = {"rollout progress", "generation scorecard", "placement of 200 racks", "intents with conformance"}
    out: dict[str, Any] = {"endpoints": []}
    clients = {who: httpx.Client(base_url=base, headers={"Authorization": f"Bearer {tok}"}, timeout=120)
               for who, tok in (("admin", admin), ("partner", partner))}
    try:
        out["load_average_before"] = os.getloadavg()
        for name, who, path, params, target in endpoints:
            count = max(20, n // 10) if name in heavy else n
            timing = time_endpoint(clients[who], path, params, count, warmup=3 if name in heavy else 10)
            out["endpoints"].append({"endpoint": name, "path": path(0), "target_p99_ms": target, **timing})
            print(f"{name:45s} p50 {timing['p50_ms']:8.2f} ms  p99 {timing['p99_ms']:8.2f} ms", flush=True)
        out["load_average_after"] = os.getloadavg()
        out["parse"] = time_parsers(clients["admin"], "/v1/headroom", {"level": "row"})
        out["ingest"] = bench_ingest(clients["admin"], args.ingest_batches, args.ingest_batch)
        print(f"ingest {out['ingest']}", flush=True)
    finally:
        for c in clients.values():
            c.close()
    return out


def write_report(path: Path, report: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.with_suffix(".json").write_text(json.dumps(report, indent=2, default=str) + "\n")
    lines = [
        "# API latency and ingest at fleet scale",
        "",
        f"Command: `{report['command']}`  ",
        f"Machine: {report['machine']} (shared with other work while it ran).  ",
        f"Store: {report['racks']:,} racks bulk-loaded with COPY in {report['load_seconds']} s "
        f"({report['database_size']}): " + ", ".join(f"{k} {v:,}" for k, v in report["counts"].items()) + ".",
        "",
        "Latency is what one keep-alive HTTP client sees, request to parsed answer, against a `twin api`",
        "process (uvicorn, one worker); `server` is the API's own `Server-Timing` (request in to answer out,",
        "database included, network and client excluded). Target is the issue's p99 bound in ms (`-`: none).",
        f"The client parses with orjson: the standard library's json takes {report['parse']['json_ms']} ms on the "
        "largest answer",
        f"({report['parse']['bytes']:,} bytes, whole-fleet headroom), orjson {report['parse']['orjson_ms']} ms "
        "(medians); a client parsing with json adds the difference.",
        f"Load average (1, 5, 15 min) on the 2 cores: {tuple(round(x, 1) for x in report['load_average_before'])}"
        f" before timing, {tuple(round(x, 1) for x in report['load_average_after'])} after.",
        "",
        "| endpoint | path | requests | bytes | p50 ms | p99 ms | server p50 | server p99 | target p99 | met |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for e in report["endpoints"]:
        met = "-" if e["target_p99_ms"] == "-" else ("yes" if e["p99_ms"] < float(e["target_p99_ms"]) else "**no**")
        lines.append(f"| {e['endpoint']} | `{e['path']}` | {e['n']} | {e['bytes']:,} | {e['p50_ms']} | {e['p99_ms']} "
                     f"| {e['server_p50_ms']} | {e['server_p99_ms']} | {e['target_p99_ms']} | {met} |")
    ing = report["ingest"]
    lines += [
        "",
        "## Ingest, POST /v1/events",
        "",
        f"- lifecycle: {ing['lifecycle_events']:,} `rack.manufactured` events in batches of {ing['batch']}: "
        f"**{ing['lifecycle_events_per_s']:,} events/s** (validated, published, acknowledged by the broker).",
        f"- telemetry: {ing['reports']:,} reports of 50 readings, {ing['reports_per_batch']} reports per POST: "
        f"**{ing['readings_per_s']:,} readings/s**.",
        "",
        "## What the speed rests on",
        "",
        "A scan of the current state at 100,000 racks reads every rack's folded twin (about 1.7 kB compressed, kept",
        "in the row of `rack_lifecycle`): hundreds of MB and 300-400 ms here. So no hot answer scans it:",
        "",
        "- an answer cache in the API (twin/api/answer_cache.py) for the fleet summary and headroom (default",
        "  window): the serialised answer is kept under the question (route, the token's owner scope,",
        "  parameters) and what it read: the summary tables' rebuild time (its `summarised_at`) and a places",
        "  version that triggers bump in the same transaction as any change to facilities, halls or rows",
        "  (migration 0060). A request reads both (one indexed row each) and, while they stand, answers from",
        "  memory with its own freshness spliced in: the whole fleet's headroom (4,500 rows) took ~45 ms to",
        "  build at 100,000 racks, a lookup a few. After each rebuild the upkeep thread answers again the",
        "  questions asked in the last 10 minutes, so the first request after a rebuild is a lookup too.",
        f"  The rebuild itself runs in PostgreSQL ({report['fleet_cube_rebuild_seconds']} s of one core here, every",
        "  30 s), not under the API's interpreter lock: the upkeep thread waits on its socket meanwhile.",
        "  `Server-Timing` is a plain ASGI middleware (Starlette's `BaseHTTPMiddleware` passed every body",
        "  through a stream of its own);",
        "- summary tables (migration 0023), rebuilt from the current state in one scan by `refresh_fleet_cube()`",
        "  (the API every `TWIN_API_SUMMARY_SECONDS`, 30 s; a query finding them older than 120 s rebuilds first;",
        "  answers say `summarised_at`): `fleet_cube` (place x generation x stage x operator; summary by hall or",
        "  row), `facility_cube` (facility x generation x stage x operator x judging revision x quarter entered;",
        "  the other summaries, scorecard counts, rollout, conformance), `row_allocation` (headroom),",
        "  `place_draw_p95` (headroom's p95 over the default 15 minutes);",
        "- `stage_durations` with `lead_to_service`, `stage_lead_times`, `service_record` (0023), rebuilt from",
        "  the event store by `refresh_stage_durations()` every 30 minutes (they move by days): lead times,",
        "  rack-years, RMA and failure rates;",
        "- lists filtered by an open deviation (rule, stalled, firmware drift) are driven from the deviations",
        "  index (a few hundred racks) instead of walking every rack in id order;",
        "- `row_power_minutes` (0021): per-row per-minute draw rolled up from telemetry by the API in the",
        "  background; a window's p95 reads these, never raw readings;",
        "- generated columns (0022) with indexes: `rack_lifecycle.onshore_share` (from the twin's parts) and",
        "  `destination_facility_id`, recomputed only when the lifecycle path rewrites the twin;",
        "  `rack_telemetry.health_overall`, whose index changes only when the health word does (updates stay HOT);",
        "- indexes (0020): `deviations_check` (stalled, firmware drift, deviation rule), `rack_lifecycle_place`,",
        "  `events_type_stream`, `consumer_offsets_updated`; rack lists walk the primary key in id order",
        "  (cursor = last id), and totals are counted through indexes where the filters allow.",
        "",
        "The load is static while timed: the visibility map is all-visible, so counts use index-only scans.",
        "Under a live telemetry load (every rack's row rewritten each second) counts by stage or generation",
        "visit the heap and cost more; the summary tables do not.",
    ]
    path.write_text("\n".join(lines) + "\n")
    print(f"report written to {path}")


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_up(base: str, proc: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"twin api exited: {log.read_text()[-2000:]}")
        try:
            if httpx.get(f"{base}/openapi.json", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    raise SystemExit("twin api did not come up in 60 s")


if __name__ == "__main__":
    main()
