"""The calm shortcut: a rack whose window is all calm is judged without judging, and gets the same answer.

Two properties: in the domain, a window of calm readings gets from `calm_judgement` the health the
full `assess(...).as_dict()` gives and the deviations `evaluate` finds, fresh or stale (where a
condition of the poll is to be judged, the shortcut declines); in the worker, `_fold` with the shortcut projects exactly the full
judgement of every rack and opens exactly its deviations, over random batches.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any
from unittest import mock

from given import INTENT, NOMINAL, RACK
from hypothesis import given as for_all
from hypothesis import settings
from hypothesis import strategies as st

from schemas import CoolingUnitStatus, RackReading
from streams.batch import WorkerState
from streams.telemetry import TelemetryPipeline
from twin.domain.calm import CalmBands, calm_judgement
from twin.domain.conformance import evaluate
from twin.domain.health import assess
from twin.domain.intent import IntentCatalog
from twin.domain.lifecycle import RackStatus
from twin.domain.rack import RackTwin

STALE_AFTER = 30.0
CLOCK = datetime(2027, 3, 1, 12, tzinfo=timezone.utc)
_BUDGET_MAX = INTENT.power_budget_watts.max
assert _BUDGET_MAX is not None

# Values on and around every edge `INTENT` has (and well inside), so some windows are calm and some not.
EDGES: dict[str, list[Any]] = {
    "power_watts": [None, 0.0, 500.0, 999.9, 1000.0, 19_999.0, 20_000.0, 100_000.0, 125_399.0, 0.95 * _BUDGET_MAX,
                    125_401.0, 132_000.0, 132_001.0, 140_000.0, 140_001.0],
    "inlet_temperature_celsius": [None, 17.9, 18.0, 24.0, 32.0, 32.1],
    "coolant_supply_temperature_celsius": [None, 16.9, 17.0, 28.0, 32.0, 32.1],
    "coolant_flow_liters_per_minute": [None, 0.0, 1.19, 120.0, 150.0, 250.0, 251.0, 2000.0],
    "leak_detected": [None, False, False, True],
    "hottest_accelerator_temperature_celsius": [None, 72.0, 90.0, 90.1],
    "fan_speed_percent": [None, 45.0, 94.9, 95.0, 100.0],
    "network_links_up": [None, 0, 96],
    "network_links_down": [None, 0, 0, 1, 12],
    "outlet_temperature_celsius": [None, 36.0],
}
STATUSES = [RackStatus.INSTALLED, RackStatus.COMMISSIONED, RackStatus.ACTIVE, RackStatus.DEGRADED,
            RackStatus.MAINTENANCE, RackStatus.RMA, RackStatus.IN_TRANSIT]


def quantities(calm_bias: bool) -> st.SearchStrategy[dict[str, Any]]:
    """A reading's quantities: nominal with some replaced by edge values (often none, so windows can be calm)."""
    edges = st.fixed_dictionaries({}, optional={f: st.sampled_from(v) for f, v in EDGES.items()})
    return st.one_of(st.just({}), edges) if calm_bias else edges


def window_of(offsets: list[int], changes: list[dict[str, Any]], start: datetime, rack: str = RACK
              ) -> list[RackReading]:
    return [RackReading(rack_id=rack, occurred_at=start + timedelta(seconds=s), **{**NOMINAL, **c})
            for s, c in zip(offsets, changes)]


conditions = st.fixed_dictionaries({
    "unreachable": st.sampled_from([(), (), ("pdu-1",)]),
    "cooling_unit": st.sampled_from([None, None, "ok", "warning", "critical"]),
})


@for_all(offsets=st.lists(st.integers(0, 120), min_size=1, max_size=9, unique=True),
         changes=st.lists(quantities(calm_bias=True), min_size=9, max_size=9),
         status=st.sampled_from(STATUSES), age=st.sampled_from([0.0, 5.0, 29.9, 30.0, 30.1, 300.0]),
         poll=conditions)
@settings(max_examples=400, deadline=None)
def test_a_calm_window_is_judged_as_the_full_judgement_would(offsets: list[int], changes: list[dict[str, Any]],
                                                              status: RackStatus, age: float,
                                                              poll: dict[str, Any]) -> None:
    twin = RackTwin(RACK, generation=INTENT.generation, status=status)
    start = CLOCK - timedelta(seconds=max(offsets) + age)
    for r in window_of(sorted(offsets), changes, start):
        twin.observe(r)
    twin.unreachable = poll["unreachable"]
    if poll["cooling_unit"]:
        twin.cooling_unit = CoolingUnitStatus(cooling_unit_id="cdu-1", health=poll["cooling_unit"])
    bands = CalmBands.of(INTENT, status)
    if not all(bands.calm(r) for r in twin.readings):
        return
    shortcut = calm_judgement(twin, INTENT, CLOCK, STALE_AFTER)
    if shortcut is None:  # declined: a condition of the poll to judge
        assert twin.unreachable or (twin.cooling_unit and twin.cooling_unit.health != "ok")
        return
    full = evaluate(twin, INTENT, CLOCK, stale_after_seconds=STALE_AFTER, only="telemetry")
    assert shortcut == (assess(twin, INTENT, CLOCK, STALE_AFTER).as_dict(), {d.check: d for d in full})


