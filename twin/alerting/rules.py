"""Alert rules: what pages whom, when, and when it is over. Pure: time and facts come in as arguments.

Why rules apart from conformance: a deviation says a rack is outside its design band *now*; a
page must also wait out a blip (`for_seconds`), not flap at the band's edge (hysteresis: it
clears only once the value is back inside the band by `clear_margin`), stay quiet where the
rack's stage explains the condition (maintenance, RMA, decommissioned), and carry what a person
woken at 3 a.m. needs: the measured value, the design band, the intent revision, a runbook and
a dashboard.

Two kinds of rule:

- rack rules (`RACK_RULES`): one alert per rack and rule (the dedup key), from the rack's open
  deviations (`twin/domain/conformance.py`), its subsystem health (`twin/domain/health.py`) or
  the age of its newest reading;
- fleet rules (`FLEET_RULES`): power and cooling headroom of a facility or hall, a share of one
  generation deviating on the same check (a design problem: one alert that inhibits the rack
  alerts it explains), a facility whose racks went stale together (a collector outage), racks
  stalled in deployment per facility, and a cooling unit (CDU) not ok: one alert for the CDU, over the
  racks it feeds, that inhibits their coolant alerts.

Every alert carries the grouping labels `facility`, `hall`, `generation`, `subsystem` and `owner`
(the team that acts), plus `alertname` (the rule), `severity` and `scope`; cooling alerts of a rack
fed by a polled CDU, and the CDU's own, carry `cooling_unit`. Each rule has a
runbook, `docs/runbooks/<rule>.md`.

`step` is the whole alert life cycle, one alert at a time:

    (none) ──raising──▶ pending ──held for_seconds──▶ firing ──cleared (below the lower threshold)──▶ resolved
       │                  └──not raising──▶ cancelled              │
       └── the rack's stage explains it ──▶ suppressed ◀───────────┘ (a firing alert is resolved at the source)
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from enum import StrEnum
from functools import lru_cache
from typing import Literal

from schemas import CoolingUnitStatus, Deviation
from twin.domain.conformance import TELEMETRY_CHECKS
from twin.domain.health import SUBSYSTEMS, cooling_unit_reason
from twin.domain.lifecycle import POWERED_STAGES, RackStatus
from twin.domain.topology import CoolingUnitCondition, cooling_unit_conditions

__all__ = [
    "COOLING_UNIT_EXPLAINS", "FLEET_RULES", "RACK_RULES", "RULES", "AlertState", "CooledRack", "FacilityReporting",
    "FleetFacts", "FleetRule", "GenerationCount", "HallLoad", "INHIBITIONS", "Links", "Observation", "Phase",
    "RackFacts", "RackRule",
    "Transition", "advance", "evaluate", "inhibited", "observe", "stalled_in_deployment", "step",
]

Severity = Literal["warning", "critical"]
S = RackStatus

DEPLOYMENT_STAGES: frozenset[RackStatus] = frozenset({S.FACTORY_TESTED, S.IN_TRANSIT, S.RECEIVED, S.INSTALLED,
                                                      S.COMMISSIONED})
"""Stages between the factory and service: a rack stalled here is late for the rollout."""
_OUT_OF_SERVICE: frozenset[RackStatus] = frozenset({S.MAINTENANCE, S.RMA, S.DECOMMISSIONED})
"""Stages that explain a rack not drawing, not reporting, or links down: someone is working on it."""


class Phase(StrEnum):
    """Where an alert is in its life (`step`)."""

    PENDING = "pending"
    FIRING = "firing"
    SUPPRESSED = "suppressed"
    RESOLVED = "resolved"
    CANCELLED = "cancelled"


@dataclass(frozen=True, slots=True)
class RackRule:
    """One alert per rack, derived from a deviation check, a subsystem's health, or staleness."""

    name: str
    source: Literal["deviation", "health", "stale"]
    subsystem: str
    owner: str
    severity: Severity
    for_seconds: float
    summary: str
    """What is wrong, in a few words, for the page's title."""
    checks: tuple[str, ...] = ()
    """Deviation checks (a trailing `-` matches a prefix, for per-kind checks such as `firmware-drift-`)."""
    metric: str | None = None
    """The rack_state reading the hysteresis looks at (`coolant_flow_per_kw` is derived)."""
    clear_margin: float = 0.0
    """How far back inside the band the metric must be before the alert clears (lower threshold)."""
    clear_relative: bool = False
    """`clear_margin` is a share of the band's bound rather than in the metric's unit."""
    explained_by: frozenset[RackStatus] = frozenset()
    """Stages in which the rule does not page: the stage explains the condition."""

    def matches(self, check: str) -> bool:
        return any(check == c or (c.endswith("-") and check.startswith(c)) for c in self.checks)


