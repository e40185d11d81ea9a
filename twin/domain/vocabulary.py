"""The closed sets of words a reader may filter by, and a precise refusal of any other word.

Why: a filter value that matches nothing (`--stage actve`) must not answer with an empty,
successful listing; it must say which words exist. Stages, health states, deviation checks
and dead-letter reasons are fixed by the domain and listed here from their sources of truth;
facilities and generations live in the store, and the caller passes the known ones in.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable

from twin.domain.conformance import CHECKS
from twin.domain.health import HealthState
from twin.domain.lifecycle import RackStatus
from twin.errors import RejectedEvent, TwinError

__all__ = ["HEALTH_STATES", "STAGES", "UnknownValue", "check_known", "deadletter_reasons", "is_check", "require"]

STAGES: tuple[str, ...] = tuple(s.value for s in RackStatus)
HEALTH_STATES: tuple[str, ...] = tuple(h.value for h in HealthState)

_DECODING_REASONS = ("missing-field", "invalid-field", "out-of-order", "wrong-rack")
"""Reasons raised as a `RejectedEvent` with an explicit `reason` rather than by a subclass of their own."""


class UnknownValue(TwinError):
    """Raised when a filter names a value that does not exist; the message lists those that do."""

    def __init__(self, what: str, value: str, valid: Iterable[str]) -> None:
        self.what, self.value, self.valid = what, value, sorted(set(valid))
        close = difflib.get_close_matches(value, self.valid, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        listed = ", ".join(self.valid) if self.valid else "none yet"
        super().__init__(f"unknown {what} {value!r}{hint}; valid: {listed}")


def require(what: str, value: str | None, valid: Iterable[str]) -> None:
    """Raise `UnknownValue` when `value` is given and is not one of `valid`."""
    valid = list(valid)
    if value is not None and value not in valid:
        raise UnknownValue(what, value, valid)


def deadletter_reasons() -> tuple[str, ...]:
    """Every reason a dead letter can carry: one per `RejectedEvent` class, plus the explicit ones."""
    found: set[str] = set(_DECODING_REASONS)
    pending: list[type[RejectedEvent]] = [RejectedEvent]
    while pending:
        cls = pending.pop()
        found.add(cls.reason)
        pending.extend(cls.__subclasses__())
    found.discard(RejectedEvent.reason)
    return tuple(sorted(found))


def _check_pattern(slug: str) -> re.Pattern[str]:
    return re.compile(re.escape(slug).replace(re.escape("<kind>"), "[a-z0-9][a-z0-9-]*"))


_CHECK_PATTERNS = tuple(_check_pattern(slug) for slug in CHECKS)


def is_check(value: str) -> bool:
    """True when `value` is a deviation check's slug (`components-missing-<kind>` matches any kind)."""
    return any(p.fullmatch(value) for p in _CHECK_PATTERNS)


def check_known(value: str | None) -> None:
    """Raise `UnknownValue` when `value` names no deviation check."""
    if value is not None and not is_check(value):
        raise UnknownValue("deviation check", value, CHECKS)
