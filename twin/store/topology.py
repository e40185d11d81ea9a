"""Topology read by the CLI (and the API): what the intent pipeline stored through
`UnitOfWork.declare_topology`, read on a plain (synchronous) read connection.
"""

from __future__ import annotations

from typing import Any

import psycopg

from schemas import CoolingUnitStatus
from twin.domain.topology import CoolantLoop, PowerFeed, Topology, cooling_unit_conditions
from twin.store.answers import CoolingUnitRacks
from twin.store.postgres import _FEEDS_READ, _LOOPS_READ

__all__ = ["cooling_unit_racks", "cooling_units_by_rack", "load_topology"]


def load_topology(conn: psycopg.Connection[Any]) -> Topology:
    """The declared topology, for the domain's questions (`Topology.racks_fed_by`, `if_fails`)."""
    loops = {r["loop_id"]: CoolantLoop(r["loop_id"], r["cooling_unit_id"], tuple(r["racks"]))
             for r in conn.execute(_LOOPS_READ)}
    feeds = {r["feed_id"]: PowerFeed(r["feed_id"], r["side"], tuple(r["racks"]), r["panel"], tuple(r["pdus"]))
             for r in conn.execute(_FEEDS_READ)}
    return Topology(loops, feeds)


def cooling_units_by_rack(conn: psycopg.Connection[Any]) -> dict[str, CoolingUnitStatus]:
    """Each rack's latest view of its CDU, as its stored health holds it (racks without one left out)."""
    return {r["rack_id"]: CoolingUnitStatus.model_validate(r["cdu"]) for r in conn.execute(
        "SELECT rack_id, health -> 'cooling_unit' AS cdu FROM rack_telemetry WHERE health ? 'cooling_unit'")}


_FED = """
    SELECT r.rack_id, l.loop_id, t.health -> 'cooling_unit' AS cdu
    FROM coolant_loops l JOIN coolant_loop_racks r USING (loop_id) LEFT JOIN rack_telemetry t USING (rack_id)
    WHERE l.cooling_unit_id = %(cdu)s AND (%(owner)s::text IS NULL OR r.rack_id IN (
        SELECT o.rack_id FROM rack_lifecycle o JOIN facilities f USING (facility_id) WHERE f.operator = %(owner)s))
    ORDER BY 1, 2
"""


def cooling_unit_racks(conn: psycopg.Connection[Any], cooling_unit_id: str, *,
                       owner: str | None = None) -> CoolingUnitRacks:
    """Which racks does this CDU feed (of those `owner` may see; None: the whole fleet), and how it was last seen."""
    rows = conn.execute(_FED, {"cdu": cooling_unit_id, "owner": owner}).fetchall()
    seen = {r["rack_id"]: CoolingUnitStatus.model_validate(r["cdu"]) for r in rows
            if r["cdu"] and r["cdu"].get("cooling_unit_id") == cooling_unit_id}
    worst = cooling_unit_conditions(seen)
    return CoolingUnitRacks(
        cooling_unit_id=cooling_unit_id, loops=sorted({r["loop_id"] for r in rows}),
        racks=sorted({r["rack_id"] for r in rows}),
        health=worst[0].health if worst else ("ok" if seen else None),  # type: ignore[arg-type]
        reasons=list(worst[0].reasons) if worst else [])
