"""A new design-intent revision re-judges its generation's racks, by the lifecycle side that owns
them (one writer per deviation). The revision commits first; the owner remembers which revisions
it has judged by only once its re-judging commits, so a failed re-judging is done again on the
next sweep, never lost."""

from __future__ import annotations

import asyncio
import uuid
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from inprocess import PARTITIONS, run_pipelines
from worker_process import query

from schemas import IntentPublished
from twin.messages import Record
from streams.batch import WorkerState
from streams.intent import IntentPipeline
from streams.lifecycle import LifecyclePipeline
from twin.errors import StoreError
from twin.domain.intent import IntentCatalog
from twin.embedded.simulator import FleetSimulator
from twin.store import TwinStore

pytestmark = pytest.mark.integration

GENERATION = "gen-a-130kw"
FAIL_ONCE = """
    CREATE TABLE fail_once (armed boolean);
    INSERT INTO fail_once VALUES (true);
    CREATE FUNCTION fail_once() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        IF EXISTS (SELECT 1 FROM fail_once WHERE armed) THEN RAISE EXCEPTION 'injected: the database refused'; END IF;
        RETURN NEW;
    END $$;
    CREATE TRIGGER fail_once BEFORE INSERT OR UPDATE ON deviations FOR EACH ROW EXECUTE FUNCTION fail_once();
"""


def test_a_revision_whose_re_judging_failed_re_judges_its_racks_when_retried(tenant: Any) -> None:
    catalog = IntentCatalog.default()
    start = datetime.now(timezone.utc) - timedelta(seconds=10)
    sim = FleetSimulator(5, 30, start, {g: catalog.latest(g) for g in catalog.generations()})
    current = catalog.latest(GENERATION)
    assert current is not None
    tighter = current.model_copy(update={
        "revision": current.revision + 1,
        "required_components": {**current.required_components,
                                "compute-tray": current.required_components.get("compute-tray", 0) + 1}})
    event = IntentPublished(event_id=uuid.uuid4(), occurred_at=start, source="design-intent", seq=99, intent=tighter)
    revision = [Record(tenant.topics.intent, 0, 1000, GENERATION.encode(), event.model_dump_json().encode())]
    db = tenant.database_url

    async def run() -> None:
        await run_pipelines(db, [*sim.reference_messages(), *sim.history_messages()], 200)
        store = await TwinStore.connect(db)
        await store._conn.execute(FAIL_ONCE)  # noqa: SLF001 - the test's own fault, set up beside the schema
        await store._conn.commit()  # noqa: SLF001
        state = WorkerState("rejudge")
        owner = LifecyclePipeline(await TwinStore.connect(db), state)  # the racks' lifecycle side re-judges them
        owner.own({("lifecycle", p) for p in range(PARTITIONS)})
        await owner.handle([])  # running before the revision arrives
        pipeline = IntentPipeline(store, state)
        await pipeline.start()
        await pipeline.handle(revision)
        with pytest.raises(StoreError, match="injected"):
            await owner.sweep()
        await store._conn.execute("UPDATE fail_once SET armed = false")  # noqa: SLF001 - the database is back
        await store._conn.commit()  # noqa: SLF001
        owner.evict()  # what the worker does before it retries
        await owner.sweep()
        await store.close()
        await owner.store.close()

    asyncio.run(run())
    built = {r for (r,) in query(db, "SELECT rack_id FROM rack_state WHERE generation = %s AND status NOT IN"
                                     " ('planned', 'manufactured', 'decommissioned')", (GENERATION,))}
    judged = {r for (r,) in query(db, "SELECT rack_id FROM deviations WHERE check_name = 'components-missing-compute-tray'"
                                      " AND intent_revision = %s", (tighter.revision,))}
    assert built and judged == built
