"""Running the twin: `twin up`/`down` (embedded broker and database), `twin worker`, `twin simulate`, `twin demo`."""

from __future__ import annotations

from datetime import datetime, timezone
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from twin.commands import RUN, StateDir, console, err, fail, settings
from twin.errors import TwinError

app = typer.Typer()


@app.command(rich_help_panel=RUN)
def demo(
    racks: Annotated[int, typer.Option(min=1, max=20_000, help="Fleet size to simulate.")] = 300,
    duration: Annotated[Optional[float], typer.Option(min=1, help="Stop after this many seconds.",
                                                      show_default="until Ctrl-C")] = None,
    seed: Annotated[int, typer.Option(help="Seed of the simulated fleet.")] = 7,
    malformed_share: Annotated[float, typer.Option(min=0.0, max=1.0, help="Share of messages followed by bad input.")] = 0.01,
    keep_data: Annotated[bool, typer.Option("--keep-data", help="Keep the previous demo's database instead of "
                                            "starting empty.")] = False,
    state_dir: StateDir = None,
) -> None:
    """Start everything (broker, database, worker, simulator) and watch the fleet live.

    Racks by facility and generation, their lifecycle stages, power against design budget,
    racks out of envelope, events per second and dead letters. Ctrl-C stops it all.
    Without a terminal it prints a summary line every few seconds instead. Its data lives in
    STATE_DIR/demo; `twin clean` removes it.
    """
    from twin.demo import DemoOptions, run_demo

    code = run_demo(settings(state_dir), intents(), DemoOptions(racks=racks, seed=seed, duration_s=duration,
                    malformed_share=malformed_share, keep_data=keep_data), console)
    raise typer.Exit(code)


@app.command(rich_help_panel=RUN)
def up(state_dir: StateDir = None) -> None:
    """Start the embedded broker and database and keep them up until Ctrl-C or `twin down`.

    `twin worker`, `twin simulate` and the other commands find this stack by themselves
    (from its state file) when no TWIN_KAFKA_BOOTSTRAP or TWIN_DATABASE_URL is set; the
    printed exports are for other tools, or for a stack under another --state-dir.
    """
    import signal
    import threading

    from twin.embedded.stack import EmbeddedStack
    from twin.store import forget_tracked_offsets
    from twin.store.migrations import migrate as run_migrations

    s = settings(state_dir)
    stack = EmbeddedStack(s.state_dir, topics=s.topics)
    stopped = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stopped.set())
    try:
        stack.start()
        run_migrations(stack.database_url)
        forget_tracked_offsets(stack.database_url)
    except TwinError as exc:
        stack.stop()
        fail(exc)
    console.print(f"[green]up[/]: broker {stack.kafka_bootstrap}, database {stack.database_url}")
    console.print(f"  export TWIN_KAFKA_BOOTSTRAP={stack.kafka_bootstrap}")
    console.print(f"  export TWIN_DATABASE_URL={stack.database_url}")
    console.print(f"[dim]twin commands find this stack by themselves (state in {s.state_dir}"
                  + ("" if state_dir is None else "; set TWIN_STATE_DIR to it") + "). Ctrl-C or `twin down` stops both.[/]",
                  soft_wrap=True)
    try:
        while not stopped.wait(0.5) and stack.running:
            pass
    finally:
        stack.stop()
    console.print("stopped")


@app.command(rich_help_panel=RUN)
def down(state_dir: StateDir = None) -> None:
    """Stop the embedded stack started by `twin up` (from any terminal)."""
    from twin.embedded.stack import stop_stack

    s = settings(state_dir)
    if stop_stack(s.state_dir):
        console.print(f"stopped the stack in {s.state_dir}")
    else:
        console.print(f"no stack was running in {s.state_dir}")


@app.command(rich_help_panel=RUN)
def worker() -> None:
    """Run one stream worker (Faust) against TWIN_KAFKA_BOOTSTRAP and TWIN_DATABASE_URL.

    Start several: they share the partitions of one consumer group (TWIN_WORKER_ID).
    Metrics, /healthz and /readyz are served on TWIN_WORKER_WEB_PORT.
    """
    import sys

    settings()  # a bad TWIN_* value: one line, before the app is built from it
    sys.argv = [sys.argv[0], "worker"]
    from streams.app import main

    main()


