"""The work of one batch, whatever consumer delivered it: decode, fold, write, emit.

    messages ─▶ skip what is tracked ─▶ decode (schemas/) ─▶ bad input ─▶ dead letters
                                          │
                                          ▼
                           fold into RackTwin (twin/) ─▶ conformance ─▶ deviations
                                          │
                                          ▼
                 one transaction: facts + current state + dead letters + offsets (store.py)
                                          │
                                          ▼
                        publish dead letters and deviation changes (after commit)

Faust agents call these pipelines (streams/app.py); the benchmark and tests call them too, so
what is measured is what runs. A failed transaction leaves nothing behind: the twins it
touched are dropped from memory and reloaded from the database when the batch is retried.
"""

from __future__ import annotations

import asyncio
import gc
import operator
import time
from bisect import bisect_left
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime, timedelta, timezone
from typing import Any

import structlog
from prometheus_client import Histogram
from psycopg.types.json import Jsonb

from schemas import (
    INTENT_TYPES,
    LIFECYCLE_TYPES,
    CoolantLoopDeclared,
    DeadLetter,
    Deviation,
    DeviationChanged,
    FacilityRegistered,
    GenerationIntent,
    IntentPublished,
    PowerFeedDeclared,
    RackEvent,
    RackManufactured,
    RackReading,
    RolloutPlanPublished,
)
from streams import metrics
from streams.deadletter import Message, letter
from streams.memory import release_free_memory
from twin.domain.conformance import TELEMETRY_CHECKS, evaluate
from twin.domain.decoding import decode_event, decode_report
from twin.errors import RejectedEvent, UnknownRack
from twin.domain.health import assess
from twin.domain.intent import IntentCatalog
from twin.domain.rack import RackTwin, ReadingWindow, event_key
from twin.store import StateRow, TwinStore, UnitOfWork
from twin.store.topology import declare as declare_topology

__all__ = ["Emit", "IntentPipeline", "LifecyclePipeline", "TelemetryPipeline", "WorkerState"]

log = structlog.get_logger(__name__)


LOAD_CHUNK = 250
"""Twins loaded from the database per query by the telemetry path."""

SNAPSHOT_EVERY = 25
"""A rack's folded state is kept every this many events of its stream (time travel starts there)."""

STALL_SWEEP_SECONDS = 60.0
"""How often racks standing still are judged for stalls (allowances are days: a minute is plenty)."""

Emit = Callable[[str, bytes | None, bytes], Awaitable[None]]
"""Publish (role, key, value) after a commit; role is `deadletter` or `deviations`."""


def _now() -> datetime:
    return datetime.now(timezone.utc)


class WorkerState:
    """What one worker process holds in memory: the design-intent catalog and its rack twins."""

    def __init__(self, group_id: str, stale_after_seconds: float = 30.0) -> None:
        self.group_id = group_id
        self.catalog = IntentCatalog()
        self.stale_after_seconds = stale_after_seconds
        self.catalog_marker: tuple[int, int] = (-1, -1)
        self._store: TwinStore | None = None

    async def refresh_catalog(self, store: TwinStore) -> bool:
        """Reload intents when another worker published a revision; True when anything changed."""
        self._store = store
        marker = await store.intent_revision_marker()
        if marker == self.catalog_marker:
            return False
        for body, published_at in await store.intents():
            self.catalog.publish(GenerationIntent.model_validate(body), published_at)
        self.catalog_marker = marker
        return True



