"""Kafka messages as the twin's code handles them: one type for each direction.

- `Message` is what a producer sends (the simulator, `twin deadletters replay`, a test): the
  topic's role, the key that keeps a rack on one partition, the bytes. The publisher maps the
  role to the configured topic name.
- `Record` is what a consumer delivered to a pipeline: where it sat (topic, partition, offset:
  the tracked offset and the dead letter's key) and its bytes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, NamedTuple

__all__ = ["Message", "Record", "Role"]

Role = Literal["intent", "lifecycle", "telemetry"]


class Message(NamedTuple):
    """One Kafka record as a producer sends it; `bad` names the bad-input kind of a crafted one."""

    role: Role
    key: bytes
    value: bytes
    bad: str | None = None


@dataclass(frozen=True, slots=True)
class Record:
    """One Kafka record as a pipeline sees it, whichever consumer delivered it."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes
