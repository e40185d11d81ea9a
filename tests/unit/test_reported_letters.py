"""The worker records dead letters that producers outside it reported (the Redfish collector), once,
and leaves its own (already recorded when it refused the input) alone. Against the in-memory store."""

from __future__ import annotations

import asyncio
from datetime import datetime, timezone

from schemas import DeadLetter
from streams.batch import WorkerState
from streams.reported import ReportedLetterPipeline
from twin.messages import Record
from twin.store.memory import MemoryStore

T0 = datetime(2027, 1, 4, 12, tzinfo=timezone.utc)


class Pipeline(ReportedLetterPipeline):
    own_topics = frozenset({"fleet.telemetry.v1"})


def record(offset: int, value: bytes) -> Record:
    return Record("fleet.deadletter.v1", 0, offset, None, value)


def reported(topic: str, reason: str, offset: int = 7) -> bytes:
    return DeadLetter(reason=reason, detail="d", topic=topic, partition=0, offset=offset, payload="{}",
                      recorded_at=T0).model_dump_json().encode()


def test_a_collectors_letters_are_recorded_once_its_own_are_not_and_a_bad_message_is_itself_a_letter() -> None:
    async def go() -> list[DeadLetter]:
        store = MemoryStore()
        pipeline = Pipeline(store, WorkerState("g"))
        batch = [record(0, reported("redfish:bmc-1", "endpoint-http-error")),
                 record(1, reported("fleet.telemetry.v1", "unknown-rack")),
                 record(2, b"{not json")]
        await pipeline.handle(batch)
        await pipeline.handle(batch)  # delivered again: tracked, nothing new
        await pipeline.handle([record(3, reported("redfish:bmc-1", "endpoint-http-error"))])  # the same letter again
        assert await store.tracked_offsets("g") == {("fleet.deadletter.v1", 0): 3}
        return await store.open_deadletters()

    letters = asyncio.run(go())
    assert sorted((d.reason, d.topic) for d in letters) == [
        ("endpoint-http-error", "redfish:bmc-1"), ("malformed-json", "fleet.deadletter.v1")]
