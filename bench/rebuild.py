"""Rebuild speed: every rack twin folded again from the event store, in events per second.

    python -m bench.rebuild [--racks 20000] [--workers 1,2] [--out bench/reports/rebuild.json]

One embedded stack (Tansu + PostgreSQL 18, in a temporary directory). The fleet's lifecycle is
seeded in bulk (`bench.seed`: histories COPY-ed into the event store, lifecycle state projected
with the store's own methods). Then `twin.store.rebuild.rebuild` runs in compare mode: each run
must find the rebuilt twin of every rack equal to the live one, or the bench fails. Variants:

  validate   the way before issue 13: events row by row, stdlib json, every stored body through
             `model_validate`, one process (the first baseline);
  construct  (in `baselines`, beside `variants`) the way of session 5: one row a rack with its bodies as one JSON array (`json_agg`),
             orjson, every stored event constructed as its contract model, all live twins loaded
             first, one process (the second baseline);
  wN         the shipped path in N processes: installations and firmware updates as compact
             records folded as light `RecordedInstall`/`RecordedFlash` (runs of installations
             packed at once), the next batch read while this one folds.

Both baselines run today's `fold_history`, so their ratio to wN understates the whole gain.

Rates are events folded and compared per second of wall time, stream read included; beside them,
events per CPU-second of the Python side (this process and its rebuild processes; PostgreSQL's
backends not counted), which is what a loaded shared machine distorts least.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path
from collections.abc import Iterator
from typing import Any

import orjson
import psycopg

from bench.ingest import console
from bench.seed import bench_database, seed_fleet
from schemas import LIFECYCLE_TYPES
from twin.domain.rack import RackTwin
from twin.embedded.stack import EmbeddedStack
from twin.store import rebuild as rebuild_module
from twin.store.stored import stored_event

__all__ = ["run"]


def _rack_streams_before(conn: psycopg.Connection[Any], batch: int = 5_000, *, first: str | None = None,
                         after: str | None = None) -> Iterator[tuple[str, list[Any]]]:
    """`twin.store.rebuild.rack_streams` as it was before issue 13 (commit 5ed6df1): row by row, stdlib
    json, every body validated. Ranges are ignored: the baseline runs in one process."""
    with conn.cursor(name="rebuild") as cur:
        cur.itersize = batch
        cur.execute("SELECT stream_id, type, body FROM events WHERE stream_id NOT LIKE '%%:%%' AND stream_id <> 'rollout'"
                    " ORDER BY stream_id, stream_version")
        current: str | None = None
        events: list[Any] = []
        for stream_id, kind, body in cur:
            if stream_id != current:
                if current is not None:
                    yield current, events
                current, events = stream_id, []
            events.append(LIFECYCLE_TYPES[kind].model_validate(body))
        if current is not None:
            yield current, events


def _rack_streams_construct(conn: psycopg.Connection[Any], batch: int = 200, *, first: str | None = None,
                            after: str | None = None) -> Iterator[tuple[str, list[Any]]]:
    """`twin.store.rebuild.rack_streams` as session 5 shipped it (commit 1a92faf): one row a rack
    (`json_agg` of its bodies), orjson, every body constructed as its contract model."""
    bound, params = rebuild_module._bounds("stream_id", first, after)
    with conn.cursor(name="rebuild") as cur:
        cur.itersize = batch
        cur.execute(f"SELECT stream_id, json_agg(body ORDER BY stream_version)::text FROM events"
                    f" WHERE {rebuild_module._RACK_STREAMS}{bound} GROUP BY stream_id ORDER BY stream_id", params)
        for stream_id, bodies in cur:
            yield stream_id, [stored_event(body["type"], body) for body in orjson.loads(bodies)]


def _rebuild_range_before(streams: Any, json: bool) -> Any:
    """`twin.store.rebuild._rebuild_range` as session 5 shipped it (commit 1a92faf), reading racks with
    `streams`: every live twin loaded first, then each rack folded and compared (compare mode only)."""
    def run(database_url: str, write: bool, first: str | None, after: str | None,
            progress: Any = None, total: int = 0) -> rebuild_module.RebuildResult:
        from twin.store.views import connect, intent_catalog

        assert not write, "the baselines compare only"
        result = rebuild_module.RebuildResult()
        with psycopg.connect(database_url) as conn, connect(database_url) as live:
            if json:
                rebuild_module.fast_json(live)
            catalog = intent_catalog(live)
            stored = {r["rack_id"]: r["twin"] for r in live.execute("SELECT rack_id, twin FROM rack_state")}
            for rack_id, events in streams(conn, first=first, after=after):
                rebuilt = RackTwin.replay(rack_id, events, catalog).snapshot()  # type: ignore[arg-type]
                result.racks += 1
                result.events += len(events)
                if rack_id not in stored:
                    result.missing.append(rack_id)
                elif stored[rack_id] != rebuilt:
                    result.mismatched.append(rack_id)
        return result
    return run


BASELINES = {"validate": _rebuild_range_before(_rack_streams_before, json=False),
             "construct": _rebuild_range_before(_rack_streams_construct, json=True)}
"""The earlier paths, each run in this process (one process) by swapping `_rebuild_range`."""


def _baseline_path(name: str) -> Any:
    """Put an earlier rebuild path (`BASELINES`) in place; return an undo."""
    saved = rebuild_module._rebuild_range
    rebuild_module._rebuild_range = BASELINES[name]  # type: ignore[assignment]

    def undo() -> None:
        rebuild_module._rebuild_range = saved  # type: ignore[assignment]
    return undo


def _validate_path() -> Any:
    """Put the pre-issue-13 path back (`_rack_streams_before`); return an undo."""
    return _baseline_path("validate")


def _cpu() -> float:
    """CPU seconds of this process and its finished children (the rebuild's worker processes)."""
    me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


def _timed(url: str, workers: int) -> dict[str, Any]:
    cpu = _cpu()
    result = rebuild_module.rebuild(url, workers=workers)
    cpu = _cpu() - cpu
    if not result.equal:
        raise SystemExit(f"rebuild disagrees with the live state: {len(result.mismatched)} mismatched "
                         f"(e.g. {result.mismatched[:3]}), {len(result.missing)} missing")
    return {"events": result.events, "racks": result.racks, "seconds": result.seconds,
            "per_second": result.events / result.seconds, "python_cpu_seconds": cpu,
            "per_cpu_second": result.events / cpu if cpu > 0 else 0.0}


def run(stack: EmbeddedStack, racks: int, workers: list[int], *, baseline: bool = True) -> dict[str, Any]:
    """Seed `racks` racks and time the rebuild variants; every variant must equal the live state."""
    url = bench_database(stack, "bench_rebuild")
    seeded = seed_fleet(url, racks)
    console.log(f"seeded {seeded.racks:,} racks, {seeded.events:,} events in {seeded.seconds:.1f} s")
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("VACUUM ANALYZE events")
        conn.execute("SELECT count(*) FROM events").fetchone()  # warm the cache for every variant alike
    out: dict[str, Any] = {"racks": racks, "events": seeded.events, "seed_seconds": seeded.seconds, "variants": {}}
    if baseline:
        out["baselines"] = {}
        for name in BASELINES:
            undo = _baseline_path(name)
            try:
                v = _timed(url, 1)
            finally:
                undo()
            # `variants` keeps the keys the report reads (validate, wN); session 5's path goes beside them
            (out["variants"] if name == "validate" else out["baselines"])[name] = v
            console.log(f"  {name}, 1 process: {v['per_second']:,.0f} events/s, {v['per_cpu_second']:,.0f} per CPU-s")
    for n in workers:
        out["variants"][f"w{n}"] = v = _timed(url, n)
        console.log(f"  shipped, {n} process(es): {v['per_second']:,.0f} events/s, "
                    f"{v['per_cpu_second']:,.0f} per CPU-s")
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--racks", type=int, default=20_000, help="racks seeded (about 70 events each)")
    parser.add_argument("--workers", default="1,2", help="comma-separated process counts to time")
    parser.add_argument("--no-baseline", action="store_true", help="skip the two baselines (validate, construct)")
    parser.add_argument("--out", type=Path, default=Path("bench/reports/rebuild.json"))
    args = parser.parse_args()
    workers = [int(w) for w in args.workers.split(",") if w]
    tmp = Path(tempfile.mkdtemp(prefix="bench-rebuild-"))
    load = os.getloadavg()
    try:
        with EmbeddedStack(tmp / "stack") as stack:
            result = run(stack, args.racks, workers, baseline=not args.no_baseline)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)  # a 20,000-rack store is 2.3 GB
    result["command"] = "python -m bench.rebuild " + " ".join(sys.argv[1:])
    result["loadavg_before"] = load
    result["loadavg_after"] = os.getloadavg()
    result["machine"] = {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform()}
    result["at"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    console.log(f"wrote {args.out}")


if __name__ == "__main__":
    main()
