"""Facilities, halls and rows with their capacity; rollout plan progress; quarters."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from given import CATALOG, INTENT, T0, decommissioned, entered_service, history, installed, intent, rma_opened, shipped

from schemas import Facility, Hall, RolloutTarget, Row
from twin.domain.fleet import (
    PLAN_QUARTERS,
    Capacity,
    Fleet,
    RolloutPlan,
    design_draw_watts,
    progress,
    quarter_bounds,
    quarter_of,
)
from twin.domain.intent import IntentCatalog
from twin.domain.rack import RackTwin

BUDGET = INTENT.power_budget_watts.max
assert BUDGET is not None


def facility(facility_id: str = "dfw1", operator: str = "Fleet Twin Inc.", ownership: str = "own",
             hall_power: float = 5 * BUDGET) -> Facility:
    rows = (Row(row_id="r01", positions=4, power_capacity_watts=4 * BUDGET, cooling_capacity_watts=4 * 140_000.0),
            Row(row_id="r02", positions=4, power_capacity_watts=4 * BUDGET, cooling_capacity_watts=4 * 140_000.0))
    return Facility(facility_id=facility_id, name=facility_id.upper(), ownership=ownership,  # type: ignore[arg-type]
                    operator=operator, region="us-central",
                    halls=(Hall(hall_id="h1", power_capacity_watts=hall_power, cooling_capacity_watts=5 * 140_000.0,
                                rows=rows),))


def rack(rack_id: str, *, row: str = "r01", facility_id: str = "dfw1", generation: str = "gen-a-130kw",
         until=entered_service) -> RackTwin:
    """A rack that took the usual road to `until`'s stage, received and installed at `facility_id`, `row`."""
    place = {"rack.received": {"facility_id": facility_id},
             "rack.installed": {"facility_id": facility_id, "row_id": row}}
    events = [e.model_copy(update=place.get(e.type, {})) for e in history(until(rack_id))]
    twin = RackTwin.replay(rack_id, events, CATALOG)
    twin.generation = generation
    return twin


def by_place(capacity: list[Capacity]) -> dict[tuple[str, str | None, str | None], Capacity]:
    return {(c.facility_id, c.hall_id, c.row_id): c for c in capacity}


def test_racks_standing_in_a_row_allocate_their_design_budget() -> None:
    fleet = Fleet([facility()])
    racks = [rack("a"), rack("b"), rack("c", row="r02")]
    places = by_place(fleet.capacity(racks, CATALOG))
    row = places[("dfw1", "h1", "r01")]
    assert (row.racks, row.allocated_draw_watts, row.available_power_watts) == (2, 2 * BUDGET, 2 * BUDGET)
    assert row.free_positions == 2 and row.power_utilization == pytest.approx(0.5)
    hall = places[("dfw1", "h1", None)]
    assert (hall.racks, hall.allocated_draw_watts, hall.available_power_watts) == (3, 3 * BUDGET, 2 * BUDGET)
    assert places[("dfw1", None, None)].positions == 8
    assert fleet.available_power(racks, CATALOG, "dfw1", "h1", "r02") == 3 * BUDGET


def test_only_racks_standing_in_their_position_allocate() -> None:
    fleet = Fleet([facility()])
    racks = [rack("serving"), rack("installed", until=installed), rack("in-rma", until=rma_opened),
             rack("retired", until=decommissioned), rack("on-the-road", until=shipped)]
    row = by_place(fleet.capacity(racks, CATALOG))[("dfw1", "h1", "r01")]
    assert row.racks == 2 and row.allocated_draw_watts == 2 * BUDGET


def test_a_hall_smaller_than_its_rows_is_over_committed_before_its_rows_are() -> None:
    fleet = Fleet([facility(hall_power=2.5 * BUDGET)])
    racks = [rack("a"), rack("b"), rack("c", row="r02")]
    places = by_place(fleet.capacity(racks, CATALOG))
    assert places[("dfw1", "h1", None)].over_committed and not places[("dfw1", "h1", "r01")].over_committed
    assert places[("dfw1", "h1", None)].available_power_watts == -0.5 * BUDGET


def test_headroom_is_limited_by_positions_power_and_cooling() -> None:
    fleet = Fleet([facility()])
    row = by_place(fleet.capacity([rack("a")], CATALOG))[("dfw1", "h1", "r01")]
    assert row.headroom_racks(INTENT) == 3
    big = intent("gen-c-600kw", power_budget_watts=INTENT.power_budget_watts.model_copy(update={"max": 2 * BUDGET}))
    assert row.headroom_racks(big) == 1
    assert design_draw_watts(big) == 2 * BUDGET


def test_racks_of_a_generation_without_intent_allocate_nothing_and_unknown_places_are_listed() -> None:
    fleet = Fleet([facility()])
    stray = rack("stray", facility_id="ord9")
    places = by_place(fleet.capacity([rack("x", generation="gen-z"), stray], IntentCatalog([INTENT])))
    assert places[("dfw1", "h1", "r01")].racks == 0
    assert fleet.unregistered([stray, rack("ok")]) == ["stray"]


