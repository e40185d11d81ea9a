"""Every error the twin raises, as one tree (httpx style).

    TwinError
    ├── RejectedEvent                 bad input: dead-lettered with `reason`, never a crash
    │   ├── MalformedEvent            not JSON, or not the shape of its type    (malformed-json, missing-field, invalid-field)
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
    ├── StackError                    the embedded broker or database would not start
    ├── InvalidQuery                  a read query got a value it cannot answer (API: 422, CLI: exit 2)
    └── CollectorError                a Redfish source failed
        └── BmcUnreachable

Each rejection carries a `reason` slug: it is the dead-letter reason and the counter label.
The store's SQL takes the slugs from these classes as parameters (`FOLD_REASONS`, `UnknownRack.reason`),
never as literals of its own.
"""

from __future__ import annotations


class TwinError(Exception):
    """Root of every error raised by the fleet twin."""


class RejectedEvent(TwinError):
    """Raised when an event cannot be folded; `reason` is its dead-letter slug."""

    reason = "rejected"

    def __init__(self, detail: str, *, reason: str | None = None) -> None:
        super().__init__(detail)
        self.detail = detail
        if reason is not None:
            self.reason = reason


class MalformedEvent(RejectedEvent):
    """Raised when bytes are not JSON, or a field is missing or of the wrong shape."""

    reason = "malformed-json"


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


class StackError(TwinError):
    """Raised when the embedded broker or database does not come up."""


class CollectorError(TwinError):
    """Raised when a Redfish source cannot be read."""


class BmcUnreachable(CollectorError):
    """Raised when a BMC does not answer."""


FOLD_REASONS: tuple[str, ...] = (IllegalTransition.reason, ServiceGateNotMet.reason)
"""Reasons the fold gives (as opposed to the intake): a late event can change them, so after every
replay of a rack its open dead letters of these reasons are settled against the fold's refusals."""
