"""Scale: workers share a consumer group, a slow database holds them back without filling their
memory, and one worker holds a fleet's worth of twins within its budget (docs/architecture.md, "Performance targets").

All against real worker processes, the real broker and the real database.
"""

from __future__ import annotations

import os
import signal
import time
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import orjson
import psycopg
import pytest
from fleet_load import Fleet, Pacer, RssSampler, assigned, kafka_committed, samples, scrape, tracked, worker_env
from psycopg.types.json import Jsonb
from worker_process import running_worker, scalar, wait_for

from schemas import TelemetryReported
from twin.domain.intent import IntentCatalog
from twin.domain.rack import RackTwin
from twin.embedded.simulator import FleetSimulator, Message, Stage
from twin.store.verify import verify

pytestmark = pytest.mark.integration

MB = 1024 * 1024


def test_two_workers_split_the_partitions_and_a_survivor_of_sigkill_takes_over_applying_everything_once(
    tenant: Any, tmp_path: Path
) -> None:
    env = worker_env(tenant, tmp_path)
    # Reports per row: a small fleet's few collector keys need not reach every partition, and this
    # test needs telemetry on the partitions the killed worker held, whichever they are.
    fleet = Fleet.simulated(tenant, racks=120, cycles_ahead=150, report_shape="row")
    topics = tenant.topics
    log_a, log_b = tmp_path / "a.log", tmp_path / "b.log"
    with running_worker(env, log_a) as a, running_worker(env, log_b) as b:
        ports = {"a": a.web_port, "b": b.web_port}  # type: ignore[attr-defined]
        # Each worker says what its own consumer was assigned: disjoint halves of each topic.
        split = wait_for("both workers in the group, the partitions split between them",
                         lambda: {w: (assigned(p, topics.telemetry), assigned(p, topics.lifecycle))
                                  for w, p in ports.items()},
                         lambda s: all(t and lc for t, lc in s.values())
                         and s["a"][0] | s["b"][0] == {0, 1, 2, 3} and not s["a"][0] & s["b"][0]
                         and s["a"][1] | s["b"][1] == {0, 1, 2, 3} and not s["a"][1] & s["b"][1],
                         timeout=45, log_path=log_b, proc=b)
        fleet.publish(fleet.lifecycle())
        wait_for("the fleet's lifecycle applied", fleet.all_applied, bool, timeout=60, log_path=log_a, proc=a)
        for w, port in ports.items():  # both did part of the work
            assert samples(scrape(port), "twin_messages_in_total")[(("topic", "lifecycle"),)] > 0, w

        with Pacer(fleet, cycles=150, per_second=15) as pacer:
            wait_for("a third of the stream produced, and half of that applied", lambda: fleet.applied("telemetry"),
                     lambda n: pacer.done >= 50 and n >= fleet.sent["telemetry"] // 2, timeout=60, log_path=log_a,
                     proc=a)
            a.send_signal(signal.SIGKILL)
            a.wait(timeout=10)
            killed_at = time.monotonic()
            at_kill = tracked(tenant)
            wait_for("the survivor owns every partition", lambda: assigned(ports["b"], topics.telemetry),
                     lambda t: t == {0, 1, 2, 3}, timeout=60, log_path=log_b, proc=b)
            takeover = time.monotonic() - killed_at
            pacer.finish()
        wait_for("every produced message applied", fleet.progress, lambda p: all(x == n for x, n in p.values()),
                 timeout=90, log_path=log_b, proc=b)
        wait_for("racks refused before their intent was known folded again", fleet.open_letters,
                 lambda letters: letters == fleet.bad, timeout=15, log_path=log_b, proc=b)
        final = tracked(tenant)
        fleet.assert_reflected_exactly_once()
        report = verify(tenant.database_url)  # and every view of every rack agrees (`twin verify`)
        assert report.ok, "\n".join(map(str, report.disagreements[:20]))
    orphaned = [(topics.telemetry, p) for p in split["a"][0]]
    assert all(final[tp] > at_kill.get(tp, -1) for tp in orphaned), "the survivor carried on the dead one's partitions"
    print(f"\ntakeover after SIGKILL: {takeover:.1f} s; {fleet.readings} readings in {fleet.sent['telemetry']} reports")


