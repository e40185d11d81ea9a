"""The CLI, the typed client and the HTTP API give the same answers on a simulated fleet.

The CLI reads the database through `twin.store.queries`, the API serves the same functions
over real HTTP (uvicorn on loopback), and `twin.client` asks the API. Each question is asked
all three ways and the documents are compared whole, except `freshness`, whose `answered_at` and lag differ by the moment of
asking (both must carry it, with the same newest event), and the scorecard's rack-years,
which accrue with the clock (equal within a millionth). Instants are compared as the CLI
writes them (RFC 3339 with `Z`): the API passes stored documents (a rack's twin and health)
through with `+00:00` offsets.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import datetime, timezone
from typing import Any

import httpx
import pytest
from api_fleet import load_fleet, partners
from api_server import ApiWorld, serving
from typer.testing import CliRunner

from twin.cli import app
from twin.client import TwinClient
from twin.output import jsonable
from twin.settings import get_settings
from twin.store import views

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def world(stack: Any) -> Iterator[ApiWorld]:
    from conftest import _new_tenant

    tenant = _new_tenant(stack, "cli_agreement")
    load_fleet(tenant.database_url)
    with serving(tenant, [p["operator"] for p in partners(tenant.database_url)]) as served:
        yield served


@pytest.fixture
def cli(world: ApiWorld, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    for key, value in world.tenant.env.items():
        if key.startswith("TWIN_"):
            monkeypatch.setenv(key, value)
    get_settings.cache_clear()
    runner = CliRunner()

    def run(*args: str) -> Any:
        result = runner.invoke(app, [*args, "--json"], catch_exceptions=False)
        assert result.exit_code == 0, result.output
        return json.loads(result.stdout)

    yield run
    get_settings.cache_clear()


@pytest.fixture(scope="module")
def client(world: ApiWorld) -> Iterator[TwinClient]:
    with TwinClient(world.base_url, world.tokens["reader"]) as c:
        yield c


def _http(world: ApiWorld, path: str, **params: Any) -> Any:
    r = httpx.get(f"{world.base_url}/v1{path}", params=params, headers=world.headers("reader"), timeout=30)
    assert r.status_code == 200, r.text
    return r.json()


_ACCRUING = {"rack_years_in_service", "rma_per_rack_year", "failures_per_rack_year"}
"""Scorecard fields measured up to now(): they grow between two askings, by a second in years."""


def _differences(a: Any, b: Any, path: str = "") -> Iterator[str]:
    if path.rsplit(".", 1)[-1] in _ACCRUING and isinstance(a, float) and isinstance(b, float):
        if a != pytest.approx(b, rel=1e-6):
            yield f"{path}: CLI {a!r} != {b!r} (beyond the second between the two askings)"
    elif isinstance(a, dict) and isinstance(b, dict):
        for key in sorted(set(a) | set(b)):
            yield from _differences(a.get(key, "<missing>"), b.get(key, "<missing>"), f"{path}.{key}")
    elif isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        for i, (x, y) in enumerate(zip(a, b)):
            yield from _differences(x, y, f"{path}[{i}]")
    elif a != b:
        yield f"{path}: CLI {a!r} != {b!r}"


def _same(from_cli: Any, from_http: Any, from_client: Any) -> None:
    """The three answers are one: the client's model, dumped as the API writes JSON, is the HTTP body."""
    from_client = from_client.model_dump(mode="json")
    fresh = [d.pop("freshness") for d in (from_cli, from_http, from_client)]
    assert fresh[0]["newest_event_at"] and fresh[0]["answered_at"]
    assert {jsonable(f)["newest_event_at"] for f in fresh} == {fresh[0]["newest_event_at"]}
    for name, other in (("HTTP", from_http), ("client", from_client)):
        differences = list(_differences(from_cli, jsonable(other)))
        assert not differences, f"CLI and {name} differ:\n" + "\n".join(differences[:20])


@pytest.fixture(scope="module")
def sample(world: ApiWorld) -> dict[str, str]:
    with views.connect(world.tenant.database_url) as conn:
        rack = conn.execute("SELECT rack_id FROM rack_state WHERE status = 'active' AND deviation_count > 0"
                            " ORDER BY rack_id LIMIT 1").fetchone()
        generation = conn.execute("SELECT generation FROM generation_intents ORDER BY 1 LIMIT 1").fetchone()
        facility = conn.execute("SELECT facility_id FROM facilities ORDER BY 1 LIMIT 1").fetchone()
        health = conn.execute("SELECT health ->> 'overall' AS h FROM rack_state WHERE health <> '{}'"
                              " GROUP BY 1 ORDER BY count(*) DESC LIMIT 1").fetchone()
    assert rack and generation and facility and health
    return {"rack": rack["rack_id"], "generation": generation["generation"], "facility": facility["facility_id"],
            "health": health["h"]}


def test_fleet_summary(world: ApiWorld, cli: Any, client: TwinClient) -> None:
    _same(cli("fleet"), _http(world, "/fleet/summary"), client.fleet_summary())
    by = cli("fleet", "--by", "stage", "--by", "owner")
    assert {tuple(g["key"]) for g in by["groups"]} == {("stage", "owner")}
    _same(by, _http(world, "/fleet/summary", group_by=["stage", "owner"]), client.fleet_summary(["stage", "owner"]))


@pytest.mark.parametrize("level", ["row", "hall", "facility"])
def test_headroom(world: ApiWorld, cli: Any, client: TwinClient, level: str) -> None:
    from_cli = cli("headroom", "--level", level)
    assert from_cli["places"] and {p["level"] for p in from_cli["places"]} == {level}
    _same(from_cli, _http(world, "/headroom", level=level), client.headroom(level=level))


