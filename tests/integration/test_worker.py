"""A real worker against the real broker and database: what goes in is what the twin tables hold."""

from __future__ import annotations

import random
import subprocess
import time
import sys
from collections import Counter
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import orjson
from worker_process import query, running_worker, scalar, wait_for

from twin.store import views
from twin.domain.intent import IntentCatalog
from twin.publisher import Publisher
from twin.domain.rack import RackTwin
from twin.embedded.simulator import FaultPlan, FleetSimulator, Message
import pytest

pytestmark = pytest.mark.integration


def simulated(seed: int, racks: int, *, malformed_share: float = 0.0, cycles: int = 3) -> tuple[FleetSimulator, list[Message]]:
    catalog = IntentCatalog.default()
    intents = {g: catalog.latest(g) for g in catalog.generations()}
    start = datetime.now(timezone.utc) - timedelta(seconds=10)
    sim = FleetSimulator(seed, racks, start, intents, faults=FaultPlan(hot_rack=1, leak=1, power_over_budget=1),
                         malformed_share=malformed_share)
    messages = [*sim.reference_messages(), *sim.history_messages()]
    for _, cycle in sim.cycles(1.0, first=start, count=cycles):
        messages.extend(cycle)
    return sim, messages


def publish(tenant: Any, messages: list[Message]) -> Counter[str]:
    with Publisher(tenant.kafka_bootstrap, tenant.topics) as publisher:
        publisher.send_all(messages)
        publisher.flush()
        return Counter(publisher.sent)


def good_readings(messages: list[Message]) -> int:
    return sum(len(orjson.loads(m.value)["readings"]) for m in messages if m.role == "telemetry" and m.bad is None)


def applied_messages(database_url: str, group: str, topic: str) -> int:
    """Messages of `topic` whose effects are committed, from the tracked offsets (offsets start at 0)."""
    return int(scalar(database_url, 'SELECT coalesce(sum("offset" + 1), 0) FROM consumer_offsets'
                                    " WHERE group_id = %s AND topic = %s", (group, topic)))


def twin_state(database_url: str) -> dict[str, Any]:
    return {
        "racks": query(database_url, "SELECT rack_id, generation, status, version, facility_id, row_id, position,"
                                     " twin - 'rejected' FROM rack_state ORDER BY rack_id"),
        "events": scalar(database_url, "SELECT count(*) FROM events"),
        "telemetry": scalar(database_url, "SELECT count(*) FROM telemetry"),
        "latest": query(database_url, "SELECT rack_id, telemetry_at, power_watts FROM rack_state ORDER BY rack_id"),
    }