class _Pipeline:
    """Shared mechanics: tracked offsets, dead letters, emission, metrics, eviction on failure.

    `lock` serialises a pipeline's use of its one database connection between its agent and
    its timer (the orphan sweep).
    """

    role = ""

    def __init__(self, store: TwinStore, state: WorkerState, emit: Emit | None = None) -> None:
        self.store = store
        self.state = state
        self.emit = emit
        self.lock = asyncio.Lock()
        self._tracked: dict[tuple[str, int], int] | None = None
        self._owned: set[tuple[str, int]] = set()
        self.applied: dict[tuple[str, int], int] = {}
        """Highest offset per (topic, partition) whose effects are committed, as far as this
        pipeline knows (from the tracked offsets it read, and its own commits): consumer lag."""

    async def start(self) -> None:
        await self.state.refresh_catalog(self.store)

    def evict(self, rack_ids: Iterable[str] | None = None) -> None:
        """Forget in-memory state derived from uncommitted work (all of it, by default)."""
        self._tracked = None

    def own(self, partitions: Iterable[tuple[str, int]]) -> None:
        """The (topic, partition)s this worker was just assigned. Their refusals and orphans are this
        pipeline's to look after from now on, whether or not a batch from them ever arrives (after a
        rebalance, a partition whose messages were all applied by a killed worker sends none)."""
        self._owned = set(partitions)

    def forget_offsets(self) -> None:
        """Partitions moved (rebalance): read tracked offsets and twins again before the next batch
        (another worker may have folded our racks meanwhile)."""
        self.evict()
        self._owned.clear()

    async def sweep(self) -> None:
        """Periodic work between batches (default: none)."""

    async def _fresh(self, messages: Sequence[Message]) -> tuple[list[Message], dict[tuple[str, int], int]]:
        if self._tracked is None:
            self._tracked = await self.store.tracked_offsets(self.state.group_id)
            self._advance(self._tracked)
        tracked = self._tracked
        highest: dict[tuple[str, int], int] = {}
        fresh = []
        for m in messages:
            tp = (m.topic, m.partition)
            if m.offset > tracked.get(tp, -1):
                fresh.append(m)
            if m.offset > highest.get(tp, -1):
                highest[tp] = m.offset
        self._owned.update(highest)
        return fresh, highest

    def _committed(self, offsets: dict[tuple[str, int], int]) -> None:
        tracked = self._tracked if self._tracked is not None else {}
        for tp, offset in offsets.items():
            if offset > tracked.get(tp, -1):
                tracked[tp] = offset
        self._advance(offsets)

    def _advance(self, offsets: dict[tuple[str, int], int]) -> None:
        for tp, offset in offsets.items():
            if offset > self.applied.get(tp, -1):
                self.applied[tp] = offset

    async def _publish(self, letters: Iterable[DeadLetter], changes: Iterable[DeviationChanged]) -> None:
        for d in letters:
            metrics.DEADLETTERS.labels(d.reason).inc()
            if self.emit is not None:
                await self.emit("deadletter", (d.rack_id or "").encode() or None, d.model_dump_json().encode())
        if self.emit is not None:
            for change in changes:
                await self.emit("deviations", change.deviation.rack_id.encode(), change.model_dump_json().encode())


def deviation_changes(
    rack_id: str, before: dict[str, Deviation], after: dict[str, Deviation], at: datetime, source: str, seq: int
) -> list[DeviationChanged]:
    """Firing for new or changed deviations, resolved for the ones that went away."""
    from uuid import NAMESPACE_URL, uuid5

    changes = []
    for check, dev in after.items():
        if before.get(check) != dev and (check not in before or before[check].severity != dev.severity):
            changes.append(("firing", dev))
    for check, dev in before.items():
        if check not in after:
            changes.append(("resolved", dev))
    return [
        DeviationChanged(
            event_id=uuid5(NAMESPACE_URL, f"{rack_id}/{dev.check}/{state}/{at.isoformat()}"),
            occurred_at=at, source=source, seq=seq, rack_id=rack_id, state=state, deviation=dev,  # type: ignore[arg-type]
        )
        for state, dev in changes
    ]


_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
_MICROSECOND = timedelta(microseconds=1)
_UTC = timedelta(0)


def _same_as_latest(reading: RackReading | None, twin: RackTwin) -> RackReading | None:
    """`reading` when it is what `twin.latest` would rebuild from the window (the window's newest
    row, its time in UTC), sparing that rebuild; else None."""
    if reading is None or twin.window is None:
        return None
    at = reading.occurred_at
    if at.utcoffset() != _UTC or (at - _EPOCH) // _MICROSECOND != twin.window.latest_us:
        return None
    return reading


@contextmanager
def _no_cyclic_gc() -> Iterator[None]:
    """Hold the cycle collector off while a batch is handled, and let it run once after.

    A batch of reports allocates a few objects per reading (validated models, rows) that live
    until its commit; as they pile up, the collector runs again and again and walks every twin
    the worker holds, for garbage that reference counting frees anyway once the batch is done
    (measured: a fifth of a telemetry batch's time). Not nested: if the collector is already
    off (another batch, or the process turned it off), this leaves it alone.
    """
    if not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


def _observe(histogram: Histogram, value: float, times: int) -> None:
    """`histogram.observe(value)`, `times` times over, at the cost of one observation."""
    buckets, bounds, total = (getattr(histogram, a, None) for a in ("_buckets", "_upper_bounds", "_sum"))
    if times == 1 or buckets is None or bounds is None or total is None:  # not prometheus_client's layout
        for _ in range(times):
            histogram.observe(value)
        return
    total.inc(value * times)
    buckets[bisect_left(bounds, value)].inc(times)


