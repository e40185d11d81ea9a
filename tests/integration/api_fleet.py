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


def new_tenant(stack: Any, name: str) -> Any:
    """A tenant for a module-scoped fixture (`tenant` is per test). `tests/conftest.py` is found by its
    path: `from conftest import` resolves to `tests/integration/conftest.py` once that exists."""
    import importlib.util
    import sys
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "conftest.py"
    module = next((m for m in list(sys.modules.values())
                   if getattr(m, "__file__", None) and Path(m.__file__).resolve() == path), None)
    if module is None:
        spec = importlib.util.spec_from_file_location("fleet_twin_tests_conftest", path)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = module  # its dataclasses look their module up there
        spec.loader.exec_module(module)
    return module._new_tenant(stack, name)
