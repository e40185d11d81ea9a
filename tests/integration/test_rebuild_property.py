"""Property: after any simulated run (any fleet, any bad input, any batching and repeats),
rebuilding every twin from the event store gives exactly the live state the pipelines wrote."""

from __future__ import annotations

import asyncio
import random
from datetime import datetime, timedelta, timezone
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from twin.domain.intent import IntentCatalog
from twin.store.rebuild import rebuild
from twin.embedded.simulator import FaultPlan, FleetSimulator
from inprocess import run_pipelines
import pytest

pytestmark = pytest.mark.integration


@settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(seed=st.integers(0, 10_000), racks=st.integers(3, 30), malformed=st.sampled_from([0.0, 0.05]),
       batch=st.integers(1, 200), shuffle=st.booleans())
def test_rebuild_from_the_stores_equals_the_live_state_after_any_simulated_run(
    tenant_factory: Any, seed: int, racks: int, malformed: float, batch: int, shuffle: bool
) -> None:
    tenant = tenant_factory()
    catalog = IntentCatalog.default()
    start = datetime.now(timezone.utc) - timedelta(seconds=30)
    sim = FleetSimulator(seed, racks, start, {g: catalog.latest(g) for g in catalog.generations()},
                         faults=FaultPlan(), malformed_share=malformed)
    lifecycle = list(sim.history_messages())
    if shuffle:  # repeats and reordering, as producers deliver them
        lifecycle = lifecycle + lifecycle[: len(lifecycle) // 3]
        random.Random(seed).shuffle(lifecycle)
    telemetry = [m for _, cycle in sim.cycles(1.0, first=start, count=2) for m in cycle]
    asyncio.run(run_pipelines(tenant.database_url, [*sim.reference_messages(), *lifecycle, *telemetry], batch))
    result = rebuild(tenant.database_url)
    assert result.racks == len(sim.racks)
    assert result.equal, f"differ: {result.mismatched[:5]}, missing: {result.missing[:5]}"
