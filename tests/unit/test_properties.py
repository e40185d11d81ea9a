"""Properties of the fold (issue 3, item 8): delivery order and repeats do not matter.

Histories are drawn as the usual road to a random stage followed by random further events,
legal or not, from two sources whose clocks may tie, so the tie-breaks (seq, event_id) and the
recorded rejections are exercised too.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from uuid import UUID

from given import (
    CATALOG,
    RACK,
    T0,
    Step,
    bill,
    commissioned,
    decommissioned,
    degraded,
    entered_service,
    firmware_updated,
    installed,
    maintenance_started,
    part,
    part_installed,
    part_replaced,
    reading,
    received,
    rma_opened,
    road_to,
    shipped,
    tested,
)
from hypothesis import given as for_all
from hypothesis import settings
from hypothesis import strategies as st

from schemas import RackEvent
from twin.domain.rack import RackTwin, event_key

SETTINGS = settings(max_examples=150, deadline=None)
PARTS = bill()
SLOTS = [p.slot for p in PARTS]
GAPS = [timedelta(0), timedelta(0), timedelta(seconds=1), timedelta(hours=1), timedelta(days=3)]
STAGE_STEPS = [tested(), shipped(), received(), installed(), commissioned(), entered_service(), degraded(),
               maintenance_started(), rma_opened(), decommissioned()]


@st.composite
def further_steps(draw: st.DrawFn) -> Step:
    """One more event, likely but not surely legal where it lands."""
    kind = draw(st.sampled_from(["stage", "stage", "stage", "test", "swap", "flash", "fit"]))
    if kind == "stage":
        return draw(st.sampled_from(STAGE_STEPS))
    if kind == "test":
        return tested(test=draw(st.sampled_from(["factory-acceptance", "burn-in", "site-acceptance"])),
                      passed=draw(st.booleans()))
    slot = draw(st.sampled_from(SLOTS + ["tray-99"]))
    if kind == "flash":
        return firmware_updated(slot, draw(st.sampled_from(["1.8.3", "1.9.0", "2.0.0"])))
    old = next((p for p in PARTS if p.slot == slot), PARTS[0])
    new = part(old.slot if slot != "tray-99" else slot, old.kind, f"SN-{draw(st.integers(0, 5))}",
               country=draw(st.sampled_from(["US", "MX"])))
    if kind == "fit":
        return part_installed(new)
    return part_replaced(draw(st.sampled_from([old.serial_number, "SN-0", "SN-1"])), new,
                         cause=draw(st.sampled_from(["swap", "rma"])))


@st.composite
def histories(draw: st.DrawFn) -> list[RackEvent]:
    """A rack's events in the order they happened: from two sources, times that may tie, random ids."""
    target = draw(st.sampled_from(STAGE_STEPS))
    parts = draw(st.lists(st.sampled_from(PARTS), unique_by=lambda p: p.slot, max_size=len(PARTS)))
    steps = road_to(target, parts=parts) + draw(st.lists(further_steps(), max_size=12))
    ids = draw(st.lists(st.integers(0, 2**128 - 1), min_size=len(steps), max_size=len(steps), unique=True))
    seq = {"factory-mes": 0, "site-tool": 0}
    at = T0
    events = []
    for step, event_id in zip(steps, ids, strict=True):
        at += draw(st.sampled_from(GAPS))
        source = draw(st.sampled_from(sorted(seq)))
        seq[source] += 1
        events.append(step.cls(event_id=UUID(int=event_id), occurred_at=at, source=source, seq=seq[source],
                               rack_id=RACK, **step.fields))
    return events


def replay(events: list[RackEvent], **kw: object) -> RackTwin:
    return RackTwin.replay(RACK, events, CATALOG, **kw)  # type: ignore[arg-type]


@SETTINGS
@for_all(histories(), st.randoms(use_true_random=False), st.data())
def test_any_delivery_order_with_any_repeats_gives_the_same_twin(events: list[RackEvent], rnd, data) -> None:
    delivered = events + data.draw(st.lists(st.sampled_from(events), max_size=len(events)))
    rnd.shuffle(delivered)
    assert replay(delivered).snapshot() == replay(events).snapshot()


