"""The named read queries that the HTTP API, the typed client's server and the CLI all call.

Every query takes an open connection (`connect`) and an `owner`: None reads the whole fleet, a
partner operator's name (facilities.operator) reads only that operator's facilities, and the
racks, aggregates and history standing in them. The scope is applied in SQL, with
parameters; no SQL is assembled from request strings (group-by dimensions and headroom levels
come from fixed allow-lists). Unknown filter values raise `twin.errors.InvalidQuery` listing
the valid ones. Answers are the pydantic models of `twin.store.answers`.

Stable signatures (the CLI builds on these):

    connect(database_url) -> psycopg.Connection
    freshness(conn) -> Freshness
    answer_sources(conn) -> AnswerSources | None   # what cached summary answers are keyed by (twin/api/answer_cache.py)
    refresh_summaries(conn, *, max_age_seconds=0.0) -> None   # rebuild the summary tables (migration 0023)
    fleet_summary(conn, *, owner=None, group_by=("facility", "generation")) -> FleetSummary
    headroom(conn, *, owner=None, level="row", facility=None, window_minutes=15) -> Headroom
    place(conn, *, generation, count, owner=None, facility=None) -> Placement
    list_racks(conn, *, owner=None, stage=None, generation=None, facility=None, health=None,
               deviation=None, stalled=None, onshore_below=None, firmware_drift=None,
               limit=50, cursor=None) -> RackPage
    rack(conn, rack_id, *, owner=None) -> RackDetail | None
    rack_history(conn, rack_id, *, owner=None) -> RackHistory | None
    rack_as_of(conn, rack_id, instant, *, owner=None) -> RackAsOf | None
    rollout(conn, *, owner=None, facility=None) -> RolloutProgress
    scorecard(conn, *, owner=None, generation=None) -> Scorecard
    intent_revisions(conn, *, owner=None, generation=None) -> IntentRevisions
    intent_revision(conn, generation, revision=None, *, owner=None) -> IntentDetail | None
    valid_values(conn, field, *, owner=None) -> list[str]   # stage, generation, facility, health, deviation

Fleet-wide aggregates (summary, headroom allocation, scorecard, rollout lead times) read summary
tables rebuilt from the current state (migration 0023); a query finding one older than its bound
(`CUBE_MAX_AGE_SECONDS`, `DURATIONS_MAX_AGE_SECONDS`) rebuilds it first, and the answer's
`summarised_at` says when. Racks, one rack and its history are read live.

Where the racks are read from is said in `_RACKS` and `_OWNED` (partner-scoped reads of the
tables behind the `rack_state` view: rack_lifecycle and rack_telemetry since migration 0004) and
in the refresh functions of migration 0023: if the current state changes shape, only those change.
"""

from __future__ import annotations

import base64
import binascii
from collections import defaultdict
from collections.abc import Sequence
from datetime import datetime, timezone
from typing import Any, NamedTuple

import psycopg
from psycopg import sql
from psycopg.types.json import Jsonb

from schemas.lifecycle import ComponentKind
from twin.domain.conformance import CHECKS
from twin.domain.fleet import PLAN_QUARTERS, Capacity, quarter_of
from twin.domain.health import HealthState
from twin.domain.lifecycle import IN_SERVICE_STAGES, POWERED_STAGES, RackStatus
from twin.domain.placement import plan_placement
from twin.errors import InvalidQuery
from twin.store import answers as a
from twin.store.postgres import READING_COLUMNS
from twin.store.views import connect

__all__ = [
    "AnswerSources", "answer_sources", "connect", "fleet_summary", "freshness", "headroom", "intent_revision",
    "intent_revisions", "list_racks", "place",
    "rack", "rack_as_of", "rack_history", "refresh_summaries", "rollout", "scorecard", "valid_values",
]

Conn = psycopg.Connection[dict[str, Any]]

_RACKS = sql.SQL("""
    (SELECT l.rack_id, l.generation, l.status, l.version, l.stream_version, l.facility_id, l.hall_id, l.row_id,
            l.position, l.stage_entered_at, l.lifecycle_at, l.twin, l.onshore_share, l.destination_facility_id,
            t.telemetry_at, t.power_watts, t.inlet_temperature_celsius, t.outlet_temperature_celsius,
            t.coolant_supply_temperature_celsius, t.coolant_return_temperature_celsius,
            t.coolant_flow_liters_per_minute, t.coolant_differential_pressure_kilopascals, t.leak_detected,
            t.hottest_accelerator_temperature_celsius, t.fan_speed_percent, t.network_links_up, t.network_links_down,
            coalesce(t.health, '{}'::jsonb) AS health, t.health_overall, t.intent_revision,
            (SELECT count(*) FROM deviations d WHERE d.rack_id = l.rack_id)::integer AS deviation_count
     FROM rack_lifecycle l LEFT JOIN rack_telemetry t USING (rack_id)
     WHERE %(owner)s::text IS NULL
        OR l.facility_id IN (SELECT facility_id FROM facilities WHERE operator = %(owner)s))""")
"""The racks an owner may see (those standing in, or received at, its facilities), with the current
state's columns (the `rack_state` view of migration 0004) and the derived ones of 0022."""

_RACKS_TO_COUNT = sql.SQL("""
    (SELECT l.rack_id, l.generation, l.status, l.facility_id, l.onshore_share
     FROM rack_lifecycle l
     WHERE %(owner)s::text IS NULL
        OR l.facility_id IN (SELECT facility_id FROM facilities WHERE operator = %(owner)s))""")
"""`_RACKS` with only what a filter reads: a count over it can be answered from an index alone (a
join, even one the planner removes, or the per-rack deviation count would make it read every row)."""

_OWNED = sql.SQL("""(%(owner)s::text IS NULL OR {column} IN (
    SELECT o.rack_id FROM rack_lifecycle o JOIN facilities f USING (facility_id) WHERE f.operator = %(owner)s))""")
"""`column` names a rack the owner may see (no scan of the racks for the whole fleet)."""

_FACILITIES = sql.SQL("(SELECT * FROM facilities WHERE %(owner)s::text IS NULL OR operator = %(owner)s)")

