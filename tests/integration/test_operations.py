"""Operating a worker: what /metrics, /healthz and /readyz say, what the logs look like, and a
SIGTERM that lets the batch in flight commit before the worker leaves.

Real worker processes against the shared broker and database. (Readiness while the database
is down is proved in test_recovery.py, on a private stack whose database can be stopped.)
"""

from __future__ import annotations

import json
import signal
import time
from pathlib import Path
from typing import Any

import psycopg
import pytest
from fleet_load import Fleet, Pacer, kafka_committed, probe, samples, scrape, tracked, worker_env
from worker_process import query, running_worker, wait_for

pytestmark = pytest.mark.integration

WAITING_AT_OFFSETS = ("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
                      " AND wait_event_type = 'Lock' AND query LIKE 'INSERT INTO consumer_offsets%%'")


def _lag(page: str) -> dict[tuple[str, int], float]:
    return {(dict(k)["topic"], int(dict(k)["partition"])): v
            for k, v in samples(page, "twin_consumer_lag_messages").items()}


def test_metrics_count_the_flow_and_consumer_lag_follows_what_is_not_yet_applied(tenant: Any, tmp_path: Path) -> None:
    env = worker_env(tenant, tmp_path)
    fleet = Fleet.simulated(tenant, racks=30, cycles_ahead=20, malformed_share=0.05)
    fleet.publish(fleet.lifecycle() + fleet.telemetry(5))
    log = tmp_path / "worker.log"
    topics = tenant.topics
    with running_worker(env, log) as worker:
        port = worker.web_port  # type: ignore[attr-defined]
        wait_for("everything applied", fleet.progress, lambda p: all(a == s for a, s in p.values()),
                 log_path=log, proc=worker)
        wait_for("dead letters settled", fleet.open_letters, lambda letters: letters == fleet.bad, timeout=15,
                 log_path=log, proc=worker)
        page = wait_for("lag measured as nothing left, on every assigned partition", lambda: scrape(port),
                        lambda p: len(_lag(p)) == 10 and not any(_lag(p).values()), timeout=15, log_path=log)
        # 10: 4 lifecycle, 4 telemetry, 1 intent, and 1 dead-letter partition (the collectors' letters are recorded)

        # Held up at its offsets by a lock, the worker falls behind, and the gauge says by how much.
        with psycopg.connect(tenant.database_url) as blocker:
            blocker.execute("LOCK TABLE consumer_offsets IN EXCLUSIVE MODE")
            with Pacer(fleet, cycles=10, per_second=20) as pacer:
                pacer.finish()
            behind = wait_for("lag on the telemetry partitions", lambda: scrape(port),
                              lambda p: sum(v for (t, _), v in _lag(p).items() if t == topics.telemetry) > 0,
                              timeout=15, log_path=log)
        wait_for("caught up", fleet.progress, lambda p: all(a == s for a, s in p.values()), log_path=log, proc=worker)
        after = wait_for("lag back to nothing", lambda: scrape(port), lambda p: not any(_lag(p).values()),
                         timeout=15, log_path=log)

    # Messages in, per topic: every message the worker took, exactly once here (no redelivery).
    taken = {dict(k)["topic"]: v for k, v in samples(after, "twin_messages_in_total").items()}
    # The dead-letter topic is read back too (for letters other producers send); the worker's own
    # letters come round once each and are skipped.
    own_letters = sum(v for k, v in samples(after, "twin_messages_out_total").items()
                      if dict(k)["topic"] == topics.deadletter)
    assert taken.pop("deadletter") == own_letters
    assert taken == {role: float(n) for role, n in fleet.sent.items()}
    readings = samples(after, "twin_readings_in_total")[()]
    latency = samples(after, "twin_event_to_visible_seconds_count")[()]
    assert readings == latency == fleet.readings
    for role in ("lifecycle", "telemetry"):  # (the intent pipeline does not observe its batches)
        assert samples(after, "twin_batch_messages_count")[(("topic", role),)] >= 1
        assert samples(after, "twin_batch_messages_sum")[(("topic", role),)] == fleet.sent[role]
    assert samples(after, "twin_batch_seconds_count")[(("topic", "telemetry"),)] >= 1
    # Dead letters by reason: every kind of bad input, at least as often as it was sent (a reading
    # of a rack not yet known is refused, then adopted, and was counted when refused).
    letters = {dict(k)["reason"]: v for k, v in samples(after, "twin_deadletters_total").items()}
    assert all(letters.get(reason, 0) >= n for reason, n in fleet.bad.items()), (letters, fleet.bad)
    out = {dict(k)["topic"]: v for k, v in samples(after, "twin_messages_out_total").items()}
    assert out[topics.deadletter] == sum(letters.values())
    # Partitions and lag: each assigned partition once, lag shown for each.
    assigned = {(dict(k)["topic"], int(dict(k)["partition"])) for k, v in
                samples(page, "twin_assigned_partitions").items() if v == 1}
    assert assigned == ({(t, p) for t in (topics.telemetry, topics.lifecycle) for p in range(4)}
                        | {(topics.intent, 0), (topics.deadletter, 0)})
    assert set(_lag(behind)) == assigned