def _deviation_rows(devs: Iterable[Deviation], at: datetime) -> list[tuple[Any, ...]]:
    """Rows for the deviations table; `at` is the `since` of a deviation new to it (one already
    open keeps its own: `replace_deviations` updates it in place)."""
    return [
        (d.check, d.severity, None if d.measured is None else str(d.measured), d.allowed_min, d.allowed_max, d.unit,
         d.generation, d.intent_revision, d.detail, at)
        for d in devs
    ]


SLICE_BYTES = 8 * 1024 * 1024
"""Most report bytes the telemetry path applies in one transaction (about 16,000 readings)."""


def _slices(messages: Sequence[Message], max_bytes: int) -> Iterator[Sequence[Message]]:
    """Consecutive runs of `messages` of at most `max_bytes` of values each (a larger message
    alone); one empty run for no messages (a sweep)."""
    start, size = 0, 0
    for i, m in enumerate(messages):
        n = len(m.value or b"")
        if size and size + n > max_bytes:
            yield messages[start:i]
            start, size = i, 0
        size += n
    yield messages[start:]


_WINDOW = ReadingWindow.CAPACITY
_occurred_at = operator.attrgetter("occurred_at")
_second = operator.itemgetter(1)


def _per_rack(readings: Iterable[tuple[str, RackReading]]) -> dict[str, list[RackReading]]:
    """A batch's readings grouped by rack, in arrival order."""
    out: dict[str, list[RackReading]] = {}
    for _, r in readings:
        rs = out.get(r.rack_id)
        if rs is None:
            out[r.rack_id] = [r]
        else:
            rs.append(r)
    return out


def _newest_distinct(rs: Sequence[RackReading], n: int) -> list[RackReading]:
    """The readings at the `n` newest distinct times, the first to arrive at each time.

    Observing only these leaves a rack's window exactly as observing all of them would (the
    window keeps the `n` newest times, and a later reading at a time held is a repeat), without
    paying for readings it would push out again within the batch: a worker catching up gets a
    dozen readings per rack per batch.
    """
    times = [r.occurred_at for r in rs]
    if all(map(operator.lt, times, times[1:])):  # the usual order: distinct times, oldest first
        return list(rs[-n:])
    first: dict[datetime, RackReading] = {}
    for r in rs:
        first.setdefault(r.occurred_at, r)
    return [first[t] for t in sorted(first)[-n:]]