@dataclass(frozen=True, slots=True)
class FleetRule:
    """One alert per place or generation, over many racks."""

    name: str
    scope: Literal["facility", "hall", "generation", "cooling-unit"]
    subsystem: str
    owner: str
    severity: Severity
    for_seconds: float
    summary: str
    fire_below: float | None = None
    """Headroom rules: fire when the headroom share falls below this..."""
    clear_above: float | None = None
    """...and clear only once it is above this (hysteresis)."""
    fire_share: float = 0.0
    """Share rules: fire when at least this share of the racks is affected..."""
    clear_share: float = 0.0
    """...and clear only once the share is below this."""
    min_racks: int = 1
    """Share rules: and at least this many racks (three racks of ten is a pattern, one of three is not)."""
    window_seconds: float = 0.0
    """Generation drift: a rack counts if its check was open at any time in this window."""
    severity_from: str = ""
    """Whose state sets the alert's severity when not the rule (`severity` is then the worst it pages with)."""


_SERVICE = frozenset({S.MAINTENANCE, S.RMA, S.DECOMMISSIONED})
RACK_RULES: tuple[RackRule, ...] = (
    RackRule("rack-power-over-budget", "deviation", "power", "facilities", "critical", 10,
             "input power above the design budget", ("power-over-budget",), "power_watts", 0.02, True),
    RackRule("rack-power-under-budget", "deviation", "power", "fleet-ops", "warning", 300,
             "active rack drawing less than its design minimum", ("power-under-budget",), "power_watts", 0.05, True,
             explained_by=frozenset({S.DEGRADED}) | _OUT_OF_SERVICE),
    RackRule("rack-cooling-over-capacity", "deviation", "cooling", "cooling", "critical", 5,
             "heat above the liquid loop's design capacity", ("cooling-over-capacity",), "power_watts", 0.02, True),
    RackRule("rack-coolant-flow-out-of-range", "deviation", "cooling", "cooling", "critical", 30,
             "coolant flow per kW outside its design range", ("coolant-flow-out-of-range",), "coolant_flow_per_kw",
             0.05, True, explained_by=frozenset({S.MAINTENANCE})),
    RackRule("rack-inlet-temperature-out-of-envelope", "deviation", "cooling", "cooling", "warning", 60,
             "inlet air temperature outside its design envelope", ("inlet-temperature-out-of-envelope",),
             "inlet_temperature_celsius", 1.0),
    RackRule("rack-coolant-supply-out-of-envelope", "deviation", "cooling", "cooling", "warning", 60,
             "coolant supply temperature outside its design envelope", ("coolant-supply-out-of-envelope",),
             "coolant_supply_temperature_celsius", 1.0),
    RackRule("rack-accelerator-too-hot", "deviation", "compute", "compute", "critical", 30,
             "hottest accelerator above its design limit", ("accelerator-too-hot",),
             "hottest_accelerator_temperature_celsius", 2.0),
    RackRule("rack-leak-detected", "deviation", "cooling", "cooling", "critical", 0,
             "a leak sensor tripped", ("leak-detected",)),
    RackRule("rack-network-links-down", "deviation", "network", "network", "warning", 60,
             "fabric or front-end links down", ("network-links-down",), "network_links_down", 0.0,
             explained_by=_OUT_OF_SERVICE),
    RackRule("rack-parts-nonconforming", "deviation", "compute", "deployment", "warning", 600,
             "parts or firmware not as the generation requires",
             ("components-missing-", "components-extra-", "firmware-drift-"), explained_by=_SERVICE),
    RackRule("rack-telemetry-stale", "stale", "telemetry", "observability", "warning", 0,
             "no telemetry from a powered rack", explained_by=_OUT_OF_SERVICE),
    *(RackRule(f"rack-{s}-health-critical", "health", s, "cooling" if s == "cooling" else
               ("facilities" if s == "power" else s), "critical", 0,
               f"{s} subsystem critical over the whole readings window", explained_by=_OUT_OF_SERVICE)
      for s in SUBSYSTEMS),
)
"""Rack rules. `rack-<subsystem>-health-critical` clears only once the subsystem is `ok` again
(a warning is not below the lower threshold); `rack-telemetry-stale` clears once a reading is
younger than half the stale setting."""

FLEET_RULES: tuple[FleetRule, ...] = (
    FleetRule("facility-power-headroom-low", "facility", "power", "facilities", "critical", 60,
              "facility power headroom low", fire_below=0.10, clear_above=0.15),
    FleetRule("facility-cooling-headroom-low", "facility", "cooling", "facilities", "critical", 60,
              "facility cooling headroom low", fire_below=0.10, clear_above=0.15),
    FleetRule("hall-power-headroom-low", "hall", "power", "facilities", "warning", 60,
              "hall power headroom low", fire_below=0.10, clear_above=0.15),
    FleetRule("hall-cooling-headroom-low", "hall", "cooling", "facilities", "warning", 60,
              "hall cooling headroom low", fire_below=0.10, clear_above=0.15),
    FleetRule("generation-deviation-drift", "generation", "design", "design", "critical", 0,
              "a share of one generation deviates on the same check", fire_share=0.20, clear_share=0.10,
              min_racks=3, window_seconds=900),
    FleetRule("facility-telemetry-stale", "facility", "telemetry", "observability", "critical", 0,
              "racks of one facility stopped reporting together", fire_share=0.50, clear_share=0.25, min_racks=3),
    FleetRule("facility-deployment-stalled", "facility", "lifecycle", "deployment", "warning", 300,
              "racks stalled in deployment", fire_share=0.0, clear_share=0.0, min_racks=1),
    FleetRule("cooling-unit-degraded", "cooling-unit", "cooling", "cooling", "critical", 0,
              "a CDU in Warning or Critical (a failed pump is Critical) degrades the cooling of every rack it feeds",
              severity_from="the CDU"),
)
"""Fleet rules. `cooling-unit-degraded` takes its severity from the CDU (`severity_from`) and fires at
once: Redfish `Status.Health` is the CDU's own debounced judgement, and the CDU alert must reach
Alertmanager no later than the rack alerts it inhibits."""

