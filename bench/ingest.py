"""Ingest, broker to database, side by side in one run: the bare limit, a plain Faust agent, our worker.

    python bench/ingest.py [--readings 200000] [--racks 1000] [--out bench/reports/ingest.md]

One embedded stack (Tansu + PostgreSQL 18, in a temporary directory) serves every variant.
The telemetry load is made once, by the simulator (`--report-shape collector`, the default: one
report per hall collector per poll cycle, up to 50 readings, as docs/architecture.md ("Telemetry travels as reports") plans; `row`: one report
per row, about 7 readings, the shape of earlier runs; one reading per powered rack per cycle), then published to each variant's own topics before anything is
measured, so no variant competes with a publisher:

  (a) bare limit: aiokafka `getmany` + orjson + one `COPY` per batch into the telemetry table;
      no validation, no twin, no offsets in the database;
  (b) plain Faust agent: `async for value in stream`, `json.loads`, one autocommitted INSERT
      per reading (the code a user writes first); run for a fixed time, not the whole load;
  (c) our worker, a real `python -m streams worker` process, its own database and topics;
      the racks' lifecycle is loaded beforehand (the worker refuses readings of racks it does
      not know), once, into a template database that each worker variant gets a copy of;
  (c') the same worker fed the same readings as single-rack reports (one reading a message),
      so that the per-message cost of the stream machinery shows;
  --workers 1,2: (c) as 1 and as 2 worker processes in one consumer group on the same topic (the
      group splits the partitions), each count in `--worker-rounds` interleaved rounds, with the CPU
      of every process (workers, PostgreSQL, broker, this one) and of the whole machine. The group
      forms on the empty topic first (published beforehand, the first worker to join would take the
      load alone), then the workers are paused while the load is published and resumed to consume it
      as a backlog, as (c) does. `--only a --workers 1,2` runs that and the bare limit alone and writes
      bench/reports/ingest-workers.md (and .json).

Rates count readings committed after the first commit, over the time from the first commit to
the last (start-up, group join and first batch excluded, the same rule for every variant). For
the worker, progress is read from what it commits: its tracked offsets in `consumer_offsets`,
mapped back to readings through the offsets the broker gave each published message.

Then, on the (c) worker, a steady paced load (`--rate` readings/s, occurred_at = send time)
measures reading-to-visible latency, and the telemetry partitions of (c) give bytes per
rack-day, projected to the fleet. The report (markdown, plus JSON beside it) states the machine
and the command. `--baseline OLD.json` adds the figures of an earlier run for comparison.

Every worker runs with its Kafka fetch wait as shipped: the default of the setting
`TWIN_FETCH_MAX_WAIT_MS` (twin.settings), passed to it explicitly, so a value in this shell's
environment does not leak in. `--what-if-fetch-wait MS` runs (c) and the latency load once more on a
worker started with `TWIN_FETCH_MAX_WAIT_MS=MS`, e.g. 1500, Faust's own value, to show what it costs
(Tansu does not answer a fetch as soon as records arrive), and times a plain aiokafka consumer's
send-to-delivery delay on a light steady stream at both waits. `--only a,c` runs a subset (no
report); `--profile DIR` records each worker with py-spy (collapsed stacks, the steady window on its
own as `worker-latency.txt`).
"""

from __future__ import annotations

import argparse
import asyncio
import bisect
import json
import os
import platform
import random
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
import uuid
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import orjson
import psutil
import psycopg
from aiokafka import AIOKafkaProducer
from psycopg import sql
from rich.console import Console
from rich.table import Table

from twin.domain.intent import IntentCatalog
from twin.store.migrations import migrate
from twin.settings import Settings, Topics
from twin.embedded.simulator import FaultPlan, FleetSimulator, ReportShape
from twin.embedded.stack import EmbeddedStack, _dies_with_parent, spawn_child, stop_children
from twin.store import READING_COLUMNS
from twin.topics import ensure_topics

console = Console(log_path=False)

POLL_INTERVAL_S = 1.0            # the simulator's poll cycle: a rack reports once a second
PLAIN_AGENT_SECONDS = 25.0       # how long (b) is measured
WORKER_TIMEOUT_S = 90.0          # give up on a worker variant after this long (report what it did)
LATENCY_WARMUP_S = 5.0
LATENCY_SECONDS = 25.0
LATENCY_SAMPLE_RACKS = 2000
"""Racks whose readings the latency measure watches (all of them in a smaller fleet)."""
LATENCY_POLL_S = 0.05
LATENCY_GRACE_S = 15.0           # how long after the window the poller keeps looking for its readings
FLEET_RACKS = 75_000
SEED_IN_BULK = True              # the racks' lifecycle seeded by bench.seed; --seed-via-worker: through a worker
PARTITIONS = 4
COLUMNS = ("rack_id", "occurred_at", "source", *READING_COLUMNS)
VARIANTS = ("a", "b", "c", "latency", "c1")
FAUST_FETCH_MAX_WAIT_MS = 1500   # what Faust gives its aiokafka consumer, with no setting
FETCH_PROBE_RATE = 200           # --what-if-fetch-wait: messages/s of the fetch-wait probe, per wait
FETCH_PROBE_SECONDS = 5.0
PROFILE_DIR: Path | None = None


def _py_spy() -> str:
    """py-spy from PATH, else beside this interpreter (the venv's bin, not on PATH when run as .venv/bin/python)."""
    import shutil

    return shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
_SPIES: dict[int, subprocess.Popen[bytes]] = {}


# --- the load -----------------------------------------------------------------------------------


@dataclass(slots=True)
class Load:
    """The telemetry load, made once: (key, value, readings in it) per message."""

    reports: list[tuple[bytes, bytes, int]]
    singles: list[tuple[bytes, bytes, int]]
    lifecycle: list[tuple[str, bytes, bytes]]           # (role, key, value): intent then lifecycle
    readings: int
    racks: int
    powered: int
    rows: int
    cycles: int
    first: datetime
    templates: list[list[tuple[bytes, dict[str, Any]]]]  # recent cycles as (key, report dict), for pacing


def make_load(racks: int, readings: int, seed: int = 7, report_shape: ReportShape = "collector",
              with_singles: bool = True) -> Load:
    """The load; `with_singles=False` leaves out the one-reading-a-message copy (only (c') reads it)."""
    catalog = IntentCatalog.default()
    intents = {g: catalog.latest(g) for g in catalog.generations()}
    sim0 = FleetSimulator(seed, racks, datetime.now(timezone.utc), intents, faults=FaultPlan.typical(),
                          report_shape=report_shape)
    cycles = -(-readings // len(sim0.powered_racks))
    # The load ends a little before now, as a collector's backlog would.
    start = datetime.now(timezone.utc).replace(microsecond=0) - timedelta(seconds=cycles * POLL_INTERVAL_S + 60)
    sim = FleetSimulator(seed, racks, start, intents, faults=FaultPlan.typical(), report_shape=report_shape)
    lifecycle = [(m.role, m.key, m.value) for m in (*sim.reference_messages(), *sim.history_messages())]
    reports: list[tuple[bytes, bytes, int]] = []
    singles: list[tuple[bytes, bytes, int]] = []
    templates: list[list[tuple[bytes, dict[str, Any]]]] = []
    single_seq = 0
    for i, (_, cycle) in enumerate(sim.cycles(POLL_INTERVAL_S, count=cycles)):
        parsed = []
        for m in cycle:
            body = orjson.loads(m.value)
            reports.append((m.key, m.value, len(body["readings"])))
            for reading in body["readings"] if with_singles else ():
                single_seq += 1
                one = {**body, "event_id": str(uuid.UUID(int=single_seq)), "seq": single_seq,
                       "source": body["source"], "rack_id": reading["rack_id"], "readings": [reading]}
                singles.append((m.key, orjson.dumps(one), 1))
            if i >= cycles - 50:
                parsed.append((m.key, body))
        if parsed:
            templates.append(parsed)
    return Load(reports, singles, lifecycle, sum(n for _, _, n in reports), racks, len(sim.powered_racks),
                len(sim._rows), cycles, start, templates)


@dataclass(slots=True)
class Published:
    """Where the broker put each message: per partition, readings up to and including each offset."""

    topic: str
    messages: int
    readings: int
    cumulative: dict[int, list[int]] = field(default_factory=dict)

    def readings_upto(self, offsets: dict[int, int]) -> int:
        """Readings in the messages up to these (partition -> highest applied offset)."""
        return sum(self.cumulative[p][o] for p, o in offsets.items() if p in self.cumulative and o >= 0)


def producer(bootstrap: str) -> AIOKafkaProducer:
    """As twin.publisher.Publisher (every replica acknowledges, small linger, no compression), but aiokafka:
    its record batches are built and checksummed in C, where kafka-python's CRC32C is pure Python
    (8 MB/s here: the load generator alone would take a core at 20,000 readings/s)."""
    return AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5, max_batch_size=256 * 1024,
                            compression_type=None, max_request_size=8 * 1024 * 1024)


async def _publish(bootstrap: str, topic: str, messages: list[tuple[bytes, bytes, int]]) -> list[tuple[int, int, int]]:
    prod = producer(bootstrap)
    await prod.start()
    try:
        futures = [await prod.send(topic, value=v, key=k) for k, v, _ in messages]
        await prod.flush()
        metas = [await f for f in futures]
    finally:
        await prod.stop()
    return [(m.partition, m.offset, n) for m, (_, _, n) in zip(metas, messages)]


def publish(bootstrap: str, topic: str, messages: list[tuple[bytes, bytes, int]]) -> Published:
    per: dict[int, list[tuple[int, int]]] = {}
    for partition, offset, n in asyncio.run(_publish(bootstrap, topic, messages)):
        per.setdefault(partition, []).append((offset, n))
    out = Published(topic, len(messages), sum(n for _, _, n in messages))
    for p, items in per.items():
        items.sort()
        cum, total = [0] * (items[-1][0] + 1), 0
        last = 0
        for offset, n in items:
            for o in range(last, offset):
                cum[o] = total
            total += n
            cum[offset] = total
            last = offset + 1
        out.cumulative[p] = cum
    return out


