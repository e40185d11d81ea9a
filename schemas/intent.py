"""Design intent per generation: what a rack of that generation is meant to be.

Like NetBox's RackType, intent belongs to the generation, not to each rack; like Ditto's
desired properties, it stands beside what the twin observes. Each publication is a new
`revision`; conformance names the revision that judged a rack.
"""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field, model_validator

from schemas.envelope import Contract, Envelope
from schemas.lifecycle import SLUG, ComponentKind, TestKind


class Range(Contract):
    """A closed interval [min, max]; either end may be open (None)."""

    min: float | None = None
    max: float | None = None

    @model_validator(mode="after")
    def _ordered(self) -> "Range":
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"range min {self.min} is above max {self.max}")
        return self

    def contains(self, value: float) -> bool:
        return (self.min is None or value >= self.min) and (self.max is None or value <= self.max)


class GenerationIntent(Contract):
    """The design intent of one generation at one revision."""

    generation: str = Field(pattern=SLUG)
    revision: int = Field(ge=1)
    title: str = Field(min_length=1, max_length=128, description="For example `GB300 NVL72, 130 kW, liquid-cooled`.")
    power_budget_watts: Range = Field(description="Allowed total rack input power.")
    cooling_capacity_watts: float = Field(gt=0, description="Heat the rack's liquid loop is designed to remove.")
    inlet_temperature_celsius: Range
    coolant_supply_temperature_celsius: Range
    coolant_flow_liters_per_minute_per_kilowatt: Range = Field(description="Flow needed per kW drawn.")
    hottest_accelerator_temperature_celsius: Range
    required_components: dict[ComponentKind, int] = Field(default_factory=dict, description="Kind -> count.")
    firmware_baseline: dict[ComponentKind, str] = Field(default_factory=dict, description="Kind -> version.")
    required_tests: tuple[TestKind, ...] = ()
    stage_allowance_days: dict[str, float] = Field(
        default_factory=dict, description="Lifecycle stage slug -> days a rack may stay before it is stalled."
    )


class IntentPublished(Envelope):
    """A generation's design intent was published at a new revision."""

    TYPE: ClassVar[str] = "intent.published"
    type: Literal["intent.published"] = "intent.published"
    schema_version: Literal[1] = 1
    intent: GenerationIntent
