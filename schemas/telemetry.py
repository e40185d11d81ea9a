"""Rack telemetry, carried as reports: one Kafka message per collector poll cycle.

Why reports: Faust's per-message cost (~100 µs) caps a worker near 10,000 messages/s, so one
reading per message would waste nine tenths of a worker (docs/architecture.md, "Telemetry travels as
reports"). A reading's identity is (rack_id, source, occurred_at): a repeated report, or the
same reading in two reports, is one fact.

Field names are Redfish names in snake case with their unit (`power_watts`,
`inlet_temperature_celsius`); the ranges are physical limits, not operating envelopes (those
are design intent, judged by conformance).
"""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import AwareDatetime, Field

from schemas.envelope import RACK_ID_PATTERN, Contract, Envelope


class RackReading(Contract):
    """One rack's readings at one instant, as one poll of its BMC, CDU and PDUs saw them."""

    rack_id: str = Field(pattern=RACK_ID_PATTERN)
    occurred_at: AwareDatetime = Field(description="When the readings were taken, by the source's clock.")
    power_watts: float = Field(ge=0, le=1_500_000, description="Total rack input power.")
    inlet_temperature_celsius: float = Field(ge=-20, le=80, description="Front (inlet) air temperature.")
    outlet_temperature_celsius: float = Field(ge=-20, le=120, description="Rear (exhaust) air temperature.")
    coolant_supply_temperature_celsius: float = Field(ge=0, le=100, description="Secondary loop supply to the rack.")
    coolant_return_temperature_celsius: float = Field(ge=0, le=100, description="Secondary loop return from the rack.")
    coolant_flow_liters_per_minute: float = Field(ge=0, le=2_000, description="Secondary loop flow through the rack.")
    coolant_differential_pressure_kilopascals: float = Field(ge=0, le=1_000, description="Supply minus return pressure.")
    leak_detected: bool = Field(description="Any leak sensor of the rack or its manifold tripped.")
    hottest_accelerator_temperature_celsius: float = Field(ge=0, le=150, description="Max over all GPUs/accelerators.")
    fan_speed_percent: float = Field(ge=0, le=100, description="Mean fan duty of the rack's trays.")
    network_links_up: int = Field(ge=0, le=10_000, description="Fabric and front-end links up.")
    network_links_down: int = Field(ge=0, le=10_000, description="Links expected up but down.")


READING_FIELDS: tuple[str, ...] = tuple(n for n in RackReading.model_fields if n not in ("rack_id", "occurred_at"))
"""The quantities of a reading, in declaration order: the one list the twin's window, the store's
columns and the benchmarks take theirs from."""

READING_IDENTITY: tuple[str, ...] = ("rack_id", "occurred_at", "source")
"""What makes a reading the same fact: its rack, its time, and the source (report) that sent it.
The same identity again with other values is a conflicting duplicate, refused."""


class TelemetryReported(Envelope):
    """A collector's poll cycle: the readings of one or more racks (a Redfish MetricReport's shape).

    `rack_id` on the envelope is set only for a single-rack report; the Kafka key keeps every
    reading of a rack on one partition (the row, or the collector).
    """

    TYPE: ClassVar[str] = "telemetry.reported"
    SCHEMA_VERSION: ClassVar[int] = 1

    type: Literal["telemetry.reported"] = "telemetry.reported"
    schema_version: Literal[1] = 1
    readings: tuple[RackReading, ...] = Field(min_length=1, max_length=10_000)


TELEMETRY_TYPES: dict[str, type[Envelope]] = {TelemetryReported.TYPE: TelemetryReported}