@SETTINGS
@for_all(histories(), st.data(), st.randoms(use_true_random=False))
def test_two_versions_of_one_event_id_resolve_alike_in_any_order(events: list[RackEvent], data, rnd) -> None:
    original = data.draw(st.sampled_from(events))
    shift = data.draw(st.sampled_from([timedelta(hours=-2), timedelta(seconds=1), timedelta(days=2)]))
    impostor = original.model_copy(update={"occurred_at": original.occurred_at + shift})  # a producer bug
    delivered = events + [impostor]
    expected = replay(delivered).snapshot()
    rnd.shuffle(delivered)
    assert replay(delivered).snapshot() == expected
    assert replay([impostor] + events).snapshot() == replay(events + [impostor]).snapshot()


@SETTINGS
@for_all(histories())
def test_replay_equals_incremental_folding_of_events_delivered_in_order(events: list[RackEvent]) -> None:
    twin = RackTwin(RACK)
    for event in sorted(events, key=event_key):
        intent = CATALOG.as_of(twin.generation or "", event.occurred_at)
        twin.fold(event, intent)
        twin.fold(event, intent)  # an immediate repeat is a no-op
    assert twin.snapshot() == replay(events).snapshot()
    assert twin == replay(events)


@SETTINGS
@for_all(histories(), st.randoms(use_true_random=False))
def test_a_worker_that_replays_on_late_events_ends_where_a_full_replay_does(events: list[RackEvent], rnd) -> None:
    delivered = list(events)
    rnd.shuffle(delivered)
    twin, seen = RackTwin(RACK), []
    for event in delivered:
        seen.append(event)
        if twin.needs_replay(event):
            twin = replay(seen)
        else:
            twin.fold(event, CATALOG.as_of(twin.generation or "", event.occurred_at))
    assert twin.snapshot() == replay(events).snapshot()


@SETTINGS
@for_all(histories(), st.data())
def test_the_twin_as_of_an_instant_is_the_fold_of_the_events_until_then(events: list[RackEvent], data) -> None:
    instant: datetime = data.draw(st.sampled_from([e.occurred_at for e in events]))
    instant += data.draw(st.sampled_from([timedelta(0), timedelta(microseconds=-1), timedelta(minutes=30)]))
    prefix = [e for e in events if e.occurred_at <= instant]
    assert replay(events, until=instant).snapshot() == replay(prefix).snapshot()


@SETTINGS
@for_all(histories(), st.data())
def test_a_snapshot_restores_the_twin_and_resuming_from_it_equals_a_full_replay(events: list[RackEvent],
                                                                                   data) -> None:
    instant = data.draw(st.sampled_from([e.occurred_at for e in events]))
    snap = replay(events, until=instant).snapshot()
    assert RackTwin.from_snapshot(snap).snapshot() == snap
    assert replay(events, snapshot=snap).snapshot() == replay(events).snapshot()


@SETTINGS
@for_all(histories())
def test_event_keys_sort_as_occurred_at_then_seq_then_event_id_text(events: list[RackEvent]) -> None:
    by_key = sorted(events, key=event_key)
    by_text = sorted(events, key=lambda e: (e.occurred_at, e.seq, str(e.event_id)))
    assert by_key == by_text


@SETTINGS
@for_all(st.lists(st.tuples(st.integers(0, 40), st.floats(0, 150_000)), min_size=1, max_size=30),
         st.randoms(use_true_random=False))
def test_the_readings_window_is_the_same_whatever_order_readings_arrive_in(points, rnd) -> None:
    rs = [reading(T0 + timedelta(seconds=s), power_watts=round(w, 1)) for s, w in points]
    first = {}
    for r in rs:  # a repeated instant is one reading: the first one delivered wins, so keep instants unique
        first.setdefault(r.occurred_at, r)
    rs = list(first.values())
    shuffled = list(rs)
    rnd.shuffle(shuffled)
    a, b = RackTwin(RACK), RackTwin(RACK)
    for r in rs + rs:
        a.observe(r)
    for r in shuffled:
        b.observe(r)
    assert a.readings == b.readings
    assert a.latest == max(rs, key=lambda r: r.occurred_at)