def test_health_and_readiness_answer_and_the_logs_are_structured_json(tenant: Any, tmp_path: Path) -> None:
    env = worker_env(tenant, tmp_path)
    log = tmp_path / "worker.log"
    with running_worker(env, log) as worker:
        port = worker.web_port  # type: ignore[attr-defined]
        ready = wait_for("ready", lambda: probe(port, "/readyz"), lambda r: r[0] == 200, timeout=30, log_path=log,
                         proc=worker)
        alive = probe(port, "/healthz")
        wait_for("partitions assigned", lambda: log.read_text(), lambda t: "partitions assigned" in t, timeout=30)
    assert ready == (200, "ready\n")
    assert alive == (200, "ok\n")
    records = []
    for line in log.read_text().splitlines():
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            pytest.fail(f"not a JSON log line: {line!r}")
    assert all({"event", "level", "timestamp"} <= set(r) for r in records)
    by_event = {r["event"]: r for r in records}
    assert by_event["worker starting"]["worker_id"] == tenant.env["TWIN_WORKER_ID"]
    assert sorted(by_event["partitions assigned"]["partitions"]) == sorted(
        [f"{tenant.topics.intent}:0", f"{tenant.topics.deadletter}:0"]
        + [f"{t}:{p}" for t in (tenant.topics.lifecycle, tenant.topics.telemetry) for p in range(4)])
    assert any(r.get("logger", "").startswith(("faust", "aiokafka", "mode")) for r in records), \
        "the stream library's own log records are rendered as JSON too"


def test_sigterm_lets_the_batch_in_flight_commit_and_a_restart_finds_nothing_lost(tenant: Any, tmp_path: Path) -> None:
    env = worker_env(tenant, tmp_path)
    fleet = Fleet.simulated(tenant, racks=40, cycles_ahead=60)
    fleet.publish(fleet.lifecycle())
    db = tenant.database_url
    log = tmp_path / "worker.log"
    with running_worker(env, log) as worker:
        wait_for("the lifecycle applied", fleet.all_applied, bool, log_path=log, proc=worker)
        with Pacer(fleet, cycles=60, per_second=15) as pacer:
            wait_for("telemetry flowing", lambda: fleet.applied("telemetry"), lambda n: n > 50, timeout=30,
                     log_path=log, proc=worker)
            with psycopg.connect(db) as blocker:
                blocker.execute("LOCK TABLE consumer_offsets IN EXCLUSIVE MODE")
                wait_for("a telemetry batch written up to its offsets, and waiting",
                         lambda: query(db, WAITING_AT_OFFSETS)[0][0], lambda n: n >= 1, timeout=15, log_path=log,
                         proc=worker)
                before = tracked(tenant)
                worker.send_signal(signal.SIGTERM)
                time.sleep(1.0)
                assert worker.poll() is None, "the worker must wait for its batch in flight"
                blocker.rollback()
            code = worker.wait(timeout=30)
            pacer.finish()
        after = tracked(tenant)
        acknowledged = kafka_committed(tenant)
    assert code == 0, log.read_text()[-3000:]
    assert any(after[tp] > before.get(tp, -1) for tp in after if tp[0] == tenant.topics.telemetry), \
        "the batch in flight at SIGTERM committed before the worker left"
    # Every offset acknowledged to the broker has its effects in the database (acked => applied).
    assert all(next_offset <= after.get(tp, -1) + 1 for tp, next_offset in acknowledged.items()), (acknowledged, after)

    log = tmp_path / "restarted.log"
    with running_worker(env, log) as worker:
        wait_for("everything applied after the restart", fleet.progress,
                 lambda p: all(a == s for a, s in p.values()), timeout=60, log_path=log, proc=worker)
        wait_for("dead letters settled", fleet.open_letters, lambda letters: letters == fleet.bad, timeout=15,
                 log_path=log, proc=worker)
        fleet.assert_reflected_exactly_once()
