"""Steady state at fleet size: N racks each reporting once a second, in the fleet's shape, to one worker.

    python -m bench.steady [--sizes 20000,50000,75000,100000] [--seconds 60] [--warmup 10] [--quick] [--profile DIR]

Per N, on one embedded stack (Tansu + PostgreSQL 18):

1. the fleet's lifecycle is seeded in bulk (`bench.seed`: histories COPY-ed into the event store,
   state projected with the store's own methods), not through a worker (70 events a rack);
2. one `python -m streams worker` starts on its own topics and database;
3. the fleet-shaped telemetry (one report per hall collector per second, up to 50 readings, the
   simulator's `collector` shape) is published at N readings/s, `occurred_at` = send time, for
   `--warmup` seconds and then `--seconds` measured (`bench.ingest.run_latency`, the same pacing
   and reading-to-visible measure as the ingest bench's latency figure);
4. recorded: offered rate, p50/p99/max reading-to-visible (as a reader of `rack_state` sees it:
   the `telemetry_at` of up to 2,000 racks spread over every collector, looked up by key every
   50 ms; scanning every rack's state each poll slowed what it measured), CPU of the worker and of PostgreSQL (share of one core over the window),
   the worker's resident memory, and its lag: messages published but not yet committed when the
   window ends. One worker keeps up when that lag does not grow over the window and every reading
   of the window became visible.

Workers needed for the fleet = ceil(worker CPU share at N / (1 core)), from the largest N measured.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import psutil
import psycopg

from bench import ingest
from bench.ingest import console, make_load, run_latency, start_worker, stop_worker, tracked, worker_topics
from bench.seed import bench_database, seed_fleet
from twin.embedded.stack import EmbeddedStack
from twin.topics import ensure_topics

__all__ = ["run_size"]


def _published(bootstrap: str, topic: str) -> int:
    """Messages on `topic` (the sum of its partitions' end offsets): what the pacer really sent."""
    from aiokafka import AIOKafkaConsumer
    from aiokafka.structs import TopicPartition

    async def ends() -> int:
        consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap)
        await consumer.start()
        try:
            parts = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or ()]
            if not parts:
                await consumer.topics()  # fetch metadata once
                parts = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or ()]
            return sum((await consumer.end_offsets(parts)).values())
        finally:
            await consumer.stop()
    return asyncio.run(ends())


def _committed(url: str, group: str, topic: str) -> int:
    with psycopg.connect(url, autocommit=True) as conn:
        return sum(o + 1 for o in tracked(conn, group, topic).values())


def run_size(stack: EmbeddedStack, racks: int, seconds: float, warmup: float, workdir: Path) -> dict[str, Any]:
    """Seed `racks` racks, run one worker under their 1 Hz fleet-shaped load, and measure it."""
    name = f"steady{racks}"
    load = make_load(racks, racks * 3, report_shape="collector")  # the reports' templates; ids as seeded below
    url = bench_database(stack, f"bench_{name}")
    seeded = seed_fleet(url, racks)
    console.log(f"N={racks:,}: seeded {seeded.events:,} events in {seeded.seconds:.0f} s; "
                f"{load.powered:,} racks powered and reporting")
    topics = worker_topics(name)
    ensure_topics(stack.kafka_bootstrap, topics.partition_counts())
    child, port, log_path = start_worker(name, stack.kafka_bootstrap, url, topics, workdir, ingest.shipped_fetch_wait())
    try:
        time.sleep(5)  # join the group before the load starts
        ingest.LATENCY_WARMUP_S, ingest.LATENCY_SECONDS = warmup, seconds
        per_cycle = sum(1 for _ in load.templates[0])
        lat = run_latency(stack.kafka_bootstrap, url, topics.telemetry, port, load, float(load.powered), child,
                          log_path, stack.pids["postgres"])
        rss = psutil.Process(child.pid).memory_info().rss
        sent_messages = _published(stack.kafka_bootstrap, topics.telemetry)
        committed = _committed(url, f"bench-{name}", topics.telemetry)
    finally:
        stop_worker(child)
    visible = math.isfinite(lat.max)
    return {"racks": racks, "powered": load.powered, "reports_per_second": per_cycle,
            "offered_readings_per_second": lat.rate, "p50_s": lat.p50, "p99_s": lat.p99, "max_s": lat.max,
            "worker_cpu": lat.worker_cpu, "postgres_cpu": lat.postgres_cpu, "bench_cpu": lat.bench_cpu,
            "worker_rss_mb": rss / 2**20, "lag_messages_after_grace": max(0, sent_messages - committed),
            "offered_share": lat.rate / load.powered,  # < 1: the load generator could not keep the 1 Hz pace
            "all_visible": visible, "keeps_up": visible and lat.p99 < 1.0,
            "seed_seconds": seeded.seconds, "seed_events": seeded.events, "warmup_s": warmup, "seconds": seconds}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="20000,50000,75000,100000", help="comma-separated fleet sizes")
    parser.add_argument("--seconds", type=float, default=60.0, help="measured window per size")
    parser.add_argument("--warmup", type=float, default=10.0, help="load before the window")
    parser.add_argument("--quick", action="store_true", help="2,000 racks, 15 s measured (a smoke run)")
    parser.add_argument("--out", type=Path, default=Path("bench/reports/steady.json"))
    parser.add_argument("--profile", type=Path, help="py-spy record each size's worker into this directory "
                        "(worker-steady<N>.txt; summarise with `python -m bench.hotpath`)")
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory (the stack's data "
                        "and the worker logs; about 18 GB after the default sizes)")
    args = parser.parse_args()
    if args.profile:
        ingest.PROFILE_DIR = args.profile.absolute()
        ingest.PROFILE_DIR.mkdir(parents=True, exist_ok=True)
    sizes = [2_000] if args.quick else [int(s) for s in args.sizes.split(",") if s]
    seconds, warmup = (15.0, 5.0) if args.quick else (args.seconds, args.warmup)
    tmp = Path(tempfile.mkdtemp(prefix="bench-steady-"))
    results: dict[str, Any] = {"command": "python -m bench.steady " + " ".join(sys.argv[1:]),
                               "loadavg_before": os.getloadavg(), "sizes": []}
    try:
        with EmbeddedStack(tmp / "stack") as stack:
            for n in sizes:
                r = run_size(stack, n, seconds, warmup, tmp)
                results["sizes"].append(r)
                console.log(f"N={n:,}: p50 {r['p50_s']*1000:.0f} ms, p99 {r['p99_s']*1000:.0f} ms, worker "
                            f"{r['worker_cpu']:.0%} of a core, PostgreSQL {r['postgres_cpu']:.0%}, "
                            f"{r['worker_rss_mb']:.0f} MB, keeps up: {r['keeps_up']}")
    finally:
        if args.keep:
            console.log(f"kept {tmp}")
        else:  # the default sizes leave about 18 GB of databases behind
            shutil.rmtree(tmp, ignore_errors=True)
    results["loadavg_after"] = os.getloadavg()
    if results["sizes"]:
        largest = results["sizes"][-1]
        results["workers_needed_for_largest"] = max(1, math.ceil(largest["worker_cpu"]))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2, default=str) + "\n")
    console.log(f"wrote {args.out}")


if __name__ == "__main__":
    main()
