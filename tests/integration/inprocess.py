"""Drive the worker's pipelines in-process against a real database (no broker): fast, for
tests whose subject is what the pipelines write, not how Kafka delivers it.

With `workers=2`, two workers (each its own state and connections) split the partitions as a
consumer group would: a message's partition is its key's hash, partition p goes to worker
p % 2, and the one intent partition to the first worker. A rack's lifecycle (keyed by rack) and
its telemetry (keyed by row) can then land on different workers, as they do in production.
"""

from __future__ import annotations

import zlib
from typing import Any

from streams.batch import Pipeline, WorkerState
from twin.messages import Record
from streams.intent import IntentPipeline
from streams.lifecycle import LifecyclePipeline
from streams.telemetry import TelemetryPipeline
from twin.store import TwinStore

PARTITIONS = 4


def partition_of(role: str, key: bytes | None) -> int:
    return 0 if role == "intent" else zlib.crc32(key or b"") % PARTITIONS


async def run_pipelines(database_url: str, messages: list[Any], batch: int, *, workers: int = 1,
                        topic_prefix: str = "") -> None:
    """Feed `messages` (the simulator's: role, key, value) to `workers` workers in batches of `batch`,
    then sweep. Topics are named by role, after `topic_prefix` (a later run with another prefix is
    new input, at offsets of its own)."""
    crew: list[dict[str, Pipeline]] = []
    for w in range(workers):
        state = WorkerState(f"property-{w}")
        crew.append({
            "intent": IntentPipeline(await TwinStore.connect(database_url), state),
            "lifecycle": LifecyclePipeline(await TwinStore.connect(database_url), state),
            "telemetry": TelemetryPipeline(await TwinStore.connect(database_url), state),
        })
    for w, pipelines in enumerate(crew):
        for role, pipeline in pipelines.items():
            pipeline.own({(topic_prefix + role, p) for p in range(PARTITIONS if role != "intent" else 1)
                          if (p % workers == w if role != "intent" else w == 0)})
    offsets: dict[tuple[str, int], int] = {}
    pending: dict[tuple[int, str], list[Record]] = {}
    for m in messages:
        p = partition_of(m.role, m.key)
        w = 0 if m.role == "intent" else p % workers
        offsets[(m.role, p)] = offsets.get((m.role, p), -1) + 1
        queue = pending.setdefault((w, m.role), [])
        queue.append(Record(topic_prefix + m.role, p, offsets[(m.role, p)], m.key, m.value))
        if len(queue) >= batch:
            await crew[w][m.role].handle(queue)
            pending[(w, m.role)] = []
    for (w, role), rest in pending.items():
        if rest:
            await crew[w][role].handle(rest)
    for _ in range(2):  # a sweep's adoption can make another's refold due
        for pipelines in crew:
            for pipeline in pipelines.values():
                await pipeline.sweep()
    for pipelines in crew:
        for pipeline in pipelines.values():
            await pipeline.store.close()