def test_nominal_readings_are_calm_and_an_edge_is_not() -> None:
    """The property above is not vacuous: the usual reading is calm, and each kind of finding is not."""
    bands = CalmBands.of(INTENT, RackStatus.ACTIVE)
    LOW = {"power_watts": 19_000.0, "coolant_flow_liters_per_minute": 28.5}  # under the budget's minimum
    nominal = RackReading(rack_id=RACK, occurred_at=CLOCK, **NOMINAL)
    assert bands.calm(nominal)
    for change in ({"power_watts": 0.95 * _BUDGET_MAX}, LOW, {"leak_detected": True},
                   {"network_links_down": 1}, {"fan_speed_percent": 95.0}, {"inlet_temperature_celsius": 32.5},
                   {"coolant_flow_liters_per_minute": 100.0}, {"hottest_accelerator_temperature_celsius": 91.0},
                   {"coolant_supply_temperature_celsius": None}):
        assert not bands.calm(nominal.model_copy(update=change)), change
    assert CalmBands.of(INTENT, RackStatus.INSTALLED).calm(nominal.model_copy(update=LOW))
    twin = RackTwin(RACK, generation=INTENT.generation, status=RackStatus.ACTIVE)
    twin.observe(nominal)
    health, deviations = calm_judgement(twin, INTENT, CLOCK, STALE_AFTER)  # type: ignore[misc]
    assert health == assess(twin, INTENT, CLOCK, STALE_AFTER).as_dict() and deviations == {}
    health, deviations = calm_judgement(twin, INTENT, CLOCK + timedelta(minutes=5), STALE_AFTER)  # type: ignore[misc]
    assert health["stale"] and set(deviations) == {"telemetry-stale"}


RACKS = ("dfw1-h1-r01-01", "dfw1-h1-r01-02", "dfw1-h1-r01-03")


def pipeline(statuses: dict[str, RackStatus]) -> TelemetryPipeline:
    """A telemetry pipeline holding twins, without a store: `_fold` is the domain work of a batch (no I/O)."""
    state = WorkerState("test-calm", stale_after_seconds=STALE_AFTER)
    state.catalog = IntentCatalog([INTENT])
    p = TelemetryPipeline(None, state)  # type: ignore[arg-type]
    p.twins = {r: RackTwin(r, generation=INTENT.generation, status=s) for r, s in statuses.items()}
    return p


def fold(p: TelemetryPipeline, batch: list[RackReading]) -> list[Any]:
    """One batch through `_fold`, with its deviations kept as `handle` keeps them after commit."""
    known = {r.rack_id: INTENT.generation for r in batch}
    projected, updates, _ = p._fold(batch, known, {})
    for rack_id, after in updates.items():
        p.open[rack_id] = dict(after)
    return projected


batches = st.lists(st.lists(st.tuples(st.sampled_from(RACKS), st.integers(0, 40), quantities(calm_bias=True)),
                            max_size=12), min_size=1, max_size=8)


@for_all(batches=batches, statuses=st.lists(st.sampled_from(STATUSES), min_size=3, max_size=3),
         changes=st.lists(st.tuples(st.integers(0, 7), st.sampled_from(RACKS), st.sampled_from(STATUSES)),
                          max_size=2))
@settings(max_examples=150, deadline=None)
def test_the_worker_projects_the_full_judgement_with_the_shortcut(
        batches: list[list[tuple[str, int, dict[str, Any]]]], statuses: list[RackStatus],
        changes: list[tuple[int, str, RackStatus]]) -> None:
    p = pipeline(dict(zip(RACKS, statuses)))
    with mock.patch("streams.telemetry.now", lambda: CLOCK):
        for i, batch in enumerate(batches):
            for at, rack_id, status in changes:  # the lifecycle side moves a rack between batches
                if at == i:
                    p.twins[rack_id].status = status
            readings = [RackReading(rack_id=r, occurred_at=CLOCK - timedelta(seconds=40 - s), **{**NOMINAL, **c})
                        for r, s, c in batch]
            for latest, health, revision in fold(p, readings):  # the racks this batch judged
                twin = p.twins[latest.rack_id]
                assert health == assess(twin, INTENT, CLOCK, STALE_AFTER).as_dict()
                assert latest == twin.latest and revision == INTENT.revision
                full = evaluate(twin, INTENT, CLOCK, stale_after_seconds=STALE_AFTER, only="telemetry")
                assert p.open.get(twin.rack_id, {}) == {d.check: d for d in full}


def test_a_calm_rack_is_not_judged_again() -> None:
    """Six calm readings in a row spare the next batch's judgement; one reading off brings it back."""
    p = pipeline({RACK: RackStatus.ACTIVE})
    start = CLOCK - timedelta(seconds=20)
    calls = []
    real = assess

    def counting(*args: Any, **kwargs: Any) -> Any:
        calls.append(args[0].rack_id)
        return real(*args, **kwargs)

    with mock.patch("streams.telemetry.now", lambda: CLOCK), mock.patch("streams.telemetry.assess", counting):
        for i in range(6):
            fold(p, window_of([i], [{}], start))
        assert len(calls) == 0  # each reading calm, and the window holds only calm ones from the first
        fold(p, window_of([6], [{"inlet_temperature_celsius": 40.0}], start))
        assert len(calls) == 1 and p.open[RACK]
        for i in range(7, 13):
            fold(p, window_of([i], [{}], start))
        assert len(calls) == 6  # judged in full while the hot reading was in the window (7 to 11)
        assert not p.open[RACK]  # the deviation resolved with the first calm newest reading


def test_a_reading_stamped_in_another_zone_is_projected_as_the_window_gives_it_back() -> None:
    p = pipeline({RACK: RackStatus.ACTIVE})
    east = timezone(timedelta(hours=2))
    at = (CLOCK - timedelta(seconds=5)).astimezone(east)
    with mock.patch("streams.telemetry.now", lambda: CLOCK):
        [(latest, _, _)] = fold(p, [RackReading(rack_id=RACK, occurred_at=at, **NOMINAL)])
    assert latest.occurred_at == at and latest.occurred_at.utcoffset() == timedelta(0)
    assert latest == p.twins[RACK].latest
