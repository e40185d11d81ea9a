"""Conformance: deviations from design intent, with measured value, range and the revision that judged."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from given import (
    BOM,
    FIRMWARE,
    INTENT,
    RACK,
    bill,
    commissioned,
    entered_service,
    given,
    installed,
    intent,
    manufactured,
    part,
    part_installed,
    reading,
    received,
    rma_opened,
)

from schemas import Deviation, Range
from twin.domain.conformance import TELEMETRY_CHECKS, evaluate, judge, reevaluate
from twin.domain.rack import RackTwin


def serving(rack: str = RACK, **reading_changes: object) -> tuple[RackTwin, datetime]:
    """An active rack with one reading; `now` is the reading's time."""
    twin = given(entered_service(rack)).twin
    at = twin.stage_entered_at[twin.status] + timedelta(hours=1)
    twin.observe(reading(at, rack, **reading_changes))  # type: ignore[arg-type]
    return twin, at


def by_check(deviations: list[Deviation]) -> dict[str, Deviation]:
    checks = [d.check for d in deviations]
    assert len(checks) == len(set(checks)), "one deviation per check"
    return {d.check: d for d in deviations}


def test_a_rack_built_and_running_to_intent_has_no_deviations() -> None:
    twin, now = serving()
    assert evaluate(twin, INTENT, now) == []


def test_power_just_over_budget_is_a_warning_naming_value_range_and_revision() -> None:
    twin, now = serving(power_watts=135_000.0, coolant_flow_liters_per_minute=200.0)
    d = by_check(evaluate(twin, intent(revision=7), now))["power-over-budget"]
    assert (d.severity, d.measured, d.allowed_min, d.allowed_max, d.unit) == ("warning", 135_000.0, 20_000.0,
                                                                               132_000.0, "W")
    assert (d.rack_id, d.generation, d.intent_revision) == (RACK, "gen-a-130kw", 7)


def test_power_far_over_budget_is_critical_and_over_the_cooling_capacity() -> None:
    twin, now = serving(power_watts=145_000.0, coolant_flow_liters_per_minute=220.0)
    found = by_check(evaluate(twin, INTENT, now))
    assert found["power-over-budget"].severity == "critical"
    assert found["cooling-over-capacity"].severity == "critical" and found["cooling-over-capacity"].allowed_max == 140e3


def test_an_active_rack_below_its_minimum_draw_is_flagged_but_a_rack_in_maintenance_is_not() -> None:
    twin, now = serving(power_watts=10_000.0, coolant_flow_liters_per_minute=15.0)
    assert "power-under-budget" in by_check(evaluate(twin, INTENT, now))
    drained = given(entered_service()).and_(rma_opened()).twin
    assert "power-under-budget" not in by_check(evaluate(drained, INTENT, now))


@pytest.mark.parametrize(("flow", "severity"), [(110.0, "warning"), (80.0, "critical"), (260.0, "warning")])
def test_coolant_flow_per_kilowatt_out_of_range(flow: float, severity: str) -> None:
    twin, now = serving(coolant_flow_liters_per_minute=flow)  # at 100 kW
    d = by_check(evaluate(twin, INTENT, now))["coolant-flow-out-of-range"]
    assert d.severity == severity and d.measured == pytest.approx(flow / 100) and d.unit == "L/min/kW"
    assert (d.allowed_min, d.allowed_max) == (1.2, 2.5)


def test_coolant_flow_is_not_judged_per_kilowatt_on_an_idle_rack() -> None:
    twin, now = serving(power_watts=500.0, coolant_flow_liters_per_minute=0.0)
    assert "coolant-flow-out-of-range" not in by_check(evaluate(twin, INTENT, now))


