"""Start a real `twin worker` process for a test tenant, and wait on what it writes."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import psycopg

T = TypeVar("T")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def running_worker(env: dict[str, str], log_path: Path) -> Iterator[subprocess.Popen[bytes]]:
    """A worker process (SIGTERM-stopped at the end; its log is printed if it died)."""
    port = free_port()
    with log_path.open("wb") as log:
        proc = subprocess.Popen([sys.executable, "-m", "streams", "worker"], env={**env, "TWIN_WORKER_WEB_PORT": str(port)},
                                stdout=log, stderr=subprocess.STDOUT)
    proc.web_port = port  # type: ignore[attr-defined]
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def metrics(proc: subprocess.Popen[bytes]) -> str:
    return urllib.request.urlopen(f"http://127.0.0.1:{proc.web_port}/metrics", timeout=2).read().decode()  # type: ignore[attr-defined]


def wait_for(what: str, probe: Callable[[], T], ok: Callable[[T], bool], *, timeout: float = 60.0,
             log_path: Path | None = None, proc: subprocess.Popen[bytes] | None = None) -> T:
    """Poll `probe` until `ok(value)`; fail with the last value (and the worker's log) on timeout."""
    deadline = time.monotonic() + timeout
    value = probe()
    while not ok(value):
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"worker exited with {proc.returncode} while waiting for {what}:\n"
                                 + (log_path.read_text()[-4000:] if log_path else ""))
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}; last value {value!r}\n"
                                 + (log_path.read_text()[-4000:] if log_path else ""))
        time.sleep(0.25)
        value = probe()
    return value


def query(database_url: str, sql: str, params: Any = None) -> list[tuple[Any, ...]]:
    with psycopg.connect(database_url, autocommit=True) as conn:
        return conn.execute(sql, params).fetchall()


def scalar(database_url: str, sql: str, params: Any = None) -> Any:
    return query(database_url, sql, params)[0][0]
