"""What every topic's pipeline shares: the worker's state, tracked offsets, eviction, publishing.

    messages ─▶ skip what is tracked ─▶ the topic's own work (telemetry.py, lifecycle.py, intent.py)
                                          │
                                          ▼
                 one transaction: facts + current state + dead letters + offsets (twin.store)
                                          │
                                          ▼
                        publish dead letters and deviation changes (after commit)

A failed transaction leaves nothing behind: the twins it touched are dropped from memory and
reloaded from the database when the batch is retried. Faust agents call the pipelines
(streams/app.py); the benchmark and tests call them too, so what is measured is what runs.
"""

from __future__ import annotations

import asyncio
import gc
from bisect import bisect_left
from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import datetime, timedelta, timezone
from typing import Any

from prometheus_client import Histogram

from schemas import DeadLetter, DeviationChanged, GenerationIntent
from streams import metrics
from twin.messages import Record
from twin.domain.intake import DEFAULT_CLOCK_SKEW
from twin.domain.intent import IntentCatalog
from twin.store import TwinStore

__all__ = ["Emit", "Pipeline", "WorkerState", "now", "slices", "no_cyclic_gc", "observe_many"]

Emit = Callable[[str, bytes | None, bytes], Awaitable[None]]
"""Publish (role, key, value) after a commit; role is `deadletter` or `deviations`."""


def now() -> datetime:
    """The worker's clock (the one place a pipeline reads it)."""
    return datetime.now(timezone.utc)


class WorkerState:
    """What one worker process holds in memory and its pipelines share: the design-intent catalog,
    the clock-skew bound, and the lifecycle changes its lifecycle side hands to its telemetry side.

    Why a hand-over: when one worker owns both a rack's lifecycle and its telemetry partition, the
    telemetry side should not wait for a database poll to learn that the rack entered service.
    Changes made by other workers arrive through PostgreSQL instead (`TelemetryPipeline.refresh_lifecycle`).
    """

    def __init__(self, group_id: str, stale_after_seconds: float = 30.0,
                 clock_skew: timedelta = DEFAULT_CLOCK_SKEW) -> None:
        self.group_id = group_id
        self.catalog = IntentCatalog()
        """Only revisions whose transaction committed (an intent pipeline swaps in a new catalog after commit)."""
        self.stale_after_seconds = stale_after_seconds
        self.clock_skew = clock_skew
        self.catalog_marker: tuple[int, int] = (-1, -1)
        self.lifecycle_changed: dict[str, dict[str, Any]] = {}
        """rack -> its lifecycle twin snapshot, committed by this worker's lifecycle side, not yet taken
        by its telemetry side."""

    async def refresh_catalog(self, store: TwinStore) -> bool:
        """Reload intents when another worker published a revision; True when anything changed."""
        marker = await store.intent_revision_marker()
        if marker == self.catalog_marker:
            return False
        catalog = self.catalog.copy()
        for body, published_at in await store.intents():
            catalog.publish(GenerationIntent.model_validate(body), published_at)
        self.catalog, self.catalog_marker = catalog, marker
        return True

    def hand_over(self, snapshots: Mapping[str, dict[str, Any]]) -> None:
        """Committed lifecycle twins, for the telemetry side of this worker."""
        self.lifecycle_changed.update(snapshots)

    def take_lifecycle(self) -> dict[str, dict[str, Any]]:
        taken, self.lifecycle_changed = self.lifecycle_changed, {}
        return taken


class Pipeline:
    """Shared mechanics: tracked offsets, dead letters, emission, metrics, eviction on failure.

    `lock` serialises a pipeline's use of its one database connection between its agent and
    its timer (the sweep).
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

    async def _fresh(self, messages: Sequence[Record]) -> tuple[list[Record], dict[tuple[str, int], int]]:
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
        """After commit: count and publish each dead letter, publish each deviation change."""
        for d in letters:
            metrics.DEADLETTERS.labels(d.reason).inc()
            if self.emit is not None:
                await self.emit("deadletter", (d.rack_id or "").encode() or None, d.model_dump_json().encode())
        if self.emit is not None:
            for change in changes:
                await self.emit("deviations", change.deviation.rack_id.encode(), change.model_dump_json().encode())


@contextmanager
def no_cyclic_gc() -> Iterator[None]:
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


def observe_many(histogram: Histogram, value: float, times: int) -> None:
    """`histogram.observe(value)`, `times` times over, at the cost of one observation."""
    buckets, bounds, total = (getattr(histogram, a, None) for a in ("_buckets", "_upper_bounds", "_sum"))
    if times == 1 or buckets is None or bounds is None or total is None:  # not prometheus_client's layout
        for _ in range(times):
            histogram.observe(value)
        return
    total.inc(value * times)
    buckets[bisect_left(bounds, value)].inc(times)


def slices(messages: Sequence[Record], max_bytes: int) -> Iterator[Sequence[Record]]:
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
