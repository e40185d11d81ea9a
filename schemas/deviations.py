"""What the twin emits: deviations from design intent, and dead letters for bad input."""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import AwareDatetime, Field

from schemas.envelope import RACK_ID_PATTERN, Contract, Envelope

Severity = Literal["warning", "critical"]


class Deviation(Contract):
    """One check of one rack against its generation's intent that did not hold.

    Desired beside reported, as Ditto keeps them: the measured value, the allowed range, and
    the intent revision that judged it.
    """

    rack_id: str = Field(pattern=RACK_ID_PATTERN)
    check: str = Field(pattern=r"^[a-z0-9][a-z0-9-]{0,63}$", description="For example `power-over-budget`.")
    severity: Severity
    measured: float | str | None = None
    allowed_min: float | None = None
    allowed_max: float | None = None
    unit: str | None = None
    generation: str
    intent_revision: int = Field(ge=0)
    detail: str = ""


class DeviationChanged(Envelope):
    """A deviation started (`firing`) or ended (`resolved`); the alert engine routes it."""

    TYPE: ClassVar[str] = "deviation.changed"
    type: Literal["deviation.changed"] = "deviation.changed"
    schema_version: Literal[1] = 1
    state: Literal["firing", "resolved"]
    deviation: Deviation


class DeadLetter(Contract):
    """Bad input, kept with the precise reason it was refused (topic `fleet.deadletter.v1`)."""

    reason: str = Field(description="Slug: malformed-json, unknown-type, out-of-physical-range, ...")
    detail: str = Field(description="What exactly was wrong, for a human.")
    topic: str
    partition: int
    offset: int
    index: int | None = Field(default=None, description="Reading index inside a telemetry report, when one reading was bad.")
    event_id: str | None = None
    rack_id: str | None = None
    source: str | None = Field(default=None, description="The producer, when the envelope could be read.")
    payload: str = Field(description="The offending bytes (or reading), as text.")
    recorded_at: AwareDatetime
