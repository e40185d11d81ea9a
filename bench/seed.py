"""Seed a bench database with a whole fleet's lifecycle in bulk, not through a worker.

Why: a simulated rack's history is about 70 lifecycle events, so 100,000 racks are some
7 million events; fed through a worker that takes tens of minutes, and it measures the
lifecycle path, which the steady-state and rebuild benches are not about. Here:

- reference data (facilities, each generation's intent, the rollout plan) goes through the
  store's own `UnitOfWork` methods, as the intent pipeline writes it;
- every rack's history (`FleetSimulator.history`, good events only) is `COPY`-ed into `events`
  as its stream (stream_version 1..n, the body as the simulator's JSON);
- each rack is folded with the one fold (`RackTwin.replay`), registered (`register_racks`) and
  its lifecycle side projected with `UnitOfWork.project_lifecycle` (via the lifecycle
  pipeline's own `state_row`), and judged with its `judge_lifecycle` (stage, parts and firmware
  deviations), so `rack_state` and `deviations` hold what a worker would have written.

The database then satisfies `twin rebuild`: the rebuilt twin of every rack equals its live one.
Dead letters are not written: the seeded histories are the simulator's good events only.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

import orjson
import psycopg

from schemas import FacilityRegistered, IntentPublished, RolloutPlanPublished
from streams.lifecycle import judge_lifecycle, state_row
from twin.domain.intent import IntentCatalog
from twin.domain.rack import RackTwin
from twin.embedded.simulator import FaultPlan, FleetSimulator
from twin.embedded.stack import EmbeddedStack
from twin.store.postgres import TwinStore

__all__ = ["Seeded", "bench_database", "seed_fleet"]

_CHUNK = 2_000  # racks per COPY and per projection transaction


CORE_MIGRATIONS_BELOW = 20
"""Migrations from 0020 on serve the API's reads (indexes, summary tables): the benches here
do not read through them, so a failure among them must not stop a bench."""


def bench_database(stack: EmbeddedStack, name: str) -> str:
    """A fresh database `name`, migrated; if an API migration (0020 on) fails, with the core schema only.

    (On commit 6a60842's main, 0020_api_access indexes `rack_state`, which 0004 made a view.)
    """
    from bench.ingest import console, database
    from twin.errors import StoreError
    from twin.store import migrations

    try:
        return database(stack, name)
    except StoreError as exc:
        if "migration 00" not in str(exc) or int(str(exc).split("migration ")[1][:4]) < CORE_MIGRATIONS_BELOW:
            raise
        console.log(f"[yellow]{exc}: the bench database gets migrations below {CORE_MIGRATIONS_BELOW:04d} only")
        shipped = migrations.available
        migrations.available = lambda: [m for m in shipped() if m.version < CORE_MIGRATIONS_BELOW]  # type: ignore[assignment]
        try:
            return database(stack, name)
        finally:
            migrations.available = shipped  # type: ignore[assignment]


@dataclass(frozen=True, slots=True)
class Seeded:
    racks: int
    events: int
    seconds: float


def _simulator(racks: int, seed: int, start: datetime | None) -> FleetSimulator:
    catalog = IntentCatalog.default()
    intents = {g: catalog.latest(g) for g in catalog.generations()}
    return FleetSimulator(seed, racks, start or datetime.now(timezone.utc), intents, faults=FaultPlan.typical())


async def _seed(url: str, sim: FleetSimulator) -> int:
    store = await TwinStore.connect(url)
    events = 0
    try:
        catalog = IntentCatalog()
        async with store.unit_of_work() as uow:
            for m in sim.reference_messages():
                body: dict[str, Any] = orjson.loads(m.value)
                kind = body["type"]
                if kind == FacilityRegistered.TYPE:
                    f = FacilityRegistered.model_validate(body)
                    await uow.register_facility(f.facility, f.occurred_at)
                elif kind == IntentPublished.TYPE:
                    i = IntentPublished.model_validate(body)
                    await uow.publish_intent(i.intent, i.occurred_at)
                    catalog.publish(i.intent, i.occurred_at)
                elif kind == RolloutPlanPublished.TYPE:
                    r = RolloutPlanPublished.model_validate(body)
                    await uow.publish_rollout(r.revision, r.targets)
        rack_ids = list(sim.racks)
        for at in range(0, len(rack_ids), _CHUNK):
            chunk = rack_ids[at:at + _CHUNK]
            histories = {rid: sim.history(rid) for rid in chunk}
            twins = {rid: RackTwin.replay(rid, h, catalog) for rid, h in histories.items()}
            async with store.unit_of_work() as uow:
                conn: psycopg.AsyncConnection[Any] = uow._conn  # the bulk path: COPY in the same transaction
                async with conn.cursor() as cur:
                    async with cur.copy("COPY events (event_id, stream_id, stream_version, type, schema_version,"
                                        " occurred_at, source, seq, body) FROM STDIN") as copy:
                        for rid, history in histories.items():
                            for n, e in enumerate(history, start=1):
                                await copy.write_row((e.event_id, rid, n, e.type, e.schema_version, e.occurred_at,
                                                      e.source, e.seq, e.model_dump_json()))
                                events += 1
                first = {rid: h[0] for rid, h in histories.items() if h}
                await uow.register_racks((rid, e.generation, e.serial_number, e.occurred_at)  # type: ignore[attr-defined]
                                         for rid, e in first.items())
                await uow.project_lifecycle(state_row(twins[rid], len(histories[rid])) for rid in chunk)
                await judge_lifecycle(uow, catalog, twins.values())  # stage, parts, firmware deviations
    finally:
        await store.close()
    return events


def seed_fleet(url: str, racks: int, *, seed: int = 7, start: datetime | None = None) -> Seeded:
    """Write `racks` racks' reference data, lifecycle histories and lifecycle state into the (migrated)
    database at `url`. Returns how many racks and events, and how long it took."""
    began = time.perf_counter()
    events = asyncio.run(_seed(url, _simulator(racks, seed, start)))
    return Seeded(racks, events, time.perf_counter() - began)
