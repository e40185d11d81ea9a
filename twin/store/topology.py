"""Topology facts in PostgreSQL: written by the intent pipeline, read by the CLI (and the API).

The latest declaration of a loop or feed (by `occurred_at`) replaces its racks; an older one
arriving late changes nothing, so redelivery and reordering leave the same topology.
"""

from __future__ import annotations

from typing import Any

import psycopg

from schemas import CoolantLoopDeclared, CoolingUnitStatus, PowerFeedDeclared
from twin.domain.topology import CoolantLoop, PowerFeed, Topology
from twin.store.postgres import UnitOfWork

__all__ = ["cooling_units_by_rack", "declare", "load_topology"]

_LOOP = """
    INSERT INTO coolant_loops AS l (loop_id, cooling_unit_id, declared_at) VALUES (%(id)s, %(cdu)s, %(at)s)
    ON CONFLICT (loop_id) DO UPDATE SET cooling_unit_id = excluded.cooling_unit_id, declared_at = excluded.declared_at
    WHERE l.declared_at <= excluded.declared_at
    RETURNING loop_id
"""
_FEED = """
    INSERT INTO power_feeds AS f (feed_id, side, panel, pdus, declared_at)
    VALUES (%(id)s, %(side)s, %(panel)s, %(pdus)s, %(at)s)
    ON CONFLICT (feed_id) DO UPDATE SET side = excluded.side, panel = excluded.panel, pdus = excluded.pdus,
        declared_at = excluded.declared_at
    WHERE f.declared_at <= excluded.declared_at
    RETURNING feed_id
"""


async def declare(uow: UnitOfWork, event: CoolantLoopDeclared | PowerFeedDeclared) -> bool:
    """Store one declaration in the unit of work's transaction; False when a newer one stands."""
    conn: psycopg.AsyncConnection[Any] = uow._conn  # the batch's transaction, with its tracked offsets
    if isinstance(event, CoolantLoopDeclared):
        head, table, key = _LOOP, "coolant_loop_racks", "loop_id"
        params = {"id": event.loop_id, "cdu": event.cooling_unit_id, "at": event.occurred_at}
        ident = event.loop_id
    else:
        head, table, key = _FEED, "power_feed_racks", "feed_id"
        params = {"id": event.feed_id, "side": event.side, "panel": event.panel, "pdus": list(event.pdus),
                  "at": event.occurred_at}
        ident = event.feed_id
    async with conn.cursor() as cur:
        await cur.execute(head, params)
        if await cur.fetchone() is None:
            return False
        await cur.execute(f"DELETE FROM {table} WHERE {key} = %s", (ident,))
        await cur.executemany(f"INSERT INTO {table} ({key}, rack_id) VALUES (%s, %s)",
                              [(ident, r) for r in dict.fromkeys(event.racks)])
    return True


def load_topology(conn: psycopg.Connection[Any]) -> Topology:
    """The declared topology, for the domain's questions (`Topology.racks_fed_by`, `if_fails`)."""
    loops = {
        r["loop_id"]: CoolantLoop(r["loop_id"], r["cooling_unit_id"], tuple(r["racks"]))
        for r in conn.execute(
            "SELECT l.loop_id, l.cooling_unit_id, coalesce(array_agg(r.rack_id ORDER BY r.rack_id)"
            " FILTER (WHERE r.rack_id IS NOT NULL), '{}') AS racks"
            " FROM coolant_loops l LEFT JOIN coolant_loop_racks r USING (loop_id) GROUP BY 1, 2")
    }
    feeds = {
        r["feed_id"]: PowerFeed(r["feed_id"], r["side"], tuple(r["racks"]), r["panel"], tuple(r["pdus"]))
        for r in conn.execute(
            "SELECT f.feed_id, f.side, f.panel, f.pdus, coalesce(array_agg(r.rack_id ORDER BY r.rack_id)"
            " FILTER (WHERE r.rack_id IS NOT NULL), '{}') AS racks"
            " FROM power_feeds f LEFT JOIN power_feed_racks r USING (feed_id) GROUP BY 1, 2, 3, 4")
    }
    return Topology(loops, feeds)


def cooling_units_by_rack(conn: psycopg.Connection[Any]) -> dict[str, CoolingUnitStatus]:
    """Each rack's latest view of its CDU, as its stored health holds it (racks without one left out)."""
    return {r["rack_id"]: CoolingUnitStatus.model_validate(r["cdu"]) for r in conn.execute(
        "SELECT rack_id, health -> 'cooling_unit' AS cdu FROM rack_state WHERE health ? 'cooling_unit'")}
