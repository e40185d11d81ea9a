"""Read models: what the CLI, the demo view and the API show. Reads bypass the domain.

Plain SQL over the current-state tables (cosmicpython's `views.py`): a fleet summary by
facility and generation, rack listings with filters, one rack in detail.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg
from psycopg.rows import dict_row

from twin.errors import StoreUnavailable

__all__ = ["FleetSummary", "connect", "deadletter_counts", "fleet_summary", "latest_deadletters", "list_racks",
           "rack_detail", "recorded_reasons"]


def connect(database_url: str) -> psycopg.Connection[dict[str, Any]]:
    try:
        return psycopg.connect(database_url, autocommit=True, row_factory=dict_row, connect_timeout=10)
    except psycopg.OperationalError as exc:
        raise StoreUnavailable(f"cannot reach the twin database: {exc}") from exc


_LATEST_INTENT = """
    SELECT DISTINCT ON (generation) generation, revision,
           (body -> 'power_budget_watts' ->> 'max')::double precision AS budget_watts
    FROM generation_intents ORDER BY generation, revision DESC
"""


@dataclass(frozen=True, slots=True)
class FleetSummary:
    """The fleet by facility and generation, plus totals the demo's header shows."""

    groups: list[dict[str, Any]]
    racks: int
    readings: int
    deadletters: int
    deviations: int


def fleet_summary(conn: psycopg.Connection[Any]) -> FleetSummary:
    groups = conn.execute(
        f"""
        WITH intent AS ({_LATEST_INTENT})
        SELECT coalesce(s.facility_id, '(not placed)') AS facility_id,
               f.ownership, f.operator,
               s.generation,
               count(*) AS racks,
               count(*) FILTER (WHERE s.deviation_count > 0) AS out_of_envelope,
               coalesce(sum(s.power_watts), 0) AS power_watts,
               coalesce(sum(i.budget_watts) FILTER (WHERE s.power_watts IS NOT NULL), 0) AS budget_watts
        FROM rack_state s
        LEFT JOIN facilities f USING (facility_id)
        LEFT JOIN intent i USING (generation)
        GROUP BY 1, 2, 3, 4 ORDER BY 1, 4
        """
    ).fetchall()
    stages = conn.execute(
        "SELECT coalesce(facility_id, '(not placed)') AS facility_id, generation, status, count(*) AS n"
        " FROM rack_state GROUP BY 1, 2, 3"
    ).fetchall()
    by_group: dict[tuple[str, str], dict[str, int]] = {}
    for row in stages:
        by_group.setdefault((row["facility_id"], row["generation"]), {})[row["status"]] = row["n"]
    for g in groups:
        g["stages"] = by_group.get((g["facility_id"], g["generation"]), {})
    totals = conn.execute(
        "SELECT (SELECT count(*) FROM rack_state) AS racks,"
        " (SELECT coalesce(sum(n_live_tup), 0) FROM pg_stat_user_tables WHERE relname LIKE 'telemetry_%%') AS readings,"
        " (SELECT count(*) FROM deadletters WHERE replayed_at IS NULL) AS deadletters,"
        " (SELECT count(*) FROM deviations) AS deviations"
    ).fetchone()
    assert totals is not None
    return FleetSummary(groups, int(totals["racks"]), int(totals["readings"]), int(totals["deadletters"]),
                        int(totals["deviations"]))


def list_racks(
    conn: psycopg.Connection[Any],
    *,
    facility: str | None = None,
    generation: str | None = None,
    stage: str | None = None,
    limit: int = 100,
) -> list[dict[str, Any]]:
    return conn.execute(
        """
        SELECT rack_id, generation, status, facility_id, hall_id, row_id, position, stage_entered_at,
               power_watts, inlet_temperature_celsius, coolant_flow_liters_per_minute, telemetry_at,
               deviation_count, health
        FROM rack_state
        WHERE (%(facility)s::text IS NULL OR facility_id = %(facility)s)
          AND (%(generation)s::text IS NULL OR generation = %(generation)s)
          AND (%(stage)s::text IS NULL OR status = %(stage)s)
        ORDER BY rack_id LIMIT %(limit)s
        """,
        {"facility": facility, "generation": generation, "stage": stage, "limit": limit},
    ).fetchall()


def recorded_reasons(conn: psycopg.Connection[Any]) -> list[str]:
    """The reasons of stored dead letters (a newer worker may record a reason this CLI does not list)."""
    return [r["reason"] for r in conn.execute("SELECT DISTINCT reason FROM deadletters ORDER BY 1")]


def rack_detail(conn: psycopg.Connection[Any], rack_id: str, *, history: bool = True) -> dict[str, Any] | None:
    """The rack's current state, its open deviations and (with `history`) its event stream."""
    row = conn.execute("SELECT * FROM rack_state WHERE rack_id = %s", (rack_id,)).fetchone()
    if row is None:
        return None
    row["deviations"] = conn.execute(
        "SELECT check_name, severity, measured, allowed_min, allowed_max, unit, intent_revision, detail, since"
        " FROM deviations WHERE rack_id = %s ORDER BY severity DESC, check_name",
        (rack_id,),
    ).fetchall()
    row["history"] = conn.execute(
        "SELECT stream_version, type, occurred_at, source, seq, body FROM events WHERE stream_id = %s"
        " ORDER BY stream_version",
        (rack_id,),
    ).fetchall() if history else []
    return row


def deadletter_counts(conn: psycopg.Connection[Any]) -> list[dict[str, Any]]:
    return conn.execute(
        "SELECT reason, count(*) FILTER (WHERE replayed_at IS NULL) AS open, count(*) FILTER (WHERE replayed_at IS NOT NULL)"
        " AS replayed, max(recorded_at) AS last_seen FROM deadletters GROUP BY reason ORDER BY open DESC, reason"
    ).fetchall()


