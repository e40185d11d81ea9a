"""Health per subsystem over the readings window; stale telemetry."""

from __future__ import annotations

from datetime import timedelta

import pytest
from given import INTENT, RACK, T0, reading, readings

from twin.domain.health import SUSTAINED_READINGS, HealthState, assess
from twin.domain.rack import RackTwin

H = HealthState
STALE_AFTER = 30.0


def twin_with(*batches: list) -> RackTwin:
    twin = RackTwin(RACK, generation=INTENT.generation)
    for batch in batches:
        for r in batch:
            twin.observe(r)
    return twin


def last_time(twin: RackTwin):
    assert twin.latest_at is not None
    return twin.latest_at


def test_a_rack_inside_its_envelope_is_ok_everywhere() -> None:
    twin = twin_with(readings(T0, 5))
    health = assess(twin, INTENT, last_time(twin), STALE_AFTER)
    assert health.overall is H.OK and not health.stale and health.readings == 5
    assert health.as_dict()["power"] == {"state": "ok", "reason": ""}


def test_one_power_spike_is_a_warning_and_a_sustained_excess_is_critical() -> None:
    spike = twin_with(readings(T0, 4), [reading(T0 + timedelta(seconds=4), power_watts=133_000.0)])
    health = assess(spike, INTENT, last_time(spike), STALE_AFTER)
    assert health.power.state is H.WARNING and "1 of 5 readings" in health.power.reason
    sustained = twin_with(readings(T0, SUSTAINED_READINGS, power_watts=133_000.0))
    health = assess(sustained, INTENT, last_time(sustained), STALE_AFTER)
    assert health.power.state is H.CRITICAL and "133000 W" in health.power.reason


def test_too_few_readings_cannot_make_a_condition_critical() -> None:
    twin = twin_with(readings(T0, SUSTAINED_READINGS - 1, power_watts=133_000.0))
    assert assess(twin, INTENT, last_time(twin), STALE_AFTER).power.state is H.WARNING


def test_mean_power_near_the_budget_is_a_warning() -> None:
    twin = twin_with(readings(T0, 5, power_watts=130_000.0))
    health = assess(twin, INTENT, last_time(twin), STALE_AFTER)
    assert health.power.state is H.WARNING and "within 5 %" in health.power.reason


def test_a_leak_is_critical_at_once() -> None:
    twin = twin_with(readings(T0, 4), [reading(T0 + timedelta(seconds=4), leak_detected=True)])
    health = assess(twin, INTENT, last_time(twin), STALE_AFTER)
    assert health.cooling.state is H.CRITICAL and "leak" in health.cooling.reason
    assert health.overall is H.CRITICAL and health.power.state is H.OK


def test_starved_coolant_flow_is_a_cooling_condition() -> None:
    twin = twin_with(readings(T0, 4, coolant_flow_liters_per_minute=60.0))  # 0.6 L/min/kW at 100 kW
    health = assess(twin, INTENT, last_time(twin), STALE_AFTER)
    assert health.cooling.state is H.CRITICAL and "coolant flow" in health.cooling.reason


def test_hot_inlet_air_and_coolant_are_cooling_and_hot_accelerators_are_compute() -> None:
    twin = twin_with(readings(T0, 3), [reading(T0 + timedelta(seconds=3), inlet_temperature_celsius=33.0,
                                               hottest_accelerator_temperature_celsius=93.0)])
    health = assess(twin, INTENT, last_time(twin), STALE_AFTER)
    assert health.cooling.state is H.WARNING and "inlet air" in health.cooling.reason
    assert health.compute.state is H.WARNING and "hottest accelerator" in health.compute.reason


def test_links_down_warn_and_a_sustained_large_share_is_critical() -> None:
    few = twin_with(readings(T0, 4), [reading(T0 + timedelta(seconds=4), network_links_down=2)])
    health = assess(few, INTENT, last_time(few), STALE_AFTER)
    assert health.network.state is H.WARNING and "2 of 98 links down" in health.network.reason
    many = twin_with(readings(T0, 4, network_links_up=80, network_links_down=16))
    assert assess(many, INTENT, last_time(many), STALE_AFTER).network.state is H.CRITICAL


def test_links_back_up_clear_the_network_state() -> None:
    twin = twin_with(readings(T0, 3, network_links_down=2), [reading(T0 + timedelta(seconds=3))])
    assert assess(twin, INTENT, last_time(twin), STALE_AFTER).network.state is H.OK


def test_telemetry_stale_after_the_setting_warns_every_subsystem() -> None:
    twin = twin_with(readings(T0, 3))
    fresh = assess(twin, INTENT, last_time(twin) + timedelta(seconds=30), STALE_AFTER)
    assert not fresh.stale and fresh.overall is H.OK
    stale = assess(twin, INTENT, last_time(twin) + timedelta(seconds=31), STALE_AFTER)
    assert stale.stale and {stale.power.state, stale.cooling.state, stale.compute.state, stale.network.state} == {
        H.WARNING}
    assert "no reading for 31 s (stale after 30 s)" in stale.network.reason
    assert assess(twin, INTENT, last_time(twin) + timedelta(seconds=31), 60.0).stale is False


def test_a_stale_critical_rack_stays_critical() -> None:
    twin = twin_with(readings(T0, 3, leak_detected=True))
    health = assess(twin, INTENT, last_time(twin) + timedelta(minutes=5), STALE_AFTER)
    assert health.stale and health.cooling.state is H.CRITICAL and len(health.cooling.reasons) == 2


def test_a_rack_that_never_reported_is_unknown() -> None:
    health = assess(RackTwin(RACK), INTENT, T0, STALE_AFTER)
    assert health.overall is H.UNKNOWN and health.stale and health.last_reading_at is None


def test_without_intent_only_leaks_and_links_are_judged() -> None:
    twin = twin_with(readings(T0, 4, power_watts=900_000.0, leak_detected=True, network_links_down=1))
    health = assess(twin, None, last_time(twin), STALE_AFTER)
    assert health.power.state is H.OK and health.cooling.state is H.CRITICAL and health.network.state is H.WARNING


@pytest.mark.parametrize(("window_seconds", "expected"), [(60.0, H.WARNING), (2.0, H.OK)])
def test_old_readings_fall_out_of_the_window(window_seconds: float, expected: HealthState) -> None:
    twin = twin_with([reading(T0, power_watts=140_000.0)], readings(T0 + timedelta(seconds=10), 3))
    health = assess(twin, INTENT, last_time(twin), STALE_AFTER, window_seconds=window_seconds)
    assert health.power.state is expected
