"""Read models against the real database agree with the pure domain's arithmetic."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta, timezone
from typing import Any

from inprocess import run_pipelines

from twin.store import views
from twin.domain.fleet import Fleet, RolloutPlan, progress, quarter_of
from twin.domain.intent import IntentCatalog
from twin.domain.rack import RackTwin
from twin.embedded.simulator import FaultPlan, FleetSimulator
import pytest

pytestmark = pytest.mark.integration


def test_capacity_and_rollout_progress_in_sql_match_the_domain(tenant: Any) -> None:
    catalog = IntentCatalog.default()
    start = datetime.now(timezone.utc) - timedelta(seconds=20)
    sim = FleetSimulator(21, 150, start, {g: catalog.latest(g) for g in catalog.generations()}, faults=FaultPlan())
    messages = [*sim.reference_messages(), *sim.history_messages(),
                *(m for _, cycle in sim.cycles(1.0, first=start, count=1) for m in cycle)]
    asyncio.run(run_pipelines(tenant.database_url, messages, 500))

    with views.connect(tenant.database_url) as conn:
        twins = [RackTwin.from_snapshot(r["twin"]) for r in conn.execute("SELECT twin FROM rack_state")]
        rows = views.capacity(conn)
        quarter = quarter_of(datetime.now(timezone.utc))
        plan_rows = views.rollout_progress(conn, quarter)

    fleet = Fleet()
    for facility in sim.facilities:
        fleet.register(facility)
    expected = {(c.facility_id, c.hall_id, c.row_id): c for c in fleet.capacity(twins, catalog) if c.row_id}
    assert {(r["facility_id"], r["hall_id"], r["row_id"]) for r in rows} == set(expected)
    for r in rows:
        c = expected[(r["facility_id"], r["hall_id"], r["row_id"])]
        assert r["allocated_watts"] == c.allocated_draw_watts
        assert r["racks"] == c.racks
        assert r["available_power_watts"] == c.available_power_watts
    assert any(r["allocated_watts"] > 0 for r in rows)

    plan = RolloutPlan()
    plan.publish(1, sim.plan_targets)
    domain = {(p.facility_id, p.generation): (p.in_service, p.target) for p in progress(plan, twins, quarter)}
    assert {(p["facility_id"], p["generation"]): (p["in_service"], p["target"]) for p in plan_rows} == domain
