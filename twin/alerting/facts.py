"""What the rules read, read from the twin database: rack facts and fleet facts at one instant.

Why from the database and not from fleet.deviations.v1: the current-state tables are the
workers' committed truth (the deviations table holds exactly the open deviations, whichever
worker judged them), so an engine that starts, restarts or takes over reads the whole picture
at once instead of replaying a topic. Only racks that can matter are read each tick: those with
an open deviation, a critical subsystem, an old newest reading, or a live alert. The fleet scan also
reads the racks whose CDU (as their stored health holds it) is in Warning or Critical, for the one
alert per CDU.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

import psycopg
import structlog
from pydantic import ValidationError

from schemas import CoolingUnitStatus, Deviation
from twin.alerting.rules import CooledRack, FacilityReporting, FleetFacts, GenerationCount, HallLoad, RackFacts
from twin.domain.health import SUBSYSTEMS
from twin.domain.lifecycle import POWERED_STAGES
from twin.errors import StoreError

__all__ = ["read_facts"]

log = structlog.get_logger(__name__)

READINGS = ("power_watts", "inlet_temperature_celsius", "coolant_supply_temperature_celsius",
            "coolant_flow_liters_per_minute", "hottest_accelerator_temperature_celsius", "network_links_down")
_POWERED = sorted(POWERED_STAGES)

_COLUMNS = f"""
    SELECT s.rack_id, s.generation, s.status, s.facility_id, s.hall_id, f.operator, s.telemetry_at, s.health,
           {', '.join('s.' + r for r in READINGS)}
    FROM rack_state s LEFT JOIN facilities f USING (facility_id)
"""
_RACKS = _COLUMNS + """
    WHERE s.rack_id IN (SELECT rack_id FROM deviations UNION SELECT unnest(%(watch)s::text[]))
"""
"""Every tick: racks with an open deviation, a live alert, or found by the last fleet scan (primary-key
lookups; rack_state has no index on health or telemetry_at, on purpose: the workers rewrite those
columns every second and keep the updates HOT)."""
_DEVIATIONS = """
    SELECT rack_id, check_name, severity, measured, allowed_min, allowed_max, unit, generation, intent_revision, detail
    FROM deviations WHERE rack_id = ANY(%s)
"""
_FLEET = """
    SELECT GROUPING(generation) = 0 AS by_generation, facility_id, hall_id, generation,
           coalesce(sum(power_watts) FILTER (WHERE powered), 0) AS power_watts,
           count(*) FILTER (WHERE powered) AS powered, count(*) FILTER (WHERE placed) AS placed,
           count(*) FILTER (WHERE powered AND telemetry_at IS NOT NULL) AS reporting,
           count(*) FILTER (WHERE powered AND old) AS stale,
           array_agg(rack_id) FILTER (WHERE critical OR (powered AND old)) AS watch
    FROM (SELECT rack_id, facility_id, hall_id, generation, power_watts, telemetry_at,
                 status = ANY(%(powered)s) AS powered, status <> 'decommissioned' AS placed,
                 telemetry_at < %(stale_before)s AS old, health->>'overall' = 'critical' AS critical
          FROM rack_state) s
    GROUP BY GROUPING SETS ((facility_id, hall_id), (generation))
"""
"""The fleet in one scan of rack_state: load and staleness per hall, rack counts per generation, and
the racks whose health is critical or whose newest reading is old (read as rack facts from then on)."""
_COOLED = """
    SELECT s.rack_id, s.status, s.facility_id, s.hall_id, f.operator, s.health -> 'cooling_unit' AS cdu
    FROM rack_state s LEFT JOIN facilities f USING (facility_id)
    WHERE s.health -> 'cooling_unit' ->> 'health' IN ('warning', 'critical')