def test_a_slow_database_stops_consumption_and_worker_memory_stays_bounded(tenant: Any, tmp_path: Path) -> None:
    env = worker_env(tenant, tmp_path)
    # Reports per row, as this bound was set for: the worker's buffer is bounded in messages, not
    # bytes, so 50-reading collector reports let it hold about 7 times the bytes (44 MB seen against
    # this 40 MB bound); bounding the buffer by bytes is open work.
    fleet = Fleet.simulated(tenant, racks=200, cycles_ahead=520, report_shape="row")
    fleet.publish(fleet.lifecycle())
    db = tenant.database_url
    log = tmp_path / "worker.log"
    with running_worker(env, log) as worker, RssSampler(worker.pid) as rss:
        port = worker.web_port  # type: ignore[attr-defined]
        wait_for("the lifecycle applied", fleet.all_applied, bool, timeout=60, log_path=log, proc=worker)
        with Pacer(fleet, cycles=20, per_second=20) as warm_up:
            warm_up.finish()
        wait_for("the warm-up telemetry applied", fleet.all_applied, bool, log_path=log, proc=worker)
        baseline = max(rss.samples[-10:])
        with psycopg.connect(db) as blocker:
            blocker.execute("LOCK TABLE telemetry IN ACCESS EXCLUSIVE MODE")  # every telemetry batch waits
            applied_before = fleet.applied("telemetry")
            sent_before, bytes_before = fleet.sent["telemetry"], fleet.sent_bytes["telemetry"]
            with Pacer(fleet, cycles=500, per_second=1000, chunk=25) as flood:
                flood.finish()
            flooded = fleet.sent["telemetry"] - sent_before
            flood_bytes = fleet.sent_bytes["telemetry"] - bytes_before
            wait_for("the worker measured as behind by most of the flood", lambda: scrape(port),
                     lambda page: sum(v for k, v in samples(page, "twin_consumer_lag_messages").items()
                                      if dict(k)["topic"] == tenant.topics.telemetry) > flooded // 2,
                     timeout=20, log_path=log)
            time.sleep(3)  # held: what is the worker doing with the flood meanwhile?
            held_peak = rss.peak
            applied_while_held = fleet.applied("telemetry") - applied_before
            acknowledged = sum(v for (t, _), v in kafka_committed(tenant).items() if t == tenant.topics.telemetry)
        wait_for("the flood applied once the database answers", fleet.all_applied, bool, timeout=90, log_path=log,
                 proc=worker)
        fleet.assert_reflected_exactly_once()
    growth = held_peak - baseline
    print(f"\nflood of {flooded} reports ({flood_bytes / MB:.0f} MB) while telemetry was locked: worker RSS"
          f" {baseline / MB:.0f} MB -> peak {held_peak / MB:.0f} MB; after {rss.peak / MB:.0f} MB")
    assert applied_while_held == 0
    assert acknowledged <= applied_before  # nothing acknowledged to the broker beyond what was applied
    assert growth < 40 * MB, f"worker grew by {growth / MB:.0f} MB while {flood_bytes / MB:.0f} MB waited"