_DESIGN_DRAW = """
    SELECT DISTINCT ON (generation) generation, revision,
           coalesce((body -> 'power_budget_watts' ->> 'max')::double precision,
                    (body ->> 'cooling_capacity_watts')::double precision) AS draw_watts,
           (body -> 'power_budget_watts' ->> 'max')::double precision AS budget_max_watts,
           body ->> 'title' AS title
    FROM generation_intents ORDER BY generation, revision DESC
"""
"""Per generation, its latest intent's design draw (`twin.domain.fleet.design_draw_watts`)."""

_STANDING = sorted(s.value for s in POWERED_STAGES)
_SERVING = sorted(s.value for s in IN_SERVICE_STAGES)
_PIPELINE = ["manufactured", "factory-tested", "in-transit", "received", "installed", "commissioned"]
"""Stages before service, in order: what a rollout forecast expects to enter service."""

_DIMENSIONS: dict[str, tuple[tuple[str, sql.Composable], ...]] = {
    "facility": (("facility_id", sql.SQL("c.facility_id")),),
    "hall": (("facility_id", sql.SQL("c.facility_id")), ("hall_id", sql.SQL("c.hall_id"))),
    "row": (("facility_id", sql.SQL("c.facility_id")), ("hall_id", sql.SQL("c.hall_id")),
            ("row_id", sql.SQL("c.row_id"))),
    "generation": (("generation", sql.SQL("c.generation")),),
    "stage": (("stage", sql.SQL("c.stage")),),
    "owner": (("owner", sql.SQL("c.operator")),),
}
"""Group-by dimension -> (answer key, column) pairs: the only SQL a request can pick."""

_SUBSYSTEM = """
    CASE WHEN d.check_name LIKE 'power-%%' THEN 'power'
         WHEN d.check_name IN ('cooling-over-capacity', 'leak-detected') OR d.check_name LIKE 'coolant-%%'
              OR d.check_name LIKE 'inlet-%%' THEN 'cooling'
         WHEN d.check_name = 'accelerator-too-hot' THEN 'compute'
         WHEN d.check_name LIKE 'network-%%' THEN 'network'
         WHEN d.check_name = 'telemetry-stale' THEN 'telemetry'
         WHEN d.check_name = 'stalled-in-stage' THEN 'lifecycle'
         ELSE 'parts' END
"""
SUBSYSTEMS = ("power", "cooling", "compute", "network", "telemetry", "lifecycle", "parts")
"""Subsystems a deviation belongs to (scorecard): the health subsystems, plus telemetry, lifecycle and parts."""


def _known_checks() -> list[str]:
    from typing import get_args

    out = []
    for check in CHECKS:
        if "<kind>" in check:
            out.extend(check.replace("<kind>", k) for k in get_args(ComponentKind))
        else:
            out.append(check)
    return sorted(out)


KNOWN_CHECKS: tuple[str, ...] = tuple(_known_checks())


def _p(owner: str | None, **more: Any) -> dict[str, Any]:
    return {"owner": owner, **more}


CUBE_MAX_AGE_SECONDS = 120.0
"""Oldest fleet cube (summary, headroom allocation, scorecard counts) a query accepts before refreshing it."""
DURATIONS_MAX_AGE_SECONDS = 3600.0
"""Oldest stage durations (lead times, rack-years) a query accepts; they move by days, not seconds."""
_REFRESH = {"fleet_cube": sql.SQL("SELECT refresh_fleet_cube(%s)"),
            "stage_durations": sql.SQL("SELECT refresh_stage_durations(%s)")}


def refresh_summaries(conn: Conn, *, max_age_seconds: float = 0.0) -> None:
    """Rebuild the summary tables older than `max_age_seconds` (the API calls this in the background)."""
    for name in ("fleet_cube", "stage_durations"):
        bound = max_age_seconds if name == "fleet_cube" else max(max_age_seconds, DURATIONS_MAX_AGE_SECONDS / 2)
        conn.execute(_REFRESH[name], (bound,))


def _fresh_summary(conn: Conn, name: str, max_age_seconds: float) -> datetime:
    """When summary `name` was built; rebuilt first when older than `max_age_seconds`."""
    row = conn.execute("SELECT refreshed_at, refreshed_at > clock_timestamp() - make_interval(secs => %s) AS ok"
                       " FROM summary_refreshes WHERE name = %s", (max_age_seconds, name)).fetchone()
    if row is None or not row["ok"]:
        conn.execute(_REFRESH[name], (max_age_seconds,))
        row = conn.execute("SELECT refreshed_at FROM summary_refreshes WHERE name = %s", (name,)).fetchone()
    assert row is not None
    return row["refreshed_at"]  # type: ignore[no-any-return]


# --- what cached answers depend on ----------------------------------------------------------


class AnswerSources(NamedTuple):
    """What the fleet summary and the default-window headroom read besides the request: the summary
    tables (rebuilt at `summarised_at`, in the same transaction as their content) and the places
    (facilities, halls, rows: `places_version`, bumped with every change by migration 0060)."""

    summarised_at: datetime
    places_version: int


def answer_sources(conn: Conn) -> AnswerSources | None:
    """The current sources; None when the summary tables are older than `CUBE_MAX_AGE_SECONDS` (the
    query would rebuild them first, so an answer read now may not be kept under these)."""
    row = conn.execute(
        "SELECT r.refreshed_at, (SELECT version FROM answer_sources WHERE name = 'places') AS places"
        " FROM summary_refreshes r WHERE r.name = 'fleet_cube'"
        " AND r.refreshed_at > clock_timestamp() - make_interval(secs => %s)", (CUBE_MAX_AGE_SECONDS,)).fetchone()
    if row is None or row["places"] is None:
        return None
    return AnswerSources(row["refreshed_at"], row["places"])


# --- freshness ------------------------------------------------------------------------------


