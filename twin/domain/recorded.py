"""Stored part installations and firmware updates as the fold reads them: no pydantic model.

Why: nine events in ten of a rack's history fit a part (`component.installed`), most others
flash one (`component.firmware_updated`), and a rebuild folds millions of them that were
validated when they were stored. Building a contract model, a `UUID` and a `datetime` for each
costs more than folding it. A recorded event carries what `fold_history` reads (the event key,
the rack, the fields its type changes); the rest of the envelope (`occurred_at`, `seq`,
`event_id`) is derived from the key when a refusal or a message needs it. The fold treats it
exactly as the contract event it was stored from.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import NamedTuple
from uuid import UUID

from twin.domain.components import Part

__all__ = ["FLASHED", "INSTALLED", "RECORDED", "RecordedFlash", "RecordedInstall"]

INSTALLED = "component.installed"
FLASHED = "component.firmware_updated"
_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


class _Envelope:
    """What a recorded event derives from its key: the envelope fields a refusal or a message reads."""

    __slots__ = ()
    key: tuple[int, int, int]

    @property
    def occurred_at(self) -> datetime:
        return _EPOCH + timedelta(microseconds=self.key[0])

    @property
    def seq(self) -> int:
        return self.key[1]

    @property
    def event_id(self) -> UUID:
        return UUID(int=self.key[2])


_Install = NamedTuple(  # type: ignore[misc]  # a Part's fields, in its order, then the event's own
    "_Install", [*Part.__annotations__.items(), ("key", tuple[int, int, int]), ("rack_id", str)])
"""`key` is (occurred_at in µs since the epoch, seq, event_id as an integer): the fold's `event_key`."""


class RecordedInstall(_Install, _Envelope):
    """A stored `component.installed` event, light. Its first eight fields are a `Part`'s, in
    `Part`'s order, so the record itself is the part fitted (`BillOfMaterials.installed_many`)."""

    __slots__ = ()
    type = INSTALLED  # (class attributes, not fields)

    @property
    def component(self) -> Part:
        return Part._make(self[:len(Part._fields)])


class _Flash(NamedTuple):
    slot: str
    firmware_version: str
    key: tuple[int, int, int]
    rack_id: str


class RecordedFlash(_Flash, _Envelope):
    """A stored `component.firmware_updated` event, light."""

    __slots__ = ()
    type = FLASHED


RECORDED = (RecordedInstall, RecordedFlash)
"""The light event types; the fold takes each as the contract event of its `type`."""