def test_a_simulated_fleet_lands_in_the_twin_tables_and_bad_input_is_dead_lettered_with_its_reason(
    tenant: Any, tmp_path: Path
) -> None:
    sim, messages = simulated(seed=11, racks=60, malformed_share=0.05)
    sent = publish(tenant, messages)
    expected_letters = Counter(m.bad for m in messages if m.bad)
    assert set(expected_letters) >= {"malformed-json", "unknown-type", "unknown-schema-version", "missing-field",
                                     "out-of-physical-range", "unknown-rack", "illegal-transition"}
    log = tmp_path / "worker.log"
    db = tenant.database_url
    group = tenant.env["TWIN_WORKER_ID"]
    with running_worker(tenant.env, log) as worker:
        for role, topic in (("intent", tenant.topics.intent), ("lifecycle", tenant.topics.lifecycle),
                            ("telemetry", tenant.topics.telemetry)):
            wait_for(f"all {role} messages applied", lambda: applied_messages(db, group, topic),
                     lambda n, want=sent[role]: n == want, log_path=log, proc=worker)
        assert scalar(db, "SELECT count(*) FROM rack_state") == len(sim.racks)
        # Telemetry may overtake the lifecycle that makes its rack known: it is refused as
        # unknown-rack, then adopted by the worker once the rack is known. Nothing is lost.
        wait_for("every good reading stored", lambda: scalar(db, "SELECT count(*) FROM telemetry"),
                 lambda n: n == good_readings(messages), timeout=15, log_path=log, proc=worker)
        # Likewise a rack may enter service before its generation's intent arrived (another topic):
        # refused at the gate, then folded again once the intent is known.
        open_letters = "SELECT reason, count(*) FROM deadletters WHERE replayed_at IS NULL GROUP BY reason"
        wait_for("open dead letters are exactly the injected bad input", lambda: Counter(dict(query(db, open_letters))),
                 lambda letters: letters == expected_letters, timeout=15, log_path=log, proc=worker)
        assert scalar(db, "SELECT count(*) FROM facilities WHERE ownership = 'partner'") >= 1
        assert scalar(db, "SELECT count(DISTINCT generation) FROM rack_state") >= 3
        for fault, racks in sim.faulty_racks.items():
            if racks and fault.value in ("leak", "power-over-budget", "hot-rack"):
                open_checks = query(db, "SELECT rack_id FROM deviations WHERE rack_id = ANY(%s)", (racks,))
                assert {r for (r,) in open_checks} == set(racks), f"{fault}: {open_checks}"
        before = twin_state(db)
        rebuilt = subprocess.run([str(Path(sys.executable).parent / "twin"), "rebuild"], env=tenant.env,
                                 capture_output=True, text=True, timeout=120)
        assert rebuilt.returncode == 0, rebuilt.stdout + rebuilt.stderr
        assert f"rebuilt {len(sim.racks)} racks" in rebuilt.stdout and "equals the live state" in rebuilt.stdout

        # The same messages again, in another order: nothing changes, the worker stays up.
        again = messages[:]
        random.Random(3).shuffle(again)
        resent = publish(tenant, again)
        for role, topic in (("intent", tenant.topics.intent), ("lifecycle", tenant.topics.lifecycle),
                            ("telemetry", tenant.topics.telemetry)):
            wait_for(f"all redelivered {role} messages applied", lambda: applied_messages(db, group, topic),
                     lambda n, want=sent[role] + resent[role]: n == want, log_path=log, proc=worker)
        assert twin_state(db) == before
        # Bad bytes sent twice are two refusals (two deliveries, two offsets); a repeated *event*
        # (same event_id) is recognised as a repeat and refused no second time, and a bad reading
        # of a repeated report (same event_id, same index) is one letter.
        once = {"out-of-physical-range", "unknown-rack", "missing-field"}
        again_letters = expected_letters + Counter(
            m.bad for m in messages if m.bad and m.bad != "illegal-transition"
            and not (m.role == "telemetry" and m.bad in once))
        assert Counter(dict(query(db, open_letters))) == again_letters
        assert worker.poll() is None, "bad input must never stop the worker"

    # Time travel at the last event of a rack is the live twin (one fold for both).
    with views.connect(db) as conn:
        racks = [r for (r,) in query(db, "SELECT rack_id FROM rack_state ORDER BY 1 LIMIT 5")]
        catalog = views.intent_catalog(conn)
        for rack_id in racks:
            history = views.rack_history(conn, rack_id)
            last = max(e.occurred_at for e in history)
            live = query(db, f"SELECT twin FROM rack_state WHERE rack_id = '{rack_id}'")[0][0]
            assert views.rack_as_of(conn, rack_id, last, catalog=catalog).snapshot() == live


def settled(database_url: str, sql: str, apart: float = 2.5, timeout: float = 20.0) -> list[tuple[Any, ...]]:
    """The rows of `sql` once two reads `apart` seconds apart (longer than a sweep) return the same."""
    deadline = time.monotonic() + timeout
    rows = query(database_url, sql)
    while True:
        time.sleep(apart)
        again = query(database_url, sql)
        if again == rows:
            return rows
        assert time.monotonic() < deadline, f"rows still changing after {timeout:.0f} s"
        rows = again