def freshness(conn: Conn) -> a.Freshness:
    """The newest event reflected (telemetry or lifecycle) and the age of the workers' newest commit.

    Fleet-wide for every caller: a partner learns only how current the twin is, not whose
    event was newest. The newest lifecycle event is read live; the newest reading as of the last
    summary rebuild (`TWIN_API_SUMMARY_SECONDS`), since the raw telemetry's time index is BRIN.
    """
    row = conn.execute(
        """
        SELECT greatest((SELECT newest_reading_at FROM summary_refreshes WHERE name = 'fleet_cube'),
                        (SELECT occurred_at FROM events ORDER BY position DESC LIMIT 1)) AS newest,
               (SELECT max(updated_at) FROM consumer_offsets) AS committed,
               now() AS answered_at
        """
    ).fetchone()
    assert row is not None
    committed, now = row["committed"], row["answered_at"]
    lag = None if committed is None else max((now - committed).total_seconds(), 0.0)
    return a.Freshness(newest_event_at=row["newest"], worker_committed_at=committed, worker_lag_seconds=lag,
                       answered_at=now)


# --- validation -----------------------------------------------------------------------------


_GENERATIONS = """
    WITH RECURSIVE g AS (  -- the distinct generations of the racks, one index probe each (a skip scan)
        SELECT min(generation) AS v FROM rack_lifecycle
        UNION ALL
        SELECT (SELECT min(generation) FROM rack_lifecycle WHERE generation > g.v) FROM g WHERE g.v IS NOT NULL
    )
    SELECT v AS generation FROM g WHERE v IS NOT NULL UNION SELECT generation FROM generation_intents ORDER BY 1
"""


def valid_values(conn: Conn, field: str, *, owner: str | None = None) -> list[str]:
    """The values a filter accepts: `stage`, `generation`, `facility`, `health`, `deviation`, `operator`."""
    if field == "stage":
        return [s.value for s in RackStatus]
    if field == "health":
        return [h.value for h in HealthState]
    if field == "deviation":
        return list(KNOWN_CHECKS)
    if field == "generation":
        return [r["generation"] for r in conn.execute(_GENERATIONS)]
    if field == "facility":
        return [r["facility_id"] for r in conn.execute(
            sql.SQL("SELECT facility_id FROM {} f ORDER BY 1").format(_FACILITIES), _p(owner))]
    if field == "operator":
        return [r["operator"] for r in conn.execute(
            sql.SQL("SELECT DISTINCT operator FROM {} f ORDER BY 1").format(_FACILITIES), _p(owner))]
    raise InvalidQuery("field", field, ["deviation", "facility", "generation", "health", "operator", "stage"])


def _check(conn: Conn, field: str, value: str | None, *, owner: str | None = None) -> None:
    """Refuse a filter value that names nothing (a typo would otherwise answer 'nothing found')."""
    if value is None:
        return
    valid = valid_values(conn, field, owner=owner)
    if value not in valid:
        raise InvalidQuery(field, value, valid)


# --- fleet summary --------------------------------------------------------------------------


def fleet_summary(conn: Conn, *, owner: str | None = None,
                  group_by: Sequence[str] = ("facility", "generation")) -> a.FleetSummary:
    """Racks per group of any of facility, hall, row, generation, stage and owner (operator).

    Read from the fleet cube (migration 0023), refreshed first when older than `CUBE_MAX_AGE_SECONDS`.
    """
    if not group_by:
        raise InvalidQuery("group_by", "", list(a.GROUP_DIMENSIONS), "name at least one dimension")
    columns: dict[str, sql.Composable] = {}
    for dim in group_by:
        if dim not in _DIMENSIONS:
            raise InvalidQuery("group_by", dim, list(a.GROUP_DIMENSIONS))
        for key, column in _DIMENSIONS[dim]:
            columns.setdefault(key, column)
    keys = list(columns)
    summarised_at = _fresh_summary(conn, "fleet_cube", CUBE_MAX_AGE_SECONDS)
    select = sql.SQL(", ").join(sql.SQL("{} AS {}").format(c, sql.Identifier(k)) for k, c in columns.items())
    query = sql.SQL("""
        SELECT {select}, sum(racks) AS racks, sum(in_service) AS in_service, sum(with_deviations) AS with_deviations,
               sum(critical) AS critical, sum(power_watts) AS power_watts,
               sum(allocated_draw_watts) AS allocated_draw_watts
        FROM {cube} c WHERE %(owner)s::text IS NULL OR c.operator = %(owner)s
        GROUP BY {group} ORDER BY {group}
    """).format(select=select, group=sql.SQL(", ").join(sql.Literal(i + 1) for i in range(len(keys))),
                cube=sql.Identifier("fleet_cube" if {"hall", "row"} & set(group_by) else "facility_cube"))
    rows = conn.execute(query, _p(owner)).fetchall()
    groups = [a.FleetGroup(key={k: r[k] for k in keys}, racks=r["racks"], in_service=r["in_service"],
                           with_deviations=r["with_deviations"], critical=r["critical"],
                           power_watts=float(r["power_watts"]), allocated_draw_watts=float(r["allocated_draw_watts"]))
              for r in rows]
    return a.FleetSummary(group_by=list(group_by), groups=groups, racks=sum(g.racks for g in groups),  # type: ignore[arg-type]
                          summarised_at=summarised_at)


# --- headroom and placement -----------------------------------------------------------------

_ALLOCATION = """
    SELECT facility_id, hall_id, row_id, racks, allocated_draw_watts AS allocated FROM row_allocation
    WHERE %(facility)s::text IS NULL OR facility_id = %(facility)s
"""

