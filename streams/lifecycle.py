"""Lifecycle, component and test events -> the rack's event stream -> its folded twin.

    events ─▶ decode ─▶ clock skew ─▶ unknown rack (adopted with its manufacture) ─▶ unknown location (adopted later)
           ─▶ append to the rack's stream (a conflicting duplicate comes back refused)
           ─▶ fold: in order, one event at a time; a late event, the rack's whole history
              (`fold_history`, the one replay), whose refusals settle the rack's dead letters
           ─▶ rack_lifecycle + lifecycle-family deviations ─▶ handed to this worker's telemetry side

Every refusal is a dead letter once, keyed by the refused event's own message (its origin), also
when a late event changes the verdict on events that arrived long before.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from datetime import datetime, timezone
from typing import Any

import structlog

from schemas import LIFECYCLE_TYPES, DeadLetter, RackEvent, RackManufactured
from streams import metrics
from streams.batch import Pipeline, WorkerState, now
from streams.deadletter import letter
from twin.messages import Record
from twin.domain.conformance import TELEMETRY_CHECKS, evaluate
from twin.domain.decoding import decode_event
from twin.domain.intake import check_clock, check_location, location_of
from twin.domain.intent import IntentCatalog
from twin.domain.rack import RackTwin, fold_history
from twin.errors import FOLD_REASONS, ConflictingDuplicate, RejectedEvent, UnknownRack
from twin.store import StateRow, StoredEvent, TwinStore, UnitOfWork

__all__ = ["STALL_SWEEP_SECONDS", "LifecyclePipeline", "judge_lifecycle", "state_row"]

log = structlog.get_logger(__name__)

STALL_SWEEP_SECONDS = 60.0
"""How often racks standing still are judged for stalls (allowances are days: a minute is plenty)."""


class LifecyclePipeline(Pipeline):
    """Lifecycle, component and test events -> the rack's event stream -> its folded twin."""

    role = "lifecycle"

    def __init__(self, store: TwinStore, state: WorkerState, emit: Any = None) -> None:
        super().__init__(store, state, emit)
        self.twins: dict[str, RackTwin] = {}
        self._refolded_marker: tuple[int, int] = (-1, -1)
        self._stalls_judged = 0.0
        self._revisions: dict[tuple[str, int], datetime | None] | None = None
        """Intent revisions this pipeline has seen (None: not yet read), to tell which are new."""

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

    async def handle(self, messages: Sequence[Record]) -> None:
        async with self.lock:
            await self._handle(messages)

    async def sweep(self) -> None:
        """Adopt events whose rack or location became known since they were refused; re-fold racks
        with open fold refusals once the catalog changed; judge stalls."""
        await self.handle([])
        async with self.lock:
            await self._refold_gated()
            if time.monotonic() - self._stalls_judged > STALL_SWEEP_SECONDS:
                await self._judge_stalls()

    async def _judge_stalls(self) -> None:
        """Time moves on without events: re-judge racks standing in a stage that has an allowance."""
        self._stalls_judged = time.monotonic()
        stages = sorted({stage for i in self.state.catalog for stage in i.stage_allowance_days})
        async with self.store.unit_of_work() as uow:
            twins = [RackTwin.from_snapshot(body) for body in
                     (await uow.twins_in_stages(stages, self._owned)).values() if body]
            await judge_lifecycle(uow, self.state.catalog, twins)

    async def _refold(self, uow: UnitOfWork, rack_id: str) -> tuple[RackTwin, int, list[DeadLetter]]:
        """Fold a rack's whole stored history (the one replay) and settle its fold refusals' letters."""
        stored = await uow.stream(rack_id)
        events = [LIFECYCLE_TYPES[e.type].model_validate_json(e.body) for e in stored]
        replay = fold_history(rack_id, events, self.state.catalog)
        by_id = {str(ev.event_id): e for ev, e in zip(events, stored)}
        changed = await uow.settle_refusals(rack_id, [
            (r, by_id[event_id].origin, by_id[event_id].body.decode()) for event_id, r in replay.refused.items()])
        return replay.twin, len(stored), changed

    def _new_revisions(self) -> tuple[dict[str, datetime], set[str], dict[tuple[str, int], datetime | None]]:
        """Per generation, the earliest instant from which a revision new since the last look is in
        force; the generations whose latest revision is new; and every revision known now
        (remembered once the re-fold committed)."""
        catalog = self.state.catalog
        now_known = {(g, r): catalog.published_at(g, r) for g in catalog.generations() for r in catalog.revisions(g)}
        seen = self._revisions
        if seen is None:
            return {}, set(), now_known
        revised = {g for g in catalog.generations() if (g, catalog.revisions(g)[-1]) not in seen}
        since: dict[str, datetime] = {}
        judged_by = {g for g, _ in seen}  # a generation's first revision: its racks were refused, not judged
        for (g, _), at in now_known.items():
            if (g, _) not in seen and g in judged_by:
                at = at or datetime.min.replace(tzinfo=timezone.utc)
                since[g] = min(at, since.get(g, at))
        return since, revised, now_known

    async def _refold_gated(self) -> None:
        """Follow a catalog change, for the racks of the partitions this pipeline owns (the lifecycle
        side is the one writer of their lifecycle state and lifecycle-family deviations): fold again
        the racks whose verdicts it can change (an open fold refusal, say refused before their
        generation's intent was known; an entry into service under a revision published since), and
        judge every rack of a generation with a new latest revision by it."""
        if self.state.catalog_marker == self._refolded_marker:
            return
        marker = self.state.catalog_marker
        refolded: dict[str, tuple[RackTwin, int]] = {}
        letters: list[DeadLetter] = []
        since, revised, revisions = self._new_revisions()
        async with self.store.unit_of_work() as uow:
            racks = set(await uow.gated_racks(self.state.catalog.generations(), self._owned))
            racks.update(await uow.racks_entering_service_since(since, self._owned))
            for rack_id in sorted(racks):
                twin, version, changed = await self._refold(uow, rack_id)
                refolded[rack_id] = (twin, version)
                letters += changed
            rows = {r: state_row(t, v) for r, (t, v) in refolded.items()}
            await uow.project_lifecycle(rows.values())
            rejudged = {r: RackTwin.from_snapshot(body) for r, body in
                        (await uow.twins_of_generations(sorted(revised), self._owned)).items() if r not in refolded}
            await judge_lifecycle(uow, self.state.catalog, [*(t for t, _ in refolded.values()), *rejudged.values()])
        self._refolded_marker, self._revisions = marker, revisions
        for rack_id, (twin, _) in refolded.items():
            self.twins[rack_id] = twin
        self.state.hand_over({r: row.twin for r, row in rows.items()})
        if refolded or rejudged:
            log.info("followed a catalog change", refolded=len(refolded), rejudged=len(rejudged),
                     generations=sorted(revised))
        await self._publish(letters, [])

    def _intake(self, m: Record, clock: datetime, letters: list[DeadLetter]) -> RackEvent | None:
        """The event in `m`, if it passes decoding and the clock; else its dead letter."""
        try:
            event: RackEvent = decode_event(m.value, LIFECYCLE_TYPES)  # type: ignore[assignment]
        except RejectedEvent as exc:
            letters.append(letter(m, exc))
            return None
        try:
            check_clock(event.occurred_at, clock, self.state.clock_skew, f"{event.type} {event.event_id}")
        except RejectedEvent as exc:
            letters.append(letter(m, exc, rack_id=event.rack_id, event_id=str(event.event_id), source=event.source))
            return None
        return event

    async def _handle(self, messages: Sequence[Record]) -> None:
        started = time.perf_counter()
        await self.state.refresh_catalog(self.store)
        if self._revisions is None:  # what this pipeline folds by from now on; later revisions re-fold
            self._revisions = self._new_revisions()[1]
        fresh, offsets = await self._fresh(messages)
        clock = now()
        letters: list[DeadLetter] = []
        decoded = [(e, m) for m in fresh if (e := self._intake(m, clock, letters)) is not None]
        touched: dict[str, RackTwin] = {}
        rows: dict[str, StateRow] = {}
        try:
            async with self.store.unit_of_work() as uow:
                known = await self.store.generations_of({e.rack_id for e, _ in decoded})
                manufactured: dict[str, RackManufactured] = {}
                for event, _ in decoded:
                    if isinstance(event, RackManufactured) and event.rack_id not in known:
                        manufactured.setdefault(event.rack_id, event)
                await uow.register_racks(
                    (e.rack_id, e.generation, e.serial_number, e.occurred_at) for e in manufactured.values())
                known.update({r: e.generation for r, e in manufactured.items()})
                # After the registration: events that came before their rack's manufacture join it in
                # the batch that brings the manufacture, so a committed offset means a settled rack.
                adopted: list[tuple[RackEvent, Record]] = []
                for orphan in await uow.adopt_orphans(readings=False, partitions=self._owned):
                    m = Record(orphan.topic, orphan.partition, orphan.offset, None, orphan.payload.encode())
                    adopted.append((decode_event(m.value, LIFECYCLE_TYPES), m))  # type: ignore[arg-type]
                decoded += adopted
                known.update(await self.store.generations_of({e.rack_id for e, _ in adopted} - known.keys()))
                places = await uow.known_locations(p for e, _ in decoded if (p := location_of(e)) is not None)
                accepted: list[tuple[RackEvent, Record]] = []
                for event, m in decoded:
                    try:
                        if event.rack_id not in known:
                            raise UnknownRack(
                                f"rack {event.rack_id!r} is not known to the fleet: no rack.manufactured recorded;"
                                " the event is adopted if its manufacture arrives later")
                        check_location(event, places)
                    except RejectedEvent as exc:
                        letters.append(letter(m, exc, rack_id=event.rack_id, event_id=str(event.event_id),
                                              source=event.source))
                        continue
                    accepted.append((event, m))
                appended = await uow.append_events(
                    [StoredEvent(e.rack_id, e, m.value, (m.topic, m.partition, m.offset)) for e, m in accepted])
                for item in appended.conflicting:
                    e, (topic, partition, offset) = item.event, item.origin  # type: ignore[misc]
                    letters.append(letter(Record(topic, partition, offset, None, item.raw  # type: ignore[arg-type]
                                                  if isinstance(item.raw, bytes) else item.raw.encode()),
                                          ConflictingDuplicate(
                                              f"event_id {e.event_id} arrived before with another body; the first"
                                              " is kept"), rack_id=e.rack_id, event_id=str(e.event_id),
                                          source=e.source))
                versions = {a.event_id: a.stream_version for a in appended.new}
                late: set[str] = set()  # racks a late event sends back to their whole history
                for event, m in accepted:
                    version = versions.pop(str(event.event_id), None)
                    if version is None or event.rack_id in late:
                        continue  # a repeat (or a rack to be replayed whole below)
                    twin = touched.get(event.rack_id) or await self._twin(event.rack_id)
                    if twin.needs_replay(event):
                        late.add(event.rack_id)
                        continue
                    rejection = twin.fold(event, self.state.catalog)  # as the replay: the revision in force then
                    if rejection is not None:
                        letters.append(letter(m, rejection, rack_id=event.rack_id, event_id=str(event.event_id),
                                              source=event.source))
                    touched[event.rack_id] = twin
                    rows[event.rack_id] = state_row(twin, version)
                if late:  # their letters of this batch come from the replay, each under its own message
                    letters = [d for d in letters if not (d.rack_id in late and d.reason in FOLD_REASONS)]
                    for rack_id in sorted(late):
                        twin, version, changed = await self._refold(uow, rack_id)
                        touched[rack_id] = twin
                        rows[rack_id] = state_row(twin, version)
                        letters += changed
                await uow.project_lifecycle(rows.values())
                await judge_lifecycle(uow, self.state.catalog, touched.values())
                await uow.record_deadletters([d for d in letters if not (d.rack_id in late
                                                                         and d.reason in FOLD_REASONS)])
                await uow.track(self.state.group_id, offsets)
        except Exception:
            self.evict(touched)
            raise
        self.twins.update(touched)
        self.state.hand_over({r: row.twin for r, row in rows.items()})
        self._committed(offsets)
        metrics.EVENTS_IN.labels(self.role).inc(len(messages))
        metrics.BATCH_SIZE.labels(self.role).observe(len(messages))
        metrics.BATCH_SECONDS.labels(self.role).observe(time.perf_counter() - started)
        metrics.TWINS_HELD.labels(self.role).set(len(self.twins))
        await self._publish(letters, [])


def state_row(twin: RackTwin, stream_version: int) -> StateRow:
    """The lifecycle side of a rack's current state, as `rack_lifecycle` holds it."""
    snapshot = twin.snapshot()
    return StateRow(
        rack_id=twin.rack_id, generation=twin.generation, status=twin.status.value, version=twin.version,
        stream_version=stream_version, facility_id=twin.facility_id, hall_id=twin.hall_id, row_id=twin.row_id,
        position=twin.position, stage_entered_at=twin.stage_entered_at.get(twin.status),
        lifecycle_at=twin.last_event_at, twin=snapshot,
    )


async def judge_lifecycle(uow: UnitOfWork, catalog: IntentCatalog, twins: Iterable[RackTwin]) -> int:
    """Stage, parts and firmware checks of these twins under their generation's latest intent,
    written as their lifecycle-family deviations (none for a twin without an intent); how many."""
    clock = now()
    judged = 0
    for twin in twins:
        intent = catalog.latest(twin.generation) if twin.generation else None
        found = evaluate(twin, intent, clock, only="lifecycle") if intent else []
        await uow.replace_deviations(twin.rack_id, found, clock, TELEMETRY_CHECKS, family=False)
        judged += 1
    return judged
