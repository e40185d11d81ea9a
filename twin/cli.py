"""`twin`: run the fleet twin and ask it questions.

    twin demo                  embedded stack + worker + simulator + live view, one command
    twin up / twin down        start / stop the embedded broker and database
    twin worker                one stream worker against the configured broker and database
    twin simulate              publish a simulated fleet and its telemetry
    twin racks / twin rack ID  the stored twins
    twin deadletters           bad input by reason; `replay` sends it through again
    twin collect redfish       poll BMCs, CDUs and rack PDUs (a targets file)
    twin topology ...          which racks a CDU or a power feed serves

Every address is a setting: TWIN_KAFKA_BOOTSTRAP, TWIN_DATABASE_URL (see `twin settings`).
"""

from __future__ import annotations

import json
import re
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any, Optional

import typer
from rich.console import Console
from rich.table import Table

from twin.collect.commands import collect_app
from twin.errors import TwinError
from twin.settings import Settings, get_settings
from twin.topology_commands import topology_app

app = typer.Typer(
    help="Run the fleet twin and ask it questions. Addresses come from TWIN_* settings (see `twin settings`).",
    epilog="Start with [bold]twin demo[/]. Step by step: [bold]twin up[/] (prints the exports), then "
           "[bold]twin worker[/] and [bold]twin simulate[/] in other terminals, then [bold]twin racks --stage active[/], "
           "[bold]twin rack RACK_ID --as-of 2026-10-01[/], [bold]twin capacity[/], [bold]twin deadletters[/].", no_args_is_help=True, rich_markup_mode="rich", pretty_exceptions_show_locals=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)
deadletters_app = typer.Typer(help="Bad input, recorded with its precise reason.", invoke_without_command=True)
intent_app = typer.Typer(help="Design intent per generation.", no_args_is_help=True)
app.add_typer(deadletters_app, name="deadletters")
app.add_typer(intent_app, name="intent")
app.add_typer(collect_app, name="collect")
app.add_typer(topology_app, name="topology")

console = Console()
err = Console(stderr=True)

StateDir = Annotated[
    Optional[Path],
    typer.Option("--state-dir", help="Where the embedded broker and database keep their state "
                 "[default: TWIN_STATE_DIR or the user's data directory]."),
]


@app.callback()
def _configure(
    log_level: Annotated[str, typer.Option(envvar="TWIN_LOG_LEVEL", help="debug, info, warning or error.")] = "warning",
) -> None:
    from twin.logs import configure

    try:
        configure(log_level)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--log-level") from None


def _settings(state_dir: Path | None = None) -> Settings:
    s = get_settings()
    return s.model_copy(update={"state_dir": state_dir}) if state_dir else s


def _fail(exc: Exception) -> None:
    err.print(f"[bold red]error:[/] {exc}")
    raise typer.Exit(2)


@app.command("settings")
def show_settings() -> None:
    """Print the effective settings (secrets redacted) and where each can be set."""
    for key, value in _settings().redacted().items():
        console.print(f"[bold]{key}[/] = {value}   [dim](TWIN_{key.upper()})[/]")


@app.command()
def migrate() -> None:
    """Create or upgrade the twin database schema (safe to run again)."""
    from twin.store.migrations import migrate as run

    try:
        applied = run(_settings().database_url.get_secret_value())
    except TwinError as exc:
        _fail(exc)
    console.print(f"applied {len(applied)} migration(s)" + "".join(f"\n  {m.version:04d} {m.name}" for m in applied))


@app.command()
def worker() -> None:
    """Run one stream worker (Faust) against TWIN_KAFKA_BOOTSTRAP and TWIN_DATABASE_URL.

    Start several: they share the partitions of one consumer group (TWIN_WORKER_ID).
    Metrics, /healthz and /readyz are served on TWIN_WORKER_WEB_PORT.
    """
    import sys

    sys.argv = [sys.argv[0], "worker"]
    from streams.app import main

    main()


def _fmt(value: Any, unit: str = "", digits: int = 1) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:,.{digits}f}{unit}"
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M:%S")
    return f"{value}{unit}"


