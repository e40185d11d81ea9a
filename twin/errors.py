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
    │   ├── IllegalTransition         a lifecycle step the state machine forbids (illegal-transition)
    │   └── ServiceGateNotMet         entering service without the required passed tests (missing-tests)
    ├── StoreError                    PostgreSQL failed; retried by workers
    │   └── StoreUnavailable          cannot connect (yet)
    ├── SettingsError                 a TWIN_* setting cannot be read (named, its secret never shown)
    ├── StackError                    the embedded broker or database would not start
    ├── PublishError                  the broker refused or lost what a producer sent
    └── CollectorError                a Redfish source failed
        └── BmcUnreachable

Each rejection carries a `reason` slug: it is the dead-letter reason and the counter label.
`dead_letter_reasons()` lists them all (the producer contract, docs/asyncapi.yaml, is made from it).
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
