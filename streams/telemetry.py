"""Telemetry reports -> readings stored as facts; the newest reading per rack -> current state,
health and deviations.

    reports ─▶ decode (bad reading, wrong rack: dead letter by index) ─▶ clock skew ─▶ unknown rack
            ─▶ copy as facts (a conflicting duplicate comes back refused) ─▶ observe into twins
            ─▶ judge racks whose newest reading changed ─▶ rack_telemetry + deviations

This is the hot path (75,000 racks a second is the goal): per-reading work is kept to what the
rules need, and whatever can be done per report or per rack is.
"""

from __future__ import annotations

import operator
import time
from bisect import bisect_right
from collections import Counter
from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta
from typing import Any

import structlog

from schemas import DeadLetter, Deviation, DeviationChanged, RackReading
from streams import metrics
from streams.batch import Pipeline, WorkerState, no_cyclic_gc, now, observe_many, slices
from streams.deadletter import letter
from twin.messages import Record
from streams.memory import release_free_memory
from twin.domain.calm import CalmBands, calm_judgement
from twin.domain.conformance import TELEMETRY_CHECKS, deviation_changes, evaluate
from twin.domain.decoding import decode_report, positions
from twin.domain.health import assess
from twin.domain.intake import check_clock
from twin.domain.lifecycle import RackStatus
from twin.domain.rack import TELEMETRY_SIDE_BLANKS, RackTwin, ReadingWindow
from twin.errors import ClockSkew, ConflictingDuplicate, RejectedEvent, UnknownRack
from twin.store import TwinStore

__all__ = ["LIFECYCLE_FRESHNESS_SECONDS", "LOAD_CHUNK", "SLICE_BYTES", "TelemetryPipeline"]

log = structlog.get_logger(__name__)

LOAD_CHUNK = 250
"""Twins loaded from the database per query."""

SLICE_BYTES = 8 * 1024 * 1024
"""Most report bytes applied in one transaction (about 16,000 readings)."""

LIFECYCLE_FRESHNESS_SECONDS = 1.0
"""How often lifecycle changes committed by other workers are read from PostgreSQL: the freshness
bound of the lifecycle state (stage, placement) the telemetry side judges by, for racks whose
lifecycle another worker owns. Changes by this worker's own lifecycle side arrive in process, by
the next telemetry batch."""

_WINDOW = ReadingWindow.CAPACITY
_UTC = timedelta(0)
_occurred_at = operator.attrgetter("occurred_at")


class _Taken:
    """The readings of a batch in arrival order, and where each came from (for its dead letter).

    Where is kept per report, not per reading (the hot path pays for no tuple per reading): a
    reading's report is found by bisection, and only when the reading is refused.
    """

    __slots__ = ("sources", "readings", "_starts", "_reports")

    def __init__(self) -> None:
        self.sources: list[str] = []
        self.readings: list[RackReading] = []
        self._starts: list[int] = []
        self._reports: list[tuple[Record, str | None, Sequence[int]]] = []
        """(message, report event_id, each reading's index in the message) per report."""

    def __len__(self) -> int:
        return len(self.readings)

    def add(self, m: Record, report_id: str | None, source: str, readings: Sequence[RackReading],
            indexes: Sequence[int]) -> None:
        if not readings:
            return
        self._starts.append(len(self.readings))
        self._reports.append((m, report_id, indexes))
        self.sources += [source] * len(readings)
        self.readings += readings

    def pairs(self) -> list[tuple[str, RackReading]]:
        return list(zip(self.sources, self.readings))

    def _where(self, i: int) -> tuple[Record, str | None, int]:
        k = bisect_right(self._starts, i) - 1
        m, report_id, indexes = self._reports[k]
        return m, report_id, indexes[i - self._starts[k]]

    def without(self, dropped: Iterable[int]) -> _Taken:
        gone = set(dropped)
        out = _Taken()
        for i, (s, r) in enumerate(zip(self.sources, self.readings)):
            if i not in gone:
                m, report_id, index = self._where(i)
                out.add(m, report_id, s, (r,), (index,))
        return out

    def refuse(self, i: int, error: RejectedEvent) -> DeadLetter:
        m, report_id, index = self._where(i)
        r = self.readings[i]
        return letter(m, error, index=index, payload=r.model_dump_json(), rack_id=r.rack_id, event_id=report_id,
                      source=self.sources[i])


