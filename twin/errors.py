"""Every error the twin raises, as one tree (httpx style).

    TwinError
    ├── RejectedEvent                 bad input: dead-lettered with `reason`, never a crash
    │   ├── MalformedEvent            not JSON, or not an object                (malformed-json)
    │   │   ├── MissingField          a required field is absent                (missing-field)
    │   │   └── InvalidField          a field has the wrong shape               (invalid-field)
    │   ├── UnknownEventType          a `type` we do not know                    (unknown-type)
    │   ├── UnknownSchemaVersion      a known type at a version we do not know  (unknown-schema-version)
    │   ├── OutOfPhysicalRange        a value no sensor can read                 (out-of-physical-range)
    │   ├── UnknownRack               a rack the fleet has never seen            (unknown-rack)
    │   ├── UnknownLocation           an install into a facility, hall or row the registry does not know
    │   │                                                                        (unknown-location)
    │   ├── ClockSkew                 dated further ahead of the worker's clock than the bound allows (clock-skew)
    │   ├── ConflictingDuplicate      an identity already taken by a different body (conflicting-duplicate)
    │   ├── WrongRack                 the envelope names another rack than its reading or twin (wrong-rack)
    │   ├── OutOfOrder                a caller folded an event sorting before the last one: replay instead
    │                                                                            (out-of-order)
    │   ├── IllegalTransition         a lifecycle step the state machine forbids (illegal-transition)
    │   └── ServiceGateNotMet         entering service without the required passed tests (missing-tests)
    ├── StoreError                    PostgreSQL failed; retried by workers
    │   └── StoreUnavailable          cannot connect (yet)
    ├── SettingsError                 a TWIN_* setting cannot be read (named, its secret never shown)
    ├── StackError                    the embedded broker or database would not start
    ├── PublishError                  the broker refused or lost what a producer sent
    ├── InvalidQuery                  a read query got a value it cannot answer (API: 422, CLI: exit 2)
    └── CollectorError                a Redfish source failed
        └── BmcUnreachable

Each rejection carries a `reason` slug: it is the dead-letter reason and the counter label.
The store's SQL takes the slugs from these classes as parameters (`FOLD_REASONS`, `UnknownRack.reason`),
never as literals of its own. `dead_letter_reasons()` lists every reason that becomes a dead letter
(the producer contract, docs/asyncapi.yaml, is made from it).
"""

from __future__ import annotations

import inspect
import re
import sys


class TwinError(Exception):
    """Root of every error raised by the fleet twin."""


class RejectedEvent(TwinError):
    """Raised when an event cannot be folded; `reason` is its dead-letter slug."""

    reason = "rejected"
    lettered = True
    """False for a rejection that reports a caller's mistake to the caller and never becomes a dead letter."""

    def __init__(self, detail: str, *, reason: str | None = None) -> None:
        super().__init__(detail)
        self.detail = detail
        if reason is not None:
            self.reason = reason


class MalformedEvent(RejectedEvent):
    """Raised when bytes are not JSON, or not a JSON object."""

    reason = "malformed-json"


class MissingField(MalformedEvent):
    """Raised when a field the event type requires is absent."""

    reason = "missing-field"


class InvalidField(MalformedEvent):
    """Raised when a field is present but not of its type's shape (a date that is no date, a bad slug)."""

    reason = "invalid-field"


class UnknownEventType(RejectedEvent):
    """Raised when the envelope's `type` names no event type we know."""

    reason = "unknown-type"


class UnknownSchemaVersion(RejectedEvent):
    """Raised when a known type arrives with a `schema_version` we do not know."""

    reason = "unknown-schema-version"


class OutOfPhysicalRange(RejectedEvent):
    """Raised when a value lies outside what the quantity can physically be."""

    reason = "out-of-physical-range"


class UnknownRack(RejectedEvent):
    """Raised when an event names a rack that the fleet has never registered."""

    reason = "unknown-rack"


