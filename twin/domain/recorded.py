"""A stored part installation as the fold reads it: its key, its rack and the part, no pydantic model.

Why: nine events in ten of a rack's history fit a part (`component.installed`), and a rebuild
folds millions of them that were validated when they were stored. Building a contract model,
a `UUID` and a `datetime` for each costs more than folding it. `RecordedInstall` carries what
`fold_history` reads (the event key, the rack, the part as a `Part`); the rest of the event
(`occurred_at`, `seq`, `event_id`) is derived from the key when a refusal or a message needs it.
The fold treats it exactly as the `ComponentInstalled` it was stored from.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import NamedTuple
from uuid import UUID

from twin.domain.components import Part

__all__ = ["INSTALLED", "RecordedInstall"]

INSTALLED = "component.installed"
_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


class RecordedInstall(NamedTuple):
    """A stored `component.installed` event, light: what the fold reads, nothing more."""

    key: tuple[int, int, int]
    """(occurred_at in µs since the epoch, seq, event_id as an integer): the fold's `event_key`."""
    rack_id: str
    component: Part

    type = INSTALLED  # (a class attribute, not a field)

    @property
    def occurred_at(self) -> datetime:
        return _EPOCH + timedelta(microseconds=self.key[0])

    @property
    def seq(self) -> int:
        return self.key[1]

    @property
    def event_id(self) -> UUID:
        return UUID(int=self.key[2])
