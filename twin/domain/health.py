"""Health per subsystem (power, cooling, compute, network), judged over the recent readings window.

Why a window and not the latest reading: one reading out of range is a blip, every reading of
the window out of range is a condition. So each limit is judged twice: a reading outside it
somewhere in the window is a `warning` (transient); every reading outside it, over at least
`SUSTAINED_READINGS` readings, is `critical` (sustained). A leak is critical at once.

Health is kept apart from lifecycle status (Redfish keeps `Status.Health` apart from
`Status.State`): a rack can be `active` and `critical`. Limits come from the generation's
design intent; without one, only what needs no intent is judged (leaks, links down).

Stale: a rack that stopped reporting for longer than `stale_after_seconds` (a setting, passed
in) is `stale`; each subsystem is then at least a warning, because its last known state can no
longer be trusted (a critical one stays critical). A rack that never reported is `unknown`.
A rack whose newest reading says an endpoint measuring it did not answer is stale too, with
the reason `endpoint-unreachable` (the collector saw the silence before the clock would).

A quantity no source measures (NaN in the window) is simply not judged. A BMC chassis whose
Redfish `Status` is Warning or Critical makes compute at least that, a rack PDU power, each
naming the endpoint. A rack fed by a CDU in Warning or Critical, or with a failed pump, has its
cooling degraded to the CDU's state, with a reason naming the CDU (`twin.domain.topology`
groups those racks per CDU).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from enum import StrEnum
from typing import Any

from schemas import CoolingUnitStatus, GenerationIntent, Range
from twin.domain.rack import RackTwin, ReadingWindow

__all__ = [
    "COOLING_UNIT_PREFIX", "ENDPOINT_UNREACHABLE", "FANS_FLAT_OUT_PERCENT", "LINKS_DOWN_CRITICAL_SHARE",
    "NEAR_BUDGET_SHARE", "SUBSYSTEMS", "SUSTAINED_READINGS", "WINDOW_SECONDS", "HealthState", "RackHealth",
    "SubsystemHealth", "assess", "cooling_unit_reason", "stale_reason_text",
]

SUSTAINED_READINGS = 3
"""Readings that must all be out of range before a condition is critical rather than a warning."""
WINDOW_SECONDS = 60.0
"""Default span of the window, back from the newest reading."""
NEAR_BUDGET_SHARE = 0.95
"""Mean power above this share of the budget's max is a warning."""
LINKS_DOWN_CRITICAL_SHARE = 0.10
"""A share of links down at or above this, sustained, is critical."""
FANS_FLAT_OUT_PERCENT = 95.0
"""Fans at or above this duty in every reading of a sustained window are a cooling warning."""
SUBSYSTEMS = ("power", "cooling", "compute", "network")
ENDPOINT_UNREACHABLE = "endpoint-unreachable"
"""Stale reason of a rack whose Redfish endpoint did not answer the collector's last poll."""
COOLING_UNIT_PREFIX = "cooling unit"
"""How a rack's cooling reason starts when its CDU explains it (alerting leaves those to the CDU's alert)."""


class HealthState(StrEnum):
    """Redfish health words, plus `unknown` for a rack that never reported."""

    OK = "ok"
    UNKNOWN = "unknown"
    WARNING = "warning"
    CRITICAL = "critical"


_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
_RANK = {HealthState.OK: 0, HealthState.UNKNOWN: 1, HealthState.WARNING: 2, HealthState.CRITICAL: 3}


@dataclass(frozen=True, slots=True)
class SubsystemHealth:
    """One subsystem's state, with every reason it is not ok."""

    state: HealthState
    reasons: tuple[str, ...] = ()

    @property
    def reason(self) -> str:
        return "; ".join(self.reasons)


OK = SubsystemHealth(HealthState.OK)


