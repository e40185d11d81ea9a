"""Bad input becomes a dead letter: a precise reason, the offending bytes, where it came from.

A dead letter is written to the `deadletters` table in the same transaction as the batch's
good effects (so it cannot vanish, nor appear twice: its key is topic, partition, offset and
reading index), then published to `fleet.deadletter.v1` for whoever watches, and counted by
reason.
"""

from __future__ import annotations

from datetime import datetime, timezone

from schemas import DeadLetter
from twin.messages import Record
from twin.errors import RejectedEvent

__all__ = ["letter"]

_PAYLOAD_LIMIT = 64 * 1024


def letter(
    message: Record,
    error: RejectedEvent,
    *,
    index: int | None = None,
    payload: str | None = None,
    rack_id: str | None = None,
    event_id: str | None = None,
    source: str | None = None,
    now: datetime | None = None,
) -> DeadLetter:
    """The dead letter for `message` (or for reading `index` inside it) refused with `error`."""
    text = payload if payload is not None else message.value.decode("utf-8", errors="backslashreplace")
    return DeadLetter(
        reason=error.reason,
        detail=error.detail[:2_000],
        topic=message.topic,
        partition=message.partition,
        offset=message.offset,
        index=index,
        event_id=event_id,
        rack_id=rack_id,
        source=source,
        payload=text[:_PAYLOAD_LIMIT],
        recorded_at=now or datetime.now(timezone.utc),
    )
