"""The shared read queries against a simulated fleet in the real database."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from api_fleet import load_fleet, new_tenant, partners

from twin.domain.components import ONSHORE_COUNTRY, ONSHORE_KINDS, onshore_share
from twin.domain.fleet import Fleet
from twin.domain.intent import IntentCatalog
from twin.domain.rack import RackTwin
from twin.errors import InvalidQuery
from twin.store import queries

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def fleet(stack: Any, request: pytest.FixtureRequest) -> Any:
    tenant = new_tenant(stack, "queries")
    sim = load_fleet(tenant.database_url)
    return tenant, sim


def test_headroom_per_row_hall_and_facility_matches_the_domain(fleet: Any) -> None:
    tenant, sim = fleet
    with queries.connect(tenant.database_url) as conn:
        twins = [RackTwin.from_snapshot(r["twin"]) for r in conn.execute("SELECT twin FROM rack_state")]
        answers = {lvl: queries.headroom(conn, level=lvl) for lvl in ("row", "hall", "facility")}
    domain = Fleet(sim.facilities).capacity(twins, IntentCatalog.default())
    for c in domain:
        got = {(p.facility_id, p.hall_id, p.row_id): p for p in answers[c.scope].places}[
            (c.facility_id, c.hall_id, c.row_id)]
        assert got.allocated_draw_watts == pytest.approx(c.allocated_draw_watts)
        assert got.available_power_watts == pytest.approx(c.available_power_watts)
        assert got.power_capacity_watts == pytest.approx(c.power_capacity_watts)
        assert (got.racks, got.positions) == (c.racks, c.positions)
    assert sum(len(h.places) for h in answers.values()) == len(domain)
    assert any(p.measured_p95_watts for p in answers["row"].places), "the rollup saw the telemetry cycle"


def test_onshore_share_in_sql_matches_the_domain(fleet: Any) -> None:
    tenant, _ = fleet
    assert ONSHORE_COUNTRY == "US"
    with queries.connect(tenant.database_url) as conn:
        sql_kinds = conn.execute("SELECT pg_get_functiondef('rack_onshore_share'::regproc) AS d").fetchone()["d"]
        for kind in ONSHORE_KINDS:
            assert f"'{kind}'" in sql_kinds
        rows = conn.execute("SELECT twin, rack_onshore_share(twin) AS share FROM rack_state").fetchall()
    checked = 0
    for r in rows:
        expected = onshore_share(RackTwin.from_snapshot(r["twin"]).bom).by_count
        assert r["share"] == pytest.approx(expected) if expected is not None else r["share"] is None
        checked += expected is not None
    assert checked > 10


def test_partner_scope_narrows_every_aggregate(fleet: Any) -> None:
    tenant, _ = fleet
    partner = partners(tenant.database_url)[0]["operator"]
    with queries.connect(tenant.database_url) as conn:
        everyone = queries.fleet_summary(conn, group_by=["owner"])
        theirs = queries.fleet_summary(conn, owner=partner, group_by=["owner"])
        assert [g.key["owner"] for g in theirs.groups] == [partner]
        assert theirs.racks < everyone.racks
        page = queries.list_racks(conn, owner=partner, limit=1000)
        assert page.total == theirs.racks == len(page.racks)
        facilities = set(queries.valid_values(conn, "facility", owner=partner))
        assert {r.facility_id for r in page.racks} <= facilities
        other = conn.execute("SELECT s.rack_id FROM rack_state s JOIN facilities f USING (facility_id)"
                             " WHERE f.operator <> %s LIMIT 1", (partner,)).fetchone()["rack_id"]
        assert queries.rack(conn, other, owner=partner) is None
        assert queries.rack_history(conn, other, owner=partner) is None
        assert queries.rack(conn, other) is not None


def test_rack_list_pages_through_every_match_once_in_order(fleet: Any) -> None:
    tenant, _ = fleet
    with queries.connect(tenant.database_url) as conn:
        seen, cursor = [], None
        while True:
            page = queries.list_racks(conn, limit=7, cursor=cursor)
            seen += [r.rack_id for r in page.racks]
            if page.next_cursor is None:
                break
            cursor = page.next_cursor
        assert seen == sorted(seen) and len(seen) == len(set(seen)) == page.total
        stalled = queries.list_racks(conn, stalled=True, limit=1000)
        assert stalled.total > 0 and all(
            queries.rack(conn, r.rack_id).deviations for r in stalled.racks)  # type: ignore[union-attr]
        assert queries.list_racks(conn, stalled=False, limit=1000).total == page.total - stalled.total
        expected = {r["rack_id"] for r in conn.execute(
            "SELECT DISTINCT rack_id FROM deviations WHERE check_name LIKE 'firmware-drift-%%'"
            " INTERSECT SELECT rack_id FROM deviations WHERE check_name = 'stalled-in-stage'")}
        both = queries.list_racks(conn, stalled=True, firmware_drift=True, limit=1000)
        assert {r.rack_id for r in both.racks} == expected and both.total == len(expected)
        hot = conn.execute("SELECT check_name FROM deviations GROUP BY 1 ORDER BY count(*) DESC LIMIT 1").fetchone()
        by_rule = queries.list_racks(conn, deviation=hot["check_name"], stalled=False, limit=1000)
        assert by_rule.total == conn.execute(
            "SELECT count(*) AS n FROM deviations d WHERE check_name = %s AND NOT EXISTS (SELECT 1 FROM deviations x"
            " WHERE x.rack_id = d.rack_id AND x.check_name = 'stalled-in-stage')", (hot["check_name"],)).fetchone()["n"]
        for word in ("ok", "warning", "critical", "unknown"):
            expected = {r["rack_id"] for r in conn.execute(
                "SELECT rack_id FROM rack_state WHERE coalesce(health ->> 'overall', 'unknown') = %s", (word,))}
            got = queries.list_racks(conn, health=word, limit=1000)
            assert {r.rack_id for r in got.racks} == expected and got.total == len(expected), word
        low = queries.list_racks(conn, onshore_below=0.5, limit=1000)
        assert all(r.onshore_share is not None and r.onshore_share < 0.5 for r in low.racks)


@pytest.mark.parametrize("kwargs, field", [
    ({"stage": "actve"}, "stage"), ({"facility": "nowhere"}, "facility"), ({"health": "fine"}, "health"),
    ({"deviation": "bogus"}, "deviation"), ({"cursor": "!!"}, "cursor"),
])
def test_unknown_filter_values_are_refused_with_the_valid_ones(fleet: Any, kwargs: dict[str, Any], field: str) -> None:
    tenant, _ = fleet
    with queries.connect(tenant.database_url) as conn, pytest.raises(InvalidQuery) as caught:
        queries.list_racks(conn, **kwargs)
    assert caught.value.field == field
    if field == "stage":
        assert "active" in str(caught.value)


def test_placement_never_exceeds_what_headroom_says_is_left(fleet: Any) -> None:
    tenant, _ = fleet
    with queries.connect(tenant.database_url) as conn:
        gen = queries.valid_values(conn, "generation")[0]
        plan = queries.place(conn, generation=gen, count=40)
        rows = {(p.facility_id, p.hall_id, p.row_id): p for p in queries.headroom(conn, level="row").places}
    assert plan.placed + plan.unplaced == 40 and plan.placed > 0
    for r in plan.rows:
        before = rows[(r.facility_id, r.hall_id, r.row_id)]
        assert r.available_power_watts_after >= 0 and r.free_positions_after >= 0
        assert r.available_power_watts_after == pytest.approx(before.available_power_watts - r.racks * plan.design_draw_watts)


def test_rollout_scorecard_intents_and_as_of_answer(fleet: Any) -> None:
    tenant, _ = fleet
    with queries.connect(tenant.database_url) as conn:
        plan = queries.rollout(conn)
        assert plan.plan_revision == 1 and plan.quarters[0] == "2026Q3" and plan.quarters[-1] == "2029Q4"
        assert plan.cells and plan.lead_time_days_to_service
        card = queries.scorecard(conn)
        assert card.generations and any(g.racks_in_service for g in card.generations)
        assert any(g.lead_times for g in card.generations)
        revisions = queries.intent_revisions(conn)
        assert revisions.revisions and any(r.conformance.judged for r in revisions.revisions)
        detail = queries.intent_revision(conn, revisions.revisions[0].generation)
        assert detail is not None and detail.body["generation"] == detail.generation
        some = queries.list_racks(conn, stage="active", limit=1).racks[0]
        past = queries.rack_as_of(conn, some.rack_id, datetime.now(timezone.utc) - timedelta(days=3650))
        now = queries.rack_as_of(conn, some.rack_id, datetime.now(timezone.utc))
        assert past is not None and past.stage == "planned" and past.twin["last_event"] is None
        assert now is not None and now.twin["last_event"] is not None and now.stage != "planned"
        fresh = queries.freshness(conn)
        assert fresh.newest_event_at is not None
