"""Topology facts: which racks a CDU feeds, what a feed failure does, one condition per CDU;
and how a CDU's condition, an unreachable endpoint and unmeasured quantities reach rack health."""

from __future__ import annotations

import uuid
from datetime import timedelta
from itertools import permutations

import pytest
from given import INTENT, NOMINAL, RACK, T0, reading, readings

from schemas import CoolantLoopDeclared, CoolingUnitStatus, PowerFeedDeclared
from twin.domain.conformance import evaluate
from twin.domain.health import HealthState, assess
from twin.domain.lifecycle import RackStatus
from twin.domain.rack import RackTwin
from twin.domain.topology import Topology, cooling_unit_conditions

STALE_AFTER = 30.0


def loop(loop_id: str, cdu: str, racks: list[str], minute: int = 0) -> CoolantLoopDeclared:
    return CoolantLoopDeclared(event_id=uuid.uuid4(), occurred_at=T0 + timedelta(minutes=minute), source="t", seq=minute,
                               loop_id=loop_id, cooling_unit_id=cdu, racks=tuple(racks))


def feed(feed_id: str, side: str, racks: list[str], minute: int = 0) -> PowerFeedDeclared:
    return PowerFeedDeclared(event_id=uuid.uuid4(), occurred_at=T0 + timedelta(minutes=minute), source="t", seq=minute,
                             feed_id=feed_id, side=side, racks=tuple(racks))  # type: ignore[arg-type]


TOPOLOGY = Topology.declared([
    loop("l1", "cdu-1", ["r1", "r2"]), loop("l2", "cdu-1", ["r3"]), loop("l3", "cdu-2", ["r4"]),
    feed("a1", "A", ["r1", "r2", "r3"]), feed("a2", "A", ["r4"]), feed("b1", "B", ["r1", "r2", "r4"]),
])


def test_a_cdu_feeds_the_racks_of_all_its_loops() -> None:
    assert TOPOLOGY.racks_fed_by("cdu-1") == ("r1", "r2", "r3")
    assert TOPOLOGY.racks_fed_by("cdu-9") == ()


def test_losing_side_a_leaves_dual_fed_racks_without_redundancy_and_single_fed_racks_dark() -> None:
    loss = TOPOLOGY.if_fails("A")
    assert loss.failed == ("a1", "a2")
    assert loss.losing_redundancy == ("r1", "r2", "r4") and loss.losing_power == ("r3",)


def test_losing_one_feed_counts_only_its_racks() -> None:
    loss = TOPOLOGY.if_fails("b1")
    assert loss.losing_redundancy == ("r1", "r2", "r4") and loss.losing_power == ()


def test_an_unknown_feed_is_refused_naming_the_known_ones() -> None:
    with pytest.raises(KeyError, match="known feeds are a1, a2, b1"):
        TOPOLOGY.if_fails("c7")


def test_the_latest_declaration_of_a_loop_wins_in_any_order() -> None:
    events = [loop("l1", "cdu-1", ["r1"], minute=1), loop("l1", "cdu-1", ["r1", "r9"], minute=2),
              loop("l1", "cdu-3", ["r5"], minute=0)]
    for order in permutations(events):
        assert Topology.declared(order).racks_fed_by("cdu-1") == ("r1", "r9")


def cdu(cid: str, health: str, *reasons: str) -> CoolingUnitStatus:
    return CoolingUnitStatus(cooling_unit_id=cid, health=health, reasons=reasons)  # type: ignore[arg-type]


def test_a_failed_cdu_is_one_condition_naming_every_rack_it_degrades() -> None:
    failed = cdu("cdu-2", "critical", "pump 2 failed (critical)")
    conditions = cooling_unit_conditions({"r4": failed, "r5": failed, "r6": failed, "r1": cdu("cdu-1", "ok"),
                                          "r7": None})
    assert len(conditions) == 1
    (c,) = conditions
    assert (c.cooling_unit_id, c.health, c.racks) == ("cdu-2", "critical", ("r4", "r5", "r6"))
    assert c.summary == "cooling unit cdu-2 is critical (pump 2 failed (critical)): feeds 3 racks"


def test_racks_that_disagree_about_a_cdu_mid_poll_get_its_worst_view() -> None:
    conditions = cooling_unit_conditions({"r1": cdu("c", "warning", "pump 1 warning"),
                                          "r2": cdu("c", "critical", "pump 1 failed"), "r3": cdu("d", "warning")})
    assert [(c.cooling_unit_id, c.health, c.reasons, c.racks) for c in conditions] == [
        ("c", "critical", ("pump 1 failed",), ("r1", "r2")), ("d", "warning", (), ("r3",))]