def test_a_partner_sees_only_the_facilities_it_operates() -> None:
    fleet = Fleet([facility("dfw1"), facility("hil1", "Cascadia Colocation", "partner"),
                   facility("pdx2", "Cascadia Colocation", "partner"), facility("ord2", "Lakeshore", "partner")])
    assert [f.facility_id for f in fleet.facilities("Cascadia Colocation")] == ["hil1", "pdx2"]
    assert len(fleet.facilities()) == 4


def test_an_older_registration_does_not_replace_a_newer_one() -> None:
    fleet = Fleet()
    assert fleet.register(facility(hall_power=3 * BUDGET), T0 + timedelta(days=2))
    assert not fleet.register(facility(hall_power=9 * BUDGET), T0 + timedelta(days=1))
    assert fleet.facility("dfw1").halls[0].power_capacity_watts == 3 * BUDGET  # type: ignore[union-attr]
    assert fleet.register(facility(hall_power=4 * BUDGET), T0 + timedelta(days=3))
    assert fleet.facility("dfw1").halls[0].power_capacity_watts == 4 * BUDGET  # type: ignore[union-attr]


# --- quarters and the rollout plan ----------------------------------------------------------------

@pytest.mark.parametrize(("ts", "quarter"), [
    (datetime(2027, 1, 1, tzinfo=timezone.utc), "2027Q1"),
    (datetime(2027, 3, 31, 23, 59, tzinfo=timezone.utc), "2027Q1"),
    (datetime(2027, 4, 1, tzinfo=timezone.utc), "2027Q2"),
    (datetime(2026, 12, 31, 23, 0, tzinfo=timezone(timedelta(hours=-5))), "2027Q1"),  # that is 04:00 UTC
])
def test_an_instant_falls_in_its_utc_quarter(ts: datetime, quarter: str) -> None:
    assert quarter_of(ts) == quarter


def test_quarter_bounds_are_the_quarter_in_utc() -> None:
    start, end = quarter_bounds("2028Q4")
    assert (start, end) == (datetime(2028, 10, 1, tzinfo=timezone.utc), datetime(2029, 1, 1, tzinfo=timezone.utc))
    assert quarter_of(start) == "2028Q4" and quarter_of(end) == "2029Q1"
    with pytest.raises(ValueError):
        quarter_bounds("2028-Q4")


def test_the_plan_runs_from_the_second_half_of_2026_through_2029() -> None:
    assert PLAN_QUARTERS[0] == "2026Q3" and PLAN_QUARTERS[-1] == "2029Q4" and len(PLAN_QUARTERS) == 14


def plan(revision: int = 1, **targets: int) -> RolloutPlan:
    """`dfw1_2027Q1=3` is three gen-a racks in service at dfw1 at the end of 2027Q1."""
    return RolloutPlan(revision, [RolloutTarget(facility_id=k.split("_")[0], generation="gen-a-130kw",
                                                quarter=k.split("_")[1], racks_in_service=n)
                                  for k, n in targets.items()])


def test_progress_compares_racks_in_service_with_the_target() -> None:
    racks = [rack("a"), rack("b"), rack("c", until=installed), rack("d", until=rma_opened)]
    (row,) = progress(plan(dfw1_2027Q1=3), racks, "2027Q1")
    assert (row.facility_id, row.generation, row.target, row.in_service) == ("dfw1", "gen-a-130kw", 3, 2)
    assert row.shortfall == 1 and not row.on_plan and row.ratio == pytest.approx(2 / 3)


def test_a_quarter_the_plan_does_not_name_carries_the_last_target_forward() -> None:
    p = plan(dfw1_2026Q4=2, dfw1_2027Q2=6)
    assert [p.target("dfw1", "gen-a-130kw", q) for q in ("2026Q3", "2026Q4", "2027Q1", "2027Q2", "2029Q4")] == [
        0, 2, 2, 6, 6]


def test_racks_in_service_without_a_plan_show_with_a_zero_target() -> None:
    rows = progress(plan(dfw1_2027Q1=1), [rack("a", facility_id="phx1")], "2027Q1")
    assert [(r.facility_id, r.target, r.in_service, r.on_plan) for r in rows] == [
        ("dfw1", 1, 0, False), ("phx1", 0, 1, True)]


def test_an_older_plan_revision_is_ignored() -> None:
    p = plan(2, dfw1_2027Q1=5)
    assert not p.publish(1, [RolloutTarget(facility_id="dfw1", generation="gen-a-130kw", quarter="2027Q1",
                                           racks_in_service=1)])
    assert p.target("dfw1", "gen-a-130kw", "2027Q1") == 5
    assert p.publish(3, [])
    assert p.target("dfw1", "gen-a-130kw", "2027Q1") == 0


def test_progress_at_the_end_of_a_past_quarter_uses_the_racks_as_they_were() -> None:
    events = history(entered_service("late"), start=datetime(2027, 3, 31, 12, tzinfo=timezone.utc))
    _, end = quarter_bounds("2027Q1")
    then = RackTwin.replay("late", events, CATALOG, until=end - timedelta(microseconds=1))
    now = RackTwin.replay("late", events, CATALOG)
    assert progress(plan(dfw1_2027Q1=1), [then], "2027Q1")[0].in_service == 0
    assert progress(plan(dfw1_2027Q1=1), [now], "2027Q1")[0].in_service == 1
