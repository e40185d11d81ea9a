"""Alerting against a real Alertmanager (the deploy config), the real twin database and broker.

The twin's current state (rack_state, deviations) is what the workers commit; here each test
writes it directly, as a worker would, so that a test is about the alerting and takes seconds.
bench/alerts.py measures the whole path from a telemetry event through a worker to the webhook.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta, timezone
from typing import Any

import orjson
import psycopg
import pytest
from kafka import KafkaConsumer, TopicPartition

from alertmanager_fixtures import (  # the session's Alertmanager and webhook fixtures come in with the import
    DEPLOY_CONFIG,
    RunningAlertmanager,
    Webhook,
    alertmanager,  # noqa: F401
    amtool_binary,
    webhook,  # noqa: F401
)
from conftest import Tenant
from twin.alerting.engine import Engine
from twin.alerting.settings import AlertingSettings

pytestmark = pytest.mark.integration

STALE_SECONDS = 3600.0  # no rack goes stale by accident while a test runs
QUIET_SECONDS = 3.0
"""How long to watch for a notification that must not come: group_wait (1 s) and two group intervals (1 s) past a tick."""


def now() -> datetime:
    return datetime.now(timezone.utc)


class TwinDb:
    """The twin's current state, written as the workers write it."""

    def __init__(self, tenant: Tenant) -> None:
        self.conn = psycopg.connect(tenant.database_url, autocommit=True)
        self.token = tenant.name[-6:]

    def facility(self, name: str, halls: int = 1, hall_watts: float = 10e6) -> str:
        fid = f"{name}-{self.token}"
        self.conn.execute("INSERT INTO facilities VALUES (%s, %s, 'own', 'us', 'eu', now())", (fid, fid))
        for h in range(1, halls + 1):
            self.conn.execute("INSERT INTO halls VALUES (%s, %s, %s, %s)", (fid, f"h{h}", hall_watts, hall_watts))
        return fid

    def racks(self, facility: str, generation: str, n: int, *, status: str = "active", hall: str = "h1",
              prefix: str = "r") -> list[str]:
        ids = [f"{prefix}{i}-{self.token}" for i in range(n)]
        for rack_id in ids:  # rack_state is a view of the lifecycle path's table and the telemetry path's
            self.conn.execute("INSERT INTO rack_lifecycle (rack_id, generation, status, facility_id, hall_id)"
                              " VALUES (%s, %s, %s, %s, %s)", (rack_id, generation, status, facility, hall))
            self.conn.execute(
                "INSERT INTO rack_telemetry (rack_id, telemetry_at, power_watts, inlet_temperature_celsius,"
                " coolant_flow_liters_per_minute, network_links_down, health) VALUES (%s, now(), 100000, 24, 150, 0,"
                " '{}')", (rack_id,))
        return ids

    def deviate(self, rack_id: str, check: str, measured: float | str, lo: float | None, hi: float | None,
                unit: str | None, *, severity: str = "warning", generation: str) -> None:
        self.conn.execute(
            "INSERT INTO deviations (rack_id, check_name, severity, measured, allowed_min, allowed_max, unit,"
            " generation, intent_revision, since) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, 3, now())"
            " ON CONFLICT (rack_id, check_name) DO UPDATE SET measured = excluded.measured",
            (rack_id, check, severity, str(measured), lo, hi, unit, generation))

    def recover(self, rack_id: str, check: str, **readings: float) -> None:
        """The deviation goes and the readings change in one transaction, as a worker commits a batch."""
        with self.conn.transaction():
            self.conn.execute("DELETE FROM deviations WHERE rack_id = %s AND check_name = %s", (rack_id, check))
            self.set(rack_id, **readings)

    def set(self, rack_id: str, **columns: Any) -> None:
        for column, value in columns.items():
            table = "rack_lifecycle" if column in ("status", "generation", "facility_id", "hall_id") else "rack_telemetry"
            self.conn.execute(f"UPDATE {table} SET {column} = %s WHERE rack_id = %s", (value, rack_id))

    def history(self, key_prefix: str) -> list[tuple[str, str]]:
        return [(k, p) for k, p in self.conn.execute(
            "SELECT alert_key, phase FROM alert_history WHERE alert_key LIKE %s ORDER BY id", (key_prefix + "%",))]


@pytest.fixture
def db(tenant: Tenant) -> Iterator[TwinDb]:
    twin = TwinDb(tenant)
    yield twin
    twin.conn.close()


