"""A database restored from a backup loses nothing: `twin topics rewind` puts the consumer group
back to the offsets the restored database applied, and the workers read the rest again.

Real worker processes, the shared broker and database; the backup is a copy of the tenant's
database (CREATE DATABASE ... TEMPLATE), taken while no worker runs, as a restore would give.
"""

from __future__ import annotations

import subprocess
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

import psycopg
import pytest
from fleet_load import Fleet, worker_env
from psycopg import sql
from worker_process import running_worker, wait_for

pytestmark = pytest.mark.integration
REPO = Path(__file__).resolve().parents[2]


def _rewind(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", "from twin.cli import main; main()", "topics", "rewind"],
                          env=env | {"PYTHONPATH": str(REPO), "COLUMNS": "200"}, capture_output=True, text=True,
                          timeout=120)


def test_a_restored_database_gets_every_event_after_its_backup_again(stack: Any, tenant: Any, tmp_path: Path) -> None:
    fleet = Fleet.simulated(tenant, racks=20, cycles_ahead=8)
    fleet.publish(fleet.lifecycle() + fleet.telemetry(3))
    env = worker_env(tenant, tmp_path)
    with running_worker(env, tmp_path / "before.log") as worker:
        wait_for("the first part applied", fleet.progress, lambda p: all(a == s for a, s in p.values()),
                 log_path=tmp_path / "before.log", proc=worker)

    backup = f"{tenant.name}_backup"
    admin_url = stack.database_url
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(sql.Identifier(backup),
                                                                       sql.Identifier(tenant.name)))
    try:
        fleet.publish(fleet.telemetry(5))
        with running_worker(env, tmp_path / "after.log") as worker:
            wait_for("the part after the backup applied", fleet.progress,
                     lambda p: all(a == s for a, s in p.values()), log_path=tmp_path / "after.log", proc=worker)
            refused = _rewind(env)
        assert refused.returncode == 2 and "other live members" in refused.stderr, refused.stdout + refused.stderr

        # The database is restored from the backup: it has not seen the last five cycles.
        restored = replace(tenant, database_url=tenant.database_url.rsplit("/", 1)[0] + f"/{backup}")
        fleet.tenant = restored
        behind = fleet.progress()
        assert behind["telemetry"][0] < behind["telemetry"][1], behind

        moved = _rewind(worker_env(restored, tmp_path))
        assert moved.returncode == 0, moved.stdout + moved.stderr
        assert f"{tenant.topics.telemetry}:0 ->" in moved.stdout and "(database)" in moved.stdout, moved.stdout

        log = tmp_path / "restored.log"
        with running_worker(worker_env(restored, tmp_path), log) as worker:
            wait_for("everything applied to the restored database", fleet.progress,
                     lambda p: all(a == s for a, s in p.values()), log_path=log, proc=worker)
            wait_for("dead letters settled", fleet.open_letters, lambda letters: letters == fleet.bad, timeout=15,
                     log_path=log, proc=worker)
        fleet.assert_reflected_exactly_once()
    finally:
        with psycopg.connect(admin_url, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(backup)))