class TelemetryPipeline(_Pipeline):
    """Reports -> readings stored as facts; newest reading per rack -> current state, health, deviations."""

    role = "telemetry"

    def __init__(self, store: TwinStore, state: WorkerState, emit: Emit | None = None) -> None:
        super().__init__(store, state, emit)
        self.twins: dict[str, RackTwin] = {}
        self.open: dict[str, dict[str, Deviation]] = {}
        self._lifecycle_refreshed = 0.0
        self._seq = 0
        self._judged: dict[str, int] | None = None

    def evict(self, rack_ids: Iterable[str] | None = None) -> None:
        if rack_ids is None:
            self.twins.clear()
            self.open.clear()
        else:
            for rack_id in rack_ids:
                self.twins.pop(rack_id, None)
                self.open.pop(rack_id, None)
        self._tracked = None

    async def _load(self, rack_ids: set[str]) -> None:
        missing = [r for r in rack_ids if r not in self.twins]
        for chunk in range(0, len(missing), LOAD_CHUNK):  # bounded transient memory per query
            racks = missing[chunk:chunk + LOAD_CHUNK]
            stored = await self.store.states(racks, parts=False)
            opened = await self.store.open_deviations(racks)
            for rack_id in racks:
                snapshot = stored.get(rack_id, {}).get("twin")
                self.twins[rack_id] = RackTwin.from_snapshot(snapshot) if snapshot else RackTwin(rack_id)
                if rack_id in opened:  # most racks conform: hold no dict for them
                    self.open[rack_id] = {d.check: d for d in opened[rack_id]}
            del stored, opened
        if len(missing) >= LOAD_CHUNK:  # starting, or taking over partitions: before the fold's peak,
            release_free_memory()        # hand back what the snapshots and earlier batches freed

    def _judged_now(self) -> dict[str, int]:
        catalog = self.state.catalog
        return {g: catalog.latest(g).revision for g in catalog.generations()}  # type: ignore[union-attr]

    def _revised_generations(self) -> set[str]:
        """Generations whose latest intent revision is newer than the one our twins were judged by."""
        if self._judged is None:  # first batch: every twin is judged as it is loaded anyway
            self._judged = self._judged_now()
        return {g for g, revision in self._judged_now().items() if self._judged.get(g, revision) != revision}

    async def refresh_lifecycle(self, max_age_seconds: float = 1.0) -> None:
        """Take the lifecycle side (stage, generation, placement) that a lifecycle agent wrote."""
        now = time.monotonic()
        if now - self._lifecycle_refreshed < max_age_seconds:
            return
        self._lifecycle_refreshed = now
        changed = await self.store.lifecycle_changes(since_seconds=max_age_seconds * 5)
        unplaced = [r for r, t in self.twins.items() if t.generation is None and r not in changed]
        if unplaced:  # loaded before the lifecycle side existed: take it as soon as it does
            changed.update({r: v["twin"] for r, v in (await self.store.states(unplaced, parts=False)).items()
                            if v["twin"]})
        for rack_id, snapshot in changed.items():
            twin = self.twins.get(rack_id)
            if twin is not None and snapshot:
                fresh = RackTwin.from_snapshot(snapshot)
                fresh.window = twin.window  # keep our telemetry side, take their lifecycle side
                self.twins[rack_id] = fresh
        release_free_memory()  # between batches, at most once per `max_age_seconds`: what the last one freed

    def _decode(self, fresh: Sequence[Message], letters: list[DeadLetter]
                ) -> list[tuple[str, tuple[RackReading, ...], Message]]:
        """Each report's (source, good readings, message); bad input becomes dead letters."""
        taken: list[tuple[str, tuple[RackReading, ...], Message]] = []
        for m in fresh:
            try:
                decoded = decode_report(m.value)
            except RejectedEvent as exc:
                letters.append(letter(m, exc))
                continue
            source = decoded.report.source if decoded.report is not None else None
            for bad in decoded.bad:
                letters.append(letter(m, bad.error, index=bad.index, payload=bad.payload, rack_id=bad.rack_id,
                                      source=source))
            if decoded.report is not None:
                taken.append((source, decoded.report.readings, m))  # type: ignore[arg-type]
        return taken

    async def _fold(
        self, readings: Sequence[tuple[str, RackReading]], known: dict[str, str], changed: dict[str, RackTwin]
    ) -> tuple[list[Any], list[tuple[str, dict[str, Deviation]]], list[DeviationChanged]]:
        """Observe readings; judge each rack whose newest reading changed (fills `changed`)."""
        await self._load(set(known))
        twins = self.twins
        newest: dict[str, RackReading] = {}  # per rack, the newest reading this batch added to its window
        for rack_id, rs in _per_rack(readings).items():
            twin = twins[rack_id]
            for r in rs if len(rs) <= _WINDOW else _newest_distinct(rs, _WINDOW):
                if twin.observe(r):
                    changed[rack_id] = twin
                    n = newest.get(rack_id)
                    if n is None or r.occurred_at > n.occurred_at:
                        newest[rack_id] = r
        revised = self._revised_generations()
        if revised:  # a new intent revision re-judges every twin of its generation, readings or not
            for rack_id, twin in self.twins.items():
                if twin.generation in revised and twin.window and rack_id not in changed:
                    changed[rack_id] = twin
                    known.setdefault(rack_id, twin.generation)
        now = _now()
        projected = []
        deviation_updates: list[tuple[str, dict[str, Deviation]]] = []
        changes: list[DeviationChanged] = []
        stale_after = self.state.stale_after_seconds
        for rack_id, twin in changed.items():
            intent = self.state.catalog.latest(known[rack_id])
            latest = _same_as_latest(newest.get(rack_id), twin) or twin.latest
            assert latest is not None
            health = assess(twin, intent, now, stale_after)
            after = ({d.check: d for d in evaluate(twin, intent, now, stale_after_seconds=stale_after,
                                                   only="telemetry")}
                     if intent and twin.generation == intent.generation else {})
            opened = self.open.get(rack_id, {})
            before = {c: d for c, d in opened.items() if c in TELEMETRY_CHECKS}
            if after != before:
                self._seq += 1
                changes += deviation_changes(rack_id, before, after, latest.occurred_at, self.state.group_id, self._seq)
                deviation_updates.append((rack_id, after))
            others = sum(1 for c in opened if c not in TELEMETRY_CHECKS)
            projected.append((latest, health.as_dict(), intent.revision if intent else None, len(after) + others))
        return projected, deviation_updates, changes

    async def handle(self, messages: Sequence[Message]) -> None:
        """Apply a batch, in slices of at most `SLICE_BYTES` of reports, each its own transaction.

        Why slices: what a batch decodes and judges lives until its commit (about 1.5 KB a
        reading, 2 KB a judged rack). A batch of 2,000 reports of 50 readings is 100,000
        readings, and would cost 300 MB at its peak; a slice costs a fifth of that at most. A
        batch of the usual size is one slice. Each slice tracks its own offsets, and slices
        follow the batch's order, so a crash between two leaves the first applied and the
        second to be delivered again, as between two batches.
        """
        async with self.lock:
            for part in _slices(messages, SLICE_BYTES):
                with _no_cyclic_gc():
                    await self._handle(part)

    async def _handle(self, messages: Sequence[Message]) -> None:
        started = time.perf_counter()
        await self.state.refresh_catalog(self.store)
        await self.refresh_lifecycle()
        fresh, offsets = await self._fresh(messages)
        letters: list[DeadLetter] = []
        taken = self._decode(fresh, letters)
        rack_ids = {r.rack_id for _, rs, _ in taken for r in rs}
        known = await self.store.generations_of(rack_ids)
        if len(known) == len(rack_ids):  # the usual case: every rack is known, no reading to refuse
            readings = [(source, r) for source, rs, _ in taken for r in rs]
        else:
            readings = []
            for source, rs, m in taken:
                for i, r in enumerate(rs):
                    if r.rack_id in known:
                        readings.append((source, r))
                    else:
                        letters.append(letter(m, UnknownRack(
                            f"rack {r.rack_id!r} is not known to the fleet (no rack.manufactured recorded); it is"
                            " adopted if its manufacture arrives later"),
                            index=i, payload=r.model_dump_json(), rack_id=r.rack_id, source=source))
        changed: dict[str, RackTwin] = {}
        try:
            async with self.store.unit_of_work() as uow:
                adopted = [(source or "unknown", RackReading.model_validate_json(payload))
                           for _, _, _, source, payload in await uow.adopt_orphans(readings=True)]
                if adopted:
                    readings += adopted
                    known.update(await self.store.generations_of({r.rack_id for _, r in adopted} - set(known)))
                projected, deviation_updates, changes = await self._fold(readings, known, changed)
                await uow.copy_readings(readings)
                await uow.project_telemetry(projected)
                now = _now()
                await uow.replace_deviations_of({rack_id: _deviation_rows(after.values(), now)
                                                 for rack_id, after in deviation_updates}, TELEMETRY_CHECKS)
                await uow.record_deadletters(letters)
                await uow.track(self.state.group_id, offsets)
        except Exception:
            self.evict(changed)
            raise
        for rack_id, after in deviation_updates:
            kept = {c: d for c, d in self.open.get(rack_id, {}).items() if c not in TELEMETRY_CHECKS}
            self.open[rack_id] = {**kept, **after}
        self._judged = self._judged_now()
        self._committed(offsets)
        committed = _now()
        for at, n in Counter(map(_occurred_at, map(_second, readings))).items():  # a poll cycle's readings share it
            _observe(metrics.VISIBLE_LATENCY, max(0.0, (committed - at).total_seconds()), n)
        metrics.EVENTS_IN.labels(self.role).inc(len(messages))
        metrics.READINGS_IN.inc(len(readings))
        metrics.BATCH_SIZE.labels(self.role).observe(len(messages))
        metrics.BATCH_SECONDS.labels(self.role).observe(time.perf_counter() - started)
        metrics.TWINS_HELD.labels(self.role).set(len(self.twins))
        await self._publish(letters, changes)

    async def sweep(self) -> None:
        """Adopt readings of racks that became known since they were refused."""
        await self.handle([])


