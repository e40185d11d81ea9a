"""Topology declarations through the intent pipeline into PostgreSQL: the latest wins, repeats are no-ops."""

from __future__ import annotations

import asyncio
import uuid
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from inprocess import run_pipelines

from schemas import CoolantLoopDeclared, PowerFeedDeclared
from twin.embedded.simulator import Message
from twin.store.topology import load_topology
from twin.store.views import connect

pytestmark = pytest.mark.integration
T0 = datetime(2027, 2, 1, tzinfo=timezone.utc)


def msg(event: Any) -> Message:
    return Message("intent", b"topology", event.model_dump_json().encode())


def test_an_older_declaration_arriving_late_does_not_replace_the_newer_one(tenant: Any) -> None:
    newer = CoolantLoopDeclared(event_id=uuid.uuid4(), occurred_at=T0 + timedelta(hours=1), source="t", seq=2,
                                loop_id="loop-1", cooling_unit_id="cdu-1", racks=("r1", "r2", "r3"))
    older = CoolantLoopDeclared(event_id=uuid.uuid4(), occurred_at=T0, source="t", seq=1,
                                loop_id="loop-1", cooling_unit_id="cdu-0", racks=("r9",))
    feed = PowerFeedDeclared(event_id=uuid.uuid4(), occurred_at=T0, source="t", seq=3, feed_id="a1", side="A",
                             pdus=("pdu-1",), racks=("r1", "r2"))
    asyncio.run(run_pipelines(tenant.database_url, [msg(newer), msg(older), msg(feed), msg(feed)], batch=2))
    with connect(tenant.database_url) as conn:
        topology = load_topology(conn)
        stored = conn.execute("SELECT count(*) AS n FROM events WHERE stream_id LIKE 'coolant-loop:%%'"
                              " OR stream_id LIKE 'power-feed:%%'").fetchone()
    assert topology.racks_fed_by("cdu-1") == ("r1", "r2", "r3") and topology.racks_fed_by("cdu-0") == ()
    assert topology.feeds["a1"].pdus == ("pdu-1",) and topology.feeds["a1"].racks == ("r1", "r2")
    assert stored is not None and stored["n"] == 3  # both loop declarations are facts; the repeated feed is one
