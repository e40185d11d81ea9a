"""Lifecycle events of one rack: build, test, ship, install, commission, serve, service, retire.

Each is a past-tense fact about one rack (`rack_id` required) and goes into the rack's
append-only stream in the event store. Whether a fact is *legal* (an installed rack cannot be
shipped) is the domain's decision (`twin.domain.lifecycle`), not the contract's.
"""

from __future__ import annotations

from typing import Annotated, ClassVar, Literal

from pydantic import Field

from schemas.envelope import RACK_ID_PATTERN, Contract, Envelope

SLUG = r"^[a-z0-9][a-z0-9-]{0,63}$"
ID = r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$"

TestKind = Literal["factory-acceptance", "burn-in", "site-acceptance"]
ComponentKind = Literal[
    "compute-tray", "switch-tray", "power-shelf", "psu", "cdu", "cooling-manifold", "cabling", "nic"
]


class RackEvent(Envelope):
    """A fact about one rack; `rack_id` is required."""

    rack_id: str = Field(pattern=RACK_ID_PATTERN)


class RackManufactured(RackEvent):
    """The rack left final assembly: from here on it is known to the fleet."""

    TYPE: ClassVar[str] = "rack.manufactured"
    type: Literal["rack.manufactured"] = "rack.manufactured"
    schema_version: Literal[1] = 1
    generation: str = Field(pattern=SLUG, description="Hardware generation, the key of its design intent.")
    serial_number: str = Field(min_length=1, max_length=64)
    factory: str = Field(min_length=1, max_length=128, description="Where it was built, for example `Fremont CA`.")


class RackTested(RackEvent):
    """A test ran on the rack (factory acceptance, burn-in, site acceptance), passed or failed."""

    TYPE: ClassVar[str] = "rack.tested"
    type: Literal["rack.tested"] = "rack.tested"
    schema_version: Literal[1] = 1
    test: TestKind
    passed: bool
    measurements: dict[str, float] = Field(default_factory=dict, description="Named results, units in the names.")


class RackShipped(RackEvent):
    """The rack left the factory for a facility."""

    TYPE: ClassVar[str] = "rack.shipped"
    type: Literal["rack.shipped"] = "rack.shipped"
    schema_version: Literal[1] = 1
    destination_facility_id: str = Field(pattern=ID)
    carrier: str | None = Field(default=None, max_length=128)


class RackReceived(RackEvent):
    """The facility's dock accepted the rack."""

    TYPE: ClassVar[str] = "rack.received"
    type: Literal["rack.received"] = "rack.received"
    schema_version: Literal[1] = 1
    facility_id: str = Field(pattern=ID)


class RackInstalled(RackEvent):
    """The rack stands in its position, powered and plumbed but not yet commissioned."""

    TYPE: ClassVar[str] = "rack.installed"
    type: Literal["rack.installed"] = "rack.installed"
    schema_version: Literal[1] = 1
    facility_id: str = Field(pattern=ID)
    hall_id: str = Field(pattern=ID)
    row_id: str = Field(pattern=ID)
    position: int = Field(ge=1, le=1_000)


class RackCommissioned(RackEvent):
    """Site commissioning finished: the rack may be handed to service once its tests pass."""

    TYPE: ClassVar[str] = "rack.commissioned"
    type: Literal["rack.commissioned"] = "rack.commissioned"
    schema_version: Literal[1] = 1


class RackEnteredService(RackEvent):
    """The rack takes production load (first time, or back from degraded or maintenance)."""

    TYPE: ClassVar[str] = "rack.entered_service"
    type: Literal["rack.entered_service"] = "rack.entered_service"
    schema_version: Literal[1] = 1


class RackDegraded(RackEvent):
    """The rack serves with reduced capacity."""

    TYPE: ClassVar[str] = "rack.degraded"
    type: Literal["rack.degraded"] = "rack.degraded"
    schema_version: Literal[1] = 1
    reason: str = Field(min_length=1, max_length=512)


class RackMaintenanceStarted(RackEvent):
    """The rack was drained for planned or corrective maintenance."""

    TYPE: ClassVar[str] = "rack.maintenance_started"
    type: Literal["rack.maintenance_started"] = "rack.maintenance_started"
    schema_version: Literal[1] = 1
    reason: str = Field(min_length=1, max_length=512)


class RackRmaOpened(RackEvent):
    """The rack goes back to the manufacturer under a return authorisation."""

    TYPE: ClassVar[str] = "rack.rma_opened"
    type: Literal["rack.rma_opened"] = "rack.rma_opened"
    schema_version: Literal[1] = 1
    rma_number: str = Field(min_length=1, max_length=64)
    reason: str = Field(min_length=1, max_length=512)


class RackDecommissioned(RackEvent):
    """The rack is retired for good."""

    TYPE: ClassVar[str] = "rack.decommissioned"
    type: Literal["rack.decommissioned"] = "rack.decommissioned"
    schema_version: Literal[1] = 1
    reason: str = Field(min_length=1, max_length=512)


class Component(Contract):
    """One part in a rack's bill of materials, with its provenance."""

    slot: str = Field(pattern=ID, description="Where in the rack, for example `tray-07` or `psu-3`.")
    kind: ComponentKind
    part_number: str = Field(min_length=1, max_length=64)
    serial_number: str = Field(min_length=1, max_length=64)
    supplier: str = Field(min_length=1, max_length=128)
    country_of_manufacture: str = Field(pattern=r"^[A-Z]{2}$", description="ISO 3166-1 alpha-2.")
    firmware_version: str | None = Field(default=None, max_length=64)
    unit_value_usd: float = Field(ge=0, le=10_000_000)


class ComponentInstalled(RackEvent):
    """A part was fitted into an empty slot (at the factory or on site)."""

    TYPE: ClassVar[str] = "component.installed"
    type: Literal["component.installed"] = "component.installed"
    schema_version: Literal[1] = 1
    component: Component


class ComponentReplaced(RackEvent):
    """A part was swapped for another, as a field swap or under RMA."""

    TYPE: ClassVar[str] = "component.replaced"
    type: Literal["component.replaced"] = "component.replaced"
    schema_version: Literal[1] = 1
    removed_serial_number: str = Field(min_length=1, max_length=64)
    component: Component
    cause: Literal["swap", "rma"]
    rma_number: str | None = Field(default=None, max_length=64)


class FirmwareUpdated(RackEvent):
    """A part's firmware was flashed to a new version."""

    TYPE: ClassVar[str] = "component.firmware_updated"
    type: Literal["component.firmware_updated"] = "component.firmware_updated"
    schema_version: Literal[1] = 1
    slot: str = Field(pattern=ID)
    firmware_version: str = Field(min_length=1, max_length=64)


LIFECYCLE_EVENTS: tuple[type[RackEvent], ...] = (
    RackManufactured, RackTested, RackShipped, RackReceived, RackInstalled, RackCommissioned,
    RackEnteredService, RackDegraded, RackMaintenanceStarted, RackRmaOpened, RackDecommissioned,
    ComponentInstalled, ComponentReplaced, FirmwareUpdated,
)
LifecycleEvent = Annotated[
    RackManufactured | RackTested | RackShipped | RackReceived | RackInstalled | RackCommissioned
    | RackEnteredService | RackDegraded | RackMaintenanceStarted | RackRmaOpened | RackDecommissioned
    | ComponentInstalled | ComponentReplaced | FirmwareUpdated,
    Field(discriminator="type"),
]
LIFECYCLE_TYPES: dict[str, type[RackEvent]] = {cls.TYPE: cls for cls in LIFECYCLE_EVENTS}