_ROW_PLACES = sql.SQL("""
    WITH draw AS ({draw}), alloc AS ({alloc})
    SELECT 'row' AS level, r.facility_id, r.hall_id, r.row_id, f.operator, r.positions,
           coalesce(al.racks, 0) AS racks, r.power_capacity_watts, r.cooling_capacity_watts,
           coalesce(al.allocated, 0) AS allocated
    FROM rows r JOIN {facilities} f USING (facility_id)
    LEFT JOIN alloc al USING (facility_id, hall_id, row_id)
    WHERE %(facility)s::text IS NULL OR r.facility_id = %(facility)s
""")
_HALL_PLACES = sql.SQL("""
    WITH draw AS ({draw}), alloc AS ({alloc}),
    per_row AS (
        SELECT r.facility_id, r.hall_id, sum(r.positions) AS positions, sum(coalesce(al.racks, 0)) AS racks,
               sum(coalesce(al.allocated, 0)) AS allocated
        FROM rows r LEFT JOIN alloc al USING (facility_id, hall_id, row_id) GROUP BY 1, 2
    )
    SELECT 'hall' AS level, h.facility_id, h.hall_id, NULL::text AS row_id, f.operator, p.positions, p.racks,
           h.power_capacity_watts, h.cooling_capacity_watts, p.allocated
    FROM halls h JOIN {facilities} f USING (facility_id) JOIN per_row p USING (facility_id, hall_id)
    WHERE %(facility)s::text IS NULL OR h.facility_id = %(facility)s
""")
_FACILITY_PLACES = sql.SQL("""
    WITH draw AS ({draw}), alloc AS ({alloc}),
    per_row AS (
        SELECT r.facility_id, r.hall_id, sum(r.positions) AS positions, sum(coalesce(al.racks, 0)) AS racks,
               sum(coalesce(al.allocated, 0)) AS allocated
        FROM rows r LEFT JOIN alloc al USING (facility_id, hall_id, row_id) GROUP BY 1, 2
    )
    SELECT 'facility' AS level, h.facility_id, NULL::text AS hall_id, NULL::text AS row_id, f.operator,
           sum(p.positions) AS positions, sum(p.racks) AS racks, sum(h.power_capacity_watts) AS power_capacity_watts,
           sum(h.cooling_capacity_watts) AS cooling_capacity_watts, sum(p.allocated) AS allocated
    FROM halls h JOIN {facilities} f USING (facility_id) JOIN per_row p USING (facility_id, hall_id)
    WHERE %(facility)s::text IS NULL OR h.facility_id = %(facility)s
    GROUP BY h.facility_id, f.operator
""")
_PLACES = {"row": _ROW_PLACES, "hall": _HALL_PLACES, "facility": _FACILITY_PLACES}

_P95 = {
    "row": ("facility_id, hall_id, row_id", "facility_id, hall_id, row_id"),
    "hall": ("facility_id, hall_id", "facility_id, hall_id, NULL::text AS row_id"),
    "facility": ("facility_id", "facility_id, NULL::text AS hall_id, NULL::text AS row_id"),
}


def _places(conn: Conn, level: str, owner: str | None, facility: str | None) -> list[dict[str, Any]]:
    query = _PLACES[level].format(draw=sql.SQL(_DESIGN_DRAW), alloc=sql.SQL(_ALLOCATION), facilities=_FACILITIES)
    return conn.execute(query, _p(owner, facility=facility)).fetchall()


def _capacity(r: dict[str, Any]) -> Capacity:
    return Capacity(r["level"], r["facility_id"], r["hall_id"], r["row_id"], float(r["power_capacity_watts"]),
                    float(r["cooling_capacity_watts"]), float(r["allocated"]), float(r["allocated"]),
                    int(r["positions"]), int(r["racks"]))


DEFAULT_WINDOW_MINUTES = 15
"""Headroom's default p95 window: the one the summary tables hold (others are computed from the minutes)."""


def headroom(conn: Conn, *, owner: str | None = None, level: str = "row", facility: str | None = None,
             window_minutes: int = DEFAULT_WINDOW_MINUTES) -> a.Headroom:
    """Per facility, hall or row: site limits, allocated design draw, measured p95 draw, what is left.

    Allocation comes from the fleet cube; the p95 over the default window from its summary, any
    other window from the per-row minutes.
    """
    if level not in _PLACES:
        raise InvalidQuery("level", level, list(a.HEADROOM_LEVELS))
    if not 1 <= window_minutes <= 7 * 24 * 60:
        raise InvalidQuery("window_minutes", window_minutes, hint="give 1 to 10080 minutes")
    _check(conn, "facility", facility, owner=owner)
    summarised_at = _fresh_summary(conn, "fleet_cube", CUBE_MAX_AGE_SECONDS)
    keys, select = _P95[level]
    p95 = {tuple(r[k] for k in ("facility_id", "hall_id", "row_id")): r["p95"] for r in conn.execute(
        sql.SQL("""
            SELECT facility_id, hall_id, row_id, p95_watts AS p95 FROM place_draw_p95
            WHERE level = %(level)s AND (%(facility)s::text IS NULL OR facility_id = %(facility)s)
              AND facility_id IN (SELECT facility_id FROM {facilities} f)
        """).format(facilities=_FACILITIES), _p(owner, level=level, facility=facility))
    } if window_minutes == DEFAULT_WINDOW_MINUTES else {tuple(r[k] for k in ("facility_id", "hall_id", "row_id")):
                                                        r["p95"] for r in conn.execute(
        sql.SQL("""
            SELECT {select}, percentile_cont(0.95) WITHIN GROUP (ORDER BY watts) AS p95
            FROM (SELECT {keys}, minute, sum(power_watts) AS watts FROM row_power_minutes
                  WHERE minute >= date_trunc('minute', now()) - make_interval(mins => %(window)s)
                    AND (%(facility)s::text IS NULL OR facility_id = %(facility)s)
                    AND facility_id IN (SELECT facility_id FROM {facilities} f)
                  GROUP BY {keys}, minute) m
            GROUP BY {keys}
        """).format(select=sql.SQL(select), keys=sql.SQL(keys), facilities=_FACILITIES),
        _p(owner, window=window_minutes, facility=facility))}
    places = []
    for r in _places(conn, level, owner, facility):
        c = _capacity(r)
        places.append({
            "level": level, "facility_id": c.facility_id, "hall_id": c.hall_id, "row_id": c.row_id,
            "operator": r["operator"], "positions": c.positions, "racks": c.racks,
            "power_capacity_watts": c.power_capacity_watts, "cooling_capacity_watts": c.cooling_capacity_watts,
            "allocated_draw_watts": c.allocated_draw_watts,
            "measured_p95_watts": p95.get((c.facility_id, c.hall_id, c.row_id)),
            "available_power_watts": c.available_power_watts, "available_cooling_watts": c.available_cooling_watts,
            "free_positions": c.free_positions})
    places.sort(key=lambda p: (p["facility_id"], p["hall_id"] or "", p["row_id"] or ""))
    return a.Headroom.model_validate({"level": level, "window_minutes": window_minutes, "places": places,
                                      "summarised_at": summarised_at})