def twin_of(*rs) -> RackTwin:  # type: ignore[no-untyped-def]
    twin = RackTwin(RACK, generation=INTENT.generation, status=RackStatus.ACTIVE)
    for r in rs:
        twin.observe(r)
    return twin


def test_a_cdu_in_trouble_degrades_the_cooling_of_its_rack_with_a_reason_naming_it() -> None:
    failed = cdu("cdu-2", "critical", "pump 2 failed (critical)")
    twin = twin_of(*readings(T0, 3), reading(T0 + timedelta(seconds=3), cooling_unit=failed))
    health = assess(twin, INTENT, T0 + timedelta(seconds=3), STALE_AFTER)
    assert health.cooling.state is HealthState.CRITICAL
    assert health.cooling.reason == "cooling unit cdu-2 is critical: pump 2 failed (critical)"
    assert health.power.state is HealthState.OK
    assert health.as_dict()["cooling_unit"] == {"cooling_unit_id": "cdu-2", "health": "critical",
                                                "reasons": ["pump 2 failed (critical)"]}
    recovered = twin_of(*readings(T0, 3), reading(T0 + timedelta(seconds=3), cooling_unit=failed),
                        reading(T0 + timedelta(seconds=4), cooling_unit=cdu("cdu-2", "ok")))
    assert assess(recovered, INTENT, T0 + timedelta(seconds=4), STALE_AFTER).cooling.state is HealthState.OK


def test_an_older_reading_arriving_late_does_not_overwrite_the_newest_polls_view() -> None:
    twin = twin_of(reading(T0 + timedelta(seconds=5), cooling_unit=cdu("c", "ok")),
                   reading(T0, cooling_unit=cdu("c", "critical"), unreachable_endpoints=("bmc-1",)))
    assert twin.cooling_unit == cdu("c", "ok") and twin.unreachable == ()


def test_a_rack_behind_an_unreachable_endpoint_is_stale_with_that_reason() -> None:
    gone = {k: None for k in NOMINAL if k not in ("coolant_supply_temperature_celsius",)}
    twin = twin_of(*readings(T0, 3), reading(T0 + timedelta(seconds=3), **gone, unreachable_endpoints=("bmc-r1",)))
    health = assess(twin, INTENT, T0 + timedelta(seconds=3), STALE_AFTER)
    assert health.stale and health.stale_reason == "endpoint-unreachable"
    assert health.power.state is HealthState.WARNING
    assert health.power.reason == "telemetry stale (endpoint-unreachable): bmc-r1 did not answer the last poll"
    back = twin_of(*readings(T0, 3), reading(T0 + timedelta(seconds=3), **gone, unreachable_endpoints=("bmc-r1",)),
                   reading(T0 + timedelta(seconds=4)))
    assert assess(back, INTENT, T0 + timedelta(seconds=4), STALE_AFTER).stale_reason is None


def test_silence_is_stale_for_no_reading() -> None:
    twin = twin_of(*readings(T0, 3))
    assert assess(twin, INTENT, T0 + timedelta(minutes=5), STALE_AFTER).stale_reason == "no-reading"


def test_unmeasured_quantities_are_not_judged_and_measured_ones_still_are() -> None:
    only_power = {k: None for k in NOMINAL if k != "power_watts"}
    twin = twin_of(*readings(T0, 3, **{**only_power, "power_watts": 133_000.0}))
    now = T0 + timedelta(seconds=2)
    health = assess(twin, INTENT, now, STALE_AFTER)
    assert health.power.state is HealthState.CRITICAL  # 3 readings over budget
    assert health.compute.state is HealthState.OK and health.network.state is HealthState.OK
    assert "leak" not in health.cooling.reason
    assert twin.latest is not None and twin.latest.leak_detected is None and twin.latest.network_links_up is None
    checks = {d.check for d in evaluate(twin, INTENT, now, only="telemetry")}
    assert checks == {"power-over-budget"}


def test_a_twin_snapshot_keeps_the_newest_polls_endpoints_and_cdu() -> None:
    twin = twin_of(reading(T0, cooling_unit=cdu("c", "warning", "filter 1 warning"), unreachable_endpoints=("p",),
                           inlet_temperature_celsius=None))
    again = RackTwin.from_snapshot(twin.snapshot(readings=True))
    assert again.cooling_unit == twin.cooling_unit and again.unreachable == ("p",)
    assert again.window == twin.window and again.latest is not None and again.latest.inlet_temperature_celsius is None
