"""The stack when parts die: `twin down` under a running worker and simulator, and two workers on one host.

The `twin down` scenario runs on a private stack in `tmp_path` (it stops it), found by every
command from its state file: no TWIN_* variable is set at all, as a new user would run it.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from worker_process import free_port, running_worker, scalar, wait_for

from twin.embedded.stack import EmbeddedStack

pytestmark = pytest.mark.integration

TWIN = str(Path(sys.executable).parent / "twin")
WARNING_LEVELS = {"warning", "error", "critical"}


def _no_twin_env(data_home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TWIN_")}
    return {**env, "XDG_DATA_HOME": str(data_home)}


def _records(log: Path) -> list[dict[str, Any]]:
    out = []
    for line in log.read_text(errors="replace").splitlines():
        try:
            out.append(json.loads(line))
        except json.JSONDecodeError:
            out.append({"event": line, "level": "raw"})
    return out


def _web_port(log: Path) -> int | None:
    for record in _records(log):
        if record.get("event") == "web endpoints":
            return int(re.search(r":(\d+)/", record["url"]).group(1))  # type: ignore[union-attr]
    return None


def _get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=8) as answer:
            return answer.status, answer.read().decode()
    except urllib.error.HTTPError as answer:
        return answer.code, answer.read().decode()


def test_twin_down_under_a_worker_and_a_simulator(tmp_path: Path) -> None:
    data_home = tmp_path / "data"
    env = _no_twin_env(data_home)
    worker_log, sim_out, sim_err = tmp_path / "worker.log", tmp_path / "sim.out", tmp_path / "sim.err"
    stack = EmbeddedStack(data_home / "fleet-twin")  # where `twin up` keeps its state for this user
    stack.start()
    worker = simulator = None
    try:
        migrated = subprocess.run([TWIN, "migrate"], env=env, capture_output=True, text=True, timeout=60)
        assert migrated.returncode == 0, migrated.stderr
        with worker_log.open("wb") as log:
            worker = subprocess.Popen([TWIN, "worker"], env=env, stdout=log, stderr=subprocess.STDOUT)
        with sim_out.open("wb") as out, sim_err.open("wb") as err:
            simulator = subprocess.Popen([TWIN, "simulate", "--racks", "20", "--interval", "0.5"], env=env,
                                         stdout=out, stderr=err)
        wait_for("readings in the twin (found the stack without TWIN_*)",
                 lambda: scalar(stack.database_url, "SELECT count(*) FROM telemetry"), lambda n: n > 0, timeout=90,
                 log_path=worker_log, proc=worker)
        port = _web_port(worker_log)
        assert port is not None

        down = subprocess.run([TWIN, "down"], env=env, capture_output=True, text=True, timeout=60)
        assert down.returncode == 0 and "stopped the stack" in down.stdout, down.stdout + down.stderr
        downed_at, lines_before = time.monotonic(), len(_records(worker_log))

        time.sleep(12)
        window = [r for r in _records(worker_log)[lines_before:] if r.get("level") in WARNING_LEVELS]
        per_kind = Counter((r.get("logger"), re.sub(r"\d+", "N", str(r.get("event")))[:80], r.get("role"))
                           for r in window)
        # one line per failure per backoff step (1, 2, 4, 8 s): at most 5 of a kind in 12 s, not 100 a second
        assert per_kind and max(per_kind.values()) <= 5, per_kind.most_common(5)

        status, body = _get(f"http://127.0.0.1:{port}/readyz")
        assert status == 503 and "database:" in body and "broker: no answer from" in body, body

        code = simulator.wait(timeout=max(5.0, 60 - (time.monotonic() - downed_at)))
        errors = sim_err.read_text().strip().splitlines()
        assert code != 0
        assert "Traceback" not in sim_err.read_text()
        assert [line for line in errors if line.startswith("error:")] == [errors[-1]], errors
        assert "not delivered" in errors[-1] or "broker" in errors[-1], errors[-1]

        worker.send_signal(signal.SIGTERM)
        sent = time.monotonic()
        worker.wait(timeout=15)
        assert time.monotonic() - sent < 10, "the worker stops within 10 s of SIGTERM"
    finally:
        for proc in (worker, simulator):
            if proc is not None and proc.poll() is None:
                proc.kill()
                proc.wait()
        stack.stop()


def test_a_second_worker_on_the_host_takes_a_free_web_port_and_binds_the_configured_host(
        tenant: Any, tmp_path: Path) -> None:
    port = free_port()
    env = {**tenant.env, "TWIN_WORKER_WEB_HOST": "127.0.0.1", "TWIN_WORKER_WEB_PORT": str(port)}
    first_log, second_log = tmp_path / "first.log", tmp_path / "second.log"
    with first_log.open("wb") as log:
        first = subprocess.Popen([sys.executable, "-m", "streams", "worker"], env=env, stdout=log,
                                 stderr=subprocess.STDOUT)
    try:
        wait_for("the first worker serving", lambda: _web_port(first_log), lambda p: p == port, log_path=first_log,
                 proc=first, timeout=60)
        wait_for("the first worker answering", lambda: _answers(f"http://127.0.0.1:{port}/healthz"), bool,
                 log_path=first_log, proc=first, timeout=60)
        with second_log.open("wb") as log:
            second = subprocess.Popen([sys.executable, "-m", "streams", "worker"], env=env, stdout=log,
                                      stderr=subprocess.STDOUT)
        try:
            other = wait_for("the second worker serving", lambda: _web_port(second_log), lambda p: p is not None,
                             log_path=second_log, proc=second, timeout=60)
            assert other != port
            taken = [r for r in _records(second_log) if r.get("event", "").startswith("web port taken")]
            assert taken and taken[0]["wanted"] == port and taken[0]["port"] == other
            wait_for("the second worker answering", lambda: _answers(f"http://127.0.0.1:{other}/healthz"), bool,
                     log_path=second_log, proc=second, timeout=60)
            assert second.poll() is None
        finally:
            second.terminate()
            second.wait(timeout=20)
        # bound to 127.0.0.1 only: another loopback address reaches nothing on that port
        assert not _answers(f"http://127.0.0.2:{port}/healthz")
    finally:
        first.terminate()
        first.wait(timeout=20)


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=3):
            return True
    except urllib.error.HTTPError:
        return True
    except OSError:
        return False
