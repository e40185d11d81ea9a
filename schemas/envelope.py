"""The envelope every event carries (docs/architecture.md, "Events").

`event_id` is the idempotency key; `seq` is the producer's per-source counter, so a consumer
can tell a repeat or a reordering from a new fact; `occurred_at` is the source's clock, never
the arrival time.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, ClassVar
from uuid import UUID

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

RACK_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$"
"""Rack ids are short printable slugs; they become Kafka keys and SQL values."""


class Contract(BaseModel):
    """Base of every contract model: frozen, strict about unknown fields."""

    model_config = ConfigDict(frozen=True, extra="forbid", str_strip_whitespace=False)


MAX_CLOCK_SKEW_SECONDS = 300
"""How far ahead of the worker's clock an `occurred_at` may lie (5 minutes) before the event is
refused as clock skew: a source with a broken clock must not freeze a twin in the future."""

ENVELOPE_REQUIRED = ("type", "schema_version")
"""Fields a worker requires on every event, although each model fills them in by default."""


def _require_type_and_version(schema: dict[str, Any]) -> None:
    """Mark `type` and `schema_version` required in the JSON Schema: our models default them (a
    producer of our own code need not repeat them), but a worker refuses an event without them."""
    required = schema.setdefault("required", [])
    for name in reversed(ENVELOPE_REQUIRED):
        if name in schema.get("properties", {}) and name not in required:
            required.insert(0, name)


class Envelope(Contract):
    """Fields common to every event on every topic."""

    model_config = ConfigDict(json_schema_extra=_require_type_and_version)

    TYPE: ClassVar[str] = ""
    SCHEMA_VERSION: ClassVar[int] = 1

    event_id: UUID = Field(description="Idempotency key: the same event_id is the same fact.")
    type: str = Field(description="Event type, for example `rack.installed`.")
    schema_version: int = Field(ge=1, description="Version of this event type's schema.")
    occurred_at: AwareDatetime = Field(description="When it happened, by the source's clock (UTC offset required).")
    source: str = Field(min_length=1, max_length=128, description="Producer: collector, factory MES, site tool.")
    seq: int = Field(ge=0, description="Per-source monotonic counter.")
    rack_id: str | None = Field(
        default=None, pattern=RACK_ID_PATTERN, description="The rack this event is about, when it is about one rack."
    )


def utc(ts: datetime) -> datetime:
    """Normalise an aware timestamp to UTC, so equal instants compare and serialise equal."""
    from datetime import timezone

    return ts.astimezone(timezone.utc)