COOLING_UNIT_EXPLAINS: tuple[str, ...] = (
    "rack-coolant-flow-out-of-range", "rack-coolant-supply-out-of-envelope", "rack-cooling-health-critical")
"""Rack alerts a degraded CDU explains on the racks it feeds (its pumps set their flow, its exchanger their
supply temperature): held back while `cooling-unit-degraded` fires for their `cooling_unit`. A rack's leak,
inlet air and heat over the loop's capacity are the rack's own and still page."""

RULES: Mapping[str, RackRule | FleetRule] = {r.name: r for r in (*RACK_RULES, *FLEET_RULES)}
"""Every rule by name (its `alertname` label and its runbook's file name)."""


@dataclass(frozen=True, slots=True)
class Links:
    """URL templates: `{rule}`, `{rack}`, `{facility}`, `{generation}` are filled in."""

    runbook: str = "docs/runbooks/{rule}.md"
    rack_dashboard: str = "http://127.0.0.1:3000/d/fleet-rack?var-facility={facility}&var-generation={generation}&var-rack={rack}"
    fleet_dashboard: str = "http://127.0.0.1:3000/d/fleet-overview?var-facility={facility}&var-generation={generation}"


@dataclass(frozen=True, slots=True)
class RackFacts:
    """What the rules read of one rack: place, stage, newest readings, health and open deviations."""

    rack_id: str
    generation: str | None
    status: str
    facility_id: str | None = None
    hall_id: str | None = None
    operator: str | None = None
    telemetry_at: datetime | None = None
    readings: Mapping[str, float | None] = field(default_factory=dict)
    health: Mapping[str, str] = field(default_factory=dict)
    """Subsystem -> `ok`/`unknown`/`warning`/`critical`."""
    health_reasons: Mapping[str, str] = field(default_factory=dict)
    deviations: Mapping[str, Deviation] = field(default_factory=dict)
    cooling_unit: CoolingUnitStatus | None = None
    """The CDU feeding the rack as last polled (the `cooling_unit` of its stored health), ok or not."""

    def metric(self, name: str) -> float | None:
        if name == "coolant_flow_per_kw":
            flow, watts = self.readings.get("coolant_flow_liters_per_minute"), self.readings.get("power_watts")
            return None if flow is None or not watts or watts < 1000.0 else flow / (watts / 1000.0)
        return self.readings.get(name)


@dataclass(frozen=True, slots=True)
class HallLoad:
    """A hall's site limits and what its powered racks draw now."""

    facility_id: str
    hall_id: str
    power_capacity_watts: float
    cooling_capacity_watts: float
    power_watts: float
    operator: str | None = None


@dataclass(frozen=True, slots=True)
class GenerationCount:
    """How many racks of a generation can show a check: powered ones for readings, all for the rest."""

    generation: str
    powered: int
    placed: int


@dataclass(frozen=True, slots=True)
class FacilityReporting:
    """How many powered racks of a facility report, and how many of those went stale."""

    facility_id: str
    reporting: int
    stale: int
    operator: str | None = None


@dataclass(frozen=True, slots=True)
class CooledRack:
    """A rack whose CDU is not ok, as the fleet scan saw it: its view of the CDU, its place and stage."""

    rack_id: str
    cooling_unit: CoolingUnitStatus
    status: str
    facility_id: str | None = None
    hall_id: str | None = None
    operator: str | None = None


@dataclass(frozen=True, slots=True)
class FleetFacts:
    halls: Sequence[HallLoad] = ()
    generations: Sequence[GenerationCount] = ()
    facilities: Sequence[FacilityReporting] = ()
    cooled: Sequence[CooledRack] = ()
    """Racks whose CDU is in Warning or Critical (`cooling-unit-degraded` folds them into one alert per CDU)."""


@dataclass(frozen=True, slots=True)
class Observation:
    """One alert's condition at one instant: `raising` starts it, `holding` keeps it firing."""

    key: str
    rule: str
    raising: bool
    holding: bool
    labels: Mapping[str, str]
    annotations: Mapping[str, str]
    rack_id: str | None = None
    value: float | None = None
    band: tuple[float | None, float | None] = (None, None)
    explained: bool = False
    """The rack's stage explains the condition: record it, do not page."""


@dataclass(frozen=True, slots=True)
class AlertState:
    """One alert's stored state (table `alert_state`)."""

    key: str
    rule: str
    phase: Phase
    labels: Mapping[str, str]
    annotations: Mapping[str, str]
    rack_id: str | None = None
    active_since: datetime | None = None
    fired_at: datetime | None = None
    resolved_at: datetime | None = None
    last_true_at: datetime | None = None
    value: float | None = None
    band: tuple[float | None, float | None] = (None, None)

    @property
    def live(self) -> bool:
        """Pending, firing or suppressed: the condition is (or recently was) there."""
        return self.phase in (Phase.PENDING, Phase.FIRING, Phase.SUPPRESSED)


