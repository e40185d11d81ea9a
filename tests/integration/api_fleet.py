"""A simulated fleet with two partners, loaded once per test module for the API tests."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta, timezone
from typing import Any

from inprocess import run_pipelines

from twin.domain.intent import IntentCatalog
from twin.embedded.simulator import FaultPlan, FleetSimulator
from twin.store import views


def load_fleet(database_url: str, racks: int = 150, seed: int = 21) -> FleetSimulator:
    """Run a simulated fleet's reference data, histories and one telemetry cycle through the pipelines."""
    catalog = IntentCatalog.default()
    start = datetime.now(timezone.utc) - timedelta(seconds=90)  # a complete minute, for the rollup
    sim = FleetSimulator(seed, racks, start, {g: catalog.latest(g) for g in catalog.generations()},
                         faults=FaultPlan(hot_rack=2, leak=1, stalled_install=3))
    messages = [*sim.reference_messages(), *sim.history_messages(),
                *(m for _, cycle in sim.cycles(1.0, first=start, count=1) for m in cycle)]
    asyncio.run(run_pipelines(database_url, messages, 500))
    with views.connect(database_url) as conn:
        conn.execute("SELECT refresh_row_power_minutes(60)")
    return sim


def partners(database_url: str) -> list[dict[str, Any]]:
    """Partner operators and how many racks stand in their facilities."""
    with views.connect(database_url) as conn:
        return conn.execute(
            "SELECT f.operator, count(s.rack_id) AS racks FROM facilities f LEFT JOIN rack_state s USING (facility_id)"
            " WHERE f.ownership = 'partner' GROUP BY 1 ORDER BY 2 DESC").fetchall()
