"""Facilities, design-intent revisions and rollout plans: stored, then used by every worker.

A revision joins the catalog the other pipelines read only once its transaction has committed:
they never judge by an intent the database lacks. The twins of its generation are then re-judged
by the pipelines that own them (stage, parts and firmware by each lifecycle pipeline, for the
racks of its partitions; telemetry checks by each telemetry pipeline holding the twins): each
lifecycle-family deviation has one writer, so a re-judgement never waits on, nor deadlocks with,
a lifecycle batch.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import structlog

from schemas import INTENT_TYPES, DeadLetter, FacilityRegistered, IntentPublished, RolloutPlanPublished
from streams import metrics
from streams.batch import Pipeline
from streams.deadletter import letter
from twin.messages import Record
from twin.domain.decoding import decode_event
from twin.errors import RejectedEvent
from twin.store import StoredEvent

__all__ = ["IntentPipeline"]

log = structlog.get_logger(__name__)


class IntentPipeline(Pipeline):
    """Facilities, design-intent revisions and rollout plans: stored, then used by every worker."""

    role = "intent"

    async def handle(self, messages: Sequence[Record]) -> None:
        async with self.lock:
            await self._handle(messages)

    async def _handle(self, messages: Sequence[Record]) -> None:
        fresh, offsets = await self._fresh(messages)
        letters: list[DeadLetter] = []
        events: list[tuple[Any, Record]] = []
        for m in fresh:
            try:
                events.append((decode_event(m.value, INTENT_TYPES), m))
            except RejectedEvent as exc:
                letters.append(letter(m, exc))
        catalog = self.state.catalog.copy()  # published into here; shared once committed
        revised = sorted({event.intent.generation for event, _ in events if isinstance(event, IntentPublished)
                          and catalog.publish(event.intent, event.occurred_at)})
        async with self.store.unit_of_work() as uow:
            await uow.append_events([StoredEvent(_intent_stream(e), e, m.value, (m.topic, m.partition, m.offset))
                                     for e, m in events])
            for event, _ in events:
                if isinstance(event, IntentPublished):
                    await uow.publish_intent(event.intent, event.occurred_at)
                elif isinstance(event, FacilityRegistered):
                    await uow.register_facility(event.facility, event.occurred_at)
                elif isinstance(event, RolloutPlanPublished):
                    await uow.publish_rollout(event.revision, event.targets)
            await uow.record_deadletters(letters)
            await uow.track(self.state.group_id, offsets)
        self.state.catalog = catalog
        if revised:
            log.info("new design intent published", generations=revised)
        self._committed(offsets)
        metrics.EVENTS_IN.labels(self.role).inc(len(messages))
        await self._publish(letters, [])


def _intent_stream(event: Any) -> str:
    if isinstance(event, IntentPublished):
        return f"intent:{event.intent.generation}"
    if isinstance(event, FacilityRegistered):
        return f"facility:{event.facility.facility_id}"
    return "rollout"
