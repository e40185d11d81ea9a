"""Alerting in `twin demo`: the engine as one more child, an alert drill, and a panel for the live view.

Why a drill: the simulator's planted faults last the whole demo, so their alerts fire and stay.
To show alerts *resolving* as well, the drill plants a transient leak in one healthy powered rack
every `every_s` seconds and lifts it `hold_s` later (readings are patched on their way to the
broker, as a sensor would trip and reset). Alertmanager is optional: when the Debian package is
installed the demo starts one (the deploy config, receivers at a page counter in this process);
without it the engine keeps its history and the panel shows it all the same.
"""

from __future__ import annotations

import json
import random
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import orjson
import psycopg
from psycopg.rows import tuple_row
from rich.console import Group
from rich.table import Table
from rich.text import Text

from twin.embedded.alertmanager import LocalAlertmanager, find_binary
from twin.embedded.simulator import FleetSimulator
from twin.messages import Message
from twin.embedded.stack import spawn_child
from twin.errors import StackError

__all__ = ["AlertDrill", "DemoAlerting"]

FOR_SCALE = 0.2
"""The demo shortens every for-duration to a fifth, so a 60 s rule fires within a demo minute."""


class AlertDrill:
    """Transient leaks in healthy racks: planted every `every_s`, lifted after `hold_s`."""

    def __init__(self, sim: FleetSimulator, *, every_s: float = 20.0, hold_s: float = 12.0, seed: int = 7) -> None:
        self.candidates = [r.rack_id for r in sim.powered_racks if r.fault is None]
        self.every_s, self.hold_s = every_s, hold_s
        self.rng = random.Random(seed)
        self.leaking: dict[str, float] = {}
        self._next = time.monotonic() + every_s / 2
        self.lock = threading.Lock()

    def patch(self, messages: Sequence[Message]) -> list[Message]:
        """The cycle's messages with the drill's leaks set in their racks' readings."""
        now = time.monotonic()
        with self.lock:
            for rack, until in list(self.leaking.items()):
                if now >= until:
                    del self.leaking[rack]
            if now >= self._next and self.candidates:
                self.leaking[self.rng.choice(self.candidates)] = now + self.hold_s
                self._next = now + self.every_s
            leaking = set(self.leaking)
        if not leaking:
            return list(messages)
        out = []
        for m in messages:
            if m.role == "telemetry" and any(r.encode() in m.value for r in leaking):
                try:
                    body = orjson.loads(m.value)
                    for reading in body.get("readings", ()):
                        if reading.get("rack_id") in leaking:
                            reading["leak_detected"] = True
                    m = m._replace(value=orjson.dumps(body))
                except (orjson.JSONDecodeError, AttributeError, TypeError):
                    pass  # the simulator's deliberately bad input stays as bad as it was
            out.append(m)
        return out


class _PageCounter:
    """The demo's receiver of Alertmanager's notifications: counts firing and resolved alerts."""

    def __init__(self) -> None:
        self.firing = self.resolved = 0
        counter = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))))
                for a in body.get("alerts", ()):
                    if a.get("status") == "firing":
                        counter.firing += 1
                    else:
                        counter.resolved += 1
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True, name="pages").start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class DemoAlerting:
    """Start the engine (and Alertmanager, when installed); render the alerts for the live view."""

    def __init__(self, state_dir: Path, log_dir: Path) -> None:
        self.state_dir, self.log_dir = state_dir, log_dir
        self.alertmanager: LocalAlertmanager | None = None
        self.pages: _PageCounter | None = None
        self.note = ""

    def start(self, env: Mapping[str, str], children: dict[str, Any]) -> None:
        """Add the engine to `children` (stopped with the others); the env of the demo's worker."""
        engine_env = {**env, "TWIN_ALERT_FOR_SCALE": str(FOR_SCALE), "TWIN_ALERTMANAGER_URL": ""}
        if find_binary() is not None:
            self.pages = _PageCounter()
            try:
                self.alertmanager = LocalAlertmanager(self.state_dir / "alertmanager", self.pages.url).start(60)
                engine_env["TWIN_ALERTMANAGER_URL"] = self.alertmanager.url
                self.note = f"Alertmanager {self.alertmanager.url}"
            except StackError as exc:
                self.note = f"Alertmanager did not start ({exc}); alert history only"
                self.alertmanager = None
        else:
            self.note = "Alertmanager not installed: alert history only"
        children["alerts"] = spawn_child([sys.executable, "-m", "twin.alerting"], env=engine_env,
                                         log_path=self.log_dir / "alerts.log")

    def stop(self) -> None:
        if self.alertmanager is not None:
            self.alertmanager.stop()
        if self.pages is not None:
            self.pages.close()

    def _read(self, conn: psycopg.Connection[Any]) -> tuple[dict[str, int], int, list[dict[str, Any]]]:
        try:
            cur = conn.cursor(row_factory=tuple_row)  # whatever rows the demo's connection makes
            counts = dict(cur.execute("SELECT phase, count(*) FROM alert_state GROUP BY 1").fetchall())
            critical = cur.execute("SELECT count(*) FROM alert_state WHERE phase = 'firing'"
                                   " AND labels->>'severity' = 'critical'").fetchone()
            latest = cur.execute(
                "SELECT at, rule, coalesce(rack_id, split_part(alert_key, '/', 2)) AS subject, previous, phase,"
                " annotations->>'measured' AS measured, annotations->>'band' AS band FROM alert_history"
                " WHERE phase IN ('firing', 'resolved', 'suppressed') ORDER BY id DESC LIMIT 8").fetchall()
        except psycopg.Error:
            return {}, 0, []
        rows = [dict(zip(("at", "rule", "subject", "previous", "phase", "measured", "band"), r, strict=True))
                for r in latest]
        return {str(k): int(v) for k, v in counts.items()}, int(critical[0]) if critical else 0, rows

    def line(self, conn: psycopg.Connection[Any]) -> str:
        counts, critical, rows = self._read(conn)
        resolved = sum(1 for r in rows if r["phase"] == "resolved")
        return (f"alerts firing={counts.get('firing', 0)} critical={critical} pending={counts.get('pending', 0)}"
                f" suppressed={counts.get('suppressed', 0)} resolved(latest 8)={resolved}"
                + (f" pages={self.pages.firing}/{self.pages.resolved}" if self.pages else ""))

    def panel(self, conn: psycopg.Connection[Any]) -> Group:
        counts, critical, rows = self._read(conn)
        head = Text.assemble(("alerts ", "bold"), (f"firing {counts.get('firing', 0)}", "red" if critical else ""),
                             f" ({critical} critical)  pending {counts.get('pending', 0)}  "
                             f"suppressed by stage {counts.get('suppressed', 0)}")
        if self.pages is not None:
            head.append(f"  notifications: {self.pages.firing} firing, {self.pages.resolved} resolved")
        head.append(f"   [{self.note}; for-durations x{FOR_SCALE:g}]", style="dim")
        table = Table("at", "alert", "rack / place", "change", "measured", "design band", expand=True)
        for r in rows:
            colour = {"firing": "red", "resolved": "green"}.get(r["phase"], "yellow")
            table.add_row(r["at"].strftime("%H:%M:%S"), r["rule"], r["subject"],
                          f"{r['previous'] or 'new'} → [{colour}]{r['phase']}[/]", r["measured"] or "-",
                          r["band"] or "-")
        return Group(head, table)