# --- databases ------------------------------------------------------------------------------------


def database(stack: EmbeddedStack, name: str, *, template: str | None = None) -> str:
    with psycopg.connect(stack.database_url, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
        if template:
            for attempt in range(100):  # a stopped worker's sessions take a moment to end
                try:
                    conn.execute(sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(sql.Identifier(name),
                                                                                sql.Identifier(template)))
                    break
                except psycopg.errors.ObjectInUse:
                    if attempt == 99:
                        raise
                    time.sleep(0.1)
        else:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    url = stack.database_url.rsplit("/", 1)[0] + f"/{name}"
    if not template:
        migrate(url)
    return url


def ensure_days(url: str, first: datetime, seconds: float) -> None:
    day, last = first.date(), (first + timedelta(seconds=seconds + 3600)).date()
    with psycopg.connect(url, autocommit=True) as conn:
        while day <= last:
            conn.execute("SELECT ensure_telemetry_partition(%s)", (day,))
            day += timedelta(days=1)


def scalar(url: str, query: str, params: Any = None) -> Any:
    with psycopg.connect(url, autocommit=True) as conn:
        row = conn.execute(query, params).fetchone()
        return row[0] if row else None


@dataclass(slots=True)
class Rate:
    """Readings committed after the first commit, over the time from the first commit to the last."""

    variant: str
    readings: int          # committed in total
    measured: int          # committed after the first commit
    seconds: float
    finished: bool
    messages: int = 0
    batches: int = 0             # worker: telemetry batches handled (sweeps included)
    handling: float = 0.0        # worker: seconds spent in TelemetryPipeline.handle, start-up included

    @property
    def per_second(self) -> float:
        return self.measured / self.seconds if self.seconds > 0 else 0.0


# --- (a) the bare limit ---------------------------------------------------------------------------


def _copy_line(r: dict[str, Any], source: str) -> str:
    return "\t".join((r["rack_id"], r["occurred_at"], source, str(r["power_watts"]),
                      str(r["inlet_temperature_celsius"]), str(r["outlet_temperature_celsius"]),
                      str(r["coolant_supply_temperature_celsius"]), str(r["coolant_return_temperature_celsius"]),
                      str(r["coolant_flow_liters_per_minute"]), str(r["coolant_differential_pressure_kilopascals"]),
                      "t" if r["leak_detected"] else "f", str(r["hottest_accelerator_temperature_celsius"]),
                      str(r["fan_speed_percent"]), str(r["network_links_up"]), str(r["network_links_down"])))


async def _bare(bootstrap: str, topic: str, url: str, total: int) -> Rate:
    from aiokafka import AIOKafkaConsumer, TopicPartition

    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False,
                                auto_offset_reset="earliest", max_partition_fetch_bytes=4 * 1024 * 1024,
                                fetch_max_bytes=64 * 1024 * 1024)
    await consumer.start()
    conn = await psycopg.AsyncConnection.connect(url)
    try:
        consumer.assign([TopicPartition(topic, p) for p in range(PARTITIONS)])
        done, first_at, first_n, last_at = 0, 0.0, 0, 0.0
        statement = f"COPY telemetry ({', '.join(COLUMNS)}) FROM STDIN"
        deadline = time.monotonic() + WORKER_TIMEOUT_S
        while done < total and time.monotonic() < deadline:
            batches = await consumer.getmany(timeout_ms=500)
            lines: list[str] = []
            for records in batches.values():
                for record in records:
                    report = orjson.loads(record.value)
                    source = report["source"]
                    lines.extend(_copy_line(r, source) for r in report["readings"])
            if not lines:
                continue
            async with conn.cursor() as cur:
                async with cur.copy(statement) as copy:
                    await copy.write("\n".join(lines) + "\n")
            await conn.commit()
            done += len(lines)
            last_at = time.perf_counter()
            if not first_at:
                first_at, first_n = last_at, done
        return Rate("a", done, done - first_n, last_at - first_at, done >= total)
    finally:
        await conn.close()
        await consumer.stop()


def run_bare(bootstrap: str, pub: Published, url: str) -> Rate:
    rate = asyncio.run(_bare(bootstrap, pub.topic, url, pub.readings))
    rate.messages = pub.messages
    stored = scalar(url, "SELECT count(*) FROM telemetry")
    assert stored == rate.readings, f"bare: {stored} rows stored, {rate.readings} copied"
    return rate


# --- (b) a plain Faust agent ----------------------------------------------------------------------


def plain_agent_main() -> None:
    """The agent a user writes first (run as a child: `ingest.py --plain-agent`, settings in env)."""
    import json as std_json

    import faust

    env = os.environ
    app = faust.App(
        "bench-plain-agent", broker=f"kafka://{env['BENCH_KAFKA']}", value_serializer="raw", store="memory://",
        topic_allow_declare=False, topic_disable_leader=True, consumer_auto_offset_reset="earliest",
        # Only so the group joins within seconds on Tansu (docs/architecture.md, "Known quirks"); not a rate knob.
        broker_session_timeout=6, broker_heartbeat_interval=1, broker_rebalance_timeout=6, broker_max_poll_interval=10,
        web_enabled=False,
    )
    topic = app.topic(env["BENCH_TOPIC"], value_type=bytes, key_type=bytes, partitions=PARTITIONS)
    insert = (f"INSERT INTO telemetry ({', '.join(COLUMNS)}) VALUES ({', '.join(['%s'] * len(COLUMNS))})"
              " ON CONFLICT DO NOTHING")

    @app.agent(topic)
    async def store(stream: Any) -> None:
        conn = await psycopg.AsyncConnection.connect(env["BENCH_DATABASE_URL"], autocommit=True)
        async for value in stream:
            report = std_json.loads(value)
            for r in report["readings"]:
                await conn.execute(insert, (r["rack_id"], r["occurred_at"], report["source"],
                                            *(r[c] for c in READING_COLUMNS)))

    faust.Worker(app, loglevel="warning", quiet=True).execute_from_commandline()


def run_plain_agent(bootstrap: str, pub: Published, url: str, workdir: Path) -> Rate:
    env = {**os.environ, "BENCH_KAFKA": bootstrap, "BENCH_TOPIC": pub.topic, "BENCH_DATABASE_URL": url}
    log_path = workdir / "plain-agent.log"
    child = spawn_child([sys.executable, str(Path(__file__).resolve()), "--plain-agent"], env=env, log_path=log_path)
    try:
        with psycopg.connect(url, autocommit=True) as conn:
            count = lambda: conn.execute("SELECT count(*) FROM telemetry").fetchone()[0]  # noqa: E731
            started = time.monotonic()
            n0 = 0
            while n0 == 0:
                _alive(child, log_path, "plain agent")
                if time.monotonic() - started > 90:
                    raise RuntimeError(f"plain agent stored nothing in 90 s\n{_tail(log_path)}")
                time.sleep(0.05)
                n0 = count()
            t0 = time.perf_counter()
            console.log(f"  (b) first reading stored after {time.monotonic() - started:.1f} s; "
                        f"measuring for {PLAIN_AGENT_SECONDS:.0f} s")
            n, t = n0, t0
            while t - t0 < PLAIN_AGENT_SECONDS and n < pub.readings:
                _alive(child, log_path, "plain agent")
                time.sleep(0.5)
                n, t = count(), time.perf_counter()
        return Rate("b", n, n - n0, t - t0, n >= pub.readings, pub.messages)
    finally:
        stop_children({"plain-agent": child})


# --- (c) our worker -------------------------------------------------------------------------------


def worker_topics(name: str) -> Topics:
    return Topics(**{role: f"bench.{name}.{role}" for role in ("telemetry", "lifecycle", "intent", "deadletter",
                                                                "deviations")}, partitions=PARTITIONS)


