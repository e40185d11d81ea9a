"""The Faust app: topics, agents and the worker's web endpoints, on one screen.

Each agent takes batches of raw messages (`take_events`, acked only after the batch's
transaction commits) and hands them to its pipeline (streams/telemetry.py, lifecycle.py, intent.py, on streams/batch.py). Telemetry arrives
as reports of many readings, so Faust's per-message cost is paid once per poll cycle, not once
per reading. Consumer settings are tuned for the embedded Tansu broker's slow first group
join (docs/architecture.md, "Known quirks"): a worker takes its first event within seconds.

A batch that fails on the database is retried with backoff until it commits, never skipped;
when the failure broke the connection (a restarted server closes it), the retry gets a fresh
one. While a batch waits, the stream's bounded buffer fills and consumption stops: a slow
database slows the worker, it does not fill its memory. On SIGTERM Faust stops fetching, lets
the in-flight batch commit and be acked, commits the offsets and leaves the group.

Web pages: /metrics (Prometheus, streams/metrics.py), /healthz (alive: the event loop answers;
it also names a dependency that is down), /readyz (ready: the broker and the database answer,
503 otherwise, with the reason). They listen on TWIN_WORKER_WEB_HOST; when the port is taken (a
second worker on the host) the worker takes a free one and logs it.

When parts die: a database or broker that is down is logged once per backoff step, not once
per attempt (`twin.logs.Repeats`); a SIGTERM stops the worker within `STOP_WITHIN_SECONDS`
even then (a batch the database has not taken is left unacknowledged, and a restarted worker
takes it again from the tracked offsets); a database that does not answer at start, or a bad
setting, ends the worker with one line and a non-zero status.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import sys
import threading
from collections.abc import Awaitable, Callable, Sequence
from datetime import timedelta
from functools import partial

import faust
import psycopg
import structlog
from aiohttp.web import Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from streams import metrics
from streams.transport import TwinApp
from twin.messages import Record
from streams.batch import Pipeline, WorkerState
from streams.intent import IntentPipeline
from streams.lifecycle import LifecyclePipeline
from streams.reported import ReportedLetterPipeline
from streams.telemetry import TelemetryPipeline
from twin.errors import StoreError, TwinError
from twin.kafka_security import faust_credentials
from twin.logs import Repeats
from twin.settings import address_hint, get_settings
from twin.store import TwinStore

log = structlog.get_logger(__name__)
settings = get_settings()
topics = settings.topics

RETRY_FIRST_SECONDS = 0.2
RETRY_MAX_SECONDS = 5.0
"""Backoff between attempts at a batch the database refused: doubling from the first to the max."""
PROBE_SECONDS = 2.0
"""How long a health probe or a connection check waits for the broker or the database."""
EXIT_ON_BUG = 70
"""Exit status of a worker stopped by an unexpected error in a batch (EX_SOFTWARE)."""
LAG_EVERY_SECONDS = 5.0
"""How often consumer lag is measured (one ListOffsets request per assigned partition set)."""
STOP_WITHIN_SECONDS = 8.0
"""After a SIGTERM, the longest an orderly stop may take; then the worker exits at once. Safe: a
batch is acknowledged only after its transaction committed, so what was cut short comes again."""
EXIT_STOP_CUT_SHORT = 75
"""Exit status of a worker whose orderly stop was cut short (EX_TEMPFAIL: its work is redelivered)."""
EXIT_CANNOT_START = 2
"""Exit status of a worker that could not start: a bad setting, a database that does not answer."""

stopping = asyncio.Event()
"""Set on SIGTERM/SIGINT: retry loops give up instead of waiting for a database that may not come back."""
repeats = Repeats()

app = TwinApp(
    settings.worker_id,
    fetch_max_wait_ms=settings.fetch_max_wait_ms,
    broker=[f"kafka://{host}" for host in settings.kafka_bootstrap.split(",")],
    value_serializer="raw",
    key_serializer="raw",
    store="memory://",
    topic_allow_declare=False,          # topics are created up front with their partition counts
    topic_disable_leader=True,
    consumer_auto_offset_reset="earliest",
    broker_session_timeout=6,
    broker_heartbeat_interval=1,
    broker_rebalance_timeout=6,
    # A member that does not poll for this long leaves the group. Under backpressure (a full stream
    # buffer, a slow database) polls pause for a batch or more: at 10 s a busy worker left and
    # rejoined, and on Tansu that rejoin could wait for ever (docs/architecture.md, quirks). A dead
    # worker is noticed by the 6 s session timeout; a wedged one by its liveness probe.
    broker_max_poll_interval=120,
    broker_commit_interval=1.0,
    # Bounded memory: a slow database slows consumption. One batch in reserve keeps the worker fed while it
    # folds the one it took; a lagging worker holds its buffer full, and at fleet shape (reports of ~50
    # readings, ~22 KB) four batches were 176 MB of a 100,000-rack worker's resident memory.
    stream_buffer_maxsize=settings.batch_max_messages,
    web_host=settings.worker_web_host,
    web_bind=settings.worker_web_host,   # Faust binds 0.0.0.0 unless told: listen only where configured
    web_port=settings.worker_web_port,
    web_in_thread=False,
    datadir=str(settings.state_dir / "faust" / "{conf.id}"),  # Faust's own files: never in the caller's cwd
    producer_acks=-1,
    broker_credentials=faust_credentials(settings.kafka_security),  # TLS and SASL: TWIN_KAFKA_* settings
)

telemetry_topic = app.topic(topics.telemetry, value_type=bytes, key_type=bytes, partitions=topics.partitions)
lifecycle_topic = app.topic(topics.lifecycle, value_type=bytes, key_type=bytes, partitions=topics.partitions)
intent_topic = app.topic(topics.intent, value_type=bytes, key_type=bytes, partitions=1)
deadletter_topic = app.topic(topics.deadletter, value_type=bytes, key_type=bytes, partitions=1)
deviations_topic = app.topic(topics.deviations, value_type=bytes, key_type=bytes, partitions=topics.partitions)

state = WorkerState(settings.worker_id, stale_after_seconds=settings.telemetry_stale_seconds,
                    clock_skew=timedelta(seconds=settings.clock_skew_seconds))
pipelines: list[Pipeline] = []
_assignment: set[tuple[str, int]] = set()
"""The (topic, partition)s this worker holds now (set at every rebalance)."""
_OUT = {"deadletter": deadletter_topic, "deviations": deviations_topic}


async def emit(role: str, key: bytes | None, value: bytes) -> None:
    await _OUT[role].send(key=key, value=value)
    metrics.EVENTS_OUT.labels(_OUT[role].get_topic_name()).inc()


async def _run(stream: faust.StreamT, make: type[Pipeline]) -> None:
    """Feed a stream's batches to a pipeline; each batch is retried until it commits."""
    pipeline = make(await _connect(make.role), state, emit)
    pipeline.own(_assignment)
    pipelines.append(pipeline)
    try:
        await _until_committed(pipeline, pipeline.start)
        async for events in stream.take_events(settings.batch_max_messages, within=settings.batch_within_seconds):
            batch = [Record(e.message.topic, e.message.partition, e.message.offset, e.message.key, e.message.value)
                     for e in events]
            await _until_committed(pipeline, partial(pipeline.handle, batch))
    finally:  # stopping (or restarted by Faust): the sweep and the probes forget this pipeline
        pipelines.remove(pipeline)