def place(conn: Conn, *, generation: str, count: int, owner: str | None = None,
          facility: str | None = None) -> a.Placement:
    """What-if: where `count` racks of `generation` would fit, within power, cooling and positions."""
    from schemas import GenerationIntent

    if not 1 <= count <= 100_000:
        raise InvalidQuery("count", count, hint="give 1 to 100000 racks")
    _check(conn, "facility", facility, owner=owner)
    row = conn.execute("SELECT body FROM generation_intents WHERE generation = %s ORDER BY revision DESC LIMIT 1",
                       (generation,)).fetchone()
    if row is None:
        raise InvalidQuery("generation", generation, valid_values(conn, "generation"),
                           "a generation needs a published intent to be placed")
    intent = GenerationIntent.model_validate(row["body"])
    _fresh_summary(conn, "fleet_cube", CUBE_MAX_AGE_SECONDS)
    capacities = [_capacity(r) for level in ("hall", "row") for r in _places(conn, level, owner, facility)]
    plan = plan_placement(capacities, intent, count)
    return a.Placement(
        generation=generation, requested=count, placed=plan.placed, design_draw_watts=plan.design_draw_watts,
        unplaced=plan.unplaced,
        rows=[a.PlacementRow(facility_id=p.facility_id, hall_id=p.hall_id, row_id=p.row_id, racks=p.racks,
                             available_power_watts_after=p.available_power_watts_after,
                             available_cooling_watts_after=p.available_cooling_watts_after,
                             free_positions_after=p.free_positions_after) for p in plan.rows])


# --- racks ----------------------------------------------------------------------------------


def _encode_cursor(rack_id: str) -> str:
    return base64.urlsafe_b64encode(f"after:{rack_id}".encode()).decode().rstrip("=")


def _decode_cursor(cursor: str) -> str:
    try:
        text = base64.b64decode(cursor + "=" * (-len(cursor) % 4), altchars=b"-_", validate=True).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        text = ""
    if text.startswith("after:") and len(text) > 6:
        return text[6:]
    raise InvalidQuery("cursor", cursor, hint="pass back the next_cursor of the previous page unchanged") from None


def list_racks(
    conn: Conn, *, owner: str | None = None, stage: str | None = None, generation: str | None = None,
    facility: str | None = None, health: str | None = None, deviation: str | None = None,
    stalled: bool | None = None, onshore_below: float | None = None, firmware_drift: bool | None = None,
    limit: int = 50, cursor: str | None = None,
) -> a.RackPage:
    """Racks matching every filter given, by rack id, a page at a time (`cursor` from the last page)."""
    for field, value in (("stage", stage), ("generation", generation), ("health", health),
                         ("deviation", deviation)):
        _check(conn, field, value)
    _check(conn, "facility", facility, owner=owner)
    if not 1 <= limit <= 1000:
        raise InvalidQuery("limit", limit, hint="give 1 to 1000")
    if onshore_below is not None and not 0.0 <= onshore_below <= 1.0:
        raise InvalidQuery("onshore_below", onshore_below, hint="a share from 0 to 1, e.g. 0.5")
    after = _decode_cursor(cursor) if cursor else None
    where = sql.SQL("""
        (%(stage)s::text IS NULL OR s.status = %(stage)s)
        AND (%(generation)s::text IS NULL OR s.generation = %(generation)s)
        AND (%(facility)s::text IS NULL OR s.facility_id = %(facility)s)
        AND (%(health)s::text IS NULL
             OR (%(health)s <> 'unknown' AND EXISTS (
                 SELECT 1 FROM rack_telemetry h WHERE h.rack_id = s.rack_id AND h.health_overall = %(health)s))
             OR (%(health)s = 'unknown' AND NOT EXISTS (  -- never reported: no health document
                 SELECT 1 FROM rack_telemetry h WHERE h.rack_id = s.rack_id AND h.health_overall <> 'unknown')))
        AND (%(deviation)s::text IS NULL
             OR EXISTS (SELECT 1 FROM deviations d WHERE d.rack_id = s.rack_id AND d.check_name = %(deviation)s))
        AND (%(stalled)s::boolean IS NULL OR %(stalled)s = EXISTS (
             SELECT 1 FROM deviations d WHERE d.rack_id = s.rack_id AND d.check_name = 'stalled-in-stage'))
        AND (%(drift)s::boolean IS NULL OR %(drift)s = EXISTS (
             SELECT 1 FROM deviations d WHERE d.rack_id = s.rack_id AND d.check_name LIKE 'firmware-drift-%%'))
        AND (%(onshore)s::double precision IS NULL OR s.onshore_share < %(onshore)s)
    """)
    params = _p(owner, stage=stage, generation=generation, facility=facility, health=health, deviation=deviation,
                stalled=stalled, drift=firmware_drift, onshore=onshore_below, after=after, limit=limit + 1,
                driver=deviation)
    # A filter that asks for an open deviation or a rare health word drives the query from its index
    # (a few hundred racks), instead of walking every rack in id order to find the page's matches.
    drivers = [sql.SQL(q) for q, wanted in (
        ("SELECT rack_id FROM deviations WHERE check_name = %(driver)s", deviation is not None),
        ("SELECT rack_id FROM deviations WHERE check_name = 'stalled-in-stage'", stalled is True),
        ("SELECT rack_id FROM deviations WHERE check_name LIKE 'firmware-drift-%%'", firmware_drift is True),
        ("SELECT rack_id FROM rack_telemetry WHERE health_overall = %(health)s", health in ("warning", "critical")),
    ) if wanted]
    ids = sql.SQL(" INTERSECT ").join(drivers)
    joined = sql.SQL("(SELECT r.* FROM {racks} r JOIN ({ids}) dv USING (rack_id))")
    source = _RACKS if not drivers else joined.format(racks=_RACKS, ids=ids)
    counted = _RACKS_TO_COUNT if not drivers else joined.format(racks=_RACKS_TO_COUNT, ids=ids)
    if drivers:  # what drives the query needs no second check per rack
        params.update(deviation=None, stalled=None if stalled else stalled, drift=None if firmware_drift else firmware_drift)
    rows = conn.execute(sql.SQL("""
        SELECT s.rack_id, s.generation, s.status, s.facility_id, s.hall_id, s.row_id, s.position,
               s.stage_entered_at, s.health_overall AS health, s.power_watts, s.telemetry_at,
               s.deviation_count, s.onshore_share AS onshore_share
        FROM {racks} s WHERE {where} AND (%(after)s::text IS NULL OR s.rack_id > %(after)s)
        ORDER BY s.rack_id LIMIT %(limit)s
    """).format(racks=source, where=where), params).fetchall()
    total = conn.execute(sql.SQL("SELECT count(*) AS n FROM {racks} s WHERE {where}").format(racks=counted, where=where),
                         params).fetchone()
    assert total is not None
    more = len(rows) > limit
    rows = rows[:limit]
    return a.RackPage(
        racks=[a.RackSummary(rack_id=r["rack_id"], generation=r["generation"], stage=r["status"],
                             facility_id=r["facility_id"], hall_id=r["hall_id"], row_id=r["row_id"],
                             position=r["position"], stage_entered_at=r["stage_entered_at"], health=r["health"],
                             power_watts=r["power_watts"], telemetry_at=r["telemetry_at"],
                             deviation_count=r["deviation_count"], onshore_share=r["onshore_share"]) for r in rows],
        total=total["n"], next_cursor=_encode_cursor(rows[-1]["rack_id"]) if more else None)