def test_a_worker_holding_100000_rack_twins_stays_under_500_mb_resident(tenant: Any, tmp_path: Path) -> None:
    """The full fleet's worth of twins (about 1.2 GB of snapshots to load: two minutes). Measured, not
    extrapolated: at 20,000 twins a linear projection said 437 MB while 100,000 measured 946 MB.
    What made the difference: a batch's transient (decoded readings, health of every judged rack)
    lives until its commit, so the worker applies a batch in slices of at most 8 MiB of reports;
    and here every reading is judged stale (the setup outlasts the stale setting), so every rack
    holds an open deviation: the worst case, kept on purpose.
    TWIN_TEST_TWINS sets another size (the memory it adds is then scaled to 100,000)."""
    env = worker_env(tenant, tmp_path)
    racks = int(os.environ.get("TWIN_TEST_TWINS", "100000"))
    per_report = 50
    catalog = IntentCatalog.default()
    start = datetime.now(timezone.utc).replace(microsecond=0) - timedelta(seconds=5)
    sim = FleetSimulator(3, 200, start, {g: catalog.latest(g) for g in catalog.generations()})
    # One rack in service per generation is the model: its folded twin (bill of materials, tests,
    # stage times) and one of its readings, copied under every rack id.
    models = {}
    for model in sim.racks.values():
        if model.stage is Stage.ACTIVE and model.generation not in models:
            twin = RackTwin.replay(model.rack_id, sim.history(model.rack_id), catalog)
            reading = next(r for report in sim.telemetry_cycle(start) for r in report.readings
                           if r.rack_id == model.rack_id)
            models[model.generation] = (twin.snapshot(), reading)
    generations = sorted(models)
    rack_ids = [f"mem-{i:06d}" for i in range(racks)]
    with psycopg.connect(tenant.database_url) as conn, conn.cursor() as cur:
        cur.executemany("INSERT INTO generation_intents (generation, revision, published_at, body)"
                        " VALUES (%s, %s, %s, %s)",
                        [(g, i.revision, start - timedelta(days=400), Jsonb(i.model_dump(mode="json")))
                         for g, i in sim.intents.items()])
        with cur.copy("COPY racks (rack_id, generation, serial_number, manufactured_at) FROM STDIN") as copy:
            for i, rack_id in enumerate(rack_ids):
                copy.write_row((rack_id, generations[i % 3], f"SN-{i}", start - timedelta(days=90)))
        with cur.copy("COPY rack_lifecycle (rack_id, generation, status, version, stream_version, twin)"
                      " FROM STDIN") as copy:
            for i, rack_id in enumerate(rack_ids):
                snapshot, _ = models[generations[i % 3]]
                copy.write_row((rack_id, generations[i % 3], snapshot["status"], snapshot["version"], 1,
                                orjson.dumps({**snapshot, "rack_id": rack_id}).decode()))
    reports = []
    for n in range(racks // per_report):
        readings = tuple(models[generations[i % 3]][1].model_copy(update={"rack_id": rack_ids[i]})
                         for i in range(n * per_report, (n + 1) * per_report))
        report = TelemetryReported(event_id=uuid.uuid4(), occurred_at=start, source=f"collector-{n % 40}", seq=n + 1,
                                   readings=readings)
        reports.append(Message("telemetry", f"row-{n}".encode(), report.model_dump_json().encode()))
    log = tmp_path / "worker.log"
    fleet = Fleet(tenant, sim)
    fleet.publish(reports)  # all waiting before the worker starts: its first batches are full ones (the worst case)
    with running_worker(env, log) as worker, RssSampler(worker.pid, every=0.2) as rss:
        port = worker.web_port  # type: ignore[attr-defined]
        wait_for("the worker ready, its partitions assigned", lambda: assigned(port, tenant.topics.telemetry),
                 lambda t: t == {0, 1, 2, 3}, timeout=30, log_path=log, proc=worker)
        idle = rss.samples[-1]  # started, nothing loaded yet (or barely: the scaled projection is then low by that)
        wait_for("every report applied", fleet.all_applied, bool, timeout=300, log_path=log, proc=worker)
        page = scrape(port)
        held = samples(page, "twin_twins_in_memory")[(("side", "telemetry"),)]
        time.sleep(1)
        settled, peak = rss.samples[-1], rss.peak
    # The peak is the largest batch's: how the reports were split into batches varies from run to run.
    batches = sorted((float(dict(k)["le"]), n) for k, n in samples(page, "twin_batch_messages_bucket").items()
                     if dict(k)["topic"] == "telemetry")
    largest = next((f"{low:.0f} to {high:.0f}" for (low, _), (high, n) in zip(batches, batches[1:])
                    if n == batches[-1][1]), "?")
    assert held == racks
    assert scalar(tenant.database_url, "SELECT count(*) FROM rack_state WHERE telemetry_at IS NOT NULL") == racks
    at_fleet_scale = idle + (peak - idle) * 100_000 / racks
    deviations = scalar(tenant.database_url, "SELECT count(*) FROM deviations")  # e.g. readings judged stale
    print(f"\n{racks} twins: worker RSS idle {idle / MB:.0f} MB, peak {peak / MB:.0f} MB, settled"
          f" {settled / MB:.0f} MB; {(settled - idle) / racks / 1024:.1f} KiB a twin settled; 100,000 twins ->"
          f" {at_fleet_scale / MB:.0f} MB peak; {deviations} open deviations; largest batch {largest} reports")
    assert at_fleet_scale < 500 * MB