@dataclass(frozen=True, slots=True)
class RackHealth:
    """Health of one rack's subsystems at one instant."""

    power: SubsystemHealth
    cooling: SubsystemHealth
    compute: SubsystemHealth
    network: SubsystemHealth
    stale: bool
    last_reading_at: datetime | None
    readings: int
    """Readings the judgement was made over."""
    stale_reason: str | None = None
    """Why the rack is stale: `no-reading` (silent too long) or `endpoint-unreachable`."""
    cooling_unit: CoolingUnitStatus | None = None
    """The CDU feeding the rack as last polled (its condition explains the rack's cooling)."""

    @property
    def overall(self) -> HealthState:
        """The worst subsystem state."""
        return max((getattr(self, s).state for s in SUBSYSTEMS), key=_RANK.__getitem__)

    def as_dict(self) -> dict[str, Any]:
        """JSON-able form (the current-state table's `health` column)."""
        return {
            "overall": self.overall.value, "stale": self.stale, "stale_reason": self.stale_reason,
            "readings": self.readings,
            "last_reading_at": None if self.last_reading_at is None else self.last_reading_at.isoformat(),
            **{s: {"state": getattr(self, s).state.value, "reason": getattr(self, s).reason} for s in SUBSYSTEMS},
            **({} if self.cooling_unit is None else {"cooling_unit": self.cooling_unit.model_dump(mode="json")}),
        }


class _Judge:
    """Collects (state, reason) findings per subsystem."""

    def __init__(self) -> None:
        self.found: dict[str, list[tuple[HealthState, str]]] = {s: [] for s in SUBSYSTEMS}

    def add(self, subsystem: str, state: HealthState, reason: str) -> None:
        self.found[subsystem].append((state, reason))

    def limit(self, subsystem: str, label: str, values: Sequence[float], lo: float | None, hi: float | None,
              unit: str) -> None:
        """Warning when some value is outside [lo, hi], critical when all are (sustained)."""
        out = [v for v in values if (lo is not None and v < lo) or (hi is not None and v > hi)]
        if not out:
            return
        worst = max(out, key=lambda v: max(0.0 if lo is None else lo - v, 0.0 if hi is None else v - hi))
        span = f"[{_fmt(lo, '-inf')}, {_fmt(hi, 'inf')}] {unit}"
        if len(out) == len(values) and len(values) >= SUSTAINED_READINGS:
            self.add(subsystem, HealthState.CRITICAL,
                     f"{label} outside {span} in all {len(values)} readings (worst {worst:g} {unit})")
        else:
            self.add(subsystem, HealthState.WARNING,
                     f"{label} outside {span} in {len(out)} of {len(values)} readings (worst {worst:g} {unit})")

    def within(self, subsystem: str, label: str, values: Sequence[float], allowed: Range, unit: str) -> None:
        self.limit(subsystem, label, values, allowed.min, allowed.max, unit)

    def result(self, subsystem: str) -> SubsystemHealth:
        found = self.found[subsystem]
        if not found:
            return OK
        state = max((s for s, _ in found), key=_RANK.__getitem__)
        return SubsystemHealth(state, tuple(r for _, r in found))


def _fmt(v: float | None, open_end: str) -> str:
    return open_end if v is None else f"{v:g}"