def _visible(conn: Conn, rack_id: str, owner: str | None) -> dict[str, Any] | None:
    return conn.execute(
        sql.SQL("SELECT s.* FROM {racks} s WHERE s.rack_id = %(rack)s")
        .format(racks=_RACKS), _p(owner, rack=rack_id)).fetchone()


def _public_twin(snapshot: dict[str, Any]) -> dict[str, Any]:
    """The stored snapshot as answered: its `status` is called `stage`, as everywhere else in an answer."""
    return {("stage" if key == "status" else key): value for key, value in snapshot.items()}


def rack(conn: Conn, rack_id: str, *, owner: str | None = None) -> a.RackDetail | None:
    """One rack's current twin with its open deviations; None when unknown or not the owner's."""
    row = _visible(conn, rack_id, owner)
    if row is None:
        return None
    deviations = conn.execute(
        "SELECT check_name, severity, measured, allowed_min, allowed_max, unit, intent_revision, detail, since"
        " FROM deviations WHERE rack_id = %s ORDER BY severity, check_name", (rack_id,)).fetchall()
    return a.RackDetail(
        rack_id=row["rack_id"], generation=row["generation"], stage=row["status"], facility_id=row["facility_id"],
        hall_id=row["hall_id"], row_id=row["row_id"], position=row["position"],
        stage_entered_at=row["stage_entered_at"], telemetry_at=row["telemetry_at"],
        readings={c: row[c] for c in READING_COLUMNS}, health=row["health"] or {},
        intent_revision=row["intent_revision"], onshore_share=row["onshore_share"],
        twin=_public_twin(row["twin"] or {}),
        deviations=[a.DeviationAnswer(check=d["check_name"], severity=d["severity"], measured=d["measured"],
                                      allowed_min=d["allowed_min"], allowed_max=d["allowed_max"], unit=d["unit"],
                                      intent_revision=d["intent_revision"], detail=d["detail"], since=d["since"])
                    for d in deviations])


def rack_history(conn: Conn, rack_id: str, *, owner: str | None = None) -> a.RackHistory | None:
    """The rack's stored events (lifecycle, parts, tests) in stream order."""
    if _visible(conn, rack_id, owner) is None:
        return None
    rows = conn.execute(
        "SELECT stream_version, event_id::text AS event_id, type, occurred_at, recorded_at, source, seq, body"
        " FROM events WHERE stream_id = %s ORDER BY stream_version", (rack_id,)).fetchall()
    return a.RackHistory(rack_id=rack_id, events=[a.HistoryEvent(**r) for r in rows])


def rack_as_of(conn: Conn, rack_id: str, instant: datetime, *, owner: str | None = None) -> a.RackAsOf | None:
    """The rack's twin as of `instant` (the fold of its events up to then)."""
    from twin.store import views

    if instant.tzinfo is None:
        raise InvalidQuery("at", instant.isoformat(), hint="give an instant with its UTC offset, e.g. 2027-01-01T00:00:00Z")
    if _visible(conn, rack_id, owner) is None:
        return None
    twin = views.rack_as_of(conn, rack_id, instant)
    return a.RackAsOf(rack_id=rack_id, as_of=instant.astimezone(timezone.utc), stage=twin.status.value,
                      twin=_public_twin(twin.snapshot()))


# --- rollout --------------------------------------------------------------------------------


def _lead_to_service(conn: Conn, owner: str | None) -> dict[str, float]:
    """Stage -> median days from entering it to entering service, over the owner's racks that did both."""
    rows = conn.execute("SELECT stage, median_days FROM lead_to_service WHERE operator = %s",
                        (owner if owner is not None else "*",)).fetchall()
    return {r["stage"]: float(r["median_days"]) for r in rows}