def per_rack(readings: Iterable[RackReading]) -> dict[str, list[RackReading]]:
    """A batch's readings grouped by rack, in arrival order."""
    out: dict[str, list[RackReading]] = {}
    for r in readings:
        rs = out.get(r.rack_id)
        if rs is None:
            out[r.rack_id] = [r]
        else:
            rs.append(r)
    return out


def newest_distinct(rs: Sequence[RackReading], n: int) -> list[RackReading]:
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


class TelemetryPipeline(Pipeline):
    """Reports -> readings stored as facts; newest reading per rack -> current state, health, deviations."""

    role = "telemetry"

    def __init__(self, store: TwinStore, state: WorkerState, emit: Any = None) -> None:
        super().__init__(store, state, emit)
        self.twins: dict[str, RackTwin] = {}
        self.open: dict[str, dict[str, Deviation]] = {}
        self._lifecycle_read = 0.0
        self._lifecycle_watermark: int | None = None
        self._seq = 0
        self._judged: dict[str, int] | None = None
        self._bands: dict[tuple[str, int, RackStatus], CalmBands] = {}
        self._calm: dict[str, tuple[CalmBands, int]] = {}
        """Per rack, the bands its newest readings were held to and how many in a row were calm (`twin.domain.calm`)."""

    def evict(self, rack_ids: Iterable[str] | None = None) -> None:
        if rack_ids is None:
            self.twins.clear()
            self.open.clear()
            self._calm.clear()
        else:
            for rack_id in rack_ids:
                self.twins.pop(rack_id, None)
                self.open.pop(rack_id, None)
                self._calm.pop(rack_id, None)
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

    def _take_lifecycle_side(self, snapshots: dict[str, dict[str, Any]]) -> None:
        """Swap in the lifecycle side of twins we hold, keeping their telemetry side (the window)."""
        for rack_id, snapshot in snapshots.items():
            twin = self.twins.get(rack_id)
            if twin is not None and snapshot:
                fresh = RackTwin.from_snapshot({**snapshot, **TELEMETRY_SIDE_BLANKS})
                fresh.take_telemetry_side(twin)
                self.twins[rack_id] = fresh

    async def refresh_lifecycle(self, every_seconds: float = LIFECYCLE_FRESHNESS_SECONDS) -> None:
        """Take the lifecycle side (stage, generation, placement) the lifecycle side wrote: this
        worker's at once, in process; other workers' from PostgreSQL, at most `every_seconds` late."""
        self._take_lifecycle_side(self.state.take_lifecycle())
        clock = time.monotonic()
        if clock - self._lifecycle_read < every_seconds:
            return
        self._lifecycle_read = clock
        changed, self._lifecycle_watermark = await self.store.lifecycle_changes(self._lifecycle_watermark)
        unplaced = [r for r, t in self.twins.items() if t.generation is None and r not in changed]
        if unplaced:  # loaded before the lifecycle side existed: take it as soon as it does
            changed.update({r: v["twin"] for r, v in (await self.store.states(unplaced, parts=False)).items()
                            if v["twin"]})
        self._take_lifecycle_side(changed)
        release_free_memory()  # between batches, at most once per `every_seconds`: what the last one freed

    def _decode(self, fresh: Sequence[Record], letters: list[DeadLetter], clock: datetime) -> _Taken:
        """Each report's good readings with where they came from; bad input becomes dead letters."""
        taken = _Taken()
        bound = self.state.clock_skew
        for m in fresh:
            try:
                decoded = decode_report(m.value)
            except RejectedEvent as exc:
                letters.append(letter(m, exc))
                continue
            report = decoded.report
            source = report.source if report is not None else None
            report_id = decoded.event_id
            for bad in decoded.bad:
                letters.append(letter(m, bad.error, index=bad.index, payload=bad.payload, rack_id=bad.rack_id,
                                      event_id=report_id, source=source))
            if report is None:
                continue
            readings = report.readings
            at: Sequence[int] = positions(decoded)
            latest = max(map(_occurred_at, readings))
            if latest - clock > bound:  # rare: look reading by reading
                kept = []
                for i, r in zip(at, readings):
                    try:
                        check_clock(r.occurred_at, clock, bound, f"reading {i} of rack {r.rack_id}")
                        kept.append((i, r))
                    except ClockSkew as exc:
                        letters.append(letter(m, exc, index=i, payload=r.model_dump_json(), rack_id=r.rack_id,
                                              event_id=report_id, source=source))
                at, readings = [i for i, _ in kept], tuple(r for _, r in kept)
            taken.add(m, report_id, source, readings, at)  # type: ignore[arg-type]
        return taken

    def _calm_bands(self, generation: str | None, status: RackStatus) -> CalmBands | None:
        """The calm bands of a generation's latest intent at a stage (None: no intent to judge by)."""
        intent = self.state.catalog.latest(generation) if generation else None  # type: ignore[union-attr]
        if intent is None:
            return None
        key = (intent.generation, intent.revision, status)
        bands = self._bands.get(key)
        if bands is None:
            bands = self._bands[key] = CalmBands.of(intent, status)
        return bands

    def _observe(self, rack_id: str, rs: Sequence[RackReading], generation: str,
                 newest: dict[str, RackReading], changed: dict[str, RackTwin]) -> int:
        """Observe one rack's readings; how many of its newest in a row are calm (0: no intent to judge by)."""
        twin = self.twins[rack_id]
        bands = self._calm_bands(generation, twin.status)
        held = self._calm.get(rack_id)
        run = held[1] if held is not None and held[0] is bands else 0
        w = twin.window
        was = w.latest_us if w is not None else None
        for r in rs if len(rs) <= _WINDOW else newest_distinct(rs, _WINDOW):
            if twin.observe(r):
                changed[rack_id] = twin
                latest = twin.window.latest_us  # type: ignore[union-attr]
                if latest == was:  # went in among older readings
                    run = 0
                else:
                    run = run + 1 if bands is not None and bands.calm(r) else 0
                    was = latest
                    newest[rack_id] = r
        if bands is None:
            return 0
        self._calm[rack_id] = (bands, run)
        return run

    def _fold(self, readings: Sequence[RackReading], known: dict[str, str], changed: dict[str, RackTwin]
              ) -> tuple[list[Any], dict[str, dict[str, Deviation]], list[DeviationChanged]]:
        """Observe readings; judge each rack whose newest reading changed (fills `changed`).

        A rack whose window is all calm, under the bands of the intent judging it now, is judged
        by `calm_judgement`, sparing the full judgement (`twin.domain.calm`).
        """
        newest: dict[str, RackReading] = {}  # per rack, the reading this batch made its window's newest
        calm_runs = {rack_id: self._observe(rack_id, rs, known[rack_id], newest, changed)
                     for rack_id, rs in per_rack(readings).items()}
        revised = self._revised_generations()
        if revised:  # a new intent revision re-judges every twin of its generation, readings or not
            for rack_id, twin in self.twins.items():
                if twin.generation in revised and twin.window and rack_id not in changed:
                    changed[rack_id] = twin
                    known.setdefault(rack_id, twin.generation)
        clock = now()
        projected = []
        updates: dict[str, dict[str, Deviation]] = {}
        changes: list[DeviationChanged] = []
        stale_after = self.state.stale_after_seconds
        for rack_id, twin in changed.items():
            intent = self.state.catalog.latest(known[rack_id])
            latest = newest.get(rack_id)
            if latest is None or latest.occurred_at.utcoffset() != _UTC:  # as the window gives it back: in UTC
                latest = twin.latest
            assert latest is not None
            opened = self.open.get(rack_id, {})
            before = {c: d for c, d in opened.items() if c in TELEMETRY_CHECKS} if opened else opened
            judged = (calm_judgement(twin, intent, clock, stale_after)
                      if calm_runs.get(rack_id, 0) >= len(twin.window) and intent  # type: ignore[arg-type]
                      and twin.generation == intent.generation else None)
            if judged is not None:
                health, after = judged
            else:
                health = assess(twin, intent, clock, stale_after).as_dict()
                after = ({d.check: d for d in evaluate(twin, intent, clock, stale_after_seconds=stale_after,
                                                       only="telemetry")}
                         if intent and twin.generation == intent.generation else {})
            if after != before:
                self._seq += 1
                changes += deviation_changes(rack_id, before, after, latest.occurred_at, self.state.group_id, self._seq)
                updates[rack_id] = after
            projected.append((latest, health, intent.revision if intent else None))
        return projected, updates, changes

    async def handle(self, messages: Sequence[Record]) -> None:
        """Apply a batch, in slices of at most `SLICE_BYTES` of reports, each its own transaction.

        Why slices: what a batch decodes and judges lives until its commit (about 1.5 KB a
        reading, 2 KB a judged rack). A batch of 2,000 reports of 50 readings is 100,000
        readings, and would cost 300 MB at its peak; a slice costs a fifth of that at most. A
        batch of the usual size is one slice. Each slice tracks its own offsets, and slices
        follow the batch's order, so a crash between two leaves the first applied and the
        second to be delivered again, as between two batches.
        """
        async with self.lock:
            for part in slices(messages, SLICE_BYTES):
                with no_cyclic_gc():
                    await self._handle(part)

    async def _handle(self, messages: Sequence[Record]) -> None:
        started = time.perf_counter()
        await self.state.refresh_catalog(self.store)
        await self.refresh_lifecycle()
        fresh, offsets = await self._fresh(messages)
        letters: list[DeadLetter] = []
        taken = self._decode(fresh, letters, now())
        rack_ids = set(r.rack_id for r in taken.readings)
        known = await self.store.generations_of(rack_ids)
        if len(known) != len(rack_ids):  # rare: readings of racks not known (yet) are refused
            unknown = [i for i, r in enumerate(taken.readings) if r.rack_id not in known]
            letters += [taken.refuse(i, UnknownRack(
                f"rack {taken.readings[i].rack_id!r} is not known to the fleet (no rack.manufactured recorded); it"
                " is adopted if its manufacture arrives later")) for i in unknown]
            taken = taken.without(unknown)
        changed: dict[str, RackTwin] = {}
        try:
            async with self.store.unit_of_work() as uow:
                for orphan in await uow.adopt_orphans(readings=True):
                    reading = RackReading.model_validate_json(orphan.payload)
                    taken.add(Record(orphan.topic, orphan.partition, orphan.offset, None, b""), orphan.event_id,
                              orphan.source or "unknown", (reading,), (orphan.idx,))
                    known.update(await self.store.generations_of([reading.rack_id]))
                copied = await uow.copy_readings(taken.pairs())
                if copied.conflicting:
                    letters += [taken.refuse(i, ConflictingDuplicate(
                        f"reading of rack {taken.readings[i].rack_id} at {taken.readings[i].occurred_at.isoformat()}"
                        f" from {taken.sources[i]} arrived before with other values; the first is kept"))
                        for i in copied.conflicting]
                    taken = taken.without(copied.conflicting)
                await self._load(set(known))
                projected, updates, changes = self._fold(taken.readings, known, changed)
                await uow.project_telemetry(projected)
                await uow.replace_deviations_of({r: a.values() for r, a in updates.items()}, now(), TELEMETRY_CHECKS)
                await uow.record_deadletters(letters)
                await uow.track(self.state.group_id, offsets)
        except Exception:
            self.evict(changed)
            raise
        for rack_id, after in updates.items():
            kept = {c: d for c, d in self.open.get(rack_id, {}).items() if c not in TELEMETRY_CHECKS}
            self.open[rack_id] = {**kept, **after}
        self._judged = self._judged_now()
        self._committed(offsets)
        committed = now()
        for at, n in Counter(map(_occurred_at, taken.readings)).items():  # a poll cycle's readings share it
            observe_many(metrics.VISIBLE_LATENCY, max(0.0, (committed - at).total_seconds()), n)
        metrics.EVENTS_IN.labels(self.role).inc(len(messages))
        metrics.READINGS_IN.inc(len(taken))
        metrics.BATCH_SIZE.labels(self.role).observe(len(messages))
        metrics.BATCH_SECONDS.labels(self.role).observe(time.perf_counter() - started)
        metrics.TWINS_HELD.labels(self.role).set(len(self.twins))
        await self._publish(letters, changes)

    async def sweep(self) -> None:
        """Adopt readings of racks that became known since they were refused."""
        await self.handle([])