class LifecyclePipeline(_Pipeline):
    """Lifecycle, component and test events -> the rack's event stream -> its folded twin."""

    role = "lifecycle"

    def __init__(self, store: TwinStore, state: WorkerState, emit: Emit | None = None) -> None:
        super().__init__(store, state, emit)
        self.twins: dict[str, RackTwin] = {}
        self._refolded_marker: tuple[int, int] = (-1, -1)
        self._stalls_judged = 0.0

    def evict(self, rack_ids: Iterable[str] | None = None) -> None:
        if rack_ids is None:
            self.twins.clear()
            self._refolded_marker = (-1, -1)  # partitions may have moved here: look for gated racks again
        else:
            for rack_id in rack_ids:
                self.twins.pop(rack_id, None)
        self._tracked = None

    async def _twin(self, rack_id: str) -> RackTwin:
        twin = self.twins.get(rack_id)
        if twin is None:
            stored = (await self.store.states([rack_id])).get(rack_id)
            twin = RackTwin.from_snapshot(stored["twin"]) if stored and stored["twin"] else RackTwin(rack_id)
            self.twins[rack_id] = twin
        return twin

    async def handle(self, messages: Sequence[Message]) -> None:
        async with self.lock:
            await self._handle(messages)

    async def sweep(self) -> None:
        """Adopt lifecycle events of racks that became known since they were refused; re-fold racks
        refused at the service gate before their generation's intent was known; judge stalls."""
        await self.handle([])
        async with self.lock:
            await self._refold_gated()
            if time.monotonic() - self._stalls_judged > STALL_SWEEP_SECONDS:
                await self._judge_stalls()

    async def _judge(self, uow: UnitOfWork, twins: Iterable[RackTwin]) -> None:
        await _judge_lifecycle(uow, self.state.catalog, twins)

    async def _judge_stalls(self) -> None:
        """Time moves on without events: re-judge racks standing in a stage that has an allowance."""
        self._stalls_judged = time.monotonic()
        stages = sorted({stage for i in self.state.catalog for stage in i.stage_allowance_days})
        async with self.store.unit_of_work() as uow:
            twins = [RackTwin.from_snapshot(body) for body in (await uow.twins_in_stages(stages)).values() if body]
            await self._judge(uow, twins)

    async def _refold_gated(self) -> None:
        """Racks refused while their generation had no intent (or whose refusals a late event changed):
        fold them again now that the catalog changed. Found by their open refusals and, for racks this
        worker holds, by the refusals their twin remembers."""
        if self.state.catalog_marker == self._refolded_marker:
            return
        self._refolded_marker = self.state.catalog_marker
        async with self.store.unit_of_work() as uow:
            generations = set(self.state.catalog.generations())
            gated = await uow.gated_racks(sorted(generations), self._owned)
            held = [r for r, t in self.twins.items() if t.rejected and t.generation in generations and r not in gated]
            gated.update({r: v["stream_version"] for r, v in (await self.store.states(held)).items()})
            refolded = {}
            for rack_id, version in gated.items():
                history = [LIFECYCLE_TYPES[t].model_validate_json(body) for t, body in await uow.stream(rack_id)]
                twin, still = _fold_all(rack_id, history, self.state.catalog)
                await uow.resolve_rejections(rack_id, still)
                refolded[rack_id] = (twin, version)
            await uow.project_lifecycle(_state_row(t, v) for t, v in refolded.values())
            await self._judge(uow, [t for t, _ in refolded.values()])
        for rack_id, (twin, _) in refolded.items():
            self.twins[rack_id] = twin
        if refolded:
            log.info("re-folded racks refused before their intent was known", racks=len(refolded))

    async def _handle(self, messages: Sequence[Message]) -> None:
        started = time.perf_counter()
        await self.state.refresh_catalog(self.store)
        fresh, offsets = await self._fresh(messages)
        letters: list[DeadLetter] = []
        decoded: list[tuple[RackEvent, Message]] = []
        for m in fresh:
            try:
                decoded.append((decode_event(m.value, LIFECYCLE_TYPES), m))  # type: ignore[arg-type]
            except RejectedEvent as exc:
                letters.append(letter(m, exc))
        known = await self.store.generations_of({e.rack_id for e, _ in decoded})
        manufactured: dict[str, RackManufactured] = {}
        for event, _ in decoded:
            if isinstance(event, RackManufactured) and event.rack_id not in known:
                manufactured.setdefault(event.rack_id, event)
        for rack_id, event in manufactured.items():
            known[rack_id] = event.generation
        touched: dict[str, RackTwin] = {}
        versions: dict[str, int] = {}
        refolded: dict[str, dict[str, RejectedEvent]] = {}  # rack -> events its latest replay refused
        snapshot_due: set[str] = set()
        try:
            async with self.store.unit_of_work() as uow:
                await uow.register_racks(
                    (e.rack_id, e.generation, e.serial_number, e.occurred_at) for e in manufactured.values()
                )
                for topic, partition, offset, _, payload in await uow.adopt_orphans(readings=False,
                                                                                   partitions=self._owned):
                    orphan = Message(topic, partition, offset, None, payload.encode())
                    decoded.append((decode_event(orphan.value, LIFECYCLE_TYPES), orphan))  # type: ignore[arg-type]
                known.update(await self.store.generations_of({e.rack_id for e, _ in decoded} - set(known)))
                accepted: list[tuple[RackEvent, Message]] = []
                for event, m in decoded:
                    if event.rack_id in known:
                        accepted.append((event, m))
                    else:
                        letters.append(letter(m, UnknownRack(
                            f"rack {event.rack_id!r} is not known to the fleet: no rack.manufactured recorded; the event"
                            " is adopted if its manufacture arrives later"),
                            rack_id=event.rack_id, event_id=str(event.event_id), source=event.source))
                appended = {a.event_id: a.stream_version
                            for a in await uow.append_events([(e.rack_id, e, m.value) for e, m in accepted])}
                for event, m in accepted:
                    version = appended.get(str(event.event_id))
                    if version is None:
                        continue  # a repeat: already in the rack's stream, already folded
                    twin = touched.get(event.rack_id) or await self._twin(event.rack_id)
                    rejection: RejectedEvent | None
                    if twin.needs_replay(event):
                        history = [LIFECYCLE_TYPES[t].model_validate_json(body)
                                   for t, body in await uow.stream(event.rack_id)]
                        twin, refused = _fold_all(event.rack_id, history, self.state.catalog)
                        await uow.resolve_rejections(event.rack_id, refused)  # a late event can make others legal
                        refolded[event.rack_id] = refused
                        rejection = next((RejectedEvent(r.detail, reason=r.reason) for r in twin.rejected
                                          if r.event_id == str(event.event_id)), None)
                    else:
                        rejection = twin.fold(event, self.state.catalog.as_of(known[event.rack_id], event.occurred_at))
                        if rejection is not None and event.rack_id in refolded:
                            refolded[event.rack_id][str(event.event_id)] = rejection
                    if rejection is not None:
                        letters.append(letter(m, rejection, rack_id=event.rack_id, event_id=str(event.event_id),
                                              source=event.source))
                    versions[event.rack_id] = version
                    if version % SNAPSHOT_EVERY == 0:
                        snapshot_due.add(event.rack_id)
                    self.twins[event.rack_id] = touched[event.rack_id] = twin
                await uow.project_lifecycle(_state_row(t, versions[r]) for r, t in touched.items())
                await uow.save_snapshots((r, versions[r], touched[r].last_event_at, touched[r].snapshot())
                                         for r in snapshot_due if touched[r].last_event_at is not None)
                await self._judge(uow, touched.values())
                letters = [d for d in letters if not _made_legal(d, refolded)]
                await uow.record_deadletters(letters)
                await uow.track(self.state.group_id, offsets)
        except Exception:
            self.evict(touched)
            raise
        self._committed(offsets)
        metrics.EVENTS_IN.labels(self.role).inc(len(messages))
        metrics.BATCH_SIZE.labels(self.role).observe(len(messages))
        metrics.BATCH_SECONDS.labels(self.role).observe(time.perf_counter() - started)
        metrics.TWINS_HELD.labels(self.role).set(len(self.twins))
        await self._publish(letters, [])


