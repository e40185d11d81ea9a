"""Input rules a decoded event or reading must pass before it may move a twin.

Decoding (`twin.domain.decoding`) says whether bytes are a well-formed event. These rules say
whether a well-formed event may be taken as a fact:

- `clock-skew`: dated more than `bound` ahead of the worker's clock. A clock running ahead
  would otherwise win every "newest reading" comparison and freeze the rack (a reading 400 days
  ahead stays the newest for 400 days), or put a lifecycle step in the future.
- `conflicting-duplicate`: the same identity with another body. An event_id or a reading's
  (rack, time, source) names one fact; two different bodies under one name mean a producer bug,
  and silently keeping either would hide it.
- `wrong-rack`: a report's envelope names one rack and its reading another (checked while
  decoding, `decode_report`).
- `unknown-location`: an install into a facility, hall or row the registry does not know.

Pure: the clock and the registry come in as arguments.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Iterator, Sequence
from datetime import datetime, timedelta
from typing import Any, TypeVar

from schemas import RackEvent, RackReading
from twin.errors import ClockSkew, ConflictingDuplicate, UnknownLocation

__all__ = ["DEFAULT_CLOCK_SKEW", "ahead_of_clock", "check_clock", "check_location", "distinct_readings",
           "location_of"]

DEFAULT_CLOCK_SKEW = timedelta(minutes=5)
"""How far ahead of the worker's clock an event may be dated (setting TWIN_CLOCK_SKEW_SECONDS)."""

T = TypeVar("T")


def check_clock(occurred_at: datetime, now: datetime, bound: timedelta, what: str) -> None:
    """Raise `ClockSkew` when `occurred_at` lies more than `bound` after `now`."""
    if occurred_at - now > bound:
        raise ClockSkew(f"{what} is dated {occurred_at.isoformat()}, {(occurred_at - now).total_seconds():,.0f} s "
                        f"ahead of the worker's clock ({now.isoformat()}); the bound is {bound.total_seconds():,.0f} s")


def ahead_of_clock(times: Iterable[datetime], now: datetime, bound: timedelta) -> bool:
    """True when any of `times` is beyond the bound (a cheap test before looking reading by reading)."""
    latest = max(times, default=None)
    return latest is not None and latest - now > bound


def distinct_readings(readings: Sequence[tuple[str, RackReading, T]]
                      ) -> Iterator[tuple[str, RackReading, T, ConflictingDuplicate | None]]:
    """Each (source, reading, where) once per identity (rack, time, source), in arrival order.

    A repeat with the same values is dropped (the same fact twice); a repeat with other values
    is yielded with the `ConflictingDuplicate` it must be refused with.
    """
    seen: dict[tuple[str, datetime, str], RackReading] = {}
    for source, reading, where in readings:
        key = (reading.rack_id, reading.occurred_at, source)
        held = seen.get(key)
        if held is None:
            seen[key] = reading
            yield source, reading, where, None
        elif held != reading:
            yield source, reading, where, ConflictingDuplicate(
                f"reading of rack {reading.rack_id} at {reading.occurred_at.isoformat()} from {source} arrived "
                "again with other values; the first is kept")


def location_of(event: RackEvent) -> tuple[str, str, str] | None:
    """The (facility, hall, row) an install names (None for other events)."""
    if event.type != "rack.installed":
        return None
    e: Any = event
    return (e.facility_id, e.hall_id, e.row_id)


def check_location(event: RackEvent, known: Collection[tuple[str, str, str]]) -> None:
    """Raise `UnknownLocation` when `event` installs the rack where the registry knows no row."""
    place = location_of(event)
    if place is not None and place not in known:
        raise UnknownLocation(
            f"rack {event.rack_id} installed in facility {place[0]!r}, hall {place[1]!r}, row {place[2]!r}, which the"
            " fleet registry does not know (register the facility first; the install is taken once it is)")