def intents(file: Path | None = None) -> dict[str, Any]:
    """The latest design intent of each generation, from `file` or the built-in catalog."""
    from twin.domain.intent import IntentCatalog

    catalog = IntentCatalog.from_json(file.read_bytes()) if file else IntentCatalog.default()
    return {generation: catalog.latest(generation) for generation in catalog.generations()}


def _counts(counter: Any) -> str:
    return ", ".join(f"{k} {v:,}" for k, v in sorted(counter.items())) if counter else "none"


class ReportShapeChoice(StrEnum):
    """How the simulator groups readings into telemetry reports (`FleetSimulator.report_shape`)."""

    collector = "collector"
    row = "row"


@app.command(rich_help_panel=RUN)
def simulate(
    racks: Annotated[int, typer.Option(min=1, max=200_000, help="Fleet size.")] = 300,
    seed: Annotated[int, typer.Option(help="Same seed, same fleet, same bytes.")] = 7,
    interval: Annotated[float, typer.Option(min=0.01, help="Seconds between telemetry poll cycles.")] = 1.0,
    cycles: Annotated[Optional[int], typer.Option(min=0, help="Stop after this many telemetry cycles.",
                                                  show_default="until Ctrl-C")] = None,
    malformed_share: Annotated[float, typer.Option(min=0.0, max=1.0, help="Share of messages followed by bad input.")] = 0.0,
    faults: Annotated[bool, typer.Option(help="Plant hot racks, coolant flow loss, leaks, power over budget, "
                                         "stalled installs.")] = True,
    history: Annotated[bool, typer.Option(help="Publish facilities, intent and lifecycle histories first.")] = True,
    realtime: Annotated[bool, typer.Option(help="Pace cycles in real time (off: as fast as the broker takes them).")] = True,
    report_shape: Annotated[ReportShapeChoice, typer.Option(
                                              help="collector: one report per hall collector per cycle (up to 50 "
                                                   "readings, the fleet's shape); row: one per row (about 7).")] = ReportShapeChoice.collector,
) -> None:
    """Publish a simulated fleet to Kafka: facilities, intent, lifecycle histories, then telemetry reports.

    Shows its progress on a terminal and ends with one summary line of what it published.
    """
    import time

    from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    from twin.embedded.simulator import FaultPlan, FleetSimulator
    from twin.publisher import Publisher

    s = settings()
    now = datetime.now(timezone.utc)
    sim = FleetSimulator(seed, racks, now, intents(), faults=FaultPlan.typical() if faults else None,
                         malformed_share=malformed_share, report_shape=report_shape.value)  # type: ignore[arg-type]
    n = 0
    started = time.monotonic()
    try:
        with Publisher(s.kafka_bootstrap, s.topics) as publisher, Progress(
            SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
            TextColumn("{task.fields[note]}"), TimeElapsedColumn(), console=err, transient=True,
        ) as progress:
            if history:
                publisher.send_all(sim.reference_messages())
                task = progress.add_task("lifecycle histories", total=None, note="")
                for message in sim.history_messages():
                    publisher.send(message)
                    progress.update(task, advance=1, note=f"{publisher.sent['lifecycle']:,} lifecycle events")
                publisher.flush()
                progress.remove_task(task)
            task = progress.add_task("telemetry cycles", total=cycles, note="")
            next_at = time.monotonic()
            try:
                for _, messages in sim.cycles(interval, first=now, count=cycles):
                    publisher.send_all(messages)
                    n += 1
                    progress.update(task, advance=1, note=f"{publisher.sent['telemetry']:,} reports")
                    if realtime:
                        publisher.flush()
                        next_at += interval
                        time.sleep(max(0.0, next_at - time.monotonic()))
            except KeyboardInterrupt:
                pass
            publisher.flush()
            sent = publisher.sent
    except TwinError as exc:
        fail(exc)
    bad = sum(sim.injected_bad.values())
    console.print(f"published {racks:,} racks in {time.monotonic() - started:.1f}s: {sent['intent']:,} reference, "
                  f"{sent['lifecycle']:,} lifecycle and {sent['telemetry']:,} telemetry messages ({n:,} cycles); "
                  f"bad input injected: {bad:,}" + (f" ({_counts(sim.injected_bad)})" if bad else ""),
                  highlight=False)