@dataclass(frozen=True, slots=True)
class Transition:
    """An alert moved from one phase to another (a row of `alert_history`, an event on fleet.alerts.v1)."""

    state: AlertState
    previous: Phase | None
    at: datetime

    @property
    def phase(self) -> Phase:
        return self.state.phase


def step(previous: AlertState | None, seen: Observation | None, now: datetime, for_seconds: float
         ) -> tuple[AlertState | None, Transition | None]:
    """The alert's next state given what was observed now (`None`: the condition is gone)."""
    raising = seen is not None and seen.raising
    holding = seen is not None and (seen.raising or seen.holding)
    if previous is None or previous.phase in (Phase.RESOLVED, Phase.CANCELLED):
        if not raising:
            return previous, None
        assert seen is not None
        if seen.explained:
            return _move(None, _state(seen, Phase.SUPPRESSED, now, now), now)
        if for_seconds <= 0:
            return _move(None, replace(_state(seen, Phase.FIRING, now, now), fired_at=now), now)
        return _move(None, _state(seen, Phase.PENDING, now, now), now)
    if previous.phase is Phase.SUPPRESSED:
        if not holding:
            return _move(previous, replace(previous, phase=Phase.RESOLVED, resolved_at=now), now)
        assert seen is not None
        if seen.explained:
            return _refresh(previous, seen, now), None
        if not raising:  # stage left, condition fading but not cleared: nothing to page about
            return _refresh(previous, seen, now), None
        state, moved = step(None, seen, now, for_seconds)  # the stage no longer explains it: start over
        assert state is not None and moved is not None
        return state, replace(moved, previous=Phase.SUPPRESSED)
    if previous.phase is Phase.PENDING:
        if not raising:
            return _move(previous, replace(previous, phase=Phase.CANCELLED, resolved_at=now), now)
        assert seen is not None and previous.active_since is not None
        if seen.explained:
            return _move(previous, replace(_refresh(previous, seen, now), phase=Phase.SUPPRESSED), now)
        if (now - previous.active_since).total_seconds() >= for_seconds:
            return _move(previous, replace(_refresh(previous, seen, now), phase=Phase.FIRING, fired_at=now), now)
        return _refresh(previous, seen, now), None
    # firing
    if not holding:
        return _move(previous, replace(previous, phase=Phase.RESOLVED, resolved_at=now), now)
    assert seen is not None
    if seen.explained:
        return _move(previous, replace(_refresh(previous, seen, now), phase=Phase.SUPPRESSED, resolved_at=now), now)
    return _refresh(previous, seen, now), None


def _state(seen: Observation, phase: Phase, since: datetime, now: datetime) -> AlertState:
    return AlertState(seen.key, seen.rule, phase, seen.labels, seen.annotations, seen.rack_id, active_since=since,
                      last_true_at=now, value=seen.value, band=seen.band)


def _refresh(previous: AlertState, seen: Observation, now: datetime) -> AlertState:
    """Keep the times, take the newest value, band and text (a revision may have moved the band)."""
    return replace(previous, labels=seen.labels, annotations=seen.annotations, value=seen.value,
                   band=seen.band if seen.raising or previous.band == (None, None) else previous.band,
                   last_true_at=now if seen.raising else previous.last_true_at)


def _move(previous: AlertState | None, state: AlertState, now: datetime) -> tuple[AlertState, Transition]:
    return state, Transition(state, None if previous is None else previous.phase, now)


# -- observing ---------------------------------------------------------------------------------


def evaluate(racks: Iterable[RackFacts], fleet: FleetFacts, states: Mapping[str, AlertState], now: datetime, *,
             stale_after_seconds: float, links: Links = Links()) -> dict[str, Observation]:
    """Every alert condition seen now, by alert key. `states` (the alerts as stored) gives the
    hysteresis its band and the generation rule its window."""
    racks = list(racks)
    out: dict[str, Observation] = {}
    live: dict[str, set[str]] = defaultdict(set)
    for s in states.values():
        if s.rack_id and s.live:
            live[s.rack_id].add(s.rule)
    for rack in racks:
        status = _status(rack.status)
        # Only the rules that can say something: its deviations', its live alerts', critical subsystems', stale.
        names = {rule.name for check in rack.deviations if (rule := _rule_for(check)) is not None}
        names.update(live.get(rack.rack_id, ()))
        names.update(f"rack-{s}-health-critical" for s, h in rack.health.items() if h == "critical")
        names.add("rack-telemetry-stale")
        for name in sorted(names):
            rule = RULES[name]
            assert isinstance(rule, RackRule)
            seen = _observe_rack(rule, rack, status, states.get(_key(name, rack.rack_id)), now,
                                 stale_after_seconds, links)
            if seen is not None:
                out[seen.key] = seen
    for seen in _observe_fleet(fleet, states, out, now, links):
        out[seen.key] = seen
    for seen in _cooling_units(racks, fleet.cooled, states, links):
        out[seen.key] = seen
    return out