def _made_legal(d: DeadLetter, refolded: dict[str, dict[str, RejectedEvent]]) -> bool:
    """A refusal of this batch that a later replay of its rack (a late predecessor) accepted after all."""
    return (d.reason in ("missing-tests", "illegal-transition") and d.rack_id in refolded
            and d.event_id is not None and d.event_id not in refolded[d.rack_id])


def _fold_all(rack_id: str, history: Sequence[RackEvent], catalog: IntentCatalog
              ) -> tuple[RackTwin, dict[str, RejectedEvent]]:
    """`RackTwin.replay`, also returning every event it refused, by id (the twin keeps only the last few)."""
    twin = RackTwin(rack_id)
    refused: dict[str, RejectedEvent] = {}
    for event in sorted(history, key=event_key):
        intent = catalog.as_of(twin.generation, event.occurred_at) if twin.generation else None
        rejection = twin.fold(event, intent)
        if rejection is not None:
            refused[str(event.event_id)] = rejection
    return twin, refused


def _state_row(twin: RackTwin, stream_version: int) -> StateRow:
    snapshot = twin.snapshot()
    last = snapshot["last_event"]
    return StateRow(
        rack_id=twin.rack_id, generation=twin.generation, status=twin.status.value, version=twin.version,
        stream_version=stream_version, facility_id=twin.facility_id, hall_id=twin.hall_id, row_id=twin.row_id,
        position=twin.position, stage_entered_at=twin.stage_entered_at.get(twin.status),
        lifecycle_at=datetime.fromisoformat(last["occurred_at"]) if last else None, twin=snapshot,
    )


