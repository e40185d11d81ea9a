"""The fold: idempotency, late events, replay, snapshots, time travel, and telemetry taken in."""

from __future__ import annotations

from datetime import timedelta
from uuid import UUID

import pytest
from given import (
    CATALOG,
    INTENT,
    RACK,
    T0,
    Clock,
    bill,
    commissioned,
    entered_service,
    firmware_updated,
    given,
    history,
    installed,
    intent,
    maintenance_started,
    part,
    part_replaced,
    reading,
    readings,
    received,
    rma_opened,
    shipped,
    tested,
)

from twin.errors import RejectedEvent
from twin.domain.intent import IntentCatalog
from twin.domain.lifecycle import RackStatus
from twin.domain.rack import RackTwin, ReadingWindow, event_key

S = RackStatus


def test_the_same_event_twice_is_folded_once() -> None:
    events = history(installed())
    twin = RackTwin(RACK)
    for e in events:
        twin.fold(e)
        twin.fold(e)
        twin.apply(e)
    assert twin.version == len(events) and twin.status is S.INSTALLED and not twin.rejected


def test_the_version_counts_accepted_events_only() -> None:
    scenario = given(installed())
    version = scenario.twin.version
    scenario.and_(shipped(), commissioned())
    assert scenario.twin.version == version + 1 and len(scenario.twin.rejected) == 1


def test_an_event_sorting_before_the_last_folded_needs_a_replay() -> None:
    events = history(installed())
    twin = RackTwin.replay(RACK, events[:-2] + events[-1:], CATALOG)
    late = events[-2]
    assert twin.needs_replay(late) and not twin.needs_replay(events[-1])
    with pytest.raises(RejectedEvent) as caught:
        twin.apply(late)
    assert caught.value.reason == "out-of-order"
    with pytest.raises(RejectedEvent):
        twin.fold(late)


def test_a_late_event_replayed_with_its_history_is_folded_in_place() -> None:
    events = history(installed())
    shipped_event = next(e for e in events if e.type == "rack.shipped")
    early = RackTwin.replay(RACK, [e for e in events if e is not shipped_event], CATALOG)
    assert early.status is S.FACTORY_TESTED and len(early.rejected) == 2  # received, installed refused in turn
    assert early.needs_replay(shipped_event)
    complete = RackTwin.replay(RACK, events, CATALOG)
    assert complete.status is S.INSTALLED and not complete.rejected


def test_ties_in_time_are_broken_by_seq_then_event_id() -> None:
    clock = Clock()
    first, second = clock.event(shipped()), clock.event(received())
    same_time = second.model_copy(update={"occurred_at": first.occurred_at})
    assert event_key(first) < event_key(same_time)
    higher_id = first.model_copy(update={"event_id": UUID(int=first.event_id.int + 1)})
    assert event_key(first) < event_key(higher_id)
    lower_seq = second.model_copy(update={"occurred_at": first.occurred_at, "seq": 0})
    assert event_key(lower_seq) < event_key(first)


def test_an_event_of_another_rack_is_refused_and_not_recorded() -> None:
    twin = given(installed()).twin
    stranger = Clock(T0 + timedelta(days=5)).event(commissioned(rack="other-rack"))
    with pytest.raises(RejectedEvent) as caught:
        twin.fold(stranger)
    assert caught.value.reason == "wrong-rack" and not twin.rejected


def test_replay_skips_an_illegal_event_and_records_why() -> None:
    events = history(installed())
    illegal = Clock(events[-1].occurred_at).event(shipped())
    twin = RackTwin.replay(RACK, events + [illegal], CATALOG)
    assert twin.status is S.INSTALLED
    assert [(r.event_id, r.reason) for r in twin.rejected] == [(str(illegal.event_id), "illegal-transition")]


def test_replay_judges_the_service_gate_by_the_intent_in_force_at_the_event() -> None:
    events = history(entered_service(), tests=("factory-acceptance", "burn-in", "site-acceptance"))
    stricter = intent(revision=2, required_tests=("factory-acceptance", "burn-in", "site-acceptance"))
    lenient = intent(revision=1, required_tests=("factory-acceptance",))
    catalog = IntentCatalog()
    catalog.publish(lenient, published_at=T0 - timedelta(days=30))
    catalog.publish(stricter, published_at=events[-1].occurred_at + timedelta(days=1))
    no_burn_in = [e for e in events if not (e.type == "rack.tested" and e.test != "factory-acceptance")]
    assert RackTwin.replay(RACK, no_burn_in, catalog).status is S.ACTIVE
    catalog_now_strict = IntentCatalog()
    catalog_now_strict.publish(stricter, published_at=T0 - timedelta(days=30))
    assert RackTwin.replay(RACK, no_burn_in, catalog_now_strict).status is S.COMMISSIONED