def rollout(conn: Conn, *, owner: str | None = None, facility: str | None = None) -> a.RolloutProgress:
    """Per facility, generation and quarter (2026Q3..2029Q4): target, racks in service, and a forecast.

    The forecast adds to today's racks in service every rack still on its way (manufactured to
    commissioned, at a known facility or shipped to one) expected to enter service by the
    quarter's end: when it entered its current stage plus the measured median time from that
    stage to service (stage durations, migration 0023). A past quarter's forecast is the racks
    in service now that entered their current stage before its end (racks withdrawn since are
    not counted back).
    """
    _check(conn, "facility", facility, owner=owner)
    summarised_at = _fresh_summary(conn, "stage_durations", DURATIONS_MAX_AGE_SECONDS)
    lead = _lead_to_service(conn, owner)
    plan = conn.execute("SELECT max(revision) AS revision FROM rollout_targets").fetchone()
    revision = plan["revision"] if plan else None
    targets: dict[tuple[str, str], dict[str, int]] = defaultdict(dict)
    for r in conn.execute(sql.SQL("""
        SELECT t.facility_id, t.generation, t.quarter, t.racks_in_service FROM rollout_targets t
        WHERE t.revision = %(revision)s AND t.facility_id IN (SELECT facility_id FROM {facilities} f)
          AND (%(facility)s::text IS NULL OR t.facility_id = %(facility)s)
    """).format(facilities=_FACILITIES), _p(owner, revision=revision, facility=facility)):
        targets[(r["facility_id"], r["generation"])][r["quarter"]] = r["racks_in_service"]
    served: dict[tuple[str, str], dict[str, int]] = defaultdict(lambda: defaultdict(int))
    _fresh_summary(conn, "fleet_cube", CUBE_MAX_AGE_SECONDS)
    for r in conn.execute("""
        SELECT facility_id, generation, entered_quarter AS quarter, sum(in_service) AS n FROM facility_cube
        WHERE in_service > 0 AND facility_id IS NOT NULL AND generation IS NOT NULL
          AND (%(owner)s::text IS NULL OR operator = %(owner)s)
          AND (%(facility)s::text IS NULL OR facility_id = %(facility)s)
        GROUP BY 1, 2, 3
    """, _p(owner, facility=facility)):
        served[(r["facility_id"], r["generation"])][r["quarter"] or "0000Q0"] += r["n"]
    expected: dict[tuple[str, str], dict[str, int]] = defaultdict(lambda: defaultdict(int))
    if lead:
        for r in conn.execute(sql.SQL("""
            WITH lead AS (SELECT * FROM jsonb_to_recordset(%(lead)s::jsonb) AS x(stage text, days double precision)),
            way AS (
                SELECT coalesce(s.facility_id, s.destination_facility_id) AS facility_id, s.generation,
                       greatest(s.stage_entered_at + make_interval(secs => l.days * 86400), now()) AS due
                FROM rack_lifecycle s JOIN lead l ON l.stage = s.status
                WHERE s.status = ANY(%(pipeline)s) AND s.generation IS NOT NULL AND s.stage_entered_at IS NOT NULL
            )
            SELECT facility_id, generation, to_char(due AT TIME ZONE 'UTC', 'YYYY"Q"Q') AS quarter, count(*) AS n
            FROM way WHERE facility_id IN (SELECT facility_id FROM {facilities} f)
              AND (%(facility)s::text IS NULL OR facility_id = %(facility)s)
            GROUP BY 1, 2, 3
        """).format(facilities=_FACILITIES), _p(owner, lead=Jsonb([{"stage": k, "days": v} for k, v in lead.items()]),
                                               pipeline=_PIPELINE, facility=facility)):
            expected[(r["facility_id"], r["generation"])][r["quarter"]] += r["n"]
    now_quarter = quarter_of(datetime.now(timezone.utc))
    cells = []
    for pair in sorted(set(targets) | set(served)):
        level, in_service_now = 0, sum(served[pair].values())
        for q in PLAN_QUARTERS:
            level = targets[pair].get(q, level)
            if q < now_quarter:
                forecast = sum(n for sq, n in served[pair].items() if sq <= q)
            else:
                forecast = in_service_now + sum(n for eq, n in expected[pair].items() if eq <= q)
            cells.append(a.RolloutCell(facility_id=pair[0], generation=pair[1], quarter=q, target=level,
                                       in_service=in_service_now if q == now_quarter else None,
                                       forecast=forecast, on_plan=forecast >= level))
    return a.RolloutProgress(plan_revision=revision, quarters=list(PLAN_QUARTERS), lead_time_days_to_service=lead,
                             cells=cells, summarised_at=summarised_at)


# --- scorecard ------------------------------------------------------------------------------


def scorecard(conn: Conn, *, owner: str | None = None, generation: str | None = None) -> a.Scorecard:
    """Generations side by side: the facts behind adopting a new one "depending on performance".

    Counts, onshore share and power from the fleet cube; lead times, rack-years in service (up to
    when the durations were summarised, so two askings agree), RMAs and failures (degradations)
    from the stage durations of the event store; deviation rates live.
    """
    _check(conn, "generation", generation)
    summarised_at = min(_fresh_summary(conn, "fleet_cube", CUBE_MAX_AGE_SECONDS),
                        _fresh_summary(conn, "stage_durations", DURATIONS_MAX_AGE_SECONDS))
    p = _p(owner, generation=generation, pipeline=_PIPELINE + ["active"], serving=_SERVING)
    base = {r["generation"]: r for r in conn.execute(sql.SQL("""
        WITH draw AS ({draw})
        SELECT c.generation, d.title, d.budget_max_watts, sum(c.racks) AS racks, sum(c.in_service) AS in_service,
               sum(c.onshore_sum) / nullif(sum(c.onshore_racks), 0) AS onshore,
               sum(c.serving_power_watts) / nullif(sum(c.in_service), 0) AS power
        FROM facility_cube c LEFT JOIN draw d USING (generation)
        WHERE c.generation IS NOT NULL AND (%(owner)s::text IS NULL OR c.operator = %(owner)s)
          AND (%(generation)s::text IS NULL OR c.generation = %(generation)s)
        GROUP BY 1, 2, 3 ORDER BY 1
    """).format(draw=sql.SQL(_DESIGN_DRAW)), p)}
    rates: dict[str, dict[str, float]] = defaultdict(dict)
    for r in conn.execute(sql.SQL(f"""
        SELECT d.generation, {_SUBSYSTEM} AS subsystem, count(DISTINCT d.rack_id) AS n
        FROM deviations d
        WHERE (%(generation)s::text IS NULL OR d.generation = %(generation)s) AND {{owned}}
        GROUP BY 1, 2
    """).format(owned=_OWNED.format(column=sql.SQL("d.rack_id"))), p):
        if r["generation"] in base:
            rates[r["generation"]][r["subsystem"]] = r["n"] / base[r["generation"]]["racks"]
    p["who"] = owner if owner is not None else "*"
    years = {r["generation"]: r for r in conn.execute("""
        SELECT generation, (closed_days + (open_stays * extract(epoch FROM r.refreshed_at) - open_since_epoch_sum)
                            / 86400) / 365.25 AS rack_years, rma, failures
        FROM service_record, (SELECT refreshed_at FROM summary_refreshes WHERE name = 'stage_durations') r
        WHERE operator = %(who)s
          AND (%(generation)s::text IS NULL OR generation = %(generation)s)
    """, p)}
    leads: dict[str, list[a.LeadTime]] = defaultdict(list)
    for r in conn.execute("""
        SELECT generation, stage, racks, median_days AS median, p90_days AS p90 FROM stage_lead_times
        WHERE operator = %(who)s AND (%(generation)s::text IS NULL OR generation = %(generation)s)
    """, p):
        leads[r["generation"]].append(a.LeadTime(stage=r["stage"], racks=r["racks"], median_days=float(r["median"]),
                                                 p90_days=float(r["p90"])))
    order = {s: i for i, s in enumerate(_PIPELINE + ["active"])}
    out = []
    for g, r in base.items():
        y = years.get(g, {"rack_years": 0, "rma": 0, "failures": 0})
        rack_years = float(y["rack_years"])
        out.append(a.GenerationScore(
            generation=g, title=r["title"], racks=int(r["racks"]), racks_in_service=int(r["in_service"]),
            deviation_rate={s: rates[g].get(s, 0.0) for s in SUBSYSTEMS}, rack_years_in_service=rack_years,
            rma_per_rack_year=float(y["rma"]) / rack_years if rack_years > 0 else None,
            failures_per_rack_year=float(y["failures"]) / rack_years if rack_years > 0 else None,
            lead_times=sorted(leads[g], key=lambda lt: order.get(lt.stage, 99)),
            onshore_share=None if r["onshore"] is None else float(r["onshore"]),
            power_per_rack_watts=None if r["power"] is None else float(r["power"]),
            power_budget_watts=r["budget_max_watts"]))
    return a.Scorecard(generations=out, summarised_at=summarised_at)


