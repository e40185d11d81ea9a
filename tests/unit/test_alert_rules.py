"""Alert rules with time passed in: for-durations, hysteresis, stage suppression, fleet rules, inhibition."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path

from schemas import Deviation
from twin.alerting.rules import (
    RULES, AlertState, FacilityReporting, FleetFacts, GenerationCount, HallLoad, Phase, RackFacts, advance,
    inhibited, observe,
)

T0 = datetime(2026, 11, 1, 3, 0, tzinfo=timezone.utc)
ROOT = Path(__file__).resolve().parents[2]


def inlet(rack: str, value: float, severity: str = "warning", generation: str = "gb300") -> Deviation:
    return Deviation(rack_id=rack, check="inlet-temperature-out-of-envelope", severity=severity,  # type: ignore[arg-type]
                     measured=value, allowed_min=18.0, allowed_max=27.0, unit="°C", generation=generation,
                     intent_revision=3)


def rack(rack_id: str = "r-1", *, inlet_c: float = 24.0, deviating: bool = False, status: str = "active",
         at: datetime = T0, generation: str = "gb300", facility: str = "fac-a") -> RackFacts:
    devs = {"inlet-temperature-out-of-envelope": inlet(rack_id, inlet_c, generation=generation)} if deviating else {}
    return RackFacts(rack_id, generation, status, facility, "hall-1", "own", telemetry_at=at,
                     readings={"inlet_temperature_celsius": inlet_c, "power_watts": 100_000.0}, deviations=devs)


class Run:
    """Feed snapshots to the rules at given instants, keeping the stored states as the engine does."""

    def __init__(self) -> None:
        self.states: dict[str, AlertState] = {}
        self.transitions: list[tuple[float, str, str]] = []

    def at(self, seconds: float, racks: list[RackFacts], fleet: FleetFacts = FleetFacts()) -> None:
        now = T0 + timedelta(seconds=seconds)
        seen = observe(racks, fleet, self.states, now, stale_after_seconds=30)
        changed, moved = advance(self.states, seen, now)
        self.states.update(changed)
        self.transitions += [(seconds, t.state.key, t.phase.value) for t in moved]

    def phases(self, key: str) -> list[str]:
        return [p for _, k, p in self.transitions if k == key]


KEY = "rack-inlet-temperature-out-of-envelope/r-1"


def test_a_deviation_shorter_than_the_for_duration_never_fires() -> None:
    run = Run()
    run.at(0, [rack(inlet_c=29, deviating=True)])
    run.at(30, [rack(inlet_c=29, deviating=True)])
    run.at(40, [rack(inlet_c=24)])
    assert run.phases(KEY) == ["pending", "cancelled"]


def test_a_deviation_held_for_the_for_duration_fires_once() -> None:
    run = Run()
    for s in range(0, 200, 10):
        run.at(s, [rack(inlet_c=29, deviating=True)])
    assert run.phases(KEY) == ["pending", "firing"]
    assert [s for s, k, p in run.transitions if k == KEY and p == "firing"] == [60]
    fired = run.states[KEY]
    assert fired.labels["facility"] == "fac-a" and fired.labels["generation"] == "gb300"
    assert fired.labels["owner"] == "cooling" and fired.labels["subsystem"] == "cooling"
    summary = fired.annotations["summary"]
    assert "measured 29 °C" in summary and "18 to 27 °C" in summary and "intent revision 3" in summary
    assert fired.annotations["runbook_url"] == "docs/runbooks/rack-inlet-temperature-out-of-envelope.md"
    assert "var-rack=r-1" in fired.annotations["dashboard_url"]


def test_hysteresis_keeps_firing_until_the_value_is_below_the_lower_threshold() -> None:
    run = Run()
    run.at(0, [rack(inlet_c=29, deviating=True)])
    run.at(60, [rack(inlet_c=29, deviating=True)])
    run.at(70, [rack(inlet_c=26.5)])  # inside the band (max 27) but not by the 1 °C margin
    run.at(80, [rack(inlet_c=27.5, deviating=True)])
    run.at(90, [rack(inlet_c=26.2)])
    assert run.phases(KEY) == ["pending", "firing"]
    run.at(100, [rack(inlet_c=25.9)])  # below 27 - 1
    assert run.phases(KEY) == ["pending", "firing", "resolved"]


def test_a_rack_in_maintenance_does_not_page_for_links_down_but_does_for_a_leak() -> None:
    links = Deviation(rack_id="r-1", check="network-links-down", severity="warning", measured=2, allowed_min=0,
                      allowed_max=0, unit="links", generation="gb300", intent_revision=3)
    leak = Deviation(rack_id="r-1", check="leak-detected", severity="critical", measured="detected",
                     generation="gb300", intent_revision=3)
    facts = RackFacts("r-1", "gb300", "maintenance", "fac-a", "hall-1", telemetry_at=T0,
                      readings={"network_links_down": 2}, deviations={"network-links-down": links,
                                                                      "leak-detected": leak})
    run = Run()
    for s in (0, 60, 120):
        run.at(s, [facts])
    assert run.phases("rack-network-links-down/r-1") == ["suppressed"]
    assert run.phases("rack-leak-detected/r-1") == ["firing"]


def test_a_firing_alert_is_resolved_as_suppressed_when_the_rack_enters_maintenance() -> None:
    facts = rack(inlet_c=29, deviating=True)
    stale = RackFacts("r-1", "gb300", "active", "fac-a", "hall-1", telemetry_at=T0)
    run = Run()
    run.at(0, [stale])
    run.at(40, [stale])
    run.at(50, [RackFacts("r-1", "gb300", "maintenance", "fac-a", "hall-1", telemetry_at=T0)])
    assert run.phases("rack-telemetry-stale/r-1") == ["firing", "suppressed"]
    del facts


def test_stale_telemetry_clears_only_once_a_reading_is_fresh_again() -> None:
    run = Run()
    run.at(31, [rack(at=T0)])
    run.at(40, [rack(at=T0 + timedelta(seconds=20))])  # 20 s old: above half the 30 s setting
    run.at(50, [rack(at=T0 + timedelta(seconds=45))])
    assert run.phases("rack-telemetry-stale/r-1") == ["firing", "resolved"]
    assert [s for s, k, p in run.transitions if p == "resolved"] == [50]


def test_a_generation_drifting_on_one_check_raises_one_alert_that_inhibits_its_racks() -> None:
    racks = [rack(f"r-{i}", inlet_c=29, deviating=i < 4) for i in range(10)]
    fleet = FleetFacts(generations=[GenerationCount("gb300", powered=10, placed=10)])
    run = Run()
    run.at(0, racks, fleet)
    run.at(5, racks, fleet)
    drift = "generation-deviation-drift/gb300/inlet-temperature-out-of-envelope"
    assert run.phases(drift) == ["firing"]
    firing = [s.labels for s in run.states.values() if s.phase is Phase.FIRING]
    rack_labels = run.states["rack-inlet-temperature-out-of-envelope/r-0"].labels
    assert inhibited(rack_labels, firing) == "generation-deviation-drift"
    other = dict(rack_labels, generation="vr200")
    assert inhibited(other, firing) is None


def test_two_racks_of_a_large_generation_do_not_make_a_design_alert() -> None:
    racks = [rack(f"r-{i}", inlet_c=29, deviating=i < 2) for i in range(10)]
    run = Run()
    run.at(0, racks, FleetFacts(generations=[GenerationCount("gb300", powered=10, placed=10)]))
    assert not [t for t in run.transitions if t[1].startswith("generation-")]


def test_hall_headroom_fires_below_ten_percent_and_clears_above_fifteen() -> None:
    def fleet(drawn: float) -> FleetFacts:
        return FleetFacts(halls=[HallLoad("fac-a", "hall-1", 1_000_000, 2_000_000, drawn)])

    run = Run()
    key = "hall-power-headroom-low/fac-a/hall-1"
    run.at(0, [], fleet(950_000))
    run.at(60, [], fleet(950_000))
    run.at(70, [], fleet(880_000))   # 12 % headroom: above the fire line, below the clear line
    assert run.phases(key) == ["pending", "firing"]
    run.at(80, [], fleet(840_000))   # 16 %
    assert run.phases(key) == ["pending", "firing", "resolved"]
    assert run.phases("facility-power-headroom-low/fac-a") == ["pending", "firing", "resolved"]


def test_a_facility_whose_racks_all_went_stale_is_one_alert() -> None:
    run = Run()
    run.at(0, [], FleetFacts(facilities=[FacilityReporting("fac-a", reporting=8, stale=7)]))
    assert run.phases("facility-telemetry-stale/fac-a") == ["firing"]
    labels = run.states["facility-telemetry-stale/fac-a"].labels
    rack_stale = {"alertname": "rack-telemetry-stale", "facility": "fac-a", "rack": "r-1"}
    assert inhibited(rack_stale, [labels]) == "facility-telemetry-stale"


def test_racks_stalled_in_deployment_are_counted_per_facility() -> None:
    stall = Deviation(rack_id="r-1", check="stalled-in-stage", severity="warning", measured=9.5, allowed_max=7,
                      unit="d", generation="gb300", intent_revision=3, detail="received since 2026-10-20")
    racks = [RackFacts(f"r-{i}", "gb300", "received", "fac-b", None, deviations={"stalled-in-stage": stall})
             for i in range(3)]
    run = Run()
    run.at(0, racks)
    run.at(300, racks)  # parts swapped mid-install must not page: the rule waits 5 minutes
    state = run.states["facility-deployment-stalled/fac-b"]
    assert state.phase is Phase.FIRING and state.value == 3.0 and state.labels["owner"] == "deployment"


def test_every_rule_has_a_runbook() -> None:
    missing = [name for name in RULES if not (ROOT / "docs" / "runbooks" / f"{name}.md").is_file()]
    assert missing == []
