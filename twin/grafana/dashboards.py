"""The five fleet dashboards, built as code with grafana-foundation-sdk.

Why the SDK and not grafanalib: it is Grafana Labs' own, generated from the schemas Grafana
itself validates dashboards against (so a field it builds is one Grafana reads), kept current
with Grafana releases, and it parses dashboards back into typed models, which the tests use to
validate what we export. grafanalib is community-kept and its last release is from 2024.

Every panel reads the twin's tables and query surface (sql/0011_rollups.sql) through the
PostgreSQL data source: `$__timeFilter`, `$__timeGroupAlias(col, $__interval)`,
`$__timeFrom()`/`$__timeTo()`, and the template variables `$facility`, `$generation` (multi,
with All: Grafana quotes each value) and `$rack` (single: written inside quotes). Grafana's
PostgreSQL macros bucket by epoch seconds, so every bucket is UTC; the dashboards' time zone is
UTC too. Time series read the query surface: `telemetry_series` (one rack: raw, 1-minute or
1-hour rows by range, live up to its latest reading) and `facility_series` (the fleet: facility
minutes or hours by range, stored rollups up to the watermark).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from grafana_foundation_sdk.builders import bargauge, common as common_b, stat, table, timeseries
from grafana_foundation_sdk.builders import dashboard as dash
from grafana_foundation_sdk.cog import builder as cogbuilder
from grafana_foundation_sdk.models import common, dashboard

from twin.grafana.query import DATASOURCE, SqlAnnotationTarget, sql

__all__ = ["DashboardSpec", "PanelQuery", "build_all"]

FLEET = "s.facility_id IN ($facility) AND s.generation IN ($generation)"
"""The fleet filter on `rack_state s`: $facility and $generation are multi-valued (quoted lists)."""

SERVICE = "('active', 'degraded', 'maintenance')"
ALLOCATING = "('installed', 'commissioned', 'active', 'degraded', 'maintenance')"
LATEST_INTENT = ("SELECT DISTINCT ON (generation) generation, revision, body FROM generation_intents"
                 " ORDER BY generation, revision DESC")
SUBSYSTEM = """CASE
        WHEN d.check_name LIKE 'power-%' THEN 'power'
        WHEN d.check_name IN ('cooling-over-capacity', 'coolant-flow-out-of-range', 'coolant-supply-out-of-envelope',
                              'leak-detected') THEN 'cooling'
        WHEN d.check_name IN ('inlet-temperature-out-of-envelope', 'accelerator-too-hot') THEN 'thermal'
        WHEN d.check_name LIKE 'network-%' THEN 'network'
        WHEN d.check_name LIKE 'components-%' OR d.check_name LIKE 'firmware-%' THEN 'components'
        ELSE 'lifecycle' END"""


@dataclass(frozen=True, slots=True)
class PanelQuery:
    """One panel query as exported, with the columns the panel needs from it (tests check them)."""

    dashboard_uid: str
    panel: str
    ref_id: str
    raw_sql: str
    format: str
    needs: tuple[str, ...]


@dataclass(slots=True)
class DashboardSpec:
    """A built dashboard and what its queries must return."""

    uid: str
    title: str
    builder: dash.Dashboard
    queries: list[PanelQuery] = field(default_factory=list)

    def to_json_plain(self) -> dict[str, Any]:
        """The dashboard as plain JSON data (what Grafana's API and provisioning read)."""
        import json

        from grafana_foundation_sdk.cog.encoder import JSONEncoder

        return json.loads(json.dumps(self.builder.build(), cls=JSONEncoder))


class _Layout:
    """Collects panels and their query expectations for one dashboard."""

    def __init__(self, uid: str, title: str, description: str, variables: Iterable[cogbuilder.Builder[Any]],
                 time_from: str = "now-24h") -> None:
        self._next_id = 0
        self.spec = DashboardSpec(uid, title, (
            dash.Dashboard(title).uid(uid).description(description).tags(["fleet-twin"]).timezone("utc")
            .time(time_from, "now").refresh("1m").editable().tooltip(dashboard.DashboardCursorSync.CROSSHAIR)
            .variables(list(variables))))

    def add(self, panel: Any, title: str, description: str, queries: list[tuple[Any, tuple[str, ...]]],
            width: int = 12, height: int = 8) -> None:
        self._next_id += 1
        panel = (panel.id(self._next_id).title(title).description(description).datasource(DATASOURCE)
                 .span(width).height(height))
        for query, needs in queries:
            built = query.build()
            panel = panel.with_target(query)
            self.spec.queries.append(PanelQuery(self.spec.uid, title, built.ref_id, built.raw_sql, built.format_val,
                                                needs))
        self.spec.builder = self.spec.builder.with_panel(panel)

    def row(self, title: str) -> None:
        self.spec.builder = self.spec.builder.with_row(dash.Row(title))

    def annotation(self, name: str, raw_sql: str, color: str, needs: tuple[str, ...]) -> None:
        target = SqlAnnotationTarget(" ".join(raw_sql.split()))
        self.spec.builder = self.spec.builder.annotation(
            dash.AnnotationQuery().name(name).datasource(DATASOURCE).enable(True).icon_color(color).target(target))
        self.spec.queries.append(PanelQuery(self.spec.uid, f"annotation: {name}", "Anno", target.build().raw_sql,
                                            "table", needs))


def _variable(name: str, label: str, query: str, *, multi: bool) -> dash.QueryVariable:
    v = (dash.QueryVariable(name).label(label).query(query).datasource(DATASOURCE)
         .refresh(dashboard.VariableRefresh.ON_DASHBOARD_LOAD).sort(dashboard.VariableSort.ALPHABETICAL_ASC))
    return v.multi(True).include_all(True) if multi else v.multi(False).include_all(False)


FACILITY = _variable("facility", "Facility", "SELECT facility_id FROM facilities ORDER BY 1", multi=True)
GENERATION = _variable("generation", "Generation", "SELECT DISTINCT generation FROM racks ORDER BY 1", multi=True)
RACK = _variable("rack", "Rack", "SELECT rack_id FROM rack_state s WHERE " + FLEET + " ORDER BY 1", multi=False)


def _ts(unit: str) -> timeseries.Panel:
    return timeseries.Panel().unit(unit).line_width(1).fill_opacity(10).interval("1m")


def _table() -> table.Panel:
    return table.Panel().show_header(True)


def _stat(unit: str = "none") -> stat.Panel:
    return stat.Panel().unit(unit).graph_mode(common.BigValueGraphMode.NONE).reduce_options(
        common_b.ReduceDataOptions().calcs(["lastNotNull"]).values(False))


def _bars(unit: str = "none") -> bargauge.Panel:
    return bargauge.Panel().unit(unit).orientation(common.VizOrientation.HORIZONTAL).reduce_options(
        common_b.ReduceDataOptions().calcs(["lastNotNull"]).values(True))


def fleet_overview() -> DashboardSpec:
    d = _Layout("fleet-overview", "Fleet overview",
                "Every rack of the fleet: where it is in its life, whose facility it is in, how much power it "
                "draws against its generation's budget, and which racks are outside their design intent.",
                [FACILITY, GENERATION])
    d.add(_stat(), "Racks", "Racks known to the fleet in the selected facilities and generations.",
          [(sql(f"SELECT count(*) AS racks FROM rack_state s WHERE {FLEET}"), ("racks",))], 6, 4)
    d.add(_stat(), "Out of envelope", "Racks with at least one open deviation from their design intent.",
          [(sql(f"SELECT count(*) FILTER (WHERE s.deviation_count > 0) AS racks_out_of_envelope"
                f" FROM rack_state s WHERE {FLEET}"), ("racks_out_of_envelope",))], 6, 4)
    d.add(_stat("watt"), "Power drawn now", "Sum of the latest reading of every rack.",
          [(sql(f"SELECT coalesce(sum(s.power_watts), 0) AS power_watts FROM rack_state s WHERE {FLEET}"),
            ("power_watts",))], 6, 4)
    d.add(_stat("percentunit"), "Of allocated budget",
          "Power drawn now over the generation power budget (max) of every rack that holds a position.",
          [(sql(f"""
            WITH intent AS ({LATEST_INTENT})
            SELECT coalesce(sum(s.power_watts), 0)
                   / nullif(sum((i.body -> 'power_budget_watts' ->> 'max')::double precision), 0) AS budget_used
            FROM rack_state s JOIN intent i USING (generation)
            WHERE {FLEET} AND s.status IN {ALLOCATING}"""), ("budget_used",))], 6, 4)
    d.add(_bars(), "Racks by stage", "Racks per lifecycle stage.",
          [(sql(f"SELECT s.status AS stage, count(*) AS racks FROM rack_state s WHERE {FLEET} GROUP BY 1 ORDER BY 1"),
            ("stage", "racks"))], 8)
    d.add(_bars(), "Racks by generation", "Racks per hardware generation.",
          [(sql(f"SELECT s.generation, count(*) AS racks FROM rack_state s WHERE {FLEET} GROUP BY 1 ORDER BY 1"),
            ("generation", "racks"))], 8)
    d.add(_table(), "Racks by facility and owner", "Own facilities and partners' (with the operator's name).",
          [(sql("""
            SELECT f.facility_id, f.name, f.ownership, f.operator, count(s.rack_id) AS racks,
                   count(s.rack_id) FILTER (WHERE s.status IN """ + SERVICE + """) AS in_service
            FROM facilities f
            LEFT JOIN rack_state s ON s.facility_id = f.facility_id AND s.generation IN ($generation)
            WHERE f.facility_id IN ($facility)
            GROUP BY 1, 2, 3, 4 ORDER BY 1"""), ("facility_id", "ownership", "operator", "racks"))], 8)
    d.add(_ts("watt"), "Power against budget",
          "Fleet power (the mean of the fleet's per-minute totals in each bucket: facility rollups by minute up "
          "to 8 days, by hour beyond, raw rows past the rollups) against the summed power budget of racks "
          "holding a position.",
          [(sql(f"""
            WITH intent AS ({LATEST_INTENT}),
            budget AS (
                SELECT sum((i.body -> 'power_budget_watts' ->> 'max')::double precision) AS watts
                FROM rack_state s JOIN intent i USING (generation) WHERE {FLEET} AND s.status IN {ALLOCATING}
            )
            SELECT $__timeGroupAlias(bucket, $__interval), avg(watts) AS "drawn",
                   max((SELECT watts FROM budget)) AS "budget"
            FROM (SELECT bucket, sum(power_watts_sum) AS watts
                  FROM facility_series($__timeFrom(), $__timeTo())
                  WHERE $__timeFilter(bucket) AND facility_id IN ($facility) AND generation IN ($generation)
                  GROUP BY bucket) fleet
            GROUP BY 1 ORDER BY 1""", "time_series"), ("time", "drawn", "budget"))], 24)
    d.add(_table(), "Out-of-envelope racks", "Open deviations: the measured value, the allowed range and the "
          "intent revision that judged it.",
          [(sql(f"""
            SELECT d.rack_id, s.facility_id, s.hall_id, s.generation, s.status, d.check_name, d.severity,
                   d.measured, d.allowed_min, d.allowed_max, d.unit, d.intent_revision, d.since
            FROM deviations d JOIN rack_state s USING (rack_id)
            WHERE {FLEET}
            ORDER BY d.severity DESC, d.since LIMIT 500"""), ("rack_id", "check_name", "severity", "since"))], 16)
    d.add(_table(), "Deployment progress against plan",
          "Racks in service this quarter (UTC) per facility and generation against the latest rollout plan.",
          [(sql(f"""
            WITH plan AS (SELECT max(revision) AS revision FROM rollout_targets),
            quarter AS (SELECT to_char(now() AT TIME ZONE 'UTC', 'YYYY"Q"Q') AS q),
            target AS (
                SELECT DISTINCT ON (t.facility_id, t.generation) t.facility_id, t.generation, t.racks_in_service
                FROM rollout_targets t JOIN plan USING (revision), quarter
                WHERE t.quarter <= quarter.q ORDER BY t.facility_id, t.generation, t.quarter DESC
            ),
            serving AS (
                SELECT s.facility_id, s.generation, count(*) AS racks FROM rack_state s
                WHERE {FLEET} AND s.status IN {SERVICE} GROUP BY 1, 2
            )
            SELECT t.facility_id, t.generation, t.racks_in_service AS target, coalesce(v.racks, 0) AS in_service,
                   coalesce(v.racks, 0)::double precision / nullif(t.racks_in_service, 0) AS progress
            FROM target t LEFT JOIN serving v USING (facility_id, generation)
            WHERE t.facility_id IN ($facility) AND t.generation IN ($generation)
            ORDER BY 1, 2"""), ("facility_id", "generation", "target", "in_service"))], 8)
    return d.spec


def facility() -> DashboardSpec:
    d = _Layout("fleet-facility", "Facility",
                "Power and cooling headroom per hall and row against site limits, power over time per hall, "
                "and the hottest racks.", [FACILITY, GENERATION])
    headroom = """
        SELECT {keys}, {cap}.power_capacity_watts, {cap}.cooling_capacity_watts,
               coalesce(sum(s.power_watts), 0) AS drawn_watts,
               {cap}.power_capacity_watts - coalesce(sum(s.power_watts), 0) AS power_headroom_watts,
               {cap}.cooling_capacity_watts - coalesce(sum(s.power_watts), 0) AS cooling_headroom_watts
        FROM {table} {cap}
        LEFT JOIN rack_state s ON {join} AND s.generation IN ($generation)
        WHERE {cap}.facility_id IN ($facility)
        GROUP BY {keys}, {cap}.power_capacity_watts, {cap}.cooling_capacity_watts ORDER BY {keys}"""
    d.add(_table().unit("watt"), "Hall power and cooling headroom",
          "Site limits minus the power drawn now (every watt drawn is heat for the cooling loop).",
          [(sql(headroom.format(keys="h.facility_id, h.hall_id", cap="h", table="halls",
                                join="s.facility_id = h.facility_id AND s.hall_id = h.hall_id")),
            ("facility_id", "hall_id", "power_headroom_watts", "cooling_headroom_watts"))], 12)
    d.add(_table().unit("watt"), "Row power and cooling headroom", "The same per row.",
          [(sql(headroom.format(keys="w.facility_id, w.hall_id, w.row_id", cap="w", table="rows",
                                join="s.facility_id = w.facility_id AND s.hall_id = w.hall_id"
                                     " AND s.row_id = w.row_id")),
            ("facility_id", "hall_id", "row_id", "power_headroom_watts"))], 12)
    d.add(_ts("watt"), "Hall power",
          "Mean power per hall (facility rollups by minute up to 8 days, by hour beyond; raw rows past them).",
          [(sql("""
            SELECT $__timeGroupAlias(bucket, $__interval), metric, avg(watts) AS power_watts
            FROM (SELECT bucket, facility_id || ' ' || hall_id AS metric, sum(power_watts_sum) AS watts
                  FROM facility_series($__timeFrom(), $__timeTo())
                  WHERE $__timeFilter(bucket) AND facility_id IN ($facility) AND generation IN ($generation)
                  GROUP BY 1, 2) hall
            GROUP BY 1, 2 ORDER BY 1""", "time_series"), ("time", "metric", "power_watts"))], 12)
    d.add(_ts("celsius"), "Hottest accelerator per hall", "The hottest accelerator of any rack in the hall.",
          [(sql("""
            SELECT $__timeGroupAlias(bucket, $__interval), facility_id || ' ' || hall_id AS metric,
                   max(hottest_accelerator_temperature_celsius_max) AS hottest_celsius
            FROM facility_series($__timeFrom(), $__timeTo())
            WHERE $__timeFilter(bucket) AND facility_id IN ($facility) AND generation IN ($generation)
            GROUP BY 1, 2 ORDER BY 1""", "time_series"), ("time", "metric", "hottest_celsius"))], 12)
    d.add(_table(), "Hottest racks", "The ten racks with the hottest accelerator in the time range (hourly "
          "rollups of the selected facilities' racks).",
          [(sql(f"""
            SELECT h.rack_id, s.facility_id, s.hall_id, s.row_id, s.generation,
                   max(h.hottest_accelerator_temperature_celsius_max) AS hottest_accelerator_celsius,
                   max(h.inlet_temperature_celsius_max) AS inlet_max_celsius
            FROM rack_hours_live($__timeFrom(), $__timeTo(),
                                 ARRAY(SELECT s.rack_id FROM rack_state s WHERE {FLEET})) h
            JOIN rack_state s USING (rack_id)
            GROUP BY 1, 2, 3, 4, 5 ORDER BY 6 DESC LIMIT 10"""), ("rack_id", "hottest_accelerator_celsius"))], 24)
    return d.spec


_SIGNALS: tuple[tuple[str, str, str, str | None], ...] = (
    # field, title, unit, the intent band it is judged against (None: no band)
    ("power_watts", "Power", "watt", "power_budget_watts"),
    ("inlet_temperature_celsius", "Inlet air", "celsius", "inlet_temperature_celsius"),
    ("hottest_accelerator_temperature_celsius", "Hottest accelerator", "celsius",
     "hottest_accelerator_temperature_celsius"),
    ("coolant_supply_temperature_celsius", "Coolant supply", "celsius", "coolant_supply_temperature_celsius"),
    ("coolant_flow_liters_per_minute", "Coolant flow", "flowlpm", "coolant_flow_liters_per_minute_per_kilowatt"),
    ("coolant_return_temperature_celsius", "Coolant return", "celsius", None),
    ("coolant_differential_pressure_kilopascals", "Coolant differential pressure", "pressurekpa", None),
    ("outlet_temperature_celsius", "Outlet air", "celsius", None),
    ("fan_speed_percent", "Fan speed", "percent", None),
    ("network_links_down", "Network links down", "none", None),
)


def _band_sql(band: str) -> str:
    scale = " * s.power_watts / 1000" if band.endswith("_per_kilowatt") else ""
    return f"""
        SELECT (i.body -> '{band}' ->> 'min')::double precision{scale} AS allowed_min,
               (i.body -> '{band}' ->> 'max')::double precision{scale} AS allowed_max
        FROM rack_state s JOIN generation_intents i ON i.generation = s.generation
         AND i.revision = coalesce(s.intent_revision,
                                   (SELECT max(g.revision) FROM generation_intents g WHERE g.generation = s.generation))
        WHERE s.rack_id = '$rack'"""


def rack_detail() -> DashboardSpec:
    d = _Layout("fleet-rack", "Rack detail",
                "One rack: its telemetry against its generation's design-intent bands (as thresholds), its "
                "lifecycle as annotations, its parts and its open deviations.", [FACILITY, GENERATION, RACK],
                time_from="now-6h")
    d.annotation("Lifecycle", """
        SELECT occurred_at AS "time", replace(type, 'rack.', '') AS text, source AS tags
        FROM events WHERE stream_id = '$rack' AND type LIKE 'rack.%' AND $__timeFilter(occurred_at)
        ORDER BY occurred_at""", "blue", ("time", "text"))
    d.add(_table(), "Rack", "Where the rack is, its stage and the intent revision that judged it last.",
          [(sql("""
            SELECT s.rack_id, s.generation, s.status, s.facility_id, s.hall_id, s.row_id, s.position,
                   s.stage_entered_at, s.intent_revision, s.deviation_count, s.telemetry_at
            FROM rack_state s WHERE s.rack_id = '$rack'"""), ("rack_id", "status", "generation"))], 24, 4)
    for column, title, unit, band in _SIGNALS:
        queries: list[tuple[Any, tuple[str, ...]]] = [(sql(f"""
            SELECT bucket AS "time", {column}_mean AS "mean", {column}_min AS "min", {column}_max AS "max"
            FROM telemetry_series('$rack', $__timeFrom(), $__timeTo())
            WHERE $__timeFilter(bucket) ORDER BY 1""", "time_series"), ("time", "mean", "min", "max"))]
        panel = _ts(unit)
        description = f"{title}: mean, min and max per bucket (raw up to 6 h, then 1-minute, then 1-hour rollups)."
        if band:
            queries.append((sql(_band_sql(band), "table", "B"), ("allowed_max",)))  # some bands have no min
            # The band arrives as query B and becomes the thresholds (Grafana's "Config from query results").
            panel = (panel.with_transformation(dashboard.DataTransformerConfig(
                id_val="configFromData", options={
                    "configRefId": "B", "applyTo": {"id": "byFrameRefID", "options": "A"},
                    "mappings": [{"fieldName": "allowed_min", "handlerKey": "threshold1"},
                                 {"fieldName": "allowed_max", "handlerKey": "threshold2"}]}))
                     .thresholds(dash.ThresholdsConfig().mode(dashboard.ThresholdsMode.ABSOLUTE).steps([
                         dashboard.Threshold(None, "red"), dashboard.Threshold(0, "green"),
                         dashboard.Threshold(0, "red")]))
                     .thresholds_style(common_b.GraphThresholdsStyleConfig().mode(
                         common.GraphTresholdsStyleMode.LINE_AND_AREA)))
            description += " Green is the design-intent band of the revision that judged the rack."
        d.add(panel, title, description, queries, 12, 7)
    d.add(_table(), "Components", "The rack's bill of materials as its lifecycle events built it.",
          [(sql("""
            SELECT c ->> 'slot' AS slot, c ->> 'kind' AS kind, c ->> 'part_number' AS part_number,
                   c ->> 'serial_number' AS serial_number, c ->> 'firmware_version' AS firmware_version,
                   c ->> 'supplier' AS supplier
            FROM rack_state s, jsonb_array_elements(s.twin -> 'components') c
            WHERE s.rack_id = '$rack' ORDER BY 1"""), ("slot", "kind", "serial_number"))], 12, 10)
    d.add(_table(), "Open deviations", "What is outside the design intent now.",
          [(sql("""
            SELECT check_name, severity, measured, allowed_min, allowed_max, unit, intent_revision, since, detail
            FROM deviations WHERE rack_id = '$rack' ORDER BY severity DESC, check_name"""),
            ("check_name", "severity"))], 12, 10)
    return d.spec


def generation_scorecard() -> DashboardSpec:
    d = _Layout("fleet-generations", "Generation scorecard and conformance",
                "How each generation and intent revision holds up in the field: deviation rates by subsystem, "
                "RMA rate, and lead time from manufacture to service.", [FACILITY, GENERATION], "now-1y")
    d.add(_table().unit("percentunit"), "Deviation rate by intent revision and subsystem",
          "Racks with an open deviation in a subsystem over the racks judged by that intent revision.",
          [(sql(f"""
            WITH judged AS (
                SELECT s.generation, s.intent_revision, count(*) AS racks FROM rack_state s
                WHERE {FLEET} AND s.intent_revision IS NOT NULL GROUP BY 1, 2
            ), deviating AS (
                SELECT d.generation, d.intent_revision, {SUBSYSTEM} AS subsystem, count(DISTINCT d.rack_id) AS racks
                FROM deviations d JOIN rack_state s USING (rack_id) WHERE {FLEET} GROUP BY 1, 2, 3
            )
            SELECT v.generation, v.intent_revision, v.subsystem, v.racks AS racks_deviating,
                   j.racks AS racks_judged, v.racks::double precision / nullif(j.racks, 0) AS deviation_rate
            FROM deviating v LEFT JOIN judged j USING (generation, intent_revision)
            ORDER BY 1, 2, 3"""), ("generation", "intent_revision", "subsystem", "deviation_rate"))], 24)
    d.add(_bars("percentunit"), "RMA rate", "Racks that were ever returned (rack.rma_opened) over racks built.",
          [(sql("""
            SELECT r.generation, count(DISTINCT e.stream_id)::double precision / count(DISTINCT r.rack_id) AS rma_rate
            FROM racks r LEFT JOIN events e ON e.stream_id = r.rack_id AND e.type = 'rack.rma_opened'
            WHERE r.generation IN ($generation)
            GROUP BY 1 ORDER BY 1"""), ("generation", "rma_rate"))], 8)
    d.add(_table().unit("d"), "Lead time, manufacture to service",
          "Days from rack.manufactured to the first rack.entered_service, for racks that entered service in the "
          "time range.",
          [(sql("""
            WITH served AS (
                SELECT r.generation, extract(epoch FROM min(e.occurred_at) - r.manufactured_at) / 86400 AS days
                FROM racks r JOIN events e ON e.stream_id = r.rack_id AND e.type = 'rack.entered_service'
                WHERE r.generation IN ($generation) AND $__timeFilter(e.occurred_at)
                GROUP BY r.rack_id, r.generation, r.manufactured_at
            )
            SELECT generation, count(*) AS racks, percentile_cont(0.5) WITHIN GROUP (ORDER BY days) AS p50_days,
                   percentile_cont(0.9) WITHIN GROUP (ORDER BY days) AS p90_days, max(days) AS max_days
            FROM served GROUP BY 1 ORDER BY 1"""), ("generation", "racks", "p50_days", "p90_days"))], 16)
    d.add(_ts("none"), "Deviations opened", "Open deviations by the time they opened, per generation.",
          [(sql(f"""
            SELECT $__timeGroupAlias(d.since, $__interval), d.generation AS metric, count(*) AS deviations
            FROM deviations d JOIN rack_state s USING (rack_id)
            WHERE $__timeFilter(d.since) AND {FLEET}
            GROUP BY 1, 2 ORDER BY 1""", "time_series"), ("time", "metric", "deviations"))], 24)
    return d.spec


def deployment_pipeline() -> DashboardSpec:
    d = _Layout("fleet-deployment", "Deployment pipeline",
                "Racks on their way from the factory to service: time spent per stage, racks stalled beyond "
                "their generation's allowance, and the rollout plan against what happened, per quarter.",
                [FACILITY, GENERATION], "now-1y")
    d.add(_table().unit("d"), "Lead time per stage",
          "Days from entering a stage (the lifecycle event that entered it) to the next lifecycle event, for "
          "stages entered in the time range.",
          [(sql(f"""
            WITH steps AS (
                SELECT e.type, e.occurred_at,
                       lead(e.occurred_at) OVER (PARTITION BY e.stream_id ORDER BY e.occurred_at, e.stream_version)
                           AS left_at
                FROM events e JOIN rack_state s ON s.rack_id = e.stream_id
                WHERE e.type LIKE 'rack.%%' AND {FLEET}
            )
            SELECT replace(type, 'rack.', '') AS entered_by, count(*) AS racks,
                   percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM left_at - occurred_at) / 86400)
                       AS p50_days,
                   percentile_cont(0.9) WITHIN GROUP (ORDER BY extract(epoch FROM left_at - occurred_at) / 86400)
                       AS p90_days
            FROM steps WHERE left_at IS NOT NULL AND $__timeFilter(occurred_at)
            GROUP BY 1 ORDER BY min(occurred_at)""".replace("%%", "%")),
            ("entered_by", "racks", "p50_days"))], 12)
    d.add(_table(), "Stalled racks", "Racks longer in their stage than their generation allows.",
          [(sql(f"""
            SELECT d.rack_id, s.facility_id, s.generation, s.status AS stage, s.stage_entered_at,
                   d.measured AS days_in_stage, d.allowed_max AS allowed_days, d.since AS stalled_since
            FROM deviations d JOIN rack_state s USING (rack_id)
            WHERE d.check_name = 'stalled-in-stage' AND {FLEET}
            ORDER BY s.stage_entered_at"""), ("rack_id", "stage", "allowed_days"))], 12)
    d.add(_bars(), "Plan against actual per quarter",
          "Racks the latest rollout plan wants in service per quarter against the racks that had entered service "
          "by the end of that quarter (UTC).",
          [(sql(f"""
            WITH plan AS (
                SELECT t.quarter, sum(t.racks_in_service) AS planned FROM rollout_targets t
                WHERE t.revision = (SELECT max(revision) FROM rollout_targets)
                  AND t.facility_id IN ($facility) AND t.generation IN ($generation)
                GROUP BY 1
            ), served AS (
                SELECT e.stream_id AS rack_id, min(e.occurred_at) AS at FROM events e
                WHERE e.type = 'rack.entered_service' GROUP BY 1
            )
            SELECT p.quarter, p.planned,
                   (SELECT count(*) FROM served v JOIN rack_state s USING (rack_id)
                    WHERE {FLEET}
                      AND v.at < make_timestamptz(left(p.quarter, 4)::int, right(p.quarter, 1)::int * 3 - 2, 1, 0, 0, 0,
                                                  'UTC') + interval '3 months') AS actual
            FROM plan p ORDER BY 1"""), ("quarter", "planned", "actual"))], 24)
    d.add(_ts("none"), "Racks entering each stage", "Lifecycle events per stage entered, over time.",
          [(sql(f"""
            SELECT $__timeGroupAlias(e.occurred_at, $__interval), replace(e.type, 'rack.', '') AS metric,
                   count(*) AS racks
            FROM events e JOIN rack_state s ON s.rack_id = e.stream_id
            WHERE e.type LIKE 'rack.%%' AND $__timeFilter(e.occurred_at) AND {FLEET}
            GROUP BY 1, 2 ORDER BY 1""".replace("%%", "%"), "time_series"), ("time", "metric", "racks"))], 24)
    return d.spec


def build_all() -> list[DashboardSpec]:
    """The five dashboards, in the order an operator reads them."""
    return [fleet_overview(), facility(), rack_detail(), generation_scorecard(), deployment_pipeline()]
