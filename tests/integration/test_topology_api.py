"""Which racks does CDU X feed, over the HTTP API: the whole loop for the fleet's operator, only its
own racks for a partner, the same answer as the shared query (and `twin topology cdu`)."""

from __future__ import annotations

import asyncio
import uuid
from datetime import datetime, timezone
from typing import Any

import httpx
import pytest
from api_fleet import load_fleet, partners
from api_server import serving

from schemas import CoolantLoopDeclared
from twin.client import TwinClient
from twin.store import TwinStore, views
from twin.store.topology import cooling_unit_racks

pytestmark = pytest.mark.integration


async def declare(database_url: str, event: CoolantLoopDeclared) -> None:
    """Store a declaration as the intent pipeline does (through the store's named method)."""
    store = await TwinStore.connect(database_url)
    try:
        async with store.unit_of_work() as uow:
            assert await uow.declare_topology(event)
    finally:
        await store.close()


def test_which_racks_a_cdu_feeds_is_answered_scoped_by_the_token(tenant_factory: Any) -> None:
    tenant = tenant_factory()
    load_fleet(tenant.database_url, racks=60)
    operators = [p["operator"] for p in partners(tenant.database_url) if p["racks"]]
    with views.connect(tenant.database_url) as conn:
        placed = conn.execute("SELECT s.rack_id, f.operator, f.ownership FROM rack_state s"
                              " JOIN facilities f USING (facility_id) ORDER BY 1").fetchall()
    mine = [r["rack_id"] for r in placed if r["operator"] == operators[0]][:2]
    others = [r["rack_id"] for r in placed if r["operator"] != operators[0]][:2]
    loop = CoolantLoopDeclared(event_id=uuid.uuid4(), occurred_at=datetime.now(timezone.utc), source="t", seq=1,
                               loop_id="loop-7", cooling_unit_id="cdu-7", racks=(*mine, *others))
    asyncio.run(declare(tenant.database_url, loop))
    with serving(tenant, operators) as world:
        with TwinClient(world.base_url, world.tokens["reader"]) as fleet:
            everything = fleet.cooling_unit("cdu-7")
            assert fleet.cooling_unit("cdu-nowhere").racks == []  # undeclared: no racks, not an error
        with TwinClient(world.base_url, world.tokens[f"partner:{operators[0]}"]) as partner:
            scoped = partner.cooling_unit("cdu-7")
        raw = httpx.get(f"{world.base_url}/v1/topology/cdus/cdu-7",
                        headers=world.headers(f"partner:{operators[0]}")).text
        bad = httpx.get(f"{world.base_url}/v1/topology/cdus/not%20a%20cdu", headers=world.headers("reader"))
    assert everything.racks == sorted([*mine, *others]) and everything.loops == ["loop-7"]
    assert everything.health is None  # declared, never polled
    assert scoped.racks == sorted(mine) and not any(r in raw for r in others)
    assert bad.status_code == 422
    with views.connect(tenant.database_url) as conn:
        assert cooling_unit_racks(conn, "cdu-7", owner=operators[0]).model_dump(exclude={"freshness"}) == \
            scoped.model_dump(exclude={"freshness"})
