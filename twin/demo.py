"""`twin demo`: the whole product in one process tree, with a live view of the fleet.

    embedded stack (Tansu + PostgreSQL) ─▶ migrate ─▶ worker process (Faust) ─▶ simulator
                                                         │
                   live view (rich) ◀── views.fleet_summary + the worker's /metrics

Everything started here is a child that dies with us (`twin.embedded.stack.spawn_child`), and a
clean exit (Ctrl-C, `--duration`) stops the simulator, then the worker (which flushes its
batch), then the broker and the database.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import sys
import threading
import time
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import structlog
from rich.console import Console, Group
from rich.live import Live
from rich.table import Table
from rich.text import Text

from schemas import GenerationIntent
from twin.alerting.demo import AlertDrill, DemoAlerting
from twin.store import views
from twin.errors import StackError, TwinError
from twin.store.migrations import migrate
from twin.publisher import Publisher
from twin.settings import KafkaSecurity, Settings
from twin.embedded.simulator import FaultPlan, FleetSimulator
from twin.embedded.stack import EmbeddedStack, read_stack, spawn_child, stop_children
from twin.store import forget_tracked_offsets

__all__ = ["DemoOptions", "run_demo"]

log = structlog.get_logger(__name__)


@dataclass(frozen=True, slots=True)
class DemoOptions:
    racks: int = 300
    seed: int = 7
    interval_s: float = 1.0
    duration_s: float | None = None
    malformed_share: float = 0.01
    refresh_s: float = 1.0
    keep_data: bool = False


@dataclass(slots=True)
class _Rates:
    """Events per second from the worker's own counters (its /metrics), not from guesses."""

    url: str
    window_s: float = 5.0
    history: list[tuple[float, float, float]] = field(default_factory=list)
    messages_per_s: float = 0.0
    readings_per_s: float = 0.0
    peak_readings_per_s: float = 0.0
    samples: list[float] = field(default_factory=list)

    def sample(self) -> None:
        """Rates over the last few seconds (a poll cycle is one burst a second: smooth it)."""
        try:
            body = urllib.request.urlopen(self.url, timeout=0.5).read().decode()
        except OSError:
            return
        messages = sum(float(v) for v in re.findall(r'^twin_messages_in_total\{[^}]*\} (\S+)$', body, re.M))
        readings = sum(float(v) for v in re.findall(r'^twin_readings_in_total (\S+)$', body, re.M))
        now = time.monotonic()
        self.history.append((now, messages, readings))
        while len(self.history) > 2 and now - self.history[0][0] > self.window_s:
            self.history.pop(0)
        first = self.history[0]
        if now - first[0] >= 0.5:
            self.messages_per_s = (messages - first[1]) / (now - first[0])
            self.readings_per_s = (readings - first[2]) / (now - first[0])
            if self.readings_per_s > 0:
                self.samples.append(self.readings_per_s)
            self.peak_readings_per_s = max(self.peak_readings_per_s, self.readings_per_s)


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _feed(sim: FleetSimulator, publisher: Publisher, interval_s: float, stop: threading.Event,
          patch: Callable[[list[Any]], list[Any]] = list) -> None:
    """Publish reference data and histories, then one telemetry cycle per interval, in real time."""
    for message in sim.reference_messages():
        publisher.send(message)
    publisher.flush()
    for message in sim.history_messages():
        publisher.send(message)
    publisher.flush()
    next_at = time.monotonic()
    while not stop.is_set():
        for message in patch(sim.telemetry_messages(datetime.now(timezone.utc))):  # alert drill: transient leaks
            publisher.send(message)
        publisher.flush()
        next_at += interval_s
        stop.wait(max(0.0, next_at - time.monotonic()))


def _view(summary: views.FleetSummary | None, rates: _Rates, started: float, sim: FleetSimulator) -> Group:
    elapsed = time.monotonic() - started
    head = Text.assemble(
        ("fleet twin demo", "bold"), f"  {elapsed:5.0f}s  ",
        (f"{rates.messages_per_s:,.0f} msg/s  {rates.readings_per_s:,.0f} readings/s", "cyan"),
    )
    if summary is None:
        return Group(head, Text("waiting for the first racks…", style="dim"))
    head.append(f"  racks {summary.racks:,}  open deviations {summary.deviations:,}  ")
    head.append(f"dead letters {summary.deadletters:,}", style="yellow" if summary.deadletters else "")
    table = Table("facility", "operator", "generation", "racks", "by stage", "power kW / budget kW", "out of envelope",
                  expand=True)
    for g in summary.groups:
        stages = "  ".join(f"{k} {v}" for k, v in sorted(g["stages"].items(), key=lambda kv: -kv[1]))
        budget = g["budget_watts"] / 1000
        power = g["power_watts"] / 1000
        share = f" ({power / budget:.0%})" if budget else ""
        operator = g["operator"] or "-"
        if g["ownership"] == "partner":
            operator = f"[magenta]{operator}[/] (partner)"
        table.add_row(g["facility_id"], operator, g["generation"] or "-", str(g["racks"]), stages,
                      f"{power:,.0f} / {budget:,.0f}{share}",
                      f"[red]{g['out_of_envelope']}[/]" if g["out_of_envelope"] else "0")
    return Group(head, table)


