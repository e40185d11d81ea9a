"""The store in memory: the same contract as `twin.store.postgres`, for tests and tools that need
no database (eventsourcing's POPO recorder beside its PostgreSQL one).

It keeps what the contract promises, not how PostgreSQL does it: a unit of work is all or
nothing (a failed one leaves nothing behind), an event_id is one fact (a repeat is skipped, the
same id with another body is refused), a reading's identity likewise, a message's dead letter is
one letter, and a duplicated report's bad reading is one letter. `tests/integration/test_store_contract.py`
runs one test class against both stores.
"""

from __future__ import annotations

import copy
from collections.abc import AsyncIterator, Iterable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from schemas import DeadLetter, Deviation, Envelope, RackReading
from twin.domain.rack import TELEMETRY_SIDE_BLANKS, Rejection
from twin.errors import FOLD_REASONS
from twin.store.postgres import READING_COLUMNS, Appended, AppendedEvent, Copied, Origin, StateRow, StoredEvent, StreamEvent

__all__ = ["MemoryStore", "MemoryUnitOfWork"]


@dataclass
class _Letter:
    d: DeadLetter
    open: bool = True


@dataclass
class _Tables:
    """Everything the store holds; copied at the start of a unit of work, kept only if it commits."""

    events: dict[str, tuple[str, int, Envelope, str, Origin]] = field(default_factory=dict)
    streams: dict[str, list[str]] = field(default_factory=dict)
    racks: dict[str, str] = field(default_factory=dict)
    readings: dict[tuple[str, datetime, str], tuple[Any, ...]] = field(default_factory=dict)
    letters: dict[tuple[str, int, int, int], _Letter] = field(default_factory=dict)
    offsets: dict[tuple[str, str, int], int] = field(default_factory=dict)
    lifecycle: dict[str, StateRow] = field(default_factory=dict)
    deviations: dict[str, dict[str, tuple[Deviation, datetime]]] = field(default_factory=dict)


def _values(r: RackReading) -> tuple[Any, ...]:
    return tuple(getattr(r, c) for c in READING_COLUMNS)


