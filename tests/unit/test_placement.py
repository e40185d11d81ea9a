"""What-if placement fills rows within their own and their hall's power, cooling and positions."""

from __future__ import annotations

import pytest

from twin.domain.fleet import Capacity, design_draw_watts
from twin.domain.intent import IntentCatalog
from twin.domain.placement import plan_placement

INTENT = IntentCatalog.default().latest("gen-a-130kw")
assert INTENT is not None
DRAW = design_draw_watts(INTENT)


def row(row_id: str, positions: int, power_racks: float, racks: int = 0, hall: str = "h1") -> Capacity:
    return Capacity("row", "f1", hall, row_id, power_racks * DRAW, power_racks * DRAW, racks * DRAW, racks * DRAW,
                    positions, racks)


def hall(power_racks: float, hall_id: str = "h1") -> Capacity:
    return Capacity("hall", "f1", hall_id, None, power_racks * DRAW, power_racks * DRAW, 0.0, 0.0, 100, 0)


def test_racks_go_to_rows_in_order_until_each_is_full() -> None:
    plan = plan_placement([row("r2", 10, 10), row("r1", 4, 10, racks=1)], INTENT, 12)
    assert [(r.row_id, r.racks) for r in plan.rows] == [("r1", 3), ("r2", 9)]
    assert plan.placed == 12 and plan.unplaced == 0
    assert plan.rows[0].free_positions_after == 0
    assert plan.rows[1].available_power_watts_after == pytest.approx(1 * DRAW)


def test_a_hall_smaller_than_its_rows_limits_the_placement() -> None:
    plan = plan_placement([hall(5), row("r1", 10, 10), row("r2", 10, 10)], INTENT, 20)
    assert plan.placed == 5 and plan.unplaced == 15


def test_power_limits_before_positions_and_nothing_is_placed_in_an_over_committed_row() -> None:
    plan = plan_placement([row("r1", 10, 2.5), row("r2", 10, 1, racks=2)], INTENT, 5)
    assert [(r.row_id, r.racks) for r in plan.rows] == [("r1", 2)]
    assert plan.unplaced == 3


def test_a_negative_count_is_refused() -> None:
    with pytest.raises(ValueError):
        plan_placement([], INTENT, -1)