def assess(twin: RackTwin | ReadingWindow | None, intent: GenerationIntent | None, now: datetime,
           stale_after_seconds: float, *, window_seconds: float = WINDOW_SECONDS) -> RackHealth:
    """Health of a rack (or of a readings window) at `now`, judged against `intent`.

    The window is the readings held within `window_seconds` of the newest one.
    """
    held = twin.window if isinstance(twin, RackTwin) else twin
    newest = None if held is None else held.latest_us
    if held is None or newest is None:
        unknown = SubsystemHealth(HealthState.UNKNOWN, ("no telemetry received",))
        return RackHealth(unknown, unknown, unknown, unknown, stale=True, last_reading_at=None, readings=0)
    window = held.since(newest - window_seconds * 1_000_000)
    j = _Judge()

    gaps = window.has_gaps()
    if gaps:  # some quantity was not measured (NaN): judge only the measured values
        def col(field: str) -> Sequence[float]:
            return [v for v in window.column(field) if v == v]
    else:
        col = window.column

    power = col("power_watts")
    leak = col("leak_detected")
    if any(leak):
        j.add("cooling", HealthState.CRITICAL, f"leak detected in {sum(1 for x in leak if x)} of {len(leak)} readings")
    if intent is not None:
        budget = intent.power_budget_watts
        j.limit("power", "power", power, None, budget.max, "W")
        mean = sum(power) / len(power) if power else None
        if mean is not None and budget.max is not None and NEAR_BUDGET_SHARE * budget.max < mean <= budget.max:
            j.add("power", HealthState.WARNING,
                  f"mean power {mean:.0f} W within {100 - 100 * NEAR_BUDGET_SHARE:g} % of the {budget.max:g} W budget")
        j.limit("cooling", "heat load", power, None, intent.cooling_capacity_watts, "W")
        j.within("cooling", "inlet air", col("inlet_temperature_celsius"), intent.inlet_temperature_celsius, "°C")
        j.within("cooling", "coolant supply", col("coolant_supply_temperature_celsius"),
                 intent.coolant_supply_temperature_celsius, "°C")
        flow, watts = window.column("coolant_flow_liters_per_minute"), window.column("power_watts")
        per_kw = [f / (p / 1000.0) for f, p in zip(flow, watts, strict=True) if p >= 1000.0 and f == f]
        if per_kw:
            j.within("cooling", "coolant flow", per_kw, intent.coolant_flow_liters_per_minute_per_kilowatt,
                     "L/min/kW")
        j.within("compute", "hottest accelerator", col("hottest_accelerator_temperature_celsius"),
                 intent.hottest_accelerator_temperature_celsius, "°C")
    fans = col("fan_speed_percent")
    if len(fans) >= SUSTAINED_READINGS and min(fans) >= FANS_FLAT_OUT_PERCENT:
        j.add("cooling", HealthState.WARNING, f"fans at {min(fans):g} % or more in all {len(fans)} readings")

    up, down = window.column("network_links_up"), window.column("network_links_down")
    if gaps:  # keep the readings that measured both, so shares pair up
        links = [(u, d) for u, d in zip(up, down, strict=True) if u == u and d == d]
        up, down = [u for u, _ in links], [d for _, d in links]  # type: ignore[assignment]
    if down and down[-1] > 0:
        shares = [d / (u + d) for u, d in zip(up, down, strict=True) if u + d > 0]
        sustained = (len(shares) >= SUSTAINED_READINGS and all(d > 0 for d in down)
                     and min(shares) >= LINKS_DOWN_CRITICAL_SHARE)
        j.add("network", HealthState.CRITICAL if sustained else HealthState.WARNING,
              f"{down[-1]:g} of {up[-1] + down[-1]:g} links down")

    last = _EPOCH + timedelta(microseconds=newest)  # the newest reading's time (window.times()[-1], cheaper)
    stale_for = (now - last).total_seconds()
    stale_reason = None
    if stale_for > stale_after_seconds:
        stale_reason = "no-reading"
        for s in SUBSYSTEMS:
            j.add(s, HealthState.WARNING, stale_reason_text(stale_for, stale_after_seconds))
    elif isinstance(twin, RackTwin) and twin.unreachable:
        stale_reason = ENDPOINT_UNREACHABLE
        for s in SUBSYSTEMS:
            j.add(s, HealthState.WARNING, f"telemetry stale ({ENDPOINT_UNREACHABLE}): "
                                          f"{', '.join(twin.unreachable)} did not answer the last poll")
    if isinstance(twin, RackTwin) and twin.cooling_unit is not None and twin.cooling_unit.health != "ok":
        cdu = twin.cooling_unit
        j.add("cooling", HealthState(cdu.health), cooling_unit_reason(cdu))
    for e in twin.equipment if isinstance(twin, RackTwin) else ():  # a chassis: compute; a PDU: power
        why = f": {'; '.join(e.reasons)}" if e.reasons else ""
        j.add("compute" if e.kind == "bmc" else "power", HealthState(e.health),
              f"{'BMC' if e.kind == 'bmc' else 'PDU'} {e.endpoint} reports {e.health}{why}")
    return RackHealth(j.result("power"), j.result("cooling"), j.result("compute"), j.result("network"),
                      stale=stale_reason is not None, last_reading_at=last, readings=len(window),
                      stale_reason=stale_reason,
                      cooling_unit=twin.cooling_unit if isinstance(twin, RackTwin) else None)


def stale_reason_text(stale_for: float, stale_after_seconds: float) -> str:
    """Each subsystem's reason when the rack stopped reporting (one wording for every judge)."""
    return f"telemetry stale: no reading for {stale_for:.0f} s (stale after {stale_after_seconds:g} s)"


def cooling_unit_reason(cdu: CoolingUnitStatus) -> str:
    """The rack's cooling reason when its CDU is not ok: names the CDU, so one CDU alert explains it."""
    why = f": {'; '.join(cdu.reasons)}" if cdu.reasons else ""
    return f"{COOLING_UNIT_PREFIX} {cdu.cooling_unit_id} is {cdu.health}{why}"

