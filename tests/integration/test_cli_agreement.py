"""The CLI and the HTTP API give the same answers on a simulated fleet.

The CLI reads the database through `twin.store.queries`, the API serves the same functions
over real HTTP (uvicorn on loopback). Each question is asked both ways and the documents are
compared whole, except `freshness`, whose `answered_at` and lag differ by the moment of
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


def _http(world: ApiWorld, path: str, **params: Any) -> Any:
    r = httpx.get(f"{world.base_url}/v1{path}", params=params, headers=world.headers("reader"), timeout=30)
    assert r.status_code == 200, r.text
    return r.json()


_ACCRUING = {"rack_years_in_service", "rma_per_rack_year", "failures_per_rack_year"}
"""Scorecard fields measured up to now(): they grow between two askings, by a second in years."""


def _differences(a: Any, b: Any, path: str = "") -> Iterator[str]:
    if path.rsplit(".", 1)[-1] in _ACCRUING and isinstance(a, float) and isinstance(b, float):
        if a != pytest.approx(b, rel=1e-6):
            yield f"{path}: CLI {a!r} != HTTP {b!r} (beyond the second between the two askings)"
    elif isinstance(a, dict) and isinstance(b, dict):
        for key in sorted(set(a) | set(b)):
            yield from _differences(a.get(key, "<missing>"), b.get(key, "<missing>"), f"{path}.{key}")
    elif isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        for i, (x, y) in enumerate(zip(a, b)):
            yield from _differences(x, y, f"{path}[{i}]")
    elif a != b:
        yield f"{path}: CLI {a!r} != HTTP {b!r}"


def _same(from_cli: Any, from_http: Any) -> None:
    cli_fresh, http_fresh = from_cli.pop("freshness"), from_http.pop("freshness")
    assert cli_fresh["newest_event_at"] and cli_fresh["answered_at"]
    assert jsonable(http_fresh)["newest_event_at"] == cli_fresh["newest_event_at"]
    differences = list(_differences(from_cli, jsonable(from_http)))
    assert not differences, "\n".join(differences[:20])


@pytest.fixture(scope="module")
def sample(world: ApiWorld) -> dict[str, str]:
    with views.connect(world.tenant.database_url) as conn:
        rack = conn.execute("SELECT rack_id FROM rack_state WHERE status = 'active' AND deviation_count > 0"
                            " ORDER BY rack_id LIMIT 1").fetchone()
        generation = conn.execute("SELECT generation FROM generation_intents ORDER BY 1 LIMIT 1").fetchone()
        facility = conn.execute("SELECT facility_id FROM facilities ORDER BY 1 LIMIT 1").fetchone()
    assert rack and generation and facility
    return {"rack": rack["rack_id"], "generation": generation["generation"], "facility": facility["facility_id"]}


def test_fleet_summary(world: ApiWorld, cli: Any) -> None:
    _same(cli("fleet"), _http(world, "/fleet/summary"))
    by = cli("fleet", "--by", "stage", "--by", "owner")
    assert {tuple(g["key"]) for g in by["groups"]} == {("stage", "owner")}
    _same(by, _http(world, "/fleet/summary", group_by=["stage", "owner"]))


@pytest.mark.parametrize("level", ["row", "hall", "facility"])
def test_headroom(world: ApiWorld, cli: Any, level: str) -> None:
    from_cli = cli("headroom", "--level", level)
    assert from_cli["places"] and {p["level"] for p in from_cli["places"]} == {level}
    _same(from_cli, _http(world, "/headroom", level=level))


def test_placement(world: ApiWorld, cli: Any, sample: dict[str, str]) -> None:
    from_cli = cli("place", sample["generation"], "12")
    assert from_cli["placed"] + from_cli["unplaced"] == 12
    _same(from_cli, _http(world, "/placement", generation=sample["generation"], count=12))
    _same(cli("place", sample["generation"], "3", "--facility", sample["facility"]),
          _http(world, "/placement", generation=sample["generation"], count=3, facility=sample["facility"]))


def test_racks(world: ApiWorld, cli: Any) -> None:
    from_cli = cli("racks", "--stage", "active", "--limit", "20")
    assert len(from_cli["racks"]) == 20 and from_cli["next_cursor"]
    _same(from_cli, _http(world, "/racks", stage="active", limit=20))
    _same(cli("racks", "--health", "ok", "--limit", "1000"), _http(world, "/racks", health="ok", limit=1000))


def test_one_rack_now_in_history_and_as_of(world: ApiWorld, cli: Any, sample: dict[str, str]) -> None:
    rack_id = sample["rack"]
    from_cli = cli("rack", rack_id)
    assert from_cli["deviations"] and from_cli["stage"] == "active"
    _same(from_cli, _http(world, f"/racks/{rack_id}"))
    _same(cli("rack", rack_id, "--history"), _http(world, f"/racks/{rack_id}/history"))
    at = datetime.now(timezone.utc).replace(microsecond=0).isoformat().replace("+00:00", "Z")
    _same(cli("rack", rack_id, "--as-of", at), _http(world, f"/racks/{rack_id}/as-of", at=at))


def test_rollout_plan(world: ApiWorld, cli: Any, sample: dict[str, str]) -> None:
    from_cli = cli("plan")
    assert from_cli["cells"] and from_cli["quarters"][0] == "2026Q3" and from_cli["quarters"][-1] == "2029Q4"
    _same(from_cli, _http(world, "/rollout"))
    _same(cli("plan", "--facility", sample["facility"]), _http(world, "/rollout", facility=sample["facility"]))


def test_scorecard(world: ApiWorld, cli: Any) -> None:
    from_cli = cli("scorecard")
    assert len(from_cli["generations"]) >= 2
    _same(from_cli, _http(world, "/scorecard"))


def test_intent_revisions(world: ApiWorld, cli: Any, sample: dict[str, str]) -> None:
    from_cli = cli("intent", "list")
    assert from_cli["revisions"]
    _same(from_cli, _http(world, "/intents"))
    _same(cli("intent", "show", sample["generation"]), _http(world, f"/intents/{sample['generation']}"))