# --- intent ---------------------------------------------------------------------------------


def _conformance(conn: Conn, owner: str | None, generation: str | None) -> dict[tuple[str, int], a.Conformance]:
    p = _p(owner, generation=generation)
    _fresh_summary(conn, "fleet_cube", CUBE_MAX_AGE_SECONDS)
    judged = {(r["generation"], r["intent_revision"]): int(r["n"]) for r in conn.execute("""
        SELECT generation, intent_revision, sum(racks) AS n FROM facility_cube
        WHERE intent_revision IS NOT NULL AND (%(owner)s::text IS NULL OR operator = %(owner)s)
          AND (%(generation)s::text IS NULL OR generation = %(generation)s)
        GROUP BY 1, 2
    """, p)}
    deviating: dict[tuple[str, int], int] = {}
    checks: dict[tuple[str, int], dict[str, int]] = defaultdict(dict)
    for r in conn.execute(sql.SQL("""
        SELECT d.generation, d.intent_revision, d.check_name, count(*) AS n FROM deviations d
        WHERE {owned} AND (%(generation)s::text IS NULL OR d.generation = %(generation)s)
        GROUP BY 1, 2, 3
    """).format(owned=_OWNED.format(column=sql.SQL("d.rack_id"))), p):
        checks[(r["generation"], r["intent_revision"])][r["check_name"]] = r["n"]
    for r in conn.execute(sql.SQL("""
        SELECT d.generation, d.intent_revision, count(DISTINCT d.rack_id) AS n FROM deviations d
        WHERE {owned} AND (%(generation)s::text IS NULL OR d.generation = %(generation)s)
        GROUP BY 1, 2
    """).format(owned=_OWNED.format(column=sql.SQL("d.rack_id"))), p):
        deviating[(r["generation"], r["intent_revision"])] = r["n"]
    out = {}
    for key in set(judged) | set(checks):
        j, d = judged.get(key, 0), deviating.get(key, 0)
        out[key] = a.Conformance(judged=j, deviating=d, conforming=max(j - d, 0), open_deviations=checks.get(key, {}))
    return out


_EMPTY = a.Conformance(judged=0, deviating=0, conforming=0, open_deviations={})


def intent_revisions(conn: Conn, *, owner: str | None = None, generation: str | None = None) -> a.IntentRevisions:
    """Every intent revision (newest first per generation) with the owner's racks' conformance to it."""
    _check(conn, "generation", generation)
    conformance = _conformance(conn, owner, generation)
    rows = conn.execute(
        "SELECT generation, revision, published_at, body ->> 'title' AS title,"
        " revision = max(revision) OVER (PARTITION BY generation) AS latest FROM generation_intents"
        " WHERE %(generation)s::text IS NULL OR generation = %(generation)s ORDER BY generation, revision DESC",
        {"generation": generation}).fetchall()
    return a.IntentRevisions(revisions=[
        a.IntentRevision(generation=r["generation"], revision=r["revision"], published_at=r["published_at"],
                         title=r["title"], latest=r["latest"],
                         conformance=conformance.get((r["generation"], r["revision"]), _EMPTY)) for r in rows])


def intent_revision(conn: Conn, generation: str, revision: int | None = None, *,
                    owner: str | None = None) -> a.IntentDetail | None:
    """One intent revision (default: the latest) with its body and conformance; None when unknown."""
    row = conn.execute(
        "SELECT generation, revision, published_at, body, body ->> 'title' AS title,"
        " revision = (SELECT max(revision) FROM generation_intents WHERE generation = %(g)s) AS latest"
        " FROM generation_intents WHERE generation = %(g)s AND (%(r)s::int IS NULL OR revision = %(r)s)"
        " ORDER BY revision DESC LIMIT 1", {"g": generation, "r": revision}).fetchone()
    if row is None:
        return None
    conformance = _conformance(conn, owner, generation).get((generation, row["revision"]), _EMPTY)
    return a.IntentDetail(generation=row["generation"], revision=row["revision"], published_at=row["published_at"],
                          title=row["title"], latest=row["latest"], conformance=conformance, body=row["body"])
