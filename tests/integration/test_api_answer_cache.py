"""The API's cached answers (fleet summary, headroom: twin/api/answer_cache.py) over real HTTP and
the real database: never served once what they read has changed, never to another token's owner."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import httpx
import pytest
from api_fleet import load_fleet, new_tenant, partners
from api_server import ApiWorld, serving

from twin.store import queries, views

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def world(stack: Any) -> Iterator[ApiWorld]:
    tenant = new_tenant(stack, "api_cache")
    load_fleet(tenant.database_url)
    with serving(tenant, [p["operator"] for p in partners(tenant.database_url)]) as served:
        yield served


def _ask(world: ApiWorld, who: str, path: str, **params: Any) -> dict[str, Any]:
    r = httpx.get(world.base_url + path, params=params, headers=world.headers(who))
    assert r.status_code == 200, r.text
    assert float(r.headers["server-timing"].removeprefix("app;dur=")) >= 0  # what bench/api.py reads
    body: dict[str, Any] = r.json()
    assert body.pop("freshness")["answered_at"], "every answer, cached or not, says how fresh it is now"
    return body


def _when(body: dict[str, Any]) -> datetime:
    return datetime.fromisoformat(body["summarised_at"])


def _place(body: dict[str, Any], key: tuple[str, ...]) -> dict[str, Any]:
    return next(p for p in body["places"] if (p["facility_id"], p["hall_id"], p["row_id"])[:len(key)] == key)


def _group(body: dict[str, Any], key: dict[str, str]) -> dict[str, Any]:
    return next(g for g in body["groups"] if g["key"] == key)


def test_a_cached_answer_is_not_served_after_the_data_it_read_changed(world: ApiWorld) -> None:
    cache = world.app.state.answers
    with views.connect(world.tenant.database_url) as conn:
        conn.execute("SELECT refresh_fleet_cube(0)")
        rack = conn.execute(
            "SELECT l.rack_id, l.facility_id, l.hall_id, l.row_id FROM rack_lifecycle l JOIN rack_telemetry t"
            " USING (rack_id) WHERE l.row_id IS NOT NULL AND t.power_watts IS NOT NULL ORDER BY 1 LIMIT 1").fetchone()
        row = {"facility_id": rack["facility_id"], "hall_id": rack["hall_id"], "row_id": rack["row_id"]}

        # A repeat is a lookup, so what follows tests the cache, not a query that happens to read live.
        first = _ask(world, "admin", "/v1/fleet/summary", group_by="row")
        hits = cache.hits
        assert _ask(world, "admin", "/v1/fleet/summary", group_by="row") == first and cache.hits == hits + 1

        # The current state moves: the cached answer stands until the summaries are rebuilt (its
        # summarised_at says so), then the rebuilt answer is served at once.
        conn.execute("UPDATE rack_telemetry SET power_watts = power_watts + 12345 WHERE rack_id = %s",
                     (rack["rack_id"],))
        assert _ask(world, "admin", "/v1/fleet/summary", group_by="row") == first
        conn.execute("SELECT refresh_fleet_cube(0)")
        after = _ask(world, "admin", "/v1/fleet/summary", group_by="row")
        assert _when(after) > _when(first)
        assert _group(after, row)["power_watts"] == pytest.approx(_group(first, row)["power_watts"] + 12345)
        assert after == queries.fleet_summary(conn, group_by=["row"]).model_dump(mode="json", exclude={"freshness"})

        # A place's limits are read live by headroom: a change is served without waiting for a rebuild.
        before = _ask(world, "admin", "/v1/headroom", level="row")
        assert _ask(world, "admin", "/v1/headroom", level="row") == before
        where = (rack["facility_id"], rack["hall_id"], rack["row_id"])
        conn.execute("UPDATE rows SET power_capacity_watts = power_capacity_watts + 1000"
                     " WHERE (facility_id, hall_id, row_id) = (%s, %s, %s)", where)
        try:
            changed = _ask(world, "admin", "/v1/headroom", level="row")
            assert _when(changed) == _when(before), "no rebuild in between"
            assert _place(changed, where)["power_capacity_watts"] == \
                _place(before, where)["power_capacity_watts"] + 1000
            assert _place(changed, where)["available_power_watts"] == \
                _place(before, where)["available_power_watts"] + 1000
            assert changed == queries.headroom(conn, level="row").model_dump(mode="json", exclude={"freshness"})
        finally:
            conn.execute("UPDATE rows SET power_capacity_watts = power_capacity_watts - 1000"
                         " WHERE (facility_id, hall_id, row_id) = (%s, %s, %s)", where)
        assert _ask(world, "admin", "/v1/headroom", level="row") == before


def test_a_partners_headroom_loses_a_facility_as_soon_as_it_changes_hands(world: ApiWorld) -> None:
    me = next(w for w in world.tokens if w.startswith("partner:"))
    with views.connect(world.tenant.database_url) as conn:
        facility = conn.execute("SELECT facility_id FROM facilities WHERE operator = %s ORDER BY 1 LIMIT 1",
                                (me.split(":", 1)[1],)).fetchone()["facility_id"]
        seen = _ask(world, me, "/v1/headroom", level="facility")
        assert facility in {p["facility_id"] for p in seen["places"]}
        conn.execute("UPDATE facilities SET operator = 'someone else' WHERE facility_id = %s", (facility,))
        try:
            now = _ask(world, me, "/v1/headroom", level="facility")
            assert facility not in {p["facility_id"] for p in now["places"]}
        finally:
            conn.execute("UPDATE facilities SET operator = %s WHERE facility_id = %s", (me.split(":", 1)[1], facility))
        assert _ask(world, me, "/v1/headroom", level="facility") == seen


def test_a_cached_answer_is_rebuilt_once_the_summaries_are_older_than_their_bound(
        world: ApiWorld, monkeypatch: pytest.MonkeyPatch) -> None:
    """Nothing changed, but the summaries outlived CUBE_MAX_AGE_SECONDS: the answer is not served from
    the cache (whose key has not moved) but read again, rebuilding the summaries first."""
    first = _ask(world, "admin", "/v1/headroom", level="hall")
    assert _ask(world, "admin", "/v1/headroom", level="hall") == first
    monkeypatch.setattr(queries, "CUBE_MAX_AGE_SECONDS", 0.2)  # the server runs in this process
    time.sleep(0.3)
    again = _ask(world, "admin", "/v1/headroom", level="hall")
    assert _when(again) > _when(first)


def test_a_partners_cached_answer_never_reaches_another_token(world: ApiWorld) -> None:
    """Each question is asked first by one partner (so its answer is cached), then by the other partner
    and by a whole-fleet reader: each gets its own owner's answer, never the cached one."""
    names = sorted(w for w in world.tokens if w.startswith("partner:"))
    assert len(names) >= 2
    with views.connect(world.tenant.database_url) as conn:
        conn.execute("SELECT refresh_fleet_cube(0)")
        owned = {w: {r["facility_id"] for r in conn.execute(
            "SELECT facility_id FROM facilities WHERE operator = %s", (w.split(":", 1)[1],))} for w in names}
        for first, second in ((names[0], names[1]), (names[1], names[0])):
            theirs = sorted(owned[first])[0]
            questions: list[tuple[str, dict[str, Any], Any]] = [
                ("/v1/fleet/summary", {"group_by": "row"},
                 lambda o: queries.fleet_summary(conn, owner=o, group_by=["row"])),
                ("/v1/fleet/summary", {}, lambda o: queries.fleet_summary(conn, owner=o)),
                ("/v1/headroom", {"level": "row"}, lambda o: queries.headroom(conn, owner=o, level="row")),
                ("/v1/headroom", {"level": "facility"}, lambda o: queries.headroom(conn, owner=o, level="facility")),
            ]
            for path, params, query in questions:
                mine = _ask(world, first, path, **params)
                assert mine == query(first.split(":", 1)[1]).model_dump(mode="json", exclude={"freshness"})
                for other, owner in ((second, second.split(":", 1)[1]), ("reader", None)):
                    answer = _ask(world, other, path, **params)
                    assert answer == query(owner).model_dump(mode="json", exclude={"freshness"})
                    if owner is not None:
                        assert theirs not in str(answer), f"{other} read {first}'s {theirs} on {path}"
                    else:
                        assert theirs in str(answer), "the whole fleet's answer does show it"
            # A facility the other partner cached its headroom of is not another partner's to ask about.
            assert _ask(world, first, "/v1/headroom", level="hall", facility=theirs)["places"]
            refused = httpx.get(world.base_url + "/v1/headroom", params={"level": "hall", "facility": theirs},
                                headers=world.headers(second))
            assert refused.status_code in (400, 404, 422) and '"places"' not in refused.text


def test_after_a_rebuild_warming_answers_the_questions_asked_lately_so_the_next_request_is_a_lookup(
        world: ApiWorld) -> None:
    cache = world.app.state.answers
    me = next(w for w in world.tokens if w.startswith("partner:"))
    owner = me.split(":", 1)[1]
    asked = _ask(world, me, "/v1/headroom", level="row")
    with views.connect(world.tenant.database_url) as conn:
        conn.execute("SELECT refresh_fleet_cube(0)")  # as the upkeep thread does every TWIN_API_SUMMARY_SECONDS
        assert cache.warm(conn) >= 1  # what it does next
        assert cache.warm(conn) == 0, "nothing left to read under these sources"
        hits, misses = cache.hits, cache.misses
        warmed = _ask(world, me, "/v1/headroom", level="row")
        assert (cache.hits, cache.misses) == (hits + 1, misses), "served by a lookup"
        assert _when(warmed) > _when(asked)
        assert warmed == queries.headroom(conn, owner=owner, level="row").model_dump(mode="json", exclude={"freshness"})
        assert cache.sources_held() == {queries.answer_sources(conn)}, "answers under older sources are let go"