@app.command()
def racks(
    facility: Annotated[Optional[str], typer.Option(help="Only racks in this facility id.")] = None,
    generation: Annotated[Optional[str], typer.Option(help="Only this generation, e.g. gen-b-200kw.")] = None,
    stage: Annotated[Optional[str], typer.Option(help="Only this lifecycle stage, e.g. active, installed.")] = None,
    limit: Annotated[int, typer.Option(min=1, max=100_000, help="At most this many racks.")] = 50,
    as_json: Annotated[bool, typer.Option("--json", help="JSON lines instead of a table.")] = False,
) -> None:
    """List stored rack twins, filtered by facility, generation and stage."""
    from twin.store import views

    try:
        with views.connect(_settings().database_url.get_secret_value()) as conn:
            rows = views.list_racks(conn, facility=facility, generation=generation, stage=stage, limit=limit)
    except TwinError as exc:
        _fail(exc)
    if as_json:
        for row in rows:
            print(json.dumps(row, default=str))
        return
    table = Table("rack", "generation", "stage", "facility/hall/row", "pos", "power kW", "inlet °C", "deviations",
                  "telemetry at", title=f"{len(rows)} rack(s)")
    for r in rows:
        place = "/".join(x for x in (r["facility_id"], r["hall_id"], r["row_id"]) if x) or "-"
        power = None if r["power_watts"] is None else r["power_watts"] / 1000
        table.add_row(r["rack_id"], r["generation"], r["status"], place, _fmt(r["position"]), _fmt(power),
                      _fmt(r["inlet_temperature_celsius"]), str(r["deviation_count"]), _fmt(r["telemetry_at"]))
    console.print(table)


@deadletters_app.callback()
def deadletters(
    ctx: typer.Context,
    reason: Annotated[Optional[str], typer.Option(help="Only this reason, e.g. out-of-physical-range.")] = None,
    limit: Annotated[int, typer.Option(min=1, max=10_000, help="Show at most this many letters.")] = 20,
) -> None:
    """Bad input by reason (open and replayed), then the latest letters with their precise reason."""
    if ctx.invoked_subcommand is not None:
        return
    from twin.store import views

    try:
        with views.connect(_settings().database_url.get_secret_value()) as conn:
            counts = views.deadletter_counts(conn)
            latest = conn.execute(
                "SELECT id, reason, topic, partition, \"offset\", idx, rack_id, detail, recorded_at FROM deadletters"
                " WHERE replayed_at IS NULL AND (%(r)s::text IS NULL OR reason = %(r)s) ORDER BY id DESC LIMIT %(n)s",
                {"r": reason, "n": limit},
            ).fetchall()
    except TwinError as exc:
        _fail(exc)
    table = Table("reason", "open", "replayed", "last seen", title="dead letters by reason")
    for row in counts:
        table.add_row(row["reason"], str(row["open"]), str(row["replayed"]), _fmt(row["last_seen"]))
    console.print(table)
    if latest:
        detail = Table("id", "reason", "from", "rack", "detail", title=f"latest {len(latest)} open")
        for row in latest:
            where = f"{row['topic']}[{row['partition']}]@{row['offset']}" + (f" #{row['idx']}" if row["idx"] >= 0 else "")
            detail.add_row(str(row["id"]), row["reason"], where, row["rack_id"] or "-", row["detail"])
        console.print(detail)


@deadletters_app.command("replay")
def deadletters_replay(
    reason: Annotated[Optional[list[str]], typer.Option(help="Only these reasons (repeat the option); default: all.")] = None,
    limit: Annotated[int, typer.Option(min=1, max=1_000_000, help="At most this many letters.")] = 10_000,
) -> None:
    """Send open dead letters through again after a fix (a new schema version, a registered rack).

    Each is marked replayed once the broker acknowledged it; one refused again gets a new letter.
    """
    from twin.store.deadletters import replay
    from twin.publisher import Publisher

    settings = _settings()
    try:
        with Publisher(settings.kafka_bootstrap, settings.topics) as publisher:
            sent = replay(settings.database_url.get_secret_value(), publisher, settings.topics,
                          reasons=reason or (), limit=limit)
    except TwinError as exc:
        _fail(exc)
    total = sum(sent.values())
    console.print(f"replayed {total} dead letter(s)" + "".join(f"\n  {k}: {v}" for k, v in sent.most_common()))