def _summary_line(summary: views.FleetSummary | None, rates: _Rates, started: float) -> str:
    elapsed = time.monotonic() - started
    if summary is None:
        return f"[{elapsed:5.1f}s] waiting for the first racks"
    facilities = {g["facility_id"] for g in summary.groups if g["facility_id"] != "(not placed)"}
    generations = {g["generation"] for g in summary.groups if g["generation"]}
    return (f"[{elapsed:5.1f}s] racks={summary.racks} facilities={len(facilities)} generations={len(generations)}"
            f" readings/s={rates.readings_per_s:,.0f} msg/s={rates.messages_per_s:,.0f}"
            f" deviations={summary.deviations} deadletters={summary.deadletters}")


def run_demo(settings: Settings, intents: Mapping[str, GenerationIntent], options: DemoOptions,
             console: Console) -> int:
    """Run until Ctrl-C or `duration_s`; return the process exit code."""
    started = time.monotonic()
    state_dir = settings.state_dir / "demo"
    if not options.keep_data and read_stack(state_dir) is None:
        shutil.rmtree(state_dir, ignore_errors=True)  # each demo starts from an empty fleet
    state_dir.mkdir(parents=True, exist_ok=True)
    stop = threading.Event()
    children: dict[str, Any] = {}
    interrupted = False

    def _on_signal(signum: int, frame: object) -> None:
        nonlocal interrupted
        interrupted = True
        stop.set()

    previous = {s: signal.signal(s, _on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    stack = EmbeddedStack(state_dir, topics=settings.topics)
    feeder: threading.Thread | None = None
    publisher: Publisher | None = None
    alerting = DemoAlerting(state_dir, stack.log_dir)
    try:
        console.print(f"starting the embedded stack in {state_dir} …")
        stack.start()
        migrate(stack.database_url)
        forget_tracked_offsets(stack.database_url)  # a memory-only broker starts at offset 0 again
        web_port = _free_port()
        env = {**os.environ, "TWIN_KAFKA_BOOTSTRAP": stack.kafka_bootstrap, "TWIN_DATABASE_URL": stack.database_url,
               "TWIN_WORKER_WEB_PORT": str(web_port), "TWIN_STATE_DIR": str(state_dir)}
        children["worker"] = spawn_child([sys.executable, "-m", "streams", "worker"], env=env,
                                         log_path=stack.log_dir / "worker.log")
        console.print(f"worker started (log {stack.log_dir / 'worker.log'}, metrics http://127.0.0.1:{web_port}/metrics)")
        children["rollup"] = spawn_child([sys.executable, "-c", "from twin.cli import main; main()", "rollup"], env=env,
                                         log_path=stack.log_dir / "rollup.log")  # rollups for the dashboards
        sim = FleetSimulator(options.seed, options.racks, datetime.now(timezone.utc), intents,
                             faults=FaultPlan.typical(), malformed_share=options.malformed_share)
        alerting.start(env, children)  # the alert engine (and Alertmanager, when installed)
        console.print(f"alert engine started (log {stack.log_dir / 'alerts.log'}; {alerting.note})")
        publisher = Publisher(stack.kafka_bootstrap, settings.topics, security=KafkaSecurity.plaintext())
        feeder = threading.Thread(target=_feed, args=(sim, publisher, options.interval_s, stop,
                                                      AlertDrill(sim, seed=options.seed).patch), daemon=True,
                                  name="simulator")
        feeder.start()
        rates = _Rates(f"http://127.0.0.1:{web_port}/metrics")
        first_racks_at: float | None = None
        deadline = None if options.duration_s is None else started + options.duration_s
        with views.connect(stack.database_url) as conn:
            def summary() -> views.FleetSummary | None:
                s = views.fleet_summary(conn)
                return s if s.racks else None

            def tick(show: Callable[[views.FleetSummary | None], None]) -> None:
                nonlocal first_racks_at
                while not stop.is_set():
                    if children["worker"].poll() is not None:
                        raise StackError(f"the worker exited with {children['worker'].returncode};"
                                         f" see {stack.log_dir / 'worker.log'}")
                    rates.sample()
                    s = summary()
                    if s is not None and first_racks_at is None:
                        first_racks_at = time.monotonic() - started
                    show(s)
                    if deadline is not None and time.monotonic() >= deadline:
                        break
                    stop.wait(options.refresh_s)

            if console.is_terminal:
                with Live(console=console, refresh_per_second=4, transient=False) as live:
                    tick(lambda s: live.update(Group(_view(s, rates, started, sim), alerting.panel(conn))))
            else:
                last_print = 0.0

                def line(s: views.FleetSummary | None) -> None:
                    nonlocal last_print
                    if time.monotonic() - last_print >= 5:
                        last_print = time.monotonic()
                        print(_summary_line(s, rates, started) + " " + alerting.line(conn), flush=True)

                tick(line)
            final = summary()
        print(_summary_line(final, rates, started), flush=True)
        if first_racks_at is not None:
            console.print(f"first racks visible {first_racks_at:.1f}s after start;"
                          f" mean {sum(rates.samples) / max(1, len(rates.samples)):,.0f} readings/s,"
                          f" peak {rates.peak_readings_per_s:,.0f}")
        return 0  # Ctrl-C is how a demo is meant to end
    except TwinError as exc:
        console.print(f"[bold red]error:[/] {exc}")
        return 1
    finally:
        stop.set()
        if feeder is not None:
            feeder.join(timeout=5)
        if publisher is not None:
            publisher.close(timeout_s=2)
        stop_children(children)
        alerting.stop()
        stack.stop()
        for s, handler in previous.items():
            signal.signal(s, handler)
