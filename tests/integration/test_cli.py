"""The read verbs of `twin` against a real database holding a simulated fleet.

One simulated fleet (150 racks, planted faults, some bad input) is folded in-process by the
worker's own pipelines into one tenant database for this module; every test only reads it.
"""

from __future__ import annotations

import asyncio
import csv
import io
import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import psycopg
import pytest
from conftest import Tenant, _new_tenant
from inprocess import run_pipelines
from psycopg.rows import dict_row
from typer.testing import CliRunner

from twin.cli import app
from twin.domain.intent import IntentCatalog
from twin.embedded.simulator import FaultPlan, FleetSimulator
from twin.settings import get_settings

pytestmark = pytest.mark.integration

TWIN = str(Path(sys.executable).parent / "twin")
RACKS = 150


@pytest.fixture(scope="module")
def fleet(stack: Any) -> Tenant:
    tenant = _new_tenant(stack, "cli_read_verbs")
    catalog = IntentCatalog.default()
    start = datetime.now(timezone.utc) - timedelta(seconds=20)
    sim = FleetSimulator(21, RACKS, start, {g: catalog.latest(g) for g in catalog.generations()},
                         faults=FaultPlan.typical(), malformed_share=0.05)
    messages = [*sim.reference_messages(), *sim.history_messages(),
                *(m for _, cycle in sim.cycles(1.0, first=start, count=4) for m in cycle)]
    asyncio.run(run_pipelines(tenant.database_url, messages, 500))
    return tenant