def _key(rule: str, subject: str) -> str:
    """The dedup key: one alert per rule and rack (or place, or generation and check)."""
    return f"{rule}/{subject}"


@lru_cache(maxsize=4096)
def _rule_for(check: str) -> RackRule | None:
    """The rack rule a deviation check feeds (None: no rule pages for it, e.g. `stalled-in-stage`)."""
    return next((r for r in RACK_RULES if r.source == "deviation" and r.matches(check)), None)


def _observe_rack(rule: RackRule, rack: RackFacts, status: RackStatus | None, state: AlertState | None,
                  now: datetime, stale_after_seconds: float, links: Links) -> Observation | None:
    live = state is not None and state.live
    explained = status in rule.explained_by
    cdu = None
    if rule.subsystem == "cooling":  # kept for the alert's life: its labels are its identity at Alertmanager
        cdu = rack.cooling_unit.cooling_unit_id if rack.cooling_unit is not None else (
            state.labels.get("cooling_unit") if live and state is not None else None)
    if rule.source == "stale":
        if status not in POWERED_STAGES or rack.telemetry_at is None:
            return None
        age = (now - rack.telemetry_at).total_seconds()
        raising, holding = age > stale_after_seconds, age > stale_after_seconds / 2
        if not (raising or (live and holding)):
            return None
        text = (f"no reading for {age:.0f} s (stale after {stale_after_seconds:g} s); last at "
                f"{rack.telemetry_at.isoformat(timespec='seconds')}")
        return _rack_obs(rule, rack, raising, holding, round(age, 1), (None, stale_after_seconds), "s", None, text,
                         explained, links)
    if rule.source == "health":
        health = rack.health.get(rule.subsystem, "unknown")
        raising, holding = health == "critical", health not in ("ok",)
        if not (raising or (live and holding)) or (rule.subsystem == "cooling" and _only_its_cooling_unit(rack)):
            return None
        return _rack_obs(rule, rack, raising, holding, None, (None, None), None, None,
                         f"{rule.subsystem} health {health}: {rack.health_reasons.get(rule.subsystem, '')}".rstrip(
                             ": "), explained, links, cooling_unit=cdu)
    found = sorted((d for c, d in rack.deviations.items() if rule.matches(c)), key=lambda d: d.check)
    if found:
        first = found[0]
        band = (first.allowed_min, first.allowed_max)
        value = first.measured if isinstance(first.measured, (int, float)) else rack.metric(rule.metric or "")
        detail = "; ".join(f"{d.check}: {d.detail}" if d.detail else d.check for d in found)
        return _rack_obs(rule, rack, True, True, value, band, first.unit, first, detail, explained, links,
                         check=first.check, cooling_unit=cdu)
    if not live or rule.metric is None or state is None:
        return None
    # The deviation went away: hysteresis keeps the alert until the value is inside the band by the margin.
    value = rack.metric(rule.metric)
    if value is None or _cleared(value, state.band, rule):
        return None
    return _rack_obs(rule, rack, False, True, round(value, 3), state.band,
                     state.annotations.get("unit") or None, None, "back inside the band, not yet below the lower"
                     " threshold", explained, links, check=state.labels.get("check"),
                     revision=state.annotations.get("intent_revision"), cooling_unit=cdu)


def _only_its_cooling_unit(rack: RackFacts) -> bool:
    """The rack's cooling is not ok only because its CDU is not: `cooling-unit-degraded` is the page for it
    (the rack's cooling reason is exactly the CDU's, `twin.domain.health.cooling_unit_reason`)."""
    cdu = rack.cooling_unit
    return cdu is not None and cdu.health != "ok" and rack.health_reasons.get("cooling") == cooling_unit_reason(cdu)


def _cleared(value: float, band: tuple[float | None, float | None], rule: RackRule) -> bool:
    lo, hi = band
    margin_lo = rule.clear_margin * abs(lo) if rule.clear_relative and lo is not None else rule.clear_margin
    margin_hi = rule.clear_margin * abs(hi) if rule.clear_relative and hi is not None else rule.clear_margin
    return (lo is None or value >= lo + margin_lo) and (hi is None or value <= hi - margin_hi)


def _status(status: str) -> RackStatus | None:
    try:
        return RackStatus(status)
    except ValueError:
        return None


def _band_text(band: tuple[float | None, float | None], unit: str | None) -> str:
    lo, hi = band
    u = f" {unit}" if unit else ""
    if lo is None and hi is None:
        return "no band"
    if lo is None:
        return f"at most {hi:g}{u}"
    if hi is None:
        return f"at least {lo:g}{u}"
    return f"{lo:g}{u}" if lo == hi else f"{lo:g} to {hi:g}{u}"


def _value_text(value: float | str | None, unit: str | None) -> str:
    if value is None:
        return "n/a"
    return f"{value:g}{' ' + unit if unit else ''}" if isinstance(value, (int, float)) else str(value)