def test_placement(world: ApiWorld, cli: Any, client: TwinClient, sample: dict[str, str]) -> None:
    g, f = sample["generation"], sample["facility"]
    from_cli = cli("place", g, "12")
    assert from_cli["placed"] + from_cli["unplaced"] == 12
    _same(from_cli, _http(world, "/placement", generation=g, count=12), client.place(g, 12))
    _same(cli("place", g, "3", "--facility", f), _http(world, "/placement", generation=g, count=3, facility=f),
          client.place(g, 3, facility=f))


def test_racks(world: ApiWorld, cli: Any, client: TwinClient, sample: dict[str, str]) -> None:
    from_cli = cli("racks", "--stage", "active", "--limit", "20")
    assert len(from_cli["racks"]) == 20 and from_cli["next_cursor"]
    _same(from_cli, _http(world, "/racks", stage="active", limit=20), client.racks(stage="active", limit=20))
    h = sample["health"]
    by_health = cli("racks", "--health", h, "--limit", "1000")
    assert by_health["racks"]
    _same(by_health, _http(world, "/racks", health=h, limit=1000), client.racks(health=h, limit=1000))


def test_one_rack_now_in_history_and_as_of(world: ApiWorld, cli: Any, client: TwinClient,
                                           sample: dict[str, str]) -> None:
    rack_id = sample["rack"]
    from_cli = cli("rack", rack_id)
    assert from_cli["deviations"] and from_cli["stage"] == "active"
    _same(from_cli, _http(world, f"/racks/{rack_id}"), client.rack(rack_id))
    _same(cli("rack", rack_id, "--history"), _http(world, f"/racks/{rack_id}/history"), client.rack_history(rack_id))
    at = datetime.now(timezone.utc).replace(microsecond=0)
    text = at.isoformat().replace("+00:00", "Z")
    _same(cli("rack", rack_id, "--as-of", text), _http(world, f"/racks/{rack_id}/as-of", at=text),
          client.rack_as_of(rack_id, at))


def test_rollout_plan(world: ApiWorld, cli: Any, client: TwinClient, sample: dict[str, str]) -> None:
    from_cli = cli("plan")
    assert from_cli["cells"] and from_cli["quarters"][0] == "2026Q3" and from_cli["quarters"][-1] == "2029Q4"
    _same(from_cli, _http(world, "/rollout"), client.rollout())
    f = sample["facility"]
    _same(cli("plan", "--facility", f), _http(world, "/rollout", facility=f), client.rollout(facility=f))


def test_scorecard(world: ApiWorld, cli: Any, client: TwinClient) -> None:
    from_cli = cli("scorecard")
    assert len(from_cli["generations"]) >= 2
    _same(from_cli, _http(world, "/scorecard"), client.scorecard())


def test_intent_revisions(world: ApiWorld, cli: Any, client: TwinClient, sample: dict[str, str]) -> None:
    from_cli = cli("intent", "list")
    assert from_cli["revisions"]
    _same(from_cli, _http(world, "/intents"), client.intents())
    g = sample["generation"]
    _same(cli("intent", "show", g), _http(world, f"/intents/{g}"), client.intent(g))


def test_the_cli_pointed_at_the_api_answers_as_it_does_from_the_database(
    world: ApiWorld, cli: Any, monkeypatch: pytest.MonkeyPatch, sample: dict[str, str]
) -> None:
    questions = [("fleet",), ("headroom", "--level", "hall"), ("racks", "--limit", "30"), ("rack", sample["rack"]),
                 ("plan",), ("scorecard",), ("intent", "list"), ("place", sample["generation"], "4")]
    direct = [cli(*q) for q in questions]
    monkeypatch.setenv("TWIN_API_URL", world.base_url)
    monkeypatch.setenv("TWIN_API_TOKEN", world.tokens["reader"])
    monkeypatch.setenv("TWIN_DATABASE_URL", "postgresql://nobody@127.0.0.1:1/none")  # proves it asks the API
    get_settings.cache_clear()
    for q, from_db in zip(questions, direct):
        from_api = cli(*q)
        from_db.pop("freshness"), from_api.pop("freshness")
        differences = list(_differences(from_db, from_api))
        assert not differences, f"{q}: " + "\n".join(differences[:10])
    table = CliRunner().invoke(app, ["rack", sample["rack"], "--history"], env={"COLUMNS": "200"})
    assert table.exit_code == 0, table.output
    for part in ("lifecycle", "components", "deviations from design intent", "event history", sample["rack"]):
        assert part in table.output


def test_a_partner_token_scopes_the_cli_to_its_facilities(world: ApiWorld, cli: Any,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    partner = next(k for k in world.tokens if k.startswith("partner:"))
    operator = partner.split(":", 1)[1]
    with views.connect(world.tenant.database_url) as conn:
        own = {r["facility_id"] for r in conn.execute("SELECT facility_id FROM facilities WHERE operator = %s",
                                                      (operator,))}
        other = conn.execute("SELECT rack_id FROM rack_state WHERE facility_id <> ALL(%s) ORDER BY 1 LIMIT 1",
                             (list(own),)).fetchone()
    assert own and other
    monkeypatch.setenv("TWIN_API_URL", world.base_url)
    monkeypatch.setenv("TWIN_API_TOKEN", world.tokens[partner])
    get_settings.cache_clear()
    racks = cli("racks", "--limit", "1000")["racks"]
    assert racks and {r["facility_id"] for r in racks} <= own
    missing = CliRunner().invoke(app, ["rack", other["rack_id"], "--json"])
    assert missing.exit_code == 1 and "no rack" in missing.output