def rack_history(conn: psycopg.Connection[Any], rack_id: str) -> list[Any]:
    """A rack's stored events as contract models (trusted: they were validated on the way in)."""
    from schemas import LIFECYCLE_TYPES

    rows = conn.execute(
        "SELECT type, body FROM events WHERE stream_id = %s ORDER BY stream_version", (rack_id,)
    ).fetchall()
    return [LIFECYCLE_TYPES[r["type"]].model_validate(r["body"]) for r in rows]


def intent_catalog(conn: psycopg.Connection[Any]) -> Any:
    """Every stored intent revision, with when it was published (for `as_of`)."""
    from schemas import GenerationIntent
    from twin.domain.intent import IntentCatalog

    catalog = IntentCatalog()
    for row in conn.execute("SELECT body, published_at FROM generation_intents ORDER BY generation, revision"):
        catalog.publish(GenerationIntent.model_validate(row["body"]), row["published_at"])
    return catalog


def rack_as_of(conn: psycopg.Connection[Any], rack_id: str, instant: datetime, *, catalog: Any = None) -> Any:
    """The rack's twin as of `instant` (time travel): the fold of its events up to then.

    The same fold as live and rebuild (`twin.domain.rack.fold_history`), from the first event: a
    snapshot saved by a worker recorded what it knew then (a refusal a later intent or a late
    event undid), so starting from one could answer differently from the rebuilt twin.
    """
    from twin.domain.rack import fold_history

    catalog = catalog if catalog is not None else intent_catalog(conn)
    return fold_history(rack_id, rack_history(conn, rack_id), catalog, until=instant).twin


_ALLOCATING = ("installed", "commissioned", "active", "degraded", "maintenance")
"""Stages in which a rack occupies its position and its design draw is allocated (as `twin.domain.fleet`)."""


def capacity(conn: psycopg.Connection[Any], facility: str | None = None) -> list[dict[str, Any]]:
    """Per row: site limits against allocated design draw (budget max of placed racks) and drawn power."""
    return conn.execute(
        f"""
        WITH intent AS ({_LATEST_INTENT}),
        placed AS (
            SELECT s.facility_id, s.hall_id, s.row_id, count(*) AS racks,
                   coalesce(sum(i.budget_watts), 0) AS allocated_watts, coalesce(sum(s.power_watts), 0) AS drawn_watts
            FROM rack_state s LEFT JOIN intent i USING (generation)
            WHERE s.status = ANY(%(stages)s) GROUP BY 1, 2, 3
        )
        SELECT r.facility_id, f.operator, f.ownership, r.hall_id, r.row_id, r.positions,
               coalesce(p.racks, 0) AS racks, r.power_capacity_watts, r.cooling_capacity_watts,
               coalesce(p.allocated_watts, 0) AS allocated_watts, coalesce(p.drawn_watts, 0) AS drawn_watts,
               r.power_capacity_watts - coalesce(p.allocated_watts, 0) AS available_power_watts
        FROM rows r JOIN facilities f USING (facility_id)
        LEFT JOIN placed p USING (facility_id, hall_id, row_id)
        WHERE %(facility)s::text IS NULL OR r.facility_id = %(facility)s
        ORDER BY 1, 4, 5
        """,
        {"stages": list(_ALLOCATING), "facility": facility},
    ).fetchall()


def rollout_progress(conn: psycopg.Connection[Any], quarter: str) -> list[dict[str, Any]]:
    """Racks in service per facility and generation against the latest plan's target for `quarter`
    (a quarter the plan does not name carries the last earlier target forward)."""
    return conn.execute(
        """
        WITH plan AS (SELECT max(revision) AS revision FROM rollout_targets),
        serving AS (
            SELECT facility_id, generation, count(*) AS racks FROM rack_state
            WHERE status IN ('active', 'degraded', 'maintenance') AND facility_id IS NOT NULL
              AND generation IS NOT NULL GROUP BY 1, 2
        ),
        pairs AS (
            SELECT facility_id, generation FROM rollout_targets JOIN plan USING (revision)
            UNION SELECT facility_id, generation FROM serving
        ),
        target AS (
            SELECT DISTINCT ON (t.facility_id, t.generation) t.facility_id, t.generation, t.racks_in_service
            FROM rollout_targets t JOIN plan USING (revision)
            WHERE t.quarter <= %(quarter)s ORDER BY t.facility_id, t.generation, t.quarter DESC
        )
        SELECT p.facility_id, p.generation, coalesce(t.racks_in_service, 0) AS target,
               coalesce(s.racks, 0) AS in_service, coalesce(s.racks, 0) - coalesce(t.racks_in_service, 0) AS difference
        FROM pairs p LEFT JOIN target t USING (facility_id, generation) LEFT JOIN serving s USING (facility_id, generation)
        ORDER BY 1, 2
        """,
        {"quarter": quarter},
    ).fetchall()


def latest_deadletters(conn: psycopg.Connection[Any], reason: str | None = None, limit: int = 20) -> list[dict[str, Any]]:
    """The newest open dead letters (of one reason, if given), newest first."""
    return conn.execute(
        "SELECT id, reason, topic, partition, \"offset\", idx, rack_id, source, detail, recorded_at FROM deadletters"
        " WHERE replayed_at IS NULL AND (%(r)s::text IS NULL OR reason = %(r)s) ORDER BY id DESC LIMIT %(n)s",
        {"r": reason, "n": limit},
    ).fetchall()