def _rack_obs(rule: RackRule, rack: RackFacts, raising: bool, holding: bool, value: float | str | None,
              band: tuple[float | None, float | None], unit: str | None, deviation: Deviation | None, detail: str,
              explained: bool, links: Links, *, check: str | None = None, revision: str | None = None,
              cooling_unit: str | None = None) -> Observation:
    place = "/".join(p for p in (rack.facility_id, rack.hall_id) if p) or "not placed"
    revision = str(deviation.intent_revision) if deviation is not None else (revision or "")
    generation = rack.generation or ""
    labels = _labels(alertname=rule.name, severity=rule.severity, scope="rack", owner=rule.owner,
                     subsystem=rule.subsystem, rack=rack.rack_id, facility=rack.facility_id, hall=rack.hall_id,
                     generation=generation, operator=rack.operator, check=check, cooling_unit=cooling_unit,
                     kind="health" if rule.source == "health" else "condition")
    numeric = value if isinstance(value, (int, float)) else None
    measured = _value_text(value, unit)
    rev = f", intent revision {revision}" if revision else ""
    summary = (f"{rack.rack_id} ({place}, {generation or 'no generation'}, {rack.status}): {rule.summary}: "
               f"measured {measured}, design band {_band_text(band, unit)}{rev}")
    fill = {"rule": rule.name, "rack": rack.rack_id, "facility": rack.facility_id or "",
            "generation": generation}
    annotations = {
        "summary": summary, "description": detail, "measured": measured, "band": _band_text(band, unit),
        "unit": unit or "", "intent_revision": revision, "stage": rack.status,
        "runbook_url": links.runbook.format(**fill), "dashboard_url": links.rack_dashboard.format(**fill),
    }
    return Observation(_key(rule.name, rack.rack_id), rule.name, raising, holding, labels,
                       {k: v for k, v in annotations.items() if v}, rack.rack_id, numeric, band, explained)


def _labels(**labels: str | None) -> dict[str, str]:
    return {k: v for k, v in labels.items() if v}


def _observe_fleet(fleet: FleetFacts, states: Mapping[str, AlertState], racks: Mapping[str, Observation],
                   now: datetime, links: Links) -> Iterable[Observation]:
    yield from _headroom(fleet.halls, states, links)
    yield from _drift(fleet.generations, states, racks, now, links)
    yield from _stale_facilities(fleet.facilities, states, links)


def _fleet_obs(rule: FleetRule, subject: str, raising: bool, holding: bool, value: float, summary: str,
               detail: str, links: Links, band: tuple[float | None, float | None] = (None, None), *,
               severity: Severity | None = None, explained: bool = False, **labels: str | None) -> Observation:
    fill = {"rule": rule.name, "rack": "", "facility": labels.get("facility") or "",
            "generation": labels.get("generation") or ""}
    annotations = {"summary": summary, "description": detail, "measured": f"{value:g}",
                   "runbook_url": links.runbook.format(**fill), "dashboard_url": links.fleet_dashboard.format(**fill)}
    return Observation(_key(rule.name, subject), rule.name, raising, holding,
                       _labels(alertname=rule.name, severity=severity or rule.severity, scope=rule.scope,
                               owner=rule.owner, subsystem=rule.subsystem, **labels), annotations, None, value, band,
                       explained)


def _headroom(halls: Sequence[HallLoad], states: Mapping[str, AlertState], links: Links) -> Iterable[Observation]:
    by_facility: dict[str, list[HallLoad]] = defaultdict(list)
    for hall in halls:
        by_facility[hall.facility_id].append(hall)
    places: list[tuple[str, str, str | None, list[HallLoad]]] = [
        *(("facility", f, None, hs) for f, hs in by_facility.items()),
        *(("hall", h.facility_id, h.hall_id, [h]) for h in halls),
    ]
    for scope, facility, hall, members in places:
        for resource in ("power", "cooling"):
            rule = RULES[f"{scope}-{resource}-headroom-low"]
            assert isinstance(rule, FleetRule) and rule.fire_below is not None and rule.clear_above is not None
            capacity = sum(h.power_capacity_watts if resource == "power" else h.cooling_capacity_watts
                           for h in members)
            if capacity <= 0:
                continue
            drawn = sum(h.power_watts for h in members)
            share = (capacity - drawn) / capacity
            subject = facility if hall is None else f"{facility}/{hall}"
            live = (s := states.get(_key(rule.name, subject))) is not None and s.live
            raising, holding = share < rule.fire_below, share < rule.clear_above
            if raising or (live and holding):
                where = subject.replace("/", " hall ")
                yield _fleet_obs(
                    rule, subject, raising, holding, round(share, 4),
                    f"{where}: {resource} headroom {share:.1%} of {capacity / 1e6:,.2f} MW "
                    f"({drawn / 1e6:,.2f} MW drawn); pages below {rule.fire_below:.0%}, clears above "
                    f"{rule.clear_above:.0%}",
                    f"{len(members)} hall(s); measured draw of powered racks against the site {resource} limit",
                    links, (rule.fire_below, None), facility=facility, hall=hall, operator=members[0].operator)


