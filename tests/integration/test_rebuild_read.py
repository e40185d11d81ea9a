"""The rebuild's compact read (issue 13, rebuild speed) gives the fold what validating each stored body gives.

Installations and firmware updates come back as compact records (`twin.store.rebuild._HISTORY`),
so every spelling a producer may send and the intake stores as it came must read back as the
validated event: escaped and non-ASCII strings, a missing or null firmware, a value sent as an
integer, another time zone offset, long serials. A field holding one of the record separators
cannot be read compactly: its rack must be read again from its JSON bodies, never misread.
"""

from __future__ import annotations

import asyncio
from datetime import datetime, timezone
from typing import Any

import orjson
import psycopg
import pytest

from schemas import LIFECYCLE_TYPES
from twin.domain.intent import IntentCatalog
from twin.domain.rack import fold_history
from twin.domain.recorded import RecordedFlash, RecordedInstall
from twin.embedded.simulator import FaultPlan, FleetSimulator
from twin.store.postgres import StoredEvent, TwinStore
from twin.store.rebuild import rack_streams

pytestmark = pytest.mark.integration

ODD = [  # (what is odd, the change to an installation's body)
    ("escaped and non-ASCII text", {"supplier": 'Acme "Quoted" \\ Süd 工厂', "part_number": "PN\t7"}),
    ("firmware null", {"firmware_version": None}),
    ("firmware missing", {"firmware_version": ...}),
    ("firmware with escapes", {"firmware_version": 'v"2"\\b'}),
    ("value sent as an integer", {"unit_value_usd": 12000}),
    ("long serial of digits", {"serial_number": "9" * 60}),
]


def _body(event: Any, change: dict[str, Any] | None = None) -> dict[str, Any]:
    body: dict[str, Any] = orjson.loads(event.model_dump_json())
    for name, value in (change or {}).items():
        if value is ...:
            del body["component"][name]
        else:
            body["component"][name] = value
    return body


async def _append(url: str, bodies: list[dict[str, Any]]) -> None:
    store = await TwinStore.connect(url)
    try:
        async with store.unit_of_work() as uow:
            await uow.append_events([StoredEvent(b["rack_id"], LIFECYCLE_TYPES[b["type"]].model_validate(b),
                                                 orjson.dumps(b).decode()) for b in bodies])
    finally:
        await store.close()


def test_odd_but_valid_bodies_read_back_as_validation_reads_them_and_a_separator_sends_its_rack_the_json_way(
        tenant: Any) -> None:
    catalog = IntentCatalog.default()
    sim = FleetSimulator(5, 4, datetime(2026, 6, 1, tzinfo=timezone.utc),
                         {g: catalog.latest(g) for g in catalog.generations()}, faults=FaultPlan())
    odd, plain, field_sep, record_sep = sorted(sim.racks)
    separated = {field_sep: {"serial_number": "SN\x1fTWO"}, record_sep: {"supplier": "A\x1eB"}}
    bodies: dict[str, list[dict[str, Any]]] = {}
    for rack_id in (odd, plain, field_sep, record_sep):
        history = sim.history(rack_id)
        installs = [i for i, e in enumerate(history) if e.type == "component.installed"]
        changes = dict(zip(installs, [c for _, c in ODD], strict=False)) if rack_id == odd else {}
        if rack_id in separated:
            changes = {installs[3]: separated[rack_id]}
        bodies[rack_id] = [_body(e, changes.get(i)) for i, e in enumerate(history)]
    odd_body = bodies[odd][1]
    odd_body["occurred_at"] = odd_body["occurred_at"].replace("Z", "+02:00")  # another offset, same validation
    asyncio.run(_append(tenant.database_url, [b for rack in bodies.values() for b in rack]))

    with psycopg.connect(tenant.database_url) as conn:
        read = dict(rack_streams(conn))
    assert sorted(read) == sorted(bodies)
    for rack_id, stored in bodies.items():
        validated = [LIFECYCLE_TYPES[b["type"]].model_validate(b) for b in stored]
        want = fold_history(rack_id, validated, catalog)
        got = fold_history(rack_id, read[rack_id], catalog)
        assert got.twin.snapshot() == want.twin.snapshot(), rack_id
        assert got.refused == want.refused
        light = [e for e in read[rack_id] if type(e) in (RecordedInstall, RecordedFlash)]
        if rack_id in separated:
            assert light == []  # read again from its JSON bodies
        else:
            assert len([e for e in light if type(e) is RecordedInstall]) == sum(
                b["type"] == "component.installed" for b in stored)
