"""Given/when/then for the rack twin, and builders of the events and readings it folds.

    given(installed(RACK)).when(shipped(RACK)).rejects(IllegalTransition)

A step names one event. In `given`, the first step stands for the whole road to its stage
(a rack is `installed` after it was manufactured, fitted with parts, factory-tested, shipped
and received); further steps, and the step in `when`, are single events. Each event lands an
hour after the one before unless told otherwise (`after=`), so tests never read a clock.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any
from uuid import NAMESPACE_URL, uuid5

from schemas import (
    Component,
    ComponentInstalled,
    ComponentReplaced,
    FirmwareUpdated,
    GenerationIntent,
    RackCommissioned,
    RackDecommissioned,
    RackDegraded,
    RackEnteredService,
    RackEvent,
    RackInstalled,
    RackMaintenanceStarted,
    RackManufactured,
    RackReading,
    RackReceived,
    RackRmaOpened,
    RackShipped,
    RackTested,
    Range,
)
from twin.errors import RejectedEvent
from twin.domain.intent import IntentCatalog
from twin.domain.lifecycle import RackStatus
from twin.domain.rack import RackTwin

T0 = datetime(2027, 1, 4, tzinfo=timezone.utc)
RACK = "dfw1-h1-r01-01"
HOUR = timedelta(hours=1)

BOM: dict[str, int] = {"compute-tray": 2, "switch-tray": 1, "power-shelf": 1, "psu": 2, "cdu": 1, "cabling": 1,
                       "nic": 1}
FIRMWARE = {"compute-tray": "1.8.3", "switch-tray": "2.4.1", "psu": "1.2.7", "nic": "28.41.1000"}


def intent(generation: str = "gen-a-130kw", revision: int = 1, **changes: Any) -> GenerationIntent:
    """A small design intent (9 parts), for tests to bend with `changes`."""
    fields: dict[str, Any] = dict(
        generation=generation, revision=revision, title=f"{generation} test intent",
        power_budget_watts=Range(min=20_000.0, max=132_000.0), cooling_capacity_watts=140_000.0,
        inlet_temperature_celsius=Range(min=18.0, max=32.0),
        coolant_supply_temperature_celsius=Range(min=17.0, max=32.0),
        coolant_flow_liters_per_minute_per_kilowatt=Range(min=1.2, max=2.5),
        hottest_accelerator_temperature_celsius=Range(min=None, max=90.0),
        required_components=BOM, firmware_baseline=FIRMWARE,
        required_tests=("factory-acceptance", "burn-in", "site-acceptance"),
        stage_allowance_days={"in-transit": 14, "received": 7, "installed": 10, "commissioned": 5},
    )
    fields.update(changes)
    return GenerationIntent(**fields)


INTENT = intent()
CATALOG = IntentCatalog([INTENT])


# --- parts ----------------------------------------------------------------------------------

_SLOT = {"compute-tray": "tray", "switch-tray": "switch", "power-shelf": "pshelf", "psu": "psu", "cdu": "cdu",
         "cooling-manifold": "manifold", "cabling": "cable", "nic": "nic"}
_VALUE = {"compute-tray": 165_000.0, "switch-tray": 42_000.0, "power-shelf": 9_500.0, "psu": 1_450.0,
          "cdu": 38_000.0, "cooling-manifold": 6_800.0, "cabling": 18_500.0, "nic": 1_900.0}


def part(slot: str, kind: str, serial: str | None = None, *, country: str = "US", firmware: str | None = "default",
         value: float | None = None, supplier: str = "Acme Rack Parts", part_number: str | None = None) -> Component:
    """A part for `slot`; firmware defaults to its kind's baseline in `FIRMWARE`."""
    return Component(
        slot=slot, kind=kind, part_number=part_number or f"PN-{kind.upper()}", serial_number=serial or f"SN-{slot}",
        supplier=supplier, country_of_manufacture=country,
        firmware_version=FIRMWARE.get(kind) if firmware == "default" else firmware,
        unit_value_usd=_VALUE[kind] if value is None else value,
    )


def bill(counts: dict[str, int] = BOM, **per_kind: Any) -> list[Component]:
    """A full bill of materials: `counts` parts per kind, slots `tray-01`, `tray-02`, ..."""
    return [part(f"{_SLOT[kind]}-{i:02d}", kind, **per_kind.get(kind.replace("-", "_"), {}))
            for kind, n in counts.items() for i in range(1, n + 1)]


# --- steps and events -------------------------------------------------------------------------

@dataclass(frozen=True)
class Step:
    """One event to build: its class and fields (the envelope is stamped when it is built)."""

    cls: type[RackEvent]
    rack_id: str
    fields: dict[str, Any] = field(default_factory=dict)
    after: timedelta = HOUR


