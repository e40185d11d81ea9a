"""HTTP ingest for factory, logistics and site tools: a batch of events -> validated -> Kafka.

Why here and not in the workers: a tool posting over HTTP should hear at once what is wrong
with its batch, in the words the dead letters use (`twin.domain.decoding` gives both), and a
batch with a bad item publishes nothing (no partial write): the caller fixes and resends it.
Idempotent by `event_id`: ids published recently (a bounded memory) are answered as
duplicates and not sent again; beyond that memory the workers' event store, keyed by
`event_id`, ignores a repeat.

Kafka keys follow the producer contract: a lifecycle event by its rack, a telemetry report by
its `source` (a collector's racks stay on one partition), intent-topic events by type.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import orjson

from schemas import INTENT_TYPES, LIFECYCLE_TYPES, TELEMETRY_TYPES, Envelope
from twin.domain.decoding import decode_event, decode_report
from twin.messages import Message
from twin.errors import MalformedEvent, RejectedEvent, UnknownEventType
from twin.publisher import Publisher
from twin.store.answers import BadItem, IngestAccepted, IngestRejected

__all__ = ["BadItem", "Ingest", "IngestAccepted", "IngestRejected", "MAX_BATCH", "validate_batch"]

MAX_BATCH = 5_000
"""Events per request: more is a bulk load, which belongs on Kafka directly."""

_FAMILIES: tuple[tuple[str, dict[str, type[Envelope]]], ...] = (
    ("telemetry", TELEMETRY_TYPES), ("lifecycle", LIFECYCLE_TYPES), ("intent", INTENT_TYPES))
_KNOWN = sorted(t for _, types in _FAMILIES for t in types)


@dataclass(frozen=True, slots=True)
class _Valid:
    event_id: str
    message: Message


def _bad(index: int, exc: RejectedEvent, item: Any, reading: int | None = None) -> BadItem:
    event_id = item.get("event_id") if isinstance(item, dict) else None
    return BadItem(index=index, reason=exc.reason, detail=exc.detail, reading=reading,
                   event_id=event_id if isinstance(event_id, str) else None)


def validate_batch(items: Sequence[Any]) -> tuple[list[_Valid], list[BadItem]]:
    """Each item decoded with the workers' own decoder; the messages to publish, or every item's reason."""
    good: list[_Valid] = []
    bad: list[BadItem] = []
    for index, item in enumerate(items):
        if not isinstance(item, dict):
            bad.append(_bad(index, MalformedEvent(f"an event must be a JSON object, got {type(item).__name__}",
                                                  reason="malformed-json"), item))
            continue
        kind = item.get("type")
        role = next((r for r, types in _FAMILIES if isinstance(kind, str) and kind in types), None)
        if role is None:
            error: RejectedEvent = (MalformedEvent("event is missing required field(s): type", reason="missing-field")
                                    if "type" not in item else
                                    UnknownEventType(f"unknown event type {kind!r}; known: {', '.join(_KNOWN)}"))
            bad.append(_bad(index, error, item))
            continue
        raw = orjson.dumps(item)
        try:
            if role == "telemetry":
                decoded = decode_report(raw)
                if decoded.bad:
                    bad.extend(_bad(index, b.error, item, b.index) for b in decoded.bad)
                    continue
                event: Envelope | None = decoded.report
                key = event.source if event is not None else ""
            else:
                event = decode_event(raw, dict(_FAMILIES)[role])
                key = event.rack_id if role == "lifecycle" and event.rack_id else event.type
        except RejectedEvent as exc:
            bad.append(_bad(index, exc, item))
            continue
        assert event is not None
        good.append(_Valid(str(event.event_id), Message(role, key.encode(), event.model_dump_json().encode())))  # type: ignore[arg-type]
    return good, bad


class Ingest:
    """Publishes validated batches; remembers recently published event ids (bounded)."""

    def __init__(self, publisher_factory: Any, remember: int = 200_000) -> None:
        self._factory = publisher_factory
        self._publisher: Publisher | None = None
        self._seen: OrderedDict[str, None] = OrderedDict()
        self._remember = remember
        self._lock = threading.Lock()

    def publish(self, valid: list[_Valid]) -> IngestAccepted:
        with self._lock:
            if self._publisher is None:
                self._publisher = self._factory()
            accepted, duplicates, batch = [], [], set()
            for v in valid:
                if v.event_id in self._seen or v.event_id in batch:
                    duplicates.append(v.event_id)
                    continue
                batch.add(v.event_id)
                self._publisher.send(v.message)
                accepted.append(v.event_id)
            self._publisher.flush(timeout_s=10)
            for event_id in accepted:
                self._seen[event_id] = None
            while len(self._seen) > self._remember:
                self._seen.popitem(last=False)
            return IngestAccepted(accepted=accepted, duplicates=duplicates)

    def close(self) -> None:
        with self._lock:
            if self._publisher is not None:
                self._publisher.close(timeout_s=5)
                self._publisher = None