@pytest.fixture
def twin(fleet: Tenant, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """Run `twin ARGS…` in-process against the fleet's database; returns the click Result."""
    for key, value in fleet.env.items():
        if key.startswith("TWIN_"):
            monkeypatch.setenv(key, value)
    get_settings.cache_clear()
    runner = CliRunner()
    yield lambda *args: runner.invoke(app, list(args), catch_exceptions=False)
    get_settings.cache_clear()


def sql(fleet: Tenant, query: str, params: Any = None) -> list[dict[str, Any]]:
    with psycopg.connect(fleet.database_url, row_factory=dict_row) as conn:
        return conn.execute(query, params).fetchall()


def test_piped_racks_list_every_id_whole_so_grep_finds_it(twin: Any, fleet: Tenant) -> None:
    ids = [r["rack_id"] for r in sql(fleet, "SELECT rack_id FROM rack_state ORDER BY rack_id")]
    result = twin("racks", "--limit", "1000")
    assert result.exit_code == 0, result.output
    first_words = [line.split()[0] for line in result.stdout.splitlines() if line and not line.startswith("#")]
    assert first_words[0] == "rack" and first_words[1:] == ids
    grep = subprocess.run(f"{TWIN} racks --limit 1000 | grep -c -- '^{ids[-1]} '", shell=True, env=fleet.env,
                          capture_output=True, text=True, timeout=60)
    assert grep.stdout.strip() == "1", grep.stderr


@pytest.mark.parametrize("columns", ["120", "80"])
def test_racks_on_a_narrow_terminal_keep_ids_whole(fleet: Tenant, columns: str) -> None:
    env = {**fleet.env, "TTY_COMPATIBLE": "1", "COLUMNS": columns, "NO_COLOR": "1"}
    shown = subprocess.run([TWIN, "racks", "--limit", "20"], env=env, capture_output=True, text=True, timeout=60)
    assert shown.returncode == 0, shown.stderr
    ids = [r["rack_id"] for r in sql(fleet, "SELECT rack_id FROM rack_state ORDER BY rack_id LIMIT 20")]
    assert "╭" in shown.stdout or "┏" in shown.stdout  # drawn as a terminal table
    for rack_id in ids:
        assert rack_id in shown.stdout
    assert "-…" not in shown.stdout


@pytest.mark.parametrize("args, valid", [
    (("racks", "--stage", "actve"), "active"),
    (("racks", "--facility", "nowhere"), None),
    (("racks", "--generation", "gen-z"), None),
    (("racks", "--health", "sick"), "critical"),
    (("racks", "--deviation", "too-hot"), "accelerator-too-hot"),
    (("capacity", "--facility", "nowhere"), None),
    (("deadletters", "--reason", "bogus"), "malformed-json"),
    (("deadletters", "replay", "--reason", "bogus"), "out-of-physical-range"),
])
def test_unknown_filter_values_fail_and_list_the_valid_ones(twin: Any, fleet: Tenant, args: tuple[str, ...],
                                                            valid: str | None) -> None:
    result = twin(*args)
    assert result.exit_code == 2
    message = " ".join(result.output.split())
    assert f"{args[-1]!r} is not valid; valid values: " in message
    listed = set(re.split(r",\s*", message.split("valid values: ", 1)[1].split(";")[0]))
    if valid is None:  # a value the store knows: every facility / generation of the fleet is listed
        column = "facility_id" if "--facility" in args else "generation"
        known = {r["v"] for r in sql(fleet, f"SELECT DISTINCT {column} AS v FROM rack_state WHERE {column} IS NOT NULL")}
        assert known and known <= listed
    else:
        assert valid in listed


def test_a_near_miss_is_offered(twin: Any) -> None:
    result = twin("racks", "--stage", "actve")
    assert "did you mean 'active'?" in " ".join(result.output.split())


def test_racks_say_how_many_of_the_fleet_matched(twin: Any, fleet: Tenant) -> None:
    result = twin("racks")
    assert result.stdout.splitlines()[0] == f"# 50 of {RACKS} racks; --limit {RACKS} shows all"
    active = sql(fleet, "SELECT count(*) AS n FROM rack_state WHERE status = 'active'")[0]["n"]
    title = twin("racks", "--stage", "active", "--limit", "5").stdout.splitlines()[0]
    assert title == f"# 5 of {active} racks (fleet: {RACKS}); --limit {active} shows all"
    doc = json.loads(twin("racks", "--stage", "active", "--limit", "5", "--json").stdout)
    assert doc["total"] == active and len(doc["racks"]) == 5 and doc["next_cursor"]
    assert doc["freshness"]["newest_event_at"]


def test_racks_beyond_one_page_are_fetched_page_after_page(twin: Any, fleet: Tenant, monkeypatch: Any) -> None:
    import twin.commands.racks as racks_module

    monkeypatch.setattr(racks_module, "PAGE", 7)
    doc = json.loads(twin("racks", "--limit", "100", "--json").stdout)
    ids = [r["rack_id"] for r in sql(fleet, "SELECT rack_id FROM rack_state ORDER BY rack_id LIMIT 100")]
    assert [r["rack_id"] for r in doc["racks"]] == ids
    assert doc["total"] == RACKS and doc["next_cursor"]


def test_health_and_deviation_filters_select_exactly_those_racks(twin: Any, fleet: Tenant) -> None:
    by_health = sql(fleet, "SELECT coalesce(health ->> 'overall', 'unknown') AS h, array_agg(rack_id ORDER BY rack_id)"
                           " AS ids FROM rack_state GROUP BY 1")
    assert "unknown" in {r["h"] for r in by_health} and len(by_health) >= 3, by_health
    for group in by_health:
        doc = json.loads(twin("racks", "--health", group["h"], "--limit", "1000", "--json").stdout)
        assert [r["rack_id"] for r in doc["racks"]] == group["ids"], group["h"]
    by_check = sql(fleet, "SELECT check_name, array_agg(rack_id ORDER BY rack_id) AS ids FROM deviations GROUP BY 1")
    assert by_check, "the planted faults open deviations"
    for group in by_check:
        doc = json.loads(twin("racks", "--deviation", group["check_name"], "--limit", "1000", "--json").stdout)
        assert [r["rack_id"] for r in doc["racks"]] == group["ids"]
    stalled = [r["rack_id"] for r in sql(fleet, "SELECT rack_id FROM deviations WHERE check_name = 'stalled-in-stage'"
                                                " ORDER BY 1")]
    doc = json.loads(twin("racks", "--stalled", "--limit", "1000", "--json").stdout)
    assert stalled and [r["rack_id"] for r in doc["racks"]] == stalled


_INSTANT = re.compile(r"\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}")


def _strings(value: Any) -> Iterator[str]:
    if isinstance(value, dict):
        for k, v in value.items():
            assert k != "status", "the stage is called `stage`"
            yield from _strings(v)
    elif isinstance(value, list):
        for v in value:
            yield from _strings(v)
    elif isinstance(value, str):
        yield value


def _assert_rfc3339_utc(doc: Any) -> int:
    instants = [s for s in _strings(doc) if _INSTANT.match(s)]
    for s in instants:
        assert re.fullmatch(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{6})?Z", s), s
    return len(instants)


def test_json_names_the_stage_stage_and_writes_every_instant_as_rfc3339_utc(twin: Any, fleet: Tenant) -> None:
    rack_id = sql(fleet, "SELECT rack_id FROM rack_state WHERE telemetry_at IS NOT NULL AND health <> '{}'"
                         " ORDER BY rack_id LIMIT 1")[0]["rack_id"]
    docs = {
        "racks": json.loads(twin("racks", "--json").stdout),
        "rack": json.loads(twin("rack", rack_id, "--json").stdout),
        "rack as of": json.loads(twin("rack", rack_id, "--as-of", datetime.now(timezone.utc).isoformat(),
                                      "--json").stdout),
        "capacity": json.loads(twin("capacity", "--json").stdout),
        "deadletters": json.loads(twin("deadletters", "--json").stdout),
    }
    assert docs["racks"]["racks"][0]["stage"]
    assert docs["rack"]["stage"] and docs["rack"]["health"]["last_reading_at"].endswith("Z")
    assert docs["rack as of"]["stage"]
    docs["history"] = json.loads(twin("rack", rack_id, "--history", "--json").stdout)
    assert docs["history"]["events"]
    assert docs["deadletters"]["letters"], "bad input was planted"
    for name, doc in docs.items():
        if name != "capacity":
            assert _assert_rfc3339_utc(doc) > 0, name


def test_csv_of_racks_and_rack_parse_with_a_header(twin: Any, fleet: Tenant) -> None:
    rows = list(csv.DictReader(io.StringIO(twin("racks", "--limit", "1000", "--csv").stdout)))
    assert len(rows) == RACKS
    assert set(rows[0]) >= {"rack", "stage", "health", "power kW", "onshore", "telemetry at"}
    rack_id = rows[0]["rack"]
    one = list(csv.DictReader(io.StringIO(twin("rack", rack_id, "--csv").stdout)))
    assert len(one) == 1 and one[0]["rack_id"] == rack_id and one[0]["stage"] == rows[0]["stage"]
    events = list(csv.DictReader(io.StringIO(twin("rack", rack_id, "--history", "--csv").stdout)))
    stored = sql(fleet, "SELECT count(*) AS n FROM events WHERE stream_id = %s", (rack_id,))[0]["n"]
    assert len(events) == stored > 0
    letters = list(csv.DictReader(io.StringIO(twin("deadletters", "--limit", "10000", "--csv").stdout)))
    assert len(letters) == sql(fleet, "SELECT count(*) AS n FROM deadletters WHERE replayed_at IS NULL")[0]["n"]
    cap = list(csv.DictReader(io.StringIO(twin("capacity", "--csv").stdout)))
    assert len(cap) == sql(fleet, "SELECT count(*) AS n FROM rows")[0]["n"]
    assert set(cap[0]) >= {"facility", "hall", "row", "allocated kW", "available kW", "p95 drawn kW"}


def test_capacity_of_one_facility_shows_only_it_with_its_totals(twin: Any, fleet: Tenant) -> None:
    facilities = [r["facility_id"] for r in sql(fleet, "SELECT facility_id FROM facilities ORDER BY 1")]
    assert len(facilities) >= 2
    one = facilities[0]
    doc = json.loads(twin("capacity", "--facility", one, "--json").stdout)
    rows = doc["rows"]["places"]
    assert {r["facility_id"] for r in rows} == {one} and len(rows) == sql(
        fleet, "SELECT count(*) AS n FROM rows WHERE facility_id = %s", (one,))[0]["n"]
    assert {p["facility_id"] for p in doc["plan"]} == {one}
    assert {p["quarter"] for p in doc["plan"]} == {doc["quarter"]}
    [total] = doc["facilities"]["places"]
    assert total["facility_id"] == one
    for key in ("racks", "positions", "allocated_draw_watts"):
        assert total[key] == pytest.approx(sum(r[key] for r in rows))
    halls = sql(fleet, "SELECT sum(power_capacity_watts) AS w FROM halls WHERE facility_id = %s", (one,))[0]["w"]
    assert total["power_capacity_watts"] == pytest.approx(halls)  # a facility's limit is its halls' limits
    table = twin("capacity", "--facility", one).stdout
    others = [f for f in facilities if f != one]
    for line in table.splitlines():
        assert not any(line.startswith(f + " ") for f in others), line
    assert "# power capacity by facility" in table and f"# rollout plan, {doc['quarter']}" in table
    bad = twin("capacity", "--quarter", "2025Q1")
    assert bad.exit_code == 2 and "valid values: 2026Q3" in bad.output


def test_simulate_shows_progress_and_ends_with_one_summary_line(fleet: Tenant) -> None:
    env = {**fleet.env, "TTY_COMPATIBLE": "1", "COLUMNS": "120"}
    done = subprocess.run([TWIN, "simulate", "--racks", "5", "--cycles", "3", "--no-realtime"], env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    lines = [line for line in done.stdout.splitlines() if line.strip()]
    assert len(lines) == 1 and re.match(r"published 5 racks in [\d.]+s: \d+ reference, \d+ lifecycle and \d+ telemetry"
                                        r" messages \(3 cycles\); bad input injected: 0$", lines[0]), done.stdout
    assert "telemetry cycles" in done.stderr  # the progress display
    assert "{" not in done.stderr and "Counter" not in done.stderr


def test_clean_removes_unused_demo_and_test_state_and_keeps_what_is_in_use(tmp_path: Path) -> None:
    state, temp = tmp_path / "state", tmp_path / "tmp"
    (state / "demo" / "postgres").mkdir(parents=True)
    (state / "demo" / "postgres" / "base").write_bytes(b"x" * 2_000_000)
    (state / "faust" / "twin-worker").mkdir(parents=True)
    (state / "postgres").mkdir()  # `twin up`'s database: kept without --all
    left, busy = temp / "twin-test-stack-old", temp / "twin-test-stack-busy"
    for d in (left, busy):
        d.mkdir(parents=True)
        (d / "pg").write_bytes(b"y" * 1_000_000)
        os.utime(d, (0, 0))  # old enough not to be a run that is starting
    env = {**os.environ, "TWIN_STATE_DIR": str(state), "TMPDIR": str(temp)}
    user = subprocess.Popen(["sleep", "60"], cwd=busy)
    try:
        listed = subprocess.run([TWIN, "clean", "--dry-run"], env=env, capture_output=True, text=True, timeout=60)
        assert listed.returncode == 0, listed.stderr
        assert "would free 3.0 MB in 3 place(s)" in listed.stdout
        refused = subprocess.run([TWIN, "clean"], env=env, capture_output=True, text=True, timeout=60,
                                 stdin=subprocess.DEVNULL)
        assert refused.returncode == 2 and "--yes" in refused.stderr
        assert (state / "demo").exists()
        cleaned = subprocess.run([TWIN, "clean", "--yes"], env=env, capture_output=True, text=True, timeout=60)
        assert cleaned.returncode == 0, cleaned.stderr
    finally:
        user.kill()
        user.wait()
    assert f"kept (in use)  {busy}" in cleaned.stdout
    assert "removed 3 place(s), 3.0 MB" in cleaned.stdout
    assert not (state / "demo").exists() and not (state / "faust" / "twin-worker").exists() and not left.exists()
    assert busy.exists() and (state / "postgres").exists()


def test_clean_keeps_the_state_of_a_running_stack(stack: Any) -> None:
    from twin.commands.clean import in_use

    assert in_use(stack.state_dir, [])
    assert in_use(stack.state_dir.parent / stack.state_dir.name, [])


def test_fleet_by_stage_counts_every_rack_once(twin: Any, fleet: Tenant) -> None:
    counts = {r["status"]: r["n"] for r in sql(fleet, "SELECT status, count(*) AS n FROM rack_state GROUP BY 1")}
    rows = list(csv.DictReader(io.StringIO(twin("fleet", "--by", "stage", "--csv").stdout)))
    assert {r["stage"]: int(r["racks"]) for r in rows} == counts
    table = twin("fleet").stdout
    assert table.splitlines()[0] == f"# {RACKS} racks by facility, generation"
    assert "newest event " in table and "aggregates summarised at " in table  # how fresh the answer is
    bad = twin("fleet", "--by", "colour")
    assert bad.exit_code == 2 and "valid values: facility, hall, row, generation, stage, owner" in bad.output


def test_headroom_per_facility_adds_up_its_rows(twin: Any, fleet: Tenant) -> None:
    rows = json.loads(twin("headroom", "--json").stdout)["places"]
    facilities = json.loads(twin("headroom", "--level", "facility", "--json").stdout)["places"]
    assert facilities
    for f in facilities:
        mine = [r for r in rows if r["facility_id"] == f["facility_id"]]
        assert f["racks"] == sum(r["racks"] for r in mine)
        assert f["allocated_draw_watts"] == pytest.approx(sum(r["allocated_draw_watts"] for r in mine))
    one = facilities[0]["facility_id"]
    piped = twin("headroom", "--facility", one).stdout.splitlines()
    assert piped[1].split()[:3] == ["facility", "hall", "row"]
    assert {line.split()[0] for line in piped[2:] if line and not line.startswith("#")} == {one}


def test_place_says_how_many_fit_and_refuses_an_unknown_generation(twin: Any, fleet: Tenant) -> None:
    generation = sql(fleet, "SELECT generation FROM generation_intents ORDER BY 1 LIMIT 1")[0]["generation"]
    doc = json.loads(twin("place", generation, "7", "--json").stdout)
    assert doc["placed"] + doc["unplaced"] == 7 and sum(r["racks"] for r in doc["rows"]) == doc["placed"]
    title = twin("place", generation, "7").stdout.splitlines()[0]
    assert title.startswith(f"# {doc['placed']} of 7 {generation} racks fit")
    bad = twin("place", "gen-z-1kw", "3")
    assert bad.exit_code == 2 and generation in bad.output


def test_plan_table_has_a_column_per_quarter_and_csv_a_line_per_cell(twin: Any) -> None:
    doc = json.loads(twin("plan", "--json").stdout)
    rows = list(csv.DictReader(io.StringIO(twin("plan", "--csv").stdout)))
    assert len(rows) == len(doc["cells"]) and set(rows[0]) >= {"quarter", "target", "forecast", "on_plan"}
    header = twin("plan").stdout.splitlines()[1].split()
    assert header == ["facility", "generation", *doc["quarters"]]
    cell = doc["cells"][0]
    line = next(ln for ln in twin("plan").stdout.splitlines() if ln.startswith(cell["facility_id"] + " "))
    assert f"{cell['forecast']}/{cell['target']}" in line


def test_scorecard_puts_generations_side_by_side(twin: Any, fleet: Tenant) -> None:
    generations = [r["generation"] for r in sql(fleet, "SELECT DISTINCT generation FROM rack_state"
                                                       " WHERE generation IS NOT NULL ORDER BY 1")]
    rows = list(csv.DictReader(io.StringIO(twin("scorecard", "--csv").stdout)))
    assert list(rows[0]) == ["measure", *generations]
    measures = {r["measure"]: r for r in rows}
    in_service = sql(fleet, "SELECT generation, count(*) AS n FROM rack_state WHERE status IN"
                            " ('active', 'degraded', 'maintenance') GROUP BY 1")
    for r in in_service:
        assert int(measures["racks in service"][r["generation"]]) == r["n"]
    assert {"deviation rate power", "onshore share", "power per rack kW", "RMA per rack-year"} <= set(measures)


def test_intent_list_and_show(twin: Any, fleet: Tenant) -> None:
    stored = sql(fleet, "SELECT generation, revision FROM generation_intents ORDER BY 1, 2 DESC")
    rows = list(csv.DictReader(io.StringIO(twin("intent", "list", "--csv").stdout)))
    assert [(r["generation"], int(r["revision"])) for r in rows] == [(s["generation"], s["revision"]) for s in stored]
    shown = twin("intent", "show", stored[0]["generation"])
    assert shown.exit_code == 0 and '"power_budget_watts"' in shown.stdout
    missing = twin("intent", "show", "gen-z-1kw")
    assert missing.exit_code == 1 and stored[0]["generation"] in missing.output


def test_plan_on_a_narrow_terminal_shows_every_quarter_in_runs_that_fit(twin: Any, fleet: Tenant) -> None:
    doc = json.loads(twin("plan", "--json").stdout)
    env = {**fleet.env, "TTY_COMPATIBLE": "1", "COLUMNS": "80", "NO_COLOR": "1"}
    shown = subprocess.run([TWIN, "plan"], env=env, capture_output=True, text=True, timeout=60)
    assert shown.returncode == 0, shown.stderr
    lines = re.sub(r"\x1b\[[0-9;]*m", "", shown.stdout).splitlines()  # NO_COLOR keeps bold and dim
    assert max(len(line) for line in lines) <= 80
    for q in doc["quarters"]:
        assert sum(q in line for line in lines) == 1, q
    for c in doc["cells"]:
        assert any(line.split()[:2] == [c["facility_id"], c["generation"]] and f"{c['forecast']}/{c['target']}"
                   in line for line in lines)


def test_token_list_prints_whole_ids_and_rfc3339_in_every_format(twin: Any, fleet: Tenant) -> None:
    from twin.store import tokens, views

    with views.connect(fleet.database_url) as conn:
        made, _ = tokens.create_token(conn, "cli-listing", ["read"])
    piped = twin("token", "list").stdout
    assert any(line.split()[:2] == [made.token_id, "cli-listing"] for line in piped.splitlines())
    doc = json.loads(twin("token", "list", "--json").stdout)
    [mine] = [t for t in doc["tokens"] if t["token_id"] == made.token_id]
    assert _assert_rfc3339_utc(mine) == 1 and mine["revoked_at"] is None
    rows = list(csv.DictReader(io.StringIO(twin("token", "list", "--csv").stdout)))
    assert [r for r in rows if r["id"] == made.token_id][0]["created"] == mine["created_at"]