async def _until_committed(pipeline: Pipeline, attempt: Callable[[], Awaitable[None]]) -> None:
    """Run `attempt` until the database takes it: back off, and mend the connection, between tries.

    Any other failure is a bug, and stops the worker at once, as a SIGKILL would. Letting the
    agent go on (Faust restarts a crashed agent on the rest of its stream) would commit later
    batches over this one: their tracked offsets would then make a redelivery of it look
    applied, and it would be lost. Stopped here, nothing after it is applied, and a restarted
    worker gets it again from the last acknowledged offset.
    """
    delay = RETRY_FIRST_SECONDS
    while True:
        try:
            await attempt()
            return
        except StoreError as exc:
            metrics.STORE_RETRIES.labels(pipeline.role).inc()
            pipeline.evict()
            await _park_if_stopping(pipeline.role, exc)
            log.warning("batch failed, retrying", role=pipeline.role, error=str(exc), retry_in=delay)
            await _pause(delay)
            await _park_if_stopping(pipeline.role, exc)
            delay = min(delay * 2, RETRY_MAX_SECONDS)
            await _mend(pipeline)
        except Exception:
            log.exception("batch failed on an unexpected error: the worker stops so that no later batch overtakes"
                          " it (a restarted worker takes it again)", role=pipeline.role)
            sys.stderr.flush()
            os._exit(EXIT_ON_BUG)