class IntentPipeline(_Pipeline):
    """Facilities, design-intent revisions and rollout plans: stored, then used by every worker."""

    role = "intent"

    def __init__(self, store: TwinStore, state: WorkerState, emit: Emit | None = None) -> None:
        super().__init__(store, state, emit)
        self._unjudged: set[str] = set()
        """Generations with a revision published in memory whose racks are not re-judged in the
        database yet: kept across a failed transaction, so that its retry re-judges them too."""

    async def handle(self, messages: Sequence[Message]) -> None:
        async with self.lock:
            await self._handle(messages)

    async def _handle(self, messages: Sequence[Message]) -> None:
        fresh, offsets = await self._fresh(messages)
        letters: list[DeadLetter] = []
        events: list[tuple[Any, Message]] = []
        for m in fresh:
            try:
                events.append((decode_event(m.value, INTENT_TYPES), m))
            except RejectedEvent as exc:
                letters.append(letter(m, exc))
        self._unjudged |= {event.intent.generation for event, _ in events if isinstance(event, IntentPublished)
                           and self.state.catalog.publish(event.intent, event.occurred_at)}
        async with self.store.unit_of_work() as uow:
            await uow.append_events([(_intent_stream(e), e, m.value) for e, m in events])
            for event, _ in events:
                if isinstance(event, IntentPublished):
                    i = event.intent
                    await uow.upsert_reference(
                        "INSERT INTO generation_intents (generation, revision, published_at, body) VALUES (%s, %s, %s, %s)"
                        " ON CONFLICT DO NOTHING",
                        [(i.generation, i.revision, event.occurred_at, Jsonb(i.model_dump(mode="json")))],
                    )
                elif isinstance(event, FacilityRegistered):
                    await uow.register_facility(event.facility, event.occurred_at)
                elif isinstance(event, (CoolantLoopDeclared, PowerFeedDeclared)):
                    await declare_topology(uow, event)
                elif isinstance(event, RolloutPlanPublished):
                    await uow.upsert_reference(
                        "INSERT INTO rollout_targets (revision, facility_id, generation, quarter, racks_in_service)"
                        " VALUES (%s, %s, %s, %s, %s) ON CONFLICT DO NOTHING",
                        [(event.revision, t.facility_id, t.generation, t.quarter, t.racks_in_service)
                         for t in event.targets],
                    )
            # A new revision re-judges every twin of its generation in the same transaction as the
            # revision itself: stage, parts and firmware here; telemetry checks by each telemetry
            # pipeline holding the twins, on its next batch or sweep.
            racks = 0
            if self._unjudged:
                stored = await uow.twins_of_generations(sorted(self._unjudged))
                racks = await _judge_lifecycle(uow, self.state.catalog,
                                               (RackTwin.from_snapshot(body) for body in stored.values()))
            await uow.record_deadletters(letters)
            await uow.track(self.state.group_id, offsets)
        if self._unjudged:
            log.info("new design intent re-judged racks", generations=sorted(self._unjudged), racks=racks)
            self._unjudged.clear()
        self._committed(offsets)
        metrics.EVENTS_IN.labels(self.role).inc(len(messages))
        await self._publish(letters, [])


async def _judge_lifecycle(uow: UnitOfWork, catalog: IntentCatalog, twins: Iterable[RackTwin]) -> int:
    """Stage, parts and firmware checks of these twins under their generation's latest intent,
    written as their lifecycle-family deviations (none for a twin without an intent); how many."""
    now = _now()
    judged = 0
    for twin in twins:
        intent = catalog.latest(twin.generation) if twin.generation else None
        found = evaluate(twin, intent, now, only="lifecycle") if intent else []
        await uow.replace_deviations(twin.rack_id, _deviation_rows(found, now), TELEMETRY_CHECKS, family=False)
        judged += 1
    return judged


def _intent_stream(event: Any) -> str:
    if isinstance(event, IntentPublished):
        return f"intent:{event.intent.generation}"
    if isinstance(event, FacilityRegistered):
        return f"facility:{event.facility.facility_id}"
    if isinstance(event, CoolantLoopDeclared):
        return f"coolant-loop:{event.loop_id}"
    if isinstance(event, PowerFeedDeclared):
        return f"power-feed:{event.feed_id}"
    return "rollout"
