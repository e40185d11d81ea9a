"""`twin demo` as a user runs it: it shows the fleet, exits 0, and leaves no process behind."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

pytestmark = pytest.mark.integration

TWIN = str(Path(sys.executable).parent / "twin")


def _descendants(pid: int) -> list[psutil.Process]:
    try:
        return psutil.Process(pid).children(recursive=True)
    except psutil.NoSuchProcess:
        return []


def _alive(procs: list[psutil.Process]) -> list[psutil.Process]:
    out = []
    for p in procs:
        try:
            if p.is_running() and p.status() != psutil.STATUS_ZOMBIE:
                out.append(p)
        except psutil.NoSuchProcess:
            pass
    return out


def test_demo_shows_racks_of_two_facilities_and_three_generations_then_exits_cleanly(tmp_path: Path) -> None:
    env = {**os.environ, "TWIN_STATE_DIR": str(tmp_path)}
    started = time.monotonic()
    proc = subprocess.Popen([TWIN, "demo", "--racks", "120", "--duration", "25"], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    children: list[psutil.Process] = []
    while proc.poll() is None and time.monotonic() - started < 8:
        children = _descendants(proc.pid) or children
        time.sleep(0.5)
    out, _ = proc.communicate(timeout=90)
    assert proc.returncode == 0, out
    lines = re.findall(r"racks=(\d+) facilities=(\d+) generations=(\d+)", out)
    assert lines, out
    racks, facilities, generations = map(int, lines[-1])
    assert racks == 120 and facilities >= 2 and generations >= 3, out
    assert re.search(r"first racks visible (\d+\.\d)s after start", out), out
    assert len(children) >= 3, f"expected broker, database and worker under the demo, saw {children}"
    assert not _alive(children), f"left behind: {_alive(children)}"


def test_no_process_of_the_demo_survives_a_sigkill(tmp_path: Path) -> None:
    env = {**os.environ, "TWIN_STATE_DIR": str(tmp_path)}
    proc = subprocess.Popen([TWIN, "demo", "--racks", "40", "--duration", "120"], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 30
    children: list[psutil.Process] = []
    while time.monotonic() < deadline:
        children = _descendants(proc.pid)
        names = " ".join(" ".join(p.cmdline()) for p in _alive(children))
        if "tansu" in names and "postgres" in names and "streams" in names:
            break
        time.sleep(0.5)
    else:
        raise AssertionError(f"the demo did not start broker, database and worker: {children}")
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    deadline = time.monotonic() + 20
    while _alive(children) and time.monotonic() < deadline:
        time.sleep(0.25)
    assert not _alive(children), f"survived the demo's SIGKILL: {[(p.pid, p.cmdline()) for p in _alive(children)]}"
