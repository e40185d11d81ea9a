"""Dead letters reported by producers outside the worker (the Redfish collector): recorded too.

Why: `twin deadletters` reads the `deadletters` table, and the collector has no database (it
runs beside the equipment); it publishes what it could not use (an HTTP error, a body that is
not JSON) to `fleet.deadletter.v1`, the topic the design names for bad input. This pipeline
consumes that topic and records those letters, exactly once (their key is the letter's own
topic, partition, offset and index; the topic offsets are tracked in the same transaction).

The worker publishes its own letters to the same topic after recording them; those (the letters
about the topics it consumes) are skipped here, so a settled or replayed letter is never
reopened. A message on the topic that is not a dead letter is itself recorded, with its reason.
"""

from __future__ import annotations

from collections.abc import Sequence

import structlog
from pydantic import ValidationError

from schemas import DeadLetter
from streams import metrics
from streams.batch import Pipeline, WorkerState
from streams.deadletter import letter
from twin.domain.decoding import reason_for
from twin.messages import Record
from twin.store import TwinStore

__all__ = ["ReportedLetterPipeline"]

log = structlog.get_logger(__name__)


class ReportedLetterPipeline(Pipeline):
    """Letters on the dead-letter topic about input the worker never saw: into the `deadletters` table."""

    role = "deadletter"
    own_topics: frozenset[str] = frozenset()
    """The topics the worker consumes (set by the worker from its settings): their letters were
    recorded when they were refused."""

    def __init__(self, store: TwinStore, state: WorkerState, emit: object = None) -> None:
        super().__init__(store, state, None)  # nothing to publish: a letter is not published twice

    async def handle(self, messages: Sequence[Record]) -> None:
        async with self.lock:
            fresh, offsets = await self._fresh(messages)
            letters: list[DeadLetter] = []
            for m in fresh:
                try:
                    reported = DeadLetter.model_validate_json(m.value)
                except ValidationError as exc:
                    letters.append(letter(m, reason_for(exc, what="dead letter")))
                    continue
                if reported.topic not in self.own_topics:
                    letters.append(reported)
            async with self.store.unit_of_work() as uow:
                await uow.record_deadletters(letters)
                await uow.track(self.state.group_id, offsets)
            self._committed(offsets)
            for d in letters:
                metrics.DEADLETTERS.labels(d.reason).inc()
            metrics.EVENTS_IN.labels(self.role).inc(len(messages))
