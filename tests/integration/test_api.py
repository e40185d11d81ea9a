"""The HTTP API over real HTTP (uvicorn on loopback) against the real database and broker."""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from datetime import datetime, timezone
from typing import Any

import httpx
import pytest
from api_fleet import load_fleet, partners
from api_server import ApiWorld, serving

from twin.store import views

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def world(stack: Any) -> Iterator[ApiWorld]:
    from conftest import _new_tenant

    tenant = _new_tenant(stack, "api")
    load_fleet(tenant.database_url)
    with serving(tenant, [p["operator"] for p in partners(tenant.database_url)]) as served:
        yield served


def _walk(world: ApiWorld) -> list[tuple[str, str]]:
    """(method, path template) of every operation the OpenAPI document lists."""
    doc = httpx.get(f"{world.base_url}/openapi.json").json()
    return [(m.upper(), p) for p, ops in doc["paths"].items() for m in ops]


def _sample(world: ApiWorld, path: str, rack_id: str, generation: str) -> tuple[str, dict[str, Any]]:
    """A concrete URL and the required query parameters for an operation; fails for an unknown parameter."""
    doc = httpx.get(f"{world.base_url}/openapi.json").json()
    values = {"rack_id": rack_id, "generation": generation, "revision": 1,
              "at": datetime.now(timezone.utc).isoformat(), "count": 3}
    url = re.sub(r"\{(\w+)\}", lambda m: str(values[m.group(1)]), path)
    params = {}
    for op in doc["paths"][path].values():
        for p in op.get("parameters", []):
            if p["in"] == "query" and p.get("required"):
                assert p["name"] in values, f"give the isolation walk a sample value for {path} ?{p['name']}"
                params[p["name"]] = values[p["name"]]
    return url, params


def test_every_endpoint_refuses_a_request_without_a_token(world: ApiWorld) -> None:
    for method, path in _walk(world):
        url, params = _sample(world, path, "dfw1-h1-r01-01", "gen-a-130kw")
        r = httpx.request(method, world.base_url + url, params=params)
        assert r.status_code == 401, (method, path, r.text)
        r = httpx.request(method, world.base_url + url, params=params, headers={"Authorization": "Bearer nope"})
        assert r.status_code == 401, (method, path, r.text)


def test_every_endpoint_refuses_a_token_without_its_scope(world: ApiWorld) -> None:
    for method, path in _walk(world):
        url, params = _sample(world, path, "dfw1-h1-r01-01", "gen-a-130kw")
        wrong = "reader" if method == "POST" or path == "/v1/tokens" else "writer"
        r = httpx.request(method, world.base_url + url, params=params, headers=world.headers(wrong))
        assert r.status_code == 403, (method, path, r.text)
        assert "needs" in r.json()["detail"]


def test_a_partner_cannot_read_another_partners_data_on_any_endpoint(world: ApiWorld) -> None:
    """Every GET in the OpenAPI document, with each partner's token: nothing of the others appears,
    and another partner's rack is 404 on every rack endpoint. The admin's answers do show them."""
    with views.connect(world.tenant.database_url) as conn:
        facilities = conn.execute("SELECT facility_id, operator FROM facilities").fetchall()
        placed = conn.execute("SELECT s.rack_id, f.operator FROM rack_state s JOIN facilities f USING (facility_id)"
                              " ORDER BY s.rack_id").fetchall()
        generation = conn.execute("SELECT generation FROM generation_intents ORDER BY 1 LIMIT 1").fetchone()["generation"]
    operators = sorted({f["operator"] for f in facilities})
    partner_names = [w.split(":", 1)[1] for w in world.tokens if w.startswith("partner:")]
    assert len(partner_names) >= 2, "the simulated fleet has at least two partners"
    operations = [(m, p) for m, p in _walk(world) if m == "GET" and p != "/v1/tokens"]
    assert {m for m, _ in _walk(world)} == {"GET", "POST"} and ("POST", "/v1/events") in _walk(world)
    seen_by_admin: set[str] = set()
    for me in partner_names:
        mine = next(r["rack_id"] for r in placed if r["operator"] == me)
        theirs = next(r["rack_id"] for r in placed if r["operator"] != me)
        foreign = ({f["facility_id"] for f in facilities if f["operator"] != me}
                   | {o for o in operators if o != me}
                   | {r["rack_id"] for r in placed if r["operator"] != me})
        for _, path in operations:
            for rack_id in (mine, theirs):
                url, params = _sample(world, path, rack_id, generation)
                r = httpx.get(world.base_url + url, params=params, headers=world.headers(f"partner:{me}"))
                if "{rack_id}" in path and rack_id == theirs:
                    assert r.status_code == 404, (path, r.text)
                    assert theirs not in r.text.replace(f"rack {theirs}", "")  # only the id asked about, echoed
                    continue
                assert r.status_code == 200, (path, r.text)
                leaked = {s for s in foreign if re.search(rf'"{re.escape(s)}"', r.text)}
                assert not leaked, f"{me} read {sorted(leaked)[:5]} of others on {path}"
                admin = httpx.get(world.base_url + url, params=params, headers=world.headers("admin"))
                assert admin.status_code == 200
                seen_by_admin |= {s for s in foreign if f'"{s}"' in admin.text}
    assert seen_by_admin, "the same requests with an admin token do show other partners' data"


def test_read_answers_say_how_fresh_they_are(world: ApiWorld) -> None:
    r = httpx.get(f"{world.base_url}/v1/fleet/summary", params={"group_by": ["owner", "stage"]},
                  headers=world.headers("reader"))
    assert r.status_code == 200
    body = r.json()
    assert body["freshness"]["newest_event_at"] is not None and body["freshness"]["lag_basis"] == "tracked-commit-time"
    assert {"owner", "stage"} == set(body["groups"][0]["key"])
    assert sum(g["racks"] for g in body["groups"]) == body["racks"] > 0


def test_bad_parameters_get_a_4xx_that_says_what_to_fix(world: ApiWorld) -> None:
    h = world.headers("reader")
    r = httpx.get(f"{world.base_url}/v1/racks", params={"facility": "nowhere"}, headers=h)
    assert r.status_code == 422 and "nowhere" in r.json()["detail"] and r.json()["valid"]
    r = httpx.get(f"{world.base_url}/v1/racks", params={"stage": "actve"}, headers=h)
    assert r.status_code == 422 and "active" in r.text
    r = httpx.get(f"{world.base_url}/v1/fleet/summary", params={"group_by": "colour"}, headers=h)
    assert r.status_code == 422 and "facility" in r.text
    r = httpx.get(f"{world.base_url}/v1/racks/dfw1-h1-r01-01/as-of", params={"at": "2027-01-01T00:00:00"}, headers=h)
    assert r.status_code == 422 and "offset" in r.json()["detail"]