@app.command()
def up(state_dir: StateDir = None) -> None:
    """Start the embedded broker and database and keep them up until Ctrl-C or `twin down`.

    Prints the TWIN_* exports that point `twin worker`, `twin simulate` and the other
    commands at them.
    """
    import signal
    import threading

    from twin.store.migrations import migrate as run_migrations
    from twin.embedded.stack import EmbeddedStack
    from twin.store import forget_tracked_offsets

    settings = _settings(state_dir)
    stack = EmbeddedStack(settings.state_dir, topics=settings.topics)
    stopped = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stopped.set())
    try:
        stack.start()
        run_migrations(stack.database_url)
        forget_tracked_offsets(stack.database_url)
    except TwinError as exc:
        stack.stop()
        _fail(exc)
    console.print(f"[green]up[/]: broker {stack.kafka_bootstrap}, database {stack.database_url}")
    console.print(f"  export TWIN_KAFKA_BOOTSTRAP={stack.kafka_bootstrap}")
    console.print(f"  export TWIN_DATABASE_URL={stack.database_url}")
    console.print("[dim]Ctrl-C or `twin down` stops both.[/]")
    try:
        while not stopped.wait(0.5) and stack.running:
            pass
    finally:
        stack.stop()
    console.print("stopped")


@app.command()
def down(state_dir: StateDir = None) -> None:
    """Stop the embedded stack started by `twin up` (from any terminal)."""
    from twin.embedded.stack import stop_stack

    settings = _settings(state_dir)
    if stop_stack(settings.state_dir):
        console.print(f"stopped the stack in {settings.state_dir}")
    else:
        console.print(f"no stack was running in {settings.state_dir}")


def _intents(file: Path | None = None) -> dict[str, Any]:
    from twin.domain.intent import IntentCatalog

    catalog = IntentCatalog.from_json(file.read_bytes()) if file else IntentCatalog.default()
    return {generation: catalog.latest(generation) for generation in catalog.generations()}


@app.command()
def simulate(
    racks: Annotated[int, typer.Option(min=1, max=200_000, help="Fleet size.")] = 300,
    seed: Annotated[int, typer.Option(help="Same seed, same fleet, same bytes.")] = 7,
    interval: Annotated[float, typer.Option(min=0.01, help="Seconds between telemetry poll cycles.")] = 1.0,
    cycles: Annotated[Optional[int], typer.Option(min=0, help="Stop after this many cycles [default: run until Ctrl-C].")] = None,
    malformed_share: Annotated[float, typer.Option(min=0.0, max=1.0, help="Share of messages followed by bad input.")] = 0.0,
    faults: Annotated[bool, typer.Option(help="Plant hot racks, coolant flow loss, leaks, power over budget, stalled installs.")] = True,
    history: Annotated[bool, typer.Option(help="Publish facilities, intent and lifecycle histories first.")] = True,
    realtime: Annotated[bool, typer.Option(help="Pace cycles in real time (off: as fast as the broker takes them).")] = True,
) -> None:
    """Publish a simulated fleet to Kafka: facilities, intent, lifecycle histories, then telemetry reports."""
    import time
    from datetime import timezone

    from rich.progress import Progress

    from twin.publisher import Publisher
    from twin.embedded.simulator import FaultPlan, FleetSimulator

    settings = _settings()
    now = datetime.now(timezone.utc)
    sim = FleetSimulator(seed, racks, now, _intents(), faults=FaultPlan.typical() if faults else None,
                         malformed_share=malformed_share)
    try:
        with Publisher(settings.kafka_bootstrap, settings.topics) as publisher:
            if history:
                publisher.send_all(sim.reference_messages())
                with Progress(console=err, transient=True) as progress:
                    task = progress.add_task("lifecycle histories", total=None)
                    for message in sim.history_messages():
                        publisher.send(message)
                        progress.advance(task)
                publisher.flush()
                err.print(f"published {publisher.sent['intent']} reference and {publisher.sent['lifecycle']} lifecycle messages")
            n = 0
            next_at = time.monotonic()
            try:
                for _, messages in sim.cycles(interval, first=now, count=cycles):
                    publisher.send_all(messages)
                    n += 1
                    if realtime:
                        publisher.flush()
                        next_at += interval
                        time.sleep(max(0.0, next_at - time.monotonic()))
            except KeyboardInterrupt:
                pass
            publisher.flush()
            err.print(f"published {n} telemetry cycles ({publisher.sent['telemetry']} reports);"
                      f" bad input injected: {dict(sim.injected_bad) or 'none'}")
    except TwinError as exc:
        _fail(exc)


