"""Lifecycle rules of issue 3: legal transitions, the service gate, stalls, lead times, rejections."""

from __future__ import annotations

from datetime import timedelta

import pytest
from given import (
    CATALOG,
    INTENT,
    RACK,
    T0,
    Clock,
    Step,
    commissioned,
    decommissioned,
    degraded,
    entered_service,
    firmware_updated,
    given,
    history,
    installed,
    intent,
    maintenance_started,
    manufactured,
    part,
    part_installed,
    received,
    rma_opened,
    shipped,
    tested,
)

from twin.errors import IllegalTransition, ServiceGateNotMet
from twin.domain.intent import IntentCatalog
from twin.domain.lifecycle import RackStatus, lead_times, missing_tests, next_status, stalled
from twin.domain.rack import REJECTIONS_KEPT, RackTwin

S = RackStatus

# The rules of the lead, written out independently of twin.domain.lifecycle.TRANSITIONS: event -> legal from.
LEGAL_FROM: dict[str, set[RackStatus]] = {
    "rack.manufactured": {S.PLANNED},
    "rack.shipped": {S.FACTORY_TESTED, S.RMA},
    "rack.received": {S.IN_TRANSIT},
    "rack.installed": {S.RECEIVED},
    "rack.commissioned": {S.INSTALLED},
    "rack.entered_service": {S.COMMISSIONED, S.DEGRADED, S.MAINTENANCE},
    "rack.degraded": {S.ACTIVE},
    "rack.maintenance_started": {S.ACTIVE, S.DEGRADED},
    "rack.rma_opened": {S.ACTIVE, S.DEGRADED, S.MAINTENANCE, S.INSTALLED, S.COMMISSIONED, S.RECEIVED},
    "rack.decommissioned": set(RackStatus) - {S.PLANNED, S.DECOMMISSIONED},
}
LEADS_TO = {
    "rack.manufactured": S.MANUFACTURED, "rack.shipped": S.IN_TRANSIT, "rack.received": S.RECEIVED,
    "rack.installed": S.INSTALLED, "rack.commissioned": S.COMMISSIONED, "rack.entered_service": S.ACTIVE,
    "rack.degraded": S.DEGRADED, "rack.maintenance_started": S.MAINTENANCE, "rack.rma_opened": S.RMA,
    "rack.decommissioned": S.DECOMMISSIONED,
}
STEP_OF = {
    "rack.manufactured": manufactured, "rack.shipped": shipped, "rack.received": received,
    "rack.installed": installed, "rack.commissioned": commissioned, "rack.entered_service": entered_service,
    "rack.degraded": degraded, "rack.maintenance_started": maintenance_started, "rack.rma_opened": rma_opened,
    "rack.decommissioned": decommissioned,
}
ROAD_TO: dict[RackStatus, Step | None] = {
    S.PLANNED: None, S.MANUFACTURED: manufactured(), S.FACTORY_TESTED: tested(), S.IN_TRANSIT: shipped(),
    S.RECEIVED: received(), S.INSTALLED: installed(), S.COMMISSIONED: commissioned(), S.ACTIVE: entered_service(),
    S.DEGRADED: degraded(), S.MAINTENANCE: maintenance_started(), S.RMA: rma_opened(),
    S.DECOMMISSIONED: decommissioned(),
}


def rack_in(stage: RackStatus) -> RackTwin:
    twin = given(ROAD_TO[stage]).twin
    assert twin.status is stage and not twin.rejected
    return twin


@pytest.mark.parametrize("event_type", sorted(LEGAL_FROM))
@pytest.mark.parametrize("stage", list(RackStatus))
def test_each_lifecycle_event_is_legal_exactly_from_its_stages(stage: RackStatus, event_type: str) -> None:
    event = Clock(T0 + timedelta(days=30)).event(STEP_OF[event_type]())
    if stage in LEGAL_FROM[event_type]:
        assert next_status(stage, event) is LEADS_TO[event_type]
    else:
        with pytest.raises(IllegalTransition, match=f"{stage} -> {LEADS_TO[event_type]}"):
            next_status(stage, event)


@pytest.mark.parametrize("stage", list(RackStatus))
def test_every_stage_is_reachable_by_its_usual_road(stage: RackStatus) -> None:
    assert rack_in(stage).status is stage


def test_a_planned_rack_becomes_manufactured_with_its_generation() -> None:
    twin = given().when(manufactured(generation="gen-b-200kw")).moves_to(S.MANUFACTURED)
    assert (twin.generation, twin.serial_number, twin.version) == ("gen-b-200kw", f"FTR-{RACK}", 1)


def test_a_rack_is_manufactured_only_once() -> None:
    given(manufactured()).when(manufactured()).rejects(IllegalTransition, "manufactured -> manufactured")


def test_an_installed_rack_cannot_be_shipped() -> None:
    given(installed()).when(shipped()).rejects(IllegalTransition, "installed -> in-transit")


def test_a_passed_factory_acceptance_test_makes_a_rack_factory_tested() -> None:
    given(manufactured()).when(tested(test="factory-acceptance")).moves_to(S.FACTORY_TESTED)


