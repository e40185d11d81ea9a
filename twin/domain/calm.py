"""Calm readings: inside every band health and conformance judge by, so a window of them needs no judging.

Why: at fleet shape every reading is its rack's newest, so every reading paid for a full
judgement (`assess`, `evaluate`, the health's JSON: two thirds of a worker's time), and most
racks conform most of the time. A reading is *calm* under a generation's intent and a stage when
no check of `twin.domain.health` or `twin.domain.conformance` could find anything in it: every
judged quantity measured and inside its band, with margin to the near-budget warning, no leak,
no link down, fans below flat out. A rack whose whole window is calm, whose newest poll saw no
silent endpoint, no failing CDU and no failing equipment is healthy and conforms, or is only
stale: its judgement is `calm_judgement` (the very health dict `assess(...).as_dict()` gives, and
the deviations `evaluate` finds), for the cost of a few comparisons. Stale is kept on this path
because a worker catching up (after an outage, or a backlog) meets every reading stale.

Anything else (one reading out of a band, a gap, a condition from the poll) is judged in
full. The shortcut never decides what the full judgement would not: a property test holds
the two equal over random windows.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from schemas import Deviation, GenerationIntent, Range, RackReading
from twin.domain.conformance import stale_deviation
from twin.domain.health import FANS_FLAT_OUT_PERCENT, NEAR_BUDGET_SHARE, SUBSYSTEMS, WINDOW_SECONDS, stale_reason_text
from twin.domain.lifecycle import POWERED_STAGES, RackStatus
from twin.domain.rack import RackTwin

__all__ = ["CalmBands", "calm_judgement"]

_INF = float("inf")
STALE = "telemetry-stale"
_NEAR_BUDGET_MARGIN = 1e-9
"""Kept below the near-budget share: a window's mean power may round a few ulps above its largest reading."""


def _ends(r: Range) -> tuple[float, float]:
    return (-_INF if r.min is None else r.min, _INF if r.max is None else r.max)


@dataclass(frozen=True, slots=True)
class CalmBands:
    """The values a reading may hold and still be calm, for one intent revision and one stage."""

    power_lo: float
    power_hi: float
    inlet: tuple[float, float]
    supply: tuple[float, float]
    flow_per_kw: tuple[float, float]
    accelerator: tuple[float, float]

    @classmethod
    def of(cls, intent: GenerationIntent, status: RackStatus) -> CalmBands:
        budget = intent.power_budget_watts
        hi = intent.cooling_capacity_watts
        if budget.max is not None:  # under the budget, and under the mean's near-budget warning
            hi = min(hi, budget.max, NEAR_BUDGET_SHARE * budget.max * (1 - _NEAR_BUDGET_MARGIN))
        lo = budget.min if status is RackStatus.ACTIVE and budget.min is not None else -_INF
        return cls(lo, hi, _ends(intent.inlet_temperature_celsius), _ends(intent.coolant_supply_temperature_celsius),
                   _ends(intent.coolant_flow_liters_per_minute_per_kilowatt),
                   _ends(intent.hottest_accelerator_temperature_celsius))

    def calm(self, r: RackReading) -> bool:
        """Whether no check could find anything in `r` (a quantity not measured is not calm: gaps are judged)."""
        watts = r.power_watts
        if watts is None or not self.power_lo <= watts <= self.power_hi:
            return False
        if r.leak_detected is not False or r.network_links_down != 0 or r.network_links_up is None:
            return False
        fan = r.fan_speed_percent
        if fan is None or fan >= FANS_FLAT_OUT_PERCENT:
            return False
        v = r.inlet_temperature_celsius
        if v is None or not self.inlet[0] <= v <= self.inlet[1]:
            return False
        v = r.coolant_supply_temperature_celsius
        if v is None or not self.supply[0] <= v <= self.supply[1]:
            return False
        v = r.hottest_accelerator_temperature_celsius
        if v is None or not self.accelerator[0] <= v <= self.accelerator[1]:
            return False
        flow = r.coolant_flow_liters_per_minute
        if flow is None:
            return False
        if watts >= 1000.0 and not self.flow_per_kw[0] <= flow / (watts / 1000.0) <= self.flow_per_kw[1]:
            return False
        return True


def calm_judgement(twin: RackTwin, intent: GenerationIntent, now: datetime, stale_after_seconds: float, *,
                   window_seconds: float = WINDOW_SECONDS) -> tuple[dict[str, Any], dict[str, Deviation]] | None:
    """The judgement of a twin whose whole window the caller knows to be calm under
    `CalmBands.of(intent, twin.status)`: its health as `assess(...).as_dict()` gives it, and its
    telemetry deviations by check as `evaluate(..., only="telemetry")` finds them (none, or only
    `telemetry-stale` when it stopped reporting). None when a condition of its newest poll (a
    silent endpoint, a CDU or equipment not ok) needs the full judgement."""
    w = twin.window
    if w is None or twin.unreachable or twin.equipment:
        return None
    cdu = twin.cooling_unit
    if cdu is not None and cdu.health != "ok":
        return None
    newest, last = w.latest_us, twin.latest_at
    assert newest is not None and last is not None
    at = last.isoformat()
    age = (now - last).total_seconds()
    health: dict[str, Any] = {"readings": len(w.since(newest - window_seconds * 1_000_000)), "last_reading_at": at}
    deviations: dict[str, Deviation] = {}
    if age > stale_after_seconds:
        health.update(overall="warning", stale=True, stale_reason="no-reading")
        why = stale_reason_text(age, stale_after_seconds)
        for s in SUBSYSTEMS:
            health[s] = {"state": "warning", "reason": why}
        if twin.status in POWERED_STAGES:
            deviations[STALE] = stale_deviation(twin, intent, age, stale_after_seconds, at)
    else:
        health.update(overall="ok", stale=False, stale_reason=None)
        for s in SUBSYSTEMS:
            health[s] = {"state": "ok", "reason": ""}
    if cdu is not None:
        health["cooling_unit"] = cdu.model_dump(mode="json")
    return health, deviations