def test_time_travel_gives_the_rack_as_of_any_instant() -> None:
    events = history(entered_service())
    at = {e.type: e.occurred_at for e in events}
    assert RackTwin.replay(RACK, events, CATALOG, until=at["rack.received"]).status is S.RECEIVED
    assert RackTwin.replay(RACK, events, CATALOG, until=at["rack.received"] - timedelta(microseconds=1)).status \
        is S.IN_TRANSIT
    assert RackTwin.replay(RACK, events, CATALOG, until=T0).status is S.PLANNED
    assert RackTwin.replay(RACK, events, CATALOG, until=at["rack.entered_service"]).status is S.ACTIVE


def test_a_snapshot_round_trips_every_part_of_the_twin() -> None:
    scenario = given(entered_service()).and_(
        part_replaced("SN-psu-01", part("psu-01", "psu", "SN-NEW-1", country="TH")),
        firmware_updated("tray-02", "1.9.0"), maintenance_started(), tested(test="site-acceptance", passed=False),
        shipped())
    twin = scenario.twin
    for r in readings(T0 + timedelta(days=3), 3):
        twin.observe(r)
    twin.intent_revision = 4
    data = twin.snapshot(readings=True)
    again = RackTwin.from_snapshot(data)
    assert again == twin and again.snapshot(readings=True) == data
    assert again.components == twin.components and again.latest == twin.latest
    assert len(data["components"]) == len(bill()) and data["rejected"][0]["type"] == "rack.shipped"


def test_a_snapshot_without_readings_leaves_telemetry_out() -> None:
    twin = given(installed()).twin
    twin.observe(reading(T0 + timedelta(days=1)))
    assert "readings" not in twin.snapshot() and RackTwin.from_snapshot(twin.snapshot()).latest is None


def test_replay_from_a_snapshot_equals_replay_from_the_first_event() -> None:
    events = history(entered_service())
    middle = events[len(events) // 2].occurred_at
    snap = RackTwin.replay(RACK, events, CATALOG, until=middle).snapshot()
    resumed = RackTwin.replay(RACK, events, CATALOG, snapshot=snap)
    assert resumed.snapshot() == RackTwin.replay(RACK, events, CATALOG).snapshot()


def test_a_snapshot_newer_than_the_instant_asked_for_is_refused() -> None:
    events = history(installed())
    snap = RackTwin.replay(RACK, events, CATALOG).snapshot()
    with pytest.raises(ValueError, match="newer"):
        RackTwin.replay(RACK, events, CATALOG, until=T0 + timedelta(hours=2), snapshot=snap)


# --- telemetry --------------------------------------------------------------------------------

def test_the_newest_reading_is_the_current_one() -> None:
    twin = RackTwin(RACK)
    assert twin.observe(reading(T0 + timedelta(seconds=2), power_watts=90_000.0))
    assert twin.observe(reading(T0 + timedelta(seconds=1), power_watts=80_000.0))  # joins the window
    assert twin.latest is not None and twin.latest.power_watts == 90_000.0
    assert twin.latest_at == T0 + timedelta(seconds=2)
    assert [r.power_watts for r in twin.readings] == [80_000.0, 90_000.0]


def test_the_same_reading_twice_changes_nothing() -> None:
    twin = RackTwin(RACK)
    r = reading(T0)
    assert twin.observe(r) and not twin.observe(r)
    assert len(twin.readings) == 1


def test_a_reading_round_trips_exactly_through_the_window() -> None:
    r = reading(T0 + timedelta(microseconds=123_457), power_watts=131_999.97, leak_detected=True,
                network_links_down=3, hottest_accelerator_temperature_celsius=71.23)
    twin = RackTwin(RACK)
    twin.observe(r)
    assert twin.latest == r


def test_the_window_keeps_the_newest_readings_whatever_their_order() -> None:
    rs = readings(T0, ReadingWindow.CAPACITY + 4)
    forward, backward = RackTwin(RACK), RackTwin(RACK)
    for r in rs:
        forward.observe(r)
    for r in reversed(rs):
        backward.observe(r)
    assert forward.window == backward.window
    assert [r.occurred_at for r in forward.readings] == [r.occurred_at for r in rs[-ReadingWindow.CAPACITY:]]
    assert not forward.observe(rs[0])  # older than everything held: the store keeps it, the twin does not


def test_telemetry_does_not_change_the_lifecycle_fold() -> None:
    twin = given(installed()).twin
    before = twin.snapshot()
    twin.observe(reading(T0 + timedelta(days=1)))
    assert twin.snapshot() == before and twin.version == before["version"]


def test_a_twin_holds_no_copy_of_its_intent_nor_its_events() -> None:
    twin = given(entered_service()).and_(rma_opened()).twin
    held = [getattr(twin, f) for f in twin.__slots__]
    assert not any(isinstance(v, (type(INTENT), list, set, dict)) for v in held)
