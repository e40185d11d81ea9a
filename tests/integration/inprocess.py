"""Drive the worker's pipelines in-process against a real database (no broker): fast, for
tests whose subject is what the pipelines write, not how Kafka delivers it."""

from __future__ import annotations

from typing import Any

from streams.deadletter import Message
from streams.batch import WorkerState
from streams.intent import IntentPipeline
from streams.lifecycle import LifecyclePipeline
from streams.telemetry import TelemetryPipeline
from twin.store import TwinStore


async def run_pipelines(database_url: str, messages: list[Any], batch: int) -> None:
    state = WorkerState("property")
    pipelines = {
        "intent": IntentPipeline(await TwinStore.connect(database_url), state),
        "lifecycle": LifecyclePipeline(await TwinStore.connect(database_url), state),
        "telemetry": TelemetryPipeline(await TwinStore.connect(database_url), state),
    }
    offsets: dict[str, int] = {}
    pending: dict[str, list[Message]] = {role: [] for role in pipelines}
    for m in messages:
        offsets[m.role] = offsets.get(m.role, -1) + 1
        pending[m.role].append(Message(m.role, 0, offsets[m.role], m.key, m.value))
        if len(pending[m.role]) >= batch:
            await pipelines[m.role].handle(pending[m.role])
            pending[m.role] = []
    for role, rest in pending.items():
        if rest:
            await pipelines[role].handle(rest)
    for pipeline in pipelines.values():
        await pipeline.sweep()
        await pipeline.store.close()