class UnknownLocation(RejectedEvent):
    """Raised when a rack is installed into a facility, hall or row that the fleet registry does not know."""

    reason = "unknown-location"


class ClockSkew(RejectedEvent):
    """Raised when a reading or event is dated further ahead of the worker's clock than the bound allows."""

    reason = "clock-skew"


class ConflictingDuplicate(RejectedEvent):
    """Raised when an identity (an event_id, a reading's rack, source and time) arrives with a different body."""

    reason = "conflicting-duplicate"


class WrongRack(RejectedEvent):
    """Raised when an envelope's rack_id contradicts its reading's, or an event is folded into another rack."""

    reason = "wrong-rack"


class OutOfOrder(RejectedEvent):
    """Raised when an event sorting before the last one folded is folded incrementally (replay the history)."""

    reason = "out-of-order"
    lettered = False


class IllegalTransition(RejectedEvent):
    """Raised when a lifecycle event is not allowed from the rack's current stage."""

    reason = "illegal-transition"


class ServiceGateNotMet(IllegalTransition):
    """Raised when a rack would enter service without the passed tests its generation requires."""

    reason = "missing-tests"


class StoreError(TwinError):
    """Raised when the database fails; workers back off and retry."""


class StoreUnavailable(StoreError):
    """Raised when the database cannot be reached."""


class InvalidQuery(TwinError):
    """Raised when a read query is asked about an unknown value; `valid` lists what would do."""

    def __init__(self, field: str, value: object, valid: list[str] | None = None, hint: str = "") -> None:
        self.field, self.value, self.valid = field, value, valid
        message = f"{field}={value!r} is not valid"
        if valid is not None:
            message += f"; valid values: {', '.join(valid) if valid else '(none)'}"
        if hint:
            message += f"; {hint}"
        super().__init__(message)


class SettingsError(TwinError):
    """Raised when a `TWIN_*` setting cannot be read; names the variable and what is wrong, never a secret value."""


class StackError(TwinError):
    """Raised when the embedded broker or database does not come up."""


class PublishError(TwinError):
    """Raised when the broker cannot be reached or a message could not be delivered (twin/publisher.py)."""


class CollectorError(TwinError):
    """Raised when a Redfish source cannot be read."""


class BmcUnreachable(CollectorError):
    """Raised when a BMC does not answer."""


FOLD_REASONS: tuple[str, ...] = (IllegalTransition.reason, ServiceGateNotMet.reason)
"""Reasons the fold gives (as opposed to the intake): a late event can change them, so after every
replay of a rack its open dead letters of these reasons are settled against the fold's refusals."""


_SLUG = re.compile(r"^[a-z]+(-[a-z]+)+$")


def dead_letter_reasons() -> dict[str, str]:
    """Every dead-letter reason slug -> what it means, read from this module.

    A reason is the `reason` of a `RejectedEvent` subclass (its meaning: the class docstring), or a
    module constant whose name ends in `_REASON` or starts with `REASON_`. One place, so the producer
    contract lists a reason as soon as the code can give it.
    """
    found: dict[str, str] = {}
    pending: list[type[RejectedEvent]] = list(RejectedEvent.__subclasses__())
    while pending:
        cls = pending.pop(0)
        pending.extend(cls.__subclasses__())
        if cls.__module__ == __name__ and cls.lettered and isinstance(cls.reason, str) and _SLUG.match(cls.reason):
            doc = inspect.getdoc(cls) or cls.__name__
            found.setdefault(cls.reason, doc.removeprefix("Raised when ").split("\n")[0].rstrip("."))
    for name, value in vars(sys.modules[__name__]).items():
        if (name.endswith("_REASON") or name.startswith("REASON_")) and isinstance(value, str) and _SLUG.match(value):
            found.setdefault(value, name.lower().removesuffix("_reason").removeprefix("reason_").replace("_", " "))
    return dict(sorted(found.items()))