def _settings(alertmanager: RunningAlertmanager, **overrides: Any) -> AlertingSettings:
    return AlertingSettings(alertmanager_url=alertmanager.url, alert_eval_seconds=0.2, alert_for_scale=0.0,
                            **overrides)


class RunningEngine:
    """An in-process engine on a tenant's database (a thread of the test)."""

    def __init__(self, tenant: Tenant, settings: AlertingSettings) -> None:
        self.engine = Engine(tenant.database_url, settings, stale_after_seconds=STALE_SECONDS,
                             kafka_bootstrap=tenant.kafka_bootstrap, alerts_topic=tenant.topics.alerts)
        self.stop_event, active = threading.Event(), threading.Event()
        self.thread = threading.Thread(target=self.engine.run, args=(self.stop_event,),
                                       kwargs={"on_active": active.set}, daemon=True)
        self.thread.start()
        assert active.wait(15), "the engine did not become active"

    def stop(self) -> None:
        self.stop_event.set()
        self.thread.join(10)


@pytest.fixture
def engine(tenant: Tenant, alertmanager: RunningAlertmanager) -> Iterator[Callable[..., RunningEngine]]:
    """Start in-process engines on the tenant's database (settings overridable), stopped at the end."""
    running: list[RunningEngine] = []

    def start(**overrides: Any) -> RunningEngine:
        running.append(RunningEngine(tenant, _settings(alertmanager, **overrides)))
        return running[-1]

    yield start
    for e in running:
        e.stop()


