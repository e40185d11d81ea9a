"""Session fixtures of the alerting tests: ONE real Alertmanager on loopback, and the test's own
webhook receiver it notifies.

The Alertmanager runs `deploy/alertmanager/alertmanager.yml` itself (routes, inhibit rules),
with every receiver's URL pointed at the webhook below (`/<receiver name>`) and the timings
shortened so a notification comes within a second. It is the Debian package
`prometheus-alertmanager` (`scripts/bootstrap` installs it); a missing binary fails the tests
that need it with a message saying so, never skips them.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
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
import yaml

ROOT = Path(__file__).resolve().parents[2]
DEPLOY_CONFIG = ROOT / "deploy" / "alertmanager" / "alertmanager.yml"
BINARIES = ("alertmanager", "prometheus-alertmanager")
INSTALL_HINT = ("Alertmanager is not installed: run scripts/bootstrap (it installs the Debian package "
                "prometheus-alertmanager as root), or `apt-get install -y prometheus-alertmanager`")
TIMINGS = {"group_wait": "100ms", "group_interval": "1s", "repeat_interval": "1h"}
"""Short enough for tests; repeat_interval long, so any second notification of a group is a real one."""


def alertmanager_binary() -> str:
    for name in BINARIES:
        found = shutil.which(name) or (f"/usr/bin/{name}" if os.access(f"/usr/bin/{name}", os.X_OK) else None)
        if found:
            return found
    pytest.fail(INSTALL_HINT, pytrace=False)


def amtool_binary() -> str:
    found = shutil.which("amtool") or ("/usr/bin/amtool" if os.access("/usr/bin/amtool", os.X_OK) else None)
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
        return self.body["alerts"]  # type: ignore[no-any-return]


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


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


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


def test_config(webhook_url: str) -> dict[str, Any]:
    """The deploy config with every receiver pointed at `webhook_url/<receiver>` and short timings."""
    config = yaml.safe_load(DEPLOY_CONFIG.read_text())
    for receiver in config["receivers"]:
        for hook in receiver.get("webhook_configs", []):
            hook["url"] = f"{webhook_url}/{receiver['name']}"

    def shorten(route: dict[str, Any]) -> None:
        for key, value in TIMINGS.items():
            if key in route or route is config["route"]:
                route[key] = value
        for child in route.get("routes", []):
            shorten(child)

    shorten(config["route"])
    return config


test_config.__test__ = False  # type: ignore[attr-defined]  # a helper, not a test


@pytest.fixture(scope="session")
def alertmanager(webhook: Webhook) -> Iterator[RunningAlertmanager]:
    """One Alertmanager for the session, on a loopback port, clustering off; stopped by its PID."""
    binary = alertmanager_binary()
    state = Path(tempfile.mkdtemp(prefix="twin-test-alertmanager-"))
    config_path = state / "alertmanager.yml"
    config_path.write_text(yaml.safe_dump(test_config(webhook.url), sort_keys=False))
    port = _free_port()
    log = (state / "alertmanager.log").open("wb")
    process = subprocess.Popen(
        [binary, f"--config.file={config_path}", f"--storage.path={state / 'data'}",
         f"--web.listen-address=127.0.0.1:{port}", "--cluster.listen-address=", "--log.level=warn"],
        stdout=log, stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 20
        while True:
            if process.poll() is not None:
                pytest.fail(f"Alertmanager exited with {process.returncode}: "
                            f"{(state / 'alertmanager.log').read_text()[-2000:]}", pytrace=False)
            try:
                with urllib.request.urlopen(f"{url}/-/ready", timeout=1):
                    break
            except OSError:
                if time.monotonic() > deadline:
                    pytest.fail("Alertmanager did not become ready within 20 s", pytrace=False)
                time.sleep(0.1)
        yield RunningAlertmanager(url, config_path, webhook)
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()
        shutil.rmtree(state, ignore_errors=True)
