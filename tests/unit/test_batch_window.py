"""The telemetry path observes only each rack's newest readings of a batch: the window must end
exactly as if every reading had been observed, whatever the order, repeats and time zones."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from given import reading
from hypothesis import given as for_all
from hypothesis import strategies as st

from streams.telemetry import newest_distinct, per_rack
from twin.domain.rack import ReadingWindow, RackTwin

T0 = datetime(2026, 11, 26, 12, tzinfo=timezone.utc)
ZONES = [timezone.utc, timezone(timedelta(hours=-5)), timezone(timedelta(hours=9))]

# (second, watts, zone): few distinct seconds, so repeats (same time, other values) are common.
batch = st.lists(st.tuples(st.integers(0, 15), st.integers(1, 9), st.sampled_from(ZONES)), max_size=40)


def _readings(spec: list[tuple[int, int, timezone]]) -> list:
    return [reading((T0 + timedelta(seconds=s)).astimezone(z), power_watts=float(w * 10_000)) for s, w, z in spec]


@for_all(held=batch, incoming=batch)
def test_observing_the_newest_distinct_readings_leaves_the_window_as_observing_all(
        held: list[tuple[int, int, timezone]], incoming: list[tuple[int, int, timezone]]) -> None:
    every, some = RackTwin("r"), RackTwin("r")
    for r in _readings(held):
        every.observe(r)
        some.observe(r)
    rs = _readings(incoming)
    changed_every = [every.observe(r) for r in rs]
    changed_some = [some.observe(r) for r in newest_distinct(rs, ReadingWindow.CAPACITY)]
    assert every.window == some.window
    assert any(changed_every) == any(changed_some)


def test_a_batch_is_grouped_by_rack_in_arrival_order() -> None:
    a1, b1, a2 = reading(T0, "a"), reading(T0, "b"), reading(T0 + timedelta(seconds=1), "a")
    assert per_rack([a1, b1, a2]) == {"a": [a1, a2], "b": [b1]}


def test_a_batch_is_sliced_in_order_by_bytes_and_a_sweep_is_one_empty_slice() -> None:
    from twin.messages import Record
    from streams.batch import slices

    sizes = [3, 3, 3, 10, 1, 1]
    messages = [Record("t", 0, i, None, b"x" * n) for i, n in enumerate(sizes)]
    offsets = [[m.offset for m in part] for part in slices(messages, 6)]
    assert offsets == [[0, 1], [2], [3], [4, 5]]  # in order, every message once, an oversize one alone
    assert list(slices([], 6)) == [[]]
