"""Conformance: a rack twin judged against its generation's design intent, as deviations.

Why deviations and not a pass/fail: operators act on what is off and by how much. Each
deviation keeps the measured value beside the allowed range (Ditto's desired beside reported),
its unit, a severity, and the generation and intent revision that judged it, so a new revision
visibly re-judges a rack. A check's slug is its identity: a rack has at most one deviation
per slug, and a deviation fires when it appears and resolves when it goes away.

What is judged, and when:

- lifecycle, always: `stalled-in-stage` (longer in a stage than the generation allows);
- parts, once a rack has passed its factory test (while `manufactured` it is still being
  built) and until it is decommissioned: `components-missing-<kind>`,
  `components-extra-<kind>`, `firmware-drift-<kind>`;
- telemetry, only in stages where the rack is powered (installed to maintenance, not RMA or
  decommissioned) and only once it has reported; judged on its newest reading:
  `power-over-budget`, `power-under-budget` (active racks only), `cooling-over-capacity`,
  `coolant-flow-out-of-range` (per kW drawn, from 1 kW up), `inlet-temperature-out-of-envelope`,
  `coolant-supply-out-of-envelope`, `accelerator-too-hot`, `leak-detected`,
  `network-links-down`, `telemetry-stale`.

A value beyond its limit by less than the check's margin is a warning, further is critical;
leaks and heat above the cooling capacity are critical at once.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Literal

from schemas import Deviation, DeviationChanged, GenerationIntent, Range, Severity
from twin.domain.lifecycle import POWERED_STAGES, RackStatus, stalled

if TYPE_CHECKING:
    from twin.domain.rack import RackTwin

__all__ = ["CHECKS", "MARGINS", "STALE_AFTER_SECONDS", "TELEMETRY_CHECKS", "Family", "deviation_changes", "evaluate",
           "judge", "reevaluate", "stale_deviation"]

STALE_AFTER_SECONDS = 30.0
"""Default for `stale_after_seconds`; the worker passes its `telemetry_stale_seconds` setting."""

CHECKS: Mapping[str, str] = {
    "stalled-in-stage": "longer in its lifecycle stage than the generation's stage allowance",
    "components-missing-<kind>": "fewer parts of a kind than the generation requires",
    "components-extra-<kind>": "more parts of a kind than the generation requires",
    "firmware-drift-<kind>": "parts of a kind not on the generation's firmware baseline",
    "power-over-budget": "input power above the power budget",
    "power-under-budget": "an active rack drawing less than the power budget's minimum",
    "cooling-over-capacity": "input power (heat) above the liquid loop's cooling capacity",
    "coolant-flow-out-of-range": "coolant flow per kW drawn outside its range",
    "inlet-temperature-out-of-envelope": "inlet air temperature outside its envelope",
    "coolant-supply-out-of-envelope": "coolant supply temperature outside its envelope",
    "accelerator-too-hot": "hottest accelerator above its limit",
    "leak-detected": "a leak sensor of the rack or its manifold tripped",
    "network-links-down": "fabric or front-end links expected up are down",
    "telemetry-stale": "no reading for longer than the stale setting",
}
"""Every check, by slug (`<kind>` stands for a component kind)."""

TELEMETRY_CHECKS: frozenset[str] = frozenset({
    "power-over-budget", "power-under-budget", "cooling-over-capacity", "coolant-flow-out-of-range",
    "inlet-temperature-out-of-envelope", "coolant-supply-out-of-envelope", "accelerator-too-hot", "leak-detected",
    "network-links-down", "telemetry-stale",
})
"""The checks judged from readings; the others (stage, parts, firmware) from lifecycle events."""

Family = Literal["telemetry", "lifecycle"]
"""Half of the checks: `telemetry` (TELEMETRY_CHECKS) or `lifecycle` (all the others)."""

MARGINS: Mapping[str, float] = {
    "power-over-budget": 0.05,                 # share of the budget's max
    "coolant-flow-out-of-range": 0.20,         # share of the range's bound
    "inlet-temperature-out-of-envelope": 3.0,  # °C
    "coolant-supply-out-of-envelope": 3.0,     # °C
    "accelerator-too-hot": 5.0,                # °C
    "network-links-down": 0.10,                # share of links
}
"""How far beyond its limit a value may be and still be a warning rather than critical."""

_NOT_BUILT = frozenset({RackStatus.PLANNED, RackStatus.MANUFACTURED, RackStatus.DECOMMISSIONED})


class _Deviations(list[Deviation]):
    """The deviations of one rack under one intent revision, as they are found."""

    def __init__(self, twin: RackTwin, intent: GenerationIntent) -> None:
        super().__init__()
        self.rack_id = twin.rack_id
        self.generation = intent.generation
        self.revision = intent.revision

    def add(self, check: str, severity: Severity, measured: float | str | None, unit: str | None,
            lo: float | None = None, hi: float | None = None, detail: str = "") -> None:
        self.append(Deviation(rack_id=self.rack_id, check=check, severity=severity, measured=measured,
                              allowed_min=lo, allowed_max=hi, unit=unit, generation=self.generation,
                              intent_revision=self.revision, detail=detail))

    def outside(self, check: str, value: float, allowed: Range, unit: str, margin: float, detail: str = "") -> None:
        """A deviation when `value` is outside `allowed`: critical beyond `margin` (absolute)."""
        lo, hi = allowed.min, allowed.max
        beyond = max(0.0 if lo is None else lo - value, 0.0 if hi is None else value - hi)
        if beyond > 0:
            self.add(check, "critical" if beyond > margin else "warning", round(value, 3), unit, lo, hi, detail)


def evaluate(twin: RackTwin, intent: GenerationIntent, now: datetime, *,
             stale_after_seconds: float = STALE_AFTER_SECONDS, only: Family | None = None) -> list[Deviation]:
    """Every deviation of `twin` from `intent` at `now` (empty: the rack conforms).

    `only` judges one family of checks: the telemetry path judges readings many times a second
    and must not pay for parts and firmware it does not own (nor the lifecycle path for readings).
    """
    if twin.generation != intent.generation:
        raise ValueError(f"rack {twin.rack_id} is of generation {twin.generation!r}, "
                         f"not {intent.generation!r}: judge it by its own generation's intent")
    out = _Deviations(twin, intent)
    if only != "telemetry":
        _lifecycle(out, twin, intent, now)
        if twin.status not in _NOT_BUILT:
            _parts(out, twin, intent)
    if only != "lifecycle" and twin.status in POWERED_STAGES and twin.window:
        _telemetry(out, twin, intent, now, stale_after_seconds)
    return list(out)


def judge(twin: RackTwin, intent: GenerationIntent, now: datetime, *,
          stale_after_seconds: float = STALE_AFTER_SECONDS) -> list[Deviation]:
    """`evaluate`, then mark the twin as judged by this revision (`twin.intent_revision`)."""
    deviations = evaluate(twin, intent, now, stale_after_seconds=stale_after_seconds)
    twin.intent_revision = intent.revision
    return deviations


def reevaluate(twins: Iterable[RackTwin], intent: GenerationIntent, now: datetime, *,
               stale_after_seconds: float = STALE_AFTER_SECONDS) -> dict[str, list[Deviation]]:
    """Re-judge every twin of `intent`'s generation not yet judged by this revision (a new revision
    was published); rack id -> its deviations now. Twins of other generations are left alone."""
    return {
        twin.rack_id: judge(twin, intent, now, stale_after_seconds=stale_after_seconds)
        for twin in twins
        if twin.generation == intent.generation and twin.intent_revision != intent.revision
    }


def _lifecycle(out: _Deviations, twin: RackTwin, intent: GenerationIntent, now: datetime) -> None:
    stall = stalled(twin, intent, now)
    if stall is not None:
        out.add("stalled-in-stage", "warning", round(stall.days_in_stage, 2), "d", None, stall.allowance_days,
                f"{stall.stage} since {stall.entered_at.isoformat()}, allowed {stall.allowance_days:g} days")


def _parts(out: _Deviations, twin: RackTwin, intent: GenerationIntent) -> None:
    firmware = twin.bom.firmware_by_kind()
    counts = {kind: sum(versions.values()) for kind, versions in firmware.items()}
    required = intent.required_components
    for kind, wanted in required.items():
        have = counts.get(kind, 0)
        if have < wanted:
            out.add(f"components-missing-{kind}", "warning", have, "count", wanted, wanted,
                    f"{wanted - have} {kind} missing of {wanted} required")
    for fitted, have in counts.items():
        wanted = required.get(fitted, 0)  # type: ignore[call-overload]
        if have > wanted:
            out.add(f"components-extra-{fitted}", "warning", have, "count", wanted, wanted,
                    f"{have - wanted} {fitted} more than the {wanted} required")
    for kind, baseline in intent.firmware_baseline.items():
        versions = firmware.get(kind)
        if not versions:
            continue
        off = sorted((str(v), n) for v, n in versions.items() if v != baseline)
        if off:
            drifted = sum(n for _, n in off)
            out.add(f"firmware-drift-{kind}", "warning", ", ".join(f"{v} x{n}" for v, n in off), "version", None,
                    None, f"{drifted} of {sum(versions.values())} {kind} parts not on baseline {baseline}")


def _telemetry(out: _Deviations, twin: RackTwin, intent: GenerationIntent, now: datetime,
               stale_after_seconds: float) -> None:
    assert twin.window is not None
    r = twin.window.sample()
    age = (now - r.occurred_at).total_seconds()
    if age > stale_after_seconds:
        out.append(stale_deviation(twin, intent, age, stale_after_seconds, r.occurred_at.isoformat()))

    watts, budget = r.power_watts, intent.power_budget_watts  # a quantity None was not measured: not judged
    if watts is not None:
        if budget.max is not None and watts > budget.max:
            severe = watts > budget.max * (1 + MARGINS["power-over-budget"])
            out.add("power-over-budget", "critical" if severe else "warning", watts, "W", budget.min, budget.max)
        if twin.status is RackStatus.ACTIVE and budget.min is not None and watts < budget.min:
            out.add("power-under-budget", "warning", watts, "W", budget.min, budget.max,
                    "active rack below its minimum")
        if watts > intent.cooling_capacity_watts:
            out.add("cooling-over-capacity", "critical", watts, "W", None, intent.cooling_capacity_watts,
                    "heat above what the liquid loop is designed to remove")
    if watts is not None and watts >= 1000.0 and r.coolant_flow_liters_per_minute is not None:
        per_kw = intent.coolant_flow_liters_per_minute_per_kilowatt
        flow = r.coolant_flow_liters_per_minute / (watts / 1000.0)
        bound = per_kw.min if per_kw.min is not None and flow < per_kw.min else per_kw.max
        margin = MARGINS["coolant-flow-out-of-range"] * (bound or 0.0)
        out.outside("coolant-flow-out-of-range", flow, per_kw, "L/min/kW", margin,
                    f"{r.coolant_flow_liters_per_minute:g} L/min at {watts / 1000:.1f} kW")
    for check, value, allowed in (
        ("inlet-temperature-out-of-envelope", r.inlet_temperature_celsius, intent.inlet_temperature_celsius),
        ("coolant-supply-out-of-envelope", r.coolant_supply_temperature_celsius,
         intent.coolant_supply_temperature_celsius),
        ("accelerator-too-hot", r.hottest_accelerator_temperature_celsius,
         intent.hottest_accelerator_temperature_celsius),
    ):
        if value is not None:
            out.outside(check, value, allowed, "°C", MARGINS[check])
    if r.leak_detected:
        out.add("leak-detected", "critical", "detected", None, None, None, "a leak sensor tripped")
    down, up = r.network_links_down, r.network_links_up
    if down is not None and up is not None and down > 0:
        total = up + down
        severe = total > 0 and down / total >= MARGINS["network-links-down"]
        out.add("network-links-down", "critical" if severe else "warning", down, "links", 0, 0,
                f"{down} of {total} links down")


def stale_deviation(twin: RackTwin, intent: GenerationIntent, age: float, stale_after_seconds: float,
                    last_reading_at: str) -> Deviation:
    """`telemetry-stale`: the rack's newest reading is `age` seconds old, beyond the stale setting."""
    return Deviation(rack_id=twin.rack_id, check="telemetry-stale", severity="warning", measured=round(age, 1),
                     allowed_min=None, allowed_max=stale_after_seconds, unit="s", generation=intent.generation,
                     intent_revision=intent.revision, detail=f"last reading at {last_reading_at}")


def deviation_changes(rack_id: str, before: Mapping[str, Deviation], after: Mapping[str, Deviation], at: datetime,
                      source: str, seq: int) -> list[DeviationChanged]:
    """What alerting hears when a rack's open deviations go from `before` to `after` (check -> deviation):
    firing for a new check or a changed severity, resolved for a check that went away.

    The event id is derived from (rack, check, state, at), so a batch applied twice announces a change once.
    """
    from uuid import NAMESPACE_URL, uuid5

    changes = []
    for check, dev in after.items():
        if before.get(check) != dev and (check not in before or before[check].severity != dev.severity):
            changes.append(("firing", dev))
    for check, dev in before.items():
        if check not in after:
            changes.append(("resolved", dev))
    return [
        DeviationChanged(
            event_id=uuid5(NAMESPACE_URL, f"{rack_id}/{dev.check}/{state}/{at.isoformat()}"),
            occurred_at=at, source=source, seq=seq, rack_id=rack_id, state=state, deviation=dev,  # type: ignore[arg-type]
        )
        for state, dev in changes
    ]