def test_a_failed_factory_test_is_recorded_but_the_stage_stays() -> None:
    twin = given(manufactured()).when(tested(test="factory-acceptance", passed=False)).moves_to(S.MANUFACTURED)
    assert twin.tests["factory-acceptance"].passed is False


def test_a_rack_that_failed_its_factory_test_cannot_be_shipped() -> None:
    given(tested(passed=False)).when(shipped()).rejects(IllegalTransition, "manufactured -> in-transit")


def test_site_acceptance_cannot_run_at_the_factory() -> None:
    given(manufactured()).when(tested(test="site-acceptance")).rejects(IllegalTransition, "site-acceptance")


def test_a_rack_in_transit_cannot_be_tested_or_worked_on() -> None:
    given(shipped()).when(tested(test="burn-in")).rejects(IllegalTransition, "in-transit")
    given(shipped()).when(firmware_updated("tray-01", "1.9.0")).rejects(IllegalTransition, "in-transit")


def test_a_rack_is_installed_only_where_it_was_received() -> None:
    given(received(at="dfw1")).when(installed(facility="phx1")).rejects(IllegalTransition, "received at dfw1")


def test_installing_a_rack_places_it_in_its_row() -> None:
    twin = given(received()).when(installed(hall="h2", row="r07", position=12)).moves_to(S.INSTALLED)
    assert (twin.facility_id, twin.hall_id, twin.row_id, twin.position) == ("dfw1", "h2", "r07", 12)


def test_shipping_a_rack_takes_it_off_its_site() -> None:
    twin = given(rma_opened()).when(shipped(to="fremont-repair")).moves_to(S.IN_TRANSIT)
    assert (twin.facility_id, twin.row_id, twin.destination_facility_id) == (None, None, "fremont-repair")


def test_commissioning_needs_an_installed_rack() -> None:
    given(received()).when(commissioned()).rejects(IllegalTransition, "received -> commissioned")


def test_a_commissioned_rack_with_its_tests_enters_service() -> None:
    given(commissioned()).when(entered_service()).moves_to(S.ACTIVE)


def test_rack_in_rma_cannot_enter_service() -> None:
    given(rma_opened()).when(entered_service()).rejects(IllegalTransition, "rma -> active")


def test_entering_service_without_required_tests_names_the_missing_tests() -> None:
    scenario = given(commissioned(), tests=("factory-acceptance",))
    error = scenario.when(entered_service()).rejects(ServiceGateNotMet)
    assert error.reason == "missing-tests"
    assert "burn-in, site-acceptance" in error.detail and "factory-acceptance" not in error.detail.split("tests")[1]


def test_a_generation_requiring_fewer_tests_opens_the_gate_with_fewer() -> None:
    lenient = IntentCatalog([intent(required_tests=("factory-acceptance",))])
    given(commissioned(), catalog=lenient, tests=("factory-acceptance",)).when(entered_service()).moves_to(S.ACTIVE)


def test_a_failed_latest_test_closes_the_gate_after_an_earlier_pass() -> None:
    scenario = given(commissioned()).and_(tested(test="site-acceptance", passed=False))
    scenario.when(entered_service()).rejects(ServiceGateNotMet, "site-acceptance")


def test_the_gate_applies_on_every_return_to_service() -> None:
    scenario = given(maintenance_started()).and_(tested(test="burn-in", passed=False))
    scenario.when(entered_service()).rejects(ServiceGateNotMet, "burn-in")
    given(maintenance_started()).when(entered_service()).moves_to(S.ACTIVE)
    given(degraded()).when(entered_service()).moves_to(S.ACTIVE)


def test_tests_passed_before_an_rma_do_not_count_after_it() -> None:
    scenario = given(rma_opened()).and_(shipped(), received(), installed(), commissioned())
    error = scenario.when(entered_service()).rejects(ServiceGateNotMet)
    assert "factory-acceptance, burn-in, site-acceptance" in error.detail
    assert missing_tests(scenario.twin, INTENT) == ("factory-acceptance", "burn-in", "site-acceptance")


def test_a_repaired_rack_tested_again_returns_to_service() -> None:
    scenario = given(rma_opened()).and_(tested(test="factory-acceptance"), tested(test="burn-in"), shipped(),
                                        received(), installed(), tested(test="site-acceptance"), commissioned())
    assert scenario.twin.status is S.COMMISSIONED  # a passed factory test under RMA does not move the stage
    scenario.when(entered_service()).moves_to(S.ACTIVE)


def test_the_service_gate_fails_closed_without_design_intent() -> None:
    no_intent = given(commissioned(), catalog=IntentCatalog())
    no_intent.when(entered_service()).rejects(ServiceGateNotMet, "no design intent")


def test_only_an_active_rack_degrades() -> None:
    given(active := entered_service()).when(degraded()).moves_to(S.DEGRADED)
    given(maintenance_started()).when(degraded()).rejects(IllegalTransition, "maintenance -> degraded")
    assert active.cls.TYPE == "rack.entered_service"