def manufactured(rack: str = RACK, generation: str = "gen-a-130kw", **kw: Any) -> Step:
    return Step(RackManufactured, rack, {"generation": generation, "serial_number": f"FTR-{rack}",
                                         "factory": "Austin TX"}, **kw)


def tested(rack: str = RACK, test: str = "factory-acceptance", passed: bool = True, **kw: Any) -> Step:
    return Step(RackTested, rack, {"test": test, "passed": passed, "measurements": {"peak_power_watts": 120_000.0}},
                **kw)


tested.__test__ = False  # type: ignore[attr-defined]  # a builder whose name pytest would collect


def shipped(rack: str = RACK, to: str = "dfw1", **kw: Any) -> Step:
    return Step(RackShipped, rack, {"destination_facility_id": to, "carrier": "Pilot Freight"}, **kw)


def received(rack: str = RACK, at: str = "dfw1", **kw: Any) -> Step:
    return Step(RackReceived, rack, {"facility_id": at}, **kw)


def installed(rack: str = RACK, facility: str = "dfw1", hall: str = "h1", row: str = "r01", position: int = 1,
              **kw: Any) -> Step:
    return Step(RackInstalled, rack, {"facility_id": facility, "hall_id": hall, "row_id": row,
                                      "position": position}, **kw)


def commissioned(rack: str = RACK, **kw: Any) -> Step:
    return Step(RackCommissioned, rack, {}, **kw)


def entered_service(rack: str = RACK, **kw: Any) -> Step:
    return Step(RackEnteredService, rack, {}, **kw)


def degraded(rack: str = RACK, reason: str = "one switch tray offline", **kw: Any) -> Step:
    return Step(RackDegraded, rack, {"reason": reason}, **kw)


def maintenance_started(rack: str = RACK, reason: str = "planned firmware rollout", **kw: Any) -> Step:
    return Step(RackMaintenanceStarted, rack, {"reason": reason}, **kw)


def rma_opened(rack: str = RACK, reason: str = "backplane fault", **kw: Any) -> Step:
    return Step(RackRmaOpened, rack, {"rma_number": "RMA-000042", "reason": reason}, **kw)


def decommissioned(rack: str = RACK, reason: str = "end of life", **kw: Any) -> Step:
    return Step(RackDecommissioned, rack, {"reason": reason}, **kw)


def part_installed(component: Component, rack: str = RACK, **kw: Any) -> Step:
    return Step(ComponentInstalled, rack, {"component": component}, **kw)


def part_replaced(removed_serial: str, component: Component, rack: str = RACK, cause: str = "swap",
                  **kw: Any) -> Step:
    return Step(ComponentReplaced, rack, {"removed_serial_number": removed_serial, "component": component,
                                          "cause": cause, "rma_number": "RMA-7" if cause == "rma" else None}, **kw)


def firmware_updated(slot: str, version: str, rack: str = RACK, **kw: Any) -> Step:
    return Step(FirmwareUpdated, rack, {"slot": slot, "firmware_version": version}, **kw)


def road_to(step: Step, parts: Sequence[Component] | None = None,
            tests: Iterable[str] = ("factory-acceptance", "burn-in", "site-acceptance")) -> list[Step]:
    """The usual road to the stage `step` leads to, ending with `step` itself."""
    rack, tests = step.rack_id, tuple(tests)
    if step.cls is RackManufactured:
        return [step]
    road: list[Step] = [manufactured(rack)] + [part_installed(p, rack) for p in (bill() if parts is None else parts)]
    if step.cls is RackTested:
        return road + [step]
    road += [tested(rack, t) for t in ("factory-acceptance", "burn-in") if t in tests]
    for cls, make in ((RackShipped, shipped), (RackReceived, received), (RackInstalled, installed)):
        if step.cls is cls:
            return road + [step]
        road.append(make(rack))
    if "site-acceptance" in tests:
        road.append(tested(rack, "site-acceptance"))
    for cls, make in ((RackCommissioned, commissioned), (RackEnteredService, entered_service)):
        if step.cls is cls:
            return road + [step]
        road.append(make(rack))
    return road + [step]


class Clock:
    """Stamps steps into events: times an hour apart from T0, one source counting seq, ids from both."""

    def __init__(self, start: datetime = T0, source: str = "test-tool") -> None:
        self.now = start
        self.source = source
        self._n = itertools.count(1)

    def event(self, step: Step, at: datetime | None = None) -> RackEvent:
        self.now = at if at is not None else self.now + step.after
        n = next(self._n)
        event_id = uuid5(NAMESPACE_URL, f"{step.rack_id}/{step.cls.TYPE}/{self.now.isoformat()}/{self.source}/{n}")
        return step.cls(event_id=event_id, occurred_at=self.now, source=self.source, seq=n, rack_id=step.rack_id,
                        **step.fields)

    def events(self, steps: Iterable[Step]) -> list[RackEvent]:
        return [self.event(s) for s in steps]


