"""The dashboards validate against grafana-foundation-sdk's models, the exported files are what
the code builds, and the macro expander agrees with Grafana's documented expansions."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
import yaml
from grafana_foundation_sdk.models import dashboard

from twin.grafana.dashboards import build_all
from twin.grafana.macros import GrafanaRequest, expand, interval_for
from twin.grafana.provisioning import render
from twin.grafana.query import DATASOURCE_TYPE, DATASOURCE_UID, PostgresQueryModel

ROOT = Path(__file__).resolve().parents[2]
SPECS = build_all()


def test_there_are_the_five_dashboards_of_the_issue() -> None:
    assert [s.title for s in SPECS] == ["Fleet overview", "Facility", "Rack detail",
                                        "Generation scorecard and conformance", "Deployment pipeline"]


@pytest.mark.parametrize("spec", SPECS, ids=[s.uid for s in SPECS])
def test_dashboard_parses_back_into_the_sdk_models_unchanged(spec) -> None:
    data = spec.to_json_plain()
    parsed = dashboard.Dashboard.from_json(data)
    again = json.loads(json.dumps(parsed.to_json(), default=lambda o: o.to_json()))
    # SQL annotations are kept by our target model; the SDK types annotation targets as Grafana's own
    def panels_and_all(d: dict) -> dict:
        return {k: v for k, v in d.items() if k != "annotations"}

    assert panels_and_all(again) == panels_and_all(data)
    for panel in parsed.panels:
        assert panel.id_val and panel.grid_pos and panel.title and panel.description
        assert panel.datasource.uid == DATASOURCE_UID and panel.datasource.type_val == DATASOURCE_TYPE
        for target in panel.targets:
            assert isinstance(target, PostgresQueryModel), panel.title  # the registered variant parsed it
            assert target.format_val in ("time_series", "table") and target.raw_sql.strip()
    assert data["timezone"] == "utc"
    ids = [p["id"] for p in data["panels"]]
    assert len(ids) == len(set(ids))
    assert {v["name"] for v in data["templating"]["list"]} >= {"facility", "generation"}


def test_rack_dashboard_has_lifecycle_annotations_and_band_thresholds() -> None:
    rack = next(s for s in SPECS if s.uid == "fleet-rack").to_json_plain()
    [annotation] = rack["annotations"]["list"]
    assert annotation["datasource"]["uid"] == DATASOURCE_UID and "$__timeFilter(occurred_at)" in annotation["target"][
        "rawSql"]
    power = next(p for p in rack["panels"] if p["title"] == "Power")
    assert [t["refId"] for t in power["targets"]] == ["A", "B"]
    assert power["transformations"][0]["id"] == "configFromData"
    assert power["fieldConfig"]["defaults"]["custom"]["thresholdsStyle"]["mode"] == "line+area"
    assert {v["name"]: v["multi"] for v in rack["templating"]["list"]} == {"facility": True, "generation": True,
                                                                          "rack": False}


def test_time_series_panels_use_grafanas_macros() -> None:
    series = [q for s in SPECS for q in s.queries if q.format == "time_series"]
    assert series
    for q in series:
        assert "$__timeFilter(" in q.raw_sql
        assert "$__timeGroupAlias(" in q.raw_sql and "$__interval" in q.raw_sql or "bucket AS \"time\"" in q.raw_sql


def test_exported_files_are_what_the_code_builds() -> None:
    """deploy/grafana/ is generated: run `twin grafana export` after changing twin/grafana/."""
    for relative, text in render().items():
        path = ROOT / "deploy" / "grafana" / relative
        assert path.exists() and path.read_text() == text, f"{relative} is stale: run `twin grafana export`"
    exported = {p.name for p in (ROOT / "deploy/grafana/dashboards").glob("*.json")}
    assert exported == {f"{s.uid}.json" for s in SPECS}


def test_provisioning_files_point_grafana_at_the_dashboards_and_database() -> None:
    files = render()
    [source] = yaml.safe_load(files["provisioning/datasources/fleet-twin.yaml"])["datasources"]
    assert source["uid"] == DATASOURCE_UID and source["type"] == DATASOURCE_TYPE
    assert source["secureJsonData"]["password"].startswith("$")  # a reference to the environment, no secret
    [provider] = yaml.safe_load(files["provisioning/dashboards/fleet-twin.yaml"])["providers"]
    assert provider["type"] == "file" and provider["options"]["path"].startswith("/")


NOW = datetime(2017, 4, 21, 5, 6, 17, tzinfo=timezone.utc)


def test_macros_expand_as_grafanas_documentation_shows() -> None:
    request = GrafanaRequest(NOW - timedelta(minutes=5), NOW, {})
    assert expand("WHERE $__timeFilter(dateColumn)", request) == \
        "WHERE dateColumn BETWEEN '2017-04-21T05:01:17Z' AND '2017-04-21T05:06:17Z'"
    assert expand("$__timeFrom() $__timeTo()", request) == "'2017-04-21T05:01:17Z' '2017-04-21T05:06:17Z'"
    assert expand("$__timeGroup(dateColumn,'5m')", request) == "floor(extract(epoch from dateColumn)/300)*300"
    assert expand("$__timeGroupAlias(dateColumn, 1h)", request) == \
        'floor(extract(epoch from dateColumn)/3600)*3600 AS "time"'
    assert expand("$__time(c), $__timeEpoch(c)", request) == 'c AS "time", extract(epoch from c) AS "time"'


def test_variables_are_quoted_as_the_sql_data_sources_quote_them() -> None:
    request = GrafanaRequest(NOW - timedelta(hours=1), NOW, {"facility": ["f-1", "o'brien"], "rack": "r'1"},
                             frozenset({"facility"}))
    assert expand("x IN ($facility) AND r = '$rack' AND y IN (${facility})", request) == \
        "x IN ('f-1','o''brien') AND r = 'r''1' AND y IN ('f-1','o''brien')"
    with pytest.raises(ValueError, match="unexpanded"):
        expand("x = $unknown", request)


def test_interval_follows_grafanas_rounding_and_the_panel_minimum() -> None:
    day = (NOW - timedelta(days=1), NOW)
    assert interval_for(*day, 1000) == ("1m", 60_000)        # 86.4 s rounds to 1 m
    assert interval_for(NOW - timedelta(hours=1), NOW, 1000) == ("5s", 5_000)  # 3.6 s rounds to 5 s
    assert interval_for(NOW - timedelta(hours=1), NOW, 1000, "1m") == ("1m", 60_000)
    assert interval_for(NOW - timedelta(days=30), NOW, 1000) == ("30m", 1_800_000)  # 43.2 min rounds to 30 min