def start_worker(name: str, bootstrap: str, url: str, topics: Topics, workdir: Path,
                 fetch_wait_ms: int | None, group: str | None = None) -> tuple[subprocess.Popen[bytes], int, Path]:
    """Start `python -m streams worker` in consumer group `group` (default `bench-<name>`)."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = int(s.getsockname()[1])
    env = {
        **{k: v for k, v in os.environ.items() if k != "TWIN_FETCH_MAX_WAIT_MS"},
        "TWIN_KAFKA_BOOTSTRAP": bootstrap, "TWIN_DATABASE_URL": url, "TWIN_WORKER_ID": group or f"bench-{name}",
        "TWIN_TOPIC_TELEMETRY": topics.telemetry, "TWIN_TOPIC_LIFECYCLE": topics.lifecycle,
        "TWIN_TOPIC_INTENT": topics.intent, "TWIN_TOPIC_DEADLETTER": topics.deadletter,
        "TWIN_TOPIC_DEVIATIONS": topics.deviations, "TWIN_TOPIC_PARTITIONS": str(topics.partitions),
        "TWIN_WORKER_WEB_PORT": str(port), "TWIN_LOG_LEVEL": "warning", **fetch_wait_env(fetch_wait_ms),
    }
    cwd = workdir / f"worker-{name}"   # Faust keeps a `<app id>-data` directory in its working directory
    cwd.mkdir(parents=True, exist_ok=True)
    log_path = workdir / f"worker-{name}.log"
    argv = [sys.executable, "-m", "streams", "worker"]
    with log_path.open("wb") as out:  # as twin.embedded.stack.spawn_child, in its own working directory
        child = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, env=env,
                                 cwd=cwd, process_group=0, preexec_fn=_dies_with_parent(os.getpid(), signal.SIGTERM))
    if PROFILE_DIR is not None and name != "base":  # --profile: py-spy samples the worker (collapsed stacks)
        spy = subprocess.Popen([_py_spy(), "record", "--format", "raw", "-r", "250", "--pid", str(child.pid),
                                "-o", str(PROFILE_DIR / f"worker-{name}.txt")],
                               stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
        _SPIES[child.pid] = spy
    return child, port, log_path


def stop_worker(child: subprocess.Popen[bytes]) -> None:
    """Stop a worker (its profiler first, which then writes its samples)."""
    spy = _SPIES.pop(child.pid, None)
    if spy is not None:
        spy.send_signal(signal.SIGINT)
        try:
            spy.wait(timeout=30)
        except subprocess.TimeoutExpired:
            spy.kill()
    stop_children({"worker": child})


def shipped_fetch_wait() -> int | None:
    """The worker's Kafka fetch wait as shipped: the default of `TWIN_FETCH_MAX_WAIT_MS`, not this shell's
    value. None when the code under test has no such setting (an older tree first on PYTHONPATH): its
    worker then waits what Faust fixes, 1500 ms, and cannot be told otherwise."""
    field_ = Settings.model_fields.get("fetch_max_wait_ms")
    return int(field_.default) if field_ is not None else None


def fetch_wait_env(ms: int | None) -> dict[str, str]:
    """Environment for a worker whose Kafka fetches wait at most `ms` (None: the code has no setting)."""
    return {"TWIN_FETCH_MAX_WAIT_MS": str(ms)} if ms is not None else {}


def _alive(child: subprocess.Popen[bytes], log_path: Path, what: str) -> None:
    if child.poll() is not None:
        raise RuntimeError(f"{what} exited with {child.returncode}\n{_tail(log_path)}")


def _tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def tracked(conn: psycopg.Connection[Any], group: str, topic: str) -> dict[int, int]:
    rows = conn.execute('SELECT partition, "offset" FROM consumer_offsets WHERE group_id = %s AND topic = %s',
                        (group, topic)).fetchall()
    return dict(rows)


def seed_lifecycle(stack: EmbeddedStack, load: Load) -> str:
    """The template database, seeded in bulk (`bench.seed`): the same racks and histories as the load's
    simulator (same seed, size and start), COPY-ed into the event store and projected, in seconds
    instead of minutes through a worker (about 70 events a rack)."""
    try:
        from bench.seed import bench_database, seed_fleet
    except ModuleNotFoundError:  # run as `python bench/ingest.py`: the repository root is not on the path
        sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
        from bench.seed import bench_database, seed_fleet
    url = bench_database(stack, "bench_base")
    seeded = seed_fleet(url, load.racks, start=load.first)
    console.log(f"  lifecycle of {load.racks} racks ({seeded.events:,} events) seeded in bulk in {seeded.seconds:.1f} s")
    return "bench_base"


def load_lifecycle(stack: EmbeddedStack, load: Load, workdir: Path, fetch_wait_ms: int | None) -> str:
    """The template database: every rack's reference data and lifecycle history applied by a worker."""
    if SEED_IN_BULK:
        return seed_lifecycle(stack, load)
    topics = worker_topics("base")
    ensure_topics(stack.kafka_bootstrap, topics.partition_counts())
    url = database(stack, "bench_base")
    intent = [(k, v, 0) for role, k, v in load.lifecycle if role == "intent"]
    life = [(k, v, 0) for role, k, v in load.lifecycle if role == "lifecycle"]
    publish(stack.kafka_bootstrap, topics.intent, intent)
    pub = publish(stack.kafka_bootstrap, topics.lifecycle, life)
    child, _, log_path = start_worker("base", stack.kafka_bootstrap, url, topics, workdir, fetch_wait_ms)
    began = time.monotonic()
    try:
        with psycopg.connect(url, autocommit=True) as conn:
            while True:
                _alive(child, log_path, "lifecycle worker")
                applied = sum(o + 1 for o in tracked(conn, "bench-base", topics.lifecycle).values())
                racks = conn.execute("SELECT count(*) FROM rack_state").fetchone()[0]
                if applied >= pub.messages and racks >= load.racks:
                    break
                if time.monotonic() - began > 240:
                    raise RuntimeError(f"lifecycle not loaded in 240 s ({applied}/{pub.messages} events, "
                                       f"{racks} racks)\n{_tail(log_path)}")
                time.sleep(0.25)
    finally:
        stop_worker(child)
    console.log(f"  lifecycle of {load.racks} racks ({pub.messages} events) loaded in "
                f"{time.monotonic() - began:.1f} s (worker start included)")
    return "bench_base"


def run_worker(stack: EmbeddedStack, name: str, load: Load, messages: list[tuple[bytes, bytes, int]],
               template: str, workdir: Path, fetch_wait_ms: int | None, *, keep: bool = False
               ) -> tuple[Rate, str, Topics, tuple[subprocess.Popen[bytes], int, Path] | None, Published]:
    topics = worker_topics(name)
    ensure_topics(stack.kafka_bootstrap, topics.partition_counts())
    url = database(stack, f"bench_{name}", template=template)
    ensure_days(url, load.first, load.cycles * POLL_INTERVAL_S)
    pub = publish(stack.kafka_bootstrap, topics.telemetry, messages)
    console.log(f"  ({name}) {pub.messages} messages, {pub.readings} readings published; starting the worker")
    child, port, log_path = start_worker(name, stack.kafka_bootstrap, url, topics, workdir, fetch_wait_ms)
    group = f"bench-{name}"
    began = time.monotonic()
    rate: Rate | None = None
    try:
        with psycopg.connect(url, autocommit=True) as conn:
            n0 = 0
            while n0 == 0:
                _alive(child, log_path, f"worker {name}")
                if time.monotonic() - began > 90:
                    raise RuntimeError(f"worker {name} committed nothing in 90 s\n{_tail(log_path)}")
                time.sleep(0.02)
                n0 = pub.readings_upto(tracked(conn, group, topics.telemetry))
            t0 = time.perf_counter()
            console.log(f"  ({name}) first readings committed {time.monotonic() - began:.1f} s after the worker "
                        "started; measuring until all are committed")
            n, t = n0, t0
            shown = now = t0
            while n < pub.readings and now - t0 < WORKER_TIMEOUT_S:
                _alive(child, log_path, f"worker {name}")
                time.sleep(0.02)
                now = time.perf_counter()
                latest = pub.readings_upto(tracked(conn, group, topics.telemetry))
                if latest != n:
                    n, t = latest, now
                if now - shown > 5:
                    console.log(f"    {n:,}/{pub.readings:,} readings, {(n - n0) / max(t - t0, 1e-9):,.0f}/s")
                    shown = now
            finished = n >= pub.readings
            rate = Rate(name, n, n - n0, (t if finished else now) - t0, finished, pub.messages)
            if not finished:
                console.log(f"  ({name}) gave up after {WORKER_TIMEOUT_S:.0f} s: {n:,} of {pub.readings:,} committed")
            batches = _series(port, "twin_batch_seconds")
            rate.batches = int(batches.get('twin_batch_seconds_count{topic="telemetry"}', 0))
            rate.handling = batches.get('twin_batch_seconds_sum{topic="telemetry"}', 0.0)
            console.log(f"  ({name}) {rate.batches} batches, {rate.handling:.1f} s in the pipeline "
                        f"in the {time.monotonic() - began:.1f} s since the worker started")
            if rate.finished:
                stored = conn.execute("SELECT count(*) FROM telemetry").fetchone()[0]
                assert stored == pub.readings, f"worker {name}: {stored} rows stored, {pub.readings} published"
    finally:
        if not keep or rate is None:
            stop_worker(child)
    return rate, url, topics, (child, port, log_path) if keep else None, pub


# --- (c) with 1 and 2 workers in one group -------------------------------------------------------


@dataclass(slots=True)
class WorkersRun:
    """Our worker as `workers` processes in one consumer group, the telemetry partitions split between them."""

    workers: int
    round: int
    rate: Rate
    partitions: list[list[int]]      # the telemetry partitions each worker held while measured
    join_seconds: float              # from the first start to a stable group
    publish_seconds: float           # the load's publishing, the workers paused meanwhile
    seconds: float                   # the measured window, first commit to last (rate and CPU alike)
    worker_cpu: list[float]          # share of one core each worker used in that window
    postgres_cpu: float              # PostgreSQL and its backends
    broker_cpu: float                # Tansu
    bench_cpu: float                 # this process (the progress poller) in the window
    machine_cores: float             # cores busy on the whole machine (every process, others' work included)

    @property
    def busy_cores(self) -> float:
        return sum(self.worker_cpu) + self.postgres_cpu + self.broker_cpu + self.bench_cpu


def _assigned(port: int, topic: str) -> set[int] | None:
    """The partitions of `topic` a worker holds (from its `twin_assigned_partitions`), None if it does not answer."""
    try:
        series = _series(port, "twin_assigned_partitions{")
    except OSError:
        return None
    held = set()
    for name, value in series.items():
        labels = dict(part.split("=", 1) for part in name[name.index("{") + 1:-1].split(","))
        if labels.get("topic") == f'"{topic}"' and value == 1:
            held.add(int(labels["partition"].strip('"')))
    return held


def wait_for_group(workers: list[tuple[subprocess.Popen[bytes], int, Path]], topic: str,
                   timeout: float = 120.0, steady_for: float = 2.0) -> list[list[int]]:
    """Wait until the workers split `topic`'s partitions between them (each holds some, none twice, all held)
    and keep that split for `steady_for` seconds: a rebalance in the measured window would be timed too."""
    began = time.monotonic()
    stable_since, last = None, None
    while True:
        for child, _, log_path in workers:
            _alive(child, log_path, "worker")
        held = [_assigned(port, topic) for _, port, _ in workers]
        split = None
        if all(h for h in held):
            parts = [sorted(h) for h in held if h is not None]
            flat = [p for h in parts for p in h]
            if len(flat) == len(set(flat)) == PARTITIONS:
                split = parts
        if split is not None and split == last:
            if time.monotonic() - (stable_since or 0) >= steady_for:
                return split
        else:
            stable_since = time.monotonic() if split is not None else None
        last = split
        if time.monotonic() - began > timeout:
            raise RuntimeError(f"{len(workers)} workers did not settle into one group splitting {topic} in "
                               f"{timeout:.0f} s (held: {held})\n" + "\n".join(_tail(w[2], 10) for w in workers))
        time.sleep(0.25)


