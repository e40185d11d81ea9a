"""A local Prometheus Alertmanager for tests, the benchmark and the demo (Debian `prometheus-alertmanager`).

It runs the repository's own `deploy/alertmanager/alertmanager.yml` (routes, inhibit rules)
with every webhook receiver pointed at `webhook_url/<receiver name>` and the timings given,
on a loopback port with clustering off. The process dies with ours (`spawn_child`).
"""

from __future__ import annotations

import os
import shutil
import socket
import time
import urllib.request
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from twin.embedded.stack import spawn_child, stop_children
from twin.errors import StackError

__all__ = ["BINARIES", "DEPLOY_CONFIG", "FAST", "INSTALL_HINT", "LocalAlertmanager", "find_binary", "local_config"]

BINARIES = ("alertmanager", "prometheus-alertmanager")
DEPLOY_CONFIG = Path(__file__).resolve().parents[2] / "deploy" / "alertmanager" / "alertmanager.yml"
INSTALL_HINT = ("Alertmanager is not installed: run scripts/bootstrap (as root it installs the Debian package "
                "prometheus-alertmanager), or `apt-get install -y prometheus-alertmanager`")
FAST: Mapping[str, str] = {"group_wait": "100ms", "group_interval": "1s", "repeat_interval": "1h"}
"""Timings for tests and benchmarks: a new group is notified 100 ms after its first alert; a long
repeat interval, so a second notification of a group is a real change, never a reminder."""


def find_binary(name: str = "alertmanager") -> str | None:
    """The Alertmanager (or `amtool`) binary: on PATH, or where the Debian package puts it."""
    names = BINARIES if name == "alertmanager" else (name,)
    for candidate in names:
        found = shutil.which(candidate)
        if found:
            return found
        if os.access(f"/usr/bin/{candidate}", os.X_OK):
            return f"/usr/bin/{candidate}"
    return None


def local_config(webhook_url: str, timings: Mapping[str, str] = FAST, source: Path = DEPLOY_CONFIG
                 ) -> dict[str, Any]:
    """The deploy config with every receiver's webhook at `webhook_url/<receiver>` and `timings` set on
    the root route and wherever a child route overrides them."""
    config: dict[str, Any] = yaml.safe_load(source.read_text())
    for receiver in config["receivers"]:
        for hook in receiver.get("webhook_configs", []):
            hook["url"] = f"{webhook_url.rstrip('/')}/{receiver['name']}"

    def shorten(route: dict[str, Any], root: bool) -> None:
        for key, value in timings.items():
            if root or key in route:
                route[key] = value
        for child in route.get("routes", []):
            shorten(child, False)

    shorten(config["route"], True)
    return config


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class LocalAlertmanager:
    """`start()` it with a state directory; `url` is its base URL; `stop()` stops it by its PID."""

    def __init__(self, state_dir: Path, webhook_url: str, timings: Mapping[str, str] = FAST) -> None:
        self.state_dir = state_dir
        self.webhook_url = webhook_url
        self.timings = timings
        self.port = 0
        self._children: dict[str, Any] = {}

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def log_path(self) -> Path:
        return self.state_dir / "alertmanager.log"

    def start(self, timeout_s: float = 20) -> LocalAlertmanager:
        binary = find_binary()
        if binary is None:
            raise StackError(INSTALL_HINT)
        self.state_dir.mkdir(parents=True, exist_ok=True)
        config = self.state_dir / "alertmanager.yml"
        config.write_text(yaml.safe_dump(local_config(self.webhook_url, self.timings), sort_keys=False))
        self.port = _free_port()
        child = spawn_child([binary, f"--config.file={config}", f"--storage.path={self.state_dir / 'data'}",
                             f"--web.listen-address=127.0.0.1:{self.port}", "--cluster.listen-address=",
                             "--log.level=warn"], env=os.environ, log_path=self.log_path)
        self._children["alertmanager"] = child
        deadline = time.monotonic() + timeout_s
        while True:
            if child.poll() is not None:
                raise StackError(f"Alertmanager exited with {child.returncode}: {self.log_path.read_text()[-2000:]}")
            try:
                with urllib.request.urlopen(f"{self.url}/-/ready", timeout=1):
                    return self
            except OSError:
                if time.monotonic() > deadline:
                    self.stop()
                    raise StackError(f"Alertmanager did not become ready within {timeout_s:g} s") from None
                time.sleep(0.1)

    def stop(self) -> None:
        stop_children(self._children)
        self._children.clear()

    def __enter__(self) -> LocalAlertmanager:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
