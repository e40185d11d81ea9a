"""The closed sets of words a reader may filter by, and a precise refusal of any other word.

Why: a filter value that matches nothing (`--reason bogus`) must not answer with an empty,
successful listing; it must say which words exist. Stages and health states are fixed by the
domain; dead-letter reasons are read off the error tree, so a new rejection class is listed
without anyone remembering to. Facilities and generations live in the store
(`twin.store.queries.valid_values`).
"""

from __future__ import annotations

from collections.abc import Iterable

from twin.domain.health import HealthState
from twin.domain.lifecycle import RackStatus
from twin.errors import InvalidQuery, RejectedEvent

__all__ = ["HEALTH_STATES", "STAGES", "deadletter_reasons", "require"]

STAGES: tuple[str, ...] = tuple(s.value for s in RackStatus)
HEALTH_STATES: tuple[str, ...] = tuple(h.value for h in HealthState)

_EXPLICIT_REASONS = ("missing-field", "invalid-field", "out-of-order", "wrong-rack")
"""Reasons raised as a `RejectedEvent` with an explicit `reason` rather than by a subclass of their own."""


def require(field: str, value: str | None, valid: Iterable[str]) -> None:
    """Raise `InvalidQuery` (listing `valid`) when `value` is given and is not one of `valid`."""
    valid = sorted(set(valid))
    if value is not None and value not in valid:
        raise InvalidQuery(field, value, valid)


def deadletter_reasons() -> tuple[str, ...]:
    """Every reason a dead letter can carry: one per `RejectedEvent` class, plus the explicit ones."""
    found: set[str] = set(_EXPLICIT_REASONS)
    pending: list[type[RejectedEvent]] = [RejectedEvent]
    while pending:
        cls = pending.pop()
        found.add(cls.reason)
        pending.extend(cls.__subclasses__())
    found.discard(RejectedEvent.reason)
    return tuple(sorted(found))
