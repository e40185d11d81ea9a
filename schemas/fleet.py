"""The fleet's places and plan: facilities, halls, rows, and the rollout plan.

Vocabulary follows NetBox dcim (facility ~ Site, hall ~ Location); capacities are the site
limits capacity planning compares against. These travel on `fleet.intent.v1` with the design
intent: both say what the fleet is meant to be.
"""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field

from schemas.envelope import Contract, Envelope
from schemas.lifecycle import ID, SLUG


class Row(Contract):
    """A row of rack positions, fed by its own power and cooling."""

    row_id: str = Field(pattern=ID)
    positions: int = Field(ge=1, le=1_000)
    power_capacity_watts: float = Field(gt=0)
    cooling_capacity_watts: float = Field(gt=0)


class Hall(Contract):
    """A data hall: rows under one roof, with the hall's own power and cooling limits."""

    hall_id: str = Field(pattern=ID)
    power_capacity_watts: float = Field(gt=0)
    cooling_capacity_watts: float = Field(gt=0)
    rows: tuple[Row, ...] = Field(min_length=1)


class Facility(Contract):
    """A data centre: ours, or a partner's (then `operator` names the partner)."""

    facility_id: str = Field(pattern=ID)
    name: str = Field(min_length=1, max_length=128)
    ownership: Literal["own", "partner"]
    operator: str = Field(min_length=1, max_length=128, description="Who runs the site (us, or the partner's name).")
    region: str = Field(min_length=1, max_length=64)
    halls: tuple[Hall, ...] = Field(min_length=1)


class FacilityRegistered(Envelope):
    """A facility joined the fleet or its layout or limits changed (the latest registration wins)."""

    TYPE: ClassVar[str] = "facility.registered"
    type: Literal["facility.registered"] = "facility.registered"
    schema_version: Literal[1] = 1
    facility: Facility


class RolloutTarget(Contract):
    """How many racks of a generation a facility should have in service at the end of a quarter."""

    facility_id: str = Field(pattern=ID)
    generation: str = Field(pattern=SLUG)
    quarter: str = Field(pattern=r"^20[2-3][0-9]Q[1-4]$", description="For example `2027Q1`.")
    racks_in_service: int = Field(ge=0, le=100_000)


class RolloutPlanPublished(Envelope):
    """A revision of the rollout plan, 2026H2 through 2029 (the latest revision wins)."""

    TYPE: ClassVar[str] = "rollout.published"
    type: Literal["rollout.published"] = "rollout.published"
    schema_version: Literal[1] = 1
    revision: int = Field(ge=1)
    targets: tuple[RolloutTarget, ...]