def test_maintenance_starts_from_active_or_degraded_with_its_reason() -> None:
    twin = given(degraded()).when(maintenance_started(reason="CDU pump swap")).moves_to(S.MAINTENANCE)
    assert twin.status_reason == "CDU pump swap"
    assert given(maintenance_started()).when(entered_service()).moves_to(S.ACTIVE).status_reason is None


@pytest.mark.parametrize("stage", [S.RECEIVED, S.INSTALLED, S.COMMISSIONED, S.ACTIVE, S.DEGRADED, S.MAINTENANCE])
def test_an_rma_opens_from_any_stage_on_site(stage: RackStatus) -> None:
    twin = given(ROAD_TO[stage]).when(rma_opened()).moves_to(S.RMA)
    assert twin.rma_number == "RMA-000042"


def test_a_rack_in_transit_cannot_go_to_rma_before_it_is_received() -> None:
    given(shipped()).when(rma_opened()).rejects(IllegalTransition, "in-transit -> rma")


def test_a_planned_rack_cannot_be_decommissioned() -> None:
    given().when(decommissioned()).rejects(IllegalTransition, "planned -> decommissioned")


@pytest.mark.parametrize("step", [manufactured(), tested(test="burn-in"), shipped(), received(), installed(),
                                  commissioned(), entered_service(), degraded(), maintenance_started(), rma_opened(),
                                  decommissioned(), part_installed(part("tray-09", "compute-tray")),
                                  firmware_updated("tray-01", "1.9.0")], ids=lambda s: s.cls.TYPE)
def test_a_decommissioned_rack_accepts_nothing_more(step: Step) -> None:
    given(decommissioned()).when(step).rejects(IllegalTransition, "decommissioned")


def test_an_illegal_event_is_recorded_with_its_reason_and_changes_nothing() -> None:
    twin = given(installed()).twin
    before = twin.snapshot()
    event = Clock(T0 + timedelta(days=9)).event(shipped())
    rejection = twin.fold(event)
    assert rejection is not None and rejection.reason == "illegal-transition"
    assert twin.rejected[-1].detail == rejection.detail and "installed -> in-transit" in rejection.detail
    assert twin.version == before["version"] and twin.status is S.INSTALLED


def test_a_twin_keeps_only_its_most_recent_rejections() -> None:
    twin = given(installed()).twin
    clock = Clock(T0 + timedelta(days=9))
    events = [clock.event(shipped()) for _ in range(REJECTIONS_KEPT + 3)]
    for e in events:
        twin.fold(e)
    assert [r.event_id for r in twin.rejected] == [str(e.event_id) for e in events[-REJECTIONS_KEPT:]]


# --- stalls and lead times --------------------------------------------------------------------

def test_a_rack_longer_in_its_stage_than_its_generation_allows_is_stalled() -> None:
    twin = given(received()).twin
    entered = twin.stage_entered_at[S.RECEIVED]
    info = stalled(twin, INTENT, entered + timedelta(days=7, hours=1))
    assert info is not None and info.stage is S.RECEIVED and info.allowance_days == 7
    assert info.days_in_stage == pytest.approx(7 + 1 / 24)


def test_a_rack_within_its_allowance_is_not_stalled() -> None:
    twin = given(received()).twin
    assert stalled(twin, INTENT, twin.stage_entered_at[S.RECEIVED] + timedelta(days=6, hours=23)) is None


def test_a_stage_without_an_allowance_never_stalls() -> None:
    twin = given(entered_service()).twin
    assert stalled(twin, INTENT, T0 + timedelta(days=3650)) is None


def test_allowances_differ_by_generation() -> None:
    twin = given(installed()).twin
    later = twin.stage_entered_at[S.INSTALLED] + timedelta(days=12)
    assert stalled(twin, INTENT, later) is not None
    assert stalled(twin, intent(stage_allowance_days={"installed": 21}), later) is None


def test_every_stage_has_its_entry_time_and_lead_time() -> None:
    events = history(entered_service(), start=T0)
    twin = RackTwin.replay(RACK, events, CATALOG)
    at = {e.type: e.occurred_at for e in events}
    assert twin.stage_entered_at[S.RECEIVED] == at["rack.received"]
    assert twin.stage_left_at[S.RECEIVED] == at["rack.installed"]
    times = lead_times(twin, now=at["rack.entered_service"] + timedelta(days=2))
    assert times[S.IN_TRANSIT] == at["rack.received"] - at["rack.shipped"]
    assert times[S.ACTIVE] == timedelta(days=2)
    assert S.PLANNED not in times


def test_lead_times_measure_the_latest_visit_of_a_revisited_stage() -> None:
    scenario = given(entered_service()).and_(maintenance_started(), entered_service(after=timedelta(hours=5)))
    twin = scenario.twin
    assert lead_times(twin)[S.MAINTENANCE] == timedelta(hours=5)
    assert twin.stage_entered_at[S.ACTIVE] == scenario.events[-1].occurred_at