@pytest.mark.parametrize(("field", "value", "check", "severity"), [
    ("inlet_temperature_celsius", 33.5, "inlet-temperature-out-of-envelope", "warning"),
    ("inlet_temperature_celsius", 36.0, "inlet-temperature-out-of-envelope", "critical"),
    ("inlet_temperature_celsius", 16.0, "inlet-temperature-out-of-envelope", "warning"),
    ("coolant_supply_temperature_celsius", 34.0, "coolant-supply-out-of-envelope", "warning"),
    ("coolant_supply_temperature_celsius", 40.0, "coolant-supply-out-of-envelope", "critical"),
    ("hottest_accelerator_temperature_celsius", 93.0, "accelerator-too-hot", "warning"),
    ("hottest_accelerator_temperature_celsius", 99.0, "accelerator-too-hot", "critical"),
])
def test_temperatures_outside_their_envelope(field: str, value: float, check: str, severity: str) -> None:
    twin, now = serving(**{field: value})
    d = by_check(evaluate(twin, INTENT, now))[check]
    assert (d.severity, d.measured, d.unit) == (severity, value, "°C")


def test_a_leak_is_critical() -> None:
    twin, now = serving(leak_detected=True)
    d = by_check(evaluate(twin, INTENT, now))["leak-detected"]
    assert d.severity == "critical" and d.measured == "detected"


def test_links_down_are_a_deviation_critical_from_a_tenth() -> None:
    twin, now = serving(network_links_down=2)
    assert by_check(evaluate(twin, INTENT, now))["network-links-down"].severity == "warning"
    twin, now = serving(network_links_up=80, network_links_down=10)
    d = by_check(evaluate(twin, INTENT, now))["network-links-down"]
    assert (d.severity, d.measured, d.allowed_max) == ("critical", 10, 0)


def test_stale_telemetry_is_a_deviation() -> None:
    twin, at = serving()
    assert evaluate(twin, INTENT, at + timedelta(seconds=30), stale_after_seconds=30) == []
    d = by_check(evaluate(twin, INTENT, at + timedelta(seconds=95), stale_after_seconds=30))["telemetry-stale"]
    assert (d.severity, d.measured, d.allowed_max, d.unit) == ("warning", 95.0, 30.0, "s")


def test_telemetry_is_judged_only_while_the_rack_is_powered() -> None:
    twin = given(entered_service()).and_(rma_opened()).twin
    twin.observe(reading(twin.stage_entered_at[twin.status], power_watts=500_000.0, leak_detected=True))
    now = twin.latest_at
    assert now is not None
    assert evaluate(twin, INTENT, now) == []


def test_a_powered_rack_that_never_reported_has_no_telemetry_deviations() -> None:
    twin = given(commissioned()).twin
    assert evaluate(twin, INTENT, twin.stage_entered_at[twin.status] + timedelta(days=1)) == []


def test_missing_and_extra_parts_are_deviations_per_kind() -> None:
    parts = [p for p in bill() if p.slot != "psu-02"] + [part("nic-02", "nic"), part("manifold-01",
                                                                                      "cooling-manifold")]
    twin = given(installed(), parts=parts).twin
    found = by_check(evaluate(twin, INTENT, twin.stage_entered_at[twin.status]))
    missing = found["components-missing-psu"]
    assert (missing.measured, missing.allowed_min, missing.allowed_max, missing.unit) == (1, 2, 2, "count")
    assert found["components-extra-nic"].measured == 2 and found["components-extra-nic"].allowed_max == BOM["nic"]
    assert found["components-extra-cooling-manifold"].allowed_max == 0
    assert set(found) == {"components-missing-psu", "components-extra-nic", "components-extra-cooling-manifold"}


def test_a_rack_still_being_built_is_not_judged_for_parts() -> None:
    twin = given(manufactured()).and_(part_installed(part("psu-01", "psu"))).twin
    assert evaluate(twin, INTENT, twin.stage_entered_at[twin.status]) == []


