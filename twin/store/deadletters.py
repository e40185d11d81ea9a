"""Sending dead letters through again, after a fix (`twin deadletters replay`).

A whole refused message goes back to its topic as it was. A refused *reading* (one bad
reading of a report) goes back as a report of one, under the source that sent it, so its
identity (rack, source, occurred_at) is the original's and a reading that is now accepted
twice is still one fact. Each letter sent is marked `replayed_at`; if it is refused again it
gets a new letter with its reason, so nothing disappears.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any
from uuid import NAMESPACE_URL, uuid5

import orjson
import psycopg

from twin.errors import StoreError
from twin.publisher import Publisher
from twin.settings import Topics
from twin.messages import Message

__all__ = ["Replayable", "replay", "to_message"]


@dataclass(frozen=True, slots=True)
class Replayable:
    """A stored dead letter, as much of it as a replay needs."""

    id: int
    topic: str
    idx: int
    reason: str
    source: str | None
    rack_id: str | None
    payload: str
    recorded_at: Any


def to_message(letter: Replayable, topics: Topics) -> Message:
    """The Kafka message that sends `letter` through again."""
    roles = {topics.telemetry: "telemetry", topics.lifecycle: "lifecycle", topics.intent: "intent"}
    role = roles.get(letter.topic)
    if role is None:
        raise StoreError(f"dead letter {letter.id} came from topic {letter.topic!r}, which this twin does not consume")
    key = letter.rack_id.encode() if letter.rack_id else None
    if letter.idx < 0:
        return Message(role, key or b"replay", letter.payload.encode())  # type: ignore[arg-type]
    try:
        reading = orjson.loads(letter.payload)
        occurred_at = reading.get("occurred_at") if isinstance(reading, dict) else None
    except orjson.JSONDecodeError:
        reading, occurred_at = letter.payload, None
    report = {
        "event_id": str(uuid5(NAMESPACE_URL, f"twin-deadletter/{letter.id}")),
        "type": "telemetry.reported",
        "schema_version": 1,
        "occurred_at": occurred_at or letter.recorded_at.isoformat(),
        "source": letter.source or "deadletter-replay",
        "seq": letter.id,
        "readings": [reading],
    }
    if letter.rack_id:
        report["rack_id"] = letter.rack_id
    return Message("telemetry", key or b"replay", orjson.dumps(report))


def replay(database_url: str, publisher: Publisher, topics: Topics, *, reasons: Iterable[str] = (),
           limit: int = 10_000) -> Counter[str]:
    """Publish open dead letters (of `reasons`, or all) again and mark them replayed; counts by reason."""
    wanted = list(reasons)
    sent: Counter[str] = Counter()
    try:
        with psycopg.connect(database_url, connect_timeout=10) as conn:
            rows = conn.execute(
                "SELECT id, topic, idx, reason, source, rack_id, payload, recorded_at FROM deadletters"
                " WHERE replayed_at IS NULL AND (cardinality(%s::text[]) = 0 OR reason = ANY(%s))"
                " ORDER BY id LIMIT %s FOR UPDATE SKIP LOCKED",
                (wanted, wanted, limit),
            ).fetchall()
            letters = [Replayable(*row) for row in rows]
            for letter in letters:
                publisher.send(to_message(letter, topics))
                sent[letter.reason] += 1
            publisher.flush()  # only what the broker acknowledged is marked replayed
            conn.execute("UPDATE deadletters SET replayed_at = now() WHERE id = ANY(%s)", ([x.id for x in letters],))
    except psycopg.Error as exc:
        raise StoreError(f"cannot read dead letters: {exc}") from exc
    return sent
