"""`twin deadletters replay`: refused input goes through again after a fix, and is never lost."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import psycopg
from test_worker import applied_messages, publish, simulated
from worker_process import query, running_worker, scalar, wait_for
import pytest

pytestmark = pytest.mark.integration

TWIN = str(Path(sys.executable).parent / "twin")


def test_replayed_dead_letters_are_taken_when_the_fix_is_in_and_refused_again_when_not(
    tenant: Any, tmp_path: Path
) -> None:
    sim, messages = simulated(seed=17, racks=20, malformed_share=0.05, cycles=1)
    sent = publish(tenant, messages)
    db, group, log = tenant.database_url, tenant.env["TWIN_WORKER_ID"], tmp_path / "worker.log"
    with running_worker(tenant.env, log) as worker:
        for role, topic in (("intent", tenant.topics.intent), ("lifecycle", tenant.topics.lifecycle),
                            ("telemetry", tenant.topics.telemetry)):
            wait_for(f"{role} applied", lambda t=topic: applied_messages(db, group, t),
                     lambda n, want=sent[role]: n == want, log_path=log, proc=worker)
        # A reading refused by yesterday's worker (say, a range since corrected): recorded as its
        # dead letter, as the worker records them, and not in the telemetry table.
        rack_id, reading = next((r.rack_id, r) for r in sim.telemetry_cycle(sim.start)[0].readings)
        fixed = reading.model_copy(update={"occurred_at": sim.start.replace(year=sim.start.year - 1)})
        with_refusal = ("INSERT INTO deadletters (reason, detail, topic, partition, \"offset\", idx, rack_id, source,"
                        " payload) VALUES ('out-of-physical-range', 'refused by an older range', %s, 0, 999999, 0,"
                        " %s, 'collector-old', %s)")
        with psycopg.connect(db, autocommit=True) as conn:
            conn.execute(with_refusal, (tenant.topics.telemetry, rack_id, fixed.model_dump_json()))
        open_before = dict(query(db, "SELECT reason, count(*) FROM deadletters WHERE replayed_at IS NULL GROUP BY 1"))
        bad_json = open_before["malformed-json"]

        replayed = subprocess.run([TWIN, "deadletters", "replay", "--reason", "out-of-physical-range",
                                   "--reason", "malformed-json"], env=tenant.env, capture_output=True, text=True,
                                  timeout=60)
        assert replayed.returncode == 0, replayed.stdout + replayed.stderr
        assert f"malformed-json: {bad_json}" in replayed.stdout

        # The fixed reading is taken, under its original source; the bad bytes are refused again.
        wait_for("the replayed reading is stored", lambda: scalar(
            db, "SELECT count(*) FROM telemetry WHERE rack_id = %s AND occurred_at = %s AND source = 'collector-old'",
            (rack_id, fixed.occurred_at)), lambda n: n == 1, timeout=20, log_path=log, proc=worker)
        wait_for("bad bytes refused again, with their reason", lambda: scalar(
            db, "SELECT count(*) FROM deadletters WHERE reason = 'malformed-json' AND replayed_at IS NULL"),
            lambda n: n == bad_json, timeout=20, log_path=log, proc=worker)
        assert scalar(db, "SELECT count(*) FROM deadletters WHERE reason = 'malformed-json' AND replayed_at IS NOT"
                          " NULL") == bad_json
        listing = subprocess.run([TWIN, "deadletters"], env={**tenant.env, "COLUMNS": "200"}, capture_output=True,
                                 text=True, timeout=60)
        assert listing.returncode == 0 and "malformed-json" in listing.stdout
