"""Every exported panel's SQL, expanded as Grafana's PostgreSQL data source expands it, runs
against the real database filled by the simulator and returns rows with the columns it needs."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta, timezone
from typing import Any

import psycopg
import pytest
from inprocess import run_pipelines

from twin.domain.intent import IntentCatalog
from twin.embedded.simulator import FaultPlan, FleetSimulator
from twin.grafana.dashboards import build_all
from twin.grafana.macros import GrafanaRequest, expand
from twin.store.rollups import roll_up

pytestmark = pytest.mark.integration

MULTI = frozenset({"facility", "generation"})


@pytest.fixture(scope="module")
def fleet_db(stack: Any) -> tuple[str, FleetSimulator, datetime]:
    """One simulated fleet for the module: history, then ten minutes of telemetry, part rolled up."""
    from conftest import _new_tenant

    tenant = _new_tenant(stack, "grafana_panels")
    catalog = IntentCatalog.default()
    now = datetime.now(timezone.utc).replace(microsecond=0)
    start = now - timedelta(minutes=10)
    sim = FleetSimulator(7, 160, start, {g: catalog.latest(g) for g in catalog.generations()},
                         faults=FaultPlan.typical())
    messages = [*sim.reference_messages(), *sim.history_messages(),
                *(m for _, cycle in sim.cycles(10.0, first=start, count=60) for m in cycle)]
    asyncio.run(run_pipelines(tenant.database_url, messages, 500))
    with psycopg.connect(tenant.database_url, autocommit=True) as conn:
        run = roll_up(conn, now=start + timedelta(minutes=6))  # the first five minutes stored, the rest live
        assert run.minutes == 5
    return tenant.database_url, sim, now


def _variables(conn: psycopg.Connection[Any], sim: FleetSimulator) -> dict[str, Any]:
    facilities = [r[0] for r in conn.execute("SELECT facility_id FROM facilities ORDER BY 1")]
    generations = [r[0] for r in conn.execute("SELECT DISTINCT generation FROM racks ORDER BY 1")]
    # the rack shown: one with telemetry, an open deviation, parts and a lifecycle
    rack = conn.execute("SELECT s.rack_id FROM rack_state s JOIN deviations d USING (rack_id)"
                        " WHERE s.telemetry_at IS NOT NULL AND jsonb_array_length(s.twin -> 'components') > 0"
                        " ORDER BY 1 LIMIT 1").fetchone()
    assert rack is not None
    return {"facility": facilities, "generation": generations, "rack": rack[0]}


QUERIES = [q for spec in build_all() for q in spec.queries]


@pytest.mark.parametrize("query", QUERIES, ids=[f"{q.dashboard_uid}/{q.panel}/{q.ref_id}" for q in QUERIES])
def test_panel_query_returns_the_columns_it_needs(fleet_db: tuple[str, FleetSimulator, datetime], query: Any) -> None:
    url, sim, now = fleet_db
    with psycopg.connect(url, autocommit=True) as conn:
        variables = _variables(conn, sim)
        earliest = conn.execute("SELECT min(occurred_at) FROM events").fetchone()[0]
        # the dashboards' own ranges (raw, 1-minute and 1-hour reads) and one over all of history
        ranges = [timedelta(hours=1), timedelta(hours=24), timedelta(days=30), now - earliest + timedelta(days=1)]
        got_rows = False
        for span in ranges:
            request = GrafanaRequest(now - span, now + timedelta(minutes=1), variables, MULTI, min_interval="1m")
            cur = conn.execute(expand(query.raw_sql, request).encode())
            columns = [c.name for c in cur.description or ()]
            rows = cur.fetchall()
            assert set(query.needs) <= set(columns), (span, columns)
            if query.format == "time_series":
                assert columns[0] == "time"
            if rows:
                got_rows = True
                for need in query.needs:
                    assert any(r[columns.index(need)] is not None for r in rows), (span, need)
        assert got_rows, f"{query.panel}: no rows in any range"


def test_fleet_panels_read_the_rollups_of_what_the_raw_rows_hold(fleet_db: tuple[str, FleetSimulator, datetime]
                                                                  ) -> None:
    """The fleet power panel reads stored facility rollups (up to the watermark); they give the same
    curve as the same panel computed from the raw rows."""
    url, sim, now = fleet_db
    power = next(q for q in QUERIES if q.panel == "Power against budget")
    with psycopg.connect(url, autocommit=True) as conn:
        request = GrafanaRequest(now - timedelta(hours=1), now + timedelta(minutes=1), _variables(conn, sim), MULTI,
                                 min_interval="1m")
        sql = expand(power.raw_sql, request)
        stored = conn.execute(sql).fetchall()
        conn.execute("BEGIN")
        conn.execute("UPDATE rollup_watermark SET materialized_until = '-infinity'")  # everything from raw
        raw = conn.execute(sql.replace("FROM facility_series(", "FROM facility_minutes_live(")).fetchall()
        conn.execute("ROLLBACK")
    assert len(stored) == 5 and len(raw) in (10, 11)  # five minutes rolled up; ten minutes of readings
    for a, b in zip(stored, raw):
        assert a[0] == b[0] and a[1] == pytest.approx(b[1], rel=1e-6) and a[2] == b[2]
