"""What-if placement: where `count` more racks of a generation would fit.

Why its own module: it is pure arithmetic over `twin.domain.fleet.Capacity` (each row's and
hall's limits and allocation) and a generation's design draw, and the API, the CLI and tests
all ask it. A rack fits in a row when the row has a free position and both the row and its
hall have the design draw left in power and in cooling (a hall may be smaller than the sum of
its rows). Rows are filled in a stable order (facility, hall, row), each as far as it goes,
so the same question gives the same answer.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from schemas import GenerationIntent
from twin.domain.fleet import Capacity, design_draw_watts

__all__ = ["PlacedRow", "PlacementPlan", "plan_placement"]


@dataclass(frozen=True, slots=True)
class PlacedRow:
    """Racks put in one row by the what-if, and what the row has left after."""

    facility_id: str
    hall_id: str
    row_id: str
    racks: int
    available_power_watts_after: float
    available_cooling_watts_after: float
    free_positions_after: int


@dataclass(frozen=True, slots=True)
class PlacementPlan:
    generation: str
    requested: int
    design_draw_watts: float
    rows: tuple[PlacedRow, ...]

    @property
    def placed(self) -> int:
        return sum(r.racks for r in self.rows)

    @property
    def unplaced(self) -> int:
        return self.requested - self.placed


def plan_placement(places: Iterable[Capacity], intent: GenerationIntent, count: int) -> PlacementPlan:
    """Place up to `count` racks of `intent`'s generation in the rows of `places` (rows and their halls)."""
    if count < 0:
        raise ValueError(f"count must be 0 or more, not {count}")
    draw = design_draw_watts(intent)
    places = list(places)
    halls = {(c.facility_id, c.hall_id): [c.available_power_watts, c.available_cooling_watts]
             for c in places if c.scope == "hall"}
    rows = sorted((c for c in places if c.scope == "row"), key=lambda c: (c.facility_id, c.hall_id or "", c.row_id or ""))
    left = count
    out: list[PlacedRow] = []
    for row in rows:
        if left == 0:
            break
        fit = row.headroom_racks(intent)
        hall = halls.get((row.facility_id, row.hall_id))
        if hall is not None:
            fit = min(fit, int(max(hall[0], 0.0) // draw), int(max(hall[1], 0.0) // draw))
        n = min(max(fit, 0), left)
        if n == 0:
            continue
        left -= n
        if hall is not None:
            hall[0] -= n * draw
            hall[1] -= n * draw
        assert row.hall_id is not None and row.row_id is not None
        out.append(PlacedRow(row.facility_id, row.hall_id, row.row_id, n, row.available_power_watts - n * draw,
                             row.available_cooling_watts - n * draw, row.free_positions - n))
    return PlacementPlan(intent.generation, count, draw, tuple(out))