def _drift(generations: Sequence[GenerationCount], states: Mapping[str, AlertState], seen: Mapping[str, Observation],
           now: datetime, links: Links) -> Iterable[Observation]:
    """Racks of a generation deviating on a check now (seen in this evaluation, so the generation alert
    reaches Alertmanager no later than the rack alerts it inhibits) or within the window (stored states)."""
    rule = RULES["generation-deviation-drift"]
    assert isinstance(rule, FleetRule)
    since = now - timedelta(seconds=rule.window_seconds)
    racks: dict[tuple[str, str], set[str]] = defaultdict(set)
    for s in (*states.values(), *seen.values()):
        gen, check, rack = s.labels.get("generation"), s.labels.get("check"), s.rack_id
        if s.labels.get("scope") != "rack" or not gen or not check or not rack:
            continue
        if isinstance(s, Observation) or s.live or (s.last_true_at is not None and s.last_true_at >= since):
            racks[gen, check].add(rack)
    counts = {g.generation: g for g in generations}
    for (gen, check), members in sorted(racks.items()):
        count = counts.get(gen)
        total = 0 if count is None else (count.powered if _reading_check(check) else count.placed)
        if total <= 0:
            continue
        share = len(members) / total
        subject = f"{gen}/{check}"
        live = (s := states.get(_key(rule.name, subject))) is not None and s.live
        raising = share >= rule.fire_share and len(members) >= rule.min_racks
        holding = share >= rule.clear_share and len(members) >= rule.min_racks
        if raising or (live and holding):
            shown = ", ".join(sorted(members)[:10]) + (" …" if len(members) > 10 else "")
            yield _fleet_obs(
                rule, subject, raising, holding, round(share, 4),
                f"generation {gen}: {len(members)} of {total} racks ({share:.0%}) deviate on {check} within "
                f"{rule.window_seconds / 60:g} min: a design problem, not a rack problem",
                f"racks: {shown}", links, (rule.fire_share, None), generation=gen, check=check)


def _reading_check(check: str) -> bool:
    return check in TELEMETRY_CHECKS


def _stale_facilities(facilities: Sequence[FacilityReporting], states: Mapping[str, AlertState], links: Links
                      ) -> Iterable[Observation]:
    rule = RULES["facility-telemetry-stale"]
    assert isinstance(rule, FleetRule)
    for f in facilities:
        if f.reporting <= 0:
            continue
        share = f.stale / f.reporting
        live = (s := states.get(_key(rule.name, f.facility_id))) is not None and s.live
        raising = share >= rule.fire_share and f.stale >= rule.min_racks
        holding = share >= rule.clear_share and f.stale >= 1
        if raising or (live and holding):
            yield _fleet_obs(rule, f.facility_id, raising, holding, round(share, 4),
                             f"{f.facility_id}: {f.stale} of {f.reporting} powered racks ({share:.0%}) stopped "
                             "reporting: look at the collector before the racks",
                             "one alert for the facility; it inhibits the racks' own stale alerts", links,
                             (rule.fire_share, None), facility=f.facility_id, operator=f.operator)


def _cooling_units(racks: Sequence[RackFacts], cooled: Sequence[CooledRack], states: Mapping[str, AlertState],
                   links: Links) -> Iterable[Observation]:
    """`cooling-unit-degraded`: one alert per CDU not ok, listing the racks it feeds.

    The racks' views of their CDU come from the fleet scan (every few seconds), updated by the racks read
    this tick, so a CDU that degrades a rack with an open deviation is seen in the tick that rack's alert is.
    The alert is keyed by CDU and severity: a Warning CDU whose pump fails resolves its warning and fires
    a critical (a new page to on-call); a critical one clears only once the CDU is ok again (a Warning
    keeps it, as a rack's health alert), and no warning is raised while it holds. It does not page when
    every rack the CDU feeds is in maintenance, RMA or decommissioned (someone is working on it).
    """
    rule = RULES["cooling-unit-degraded"]
    assert isinstance(rule, FleetRule)
    views = {c.rack_id: c for c in cooled}
    for rack in racks:  # fresher than the scan: newly degraded, or recovered
        if rack.cooling_unit is None or rack.cooling_unit.health == "ok":
            views.pop(rack.rack_id, None)
        else:
            views[rack.rack_id] = CooledRack(rack.rack_id, rack.cooling_unit, rack.status, rack.facility_id,
                                             rack.hall_id, rack.operator)
    conditions = {c.cooling_unit_id: c for c in cooling_unit_conditions({r: v.cooling_unit for r, v in views.items()})}
    for cdu, condition in sorted(conditions.items()):
        critical_live = (s := states.get(_key(rule.name, f"{cdu}/critical"))) is not None and s.live
        severity: Severity = "critical" if condition.health == "critical" or critical_live else "warning"
        yield _cooling_unit_obs(rule, condition, severity, [views[r] for r in condition.racks], links)