def history(step: Step, start: datetime = T0, **road: Any) -> list[RackEvent]:
    """The events of the road to `step`'s stage, an hour apart from `start`."""
    return Clock(start).events(road_to(step, **road))


# --- readings ---------------------------------------------------------------------------------

NOMINAL: dict[str, Any] = dict(
    power_watts=100_000.0, inlet_temperature_celsius=24.0, outlet_temperature_celsius=36.0,
    coolant_supply_temperature_celsius=28.0, coolant_return_temperature_celsius=38.0,
    coolant_flow_liters_per_minute=150.0, coolant_differential_pressure_kilopascals=110.0, leak_detected=False,
    hottest_accelerator_temperature_celsius=72.0, fan_speed_percent=45.0, network_links_up=96, network_links_down=0,
)
"""A reading well inside `INTENT`: 100 kW, 1.5 L/min/kW."""


def reading(at: datetime, rack: str = RACK, **changes: Any) -> RackReading:
    return RackReading(rack_id=rack, occurred_at=at, **{**NOMINAL, **changes})


def readings(start: datetime, n: int, rack: str = RACK, every: timedelta = timedelta(seconds=1),
             **changes: Any) -> list[RackReading]:
    return [reading(start + i * every, rack, **changes) for i in range(n)]


# --- given / when / then ------------------------------------------------------------------------

class Scenario:
    """A twin folded from a history; `when` folds one more event."""

    def __init__(self, events: list[RackEvent], catalog: IntentCatalog, clock: Clock) -> None:
        self.events = events
        self.catalog = catalog
        self.clock = clock
        rack_id = events[0].rack_id if events else RACK
        self.twin = RackTwin(rack_id)
        for e in events:
            self.twin.fold(e, catalog)

    def and_(self, *steps: Step) -> Scenario:
        """Fold further events."""
        for step in steps:
            e = self.clock.event(step)
            self.events.append(e)
            self.twin.fold(e, self.catalog)
        return self

    def when(self, step: Step, at: datetime | None = None) -> Outcome:
        event = self.clock.event(step, at)
        return Outcome(self, event)


class Outcome:
    """What one event did to a scenario's twin."""

    def __init__(self, scenario: Scenario, event: RackEvent) -> None:
        self.scenario = scenario
        self.event = event
        twin = scenario.twin
        self.before = twin.snapshot()
        self.intent = scenario.catalog
        self.error: RejectedEvent | None = None
        try:
            twin.apply(event, self.intent)
        except RejectedEvent as exc:
            self.error = exc

    @property
    def twin(self) -> RackTwin:
        return self.scenario.twin

    def rejects(self, error: type[RejectedEvent], match: str | None = None) -> RejectedEvent:
        """Then: `error` was raised, the twin did not change, and `fold` records the rejection."""
        assert self.error is not None, f"{self.event.type} was accepted; expected {error.__name__}"
        assert isinstance(self.error, error), f"raised {type(self.error).__name__}: {self.error}"
        if match is not None:
            assert match in self.error.detail, f"{match!r} not in {self.error.detail!r}"
        assert self.twin.snapshot() == self.before, "a rejected event changed the twin"
        recorded = self.twin.fold(self.event, self.intent)
        assert recorded is not None and recorded.reason == self.error.reason
        last = self.twin.rejected[-1]
        assert (last.event_id, last.type, last.reason) == (str(self.event.event_id), self.event.type, error.reason)
        after = self.twin.snapshot()
        for key in ("rejected", "last_event"):
            after.pop(key), self.before.pop(key)
        assert after == self.before, "recording a rejection changed more than `rejected`"
        return self.error

    def moves_to(self, status: RackStatus) -> RackTwin:
        """Then: the event was accepted and the rack is now in `status`."""
        assert self.error is None, f"{self.event.type} was rejected: {self.error}"
        assert self.twin.status is status, f"rack is {self.twin.status}, expected {status}"
        return self.twin

    def accepted(self) -> RackTwin:
        assert self.error is None, f"{self.event.type} was rejected: {self.error}"
        return self.twin


def given(first: Step | None = None, *more: Step, catalog: IntentCatalog = CATALOG, start: datetime = T0,
          parts: Sequence[Component] | None = None,
          tests: Iterable[str] = ("factory-acceptance", "burn-in", "site-acceptance")) -> Scenario:
    """A rack that took the usual road to `first`'s stage, then the single events `more`."""
    clock = Clock(start)
    steps = ([] if first is None else road_to(first, parts=parts, tests=tests)) + list(more)
    return Scenario(clock.events(steps), catalog, clock)
