"""The fleet's places and plan: capacity per facility, hall and row, and rollout progress.

Why here: capacity planning asks two questions of the twins, and both are pure arithmetic
over what the fleet registry says and where racks stand.

- Where is power left? Like NetBox's power chain, a rack's `allocated_draw` is its design
  budget (its generation's power budget max; the cooling capacity when the budget has no max),
  not what it draws this second. Racks standing in a position (installed to maintenance)
  allocate from their row, hall and facility; `available_power` is capacity minus allocation.
  The same design heat is allocated from the cooling capacity (all power ends up as heat). A
  facility's capacity is the sum of its halls'; a hall may be smaller than the sum of its rows.
- Is the rollout on plan? The plan says how many racks of each generation each facility should
  have in service at the end of each quarter, 2026Q3 through 2029Q4. A target is a level, not
  an increment; a quarter the plan does not name carries the last earlier target forward.
  "In service" means active, degraded or in maintenance (`IN_SERVICE_STAGES`). For a past
  quarter, pass twins replayed until the quarter's end (`quarter_bounds`).

Registrations and plans arrive as events and may repeat or reorder: a facility registration
replaces an older one only when it is newer, a plan only when its revision is higher.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Literal, Protocol

from schemas import Facility, GenerationIntent, RolloutTarget
from twin.domain.intent import IntentCatalog
from twin.domain.lifecycle import IN_SERVICE_STAGES, POWERED_STAGES, RackStatus

__all__ = [
    "PLAN_QUARTERS", "Capacity", "Fleet", "Placed", "Progress", "RolloutPlan", "design_draw_watts", "progress",
    "quarter_bounds", "quarter_of",
]

PLAN_QUARTERS: tuple[str, ...] = tuple(f"{y}Q{q}" for y in range(2026, 2030) for q in range(1, 5))[2:]
"""The quarters the rollout plan covers: 2026Q3 (2026H2) through 2029Q4."""


def quarter_of(ts: datetime) -> str:
    """The calendar quarter of an instant, in UTC: `2027Q1`."""
    ts = ts.astimezone(timezone.utc)
    return f"{ts.year}Q{(ts.month - 1) // 3 + 1}"


def quarter_bounds(quarter: str) -> tuple[datetime, datetime]:
    """[start, end) of a quarter in UTC; `replay(until=end - 1 µs)` gives the fleet at its end."""
    if len(quarter) != 6 or quarter[4] != "Q" or quarter[5] not in "1234" or not quarter[:4].isdigit():
        raise ValueError(f"a quarter looks like 2027Q1, not {quarter!r}")
    year, q = int(quarter[:4]), int(quarter[5])
    start = datetime(year, 3 * q - 2, 1, tzinfo=timezone.utc)
    end = datetime(year + (q == 4), 1 if q == 4 else 3 * q + 1, 1, tzinfo=timezone.utc)
    return start, end


class Placed(Protocol):
    """What fleet arithmetic reads of a rack (a `RackTwin` is one)."""

    rack_id: str
    generation: str | None
    status: RackStatus
    facility_id: str | None
    hall_id: str | None
    row_id: str | None


def design_draw_watts(intent: GenerationIntent) -> float:
    """What a rack of this generation allocates: its power budget max (else its cooling capacity)."""
    return intent.power_budget_watts.max if intent.power_budget_watts.max is not None else intent.cooling_capacity_watts


@dataclass(frozen=True, slots=True)
class Capacity:
    """One place (facility, hall or row): its limits, what racks standing there allocate, what is left."""

    scope: Literal["facility", "hall", "row"]
    facility_id: str
    hall_id: str | None
    row_id: str | None
    power_capacity_watts: float
    cooling_capacity_watts: float
    allocated_draw_watts: float
    allocated_cooling_watts: float
    positions: int
    racks: int

    @property
    def available_power_watts(self) -> float:
        return self.power_capacity_watts - self.allocated_draw_watts

    @property
    def available_cooling_watts(self) -> float:
        return self.cooling_capacity_watts - self.allocated_cooling_watts

    @property
    def free_positions(self) -> int:
        return self.positions - self.racks

    @property
    def power_utilization(self) -> float:
        return self.allocated_draw_watts / self.power_capacity_watts

    @property
    def over_committed(self) -> bool:
        """More allocated than the place can feed or cool."""
        return self.available_power_watts < 0 or self.available_cooling_watts < 0

    def headroom_racks(self, intent: GenerationIntent) -> int:
        """How many more racks of `intent`'s generation fit: free positions, power and cooling allowing."""
        draw = design_draw_watts(intent)
        by_power = int(max(self.available_power_watts, 0.0) // draw)
        by_cooling = int(max(self.available_cooling_watts, 0.0) // draw)
        return max(min(self.free_positions, by_power, by_cooling), 0)


class Fleet:
    """The registered facilities, their halls and rows (latest registration of each wins)."""

    def __init__(self, facilities: Iterable[Facility] = ()) -> None:
        self._facilities: dict[str, tuple[Facility, datetime | None]] = {}
        for f in facilities:
            self.register(f)

    def register(self, facility: Facility, registered_at: datetime | None = None) -> bool:
        """Add or replace a facility; an older registration than the one held is ignored. True when taken."""
        held = self._facilities.get(facility.facility_id)
        if held is not None and held[1] is not None and registered_at is not None and registered_at < held[1]:
            return False
        if held is not None and held[0] == facility and held[1] == registered_at:
            return False
        self._facilities[facility.facility_id] = (facility, registered_at)
        return True

    def facility(self, facility_id: str) -> Facility | None:
        held = self._facilities.get(facility_id)
        return held[0] if held else None

    def facilities(self, operator: str | None = None) -> list[Facility]:
        """Registered facilities, by id; with `operator`, only those it runs (a partner's scope)."""
        out = [f for f, _ in self._facilities.values() if operator is None or f.operator == operator]
        return sorted(out, key=lambda f: f.facility_id)

    def __contains__(self, facility_id: object) -> bool:
        return facility_id in self._facilities

    def is_registered(self, facility_id: str | None, hall_id: str | None = None, row_id: str | None = None) -> bool:
        """Whether this place exists in the registry (down to the row when one is named)."""
        f = self.facility(facility_id) if facility_id else None
        if f is None:
            return False
        if hall_id is None:
            return True
        hall = next((h for h in f.halls if h.hall_id == hall_id), None)
        if hall is None:
            return False
        return row_id is None or any(r.row_id == row_id for r in hall.rows)

    def capacity(self, racks: Iterable[Placed],
                 intents: IntentCatalog | Mapping[str, GenerationIntent]) -> list[Capacity]:
        """Every facility, hall and row with its allocation by the racks standing there.

        Racks standing in a place the registry does not know are left out; `unregistered`
        lists them.
        """
        draw: dict[tuple[str, str, str], float] = defaultdict(float)
        count: Counter[tuple[str, str, str]] = Counter()
        budgets: dict[str, float | None] = {}
        for rack in racks:
            place = _standing(rack)
            if place is None or rack.generation is None:
                continue
            if rack.generation not in budgets:
                intent = _latest(intents, rack.generation)
                budgets[rack.generation] = None if intent is None else design_draw_watts(intent)
            budget = budgets[rack.generation]
            if budget is None:
                continue
            draw[place] += budget
            count[place] += 1
        out: list[Capacity] = []
        for f in self.facilities():
            f_rows: list[Capacity] = []
            f_halls: list[Capacity] = []
            for hall in f.halls:
                rows = [Capacity("row", f.facility_id, hall.hall_id, r.row_id, r.power_capacity_watts,
                                 r.cooling_capacity_watts, draw[(f.facility_id, hall.hall_id, r.row_id)],
                                 draw[(f.facility_id, hall.hall_id, r.row_id)], r.positions,
                                 count[(f.facility_id, hall.hall_id, r.row_id)]) for r in hall.rows]
                allocated = sum(r.allocated_draw_watts for r in rows)
                f_halls.append(Capacity("hall", f.facility_id, hall.hall_id, None, hall.power_capacity_watts,
                                        hall.cooling_capacity_watts, allocated, allocated,
                                        sum(r.positions for r in rows), sum(r.racks for r in rows)))
                f_rows.extend(rows)
            allocated = sum(h.allocated_draw_watts for h in f_halls)
            out.append(Capacity("facility", f.facility_id, None, None, sum(h.power_capacity_watts for h in f_halls),
                                sum(h.cooling_capacity_watts for h in f_halls), allocated, allocated,
                                sum(h.positions for h in f_halls), sum(h.racks for h in f_halls)))
            out.extend(f_halls)
            out.extend(f_rows)
        return out

    def available_power(self, racks: Iterable[Placed], intents: IntentCatalog | Mapping[str, GenerationIntent],
                        facility_id: str, hall_id: str | None = None, row_id: str | None = None) -> float:
        """Capacity minus allocated draw at one place (NetBox's `available_power`)."""
        for c in self.capacity(racks, intents):
            if (c.facility_id, c.hall_id, c.row_id) == (facility_id, hall_id, row_id):
                return c.available_power_watts
        raise KeyError(f"no registered place {facility_id}/{hall_id}/{row_id}")

    def unregistered(self, racks: Iterable[Placed]) -> list[str]:
        """Racks standing in a place the registry does not know (data to fix)."""
        return sorted(r.rack_id for r in racks if (p := _standing(r)) is not None and not self.is_registered(*p))


def _standing(rack: Placed) -> tuple[str, str, str] | None:
    if rack.status not in POWERED_STAGES or not (rack.facility_id and rack.hall_id and rack.row_id):
        return None
    return rack.facility_id, rack.hall_id, rack.row_id


def _latest(intents: IntentCatalog | Mapping[str, GenerationIntent], generation: str) -> GenerationIntent | None:
    return intents.latest(generation) if isinstance(intents, IntentCatalog) else intents.get(generation)


@dataclass(frozen=True, slots=True)
class Progress:
    """Racks of one generation in service at one facility, against the plan's target for a quarter."""

    facility_id: str
    generation: str
    quarter: str
    target: int
    in_service: int

    @property
    def shortfall(self) -> int:
        """Racks still missing to meet the target (0 when met)."""
        return max(self.target - self.in_service, 0)

    @property
    def on_plan(self) -> bool:
        return self.in_service >= self.target

    @property
    def ratio(self) -> float | None:
        """In service / target; None for a zero target."""
        return self.in_service / self.target if self.target else None


class RolloutPlan:
    """The latest revision of the rollout plan: facility, generation, quarter -> racks in service."""

    def __init__(self, revision: int = 0, targets: Iterable[RolloutTarget] = ()) -> None:
        self.revision = revision
        self._targets: dict[tuple[str, str], list[tuple[str, int]]] = {}
        self._set(targets)

    def publish(self, revision: int, targets: Iterable[RolloutTarget]) -> bool:
        """Take a plan revision; an older or equal revision is ignored. True when taken."""
        if revision <= self.revision:
            return False
        self.revision = revision
        self._set(targets)
        return True

    def _set(self, targets: Iterable[RolloutTarget]) -> None:
        by_pair: dict[tuple[str, str], dict[str, int]] = {}
        for t in targets:
            by_pair.setdefault((t.facility_id, t.generation), {})[t.quarter] = t.racks_in_service
        self._targets = {pair: sorted(q.items()) for pair, q in by_pair.items()}

    def pairs(self) -> list[tuple[str, str]]:
        """(facility, generation) pairs the plan names."""
        return sorted(self._targets)

    def target(self, facility_id: str, generation: str, quarter: str) -> int:
        """Racks to have in service at the end of `quarter`; the last earlier target when not named; else 0."""
        level = 0
        for q, n in self._targets.get((facility_id, generation), ()):
            if q > quarter:
                break
            level = n
        return level


def progress(plan: RolloutPlan, racks: Iterable[Placed], quarter: str) -> list[Progress]:
    """Progress per (facility, generation) against the plan for `quarter`, by facility and generation.

    Pairs with racks in service but no plan appear with a target of 0.
    """
    serving: Counter[tuple[str, str]] = Counter(
        (r.facility_id, r.generation) for r in racks
        if r.status in IN_SERVICE_STAGES and r.facility_id is not None and r.generation is not None
    )
    pairs = sorted(set(plan.pairs()) | set(serving))
    return [Progress(f, g, quarter, plan.target(f, g, quarter), serving[(f, g)]) for f, g in pairs]