@app.command()
def demo(
    racks: Annotated[int, typer.Option(min=1, max=20_000, help="Fleet size to simulate.")] = 300,
    duration: Annotated[Optional[float], typer.Option(min=1, help="Stop after this many seconds [default: until Ctrl-C].")] = None,
    seed: Annotated[int, typer.Option(help="Seed of the simulated fleet.")] = 7,
    malformed_share: Annotated[float, typer.Option(min=0.0, max=1.0, help="Share of messages followed by bad input.")] = 0.01,
    keep_data: Annotated[bool, typer.Option(help="Keep the previous demo's database instead of starting empty.")] = False,
    redfish: Annotated[bool, typer.Option(help="Also poll a few racks over Redfish: sushy-static serving the DMTF "
                                          "BMC mockup and our CDU and PDU mockups (tests/data/redfish).")] = False,
    state_dir: StateDir = None,
) -> None:
    """Start everything (broker, database, worker, simulator) and watch the fleet live.

    Racks by facility and generation, their lifecycle stages, power against design budget,
    racks out of envelope, events per second and dead letters. Ctrl-C stops it all.
    Without a terminal it prints a summary line every few seconds instead.
    """
    from twin.demo import DemoOptions, run_demo

    code = run_demo(_settings(state_dir), _intents(), DemoOptions(racks=racks, seed=seed, duration_s=duration,
                    malformed_share=malformed_share, keep_data=keep_data, redfish=redfish), console)
    raise typer.Exit(code)


def _parse_instant(text: str) -> datetime:
    from datetime import timezone

    try:
        instant = datetime.fromisoformat(text)
    except ValueError:
        raise typer.BadParameter(f"{text!r} is not an ISO-8601 instant, e.g. 2027-03-01T12:00:00Z",
                                 param_hint="--as-of") from None
    return instant if instant.tzinfo else instant.replace(tzinfo=timezone.utc)


