"""The Redfish collector against real servers: sushy-static serving DMTF's rackmount mockup and
our CDU and rack PDU mockups, a real broker, a real worker and the real database."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
import yaml
from kafka import KafkaConsumer, TopicPartition
from redfish_servers import LocalRedfishService, combined_tree, sushy_static
from worker_process import free_port, query, running_worker, scalar, wait_for

from twin.collect.poll import Collector
from twin.collect.targets import Targets
from twin.domain.intent import IntentCatalog
from twin.embedded.simulator import FleetSimulator, Message
from twin.publisher import Publisher
from twin.domain.topology import declarations

pytestmark = pytest.mark.integration
TWIN = str(Path(sys.executable).with_name("twin"))  # the console script; PYTHONPATH in the env keeps this tree first


@pytest.fixture(scope="module")
def redfish(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """One sushy-static for the module, serving the BMC, CDU and PDU mockups side by side."""
    where = tmp_path_factory.mktemp("redfish")
    with sushy_static(combined_tree(where), where / "sushy.log") as url:
        yield url


def closed_port_url() -> str:
    return f"http://127.0.0.1:{free_port()}"  # nothing listens there


def fleet(racks: int) -> tuple[list[str], list[Message]]:
    """Rack ids the fleet knows (registered with their lifecycle) and the messages that register them."""
    catalog = IntentCatalog.default()
    sim = FleetSimulator(7, racks, datetime.now(timezone.utc) - timedelta(seconds=10),
                         {g: catalog.latest(g) for g in catalog.generations()})
    return sorted(sim.racks), [*sim.reference_messages(), *sim.history_messages()]


def publish(tenant: Any, messages: list[Message]) -> None:
    with Publisher(tenant.kafka_bootstrap, tenant.topics) as publisher:
        publisher.send_all(messages)
        publisher.flush()


def twin(tenant: Any, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([TWIN, *args], env=tenant.env, capture_output=True, text=True,
                          timeout=120)


def test_collector_events_reach_the_twin_with_the_mockup_values_and_the_topology_answers(
        redfish: str, tenant: Any, tmp_path: Path) -> None:
    racks, registration = fleet(5)
    a, b, c, d, e = racks
    topology = {
        "coolant_loops": [{"loop_id": "loop-1", "cooling_unit_id": "cdu-1", "racks": [a, b]},
                          {"loop_id": "loop-2", "cooling_unit_id": "cdu-2", "racks": [c, d, e]}],
        "power_feeds": [{"feed_id": "feed-a1", "side": "A", "racks": [a, b, c]},
                        {"feed_id": "feed-b1", "side": "B", "racks": [a, b]}],
    }
    now = datetime.now(timezone.utc)
    declared = [Message("intent", b"topology", ev.model_dump_json().encode())
                for ev in declarations(topology, source="test", now=now)]
    targets = Targets.model_validate({"collector": "hall-1", "retries": 1, "backoff_seconds": 0.05, "endpoints": [
        {"name": "bmc-1", "url": redfish, "kind": "bmc", "racks": [a], "resource": "1U", "auth": "basic",
         "credentials": {"username": "root", "password_env": "BMC_PASSWORD"}},
        {"name": "cdu-1", "url": redfish, "kind": "cdu", "racks": [a, b], "resource": "1"},
        {"name": "pdu-1", "url": redfish, "kind": "pdu", "racks": [b], "resource": "1"},
        {"name": "cdu-2", "url": redfish, "kind": "cdu", "racks": [c, d, e], "resource": "2"},
        {"name": "bmc-gone", "url": closed_port_url(), "kind": "bmc", "racks": [d], "timeout_seconds": 1},
    ]})
    with Collector(targets, environ={"BMC_PASSWORD": "not-checked-by-sushy"}) as collector:
        cycle = collector.poll_once()
    assert cycle.report is not None and set(cycle.unreachable) == {"bmc-gone"}
    report = Message("telemetry", b"hall-1", cycle.report.model_dump_json().encode())
    publish(tenant, [*registration, *declared, report])

    log = tmp_path / "worker.log"
    with running_worker(tenant.env, log) as proc:
        wait_for("the report's five readings", lambda: scalar(tenant.database_url, "SELECT count(*) FROM telemetry"),
                 lambda n: n == 5, log_path=log, proc=proc, timeout=90)
        wait_for("the topology", lambda: scalar(tenant.database_url, "SELECT count(*) FROM power_feed_racks"),
                 lambda n: n == 5, log_path=log, proc=proc)
        health = dict(wait_for("health of the polled racks", lambda: query(
            tenant.database_url, "SELECT rack_id, health FROM rack_state WHERE telemetry_at IS NOT NULL"),
            lambda rows: len(rows) == 5, log_path=log, proc=proc))

    row = query(tenant.database_url, "SELECT power_watts, inlet_temperature_celsius, outlet_temperature_celsius,"
                " fan_speed_percent, coolant_supply_temperature_celsius, coolant_flow_liters_per_minute,"
                " hottest_accelerator_temperature_celsius, network_links_up FROM telemetry WHERE rack_id = %s", (a,))
    # DMTF rackmount1: Sensors/TotalPower 374 W, IntakeTemp 24.8 °C, ExhaustTemp 40.5 °C, fans 45/55/..;
    # our CDU 1 connector A: 30.1 °C supply, 40.2 L/min. No GPU sensor, no links: not measured, null.
    assert row == [(374.0, 24.8, 40.5, pytest.approx(row[0][3]), 30.1, 40.2, None, None)]
    assert 0 < row[0][3] <= 100
    assert scalar(tenant.database_url, "SELECT power_watts FROM telemetry WHERE rack_id = %s", (b,)) == 6100.0

    for rack in (c, d, e):  # CDU 2 is Warning / rollup Critical with pump 2 failed: named on every rack it feeds
        assert health[rack]["cooling"]["state"] == "critical"
        assert "cooling unit cdu-2 is critical" in health[rack]["cooling"]["reason"]
        assert "pump 2 failed" in health[rack]["cooling"]["reason"]
    assert health[a]["cooling_unit"]["health"] == "ok" and "cdu" not in health[a]["cooling"]["reason"]
    assert health[d]["stale"] is True and health[d]["stale_reason"] == "endpoint-unreachable"
    assert "bmc-gone did not answer" in health[d]["power"]["reason"]
    assert health[c]["stale_reason"] is None

    fed = twin(tenant, "topology", "cdu", "cdu-2", "--json")
    assert fed.returncode == 0, fed.stderr
    fed_answer = json.loads(fed.stdout)
    assert (fed_answer["racks"], fed_answer["loops"], fed_answer["health"]) == ([c, d, e], ["loop-2"], "critical")
    assert any("pump 2 failed" in r for r in fed_answer["reasons"]) and fed_answer["freshness"] is not None
    table = twin(tenant, "topology", "cdu", "cdu-2")  # piped: a plain table, one rack a line
    assert table.returncode == 0 and [c, d, e] == [x for x in table.stdout.split() if x in racks], table.stdout
    loss = twin(tenant, "topology", "feed-loss", "A", "--json")
    assert loss.returncode == 0, loss.stderr
    assert json.loads(loss.stdout) == {"failed": ["feed-a1"], "losing_redundancy": sorted([a, b]), "losing_power": [c]}
    conditions = twin(tenant, "topology", "cdus", "--json")
    assert conditions.returncode == 0, conditions.stderr
    [condition] = json.loads(conditions.stdout)  # one condition for the CDU, not one per rack
    assert condition["cooling_unit_id"] == "cdu-2" and condition["racks"] == [c, d, e]
    assert condition["health"] == "critical"
    shown = twin(tenant, "rack", d)  # a rack whose BMC did not answer: nulls shown as -, the reason named
    assert shown.returncode == 0, shown.stderr
    assert "endpoint-unreachable" in shown.stdout and "power - kW," in shown.stdout, shown.stdout
    unknown = twin(tenant, "topology", "cdu", "cdu-9")
    assert unknown.returncode == 2 and "known CDUs: cdu-1, cdu-2" in unknown.stderr

    # The alert rules on what the worker stored: one alert for CDU 2, no cooling page per rack it feeds.
    import psycopg
    from psycopg.rows import dict_row

    from twin.alerting.facts import read_facts
    from twin.alerting.rules import COOLING_UNIT_EXPLAINS, observe

    now = datetime.now(timezone.utc)
    with psycopg.connect(tenant.database_url, row_factory=dict_row) as conn:
        rack_facts, fleet_facts = read_facts(conn, now, now - timedelta(hours=1), [], fleet=True)
    assert fleet_facts is not None
    seen = observe(rack_facts, fleet_facts, {}, now, stale_after_seconds=3600)
    cdu_alerts = {k: o for k, o in seen.items() if o.rule == "cooling-unit-degraded"}
    assert list(cdu_alerts) == ["cooling-unit-degraded/cdu-2/critical"]
    assert cdu_alerts["cooling-unit-degraded/cdu-2/critical"].value == 3.0
    cooling = [o for o in seen.values() if o.rack_id in (c, d, e) and o.labels.get("subsystem") == "cooling"]
    assert all(o.labels["cooling_unit"] == "cdu-2" and o.rule in COOLING_UNIT_EXPLAINS for o in cooling), \
        [(o.key, o.labels) for o in cooling]  # each one inhibited by the CDU's alert at Alertmanager
    assert not [o for o in cooling if o.rack_id in (c, e) and o.rule == "rack-cooling-health-critical"], \
        "a rack whose cooling is degraded only by its CDU raises no health alert of its own"


def read_topic(tenant: Any, topic: str) -> list[dict[str, Any]]:
    consumer = KafkaConsumer(bootstrap_servers=tenant.kafka_bootstrap, enable_auto_commit=False,
                             consumer_timeout_ms=3000)
    try:
        parts = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or ()]
        consumer.assign(parts)
        consumer.seek_to_beginning(*parts)
        return [json.loads(m.value) for m in consumer]
    finally:
        consumer.close()


def test_endpoints_answering_500_or_malformed_json_get_dead_letters_and_the_collector_goes_on_broken_service(
        redfish: str, tenant: Any, tmp_path: Path) -> None:
    with LocalRedfishService(status=500) as broken:
        targets = {"collector": "hall-2", "interval_seconds": 0.2, "retries": 0, "endpoints": [
            {"name": "bmc-500", "url": broken.url, "kind": "bmc", "racks": ["r-500"]},
            {"name": "pdu-garbled", "url": redfish, "kind": "pdu", "racks": ["r-garbled"], "resource": "broken"},
            {"name": "pdu-1", "url": redfish, "kind": "pdu", "racks": ["r-ok"], "resource": "1",
             "auth": "basic", "credentials": {"username_env": "PDU_USER", "password_file": str(tmp_path / "pw")}},
        ]}
        (tmp_path / "pw").write_text("s3cret-never-logged\n")
        (tmp_path / "targets.yaml").write_text(yaml.safe_dump(targets))
        run = subprocess.run([TWIN, "--log-level", "debug", "collect", "redfish",
                              "--targets", str(tmp_path / "targets.yaml"), "--cycles", "2"],
                             env={**tenant.env, "PDU_USER": "monitor"}, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    assert "s3cret-never-logged" not in run.stdout + run.stderr

    letters = read_topic(tenant, tenant.topics.deadletter)
    by_reason = {(l["reason"], l["topic"]) for l in letters}
    assert by_reason == {("endpoint-http-error", "redfish:bmc-500"), ("malformed-json", "redfish:pdu-garbled")}
    assert len(letters) == 4  # both endpoints, both cycles: the collector kept going
    http = next(l for l in letters if l["reason"] == "endpoint-http-error")
    assert "answered HTTP 500" in http["detail"] and "bad day" in http["payload"] and http["rack_id"] == "r-500"
    garbled = next(l for l in letters if l["reason"] == "malformed-json")
    assert "/PowerEquipment/RackPDUs/broken" in garbled["detail"] and garbled["payload"].startswith('{"@odata.id"')

    reports = read_topic(tenant, tenant.topics.telemetry)
    assert len(reports) == 2
    assert [[(r["rack_id"], r["power_watts"]) for r in rep["readings"]] for rep in reports] == [[("r-ok", 6100.0)]] * 2
    assert reports[0]["seq"] < reports[1]["seq"] and reports[0]["source"] == "hall-2"

    # The worker records the collector's letters too (it has no database of its own), once each;
    # its own letters, which it publishes on the same topic, are not recorded twice.
    log = tmp_path / "worker.log"
    with running_worker(tenant.env, log) as proc:
        wait_for("the collector's letters and the unknown rack's", lambda: query(
            tenant.database_url, "SELECT reason, topic FROM deadletters ORDER BY id"),
            lambda rows: len(rows) == 6, log_path=log, proc=proc, timeout=90)
        shown = twin(tenant, "deadletters", "--json")
        assert shown.returncode == 0, shown.stderr
        replayed = twin(tenant, "deadletters", "replay")
        assert replayed.returncode == 0, replayed.stderr
        wait_for("the replayed reports refused again", lambda: query(
            tenant.database_url, "SELECT reason, topic FROM deadletters ORDER BY id"),
            lambda rows: len(rows) == 8, log_path=log, proc=proc, timeout=60)
    stored = query(tenant.database_url, "SELECT reason, topic, replayed_at IS NULL AS open FROM deadletters")
    assert sorted((r, t.startswith("redfish:"), o) for r, t, o in stored) == sorted(
        [("endpoint-http-error", True, True)] * 2 + [("malformed-json", True, True)] * 2
        + [("unknown-rack", False, False)] * 2 + [("unknown-rack", False, True)] * 2)
    # a collector's letter cannot go back (its endpoint's next poll asks again): it stays open
    document = json.loads(shown.stdout)
    assert {x["reason"] for x in document["letters"]} == {"endpoint-http-error", "malformed-json", "unknown-rack"}
    assert "replayed 2 dead letter(s)" in replayed.stdout


def test_resources_missing_from_a_mockup_are_left_null_without_errors(redfish: str) -> None:
    targets = Targets.model_validate({"endpoints": [
        {"name": "bmc-bare", "url": redfish, "kind": "bmc", "racks": ["r1"], "resource": "Bare"},
        {"name": "bmc-none", "url": redfish, "kind": "bmc", "racks": ["r2"], "resource": "NoSuchChassis"},
        {"name": "pdu-3", "url": redfish, "kind": "pdu", "racks": ["r3"], "resource": "3"},
        {"name": "cdu-1", "url": redfish, "kind": "cdu", "racks": ["r3", "r4"], "resource": "1",
         "connectors": {"r3": "B", "r4": "Z"}},
    ]})
    with Collector(targets) as collector:
        cycle = collector.poll_once()
    assert cycle.deadletters == [] and cycle.unreachable == {} and cycle.refused == {}
    assert cycle.report is not None
    got = {r.rack_id: r for r in cycle.report.readings}
    quantities = lambda r: {k: v for k, v in r.model_dump().items()  # noqa: E731
                            if k not in ("rack_id", "occurred_at", "unreachable_endpoints", "cooling_unit", "equipment")}
    assert set(quantities(got["r1"]).values()) == {None} and set(quantities(got["r2"]).values()) == {None}
    assert got["r3"].power_watts == 4700.0  # PDU 3 has no Metrics: its mains circuit says 2400 + 2300 W
    assert got["r3"].coolant_flow_liters_per_minute == 38.7  # connector B
    assert got["r4"].coolant_flow_liters_per_minute is None  # connector Z does not exist: not measured
    assert any("NoSuchChassis" in m for m in cycle.measured["bmc-none"].missing)
    assert any("SecondaryCoolantConnectors/Z" in m for m in cycle.measured["cdu-1"].missing)


def test_redfish_session_login_and_logout_fake_session_service() -> None:
    with LocalRedfishService(user="monitor", password="pw-1") as service:
        targets = Targets.model_validate({"endpoints": [
            {"name": "bmc-s", "url": service.url, "kind": "bmc", "racks": ["r1"], "auth": "session",
             "credentials": {"username": "monitor", "password_env": "PW"}},
            {"name": "bmc-wrong", "url": service.url, "kind": "bmc", "racks": ["r2"], "auth": "session",
             "credentials": {"username": "monitor", "password_env": "WRONG"}}]})
        with Collector(targets, environ={"PW": "pw-1", "WRONG": "nope"}) as collector:
            first, second = collector.poll_once(), collector.poll_once()
            assert service.logins == 1  # one session over both cycles
            service.tokens.clear()  # the BMC expired it (or rebooted)
            third = collector.poll_once()
            assert service.logins == 2 and third.report is not None and not third.unreachable  # logged in again
        assert service.logouts == 1  # the live session deleted at close
    assert [(r.rack_id, r.power_watts) for r in first.report.readings] == [("r1", 512.0)]  # type: ignore[union-attr]
    assert [(r.rack_id, r.power_watts) for r in second.report.readings] == [("r1", 512.0)]  # type: ignore[union-attr]
    assert [l.reason for l in first.deadletters] == ["login-refused"]
    assert "nope" not in first.deadletters[0].model_dump_json()


def test_a_dropped_connection_is_retried_with_backoff_broken_service() -> None:
    with LocalRedfishService(drop_first=2) as flaky:
        ok = Targets.model_validate({"retries": 2, "backoff_seconds": 0.01, "endpoints": [
            {"name": "bmc-flaky", "url": flaky.url, "kind": "bmc", "racks": ["r1"]}]})
        with Collector(ok) as collector:
            cycle = collector.poll_once()
        assert cycle.unreachable == {} and cycle.report is not None and cycle.report.readings[0].power_watts == 512.0
    with LocalRedfishService(drop_first=10) as down:
        few = Targets.model_validate({"retries": 2, "backoff_seconds": 0.01, "endpoints": [
            {"name": "bmc-down", "url": down.url, "kind": "bmc", "racks": ["r1"]}]})
        with Collector(few) as collector:
            cycle = collector.poll_once()
        assert down.requests == 3  # the first try and two retries
    assert list(cycle.unreachable) == ["bmc-down"]
    assert cycle.report is not None and cycle.report.readings[0].unreachable_endpoints == ("bmc-down",)


def test_dmtf_redfish_utilities_reads_our_cdu_and_pdu_mockups(redfish: str) -> None:
    """DMTF's own tooling (redfish_utilities, the library of its rf_thermal_equipment.py and
    rf_power_equipment.py) walks our mockups and finds what we put there. (DMTF's service
    validator also runs offline, but without the DSP8010 schema bundle, downloaded from
    dmtf.org at run time, it validates no property; see README.)"""
    import redfish as dmtf
    from redfish_utilities import power_equipment as pe
    from redfish_utilities import thermal_equipment as te

    client = dmtf.redfish_client(redfish, "root", "x", max_retry=0)
    client.login(auth="basic")
    summary = te.get_thermal_equipment_summary(client)
    assert [(s["Id"], s["Health"]) for s in summary["CDUs"]] == [("1", "OK"), ("2", "Warning")]
    cdu = te.get_thermal_equipment(client, te.thermal_equipment_types.CDU, "2", get_secondary_connectors=True,
                                   get_pumps=True, get_filters=True, get_reservoirs=True, get_leak_detection=True,
                                   get_leak_detectors=True)
    body = lambda found: [r.dict for r in found]  # noqa: E731 - it hands back the library's responses
    assert [(p["Id"], p["Status"]["Health"]) for p in body(cdu["Pumps"])] == [("1", "OK"), ("2", "Critical")]
    assert [c["FlowLitersPerMinute"]["Reading"] for c in body(cdu["SecondaryCoolantConnectors"])] == [22.0, 21.5, 20.9]
    assert [d["DetectorState"] for d in body(cdu["LeakDetectors"])] == ["OK"]
    assert len(cdu["Filters"]) == 1 and len(cdu["Reservoirs"]) == 1
    pdu = pe.get_power_equipment(client, pe.power_equipment_types.RACK_PDU, "3", get_metrics=True, get_mains=True,
                                 get_branches=True, get_outlets=True)
    assert pdu["Metrics"] is None  # PDU 3 has none, as the collector's missing-resource test relies on
    assert [m["PowerWatts"]["Reading"] for m in body(pdu["Mains"])] == [4700.0]
    assert [o["PowerWatts"]["Reading"] for o in body(pdu["Outlets"])] == [2400.0, 2300.0]


def test_demo_with_redfish_polls_the_mockups_for_a_few_racks_and_exits_cleanly(tmp_path: Path) -> None:
    """`twin demo --redfish`: the racks of one row report through a real collector polling
    sushy-static; the rest of the fleet stays simulated; nothing is left running afterwards."""
    import os
    import time

    import psutil

    proc = subprocess.Popen([TWIN, "demo", "--racks", "40", "--duration", "35", "--redfish"],
                            env={**os.environ, "TWIN_STATE_DIR": str(tmp_path)}, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    children: list[psutil.Process] = []
    collected: list[tuple[Any, ...]] = []
    served = False
    deadline = time.monotonic() + 60
    while proc.poll() is None and time.monotonic() < deadline and not collected:
        children = psutil.Process(proc.pid).children(recursive=True) or children
        for child in children:
            try:
                served = served or "sushy-static" in " ".join(child.cmdline())
            except psutil.Error:
                pass
        stack = tmp_path / "demo" / "stack.json"
        if stack.exists():
            try:
                collected = query(json.loads(stack.read_text())["database_url"],
                                  "SELECT rack_id, power_watts FROM telemetry WHERE source = 'demo-redfish'"
                                  " AND power_watts = 6100.0")  # rack PDU 1 of our mockup
            except Exception:  # noqa: BLE001 - the database or its tables are still coming up
                pass
        time.sleep(1)
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode == 0, out
    assert collected, out
    assert "Redfish collector (sushy-static) reports racks" in out and "Traceback" not in out, out
    assert served, "no sushy-static under the demo"
    still = [p for p in children if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]
    assert not still, f"left behind: {still}"


def test_endpoints_in_flight_never_exceed_the_concurrency_and_a_silent_one_times_out_slow_service() -> None:
    with LocalRedfishService(delay=0.15) as slow, LocalRedfishService(delay=3.0) as silent:
        targets = Targets.model_validate({"concurrency": 2, "retries": 0, "endpoints": [
            *({"name": f"bmc-{i}", "url": slow.url, "kind": "bmc", "racks": [f"r{i}"]} for i in range(6)),
            {"name": "bmc-silent", "url": silent.url, "kind": "bmc", "racks": ["r-silent"], "timeout_seconds": 0.3}]})
        with Collector(targets) as collector:
            cycle = collector.poll_once()
        assert slow.most_in_flight == 2  # six endpoints, two at a time, never more
    assert "timed out" in cycle.unreachable["bmc-silent"]
    assert cycle.report is not None and len(cycle.report.readings) == 7
    assert cycle.seconds < 6  # the silent endpoint cost its timeout, not its 3 s answer per request


def test_a_busy_endpoint_is_retried_and_then_stale_not_dead_lettered_broken_service() -> None:
    with LocalRedfishService(status=503) as busy:
        targets = Targets.model_validate({"retries": 1, "backoff_seconds": 0.01, "endpoints": [
            {"name": "bmc-busy", "url": busy.url, "kind": "bmc", "racks": ["r1"]}]})
        with Collector(targets) as collector:
            cycle = collector.poll_once()
        assert busy.requests == 2  # the first try and one retry
    assert cycle.deadletters == [] and "busy (HTTP 503)" in cycle.unreachable["bmc-busy"]
    assert cycle.report is not None and cycle.report.readings[0].unreachable_endpoints == ("bmc-busy",)
