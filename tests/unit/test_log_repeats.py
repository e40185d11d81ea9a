"""A dependency that is down is logged once per backoff step, not once per attempt."""

from __future__ import annotations

import logging

import pytest
import structlog

from twin.logs import Repeats


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def record(msg: str, level: int = logging.ERROR, name: str = "aiokafka") -> logging.LogRecord:
    return logging.LogRecord(name, level, __file__, 1, msg, None, None)


def shown_over(seconds: float, every: float, repeats: Repeats, clock: Clock) -> list[str]:
    shown = []
    while clock.now < seconds:
        r = record(f"Unable connect to node with id 1: [Errno 111] Connect call failed ('127.0.0.1', {40000 + int(clock.now)})")
        if repeats.filter_record(r):
            shown.append(r.getMessage())
        clock.now += every
    return shown


def test_a_hundred_attempts_a_second_show_one_line_per_doubling_wait() -> None:
    clock = Clock()
    shown = shown_over(60.0, 0.01, Repeats(first_s=1.0, max_s=30.0, clock=clock), clock)
    # at 0, 1, 3, 7, 15, 31 s (waits 1, 2, 4, 8, 16, then 30): 6 lines instead of 6,000
    assert len(shown) == 6
    assert "like it held back" not in shown[0]
    assert shown[1].endswith("(99 like it held back)")


def test_kinds_are_counted_apart_and_a_quiet_kind_starts_over() -> None:
    clock = Clock()
    repeats = Repeats(first_s=1.0, max_s=4.0, clock=clock)
    assert repeats.filter_record(record("broker down"))
    assert repeats.filter_record(record("database down"))
    assert not repeats.filter_record(record("broker down"))
    clock.now = 100.0
    assert repeats.filter_record(record("broker down"))
    assert not repeats.filter_record(record("broker down"))


def test_info_lines_always_pass() -> None:
    repeats = Repeats(clock=Clock())
    assert all(repeats.filter_record(record("partitions assigned", logging.INFO)) for _ in range(10))


def test_our_own_repeated_warnings_are_dropped_and_counted() -> None:
    clock = Clock()
    repeats = Repeats(first_s=1.0, max_s=30.0, clock=clock)
    event = {"event": "database still unavailable", "role": "telemetry", "error": "port 5432 refused"}
    assert repeats.structlog_processor(None, "warning", dict(event, timestamp="t0")) is not None
    with pytest.raises(structlog.DropEvent):
        repeats.structlog_processor(None, "warning", dict(event, timestamp="t1"))
    clock.now = 1.5
    assert repeats.structlog_processor(None, "warning", dict(event, timestamp="t2"))["held_back"] == 1
    other = {**event, "role": "lifecycle"}
    assert "held_back" not in repeats.structlog_processor(None, "warning", other)
    assert repeats.structlog_processor(None, "info", dict(event)) == event


def test_kinds_gone_quiet_are_forgotten_once_many_were_seen() -> None:
    clock = Clock()
    repeats = Repeats(first_s=1.0, max_s=2.0, clock=clock)
    for n in range(1_000):
        repeats.admit(("kind", str(n)))
    clock.now = 10.0
    repeats.admit(("fresh",))
    assert len(repeats._kinds) == 1
