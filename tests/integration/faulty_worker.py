"""`twin worker` with one injected bug: its pipelines raise on the message that
`TWIN_TEST_FAIL_AT` ("topic:partition:offset") names, every time it comes (a crash-recovery test)."""

from __future__ import annotations

import os
from collections.abc import Sequence

from streams.app import main
from streams.batch import Pipeline
from streams.intent import IntentPipeline
from streams.lifecycle import LifecyclePipeline
from streams.telemetry import TelemetryPipeline
from twin.messages import Record

topic, partition, offset = os.environ["TWIN_TEST_FAIL_AT"].rsplit(":", 2)
POISON = (topic, int(partition), int(offset))


def _failing(cls: type[Pipeline]) -> None:
    original = cls.handle

    async def handle(self: Pipeline, messages: Sequence[Record]) -> None:
        if any((m.topic, m.partition, m.offset) == POISON for m in messages):
            raise RuntimeError(f"injected bug: a batch holding {POISON}")
        await original(self, messages)

    cls.handle = handle  # type: ignore[method-assign]


for cls in (IntentPipeline, LifecyclePipeline, TelemetryPipeline):
    _failing(cls)
main()