def test_lifecycle_delivered_shuffled_and_twice_folds_into_the_same_twins_as_in_order(
    tenant: Any, tmp_path: Path, request: Any
) -> None:
    sim, messages = simulated(seed=5, racks=25, cycles=0)
    reference = [m for m in messages if m.role == "intent"]
    lifecycle = [m for m in messages if m.role == "lifecycle"]
    scrambled = lifecycle + lifecycle[: len(lifecycle) // 2]
    random.Random(9).shuffle(scrambled)
    other = request.getfixturevalue("tenant_factory")()
    publish(tenant, reference + lifecycle)
    publish(other, reference + scrambled)
    twins: dict[str, list[tuple[Any, ...]]] = {}
    twin_rows = "SELECT rack_id, status, version, twin - 'rejected' FROM rack_state ORDER BY 1"
    for who, count in ((tenant, len(lifecycle)), (other, len(scrambled))):
        log = tmp_path / f"{who.name}.log"
        with running_worker(who.env, log) as worker:
            wait_for("lifecycle applied", lambda: applied_messages(who.database_url, who.env["TWIN_WORKER_ID"],
                                                                   who.topics.lifecycle),
                     lambda n, want=count: n == want, log_path=log, proc=worker)
            # Every offset applied: events that came before their rack's manufacture were adopted
            # in the batch that brought it, not at some later sweep.
            assert not query(who.database_url, "SELECT rack_id FROM deadletters WHERE reason = 'unknown-rack'"
                                               " AND replayed_at IS NULL")
            # The intent topic (design intent, and the facilities that installs name) is read by
            # its own agent: lifecycle folded before it committed was gated (missing-tests) or
            # kept out (unknown-location) until a sweep takes it back.
            wait_for("racks gated or installs refused before the intent arrived are taken back",
                     lambda: scalar(who.database_url, "SELECT count(*) FROM deadletters WHERE reason IN"
                                                      " ('missing-tests', 'unknown-location') AND replayed_at IS NULL"),
                     lambda n: n == 0, timeout=15, log_path=log, proc=worker)
            # Settled: the same twins across a sweep of the running worker (every 2 s).
            twins[who.name] = settled(who.database_url, twin_rows)
    ordered, shuffled = twins[tenant.name], twins[other.name]
    assert len(ordered) == len(sim.racks)
    differing = {a[0]: {k: (a[3].get(k), b[3].get(k)) for k in set(a[3]) | set(b[3]) if a[3].get(k) != b[3].get(k)}
                 for a, b in zip(ordered, shuffled) if a != b}
    assert shuffled == ordered, f"racks whose twin depends on delivery order (field: in order, shuffled): {differing}"


def test_a_new_intent_revision_rejudges_every_twin_of_its_generation(tenant: Any, tmp_path: Path) -> None:
    sim, messages = simulated(seed=3, racks=40, cycles=2)
    sent = publish(tenant, messages)
    db, group, log = tenant.database_url, tenant.env["TWIN_WORKER_ID"], tmp_path / "worker.log"
    generation = "gen-a-130kw"
    catalog = IntentCatalog.default()
    current = catalog.latest(generation)
    assert current is not None
    tighter = current.model_copy(update={
        "revision": current.revision + 1,
        "power_budget_watts": current.power_budget_watts.model_copy(update={"min": 0.0, "max": 1_000.0}),
        "required_components": {**current.required_components,
                                "compute-tray": current.required_components.get("compute-tray", 0) + 1},
    })
    revision_file = tmp_path / "gen-a-r2.json"
    revision_file.write_bytes(orjson.dumps({"intents": [tighter.model_dump(mode="json")]}))
    with running_worker(tenant.env, log) as worker:
        for role, topic in (("lifecycle", tenant.topics.lifecycle), ("telemetry", tenant.topics.telemetry)):
            wait_for(f"{role} applied", lambda: applied_messages(db, group, topic),
                     lambda n, want=sent[role]: n == want, log_path=log, proc=worker)
        wait_for("every good reading stored", lambda: scalar(db, "SELECT count(*) FROM telemetry"),
                 lambda n: n == good_readings(messages), timeout=15, log_path=log, proc=worker)
        wait_for("every stored reading projected", lambda: scalar(
            db, "SELECT count(*) FROM rack_state s WHERE telemetry_at IS DISTINCT FROM"
                " (SELECT max(occurred_at) FROM telemetry t WHERE t.rack_id = s.rack_id)"),
            lambda n: n == 0, timeout=15, log_path=log, proc=worker)
        powered = {r for (r,) in query(db, "SELECT rack_id FROM rack_state WHERE generation = %s AND telemetry_at IS NOT"
                                           " NULL AND status IN ('installed', 'commissioned', 'active', 'degraded',"
                                           " 'maintenance')", (generation,))}
        built = {r for (r,) in query(db, "SELECT rack_id FROM rack_state WHERE generation = %s AND status NOT IN"
                                         " ('planned', 'manufactured', 'decommissioned')", (generation,))}
        assert powered and built
        judged_by_r2 = "SELECT rack_id FROM deviations WHERE check_name = %s AND intent_revision = %s"
        assert not query(db, judged_by_r2, ("power-over-budget", tighter.revision))

        published = subprocess.run([str(Path(sys.executable).parent / "twin"), "intent", "publish", str(revision_file)],
                                   env=tenant.env, capture_output=True, text=True, timeout=60)
        assert published.returncode == 0, published.stdout + published.stderr

        wait_for("every powered rack of the generation judged over the new budget",
                 lambda: {r for (r,) in query(db, judged_by_r2, ("power-over-budget", tighter.revision))},
                 lambda racks: racks == powered, timeout=20, log_path=log, proc=worker)
        wait_for("every built rack of the generation short of the new compute-tray count",
                 lambda: {r for (r,) in query(db, judged_by_r2, ("components-missing-compute-tray", tighter.revision))},
                 lambda racks: racks == built, timeout=20, log_path=log, proc=worker)
        others = query(db, "SELECT DISTINCT generation FROM deviations WHERE intent_revision = %s AND generation <> %s",
                       (tighter.revision, generation))
        assert others == [], "only the revised generation is re-judged"