async def _park_if_stopping(role: str, exc: Exception) -> None:
    """While the worker stops, a batch the database refused is left unacknowledged (it comes again).

    The agent waits here until Faust's stop cancels it: raising instead would count as a crash,
    and Faust's supervisor would restart the agent on the same batch.
    """
    if stopping.is_set():
        log.warning("stopping: batch left for a restarted worker", role=role, error=str(exc))
        await asyncio.get_running_loop().create_future()


async def _pause(seconds: float) -> None:
    """Sleep between retries, cut short by a stop."""
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stopping.wait(), timeout=seconds)


async def _connect(role: str) -> TwinStore:
    """A connection to the twin database, waiting (with backoff) while it is unavailable."""
    delay = RETRY_FIRST_SECONDS
    while True:
        try:
            return await TwinStore.connect(settings.database_url.get_secret_value())
        except StoreError as exc:
            await _park_if_stopping(role, exc)
            log.warning("database unavailable", role=role, error=str(exc), retry_in=delay)
            await _pause(delay)
            delay = min(delay * 2, RETRY_MAX_SECONDS)


async def _mend(pipeline: Pipeline) -> None:
    """Give a pipeline a working connection: its own if it still answers, else a new one.

    A server restart leaves psycopg's connection closed; a connection cut without a word (a
    dropped network path) still looks open, so it must answer a ping in time to be kept.
    """
    async with pipeline.lock:
        broken = pipeline.store
        if not broken.closed:
            try:
                await asyncio.wait_for(broken.ping(), timeout=PROBE_SECONDS)
                return
            except (StoreError, TimeoutError) as exc:
                log.warning("database connection does not answer", role=pipeline.role, error=str(exc) or "timeout")
        try:
            pipeline.store = await TwinStore.connect(settings.database_url.get_secret_value())
        except StoreError as exc:
            log.warning("database still unavailable", role=pipeline.role, error=str(exc))
            return
        with contextlib.suppress(psycopg.Error, OSError):
            await broken.close()
        log.info("database connection replaced", role=pipeline.role)


@app.agent(intent_topic)
async def fold_intent(stream: faust.StreamT) -> None:
    """Facilities, design intent and rollout plans: the desired side of the fleet."""
    await _run(stream, IntentPipeline)


@app.agent(lifecycle_topic)
async def fold_lifecycle(stream: faust.StreamT) -> None:
    """Lifecycle, component and test events into each rack's event stream and twin."""
    await _run(stream, LifecyclePipeline)


@app.agent(deadletter_topic)
async def record_reported_letters(stream: faust.StreamT) -> None:
    """Dead letters of producers outside the worker (the Redfish collector) into the deadletters table."""
    await _run(stream, _ReportedLetters)


class _ReportedLetters(ReportedLetterPipeline):
    own_topics = frozenset((topics.telemetry, topics.lifecycle, topics.intent))


@app.agent(telemetry_topic)
async def fold_telemetry(stream: faust.StreamT) -> None:
    """Telemetry reports into time-series facts, current readings, health and deviations."""
    await _run(stream, TelemetryPipeline)


@app.timer(interval=2.0)
async def sweep() -> None:
    """Between batches: adopt input that arrived before its rack was known (and what else waits);
    mend a connection a database restart closed, even on a pipeline that has no traffic."""
    for pipeline in list(pipelines):
        if pipeline.store.closed:
            await _mend(pipeline)
        try:
            await pipeline.sweep()
        except StoreError as exc:
            log.warning("sweep failed; next tick retries", role=pipeline.role, error=str(exc))