@app.command()
def rack(
    rack_id: Annotated[str, typer.Argument(help="The rack, e.g. dfw1-h1-r03-07.")],
    as_of: Annotated[Optional[str], typer.Option("--as-of", help="Show the rack as it was at this instant "
                                                 "(ISO 8601; UTC if no offset), rebuilt from its events.")] = None,
    history: Annotated[bool, typer.Option(help="Also list every event of the rack's stream.")] = False,
) -> None:
    """One rack: lifecycle with lead times, tests, components (onshore share, firmware drift), health, deviations."""
    from datetime import timezone

    from rich.panel import Panel

    from twin.store import views
    from twin.domain.components import firmware_drift, onshore_share
    from twin.domain.conformance import evaluate
    from twin.domain.lifecycle import lead_times
    from twin.domain.rack import RackTwin

    instant = _parse_instant(as_of) if as_of else None
    try:
        with views.connect(_settings().database_url.get_secret_value()) as conn:
            row = views.rack_detail(conn, rack_id)
            if row is None:
                _fail(TwinError(f"no rack {rack_id!r} in the twin (see `twin racks`)"))
            catalog = views.intent_catalog(conn)
            twin = views.rack_as_of(conn, rack_id, instant) if instant else RackTwin.from_snapshot(row["twin"])
    except TwinError as exc:
        _fail(exc)
    now = instant or datetime.now(timezone.utc)
    intent = catalog.as_of(twin.generation, now) if twin.generation else None
    place = "/".join(x for x in (twin.facility_id, twin.hall_id, twin.row_id) if x)
    title = f"[bold]{rack_id}[/]  {twin.generation or '?'}  [cyan]{twin.status.value}[/]" + (
        f"  [yellow](as of {now.isoformat()})[/]" if instant else "")
    facts = [f"place: {place or '-'}{f' position {twin.position}' if twin.position else ''}",
             f"serial: {twin.serial_number or '-'}  factory: {twin.factory or '-'}",
             f"stream version {row['stream_version']}, {twin.version} events folded"]
    if twin.status_reason:
        facts.append(f"reason: {twin.status_reason}")
    console.print(Panel("\n".join(facts), title=title, expand=False))

    stages = Table("stage", "entered", "left", "lead time", title="lifecycle")
    left = twin.stage_left_at
    spent = lead_times(twin, now)
    for stage, at in sorted(twin.stage_entered_at.items(), key=lambda kv: kv[1]):
        stages.add_row(stage.value, _fmt(at), _fmt(left.get(stage)) if stage is not twin.status else "(now)",
                       f"{spent[stage].total_seconds() / 86400:.1f} d" if stage in spent else "-")
    console.print(stages)

    if twin.tests:
        tests = Table("test", "result", "at", title="tests")
        for kind, result in twin.tests.items():
            tests.add_row(kind, "[green]passed[/]" if result.passed else "[red]failed[/]", _fmt(result.occurred_at))
        console.print(tests)

    parts = twin.bom
    counts = parts.count_by_kind()
    required = intent.required_components if intent else {}
    bom = Table("kind", "count", "required", title="components")
    for kind in sorted(set(counts) | set(required)):
        have, want = counts.get(kind, 0), required.get(kind)
        style = "" if want is None or have == want else "red"
        bom.add_row(kind, f"[{style}]{have}[/]" if style else str(have), "-" if want is None else str(want))
    console.print(bom)
    share = onshore_share(parts)
    if share.parts:
        console.print(f"onshore share (US-made power, cooling, cabling, networking): "
                      f"{share.by_count:.0%} by count, " + (f"{share.by_value:.0%} by value" if share.by_value is not None else "no value"))
    drift = firmware_drift(parts, intent.firmware_baseline) if intent else []
    if drift:
        console.print(f"[yellow]firmware drift[/]: " + ", ".join(f"{d.slot} {d.firmware_version} (baseline {d.baseline})"
                                                                  for d in drift))

    if not instant:
        health = row["health"] or {}
        if health:
            h = Table("subsystem", "state", "reason", title=f"health (readings at {_fmt(row['telemetry_at'])})")
            for sub in ("power", "cooling", "compute", "network"):
                state = health.get(sub, {})
                h.add_row(sub, state.get("state", "-"), state.get("reason", ""))
            console.print(h)
        if row["telemetry_at"] is not None:  # a quantity no source measured is null: shown as -
            kw = None if row["power_watts"] is None else row["power_watts"] / 1000
            console.print(f"power {_fmt(kw, ' kW')}, inlet {_fmt(row['inlet_temperature_celsius'], ' °C')}, "
                          f"coolant {_fmt(row['coolant_supply_temperature_celsius'])}→"
                          f"{_fmt(row['coolant_return_temperature_celsius'], ' °C')} "
                          f"at {_fmt(row['coolant_flow_liters_per_minute'], ' L/min', 0)}, hottest GPU "
                          f"{_fmt(row['hottest_accelerator_temperature_celsius'], ' °C', 0)}")
        deviations = row["deviations"]
    else:
        deviations = [
            {"check_name": d.check, "severity": d.severity, "measured": d.measured, "allowed_min": d.allowed_min,
             "allowed_max": d.allowed_max, "unit": d.unit, "intent_revision": d.intent_revision, "detail": d.detail}
            for d in (evaluate(twin, intent, now) if intent else []) if d.check not in ("telemetry-stale",)
        ]
    if deviations:
        dev = Table("check", "severity", "measured", "allowed", "intent rev", "detail", title="deviations from design intent")
        for d in deviations:
            allowed = f"{_fmt(d['allowed_min'])} … {_fmt(d['allowed_max'])}" + (f" {d['unit']}" if d["unit"] else "")
            sev = "[red]critical[/]" if d["severity"] == "critical" else "[yellow]warning[/]"
            dev.add_row(d["check_name"], sev, str(d["measured"]), allowed, str(d["intent_revision"]), d["detail"])
        console.print(dev)
    else:
        console.print("[green]conforms to its design intent[/]" if intent else "[dim]no design intent known[/]")
    if twin.rejected:
        rej = Table("event", "type", "reason", "detail", title="recently rejected events")
        for r in twin.rejected:
            rej.add_row(r.event_id[:8], r.type, r.reason, r.detail)
        console.print(rej)
    if history:
        events = Table("v", "type", "occurred at", "source", title="event history")
        for e in row["history"]:
            if instant is None or e["occurred_at"] <= instant:
                events.add_row(str(e["stream_version"]), e["type"], _fmt(e["occurred_at"]), e["source"])
        console.print(events)