def test_amtool_accepts_the_deploy_config() -> None:
    result = subprocess.run([amtool_binary(), "check-config", str(DEPLOY_CONFIG)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "5 inhibit rules" in result.stdout


def test_alerts_fire_grouped_and_resolve_only_below_the_lower_threshold(
        db: TwinDb, engine: Callable[..., RunningEngine], webhook: Webhook, tenant: Tenant) -> None:
    fac = db.facility("fra")
    gen = f"gen-{db.token}"
    hot = db.racks(fac, gen, 20)[:2]
    for rack_id in hot:
        db.set(rack_id, inlet_temperature_celsius=29.5)
        db.deviate(rack_id, "inlet-temperature-out-of-envelope", 29.5, 18, 27, "°C", generation=gen)
    engine()

    firing = webhook.wait_for(lambda: webhook.about(alertname="rack-inlet-temperature-out-of-envelope",
                                                    facility=fac))
    assert len(firing) == 1, "two racks of one hall failing one rule are one notification"
    note = firing[0]
    assert note.receiver == "fleet-ops" and note.body["status"] == "firing"
    assert sorted(a["labels"]["rack"] for a in note.alerts) == sorted(hot)
    alert = note.alerts[0]
    assert {"facility", "hall", "generation", "subsystem", "owner"} <= set(note.body["groupLabels"])
    assert "measured 29.5 °C" in alert["annotations"]["summary"]
    assert "18 to 27 °C" in alert["annotations"]["summary"] and "intent revision 3" in alert["annotations"]["summary"]
    assert alert["annotations"]["runbook_url"] == "docs/runbooks/rack-inlet-temperature-out-of-envelope.md"
    assert f"var-rack={alert['labels']['rack']}" in alert["annotations"]["dashboard_url"]

    for rack_id in hot:  # back inside the band, not below the lower threshold (27 - 1 °C): still firing
        db.recover(rack_id, "inlet-temperature-out-of-envelope", inlet_temperature_celsius=26.5)
    time.sleep(QUIET_SECONDS)
    assert not webhook.alerts("resolved", facility=fac)
    for rack_id in hot:
        db.set(rack_id, inlet_temperature_celsius=24.0)
    resolved = webhook.wait_for(lambda: [n for n in webhook.about(facility=fac) if n.body["status"] == "resolved"])
    assert len(resolved) == 1 and sorted(a["labels"]["rack"] for a in resolved[0].alerts) == sorted(hot)

    assert db.history(f"rack-inlet-temperature-out-of-envelope/{hot[0]}") == [
        (f"rack-inlet-temperature-out-of-envelope/{hot[0]}", "firing"),
        (f"rack-inlet-temperature-out-of-envelope/{hot[0]}", "resolved")]
    published = _published(tenant, expect=4)
    assert sorted((e["alert"]["labels"]["rack"], e["state"]) for e in published) == sorted(
        (r, s) for r in hot for s in ("firing", "resolved"))


def _published(tenant: Tenant, expect: int, timeout: float = 10) -> list[dict[str, Any]]:
    consumer = KafkaConsumer(bootstrap_servers=tenant.kafka_bootstrap, enable_auto_commit=False,
                             consumer_timeout_ms=500)
    tp = TopicPartition(tenant.topics.alerts, 0)
    consumer.assign([tp])
    consumer.seek_to_beginning(tp)
    found: list[dict[str, Any]] = []
    deadline = time.monotonic() + timeout
    try:
        while len(found) < expect and time.monotonic() < deadline:
            for batch in consumer.poll(timeout_ms=500).values():
                found += [orjson.loads(m.value) for m in batch]
    finally:
        consumer.close()
    return found


def _spawn_engine(tenant: Tenant, alertmanager: RunningAlertmanager) -> subprocess.Popen[str]:
    env = {**tenant.env, "TWIN_ALERTMANAGER_URL": alertmanager.url, "TWIN_ALERT_EVAL_SECONDS": "0.2",
           "TWIN_ALERT_FOR_SCALE": "0", "TWIN_ALERT_RESEND_SECONDS": "3",  # endsAt 12 s ahead: outlives a take-over
           "TWIN_TELEMETRY_STALE_SECONDS": str(STALE_SECONDS), "TWIN_LOG_LEVEL": "warning"}
    return subprocess.Popen([sys.executable, "-c", "from twin.cli import app; app()", "alerts", "run"], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _wait_active(process: subprocess.Popen[str], timeout: float = 30) -> None:
    result: list[str] = []

    def read() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            if "alert engine active" in line:
                result.append(line)
                return

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    reader.join(timeout)
    assert result, f"engine {process.pid} did not become active within {timeout} s"


def test_an_engine_killed_and_taken_over_pages_once(
        db: TwinDb, tenant: Tenant, alertmanager: RunningAlertmanager, webhook: Webhook) -> None:
    fac = db.facility("ams")
    gen = f"gen-{db.token}"
    (leaky,) = db.racks(fac, gen, 1)
    first = _spawn_engine(tenant, alertmanager)
    standby: subprocess.Popen[str] | None = None
    try:
        _wait_active(first)
        standby = _spawn_engine(tenant, alertmanager)
        time.sleep(1.0)
        assert standby.poll() is None
        db.deviate(leaky, "leak-detected", "detected", None, None, None, severity="critical", generation=gen)
        assert webhook.wait_for(lambda: webhook.alerts("firing", rack=leaky))
        first.kill()  # SIGKILL: no goodbye; the standby takes the lock once the database sees the connection gone
        first.wait(10)
        _wait_active(standby)
        time.sleep(QUIET_SECONDS + 2)  # the new engine re-sends the firing alert (every 3 s): no new page
        pages = webhook.alerts("firing", rack=leaky)
        assert len(pages) == 1, [n.body["status"] for n, _ in pages]
        assert pages[0][0].receiver == "oncall-facilities"
        db.recover(leaky, "leak-detected")
        assert webhook.wait_for(lambda: webhook.alerts("resolved", rack=leaky))
        assert db.history(f"rack-leak-detected/{leaky}") == [
            (f"rack-leak-detected/{leaky}", "firing"), (f"rack-leak-detected/{leaky}", "resolved")]
    finally:
        for p in (first, standby):
            if p is not None and p.poll() is None:
                p.terminate()
                try:
                    p.wait(10)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait()


def test_racks_in_maintenance_do_not_page_for_what_their_stage_explains(
        db: TwinDb, engine: Callable[..., RunningEngine], webhook: Webhook, tenant: Tenant) -> None:
    fac = db.facility("par")
    gen = f"gen-{db.token}"
    (working,) = db.racks(fac, gen, 1, prefix="active")
    serviced, leaking = db.racks(fac, gen, 2, status="maintenance", prefix="maint")
    for rack_id in (working, serviced):
        db.deviate(rack_id, "network-links-down", 4, 0, 0, "links", generation=gen)
    db.deviate(leaking, "leak-detected", "detected", None, None, None, severity="critical", generation=gen)
    engine()

    assert webhook.wait_for(lambda: webhook.alerts("firing", rack=working, alertname="rack-network-links-down"))
    assert webhook.wait_for(lambda: webhook.alerts("firing", rack=leaking, alertname="rack-leak-detected")), \
        "a leak pages even in maintenance"
    time.sleep(QUIET_SECONDS)
    assert webhook.about(rack=serviced) == []
    phase = db.conn.execute("SELECT phase FROM alert_state WHERE alert_key = %s",
                            (f"rack-network-links-down/{serviced}",)).fetchone()
    assert phase == ("suppressed",)

    env = {**tenant.env, "COLUMNS": "250"}
    firing = _twin(["alerts"], env=env)
    assert working in firing and leaking in firing and serviced not in firing
    assert serviced in _twin(["alerts", "--all"], env=env)
    history = _twin(["alerts", "history", serviced], env=env)
    assert "rack-network-links-down" in history and "suppressed" in history and "not a page" in history


def test_a_generation_wide_alert_inhibits_the_rack_alerts_it_explains(
        db: TwinDb, engine: Callable[..., RunningEngine], webhook: Webhook, alertmanager: RunningAlertmanager) -> None:
    fac = db.facility("lon", halls=2)
    gen, other = f"gen-{db.token}", f"other-{db.token}"
    drifting = db.racks(fac, gen, 10)[:5]
    (lone,) = db.racks(fac, other, 1, hall="h2", prefix="o")
    db.racks(fac, other, 19, hall="h2", prefix="p")
    for rack_id in (*drifting, lone):
        db.deviate(rack_id, "coolant-flow-out-of-range", 0.6, 1.0, 2.0, "L/min/kW", severity="critical",
                   generation=gen if rack_id != lone else other)
    engine()

    design = webhook.wait_for(lambda: webhook.about(alertname="generation-deviation-drift", generation=gen))
    assert design and design[0].receiver == "design-team"
    assert "5 of 10 racks" in design[0].alerts[0]["annotations"]["summary"]
    assert webhook.wait_for(lambda: webhook.alerts("firing", rack=lone)), "another generation's rack still pages"
    time.sleep(QUIET_SECONDS)
    assert webhook.alerts(generation=gen, scope="rack") == []
    held = [a for a in alertmanager.api(f"/alerts?filter=generation%3D%22{gen}%22") if a["labels"]["scope"] == "rack"]
    assert len(held) == 5
    assert all(a["status"]["state"] == "suppressed" and a["status"]["inhibitedBy"] for a in held)


def _twin(args: list[str], alertmanager: RunningAlertmanager | None = None, env: dict[str, str] | None = None
          ) -> str:
    """Run the `twin` CLI as a user would; its stdout."""
    env = {**(env or os.environ), **({"TWIN_ALERTMANAGER_URL": alertmanager.url} if alertmanager else {})}
    result = subprocess.run([sys.executable, "-c", "from twin.cli import app; app()", *args], env=env,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def test_a_silence_on_a_rack_mutes_it_until_it_is_expired(
        db: TwinDb, engine: Callable[..., RunningEngine], webhook: Webhook, alertmanager: RunningAlertmanager) -> None:
    fac = db.facility("mad")
    gen = f"gen-{db.token}"
    quiet, loud = db.racks(fac, gen, 20)[:2]
    out = _twin(["silence", "create", "--rack", quiet, "--for", "1h", "--comment", "replacing the CDU pump"],
                alertmanager)
    silence_id = out.strip().splitlines()[-1]
    assert silence_id in _twin(["silence", "list"], alertmanager)
    for rack_id in (quiet, loud):
        db.deviate(rack_id, "inlet-temperature-out-of-envelope", 30, 18, 27, "°C", generation=gen)
    engine()

    assert webhook.wait_for(lambda: webhook.alerts("firing", rack=loud))
    time.sleep(QUIET_SECONDS)
    assert webhook.alerts(rack=quiet) == []
    _twin(["silence", "expire", silence_id], alertmanager)
    assert webhook.wait_for(lambda: webhook.alerts("firing", rack=quiet), timeout=10), \
        "once the silence is expired, the rack pages"
    assert silence_id not in _twin(["silence", "list"], alertmanager)


def test_the_demo_shows_alerts_firing_and_resolving(tmp_path: Any, alertmanager: RunningAlertmanager) -> None:
    """`twin demo` (fault injection on, its drill of transient leaks) in its line-per-5-s mode."""
    env = {**os.environ, "TWIN_STATE_DIR": str(tmp_path)}
    result = subprocess.run([sys.executable, "-c", "from twin.cli import app; app()", "demo", "--racks", "120",
                             "--duration", "55"], env=env, capture_output=True, text=True, timeout=180)
    assert result.returncode == 0, result.stdout + result.stderr
    lines = [line for line in result.stdout.splitlines() if "alerts firing=" in line]
    assert lines, result.stdout
    firing = [int(m) for line in lines for m in re.findall(r"alerts firing=(\d+)", line)]
    resolved = [int(m) for line in lines for m in re.findall(r"resolved\(latest 8\)=(\d+)", line)]
    pages = [tuple(map(int, m)) for line in lines for m in re.findall(r"pages=(\d+)/(\d+)", line)]
    assert max(firing) > 0 and max(resolved) > 0, "\n".join(lines)
    assert pages and pages[-1][0] > 0 and pages[-1][1] > 0, "Alertmanager notified firing and resolved alerts"


def test_pagerduty_is_triggered_once_per_rack_and_rule_resolved_and_held_back_by_a_fleet_alert(
        db: TwinDb, engine: Callable[..., RunningEngine], webhook: Webhook) -> None:
    """PagerDuty's Events API cannot run here: the test's webhook stands in for it (fake receiver)."""
    path = f"pagerduty-{db.token}"
    fac = db.facility("waw", halls=2)
    gen, other = f"gen-{db.token}", f"other-{db.token}"
    (leaky,) = db.racks(fac, other, 1, hall="h2", prefix="leak")
    db.racks(fac, other, 19, hall="h2", prefix="o")
    drifting = db.racks(fac, gen, 10)[:4]
    db.deviate(leaky, "leak-detected", "detected", None, None, None, severity="critical", generation=other)
    for rack_id in drifting:
        db.deviate(rack_id, "coolant-flow-out-of-range", 0.6, 1.0, 2.0, "L/min/kW", severity="critical",
                   generation=gen)
    settings = {"pagerduty_routing_key": "ROUTING-KEY", "pagerduty_url": f"{webhook.url}/{path}"}
    first = engine(**settings)

    def events(action: str) -> list[dict[str, Any]]:
        with webhook.lock:
            return [n.body for n in webhook.received if n.receiver == path and n.body["event_action"] == action]

    assert webhook.wait_for(lambda: len(events("trigger")) >= 2)
    first.stop()
    engine(**settings)  # a restarted engine: the history says both were paged
    time.sleep(QUIET_SECONDS)
    keys = sorted(e["dedup_key"] for e in events("trigger"))
    assert keys == sorted([f"{leaky}/rack-leak-detected",
                           f"{gen}/coolant-flow-out-of-range/generation-deviation-drift"])
    assert all(e["routing_key"] == "ROUTING-KEY" for e in events("trigger"))
    db.recover(leaky, "leak-detected")
    assert webhook.wait_for(lambda: [e for e in events("resolve") if e["dedup_key"] == f"{leaky}/rack-leak-detected"])


def test_a_collector_outage_is_one_facility_alert_that_holds_back_its_racks_stale_alerts(
        db: TwinDb, engine: Callable[..., RunningEngine], webhook: Webhook, alertmanager: RunningAlertmanager) -> None:
    fac, other = db.facility("sin"), db.facility("syd")
    gen = f"gen-{db.token}"
    silent = db.racks(fac, gen, 4)
    (lone,) = db.racks(other, gen, 1, prefix="lone")
    db.racks(other, gen, 9, prefix="ok")
    for rack_id in (*silent, lone):
        db.set(rack_id, telemetry_at=now() - timedelta(seconds=2 * STALE_SECONDS))
    engine()

    outage = webhook.wait_for(lambda: webhook.about(alertname="facility-telemetry-stale", facility=fac))
    assert outage and outage[0].receiver == "oncall-observability"
    assert "4 of 4 powered racks" in outage[0].alerts[0]["annotations"]["summary"]
    assert webhook.wait_for(lambda: webhook.alerts("firing", rack=lone, alertname="rack-telemetry-stale")), \
        "one stale rack of ten is the rack's own alert"
    time.sleep(QUIET_SECONDS)
    assert webhook.alerts(facility=fac, alertname="rack-telemetry-stale") == []
    held = alertmanager.api(f"/alerts?filter=facility%3D%22{fac}%22&filter=alertname%3D%22rack-telemetry-stale%22")
    assert len(held) == 4 and all(a["status"]["state"] == "suppressed" for a in held)


def _cdu_health(cdu: str, state: str, *reasons: str) -> str:
    """A rack's stored health (the workers' `RackHealth.as_dict`) while its CDU is in `state`."""
    from schemas import CoolingUnitStatus
    from twin.domain.health import cooling_unit_reason

    view = CoolingUnitStatus(cooling_unit_id=cdu, health=state, reasons=reasons)  # type: ignore[arg-type]
    cooling = {"state": "ok", "reason": ""} if state == "ok" else {"state": state, "reason": cooling_unit_reason(view)}
    ok = {"state": "ok", "reason": ""}
    return orjson.dumps({"overall": cooling["state"], "stale": False, "readings": 10, "power": ok, "compute": ok,
                         "network": ok, "cooling": cooling, "cooling_unit": view.model_dump(mode="json")}).decode()


def test_a_cdu_with_a_failed_pump_is_one_alert_that_holds_back_its_racks_and_resolves_when_it_recovers(
        db: TwinDb, engine: Callable[..., RunningEngine], webhook: Webhook, alertmanager: RunningAlertmanager) -> None:
    fac = db.facility("cph")
    gen = f"gen-{db.token}"
    cdu, other = f"cdu-{db.token}", f"cdu2-{db.token}"
    fed = db.racks(fac, gen, 12, prefix="c")
    (elsewhere,) = db.racks(fac, gen, 1, prefix="e")
    db.racks(fac, gen, 17, prefix="p")  # 3 of 30 racks deviating on flow: not a generation-wide pattern
    pump = "pump Pump2 failed (Critical)"
    for rack_id in fed:
        db.set(rack_id, health=_cdu_health(cdu, "critical", pump))
    db.set(elsewhere, health=_cdu_health(other, "ok"))
    for rack_id in (*fed[:2], elsewhere):  # the pump's loss shows as low flow on the racks' own readings too
        db.deviate(rack_id, "coolant-flow-out-of-range", 0.6, 1.0, 2.0, "L/min/kW", severity="critical",
                   generation=gen)
    engine()

    page = webhook.wait_for(lambda: webhook.alerts("firing", alertname="cooling-unit-degraded", cooling_unit=cdu))
    assert len(page) == 1, "one alert for the CDU, not one per rack"
    note, alert = page[0]
    assert note.receiver == "oncall-facilities"
    assert alert["labels"]["severity"] == "critical" and alert["labels"]["facility"] == fac
    assert alert["labels"]["hall"] == "h1"
    summary = alert["annotations"]["summary"]
    assert f"CDU {cdu} ({fac}/h1) is critical: {pump}" in summary and "feeds 12 rack(s)" in summary
    assert "(+2 more)" in summary
    assert webhook.wait_for(lambda: webhook.alerts("firing", rack=elsewhere)), "a rack of another CDU still pages"
    time.sleep(QUIET_SECONDS)
    assert webhook.alerts(scope="rack", cooling_unit=cdu) == [], "the racks the CDU feeds do not page"
    assert not [r for r in fed if webhook.alerts(rack=r)]
    in_am = alertmanager.api(f"/alerts?filter=cooling_unit%3D%22{cdu}%22")
    cdu_alerts = [a for a in in_am if a["labels"]["alertname"] == "cooling-unit-degraded"]
    assert len(cdu_alerts) == 1 and cdu_alerts[0]["status"]["state"] == "active"
    held = [a for a in in_am if a["labels"]["scope"] == "rack"]
    assert sorted(a["labels"]["rack"] for a in held) == sorted(fed[:2])
    assert all(a["status"]["state"] == "suppressed" and a["status"]["inhibitedBy"] for a in held)
    raised = {k for k, in db.conn.execute("SELECT alert_key FROM alert_state WHERE rack_id = ANY(%s)", (fed,))}
    assert raised == {f"rack-coolant-flow-out-of-range/{r}" for r in fed[:2]}, \
        "a rack degraded only by its CDU raises no cooling health alert of its own"

    for rack_id in fed:  # the pump is back, the filter still warns: the critical holds (no resolve yet)
        db.set(rack_id, health=_cdu_health(cdu, "warning", "filter Filter1 Warning"))
    time.sleep(QUIET_SECONDS)
    assert not webhook.alerts("resolved", alertname="cooling-unit-degraded", cooling_unit=cdu)
    for rack_id in fed:
        db.set(rack_id, health=_cdu_health(cdu, "ok"))
    for rack_id in fed[:2]:
        db.recover(rack_id, "coolant-flow-out-of-range", coolant_flow_liters_per_minute=150.0)
    assert webhook.wait_for(lambda: webhook.alerts("resolved", alertname="cooling-unit-degraded", cooling_unit=cdu))
    assert db.history(f"cooling-unit-degraded/{cdu}/") == [(f"cooling-unit-degraded/{cdu}/critical", "firing"),
                                                            (f"cooling-unit-degraded/{cdu}/critical", "resolved")]
    time.sleep(QUIET_SECONDS)
    assert not [r for r in fed if webhook.alerts(rack=r)], "their flow alerts resolved without ever paging"