@app.timer(interval=LAG_EVERY_SECONDS)
async def measure_lag() -> None:
    """Consumer lag of each assigned partition: its end offset minus the next offset to apply.

    The end is the larger of the broker's ListOffsets answer and the high watermark of the last
    fetch. Tansu 0.6 gets both wrong by up to one produce batch (its ListOffsets(latest) is the
    last batch's base offset + 1; a fetch reports the end of what it returned), so on the
    embedded broker lag reads low by up to a batch; Apache Kafka answers exactly.
    """
    consumer = app.consumer
    try:
        assignment = consumer.assignment()
        ends = dict(await asyncio.wait_for(consumer.highwaters(*assignment), timeout=PROBE_SECONDS)
                    ) if assignment else {}
    except Exception as exc:  # noqa: BLE001 - a broker that does not answer now is measured next time
        log.warning("consumer lag not measured", error=str(exc) or type(exc).__name__)
        return
    applied: dict[tuple[str, int], int] = {}
    for pipeline in pipelines:
        for tp, offset in pipeline.applied.items():
            applied[tp] = max(offset, applied.get(tp, -1))
    for tp in assignment:
        with contextlib.suppress(Exception):  # no fetch yet: no high watermark
            ends[tp] = max(ends.get(tp) or 0, consumer.highwater(tp) or 0)
        if ends.get(tp) is None:
            continue
        behind = ends[tp] - (applied.get((tp.topic, tp.partition), -1) + 1)
        metrics.CONSUMER_LAG.labels(tp.topic, str(tp.partition)).set(max(behind, 0))


@app.on_partitions_assigned.connect
async def _assigned(app: faust.App, assigned: set[faust.types.TP], **_: object) -> None:
    _assignment.clear()
    _assignment.update((tp.topic, tp.partition) for tp in assigned)
    for pipeline in pipelines:
        pipeline.own(_assignment)
    metrics.ASSIGNED_PARTITIONS.clear()
    metrics.CONSUMER_LAG.clear()
    for tp in assigned:
        metrics.ASSIGNED_PARTITIONS.labels(tp.topic, str(tp.partition)).set(1)
    log.info("partitions assigned", partitions=sorted(f"{tp.topic}:{tp.partition}" for tp in assigned))


@app.on_partitions_revoked.connect
async def _forget_offsets(app: faust.App, revoked: Sequence[object], **_: object) -> None:
    for pipeline in pipelines:
        pipeline.forget_offsets()
    metrics.ASSIGNED_PARTITIONS.clear()
    metrics.CONSUMER_LAG.clear()


@app.page("/metrics")
async def prometheus_metrics(web: object, request: object) -> Response:
    return Response(body=generate_latest(), headers={"Content-Type": CONTENT_TYPE_LATEST})


async def _dependencies() -> list[str]:
    """What keeps this worker from working now: the broker or the database not answering."""
    problems = []
    try:
        client = app.producer._ensure_producer().client  # type: ignore[attr-defined]  # aiokafka's, no public path
        if not await asyncio.wait_for(client.force_metadata_update(), timeout=PROBE_SECONDS):
            problems.append(f"broker: no answer from {settings.kafka_bootstrap} (metadata request failed)")
    except Exception as exc:  # noqa: BLE001 - any failure means "not ready", reported in the body
        problems.append(f"broker: no answer from {settings.kafka_bootstrap} ({exc or type(exc).__name__})")
    try:  # a connection of its own: a pipeline's may be busy in a long transaction
        conn = await psycopg.AsyncConnection.connect(settings.database_url.get_secret_value(),
                                                     autocommit=True, connect_timeout=PROBE_SECONDS)
        async with conn:
            await asyncio.wait_for(conn.execute("SELECT 1"), timeout=PROBE_SECONDS)
    except (psycopg.Error, OSError, TimeoutError) as exc:
        problems.append(f"database: {' '.join(str(exc).split()) or type(exc).__name__}")
    if not pipelines:
        problems.append("pipelines: not started yet")
    return problems


@app.page("/healthz")
async def healthz(web: object, request: object) -> Response:
    """Alive: the event loop answers. A dependency that is down is named but does not fail this
    probe: restarting a worker does not bring a database back (readiness says it cannot work)."""
    problems = await _dependencies()
    return Response(text="".join(f"degraded: {p}\n" for p in problems) + "ok\n")


