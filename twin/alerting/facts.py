"""What the rules read, read from the twin database: rack facts and fleet facts at one instant.

Why from the database and not from fleet.deviations.v1: the current-state tables are the
workers' committed truth (the deviations table holds exactly the open deviations, whichever
worker judged them), so an engine that starts, restarts or takes over reads the whole picture
at once instead of replaying a topic. Only racks that can matter are read each tick: those with
an open deviation, a critical subsystem, an old newest reading, or a live alert.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

import psycopg

from schemas import Deviation
from twin.alerting.rules import FacilityReporting, FleetFacts, GenerationCount, HallLoad, RackFacts
from twin.domain.health import SUBSYSTEMS
from twin.domain.lifecycle import POWERED_STAGES
from twin.errors import StoreError

__all__ = ["read_facts"]

READINGS = ("power_watts", "inlet_temperature_celsius", "coolant_supply_temperature_celsius",
            "coolant_flow_liters_per_minute", "hottest_accelerator_temperature_celsius", "network_links_down")
_POWERED = sorted(POWERED_STAGES)

_COLUMNS = f"""
    SELECT s.rack_id, s.generation, s.status, s.facility_id, s.hall_id, f.operator, s.telemetry_at, s.health,
           {', '.join('s.' + r for r in READINGS)}
    FROM rack_state s LEFT JOIN facilities f USING (facility_id)
"""
_RACKS = _COLUMNS + """
    WHERE s.rack_id IN (SELECT rack_id FROM deviations UNION SELECT unnest(%(live)s::text[]))
"""
"""Every tick: racks with an open deviation or a live alert (primary-key lookups; rack_state has no
index on health or telemetry_at, on purpose: the workers rewrite those columns every second and keep
the updates HOT)."""
_SCAN = _COLUMNS + """
    WHERE s.rack_id IN (SELECT rack_id FROM deviations)
       OR s.health->>'overall' = 'critical'
       OR (s.status = ANY(%(powered)s) AND s.telemetry_at < %(stale_before)s)
       OR s.rack_id = ANY(%(live)s)
"""
"""With the fleet aggregates: also racks whose health is critical or whose newest reading is old (a
scan of rack_state); once such a rack has an alert it is live and read every tick."""
_DEVIATIONS = """
    SELECT rack_id, check_name, severity, measured, allowed_min, allowed_max, unit, generation, intent_revision, detail
    FROM deviations WHERE rack_id = ANY(%s)
"""
_HALLS = """
    SELECT h.facility_id, h.hall_id, h.power_capacity_watts, h.cooling_capacity_watts, f.operator,
           coalesce(sum(s.power_watts) FILTER (WHERE s.status = ANY(%(powered)s)), 0) AS power_watts
    FROM halls h JOIN facilities f USING (facility_id)
    LEFT JOIN rack_state s ON s.facility_id = h.facility_id AND s.hall_id = h.hall_id
    GROUP BY 1, 2, 3, 4, 5
"""
_GENERATIONS = """
    SELECT generation, count(*) FILTER (WHERE status = ANY(%(powered)s)) AS powered,
           count(*) FILTER (WHERE status <> 'decommissioned') AS placed
    FROM rack_state WHERE generation IS NOT NULL GROUP BY 1
"""
_FACILITIES = """
    SELECT s.facility_id, f.operator, count(*) AS reporting,
           count(*) FILTER (WHERE s.telemetry_at < %(stale_before)s) AS stale
    FROM rack_state s LEFT JOIN facilities f USING (facility_id)
    WHERE s.facility_id IS NOT NULL AND s.status = ANY(%(powered)s) AND s.telemetry_at IS NOT NULL
    GROUP BY 1, 2
"""


def read_facts(conn: psycopg.Connection[Any], now: datetime, stale_before: datetime, live_racks: Iterable[str], *,
               fleet: bool = True) -> tuple[list[RackFacts], FleetFacts | None]:
    """Rack facts of the racks that can matter, and (when `fleet`) the fleet aggregates and the racks
    that a scan finds critical or stale."""
    params = {"powered": _POWERED, "stale_before": stale_before, "live": sorted(set(live_racks))}
    try:
        with conn.transaction(), conn.cursor() as cur:
            rows = cur.execute(_SCAN if fleet else _RACKS, params).fetchall()
            ids = [r["rack_id"] for r in rows]
            devs: dict[str, dict[str, Deviation]] = {}
            for d in cur.execute(_DEVIATIONS, (ids,)).fetchall():
                devs.setdefault(d["rack_id"], {})[d["check_name"]] = Deviation(
                    rack_id=d["rack_id"], check=d["check_name"], severity=d["severity"],
                    measured=_number(d["measured"]), allowed_min=d["allowed_min"], allowed_max=d["allowed_max"],
                    unit=d["unit"], generation=d["generation"], intent_revision=d["intent_revision"],
                    detail=d["detail"])
            facts = None
            if fleet:
                facts = FleetFacts(
                    halls=[HallLoad(h["facility_id"], h["hall_id"], h["power_capacity_watts"],
                                    h["cooling_capacity_watts"], h["power_watts"], h["operator"])
                           for h in cur.execute(_HALLS, params).fetchall()],
                    generations=[GenerationCount(g["generation"], g["powered"], g["placed"])
                                 for g in cur.execute(_GENERATIONS, params).fetchall()],
                    facilities=[FacilityReporting(f["facility_id"], f["reporting"], f["stale"], f["operator"])
                                for f in cur.execute(_FACILITIES, params).fetchall()],
                )
    except psycopg.Error as exc:
        raise StoreError(f"reading alert facts: {exc}") from exc
    racks = [RackFacts(
        r["rack_id"], r["generation"], r["status"], r["facility_id"], r["hall_id"], r["operator"], r["telemetry_at"],
        readings={k: r[k] for k in READINGS},
        health={s: (r["health"] or {}).get(s, {}).get("state", "unknown") for s in SUBSYSTEMS},
        health_reasons={s: (r["health"] or {}).get(s, {}).get("reason", "") for s in SUBSYSTEMS},
        deviations=devs.get(r["rack_id"], {}),
    ) for r in rows]
    return racks, facts


def _number(text: str | None) -> float | str | None:
    if text is None:
        return None
    try:
        return float(text)
    except ValueError:
        return text