@app.command("capacity")
def capacity_command(
    facility: Annotated[Optional[str], typer.Option(help="Only this facility id.")] = None,
    quarter: Annotated[Optional[str], typer.Option(help="Rollout quarter to compare against, e.g. 2027Q2 "
                                                   "[default: the current quarter].")] = None,
) -> None:
    """Site limits against what is placed (per row), and racks in service against the rollout plan."""
    from datetime import timezone

    from twin.store import views
    from twin.domain.fleet import quarter_of

    if quarter is not None and not re.fullmatch(r"20[2-3][0-9]Q[1-4]", quarter):
        raise typer.BadParameter(f"{quarter!r} is not a quarter like 2027Q2", param_hint="--quarter")
    quarter = quarter or quarter_of(datetime.now(timezone.utc))
    try:
        with views.connect(_settings().database_url.get_secret_value()) as conn:
            rows = views.capacity(conn, facility)
            plan = views.rollout_progress(conn, quarter)
    except TwinError as exc:
        _fail(exc)
    table = Table("facility", "operator", "hall/row", "racks / positions", "allocated kW / capacity kW",
                  "available kW", "drawn kW", title="power capacity by row (allocated = design budget of placed racks)")
    for r in rows:
        avail = r["available_power_watts"] / 1000
        table.add_row(r["facility_id"], r["operator"] + (" (partner)" if r["ownership"] == "partner" else ""),
                      f"{r['hall_id']}/{r['row_id']}", f"{r['racks']} / {r['positions']}",
                      f"{r['allocated_watts'] / 1000:,.0f} / {r['power_capacity_watts'] / 1000:,.0f}",
                      f"[red]{avail:,.0f}[/]" if avail < 0 else f"{avail:,.0f}", f"{r['drawn_watts'] / 1000:,.0f}")
    console.print(table)
    progress = Table("facility", "generation", "in service", "target", "vs plan", title=f"rollout plan, {quarter}")
    for p in plan:
        diff = p["difference"]
        progress.add_row(p["facility_id"], p["generation"], str(p["in_service"]), str(p["target"]),
                         f"[red]{diff}[/]" if diff < 0 else f"+{diff}")
    console.print(progress)


@app.command("rebuild")
def rebuild_command(
    write: Annotated[bool, typer.Option("--write", help="Replace the live lifecycle state with the rebuilt one "
                                        "(after a fix to the fold); default: only compare.")] = False,
) -> None:
    """Rebuild every rack twin from the event store and check it equals the live state.

    Exits 1 when a rebuilt twin differs from what the workers projected (and lists the racks).
    """
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    from twin.store.rebuild import rebuild

    with Progress(TextColumn("rebuilding twins"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                  console=err, transient=True) as bar:
        task = bar.add_task("rebuild", total=None)

        def advance(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total or None)

        try:
            result = rebuild(_settings().database_url.get_secret_value(), write=write, progress=advance)
        except TwinError as exc:
            _fail(exc)
    rate = result.events / result.seconds if result.seconds else 0.0
    console.print(f"rebuilt {result.racks:,} racks from {result.events:,} events in {result.seconds:.2f}s "
                  f"({rate:,.0f} events/s)")
    if result.equal:
        console.print("[green]every rebuilt twin equals the live state[/]")
        return
    for label, racks in (("differ from the live state", result.mismatched), ("have no live state", result.missing)):
        if racks:
            console.print(f"[red]{len(racks)} rack(s) {label}[/]: {', '.join(racks[:20])}"
                          + (" …" if len(racks) > 20 else ""))
    raise typer.Exit(0 if write else 1)


@intent_app.command("publish")
def intent_publish(
    file: Annotated[Path, typer.Argument(exists=True, dir_okay=False, readable=True,
                                         help="A catalog JSON: {\"intents\": [GenerationIntent, ...]} or a list.")],
    source: Annotated[str, typer.Option(help="Envelope source of the published events.")] = "design-intent",
) -> None:
    """Publish design-intent revisions from a file; workers re-judge every twin of a generation that gets a new revision."""
    import uuid
    from datetime import timezone

    from pydantic import ValidationError

    from schemas import IntentPublished
    from twin.domain.intent import IntentCatalog
    from twin.publisher import Publisher
    from twin.embedded.simulator import Message

    try:
        catalog = IntentCatalog.from_json(file.read_bytes())
    except (ValidationError, ValueError) as exc:
        _fail(TwinError(f"{file} is not a valid intent catalog: {exc}"))
    settings = _settings()
    now = datetime.now(timezone.utc)
    try:
        with Publisher(settings.kafka_bootstrap, settings.topics) as publisher:
            for seq, intent in enumerate(catalog, start=1):
                event = IntentPublished(
                    event_id=uuid.uuid5(uuid.NAMESPACE_URL, f"intent/{intent.generation}/{intent.revision}"),
                    occurred_at=now, source=source, seq=int(now.timestamp() * 1000) + seq, intent=intent)
                publisher.send(Message("intent", intent.generation.encode(), event.model_dump_json().encode()))
                console.print(f"published {intent.generation} revision {intent.revision}")
            publisher.flush()
    except TwinError as exc:
        _fail(exc)


def main() -> None:
    app()