def run_workers(stack: EmbeddedStack, name: str, load: Load, count: int, template: str, workdir: Path,
                fetch_wait_ms: int | None, round_: int = 1) -> WorkersRun:
    """(c) with `count` worker processes in one group, consuming a backlog as (c) does. The group forms on the
    empty topic first (published beforehand, the first worker to join would take the load before the second
    arrived); then the workers are paused (SIGSTOP) while the load is published, well within the group's 6 s
    session timeout, and resumed, so no publisher competes with them. A rebalance while measured fails the run."""
    topics = worker_topics(name)
    ensure_topics(stack.kafka_bootstrap, topics.partition_counts())
    url = database(stack, f"bench_{name}", template=template)
    ensure_days(url, load.first, load.cycles * POLL_INTERVAL_S)
    group = f"bench-{name}"
    started = time.monotonic()
    workers = [start_worker(f"{name}-{i}", stack.kafka_bootstrap, url, topics, workdir, fetch_wait_ms, group=group)
               for i in range(1, count + 1)]
    paused = False
    try:
        split = wait_for_group(workers, topics.telemetry)
        join = time.monotonic() - started
        console.log(f"  ({name}) {count} worker(s) in group {group} after {join:.1f} s, telemetry partitions "
                    f"{split}; publishing {load.readings:,} readings while they are paused")

        def cpu() -> tuple[list[float], float, float, float, float]:
            return ([_cpu(c) for c, _, _ in workers], _tree_cpu(stack.pids["postgres"]),
                    _tree_cpu(stack.pids["tansu"]), _cpu_of(os.getpid()), _machine_busy())

        for child, _, _ in workers:
            child.send_signal(signal.SIGSTOP)
        paused = True
        began = time.perf_counter()
        pub = publish(stack.kafka_bootstrap, topics.telemetry, load.reports)
        published = time.perf_counter() - began
        for child, _, _ in workers:
            child.send_signal(signal.SIGCONT)
        paused = False
        wall0 = time.perf_counter()
        samples: list[tuple[float, int, tuple[list[float], float, float, float, float]]] = []
        with psycopg.connect(url, autocommit=True) as conn:
            n = 0
            while n < pub.readings:
                for child, _, log_path in workers:
                    _alive(child, log_path, f"worker {name}")
                now = time.perf_counter()
                n = pub.readings_upto(tracked(conn, group, topics.telemetry))
                if n and (not samples or n != samples[-1][1]):   # CPU read at each commit: the rate's window
                    samples.append((now, n, cpu()))
                if now - wall0 > WORKER_TIMEOUT_S:
                    console.log(f"  ({name}) gave up after {WORKER_TIMEOUT_S:.0f} s: {n:,} of {pub.readings:,} "
                                "committed")
                    break
                time.sleep(0.02)
            # The rule of every variant: readings committed after the first commit, first commit to last.
            if len(samples) < 2:
                raise RuntimeError(f"workers {name}: fewer than two commits in {WORKER_TIMEOUT_S:.0f} s")
            (t0, n0, cpu0), (t1, n1, cpu1) = samples[0], samples[-1]
            rate = Rate(name, n1, n1 - n0, t1 - t0, n1 >= pub.readings, pub.messages)
            if rate.finished:
                stored = conn.execute("SELECT count(*) FROM telemetry").fetchone()[0]
                assert stored == pub.readings, f"workers {name}: {stored} rows stored, {pub.readings} published"
        split_after = [sorted(_assigned(port, topics.telemetry) or ()) for _, port, _ in workers]
        if split_after != split:
            raise RuntimeError(f"workers {name}: the group rebalanced while measured ({split} then {split_after}); "
                               f"publishing took {published:.1f} s while the workers were paused")
    finally:
        for child, _, _ in workers:
            if paused:
                child.send_signal(signal.SIGCONT)
            stop_worker(child)
    share = lambda a, b: (b - a) / (t1 - t0)  # noqa: E731
    run = WorkersRun(count, round_, rate, split, join, published, t1 - t0,
                     [share(a, b) for a, b in zip(cpu0[0], cpu1[0])], share(cpu0[1], cpu1[1]),
                     share(cpu0[2], cpu1[2]), share(cpu0[3], cpu1[3]), share(cpu0[4], cpu1[4]))
    console.log(f"  ({name}) {count} worker(s): {rate.per_second:,.0f} readings/s; CPU (share of a core) workers "
                f"{', '.join(f'{c:.0%}' for c in run.worker_cpu)}, PostgreSQL {run.postgres_cpu:.0%}, broker "
                f"{run.broker_cpu:.0%}, bench {run.bench_cpu:.0%}: {run.busy_cores:.2f} of {os.cpu_count()} cores "
                f"(the machine, every process: {run.machine_cores:.2f})")
    return run


# --- latency at a steady load ---------------------------------------------------------------------


def _metrics(port: int) -> dict[float, float]:
    """Cumulative bucket counts of twin_event_to_visible_seconds (le -> count)."""
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    out: dict[float, float] = {}
    for line in text.splitlines():
        if line.startswith("twin_event_to_visible_seconds_bucket"):
            le = line.split('le="', 1)[1].split('"', 1)[0]
            out[float("inf") if le == "+Inf" else float(le)] = float(line.rsplit(" ", 1)[1])
    return out


def _series(port: int, prefix: str) -> dict[str, float]:
    """Samples of the worker's metrics whose name starts with `prefix` (name{labels} -> value)."""
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    return {line.rsplit(" ", 1)[0]: float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
            if line.startswith(prefix)}


def _bucket_quantile(before: dict[float, float], after: dict[float, float], q: float) -> tuple[float, float]:
    """The bucket (lower, upper edge) holding quantile q of the observations between two scrapes."""
    edges = sorted(after)
    counts = [after[e] - before.get(e, 0.0) for e in edges]
    total = counts[-1]
    lower = 0.0
    for edge, c in zip(edges, counts):
        if c >= q * total:
            return lower, edge
        lower = edge
    return lower, float("inf")


def _percentiles(values: list[float]) -> list[float]:
    """Percentiles 0, 1, ..., 100 of `values` (sorted once), for a CDF."""
    s = sorted(values)
    return [s[min(len(s) - 1, int(q / 100 * len(s)))] for q in range(101)] if s else []


def _quantile(values: list[float], q: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, int(q * len(s)))] if s else float("nan")


@dataclass(slots=True)
class Latency:
    rate: float                  # readings/s actually offered during the measured window
    seconds: float
    samples: int
    p50: float
    p99: float
    max: float
    hist_p50: tuple[float, float]
    hist_p99: tuple[float, float]
    poll_interval: float
    worker_cpu: float            # share of one core the worker used during the measured window
    postgres_cpu: float          # share of one core PostgreSQL (all its processes) used then
    bench_cpu: float             # share of one core this process (load generator and poller) used then
    batches: int                 # telemetry batches the worker handled in that window
    batch_seconds: float         # their mean handling time
    cdf: list[float] = field(default_factory=list)  # percentiles 0..100 of the latencies (the report's CDF plot)


