"""The Faust app: topics, agents and the worker's web endpoints, on one screen.

Each agent takes batches of raw messages (`take_events`, acked only after the batch's
transaction commits) and hands them to its pipeline (streams/pipeline.py). Telemetry arrives
as reports of many readings, so Faust's per-message cost is paid once per poll cycle, not once
per reading. Consumer settings are tuned for the embedded Tansu broker's slow first group
join (DESIGN.md, "Known quirks"): a worker takes its first event within seconds.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import faust
import structlog
from aiohttp.web import Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from streams import metrics
from streams.deadletter import Message
from streams.pipeline import IntentPipeline, LifecyclePipeline, TelemetryPipeline, WorkerState, _Pipeline
from twin.errors import StoreError
from twin.settings import get_settings
from twin.store import TwinStore

log = structlog.get_logger(__name__)
settings = get_settings()
topics = settings.topics

app = faust.App(
    settings.worker_id,
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
    broker_max_poll_interval=10,
    broker_commit_interval=1.0,
    stream_buffer_maxsize=settings.batch_max_messages * 4,   # bounded memory: a slow database slows consumption
    web_host=settings.worker_web_host,
    web_port=settings.worker_web_port,
    web_in_thread=False,
    producer_acks=-1,
)

telemetry_topic = app.topic(topics.telemetry, value_type=bytes, key_type=bytes, partitions=topics.partitions)
lifecycle_topic = app.topic(topics.lifecycle, value_type=bytes, key_type=bytes, partitions=topics.partitions)
intent_topic = app.topic(topics.intent, value_type=bytes, key_type=bytes, partitions=1)
deadletter_topic = app.topic(topics.deadletter, value_type=bytes, key_type=bytes, partitions=1)
deviations_topic = app.topic(topics.deviations, value_type=bytes, key_type=bytes, partitions=topics.partitions)

state = WorkerState(settings.worker_id, stale_after_seconds=settings.telemetry_stale_seconds)
pipelines: list[_Pipeline] = []
_OUT = {"deadletter": deadletter_topic, "deviations": deviations_topic}


async def emit(role: str, key: bytes | None, value: bytes) -> None:
    await _OUT[role].send(key=key, value=value)
    metrics.EVENTS_OUT.labels(_OUT[role].get_topic_name()).inc()


async def _run(stream: faust.StreamT, make: type[_Pipeline]) -> None:
    """Feed a stream's batches to a pipeline, retrying a failed batch with backoff until it commits."""
    store = await TwinStore.connect(settings.database_url.get_secret_value())
    pipeline = make(store, state, emit)
    pipelines.append(pipeline)
    await pipeline.start()
    async for events in stream.take_events(settings.batch_max_messages, within=settings.batch_within_seconds):
        batch = [Message(e.message.topic, e.message.partition, e.message.offset, e.message.key, e.message.value)
                 for e in events]
        delay = 0.2
        while True:
            try:
                await pipeline.handle(batch)
                break
            except StoreError as exc:
                metrics.STORE_RETRIES.labels(pipeline.role).inc()
                log.warning("batch failed, retrying", role=pipeline.role, error=str(exc), retry_in=delay)
                pipeline.evict()
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)
                try:
                    if pipeline.store.closed:
                        pipeline.store = await TwinStore.connect(settings.database_url.get_secret_value())
                        await pipeline.start()
                except StoreError as again:
                    log.warning("database still unavailable", error=str(again))


@app.agent(intent_topic)
async def fold_intent(stream: faust.StreamT) -> None:
    """Facilities, design intent and rollout plans: the desired side of the fleet."""
    await _run(stream, IntentPipeline)


@app.agent(lifecycle_topic)
async def fold_lifecycle(stream: faust.StreamT) -> None:
    """Lifecycle, component and test events into each rack's event stream and twin."""
    await _run(stream, LifecyclePipeline)


@app.agent(telemetry_topic)
async def fold_telemetry(stream: faust.StreamT) -> None:
    """Telemetry reports into time-series facts, current readings, health and deviations."""
    await _run(stream, TelemetryPipeline)


@app.timer(interval=2.0)
async def sweep() -> None:
    """Between batches: adopt input that arrived before its rack was known (and what else waits)."""
    for pipeline in list(pipelines):
        try:
            await pipeline.sweep()
        except StoreError as exc:
            log.warning("sweep failed; next tick retries", role=pipeline.role, error=str(exc))


@app.on_partitions_revoked.connect
async def _forget_offsets(app: faust.App, revoked: Sequence[object], **_: object) -> None:
    for pipeline in pipelines:
        pipeline.forget_offsets()


@app.page("/metrics")
async def prometheus_metrics(web: object, request: object) -> Response:
    return Response(body=generate_latest(), headers={"Content-Type": CONTENT_TYPE_LATEST})


@app.page("/healthz")
async def healthz(web: object, request: object) -> Response:
    """Alive: the event loop answers."""
    return Response(text="ok\n")


@app.page("/readyz")
async def readyz(web: object, request: object) -> Response:
    """Ready: the broker has assigned us partitions' worth of metadata and the database answers."""
    problems = []
    try:
        await asyncio.wait_for(app.producer.client.force_metadata_update(), timeout=2)  # type: ignore[attr-defined]
    except Exception as exc:  # noqa: BLE001 - any failure means "not ready", reported in the body
        problems.append(f"broker: {exc}")
    for pipeline in pipelines[:1]:
        try:
            await asyncio.wait_for(pipeline.store.ping(), timeout=2)
        except Exception as exc:  # noqa: BLE001
            problems.append(f"database: {exc}")
    if not pipelines:
        problems.append("pipelines not started yet")
    if problems:
        return Response(status=503, text="\n".join(problems) + "\n")
    return Response(text="ready\n")


def main(argv: Sequence[str] | None = None) -> None:
    """Run one worker: migrate the database, then consume until stopped."""
    from twin.logs import configure
    from twin.migrations import migrate

    configure(settings.log_level)
    log.info("worker starting", **settings.redacted())
    migrate(settings.database_url.get_secret_value())
    worker = faust.Worker(app, loglevel=settings.log_level, quiet=True)
    worker.execute_from_commandline()
