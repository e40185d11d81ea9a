"""`cooling-unit-degraded` on facts with time passed in: one alert per CDU (not per rack), its severity
from the CDU, the rack alerts it explains held back or not raised, and resolution when the CDU recovers."""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import yaml

from schemas import CoolingUnitStatus, Deviation
from twin.alerting.pagerduty import dedup_key
from twin.alerting.rules import (
    INHIBITIONS, AlertState, CooledRack, FleetFacts, Phase, RackFacts, advance, inhibited, observe,
)
from twin.domain.health import cooling_unit_reason

T0 = datetime(2026, 11, 1, 3, 0, tzinfo=timezone.utc)
ROOT = Path(__file__).resolve().parents[2]
PUMP = "pump Pump2 failed (Critical)"


def cdu(health: str = "critical", *reasons: str, cid: str = "cdu-7") -> CoolingUnitStatus:
    return CoolingUnitStatus(cooling_unit_id=cid, health=health, reasons=reasons)  # type: ignore[arg-type]


def flow(rack_id: str) -> Deviation:
    return Deviation(rack_id=rack_id, check="coolant-flow-out-of-range", severity="critical", measured=0.6,
                     allowed_min=1.0, allowed_max=2.0, unit="L/min/kW", generation="gb300", intent_revision=3)


def leak(rack_id: str) -> Deviation:
    return Deviation(rack_id=rack_id, check="leak-detected", severity="critical", measured="detected",
                     generation="gb300", intent_revision=3)


def fed(rack_id: str, view: CoolingUnitStatus | None, *, own: str | None = None, status: str = "active",
        deviations: tuple[Deviation, ...] = ()) -> RackFacts:
    """A rack fed by a CDU, its cooling health judged as twin.domain.health judges it from the CDU's view."""
    reasons = [r for r in (own, cooling_unit_reason(view) if view and view.health != "ok" else None) if r]
    health = "critical" if (own or (view and view.health == "critical")) else (
        "warning" if view and view.health == "warning" else "ok")
    return RackFacts(rack_id, "gb300", status, "fra-1", "hall-2", "own", telemetry_at=T0,
                     readings={"power_watts": 100_000.0, "coolant_flow_liters_per_minute": 60.0},
                     health={"cooling": health}, health_reasons={"cooling": "; ".join(reasons)},
                     deviations={d.check: d for d in deviations}, cooling_unit=view)


def scanned(racks: list[RackFacts]) -> FleetFacts:
    """What the fleet scan reads of these racks: those whose CDU is not ok."""
    return FleetFacts(cooled=[CooledRack(r.rack_id, r.cooling_unit, r.status, r.facility_id, r.hall_id, r.operator)
                              for r in racks if r.cooling_unit is not None and r.cooling_unit.health != "ok"])


class Run:
    def __init__(self) -> None:
        self.states: dict[str, AlertState] = {}
        self.transitions: list[tuple[float, str, str]] = []

    def at(self, seconds: float, racks: list[RackFacts], fleet: FleetFacts | None = None) -> None:
        now = T0 + timedelta(seconds=seconds)
        seen = observe(racks, scanned(racks) if fleet is None else fleet, self.states, now, stale_after_seconds=3600)
        changed, moved = advance(self.states, seen, now)
        self.states.update(changed)
        self.transitions += [(seconds, t.state.key, t.phase.value) for t in moved]

    def phases(self, key: str) -> list[str]:
        return [p for _, k, p in self.transitions if k == key]

    def live(self, prefix: str = "") -> dict[str, AlertState]:
        return {k: s for k, s in self.states.items() if s.live and k.startswith(prefix)}


CRITICAL = "cooling-unit-degraded/cdu-7/critical"
WARNING = "cooling-unit-degraded/cdu-7/warning"


def test_a_critical_cdu_feeding_twelve_racks_is_one_alert_naming_it_and_its_racks() -> None:
    racks = [fed(f"r-{i:02d}", cdu("critical", PUMP)) for i in range(12)]
    run = Run()
    run.at(0, racks)
    assert list(run.live("cooling-unit-degraded/")) == [CRITICAL]
    alert = run.states[CRITICAL]
    assert alert.phase is Phase.FIRING and alert.value == 12.0
    assert alert.labels["cooling_unit"] == "cdu-7" and alert.labels["severity"] == "critical"
    assert alert.labels["facility"] == "fra-1" and alert.labels["hall"] == "hall-2"
    assert alert.labels["scope"] == "cooling-unit" and alert.labels["owner"] == "cooling"
    summary = alert.annotations["summary"]
    assert summary.startswith("CDU cdu-7 (fra-1/hall-2) is critical: pump Pump2 failed (Critical)")
    assert "feeds 12 rack(s): r-00, r-01" in summary and "r-09, … (+2 more)" in summary and "r-10" not in summary
    assert "r-11" in alert.annotations["description"]
    assert alert.annotations["runbook_url"] == "docs/runbooks/cooling-unit-degraded.md"
    # the racks' cooling is critical only because of the CDU: no rack cooling-health page besides the CDU's
    assert not run.live("rack-")


def test_the_rack_coolant_alerts_it_explains_are_inhibited_and_a_leak_is_not() -> None:
    racks = [fed("r-1", cdu("critical", PUMP), deviations=(flow("r-1"), leak("r-1"))),
             fed("r-2", cdu("critical", PUMP)),
             fed("r-9", cdu("ok", cid="cdu-8"), deviations=(flow("r-9"),))]
    run = Run()
    run.at(0, racks)
    firing = [s.labels for s in run.states.values() if s.phase is Phase.FIRING]
    explained = run.states["rack-coolant-flow-out-of-range/r-1"].labels
    assert explained["cooling_unit"] == "cdu-7"
    assert inhibited(explained, firing) == "cooling-unit-degraded"
    assert inhibited(run.states["rack-leak-detected/r-1"].labels, firing) is None, "a leak at the rack still pages"
    other = run.states["rack-coolant-flow-out-of-range/r-9"].labels
    assert other["cooling_unit"] == "cdu-8" and inhibited(other, firing) is None, "another CDU's rack still pages"