def test_firmware_drift_is_a_deviation_per_kind_naming_the_versions() -> None:
    parts = [part("tray-01", "compute-tray", "S1", firmware="1.8.2")] + [p for p in bill() if p.slot != "tray-01"]
    twin = given(installed(), parts=parts).twin
    d = by_check(evaluate(twin, INTENT, twin.stage_entered_at[twin.status]))["firmware-drift-compute-tray"]
    assert d.measured == "1.8.2 x1" and FIRMWARE["compute-tray"] in d.detail and "1 of 2" in d.detail


def test_a_stalled_rack_is_a_deviation_with_days_and_allowance() -> None:
    twin = given(received()).twin
    entered = twin.stage_entered_at[twin.status]
    assert evaluate(twin, INTENT, entered + timedelta(days=6)) == []
    d = by_check(evaluate(twin, INTENT, entered + timedelta(days=9)))["stalled-in-stage"]
    assert (d.measured, d.allowed_max, d.unit) == (9.0, 7.0, "d") and "received" in d.detail


def test_a_new_intent_revision_changes_the_deviations() -> None:
    twin, now = serving(power_watts=128_000.0, coolant_flow_liters_per_minute=190.0)
    assert evaluate(twin, INTENT, now) == []
    tighter = intent(revision=2, power_budget_watts=Range(min=20_000.0, max=120_000.0))
    d = by_check(evaluate(twin, tighter, now))["power-over-budget"]
    assert (d.intent_revision, d.allowed_max, d.severity) == (2, 120_000.0, "critical")


def test_a_new_revision_re_judges_every_twin_of_its_generation_once() -> None:
    hot, now = serving("hot", power_watts=128_000.0, coolant_flow_liters_per_minute=190.0)
    cool, _ = serving("cool")
    other, _ = serving("other", power_watts=128_000.0, coolant_flow_liters_per_minute=190.0)
    other.generation = "gen-b-200kw"
    for twin in (hot, cool):
        judge(twin, INTENT, now)
    assert hot.intent_revision == 1
    tighter = intent(revision=2, power_budget_watts=Range(min=20_000.0, max=120_000.0))
    rejudged = reevaluate([hot, cool, other], tighter, now)
    assert set(rejudged) == {"hot", "cool"}
    assert [d.check for d in rejudged["hot"]] == ["power-over-budget"] and rejudged["cool"] == []
    assert hot.intent_revision == cool.intent_revision == 2 and other.intent_revision == 0
    assert reevaluate([hot, cool, other], tighter, now) == {}


def test_a_rack_is_judged_only_by_its_own_generation() -> None:
    twin, now = serving()
    with pytest.raises(ValueError, match="gen-b-200kw"):
        evaluate(twin, intent("gen-b-200kw"), now)


def test_one_family_of_checks_is_exactly_its_share_of_all_checks() -> None:
    """The telemetry path judges only readings, the lifecycle path only stage and parts: together
    they must find what a full judgement finds, no more, no less."""
    parts = [p for p in bill() if p.slot != "psu-02"]
    twin = given(installed(), parts=parts).and_(entered_service()).twin
    at = twin.stage_entered_at[twin.status] + timedelta(days=400)  # stale and long in service
    twin.observe(reading(at - timedelta(minutes=5), power_watts=150_000.0, leak_detected=True))
    everything = evaluate(twin, INTENT, at)
    telemetry = evaluate(twin, INTENT, at, only="telemetry")
    lifecycle = evaluate(twin, INTENT, at, only="lifecycle")
    assert {d.check for d in telemetry} == {"power-over-budget", "cooling-over-capacity", "leak-detected",
                                            "telemetry-stale", "coolant-flow-out-of-range"}
    assert "components-missing-psu" in {d.check for d in lifecycle}
    assert all(d.check in TELEMETRY_CHECKS for d in telemetry)
    assert not any(d.check in TELEMETRY_CHECKS for d in lifecycle)
    assert sorted(telemetry + lifecycle, key=lambda d: d.check) == sorted(everything, key=lambda d: d.check)
