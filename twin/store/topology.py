"""Topology read by the CLI (and the API): what the intent pipeline stored through
`UnitOfWork.declare_topology`, read on a plain (synchronous) read connection.
"""

from __future__ import annotations

from typing import Any

import psycopg

from schemas import CoolingUnitStatus
from twin.domain.topology import CoolantLoop, PowerFeed, Topology
from twin.store.postgres import _FEEDS_READ, _LOOPS_READ

__all__ = ["cooling_units_by_rack", "load_topology"]


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