@app.page("/readyz")
async def readyz(web: object, request: object) -> Response:
    """Ready: the broker and the database answer, and the pipelines have started (503 otherwise)."""
    problems = await _dependencies()
    if problems:
        return Response(status=503, text="\n".join(problems) + "\n")
    return Response(text="ready\n")


def _library_logging(level: str) -> dict[str, object]:
    """A `logging.config` dict that renders Faust's, aiokafka's and mode's own (stdlib) records
    as ours are rendered (twin/logs.py): JSON lines where no terminal reads them."""
    renderer = (structlog.dev.ConsoleRenderer(colors=False) if sys.stderr.isatty()
                else structlog.processors.JSONRenderer())
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"structured": {
            "()": structlog.stdlib.ProcessorFormatter,
            "foreign_pre_chain": [structlog.stdlib.add_log_level, structlog.stdlib.add_logger_name,
                                  structlog.processors.TimeStamper(fmt="iso", utc=True)],
            "processors": [structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                           structlog.processors.format_exc_info, renderer],
        }},
        "filters": {"repeats": {"()": lambda: repeats.filter_record}},
        "handlers": {"stderr": {"class": "logging.StreamHandler", "stream": "ext://sys.stderr",
                                "formatter": "structured", "filters": ["repeats"]}},
        "root": {"level": level.upper(), "handlers": ["stderr"]},
    }


class _Worker(faust.Worker):
    """Faust's worker, with a deadline on its stop (`STOP_WITHIN_SECONDS`)."""

    def _schedule_shutdown(self, sig: signal.Signals) -> None:
        if not self._signal_stop_time:
            stopping.set()
            timer = threading.Timer(STOP_WITHIN_SECONDS, _cut_stop_short)
            timer.daemon = True
            timer.start()
        super()._schedule_shutdown(sig)


def _cut_stop_short() -> None:
    log.warning("orderly stop took too long: exiting now; unacknowledged batches are taken again by the next worker",
                within_seconds=STOP_WITHIN_SECONDS)
    sys.stderr.flush()
    os._exit(EXIT_STOP_CUT_SHORT)


def _free_web_port(host: str, wanted: int) -> int:
    """`wanted` if it can be bound on `host`, else a free port (a second worker on the same host)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    if wanted:
        with socket.socket(family) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as aiohttp binds: TIME_WAIT is no owner
            try:
                probe.bind((host, wanted))
                return wanted
            except OSError:
                pass
    with socket.socket(family) as probe:
        probe.bind((host, 0))
        return int(probe.getsockname()[1])


def _cannot_start(problem: str) -> None:
    hint = address_hint()
    print(f"error: the worker cannot start: {' '.join(problem.split())}" + (f" ({hint})" if hint else ""),
          file=sys.stderr, flush=True)
    raise SystemExit(EXIT_CANNOT_START)


def main(argv: Sequence[str] | None = None) -> None:
    """Run one worker: migrate the database, then consume until stopped."""
    from twin.logs import configure, quiet_repeats
    from twin.store.migrations import migrate

    configure(settings.log_level)
    quiet_repeats(repeats)
    try:
        migrate(settings.database_url.get_secret_value())
    except TwinError as exc:
        _cannot_start(str(exc))
    log.info("worker starting", **settings.redacted())
    try:
        port = _free_web_port(settings.worker_web_host, settings.worker_web_port)
    except OSError as exc:
        _cannot_start(f"cannot listen on TWIN_WORKER_WEB_HOST={settings.worker_web_host}: {exc}")
    if port != settings.worker_web_port:
        log.warning("web port taken: serving /metrics, /healthz and /readyz on another", host=settings.worker_web_host,
                    wanted=settings.worker_web_port, port=port)
    app.conf.web_port = port
    log.info("web endpoints", url=f"http://{settings.worker_web_host}:{port}/readyz")
    app.conf.datadir.parent.mkdir(parents=True, exist_ok=True)  # Faust makes only the last level
    worker = _Worker(app, loglevel=settings.log_level, quiet=True,
                     logging_config=_library_logging(settings.log_level))
    worker.execute_from_commandline()