def test_a_rack_with_a_cooling_fault_of_its_own_keeps_its_health_alert() -> None:
    racks = [fed("r-1", cdu("critical", PUMP), own="fans at 100 % or more in all 3 readings"),
             fed("r-2", cdu("critical", PUMP))]
    run = Run()
    run.at(0, racks)
    assert set(run.live("rack-")) == {"rack-cooling-health-critical/r-1"}


def test_warning_then_failed_pump_then_warning_then_ok_is_one_live_alert_at_a_time() -> None:
    def racks(view: CoolingUnitStatus) -> list[RackFacts]:
        return [fed(f"r-{i}", view) for i in range(3)]

    run = Run()
    run.at(0, racks(cdu("warning", "filter Filter1 warning")))
    assert list(run.live("cooling-unit-degraded/")) == [WARNING]
    assert run.states[WARNING].labels["severity"] == "warning"
    run.at(10, racks(cdu("critical", PUMP)))
    assert list(run.live("cooling-unit-degraded/")) == [CRITICAL], "escalated: the warning resolves"
    run.at(20, racks(cdu("warning", "filter Filter1 warning")))  # not below the lower threshold: still critical
    assert list(run.live("cooling-unit-degraded/")) == [CRITICAL]
    assert "clears once the CDU is ok" in run.states[CRITICAL].annotations["summary"]
    run.at(30, racks(cdu("ok")))
    assert not run.live("cooling-unit-degraded/")
    assert run.phases(WARNING) == ["firing", "resolved"]
    assert run.phases(CRITICAL) == ["firing", "resolved"]
    assert [s for s, k, p in run.transitions if k == CRITICAL and p == "resolved"] == [30]


def test_racks_read_this_tick_are_fresher_than_the_fleet_scan() -> None:
    degraded = [fed(f"r-{i}", cdu("critical", PUMP)) for i in range(4)]
    run = Run()
    run.at(0, degraded[:1], scanned([]))  # the scan has not seen it yet; a rack read this tick has
    assert list(run.live("cooling-unit-degraded/")) == [CRITICAL]
    run.at(5, degraded[:1], scanned(degraded))
    assert run.states[CRITICAL].value == 4.0
    recovered = [fed(f"r-{i}", cdu("ok")) for i in range(4)]
    run.at(6, recovered, scanned(degraded))  # the scan is 5 s old: the racks read now say ok
    assert run.phases(CRITICAL) == ["firing", "resolved"]


def test_a_cdu_whose_racks_are_all_in_maintenance_does_not_page() -> None:
    run = Run()
    run.at(0, [fed(f"r-{i}", cdu("critical", PUMP), status="maintenance") for i in range(3)])
    assert run.phases(CRITICAL) == ["suppressed"]
    run.at(5, [fed("r-0", cdu("critical", PUMP)), *(fed(f"r-{i}", cdu("critical", PUMP), status="maintenance")
                                                    for i in (1, 2))])
    assert run.phases(CRITICAL) == ["suppressed", "firing"], "a rack back in service makes it a page"


def test_pagerduty_keeps_a_cdus_warning_and_critical_apart() -> None:
    labels = {"alertname": "cooling-unit-degraded", "scope": "cooling-unit", "cooling_unit": "cdu-7",
              "facility": "fra-1", "hall": "hall-2"}
    assert dedup_key({**labels, "severity": "warning"}) == "cdu-7/warning/cooling-unit-degraded"
    assert dedup_key({**labels, "severity": "critical"}) != dedup_key({**labels, "severity": "warning"})
    assert dedup_key({**labels, "cooling_unit": "cdu-8", "severity": "critical"}) == \
        "cdu-8/critical/cooling-unit-degraded"


_MATCHER = re.compile(r'^(\w+)(=~|!~|!=|=)"(.*)"$')


def _matches(matchers: list[str], labels: dict[str, str]) -> bool:
    for text in matchers:
        found = _MATCHER.match(text)
        assert found, f"unparsed matcher {text}"
        name, op, value = found.groups()
        got = labels.get(name, "")
        ok = {"=": got == value, "!=": got != value, "=~": re.fullmatch(value, got) is not None,
              "!~": re.fullmatch(value, got) is None}[op]
        if not ok:
            return False
    return True


def test_the_alertmanager_inhibit_rules_cover_what_the_pagerduty_path_holds_back() -> None:
    """INHIBITIONS (for senders without Alertmanager) and the deploy config's inhibit rules say the same."""
    config: dict[str, Any] = yaml.safe_load((ROOT / "deploy" / "alertmanager" / "alertmanager.yml").read_text())
    rules = config["inhibit_rules"]
    for source, target, equal in INHIBITIONS:
        assert any(_matches(r["source_matchers"], {"alertname": source})
                   and _matches(r["target_matchers"], dict(target)) and set(equal) <= set(r["equal"])
                   for r in rules), (source, target, equal)
    cdu_rule = next(r for r in rules if _matches(r["source_matchers"], {"alertname": "cooling-unit-degraded"}))
    for name in ("rack-leak-detected", "rack-inlet-temperature-out-of-envelope", "rack-cooling-over-capacity"):
        assert not _matches(cdu_rule["target_matchers"], {"scope": "rack", "alertname": name}), name