def _cooling_unit_obs(rule: FleetRule, condition: CoolingUnitCondition, severity: Severity,
                      racks: Sequence[CooledRack], links: Links) -> Observation:
    """Raising while the CDU is in `severity`; a critical held through a Warning only holds."""
    raising = severity == condition.health
    facilities = {r.facility_id for r in racks if r.facility_id}
    facility = next(iter(facilities)) if len(facilities) == 1 else None
    halls = {r.hall_id for r in racks if r.hall_id}
    hall = next(iter(halls)) if facility and len(halls) == 1 else None
    place = "/".join(p for p in (facility, hall) if p) or ", ".join(sorted(facilities)) or "not placed"
    ids = [r.rack_id for r in racks]
    why = "; ".join(condition.reasons) or "Status.Health says so"
    shown = ", ".join(ids[:10]) + (f", … (+{len(ids) - 10} more)" if len(ids) > 10 else "")
    listed = ", ".join(ids[:100]) + (f", … (+{len(ids) - 100} more)" if len(ids) > 100 else "")
    held = "; " if raising else "; paged when critical, clears once the CDU is ok; "
    explained = all(_status(r.status) in _OUT_OF_SERVICE for r in racks)
    return _fleet_obs(
        rule, f"{condition.cooling_unit_id}/{severity}", raising, True, float(len(ids)),
        f"CDU {condition.cooling_unit_id} ({place}) is {condition.health}: {why}{held}feeds {len(ids)} "
        f"rack(s): {shown}",
        f"every rack it feeds has degraded cooling naming this CDU; their coolant flow, supply temperature and "
        f"cooling health alerts are held back while this one fires. Racks: {listed}",
        links, severity=severity, explained=explained, cooling_unit=condition.cooling_unit_id, facility=facility,
        hall=hall, operator=next((r.operator for r in racks if r.operator), None))


def stalled_in_deployment(racks: Iterable[RackFacts], states: Mapping[str, AlertState], links: Links = Links()
                          ) -> Iterable[Observation]:
    """`facility-deployment-stalled`: per facility, racks standing in a deployment stage longer than
    their generation allows (the lifecycle worker judges `stalled-in-stage`)."""
    rule = RULES["facility-deployment-stalled"]
    assert isinstance(rule, FleetRule)
    by_facility: dict[str, list[RackFacts]] = defaultdict(list)
    for rack in racks:
        if "stalled-in-stage" in rack.deviations and _status(rack.status) in DEPLOYMENT_STAGES:
            by_facility[rack.facility_id or "not-placed"].append(rack)
    for facility, members in sorted(by_facility.items()):
        stages = ", ".join(f"{r.rack_id} ({r.status}, {r.deviations['stalled-in-stage'].detail})"
                           for r in sorted(members, key=lambda r: r.rack_id)[:10])
        yield _fleet_obs(rule, facility, True, True, float(len(members)),
                         f"{facility}: {len(members)} rack(s) stalled in deployment", stages, links,
                         facility=facility, operator=members[0].operator)


def observe(racks: Sequence[RackFacts], fleet: FleetFacts, states: Mapping[str, AlertState], now: datetime, *,
            stale_after_seconds: float, links: Links = Links()) -> dict[str, Observation]:
    """`evaluate` plus the facility rules that read rack facts (deployment stalls)."""
    out = evaluate(racks, fleet, states, now, stale_after_seconds=stale_after_seconds, links=links)
    for seen in stalled_in_deployment(racks, states, links):
        out[seen.key] = seen
    return out


def advance(states: Mapping[str, AlertState], seen: Mapping[str, Observation], now: datetime, *,
            for_scale: float = 1.0) -> tuple[dict[str, AlertState], list[Transition]]:
    """Step every known or observed alert; the new states (only those that changed or are live)
    and the transitions, in key order. `for_scale` multiplies every `for` duration (tests, demos)."""
    changed: dict[str, AlertState] = {}
    transitions: list[Transition] = []
    for key in sorted(set(states) | set(seen)):
        previous = states.get(key)
        observation = seen.get(key)
        rule = RULES[(previous or observation).rule]  # type: ignore[union-attr]
        state, transition = step(previous, observation, now, rule.for_seconds * for_scale)
        if state is not None and state != previous:
            changed[key] = state
        if transition is not None:
            transitions.append(transition)
    return changed, transitions


INHIBITIONS: tuple[tuple[str, Mapping[str, str], tuple[str, ...]], ...] = (
    ("generation-deviation-drift", {"scope": "rack"}, ("generation", "check")),
    ("facility-telemetry-stale", {"alertname": "rack-telemetry-stale"}, ("facility",)),
    ("facility-power-headroom-low", {"alertname": "hall-power-headroom-low"}, ("facility",)),
    ("facility-cooling-headroom-low", {"alertname": "hall-cooling-headroom-low"}, ("facility",)),
    *(("cooling-unit-degraded", {"scope": "rack", "alertname": name}, ("cooling_unit",))
      for name in COOLING_UNIT_EXPLAINS),
)
"""(source rule, target label matchers, labels that must be equal): the inhibit rules of
`deploy/alertmanager/alertmanager.yml`, for senders that have no Alertmanager in front (PagerDuty)."""


def inhibited(labels: Mapping[str, str], firing: Iterable[Mapping[str, str]]) -> str | None:
    """The name of a firing alert that explains (inhibits) an alert with `labels`, if one does."""
    sources = list(firing)
    for source_rule, target, equal in INHIBITIONS:
        if any(labels.get(k) != v for k, v in target.items()):
            continue
        for src in sources:
            if src.get("alertname") == source_rule and all(src.get(k) and src.get(k) == labels.get(k) for k in equal):
                return source_rule
    return None
