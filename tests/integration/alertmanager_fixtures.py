"""Session fixtures of the alerting tests (imported by them: a conftest here would shadow tests/conftest.py
for the tests that import `Tenant` from it): ONE real Alertmanager on loopback, and the test's own
webhook receiver it notifies.

The Alertmanager runs `deploy/alertmanager/alertmanager.yml` itself (routes, inhibit rules),
with every receiver's URL pointed at the webhook below (`/<receiver name>`) and the timings
shortened so a notification comes within a second or two. It is the Debian package
`prometheus-alertmanager` (`scripts/bootstrap` installs it); a missing binary fails the tests
that need it with a message saying so, never skips them.
"""

from __future__ import annotations

import json
import shutil
import tempfile
import threading
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from twin.embedded.alertmanager import DEPLOY_CONFIG, FAST, INSTALL_HINT, LocalAlertmanager, find_binary
from twin.errors import StackError

TIMINGS = {**FAST, "group_wait": "1s"}
"""FAST, but a new group waits 1 s: Alertmanager's inhibitor learns of a source alert asynchronously,
and on a loaded machine 100 ms was seen to be too short for it (production waits 10-30 s)."""

__all__ = ["DEPLOY_CONFIG", "Notification", "RunningAlertmanager", "Webhook", "amtool_binary"]


def amtool_binary() -> str:
    found = find_binary("amtool")
    if not found:
        pytest.fail(INSTALL_HINT.replace("Alertmanager is", "amtool (from prometheus-alertmanager) is"),
                    pytrace=False)
    return found


@dataclass
class Notification:
    receiver: str
    body: dict[str, Any]
    at: float

    @property
    def alerts(self) -> list[dict[str, Any]]:
        return self.body.get("alerts", [])  # type: ignore[no-any-return]  # a PagerDuty event has none


@dataclass
class Webhook:
    """Every notification Alertmanager sent, in arrival order (with the monotonic time it came)."""

    url: str
    received: list[Notification] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    arrived: threading.Condition = field(init=False)

    def __post_init__(self) -> None:
        self.arrived = threading.Condition(self.lock)

    def add(self, n: Notification) -> None:
        with self.arrived:
            self.received.append(n)
            self.arrived.notify_all()

    def about(self, **labels: str) -> list[Notification]:
        """Notifications holding at least one alert with all of these labels."""
        with self.lock:
            return [n for n in self.received
                    if any(all(a["labels"].get(k) == v for k, v in labels.items()) for a in n.alerts)]

    def alerts(self, status: str | None = None, **labels: str) -> list[tuple[Notification, dict[str, Any]]]:
        """(notification, alert) pairs whose alert has these labels (and this status)."""
        return [(n, a) for n in self.about(**labels) for a in n.alerts
                if all(a["labels"].get(k) == v for k, v in labels.items()) and (status is None or a["status"] == status)]

    def wait_for(self, predicate: Any, timeout: float = 15.0) -> Any:
        deadline = time.monotonic() + timeout
        with self.arrived:
            while True:
                self.lock.release()
                try:
                    found = predicate()
                finally:
                    self.lock.acquire()
                if found:
                    return found
                left = deadline - time.monotonic()
                if left <= 0:
                    return found
                self.arrived.wait(min(left, 0.2))


@dataclass(frozen=True)
class RunningAlertmanager:
    url: str
    config_path: Path
    webhook: Webhook

    def api(self, path: str) -> Any:
        with urllib.request.urlopen(f"{self.url}/api/v2{path}", timeout=5) as response:
            return json.load(response)


@pytest.fixture(scope="session")
def webhook() -> Iterator[Webhook]:
    """The test's own receiver: a tiny HTTP server in the test process that records each POST."""
    holder: dict[str, Webhook] = {}

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 - http.server's name
            body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))))
            holder["hook"].add(Notification(self.path.strip("/"), body, time.monotonic()))
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    holder["hook"] = Webhook(f"http://127.0.0.1:{server.server_address[1]}")
    thread = threading.Thread(target=server.serve_forever, name="webhook", daemon=True)
    thread.start()
    try:
        yield holder["hook"]
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture(scope="session")
def alertmanager(webhook: Webhook) -> Iterator[RunningAlertmanager]:
    """One Alertmanager for the session (twin.embedded.alertmanager): the deploy config, receivers at
    the webhook, short timings, loopback, clustering off; stopped by its PID at the end."""
    if find_binary() is None:
        pytest.fail(INSTALL_HINT, pytrace=False)
    state = Path(tempfile.mkdtemp(prefix="twin-test-alertmanager-"))
    local = LocalAlertmanager(state, webhook.url, TIMINGS)
    try:
        local.start()
    except StackError as exc:
        shutil.rmtree(state, ignore_errors=True)
        pytest.fail(str(exc), pytrace=False)
    try:
        yield RunningAlertmanager(local.url, state / "alertmanager.yml", webhook)
    finally:
        local.stop()
        shutil.rmtree(state, ignore_errors=True)