def run_latency(bootstrap: str, url: str, topic: str, port: int, load: Load, rate: float,
                child: subprocess.Popen[bytes], log_path: Path, postgres_pid: int) -> Latency:
    """Publish at `rate` readings/s (occurred_at = send time) and watch when each reading of a sample of
    racks becomes visible (`telemetry_at` of `rack_telemetry`, the column `rack_state` shows).

    Why a sample: scanning `rack_state` for every rack every poll read each rack's folded twin (the
    view joins `rack_lifecycle`): at 20,000 racks that alone kept PostgreSQL a third busy, and at
    100,000 it took longer than the poll interval, so the measurement slowed what it measured.
    `LATENCY_SAMPLE_RACKS` racks spread over every collector (and so every partition) are looked up
    by key instead; every reading of theirs in the window counts.
    """
    templates = load.templates
    per_cycle = sum(len(body["readings"]) for _, body in templates[0])
    cycle_every = per_cycle / rate
    every_rack = sorted({r["rack_id"] for _, body in templates[0] for r in body["readings"]})
    rack_ids = every_rack[::max(1, -(-len(every_rack) // LATENCY_SAMPLE_RACKS))]
    index = {r: i for i, r in enumerate(rack_ids)}
    polls: list[tuple[float, list[float]]] = []
    stop = threading.Event()

    def poll() -> None:
        with psycopg.connect(url, autocommit=True) as conn:
            while not stop.is_set():
                rows = conn.execute("SELECT rack_id, extract(epoch FROM telemetry_at)::float8 FROM rack_telemetry"
                                    " WHERE rack_id = ANY(%s) AND telemetry_at IS NOT NULL", (rack_ids,)).fetchall()
                seen = time.time()
                state = [0.0] * len(rack_ids)
                for rack_id, at in rows:
                    i = index.get(rack_id)
                    if i is not None:
                        state[i] = at
                polls.append((seen, state))
                time.sleep(LATENCY_POLL_S)

    poller = threading.Thread(target=poll, daemon=True)
    poller.start()
    sent: list[tuple[float, bool]] = []   # (occurred_at as epoch, in the measured window)
    probes: dict[str, Any] = {}

    def probe(when: str) -> None:
        probes[when] = (_cpu(child), _series(port, "twin_batch_seconds"), _tree_cpu(postgres_pid),
                        _cpu_of(os.getpid()), _metrics(port))

    async def pace() -> None:
        prod = producer(bootstrap)
        await prod.start()
        try:
            seq = 10**9
            began = time.perf_counter()
            measure_from, measure_to = began + LATENCY_WARMUP_S, began + LATENCY_WARMUP_S + LATENCY_SECONDS
            k = 0
            while True:
                slot = began + k * cycle_every
                now = time.perf_counter()
                if now >= measure_to:
                    break
                if slot > now:
                    await asyncio.sleep(slot - now)
                if "before" not in probes and time.perf_counter() >= measure_from:
                    probe("before")
                    if PROFILE_DIR is not None:  # --profile: the steady window on its own
                        subprocess.Popen([_py_spy(), "record", "--format", "raw", "-r", "250", "--pid",
                                          str(child.pid), "-d", str(int(LATENCY_SECONDS)),
                                          "-o", str(PROFILE_DIR / "worker-latency.txt")],
                                         stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
                _alive(child, log_path, "worker c")
                at = datetime.now(timezone.utc)
                iso = at.isoformat()
                for key, body in templates[k % len(templates)]:
                    seq += 1
                    for r in body["readings"]:
                        r["occurred_at"] = iso
                    body["occurred_at"], body["event_id"], body["seq"] = iso, str(uuid.uuid4()), seq
                    await prod.send(topic, value=orjson.dumps(body), key=key)
                sent.append((at.timestamp(), measure_from <= time.perf_counter() < measure_to))
                k += 1
            await prod.flush()
            probe("after")
        finally:
            await prod.stop()

    try:
        asyncio.run(pace())
        offered = sum(1 for _, m in sent if m) * per_cycle / LATENCY_SECONDS
        last = sent[-1][0]
        deadline = time.monotonic() + LATENCY_GRACE_S
        while time.monotonic() < deadline and not (polls and min(polls[-1][1]) >= last):
            time.sleep(0.1)
        time.sleep(0.5)
        scrape_after = _metrics(port)
    finally:
        stop.set()
        poller.join(timeout=5)
    # For every reading of the window: the first poll at which its rack showed it (or newer).
    times = [p[0] for p in polls]
    latencies: list[float] = []
    for i in range(len(rack_ids)):
        column = [p[1][i] for p in polls]
        for at, measured in sent:
            if not measured:
                continue
            j = bisect.bisect_left(column, at - 1e-6)
            latencies.append(times[j] - at if j < len(column) else float("inf"))
    (cpu_before, batches_before, pg_before, bench_before, scrape_before) = probes["before"]
    (cpu_after, batches_after, pg_after, bench_after, _) = probes["after"]
    count, total = ('twin_batch_seconds_count{topic="telemetry"}', 'twin_batch_seconds_sum{topic="telemetry"}')
    batches = int(batches_after.get(count, 0) - batches_before.get(count, 0))
    handling = batches_after.get(total, 0) - batches_before.get(total, 0)
    return Latency(offered, LATENCY_SECONDS, len(latencies), _quantile(latencies, 0.5), _quantile(latencies, 0.99),
                   max(latencies), _bucket_quantile(scrape_before, scrape_after, 0.5),
                   _bucket_quantile(scrape_before, scrape_after, 0.99), LATENCY_POLL_S,
                   (cpu_after - cpu_before) / LATENCY_SECONDS, (pg_after - pg_before) / LATENCY_SECONDS,
                   (bench_after - bench_before) / LATENCY_SECONDS, batches, handling / max(batches, 1),
                   _percentiles(latencies))


def _machine_busy() -> float:
    """CPU seconds the whole machine has been busy (all cores, every process): idle and I/O wait left out."""
    t = psutil.cpu_times()
    return sum(t) - t.idle - getattr(t, "iowait", 0.0) - getattr(t, "guest", 0.0) - getattr(t, "guest_nice", 0.0)


def _tree_cpu(pid: int) -> float:
    """CPU seconds used so far by a process and its children (PostgreSQL and its backends)."""
    root = psutil.Process(pid)
    total = 0.0
    for proc in [root, *root.children(recursive=True)]:
        try:
            times = proc.cpu_times()
            total += times.user + times.system
        except psutil.Error:
            pass
    return total


def _cpu(child: subprocess.Popen[bytes]) -> float:
    """CPU seconds (user + system) the process has used so far."""
    return _cpu_of(child.pid)


def _cpu_of(pid: int) -> float:
    times = psutil.Process(pid).cpu_times()
    return times.user + times.system


# --- what the fetch wait alone costs: a plain consumer on a light steady stream -------------------


async def _fetch_probe(bootstrap: str, topic: str, wait_ms: int) -> tuple[int, list[float]]:
    from aiokafka import AIOKafkaConsumer, TopicPartition

    tps = [TopicPartition(topic, p) for p in range(PARTITIONS)]
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False,
                                fetch_max_wait_ms=wait_ms)
    prod = producer(bootstrap)
    await consumer.start()
    await prod.start()
    delays: list[float] = []

    async def consume() -> None:
        while True:
            for records in (await consumer.getmany(timeout_ms=200)).values():
                now = time.time()
                delays.extend(now - float(r.value) for r in records)

    sent = 0
    try:
        consumer.assign(tps)
        await consumer.seek_to_end(*tps)
        await consumer.getmany(timeout_ms=wait_ms + 500)   # caught up: from here on a fetch finds at most a few
        reader = asyncio.create_task(consume())
        began = time.perf_counter()
        while time.perf_counter() - began < FETCH_PROBE_SECONDS:
            await prod.send(topic, str(time.time()).encode(), partition=sent % PARTITIONS)
            sent += 1
            await asyncio.sleep(began + sent / FETCH_PROBE_RATE - time.perf_counter())
        await prod.flush()
        await asyncio.sleep(wait_ms / 1000 + 1)
        reader.cancel()
    finally:
        await prod.stop()
        await consumer.stop()
    return sent, delays


def fetch_probe(bootstrap: str, waits: list[int]) -> dict[str, dict[str, float]]:
    """Per fetch wait (ms): a plain aiokafka consumer, caught up, fed FETCH_PROBE_RATE one-message sends a
    second over the partitions for FETCH_PROBE_SECONDS; seconds from send to delivery (p50, longest)."""
    out: dict[str, dict[str, float]] = {}
    for ms in waits:
        topic = f"bench.fetch-probe-{ms}"
        ensure_topics(bootstrap, {topic: PARTITIONS})
        sent, delays = asyncio.run(_fetch_probe(bootstrap, topic, ms))
        out[str(ms)] = {"sent": sent, "delivered": len(delays), "p50": _quantile(delays, 0.5),
                        "max": max(delays, default=float("inf"))}
    return out


# --- storage --------------------------------------------------------------------------------------


@dataclass(slots=True)
class Storage:
    bytes: int
    rows: int
    reporting_racks: int
    covered_seconds: float

    @property
    def rack_days(self) -> float:
        return self.reporting_racks * self.covered_seconds / 86_400

    @property
    def per_rack_day(self) -> float:
        return self.bytes / self.rack_days

    @property
    def per_row(self) -> float:
        return self.bytes / self.rows


def measure_storage(url: str, load: Load) -> Storage:
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("VACUUM ANALYZE telemetry")
        size = conn.execute(
            "SELECT coalesce(sum(pg_total_relation_size(i.inhrelid)), 0) FROM pg_inherits i"
            " WHERE i.inhparent = 'telemetry'::regclass").fetchone()[0]
        rows = conn.execute("SELECT count(*) FROM telemetry").fetchone()[0]
    return Storage(int(size), int(rows), load.powered, load.cycles * POLL_INTERVAL_S)


# --- the report -----------------------------------------------------------------------------------


def _fmt_rate(r: float) -> str:
    return f"{r:,.0f}"


def _ms(seconds: float) -> str:
    if seconds == float("inf"):
        return f"> {LATENCY_GRACE_S:.0f} s after the window (never seen)"
    return f"{seconds * 1000:,.0f} ms"


def _shipped_wait(results: dict[str, Any]) -> int | None:
    """A run's worker fetch wait as shipped, in ms; None if its JSON does not say (made before the setting)."""
    if "fetch_max_wait_ms" not in results:
        return None
    return results["fetch_max_wait_ms"] if results["fetch_max_wait_ms"] is not None else FAUST_FETCH_MAX_WAIT_MS


def write_report(path: Path, results: dict[str, Any], baseline: dict[str, Any] | None) -> None:
    r = results
    rates, ratios, lat, st, load = r["rates"], r["ratios"], r["latency"], r["storage"], r["load"]
    before = " before |" if baseline else ""
    wait = _shipped_wait(r)
    wait_note = ("the default of `TWIN_FETCH_MAX_WAIT_MS`, as shipped" if r["fetch_max_wait_ms"] is not None
                 else "Faust's own: the code under test has no setting for it")
    wi = r.get("what_if")
    # A baseline's what-if is shown only if it was made the same way (the setting) with the same wait; older
    # JSON (a sitecustomize override, no "via") is left out.
    old_wi = baseline.get("what_if") if baseline else None
    if not (wi and old_wi and old_wi.get("via") == wi["via"] and old_wi["fetch_max_wait_ms"] == wi["fetch_max_wait_ms"]):
        old_wi = None
    lines = [
        "# Ingest benchmark: broker to database",
        "",
        f"Command: `{r['command']}`  ",
        f"Machine: {r['machine']['nproc']} CPUs ({r['machine']['cpu']}), Python {r['machine']['python']}, "
        f"PostgreSQL {r['machine']['postgres']}, Tansu 0.6 (embedded broker), {r['machine']['platform']}; load "
        f"average {r['load_average_at_start'][0]:.2f} at the start (the machine is shared)  ",
        f"Run: {r['when']}, {r['total_seconds']:.0f} s in all"
        + (f"; *before* columns: {baseline.get('label') or 'an earlier run'} ({baseline['when']}, "
           f"`{baseline['command']}`)" if baseline else ""),
        "",
        f"Load: the simulator's fleet of {load['racks']:,} racks ({load['powered']:,} powered and reporting, in "
        f"{load['rows']} reports a cycle), {load['cycles']} poll cycles 1 s apart: {load['readings']:,} readings in "
        f"{load['messages']:,} reports, one per {'row' if load.get('shape') == 'row' else 'hall collector'} per cycle, so {load['readings'] / load['messages']:.1f} readings "
        "a report. Made once; each variant consumes the same messages from its own topics (4 partitions), published "
        "before it starts. A rate counts the readings committed after the first commit, over the time from the "
        "first commit to the last (start-up and group join excluded, the same rule for every variant). The worker "
        f"variants' Kafka fetches wait at most {wait} ms ({wait_note}).",
        "",
        "| variant | what | messages | readings committed | readings/s |" + before,
        "|---|---|---:|---:|---:|" + ("---:|" if baseline else ""),
    ]
    what = {
        "a": "bare limit: aiokafka `getmany` + orjson + one `COPY` per batch into the same telemetry table; no "
             "validation, no twin",
        "b": f"plain Faust agent: `async for` event by event, `json.loads`, one autocommitted INSERT per reading "
             f"(run for {PLAIN_AGENT_SECONDS:.0f} s, not the whole load)",
        "c": "our worker, `python -m streams worker`, its own database and topics, lifecycle of every rack loaded "
             "first",
        "c1": "our worker, the same readings as single-rack reports (one reading a message)",
    }
    for key in ("a", "b", "c", "c1"):
        x = rates[key]
        label = "c'" if key == "c1" else key
        note = "" if x["finished"] or key == "b" else " (timed out: rate so far)"
        row = (f"| ({label}) | {what[key]}{note} | {x['messages']:,} | {x['readings']:,} | "
               f"**{_fmt_rate(x['per_second'])}** |")
        if baseline:
            old = baseline.get("rates", {}).get(key)
            row += f" {_fmt_rate(old['per_second'])} |" if old else " |"
        lines.append(row)
    if wi:
        ms = wi["fetch_max_wait_ms"]
        faust = ", Faust's own value" if ms == FAUST_FETCH_MAX_WAIT_MS else ""
        lines.append(f"| (c) what if | our worker started with `TWIN_FETCH_MAX_WAIT_MS={ms}`{faust} (see below; not "
                     f"what ships) | {wi['rate']['messages']:,} | {wi['rate']['readings']:,} | "
                     f"**{_fmt_rate(wi['rate']['per_second'])}** |"
                     + (f" {_fmt_rate(old_wi['rate']['per_second'])} |" if old_wi else " |" if baseline else ""))
    lines += [
        "",
        "| ratio | measured | target |" + before,
        "|---|---:|---:|" + ("---:|" if baseline else ""),
    ]
    for key, label, target in (("c_a", "c / a", "≥ 0.5"), ("c_b", "c / b", "≥ 20"), ("c1_a", "c' / a", ""),
                               ("c_c1", "c / c' (what reports buy)", "")):
        row = f"| {label} | **{ratios[key]:.2f}** | {target} |"
        if baseline:
            old = baseline.get("ratios", {}).get(key)
            row += f" {old:.2f} |" if old is not None else " |"
        lines.append(row)
    if wi:
        lines.append(f"| c / a, c / b, what if | {wi['rate']['per_second'] / rates['a']['per_second']:.2f}, "
                     f"{wi['rate']['per_second'] / rates['b']['per_second']:.1f} | |" + (" |" if baseline else ""))
    lines += [
        "",
        f"## Reading to visible twin at a steady {lat['rate']:,.0f} readings/s",
        "",
        f"The (c) worker, after its run, is fed at a paced rate for {LATENCY_WARMUP_S:.0f} s of warm-up and "
        f"{lat['seconds']:.0f} s measured, each report's `occurred_at` the instant it is sent (the same "
        f"{load['powered']} racks, so each reports about {lat['rate'] / load['powered']:.0f} times a second). A "
        "reading is visible when a reader of `rack_state` sees its rack's `telemetry_at` at or past it (up to "
        f"{LATENCY_SAMPLE_RACKS:,} racks watched, looked up by key), polled every "
        f"{lat['poll_interval'] * 1000:.0f} ms from outside the worker (so a figure is late by up to one poll); "
        f"{lat['samples']:,} readings. Chosen over the worker's own histogram because it is what a dashboard sees "
        "and exact per reading, where the histogram only places a quantile between two bucket edges; the histogram "
        "(`twin_event_to_visible_seconds`, observed at commit, scraped at both ends of the window) is the "
        "cross-check.",
        "",
        "| | p50 | p99 | histogram p50 | histogram p99 | worker CPU | PostgreSQL CPU | batches | mean batch |"
        + before,
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|" + ("---:|" if baseline else ""),
    ]

    def latency_row(label: str, x: dict[str, Any], old: dict[str, Any] | None) -> str:
        (p50lo, p50hi), (p99lo, p99hi) = x["hist_p50"], x["hist_p99"]
        row = (f"| {label} | **{_ms(x['p50'])}** | **{_ms(x['p99'])}** | {_ms(p50lo)}–{_ms(p50hi)} | "
               f"{_ms(p99lo)}–{_ms(p99hi)} | {x['worker_cpu']:.0%} | {x['postgres_cpu']:.0%} | {x['batches']} | "
               f"{_ms(x['batch_seconds'])} |")
        if baseline:
            row += f" p50 {_ms(old['p50'])}, p99 {_ms(old['p99'])} |" if old else " |"
        return row

    old_wait = _shipped_wait(baseline) if baseline else None
    old_lat = dict(baseline["latency"]) if baseline and baseline.get("latency") else None
    lines.append(latency_row(f"(c) as shipped, fetch wait {wait} ms", lat, old_lat))
    if old_lat and old_wait is not None and old_wait != wait:
        lines[-1] = lines[-1][:-2] + f" (fetch wait {old_wait} ms) |"
    if wi and wi.get("latency"):
        lines.append(latency_row(f"(c) what if, fetch wait {wi['fetch_max_wait_ms']} ms", wi["latency"],
                                 old_wi.get("latency") if old_wi else None))
    lines += [
        "",
        f"Target: p99 under 1 s. The load generator (this process: aiokafka producer and the poller) used "
        f"{lat['bench_cpu']:.0%} of a core during the window.",
        "",
        "## Telemetry storage",
        "",
        f"`pg_total_relation_size` of the telemetry partitions after (c): {st['bytes'] / 2**20:,.1f} MiB for "
        f"{st['rows']:,} rows ({st['per_row']:.0f} bytes a row: heap, primary key and time index), covering "
        f"{st['reporting_racks']:,} racks × {st['covered_seconds']:.0f} s = {st['rack_days']:.2f} rack-days.",
        "",
        "| | bytes per rack-day (1 Hz) | 75,000 racks, a day | 75,000 racks, 14 days raw |",
        "|---|---:|---:|---:|",
        f"| PostgreSQL native partitions (measured) | {st['per_rack_day'] / 2**20:,.1f} MiB | "
        f"{st['per_rack_day'] * FLEET_RACKS / 2**40:,.2f} TiB | {st['per_rack_day'] * FLEET_RACKS * 14 / 2**40:,.1f} TiB |",
        "",
        f"6.5 billion rows a day at fleet scale come to {st['per_rack_day'] * FLEET_RACKS / 2**40:,.2f} TiB of raw "
        "rows on plain PostgreSQL: raw telemetry is kept for days and read through rollups (1 minute, 1 hour) beyond "
        "that. TimescaleDB's compression (segment by rack, after 2 days) is not installable here and is not measured.",
        "",
    ]
    if wi:
        ms = wi["fetch_max_wait_ms"]
        probe = wi.get("fetch_probe") or {}
        measured = "; ".join(f"p50 {_ms(x['p50'])} and longest {_ms(x['max'])} with a wait of {w} ms"
                             + ("" if x["delivered"] == x["sent"] else f" ({x['sent'] - x['delivered']:,.0f} lost)")
                             for w, x in sorted(probe.items(), key=lambda kv: int(kv[0])))
        at_ms = probe.get(str(ms))
        compounded = bool(at_ms and wi.get("latency") and wi["latency"]["p50"] > 3 * at_ms["max"])
        lines += [
            "## Why the what-if row",
            "",
            f"Faust creates its aiokafka consumer with `fetch_max_wait_ms={FAUST_FETCH_MAX_WAIT_MS}` and has no "
            "setting for it; the worker sets it from `TWIN_FETCH_MAX_WAIT_MS` (streams/transport.py), default "
            f"{wait} ms. The what-if row is the same worker started with `TWIN_FETCH_MAX_WAIT_MS={ms}`"
            + (", which is what every worker did before the setting existed." if ms == FAUST_FETCH_MAX_WAIT_MS
               else "."),
            "",
            "Tansu 0.6 does not answer a fetch as soon as records arrive, so the wait delays a consumer that has "
            + (f"caught up. Measured in this run on a plain aiokafka consumer fed {FETCH_PROBE_RATE} one-message "
               f"sends a second over {PARTITIONS} partitions for {FETCH_PROBE_SECONDS:.0f} s, send to delivery: "
               f"{measured}." if probe else "caught up.")
            + (" That delay alone is well short of the what-if latency row; what adds the rest in the worker is "
               "not measured here." if compounded else "")
            + " On Apache Kafka a fetch returns once it has `fetch_min_bytes` (aiokafka: 1 byte), so the wait "
            "should matter much less there; not measured here.",
            "",
        ]
    if r.get("workers"):
        lines += workers_section(r)
    path.write_text("\n".join(lines))


def workers_results(runs: list[WorkersRun], bare: Rate | None) -> dict[str, Any]:
    """The --workers runs as JSON: each run, and per worker count the median rate, its spread, its ratio to
    one worker (per round, then the median) and to the bare limit (a) of the same run."""
    import statistics

    by: dict[int, list[WorkersRun]] = {}
    for run in runs:
        by.setdefault(run.workers, []).append(run)
    ones = {r.round: r.rate.per_second for r in by.get(1, [])}
    summary: dict[str, Any] = {}
    for n, rs in sorted(by.items()):
        ps = [r.rate.per_second for r in rs]
        med = statistics.median(ps)
        to_one = [r.rate.per_second / ones[r.round] for r in rs if ones.get(r.round)]
        summary[str(n)] = {
            "per_second": med, "min": min(ps), "max": max(ps), "rounds": len(ps),
            "all_finished": all(r.rate.finished for r in rs),
            "to_one_worker": statistics.median(to_one) if to_one else None, "to_one_worker_per_round": to_one,
            "c_a": med / bare.per_second if bare and bare.per_second else None,
            "worker_cpu": statistics.median(sum(r.worker_cpu) for r in rs),
            "postgres_cpu": statistics.median(r.postgres_cpu for r in rs),
            "broker_cpu": statistics.median(r.broker_cpu for r in rs),
            "bench_cpu": statistics.median(r.bench_cpu for r in rs),
            "busy_cores": statistics.median(r.busy_cores for r in rs),
            "machine_cores": statistics.median(r.machine_cores for r in rs),
        }
    return {"a_per_second": bare.per_second if bare else None, "partitions": PARTITIONS,
            "runs": [{**asdict(r), "rate": {**asdict(r.rate), "per_second": r.rate.per_second},
                      "busy_cores": r.busy_cores} for r in runs],
            "summary": summary}


def workers_section(r: dict[str, Any]) -> list[str]:
    """The markdown section of the --workers runs (in the full report, or on its own)."""
    w = r["workers"]
    nproc = r["machine"]["nproc"]
    a = w.get("a_per_second")
    lines = [
        "## Our worker as 1 and 2 processes in one group",
        "",
        f"(c) again, as N `python -m streams worker` processes in one consumer group on the same topic "
        f"({w['partitions']} partitions, split between them by the group), each with the same database. The group "
        "forms on the empty topic first and must hold one split for 2 s (published beforehand, the first worker to "
        "join would take the load before the second arrived); then the workers are paused (SIGSTOP) while the load "
        "is published, well within the group's 6 s session timeout, and resumed (SIGCONT) to take it as a backlog, "
        "as (c) does; a rebalance while measured fails the run. The rate follows the same rule as every variant "
        "(first commit to last); CPU is each process's user + system time over that same window, as a share of one "
        "core (*bench*: this process, polling the progress).",
        "",
        "| workers | readings/s (median) | spread | rounds | vs 1 worker | vs (a) bare limit | workers' CPU | "
        "PostgreSQL | broker | bench | cores busy: ours | machine (all processes) |",
        "|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for n, x in w["summary"].items():
        lines.append(
            f"| {n} | **{x['per_second']:,.0f}**{'' if x['all_finished'] else ' (timed out)'} | "
            f"{x['min']:,.0f}–{x['max']:,.0f} | {x['rounds']} | "
            f"{'-' if x['to_one_worker'] is None else format(x['to_one_worker'], '.2f')} | "
            f"{'-' if x['c_a'] is None else format(x['c_a'], '.2f')} | {x['worker_cpu']:.0%} | "
            f"{x['postgres_cpu']:.0%} | {x['broker_cpu']:.0%} | {x['bench_cpu']:.0%} | {x['busy_cores']:.2f} | "
            f"{x['machine_cores']:.2f} of {nproc} |")
    lines += ["", f"(a) bare limit in the same run: {a:,.0f} readings/s." if a else
              "(a) was not run beside these: no c/a.", ""]
    lines += ["| run | workers | partitions held | group formed after | publishing | measured | readings/s | "
              "workers' CPU (each) |",
              "|---:|---:|---|---:|---:|---:|---:|---|"]
    for i, x in enumerate(w["runs"], 1):
        lines.append(f"| {i} | {x['workers']} | {' / '.join(','.join(map(str, p)) for p in x['partitions'])} | "
                     f"{x['join_seconds']:.1f} s | {x['publish_seconds']:.1f} s | {x['seconds']:.1f} s | "
                     f"{x['rate']['per_second']:,.0f} | "
                     f"{', '.join(f'{c:.0%}' for c in x['worker_cpu'])} |")
    two, one = w["summary"].get("2"), w["summary"].get("1")
    if two and one and two["to_one_worker"] is not None:
        lines += ["", _two_workers_note(one, two, nproc)]
    lines.append("")
    return lines


def _two_workers_note(one: dict[str, Any], two: dict[str, Any], nproc: int) -> str:
    """What the 2-worker ratio says, from the CPU measured (not a verdict written beforehand)."""
    ratio = two["to_one_worker"]
    ours = (f"the workers {two['worker_cpu']:.0%} of a core together, PostgreSQL {two['postgres_cpu']:.0%}, the "
            f"broker {two['broker_cpu']:.0%}, the bench {two['bench_cpu']:.0%}: {two['busy_cores']:.2f} cores; "
            f"with one worker {one['busy_cores']:.2f}")
    head = f"Two workers took {ratio:.2f}x one worker's readings/s (median of the rounds' ratios). "
    if two["machine_cores"] >= 0.85 * nproc:
        others = two["machine_cores"] - two["busy_cores"]
        return head + (f"With two, the machine was saturated: {two['machine_cores']:.2f} of its {nproc} cores busy "
                       f"({ours}; other processes on this shared machine {max(others, 0):.2f}). The broker and "
                       "PostgreSQL run on the same 2 cores as the workers, so a second worker here cannot double "
                       "the rate; with the broker and the database on their own machines each worker would have "
                       "its own cores (not measured here).")
    return head + (f"The machine was not saturated ({two['machine_cores']:.2f} of {nproc} cores busy; {ours}): what "
                   "held the workers back is not the CPU alone (each worker waits for its batch's commit and its "
                   "next fetch); see each run's CPU above.")


def workers_report(r: dict[str, Any]) -> list[str]:
    """A report of a --workers run on its own (--only a --workers 1,2)."""
    load, m = r["load"], r["machine"]
    return [
        "# Ingest benchmark: our worker as 1 and 2 processes",
        "",
        f"Command: `{r['command']}`  ",
        f"Machine: {m['nproc']} CPUs ({m['cpu']}), Python {m['python']}, PostgreSQL {m['postgres']}, Tansu 0.6 "
        f"(embedded broker), {m['platform']}; load average {r['load_average_at_start'][0]:.2f} at the start (the "
        "machine is shared)  ",
        f"Run: {r['when']}, {r['total_seconds']:.0f} s in all",
        "",
        f"Load: the simulator's fleet of {load['racks']:,} racks ({load['powered']:,} powered), {load['cycles']} "
        f"poll cycles: {load['readings']:,} readings in {load['messages']:,} reports, one per "
        f"{'row' if load.get('shape') == 'row' else 'hall collector'} per cycle. The workers' Kafka fetches wait at "
        f"most {_shipped_wait(r)} ms.",
        "",
        *workers_section(r),
    ]


def _machine(stack_url: str) -> dict[str, Any]:
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"nproc": os.cpu_count(), "cpu": cpu, "python": platform.python_version(),
            "platform": f"{platform.system()} {platform.release()}",
            "postgres": scalar(stack_url, "SHOW server_version")}


def main() -> None:
    global PROFILE_DIR, SEED_IN_BULK
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--readings", type=int, default=200_000, help="telemetry readings in the load")
    parser.add_argument("--racks", type=int, default=1_000, help="racks in the simulated fleet")
    parser.add_argument("--report-shape", choices=("collector", "row"), default="collector",
                        help="collector: one report per hall collector, up to 50 readings (default); row: one per row")
    parser.add_argument("--rate", type=float, default=20_000, help="readings/s of the steady latency load")
    parser.add_argument("--out", type=Path,
                        help="the report (JSON beside it); default bench/reports/ingest.md, or "
                             "bench/reports/ingest-workers.md for a subset run with --workers")
    parser.add_argument("--workers", metavar="COUNTS",
                        help="also run (c) as this many worker processes in one consumer group, e.g. 1,2 (the "
                             "telemetry partitions split between them); with --only a: that and the bare limit alone")
    parser.add_argument("--worker-rounds", type=int, default=1, metavar="N",
                        help="--workers: run each count N times, interleaved (1,2,1,2...), for a median (default 1)")
    parser.add_argument("--baseline", type=Path, help="JSON of an earlier run, shown beside this one")
    parser.add_argument("--only", default=",".join(VARIANTS),
                        help=f"comma-separated subset of {','.join(VARIANTS)} (no report unless all run, or --workers)")
    parser.add_argument("--what-if-fetch-wait", type=int, metavar="MS",
                        help="also run (c) and the latency load on a worker started with TWIN_FETCH_MAX_WAIT_MS=MS "
                             "(as shipped: the setting's default), e.g. 1500, Faust's own value, to show what it "
                             "costs on Tansu, which does not answer a fetch as soon as records arrive")
    parser.add_argument("--profile", type=Path, help="py-spy record each worker variant into this directory")
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory (logs)")
    parser.add_argument("--seed-via-worker", action="store_true",
                        help="load the racks' lifecycle through a worker (slow) instead of in bulk (bench.seed)")
    parser.add_argument("--plain-agent", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.plain_agent:
        plain_agent_main()
        return
    only = set(args.only.split(","))
    if unknown := only - set(VARIANTS):
        parser.error(f"--only: unknown variant(s) {','.join(sorted(unknown))}; choose from {','.join(VARIANTS)}")
    counts: list[int] = []
    if args.workers:
        try:
            counts = [int(x) for x in args.workers.split(",")]
        except ValueError:
            parser.error(f"--workers {args.workers}: worker counts separated by commas, e.g. 1,2")
        if not counts or any(n < 1 or n > PARTITIONS for n in counts):
            parser.error(f"--workers {args.workers}: each count between 1 and {PARTITIONS} (the topic's partitions)")
    if args.worker_rounds < 1:
        parser.error("--worker-rounds: at least 1")
    full = not set(VARIANTS) - only
    if args.out is None:
        args.out = Path("bench/reports/ingest.md" if full or not counts else "bench/reports/ingest-workers.md")
    SEED_IN_BULK = not args.seed_via_worker
    shipped_wait = shipped_fetch_wait()
    if args.what_if_fetch_wait is not None and shipped_wait is None:
        parser.error("--what-if-fetch-wait: the code under test has no TWIN_FETCH_MAX_WAIT_MS setting")
    if args.what_if_fetch_wait is not None:
        try:
            Settings(fetch_max_wait_ms=args.what_if_fetch_wait)
        except ValueError as e:   # pydantic's ValidationError: outside what the worker accepts
            parser.error(f"--what-if-fetch-wait {args.what_if_fetch_wait}: {e}")
    if args.what_if_fetch_wait is not None and args.what_if_fetch_wait == shipped_wait:
        parser.error(f"--what-if-fetch-wait {args.what_if_fetch_wait}: that is the shipped value already")
    if args.profile:
        PROFILE_DIR = args.profile.absolute()
        PROFILE_DIR.mkdir(parents=True, exist_ok=True)
    command = "python bench/ingest.py " + " ".join(a for a in sys.argv[1:])
    began = time.monotonic()
    load_at_start = os.getloadavg()
    baseline = json.loads(args.baseline.read_text()) if args.baseline else None
    tmp = Path(tempfile.mkdtemp(prefix="bench-ingest-"))
    console.rule("ingest benchmark")
    console.log(f"working in {tmp}")
    console.log("worker fetch wait as shipped: " + (f"{shipped_wait} ms (TWIN_FETCH_MAX_WAIT_MS default)"
                                                      if shipped_wait is not None else
                                                      f"Faust's {FAUST_FETCH_MAX_WAIT_MS} ms (no setting in this code)"))
    if "TWIN_FETCH_MAX_WAIT_MS" in os.environ:
        console.log(f"  TWIN_FETCH_MAX_WAIT_MS={os.environ['TWIN_FETCH_MAX_WAIT_MS']} in this environment is not "
                    "passed on: use --what-if-fetch-wait")
    rates: dict[str, Rate] = {}
    latency: Latency | None = None
    storage: Storage | None = None
    what_if: dict[str, Any] | None = None
    worker_runs: list[WorkersRun] = []
    try:
        with EmbeddedStack(tmp / "stack") as stack:
            console.log(f"stack up: Kafka {stack.kafka_bootstrap}, PostgreSQL {stack.database_url}")
            with console.status("generating the load"):
                load = make_load(args.racks, args.readings, report_shape=args.report_shape,
                                 with_singles="c1" in only)
            console.log(f"load: {load.readings:,} readings in {len(load.reports):,} reports "
                        f"({load.powered} of {load.racks} racks powered, {load.rows} reports a cycle, {load.cycles} cycles); "
                        f"{len(load.lifecycle):,} reference and lifecycle events")
            bootstrap = stack.kafka_bootstrap
            machine = _machine(stack.database_url)

            if "a" in only:
                console.rule("(a) bare limit")
                ensure_topics(bootstrap, {"bench.a.telemetry": PARTITIONS})
                url_a = database(stack, "bench_a")
                ensure_days(url_a, load.first, load.cycles * POLL_INTERVAL_S)
                pub_a = publish(bootstrap, "bench.a.telemetry", load.reports)
                rates["a"] = run_bare(bootstrap, pub_a, url_a)
                console.log(f"(a) {rates['a'].per_second:,.0f} readings/s")

            if "b" in only:
                console.rule("(b) plain Faust agent")
                ensure_topics(bootstrap, {"bench.b.telemetry": PARTITIONS})
                url_b = database(stack, "bench_b")
                ensure_days(url_b, load.first, load.cycles * POLL_INTERVAL_S)
                pub_b = publish(bootstrap, "bench.b.telemetry", load.reports)
                rates["b"] = run_plain_agent(bootstrap, pub_b, url_b, tmp)
                console.log(f"(b) {rates['b'].per_second:,.0f} readings/s")

            template = None
            if only & {"c", "latency", "c1"} or counts:
                console.rule("lifecycle for the worker variants")
                template = load_lifecycle(stack, load, tmp, shipped_wait)

            if only & {"c", "latency"}:
                console.rule("(c) our worker, reports")
                rate_c, url_c, topics_c, kept, _ = run_worker(stack, "c", load, load.reports, template, tmp,
                                                              shipped_wait, keep=True)
                rates["c"] = rate_c
                console.log(f"(c) {rate_c.per_second:,.0f} readings/s")
                storage = measure_storage(url_c, load)
                assert kept is not None
                child, port, log_path = kept
                try:
                    if "latency" in only:
                        console.rule(f"latency at {args.rate:,.0f} readings/s")
                        latency = run_latency(bootstrap, url_c, topics_c.telemetry, port, load, args.rate, child,
                                              log_path, stack.pids["postgres"])
                        console.log(f"latency p50 {latency.p50 * 1000:.0f} ms, p99 {latency.p99 * 1000:.0f} ms "
                                    f"(histogram p99 in {latency.hist_p99[0]}–{latency.hist_p99[1]} s); worker "
                                    f"{latency.worker_cpu:.0%} of a core, PostgreSQL {latency.postgres_cpu:.0%}, "
                                    f"load generator {latency.bench_cpu:.0%}, "
                                    f"{latency.batches} batches of "
                                    f"{latency.batch_seconds * 1000:.0f} ms")
                finally:
                    stop_worker(child)

            if args.what_if_fetch_wait is not None and only & {"c", "latency"}:
                ms = args.what_if_fetch_wait
                console.rule(f"what if: (c) and latency with TWIN_FETCH_MAX_WAIT_MS={ms}")
                assert shipped_wait is not None
                probe = fetch_probe(bootstrap, sorted({shipped_wait, ms}))
                for wait, x in probe.items():
                    console.log(f"  plain consumer, {FETCH_PROBE_RATE} messages/s, fetch wait {wait} ms: delivered "
                                f"after p50 {x['p50'] * 1000:.0f} ms, longest {x['max'] * 1000:.0f} ms "
                                f"({x['delivered']:.0f} of {x['sent']:.0f})")
                rate_w, url_w, topics_w, kept, _ = run_worker(stack, "cw", load, load.reports, template, tmp, ms,
                                                              keep=True)
                console.log(f"(c, fetch wait {ms} ms) {rate_w.per_second:,.0f} readings/s")
                assert kept is not None
                child, port, log_path = kept
                try:
                    latency_w = None
                    if "latency" in only:
                        latency_w = run_latency(bootstrap, url_w, topics_w.telemetry, port, load, args.rate, child,
                                                log_path, stack.pids["postgres"])
                        console.log(f"latency (fetch wait {ms} ms) p50 {latency_w.p50 * 1000:.0f} ms, "
                                    f"p99 {latency_w.p99 * 1000:.0f} ms; worker {latency_w.worker_cpu:.0%} of a core")
                finally:
                    stop_worker(child)
                what_if = {"fetch_max_wait_ms": ms, "via": "TWIN_FETCH_MAX_WAIT_MS",
                           "rate": {**asdict(rate_w), "per_second": rate_w.per_second},
                           "latency": asdict(latency_w) if latency_w else None, "fetch_probe": probe}

            if "c1" in only:
                console.rule("(c') our worker, one reading per message")
                rates["c1"], *_ = run_worker(stack, "c1", load, load.singles, template, tmp, shipped_wait)
                console.log(f"(c') {rates['c1'].per_second:,.0f} readings/s")

            if counts:
                assert template is not None
                for round_ in range(1, args.worker_rounds + 1):
                    for n in counts:
                        console.rule(f"(c) as {n} worker(s) in one group, round {round_}")
                        worker_runs.append(run_workers(stack, f"w{n}r{round_}", load, n, template, tmp,
                                                       shipped_wait, round_))
    finally:
        if not args.keep:
            import shutil

            shutil.rmtree(tmp, ignore_errors=True)
    for key, rate in rates.items():
        console.log(f"{key}: {rate.per_second:,.0f} readings/s ({rate.measured:,} readings in {rate.seconds:.2f} s)")
    if not full:
        if not counts:
            console.log("a subset was run: no report written")
            return
        results = {"command": command, "when": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
                   "total_seconds": time.monotonic() - began, "machine": machine, "fetch_max_wait_ms": shipped_wait,
                   "load": {"racks": load.racks, "powered": load.powered, "rows": load.rows,
                            "shape": args.report_shape, "cycles": load.cycles, "readings": load.readings,
                            "messages": len(load.reports)},
                   "rates": {k: {**asdict(v), "per_second": v.per_second} for k, v in rates.items()},
                   "workers": workers_results(worker_runs, rates.get("a")),
                   "load_average_at_start": load_at_start}
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.with_suffix(".json").write_text(json.dumps(results, indent=2, default=str))
        args.out.write_text("\n".join(workers_report(results)))
        console.log(f"report: {args.out} (and {args.out.with_suffix('.json')}); {results['total_seconds']:.0f} s in all")
        return
    assert latency is not None and storage is not None
    ps = {k: v.per_second for k, v in rates.items()}
    results = {
        "command": command,
        "when": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "total_seconds": time.monotonic() - began,
        "machine": machine,
        "fetch_max_wait_ms": shipped_wait,    # the workers' as shipped; None: no setting, Faust's 1500 ms
        "load": {"racks": load.racks, "powered": load.powered, "rows": load.rows, "shape": args.report_shape, "cycles": load.cycles,
                 "readings": load.readings, "messages": len(load.reports)},
        "rates": {k: {**asdict(v), "per_second": v.per_second} for k, v in rates.items()},
        "ratios": {"c_a": ps["c"] / ps["a"], "c_b": ps["c"] / ps["b"], "c1_a": ps["c1"] / ps["a"],
                   "c_c1": ps["c"] / ps["c1"]},
        "latency": asdict(latency),
        "storage": {**asdict(storage), "rack_days": storage.rack_days, "per_rack_day": storage.per_rack_day,
                    "per_row": storage.per_row},
        "what_if": what_if,
        "workers": workers_results(worker_runs, rates.get("a")) if worker_runs else None,
        "load_average_at_start": load_at_start,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_suffix(".json").write_text(json.dumps(results, indent=2, default=str))
    write_report(args.out, results, baseline)
    table = Table(title="ingest, readings/s")
    for col in ("a", "b", "c", "c'", "c/a", "c/b", "p50", "p99"):
        table.add_column(col, justify="right")
    table.add_row(*(_fmt_rate(ps[k]) for k in ("a", "b", "c", "c1")), f"{results['ratios']['c_a']:.2f}",
                  f"{results['ratios']['c_b']:.1f}", f"{latency.p50 * 1000:.0f} ms", f"{latency.p99 * 1000:.0f} ms")
    console.print(table)
    if what_if and what_if["latency"]:
        console.log(f"what if, fetch wait {what_if['fetch_max_wait_ms']} ms: (c) "
                    f"{_fmt_rate(what_if['rate']['per_second'])} readings/s, latency p50 "
                    f"{what_if['latency']['p50'] * 1000:.0f} ms, p99 {what_if['latency']['p99'] * 1000:.0f} ms")
    console.log(f"report: {args.out} (and {args.out.with_suffix('.json')}); {results['total_seconds']:.0f} s in all")


if __name__ == "__main__":
    main()