"""
"""Racks whose CDU is not ok (the view the worker stored with the rack's health, `twin.domain.health`)."""
_PLACES = """
    SELECT f.facility_id, f.operator, h.hall_id, h.power_capacity_watts, h.cooling_capacity_watts
    FROM facilities f LEFT JOIN halls h USING (facility_id)
"""


def read_facts(conn: psycopg.Connection[Any], now: datetime, stale_before: datetime, live_racks: Iterable[str], *,
               fleet: bool = True) -> tuple[list[RackFacts], FleetFacts | None]:
    """Rack facts of the racks that can matter, and (when `fleet`) the fleet aggregates, whose scan also
    finds the racks newly critical or stale."""
    params: dict[str, Any] = {"powered": _POWERED, "stale_before": stale_before}
    watch = set(live_racks)
    try:
        with conn.transaction(), conn.cursor() as cur:
            facts = None
            if fleet:
                groups = cur.execute(_FLEET, params).fetchall()
                places = cur.execute(_PLACES).fetchall()
                cooled = [CooledRack(r["rack_id"], cdu, r["status"], r["facility_id"], r["hall_id"], r["operator"])
                          for r in cur.execute(_COOLED).fetchall()
                          if (cdu := _cooling_unit(r["rack_id"], r["cdu"])) is not None]
                facts = _fleet(groups, places, cooled)
                for g in groups:
                    if not g["by_generation"]:
                        watch.update(g["watch"] or ())
            rows = cur.execute(_RACKS, {**params, "watch": sorted(watch)}).fetchall()
            ids = [r["rack_id"] for r in rows]
            devs: dict[str, dict[str, Deviation]] = {}
            for d in cur.execute(_DEVIATIONS, (ids,)).fetchall():
                devs.setdefault(d["rack_id"], {})[d["check_name"]] = Deviation(
                    rack_id=d["rack_id"], check=d["check_name"], severity=d["severity"],
                    measured=_number(d["measured"]), allowed_min=d["allowed_min"], allowed_max=d["allowed_max"],
                    unit=d["unit"], generation=d["generation"], intent_revision=d["intent_revision"],
                    detail=d["detail"])
    except psycopg.Error as exc:
        raise StoreError(f"reading alert facts: {exc}") from exc
    racks = [RackFacts(
        r["rack_id"], r["generation"], r["status"], r["facility_id"], r["hall_id"], r["operator"], r["telemetry_at"],
        readings={k: r[k] for k in READINGS},
        health={s: (r["health"] or {}).get(s, {}).get("state", "unknown") for s in SUBSYSTEMS},
        health_reasons={s: (r["health"] or {}).get(s, {}).get("reason", "") for s in SUBSYSTEMS},
        deviations=devs.get(r["rack_id"], {}),
        cooling_unit=_cooling_unit(r["rack_id"], (r["health"] or {}).get("cooling_unit")),
    ) for r in rows]
    return racks, facts


def _cooling_unit(rack_id: str, stored: Any) -> CoolingUnitStatus | None:
    """The rack's stored view of its CDU; one that does not parse is logged and left out, never a crash."""
    if not stored:
        return None
    try:
        return CoolingUnitStatus.model_validate(stored)
    except ValidationError as exc:
        log.warning("rack health holds a cooling unit that does not parse; left out", rack_id=rack_id,
                    error=str(exc))
        return None


def _fleet(groups: list[dict[str, Any]], places: list[dict[str, Any]], cooled: list[CooledRack]) -> FleetFacts:
    """Join the scan's groups with the registry's halls and facilities."""
    by_hall = {(g["facility_id"], g["hall_id"]): g for g in groups if not g["by_generation"]}
    operators = {p["facility_id"]: p["operator"] for p in places}
    reporting: dict[str, list[int]] = {}
    for (facility, _), g in by_hall.items():
        if facility is not None:
            counts = reporting.setdefault(facility, [0, 0])
            counts[0] += g["reporting"]
            counts[1] += g["stale"]
    return FleetFacts(
        halls=[HallLoad(p["facility_id"], p["hall_id"], p["power_capacity_watts"], p["cooling_capacity_watts"],
                        float(by_hall.get((p["facility_id"], p["hall_id"]), {}).get("power_watts") or 0.0),
                        p["operator"])
               for p in places if p["hall_id"] is not None],
        generations=[GenerationCount(g["generation"], g["powered"], g["placed"])
                     for g in groups if g["by_generation"] and g["generation"] is not None],
        facilities=[FacilityReporting(f, n, stale, operators.get(f)) for f, (n, stale) in sorted(reporting.items())
                    if n > 0],
        cooled=cooled,
    )


def _number(text: str | None) -> float | str | None:
    if text is None:
        return None
    try:
        return float(text)
    except ValueError:
        return text
