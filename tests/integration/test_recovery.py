"""Crash recovery with real worker processes: a worker killed in the middle of a batch, a batch
that fails on a bug, and the database restarted under load lose nothing and apply nothing twice.

Why a lock to find "the middle of a batch": a batch writes its facts, state and dead letters and
then its tracked offsets, in one transaction. A test that holds a lock on `consumer_offsets`
(EXCLUSIVE: reads go on, writes wait) stops every batch at its last statement, with all its
other writes made and not committed (or earlier, at rows such a stopped batch holds); a kill
then is a kill mid-batch, every time.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import psycopg
import pytest
from conftest import Tenant
from fleet_load import Fleet, Pacer, probe, samples, scrape, tracked, worker_env
from worker_process import free_port, query, running_worker, scalar, wait_for

from twin.store.migrations import migrate
from twin.settings import Topics
from twin.embedded.stack import EmbeddedStack

pytestmark = pytest.mark.integration

EXIT_ON_BUG = 70  # streams.app.EXIT_ON_BUG (importing the app here would build a Faust app in the test process)

WAITING = ("SELECT ltrim(query, E' \\n') FROM pg_stat_activity WHERE datname = current_database()"
           " AND wait_event_type = 'Lock' AND state = 'active'")


def test_a_worker_killed_mid_batch_and_restarted_resumes_without_loss_or_double_effect(
    tenant: Any, tmp_path: Path
) -> None:
    env = worker_env(tenant, tmp_path)
    fleet = Fleet.simulated(tenant, racks=40, cycles_ahead=20, malformed_share=0.03)
    lifecycle = fleet.lifecycle()
    half = len(lifecycle) // 2
    fleet.publish(lifecycle[:half])
    db = tenant.database_url
    log = tmp_path / "worker.log"
    with running_worker(env, log) as worker:
        wait_for("the first half of the lifecycle applied", fleet.all_applied, bool, log_path=log, proc=worker)
        before = {role: fleet.applied(role) for role in fleet.sent}
        events_before = scalar(db, "SELECT count(*) FROM events")
        with psycopg.connect(db) as blocker:
            blocker.execute("LOCK TABLE consumer_offsets IN EXCLUSIVE MODE")
            fleet.publish(lifecycle[half:] + fleet.telemetry(10))
            # The lifecycle and the telemetry batch both stop mid-transaction: one at its offsets,
            # the other there too (each writes only its own tables, so neither waits at the other's rows).
            waiting = wait_for("two batches written up to a lock, and waiting", lambda: query(db, WAITING),
                               lambda rows: len(rows) >= 2, timeout=30, log_path=log, proc=worker)
            assert any(q.startswith("INSERT INTO consumer_offsets") for (q,) in waiting), waiting
            worker.send_signal(signal.SIGKILL)
            worker.wait(timeout=10)
            blocker.rollback()
    # The killed batches' writes were never committed: nothing of them is visible.
    assert {role: fleet.applied(role) for role in before} == before
    assert scalar(db, "SELECT count(*) FROM events") == events_before
    assert scalar(db, "SELECT count(*) FROM telemetry") == 0

    fleet.publish(fleet.telemetry(10))
    log = tmp_path / "restarted.log"
    with running_worker(env, log) as worker:
        wait_for("everything applied after the restart", fleet.progress,
                 lambda p: all(a == s for a, s in p.values()), timeout=60, log_path=log, proc=worker)
        wait_for("unknown-rack input adopted and gated racks re-folded", fleet.open_letters,
                 lambda letters: letters == fleet.bad, timeout=15, log_path=log, proc=worker)
        fleet.assert_reflected_exactly_once()


def test_a_batch_failing_on_a_bug_stops_the_worker_and_is_applied_after_a_restart_never_skipped(
    tenant: Any, tmp_path: Path
) -> None:
    env = worker_env(tenant, tmp_path)
    fleet = Fleet.simulated(tenant, racks=40)
    fleet.publish(fleet.lifecycle())
    poison = (tenant.topics.lifecycle, 0, 150)
    log = tmp_path / "faulty.log"
    with log.open("wb") as out:
        faulty = subprocess.Popen([sys.executable, str(Path(__file__).with_name("faulty_worker.py"))],
                                  env={**env, "TWIN_TEST_FAIL_AT": ":".join(map(str, poison)),
                                       "TWIN_WORKER_WEB_PORT": str(free_port())},
                                  stdout=out, stderr=subprocess.STDOUT)
    try:
        code = faulty.wait(timeout=60)
    finally:
        if faulty.poll() is None:
            faulty.kill()
            faulty.wait()
    assert code == EXIT_ON_BUG, log.read_text()[-3000:]
    applied = tracked(tenant)
    assert applied.get(poison[:2], -1) < poison[2], "nothing after the failed batch was applied on its partition"

    log = tmp_path / "worker.log"
    with running_worker(env, log) as worker:
        wait_for("everything applied by a worker without the bug", fleet.progress,
                 lambda p: all(a == s for a, s in p.values()), timeout=60, log_path=log, proc=worker)
        wait_for("dead letters settled", fleet.open_letters, lambda letters: letters == fleet.bad, timeout=15,
                 log_path=log, proc=worker)
        fleet.assert_reflected_exactly_once()
    assert tracked(tenant)[poison[:2]] > poison[2]


def test_a_database_restart_under_load_is_ridden_out_with_backoff_and_nothing_is_lost(tmp_path: Path) -> None:
    with EmbeddedStack(tmp_path / "stack") as stack:
        migrate(stack.database_url)
        tenant = Tenant("db-restart", stack.kafka_bootstrap, stack.database_url, Topics())
        env = worker_env(tenant, tmp_path)
        fleet = Fleet.simulated(tenant, racks=40, cycles_ahead=60)
        lifecycle = fleet.lifecycle()
        half = len(lifecycle) // 2
        fleet.publish(lifecycle[:half])
        log = tmp_path / "worker.log"
        with running_worker(env, log) as worker:
            port = worker.web_port  # type: ignore[attr-defined]
            wait_for("the first half of the lifecycle applied", fleet.all_applied, bool, log_path=log, proc=worker)
            wait_for("ready", lambda: probe(port, "/readyz"), lambda r: r[0] == 200, timeout=10)
            with Pacer(fleet, cycles=60, per_second=10) as pacer:
                wait_for("telemetry flowing", lambda: fleet.applied("telemetry"), lambda n: n > 0, timeout=30,
                         log_path=log, proc=worker)
                stack.stop_database()
                fleet.publish(lifecycle[half:])  # more lifecycle while the database is down
                time.sleep(2)
                ready, ready_body = probe(port, "/readyz")
                alive, alive_body = probe(port, "/healthz")
                stack.start_database()
                pacer.finish()
            assert (ready, alive) == (503, 200), (ready_body, alive_body)
            assert "database" in ready_body and "database" in alive_body
            wait_for("everything applied after the database came back", fleet.progress,
                     lambda p: all(a == s for a, s in p.values()), timeout=60, log_path=log, proc=worker)
            wait_for("ready again", lambda: probe(port, "/readyz"), lambda r: r[0] == 200, timeout=10)
            retries = samples(scrape(port), "twin_store_retries_total")
            fleet.assert_reflected_exactly_once()
            assert worker.poll() is None
        text = log.read_text()
        assert sum(retries.values()) >= 1, retries
        assert "database connection replaced" in text
