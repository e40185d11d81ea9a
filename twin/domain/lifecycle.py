"""A rack's life as a state machine: which lifecycle facts are legal from which stage.

Why one table: the stream workers, the replay and the tests must agree on what an illegal
step is, and a rule spread over handlers drifts. `TRANSITIONS` says, for every event type,
the stages it is legal from and the stage it leads to; `next_status` is the only reader.
An illegal step raises `IllegalTransition` naming from and to, before anything changes; the
rack twin records it as rejected (never drops it silently).

Decisions the table encodes (the lead's rules, plus the open questions, decided):

- `rack.tested` changes the stage only when a passed factory-acceptance test lands on a
  `manufactured` rack (-> `factory-tested`); a failed test is recorded, the stage stays.
- `rack.shipped` is legal from `factory-tested` and from `rma`: a repaired rack goes back out
  the same way a new one does (in-transit, received, installed, commissioned, service). The
  service gate then asks for tests passed *after* the RMA opened, so a repaired rack must be
  tested again before it serves.
- `rack.entered_service` passes the service gate on every entry (first time, and back from
  `degraded` or `maintenance`): each test the generation's intent requires must have a latest
  result that passed, taken after the rack's last RMA. Else `ServiceGateNotMet` names the
  missing tests. With no intent for the generation the gate fails closed.
- Parts and tests are worked on where a rack can be touched: never while `planned`,
  `in-transit` or `decommissioned` (`TEST_STAGES` says where each kind of test runs).
- A rack is installed only at the facility that received it; it may be received at another
  facility than the one it was shipped to (re-routing happens), which is recorded.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta
from enum import StrEnum
from typing import TYPE_CHECKING, NamedTuple, get_args

from schemas import GenerationIntent, RackEvent
from schemas.lifecycle import TestKind
from twin.errors import IllegalTransition, ServiceGateNotMet, UnknownEventType

if TYPE_CHECKING:
    from twin.domain.rack import RackTwin

__all__ = [
    "IN_SERVICE_STAGES", "POWERED_STAGES", "TEST_KINDS", "TEST_STAGES", "TRANSITIONS", "RackStatus", "StallInfo",
    "Transition", "check_service_gate", "lead_times", "missing_tests", "next_status", "stalled",
]


class RackStatus(StrEnum):
    """Lifecycle stages, as short slugs (NetBox `planned`/`active`, our own for the rest)."""

    PLANNED = "planned"
    MANUFACTURED = "manufactured"
    FACTORY_TESTED = "factory-tested"
    IN_TRANSIT = "in-transit"
    RECEIVED = "received"
    INSTALLED = "installed"
    COMMISSIONED = "commissioned"
    ACTIVE = "active"
    DEGRADED = "degraded"
    MAINTENANCE = "maintenance"
    RMA = "rma"
    DECOMMISSIONED = "decommissioned"


S = RackStatus

POWERED_STAGES: frozenset[RackStatus] = frozenset({S.INSTALLED, S.COMMISSIONED, S.ACTIVE, S.DEGRADED, S.MAINTENANCE})
"""Stages in which a rack stands in its position, powered: telemetry is expected and judged, and it
takes its design budget out of its row's capacity."""

IN_SERVICE_STAGES: frozenset[RackStatus] = frozenset({S.ACTIVE, S.DEGRADED, S.MAINTENANCE})
"""Stages that count as "in service" for the rollout plan: entered service and not withdrawn
(a rack drained for maintenance is still part of the serving fleet; one in RMA is not)."""

_ON_HAND: frozenset[RackStatus] = frozenset(RackStatus) - {S.PLANNED, S.IN_TRANSIT, S.DECOMMISSIONED}


TEST_KINDS: tuple[str, ...] = get_args(TestKind)

TEST_STAGES: Mapping[str, frozenset[RackStatus]] = {
    "factory-acceptance": frozenset({S.MANUFACTURED, S.FACTORY_TESTED, S.RMA}),
    "burn-in": frozenset({S.MANUFACTURED, S.FACTORY_TESTED, S.RMA, S.RECEIVED, S.INSTALLED, S.COMMISSIONED,
                          S.MAINTENANCE}),
    "site-acceptance": frozenset({S.INSTALLED, S.COMMISSIONED, S.MAINTENANCE}),
}
"""Where each test can run: factory tests at the factory (or back there under RMA), burn-in at
the factory or on site before service, site acceptance once the rack stands in its position."""


class Transition(NamedTuple):
    """Where an event type is legal from, and where it leads (`None`: the stage stays)."""

    sources: frozenset[RackStatus]
    target: RackStatus | None