class MemoryUnitOfWork:
    """The writes of one batch against the in-memory tables (the `UnitOfWork` contract)."""

    def __init__(self, t: _Tables) -> None:
        self._t = t

    async def append_events(self, items: Sequence[StoredEvent]) -> Appended:
        new: list[AppendedEvent] = []
        conflicting: list[StoredEvent] = []
        for item in items:
            key = str(item.event.event_id)
            held = self._t.events.get(key)
            if held is not None:
                if held[2] != item.event:
                    conflicting.append(item)
                continue
            stream = self._t.streams.setdefault(item.stream_id, [])
            stream.append(key)
            raw = item.raw.decode() if isinstance(item.raw, bytes) else item.raw
            origin = item.origin or ("event-store", 0, -len(self._t.events) - 1)
            self._t.events[key] = (item.stream_id, len(stream), item.event, raw, origin)
            new.append(AppendedEvent(key, item.stream_id, len(stream)))
        return Appended(new, conflicting)

    async def stream(self, stream_id: str) -> list[StreamEvent]:
        out = []
        for key in self._t.streams.get(stream_id, ()):
            _, _, event, raw, origin = self._t.events[key]
            out.append(StreamEvent(event.type, raw.encode(), origin))
        return out

    async def register_racks(self, racks: Iterable[tuple[str, str, str, datetime]]) -> None:
        for rack_id, generation, _, _ in racks:
            self._t.racks.setdefault(rack_id, generation)

    async def copy_readings(self, readings: Sequence[tuple[str, RackReading]]) -> Copied:
        stored, conflicting = 0, []
        for i, (source, r) in enumerate(readings):
            key = (r.rack_id, r.occurred_at, source)
            held = self._t.readings.get(key)
            if held is None:
                self._t.readings[key] = _values(r)
                stored += 1
            elif held != _values(r):
                conflicting.append(i)
        return Copied(stored, conflicting)

    async def record_deadletters(self, letters: Iterable[DeadLetter]) -> int:
        n = 0
        for d in letters:
            n += 1
            idx = -1 if d.index is None else d.index
            key = (d.topic, d.partition, d.offset, idx)
            if idx >= 0 and d.event_id is not None and any(
                    k[3] == idx and x.d.event_id == d.event_id and k != key for k, x in self._t.letters.items()):
                continue
            held = self._t.letters.get(key)
            if held is None or (held.d.reason, held.d.detail) != (d.reason, d.detail):
                self._t.letters[key] = _Letter(d)
        return n

    async def settle_refusals(self, rack_id: str, refused: Iterable[tuple[Rejection, Origin, str]]
                              ) -> list[DeadLetter]:
        items = list(refused)
        ids = {r.event_id for r, _, _ in items}
        for x in self._t.letters.values():
            if x.open and x.d.rack_id == rack_id and x.d.reason in FOLD_REASONS and x.d.event_id not in ids:
                x.open = False
        changed = []
        now = datetime.now(timezone.utc)
        for r, (topic, partition, offset), payload in items:
            d = DeadLetter(reason=r.reason, detail=r.detail[:2_000], topic=topic, partition=partition, offset=offset,
                           event_id=r.event_id, rack_id=rack_id, payload=payload[:64 * 1024], recorded_at=now)
            key = (topic, partition, offset, -1)
            held = self._t.letters.get(key)
            if held is None or not held.open or (held.d.reason, held.d.detail) != (d.reason, d.detail):
                self._t.letters[key] = _Letter(d)
                changed.append(d)
        return changed

    async def project_lifecycle(self, rows: Iterable[StateRow]) -> None:
        for row in rows:
            held = self._t.lifecycle.get(row.rack_id)
            if held is None or held.stream_version <= row.stream_version:
                self._t.lifecycle[row.rack_id] = row

    async def replace_deviations(self, rack_id: str, deviations: Iterable[Deviation], at: datetime,
                                 checks: Iterable[str], *, family: bool = True) -> None:
        await self.replace_deviations_of({rack_id: deviations}, at, checks, family=family)

    async def replace_deviations_of(self, found: Mapping[str, Iterable[Deviation]], at: datetime,
                                    checks: Iterable[str], *, family: bool = True) -> None:
        named = set(checks)
        for rack_id, devs in found.items():
            held = self._t.deviations.setdefault(rack_id, {})
            kept = {c: v for c, v in held.items() if (c in named) != family}
            for d in devs:
                kept[d.check] = (d, held[d.check][1] if d.check in held else at)
            self._t.deviations[rack_id] = kept

    async def track(self, group_id: str, offsets: dict[tuple[str, int], int]) -> None:
        for (topic, partition), offset in offsets.items():
            key = (group_id, topic, partition)
            self._t.offsets[key] = max(offset, self._t.offsets.get(key, -1))


class MemoryStore:
    """The `TwinStore` contract in memory (reads and units of work)."""

    def __init__(self) -> None:
        self._t = _Tables()

    @asynccontextmanager
    async def unit_of_work(self) -> AsyncIterator[MemoryUnitOfWork]:
        """All of a unit's writes, or none: it works on a copy that replaces the tables only on success."""
        work = copy.deepcopy(self._t)
        yield MemoryUnitOfWork(work)
        self._t = work

    async def close(self) -> None:
        """Nothing to release."""

    async def generations_of(self, rack_ids: Iterable[str]) -> dict[str, str]:
        return {r: self._t.racks[r] for r in set(rack_ids) if r in self._t.racks}

    async def tracked_offsets(self, group_id: str) -> dict[tuple[str, int], int]:
        return {(t, p): o for (g, t, p), o in self._t.offsets.items() if g == group_id}

    async def states(self, rack_ids: Iterable[str], *, parts: bool = True) -> dict[str, dict[str, Any]]:
        out = {}
        for rack_id in rack_ids:
            row = self._t.lifecycle.get(rack_id)
            if row is not None:
                twin = row.twin if parts else {**row.twin, **TELEMETRY_SIDE_BLANKS}
                out[rack_id] = {"twin": twin, "stream_version": row.stream_version}
        return out

    async def open_deviations(self, rack_ids: Iterable[str]) -> dict[str, list[Deviation]]:
        return {r: [d for d, _ in self._t.deviations[r].values()] for r in rack_ids if self._t.deviations.get(r)}

    async def open_deadletters(self) -> list[DeadLetter]:
        return [x.d for x in self._t.letters.values() if x.open]

    async def stored_reading(self, rack_id: str, at: datetime, source: str) -> dict[str, Any] | None:
        values = self._t.readings.get((rack_id, at, source))
        return None if values is None else dict(zip(READING_COLUMNS, values))
