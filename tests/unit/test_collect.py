"""The collector's pure parts: the targets file, credentials, unit conversion, readers over
Redfish dicts, and how a cycle's endpoints merge into one reading per rack."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest

from twin.collect.bmc import read_bmc
from twin.collect.cdu import read_cdu
from twin.collect.pdu import read_pdu
from twin.collect.poll import merge
from twin.collect.resources import Measured
from twin.collect.targets import Credentials, Endpoint, Targets, TargetsError, load_targets
from twin.collect.units import UnknownUnit, to_celsius, to_kilopascals, to_liters_per_minute, to_watts

T = datetime(2027, 3, 1, 12, 0, tzinfo=timezone.utc)


def endpoint(kind: str = "bmc", racks: tuple[str, ...] = ("r1",), **more: Any) -> Endpoint:
    return Endpoint(name=f"{kind}-x", url="http://127.0.0.1:1", kind=kind, racks=racks, **more)  # type: ignore[arg-type]


# --- targets and credentials ---------------------------------------------------------------------

def test_a_targets_file_names_what_to_fix(tmp_path: Path) -> None:
    bad = tmp_path / "t.yaml"
    bad.write_text("endpoints:\n  - {name: b1, url: 'http://h', kind: ups, racks: [r1]}\n")
    with pytest.raises(TargetsError, match=r"endpoints\.0\.kind: Input should be 'bmc', 'cdu' or 'pdu'"):
        load_targets(bad)
    bad.write_text("endpoints: [\n")
    with pytest.raises(TargetsError, match="is not valid YAML"):
        load_targets(bad)
    with pytest.raises(TargetsError, match="cannot read the targets file"):
        load_targets(tmp_path / "missing.yaml")


def test_endpoint_names_are_unique_and_connectors_belong_to_cdus() -> None:
    with pytest.raises(ValueError, match="repeated: b1"):
        Targets.model_validate({"endpoints": [
            {"name": "b1", "url": "http://h", "kind": "bmc", "racks": ["r1"]},
            {"name": "b1", "url": "http://g", "kind": "bmc", "racks": ["r2"]}]})
    with pytest.raises(ValueError, match="applies to a cdu only"):
        endpoint("pdu", connectors={"r1": "A"})
    with pytest.raises(ValueError, match="not in `racks`: r9"):
        endpoint("cdu", connectors={"r9": "A"})


def test_credentials_come_from_exactly_one_place_each() -> None:
    with pytest.raises(ValueError, match="exactly one of `username` or `username_env`"):
        Credentials(password_env="P")
    with pytest.raises(ValueError, match="exactly one of `password_env` or `password_file`"):
        Credentials(username="u", password_env="P", password_file=Path("/x"))


def test_a_missing_secret_is_named_and_a_found_one_never_shows(tmp_path: Path) -> None:
    with pytest.raises(TargetsError, match="environment variable BMC_PW \\(password\\) is not set"):
        Credentials(username="u", password_env="BMC_PW").resolve({})
    with pytest.raises(TargetsError, match="cannot read the password file"):
        Credentials(username="u", password_file=tmp_path / "nope").resolve({})
    (tmp_path / "pw").write_text("hunter2\n")
    user, password = Credentials(username_env="U", password_file=tmp_path / "pw").resolve({"U": "ops"})
    assert (user, password.get_secret_value()) == ("ops", "hunter2")
    assert "hunter2" not in f"{password!r} {password}"


# --- units -----------------------------------------------------------------------------------------

def test_redfish_units_convert_to_the_contracts_units() -> None:
    assert to_celsius(98.6, "[degF]") == pytest.approx(37.0)
    assert to_celsius(300.15, "K") == pytest.approx(27.0)
    assert to_watts(1.5, "kW") == 1500.0 and to_watts(374, None) == 374.0
    assert to_kilopascals(1.2, "bar") == pytest.approx(120.0) and to_kilopascals(15, "[psi]") == pytest.approx(103.42, 0.01)
    assert to_liters_per_minute(1, "L/s") == 60.0 and to_liters_per_minute(3, "m3/h") == pytest.approx(50.0)
    with pytest.raises(UnknownUnit, match="cannot convert 'BTU/h'"):
        to_watts(1, "BTU/h")


# --- readers over dicts ----------------------------------------------------------------------------

def service(resources: dict[str, dict[str, Any]]):  # type: ignore[no-untyped-def]
    return resources.get


def ref(path: str) -> dict[str, str]:
    return {"@odata.id": path}


def test_a_bmc_sensor_in_kilowatts_and_fahrenheit_is_converted_and_its_reading_time_kept() -> None:
    c = "/redfish/v1/Chassis/1"
    get = service({
        "/redfish/v1/Chassis": {"Members": [ref(c)]},
        c: {"Sensors": ref(f"{c}/Sensors")},
        f"{c}/Sensors": {"Members": [ref(f"{c}/Sensors/{s}") for s in ("P", "In", "Out", "G1", "G2")]},
        f"{c}/Sensors/P": {"ReadingType": "Power", "Reading": 1.25, "ReadingUnits": "kW", "PhysicalContext": "Chassis",
                           "ReadingTime": "2027-03-01T11:59:58Z"},
        f"{c}/Sensors/In": {"ReadingType": "Temperature", "Reading": 77.0, "ReadingUnits": "[degF]",
                            "PhysicalContext": "Intake"},
        f"{c}/Sensors/Out": {"Reading": 45.0, "ReadingUnits": "Cel", "PhysicalContext": "Exhaust"},
        f"{c}/Sensors/G1": {"ReadingType": "Temperature", "Reading": 71.0, "ReadingUnits": "Cel", "PhysicalContext": "GPU"},
        f"{c}/Sensors/G2": {"ReadingType": "Temperature", "Reading": 83.5, "ReadingUnits": "Cel", "PhysicalContext": "GPU"},
    })
    m = read_bmc(get, endpoint())
    assert m.values == {"r1": {"power_watts": 1250.0, "inlet_temperature_celsius": pytest.approx(25.0),
                               "outlet_temperature_celsius": 45.0, "hottest_accelerator_temperature_celsius": 83.5}}
    assert m.taken_at == datetime(2027, 3, 1, 11, 59, 58, tzinfo=timezone.utc)


def test_a_bmc_with_only_the_deprecated_power_and_thermal_resources_is_still_read() -> None:
    c = "/redfish/v1/Chassis/1"
    get = service({
        "/redfish/v1/Chassis": {"Members": [ref(c)]},
        c: {"Power": ref(f"{c}/Power"), "Thermal": ref(f"{c}/Thermal")},
        f"{c}/Power": {"PowerControl": [{"PowerConsumedWatts": 344}]},
        f"{c}/Thermal": {"Temperatures": [{"ReadingCelsius": 25, "PhysicalContext": "Intake"}],
                         "Fans": [{"Reading": 2100, "ReadingUnits": "RPM", "MaxReadingRange": 4200},
                                  {"Reading": 60, "ReadingUnits": "Percent"}]},
    })
    assert read_bmc(get, endpoint()).values["r1"] == {"power_watts": 344.0, "inlet_temperature_celsius": 25.0,
                                                      "fan_speed_percent": 55.0}


def cdu_service(pump2: dict[str, Any], leak: str = "OK") -> Any:
    c = "/redfish/v1/ThermalEquipment/CDUs/1"
    return service({
        "/redfish/v1/ThermalEquipment/CDUs": {"Members": [ref(c)]},
        c: {"Status": {"State": "Enabled", "Health": "OK"}, "SecondaryCoolantConnectors": ref(f"{c}/S"),
            "Pumps": ref(f"{c}/Pumps"), "LeakDetection": ref(f"{c}/LD")},
        f"{c}/S": {"Members": [ref(f"{c}/S/A"), ref(f"{c}/S/B")]},
        f"{c}/S/A": {"FlowLitersPerMinute": {"Reading": 40.0}, "SupplyTemperatureCelsius": {"Reading": 30.0},
                     "ReturnTemperatureCelsius": {"Reading": 40.0}, "DeltaPressurekPa": {"Reading": 100.0}},
        f"{c}/S/B": {"FlowLitersPerMinute": {"Reading": 20.0}, "SupplyTemperatureCelsius": {"Reading": 32.0},
                     "ReturnTemperatureCelsius": {"Reading": 44.0}, "DeltaPressurekPa": {"Reading": 80.0}},
        f"{c}/Pumps": {"Members": [ref(f"{c}/Pumps/1"), ref(f"{c}/Pumps/2")]},
        f"{c}/Pumps/1": {"Id": "1", "Status": {"State": "Enabled", "Health": "OK"}},
        f"{c}/Pumps/2": {"Id": "2", **pump2},
        f"{c}/LD": {"LeakDetectors": ref(f"{c}/LD/D")},
        f"{c}/LD/D": {"Members": [ref(f"{c}/LD/D/Tray")]},
        f"{c}/LD/D/Tray": {"Id": "Tray", "DetectorState": leak},
    })


def test_a_cdu_with_a_failed_pump_is_critical_for_every_rack_it_feeds() -> None:
    m = read_cdu(cdu_service({"Status": {"State": "Enabled", "Health": "Critical"}}), endpoint("cdu", ("r1", "r2")))
    assert m.cooling_unit.health == "critical" and m.cooling_unit.reasons == ("pump 2 failed (critical)",)
    assert m.cooling_unit.cooling_unit_id == "cdu-x"
    assert m.values["r1"]["coolant_flow_liters_per_minute"] == 40.0  # as many connectors as racks: in order
    assert m.values["r2"]["coolant_supply_temperature_celsius"] == 32.0


def test_a_pump_that_is_offline_has_failed_and_a_wet_leak_detector_is_a_reason() -> None:
    m = read_cdu(cdu_service({"Status": {"State": "UnavailableOffline"}}, leak="Warning"), endpoint("cdu"))
    assert m.cooling_unit.health == "critical"
    assert m.cooling_unit.reasons == ("pump 2 failed (UnavailableOffline)", "leak detector Tray Warning")


def test_without_a_connector_per_rack_racks_share_the_loop() -> None:
    m = read_cdu(cdu_service({"Status": {"Health": "OK"}}), endpoint("cdu", ("r1", "r2", "r3")))
    assert m.values["r3"] == {"coolant_supply_temperature_celsius": 31.0, "coolant_return_temperature_celsius": 42.0,
                              "coolant_flow_liters_per_minute": 20.0, "coolant_differential_pressure_kilopascals": 90.0}
    assert m.cooling_unit.health == "ok" and m.cooling_unit.reasons == ()


def test_a_pdu_without_metrics_sums_its_mains_not_its_outlets_too() -> None:
    p = "/redfish/v1/PowerEquipment/RackPDUs/1"
    get = service({
        "/redfish/v1/PowerEquipment/RackPDUs": {"Members": [ref(p)]},
        p: {"Mains": ref(f"{p}/Mains"), "Outlets": ref(f"{p}/Outlets")},
        f"{p}/Mains": {"Members": [ref(f"{p}/Mains/1")]}, f"{p}/Mains/1": {"PowerWatts": {"Reading": 4700.0}},
        f"{p}/Outlets": {"Members": [ref(f"{p}/Outlets/1")]}, f"{p}/Outlets/1": {"PowerWatts": {"Reading": 2400.0}},
    })
    assert read_pdu(get, endpoint("pdu")).values == {"r1": {"power_watts": 4700.0}}


# --- merging a cycle -------------------------------------------------------------------------------

def measured(name: str, values: dict[str, dict[str, Any]], taken_at: datetime | None = None) -> Measured:
    return Measured(name, values, taken_at)


def test_pdus_measure_a_racks_power_over_its_bmcs_and_temperatures_take_the_hottest() -> None:
    eps = [Endpoint(name=n, url="http://h", kind=k, racks=r)  # type: ignore[arg-type]
           for n, k, r in (("b1", "bmc", ("r1", "r2")), ("b2", "bmc", ("r1",)), ("pa", "pdu", ("r1",)),
                           ("pb", "pdu", ("r1",)), ("c", "cdu", ("r1", "r2")), ("b3", "bmc", ("r3",)))]
    got = {
        "b1": measured("b1", {"r1": {"power_watts": 500.0, "inlet_temperature_celsius": 24.0, "fan_speed_percent": 40.0},
                              "r2": {"power_watts": 700.0, "leak_detected": False}}),
        "b2": measured("b2", {"r1": {"power_watts": 450.0, "inlet_temperature_celsius": 27.5, "fan_speed_percent": 60.0,
                                     "leak_detected": True}}, taken_at=T.replace(hour=11)),
        "pa": measured("pa", {"r1": {"power_watts": 6100.0}}),
        "pb": measured("pb", {"r1": {"power_watts": 5900.0}}),
        "c": measured("c", {"r1": {"coolant_flow_liters_per_minute": 40.0}, "r2": {}}),
        "b3": measured("b3", {"r3": {"power_watts": 374.0}}, taken_at=T.replace(year=2019)),
    }
    readings, rejected = merge(eps, got, {}, T)
    r1, r2, r3 = readings
    assert rejected == []
    assert (r1.power_watts, r1.inlet_temperature_celsius, r1.fan_speed_percent, r1.leak_detected) == (
        12000.0, 27.5, 50.0, True)
    assert r1.coolant_flow_liters_per_minute == 40.0 and r1.outlet_temperature_celsius is None
    assert r1.occurred_at == T  # the newest of its sources' times: b2's ReadingTime, the others' poll
    assert r3.occurred_at == T.replace(year=2019)  # its only source's ReadingTime: a BMC stuck in 2019 goes stale
    assert (r2.power_watts, r2.leak_detected, r2.occurred_at) == (700.0, False, T)


def test_an_unreachable_endpoint_is_named_on_its_racks_and_a_refused_one_says_nothing() -> None:
    eps = [Endpoint(name=n, url="http://h", kind="bmc", racks=r) for n, r in (("up", ("r1",)), ("gone", ("r1", "r2")),
                                                                                ("refused", ("r3",)))]
    readings, _ = merge(eps, {"up": measured("up", {"r1": {"power_watts": 1.0}})}, {"gone": "no answer"}, T)
    assert [(r.rack_id, r.unreachable_endpoints, r.power_watts) for r in readings] == [
        ("r1", ("gone",), 1.0), ("r2", ("gone",), None)]


def test_a_value_no_sensor_can_read_is_rejected_for_its_rack_only() -> None:
    eps = [Endpoint(name="b", url="http://h", kind="bmc", racks=("r1", "r2"))]
    got = {"b": measured("b", {"r1": {"inlet_temperature_celsius": 900.0}, "r2": {"power_watts": 10.0}})}
    readings, rejected = merge(eps, got, {}, T)
    assert [r.rack_id for r in readings] == ["r2"]
    (rack, error, payload), = rejected
    assert rack == "r1" and error.reason == "out-of-physical-range" and "inlet_temperature_celsius" in error.detail
    assert '"inlet_temperature_celsius": 900.0' in payload


def test_a_resource_of_an_impossible_shape_is_a_dead_letter_not_a_crash() -> None:
    from twin.collect import poll

    targets = Targets.model_validate({"endpoints": [
        {"name": "odd", "url": "http://127.0.0.1:1", "kind": "cdu", "racks": ["r1"]},
        {"name": "fine", "url": "http://127.0.0.1:1", "kind": "pdu", "racks": ["r2"]}]})
    answers = {"odd": {"/redfish/v1/ThermalEquipment/CDUs": {"Members": [ref("/c")]}, "/c": {"Status": "broken"}},
               "fine": {"/redfish/v1/PowerEquipment/RackPDUs": {"Members": [ref("/p")]},
                        "/p": {"Metrics": ref("/p/m")}, "/p/m": {"PowerWatts": {"Reading": 10.0}}}}
    collector = poll.Collector(targets)
    try:
        for name, client in collector.clients.items():
            client.get = answers[name].get  # type: ignore[method-assign]  # the network is not the subject here
        cycle = collector.poll_once()
    finally:
        collector.close()
    (letter,) = cycle.deadletters
    assert letter.reason == "unexpected-shape" and letter.topic == "redfish:odd" and "AttributeError" in letter.detail
    assert cycle.report is not None and [(r.rack_id, r.power_watts) for r in cycle.report.readings] == [("r2", 10.0)]


def test_the_readmes_targets_and_topology_examples_are_valid() -> None:
    import re

    import yaml

    from twin.domain.topology import declarations

    text = (Path(__file__).parents[2] / "README.md").read_text()
    targets, topology = re.findall(r"```yaml\n(.*?)```", text, re.S)[:2]
    assert [e.kind for e in Targets.model_validate(yaml.safe_load(targets)).endpoints] == ["bmc", "cdu", "pdu"]
    events = declarations(yaml.safe_load(topology), source="readme", now=T)
    assert [e.type for e in events] == ["topology.coolant_loop_declared"] + ["topology.power_feed_declared"] * 2
    assert events[0].event_id == declarations(yaml.safe_load(topology), source="readme", now=T)[0].event_id
    later = declarations(yaml.safe_load(topology), source="readme", now=T.replace(hour=13))
    assert later[0].event_id != events[0].event_id  # declaring it again later is a new fact (the latest wins)


def test_a_chassis_or_pdu_not_ok_travels_with_its_racks_reading_and_degrades_compute_or_power() -> None:
    from given import INTENT

    from twin.domain.health import HealthState, assess
    from twin.domain.rack import RackTwin

    c, p = "/redfish/v1/Chassis/1U", "/redfish/v1/PowerEquipment/RackPDUs/7"
    bmc = read_bmc(service({"/redfish/v1/Chassis": {"Members": [ref(c)]},
                            c: {"Id": "1U", "Status": {"State": "Enabled", "Health": "OK", "HealthRollup": "Critical"}}}),
                   endpoint("bmc"))
    pdu = read_pdu(service({"/redfish/v1/PowerEquipment/RackPDUs": {"Members": [ref(p)]},
                            p: {"Id": "7", "Status": {"Health": "Warning"}, "Metrics": ref(f"{p}/M")},
                            f"{p}/M": {"PowerWatts": {"Reading": 5000.0}}}), endpoint("pdu"))
    assert bmc.status.health == "critical" and bmc.status.reasons == ("chassis 1U Health OK, HealthRollup Critical",)
    eps = [endpoint("bmc"), endpoint("pdu")]
    (reading,), _ = merge(eps, {"bmc-x": bmc, "pdu-x": pdu}, {}, T)
    assert [(e.endpoint, e.kind, e.health) for e in reading.equipment] == [("bmc-x", "bmc", "critical"),
                                                                           ("pdu-x", "pdu", "warning")]
    twin = RackTwin("r1", generation=INTENT.generation)
    twin.observe(reading)
    health = assess(twin, INTENT, T, 30.0)
    assert health.compute.state is HealthState.CRITICAL
    assert health.compute.reason == "BMC bmc-x reports critical: chassis 1U Health OK, HealthRollup Critical"
    assert health.power.state is HealthState.WARNING and "PDU pdu-x reports warning: PDU 7 Health Warning" in health.power.reason
    ok = read_pdu(service({"/redfish/v1/PowerEquipment/RackPDUs": {"Members": [ref(p)]},
                           p: {"Status": {"Health": "OK"}, "Metrics": ref(f"{p}/M")},
                           f"{p}/M": {"PowerWatts": {"Reading": 5000.0}}}), endpoint("pdu"))
    assert ok.status is None


def test_one_collector_reports_at_most_as_many_racks_as_a_report_holds() -> None:
    many = [f"r{i}" for i in range(10_001)]
    with pytest.raises(ValueError, match="10001 racks: one collector's report holds at most 10,000; split the file"):
        Targets.model_validate({"endpoints": [{"name": "p", "url": "http://h", "kind": "pdu", "racks": many}]})