TRANSITIONS: Mapping[str, Transition] = {
    "rack.manufactured": Transition(frozenset({S.PLANNED}), S.MANUFACTURED),
    "rack.tested": Transition(frozenset().union(*TEST_STAGES.values()), None),  # per kind: TEST_STAGES
    "rack.shipped": Transition(frozenset({S.FACTORY_TESTED, S.RMA}), S.IN_TRANSIT),
    "rack.received": Transition(frozenset({S.IN_TRANSIT}), S.RECEIVED),
    "rack.installed": Transition(frozenset({S.RECEIVED}), S.INSTALLED),
    "rack.commissioned": Transition(frozenset({S.INSTALLED}), S.COMMISSIONED),
    "rack.entered_service": Transition(frozenset({S.COMMISSIONED, S.DEGRADED, S.MAINTENANCE}), S.ACTIVE),
    "rack.degraded": Transition(frozenset({S.ACTIVE}), S.DEGRADED),
    "rack.maintenance_started": Transition(frozenset({S.ACTIVE, S.DEGRADED}), S.MAINTENANCE),
    "rack.rma_opened": Transition(frozenset({S.RECEIVED, S.INSTALLED, S.COMMISSIONED, S.ACTIVE, S.DEGRADED,
                                             S.MAINTENANCE}), S.RMA),
    "rack.decommissioned": Transition(frozenset(RackStatus) - {S.PLANNED, S.DECOMMISSIONED}, S.DECOMMISSIONED),
    "component.installed": Transition(_ON_HAND, None),
    "component.replaced": Transition(_ON_HAND, None),
    "component.firmware_updated": Transition(_ON_HAND, None),
}
"""Every lifecycle event type: the stages it is legal from, and the stage it leads to."""

def _stages(stages: frozenset[RackStatus]) -> str:
    return ", ".join(s.value for s in RackStatus if s in stages)


def next_status(current: RackStatus, event: RackEvent) -> RackStatus:
    """The stage `event` leads to from `current`; raises `IllegalTransition` naming from and to."""
    move = TRANSITIONS.get(event.type)
    if move is None:
        raise UnknownEventType(f"{event.type} is not a rack lifecycle event")
    if event.type == "rack.tested":
        kind = event.test  # type: ignore[attr-defined]
        sources = TEST_STAGES[kind]
        target = S.FACTORY_TESTED if (kind == "factory-acceptance" and event.passed  # type: ignore[attr-defined]
                                      and current is S.MANUFACTURED) else current
        if current not in sources:
            raise IllegalTransition(
                f"illegal transition {current} -> {target} (rack.tested, {kind}): "
                f"a {kind} test runs only in {_stages(sources)}")
        return target
    target = move.target or current
    if current not in move.sources:
        raise IllegalTransition(
            f"illegal transition {current} -> {target} ({event.type}): "
            f"{event.type} is legal only from {_stages(move.sources)}")
    return target


def missing_tests(twin: RackTwin, intent: GenerationIntent) -> tuple[str, ...]:
    """Tests `intent` requires whose latest result did not pass, or predates the rack's last RMA."""
    results = twin.tests
    since = twin.entered(S.RMA)
    missing = []
    for kind in intent.required_tests:
        result = results.get(kind)
        if result is None or not result.passed or (since is not None and result.occurred_at < since):
            missing.append(kind)
    return tuple(missing)


def check_service_gate(twin: RackTwin, intent: GenerationIntent | None) -> None:
    """Raise `ServiceGateNotMet` unless the rack holds every passed test its generation requires."""
    if intent is None:
        raise ServiceGateNotMet(
            f"rack {twin.rack_id} cannot enter service: no design intent is known for generation "
            f"{twin.generation!r}, so its required tests cannot be checked")
    missing = missing_tests(twin, intent)
    if missing:
        raise ServiceGateNotMet(
            f"rack {twin.rack_id} cannot enter service: missing passed tests {', '.join(missing)} "
            f"(required by {intent.generation} revision {intent.revision})")


class StallInfo(NamedTuple):
    """A rack that has stayed in its stage longer than its generation allows."""

    stage: RackStatus
    entered_at: datetime
    days_in_stage: float
    allowance_days: float


def stalled(twin: RackTwin, intent: GenerationIntent, now: datetime) -> StallInfo | None:
    """The stall of `twin` at `now`, when its stage has an allowance and it has outstayed it."""
    allowance = intent.stage_allowance_days.get(twin.status.value)
    entered = twin.entered(twin.status)
    if allowance is None or entered is None:
        return None
    days = (now - entered) / timedelta(days=1)
    if days <= allowance:
        return None
    return StallInfo(twin.status, entered, days, allowance)


def lead_times(twin: RackTwin, now: datetime | None = None) -> dict[RackStatus, timedelta]:
    """How long the rack spent in each stage it visited (its latest visit); the current stage up to `now`."""
    entered, left = twin.stage_entered_at, twin.stage_left_at
    out: dict[RackStatus, timedelta] = {}
    for stage, at in entered.items():
        end = left.get(stage) if stage is not twin.status else now
        if end is not None and end >= at:
            out[stage] = end - at
    return out
