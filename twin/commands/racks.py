"""`twin racks` (which racks match) and `twin rack ID` (one rack in full, now or as of an instant)."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Annotated, Any, Optional

import typer
from rich.markup import escape
from rich.panel import Panel

from twin.commands import ASK, console, fail, freshness_line
from twin.commands.answers import answers
from twin.domain.vocabulary import HEALTH_STATES, STAGES
from twin.output import AsCsv, AsJson, Column, Format, emit, emit_json, human, output_format, rfc3339

app = typer.Typer()


def _kw(value: Any) -> float | None:
    return None if value is None else value / 1000


def _place(row: dict[str, Any]) -> str:
    return "/".join(x for x in (row.get("facility_id"), row.get("hall_id"), row.get("row_id")) if x) or "-"


_HEALTH_STYLE = {"critical": "red", "warning": "yellow", "ok": "green"}


def _share(value: Any) -> str:
    return "-" if value is None else f"{value:.0%}"


RACK_COLUMNS = (
    Column.of("rack_id", "rack", key=True),
    Column.of("generation", key=True),
    Column.of("stage"),
    Column("facility/hall/row", _place),
    Column.of("position", "pos", justify="right"),
    Column("power kW", lambda r: _kw(r["power_watts"]), justify="right"),
    Column.of("health", style=lambda r: _HEALTH_STYLE.get(r["health"] or "")),
    Column.of("deviation_count", "deviations", justify="right"),
    Column.of("onshore_share", "onshore", text=_share, justify="right"),
    Column.of("telemetry_at", "telemetry at", key=True),
)
"""The CSV of `twin racks` has the same columns, with power in kW; `--json` is the API's RackPage (watts)."""

PAGE = 1000
"""Racks per query page (the most one API page holds)."""


def fetch_racks(source: Any, limit: int, **filters: Any) -> Any:
    """Up to `limit` racks matching `filters`, page after page, as one RackPage."""
    racks: list[Any] = []
    cursor = None
    while True:
        page = source.racks(limit=min(PAGE, limit - len(racks)), cursor=cursor, **filters)
        racks.extend(page.racks)
        cursor = page.next_cursor
        if cursor is None or len(racks) >= limit:
            return page.model_copy(update={"racks": racks, "next_cursor": cursor})


@app.command(rich_help_panel=ASK)
def racks(
    facility: Annotated[Optional[str], typer.Option(help="Only racks in this facility, e.g. dfw1.")] = None,
    generation: Annotated[Optional[str], typer.Option(help="Only this generation, e.g. gen-b-200kw.")] = None,
    stage: Annotated[Optional[str], typer.Option(help=f"Only this lifecycle stage: {', '.join(STAGES)}.")] = None,
    health: Annotated[Optional[str], typer.Option(
        help=f"Only racks whose worst subsystem is in this state: {', '.join(HEALTH_STATES)}.")] = None,
    deviation: Annotated[Optional[str], typer.Option(
        help="Only racks with an open deviation of this check, e.g. power-over-budget or leak-detected.")] = None,
    stalled: Annotated[Optional[bool], typer.Option(
        "--stalled/--not-stalled", help="Only racks longer in their stage than allowed (or only the others).",
        show_default=False)] = None,
    firmware_drift: Annotated[Optional[bool], typer.Option(
        "--firmware-drift/--no-firmware-drift", help="Only racks with parts off the firmware baseline (or without).",
        show_default=False)] = None,
    onshore_below: Annotated[Optional[float], typer.Option(
        min=0.0, max=1.0, help="Only racks whose onshore share by part count is below this, e.g. 0.5.")] = None,
    limit: Annotated[int, typer.Option(min=1, max=100_000, help="Show at most this many racks.")] = 50,
    as_json: AsJson = False,
    as_csv: AsCsv = False,
) -> None:
    """List stored rack twins, by rack id, filtered by place, generation, stage, health, deviation and parts.

    The title says how many racks matched of the whole fleet. A filter value that does not
    exist is refused with the list of those that do. --json prints what GET /v1/racks answers
    (a page as long as --limit).
    """
    fmt = output_format(as_json, as_csv)
    filters = {"facility": facility, "generation": generation, "stage": stage, "health": health,
               "deviation": deviation, "stalled": stalled, "firmware_drift": firmware_drift,
               "onshore_below": onshore_below}
    with answers() as source:
        page = fetch_racks(source, limit, **filters)
        unfiltered = all(v is None for v in filters.values())
        fleet = page.total if unfiltered else source.racks(limit=1).total  # live, not summarised
    rows = [r.model_dump() for r in page.racks]
    title = f"{len(rows)} of {page.total} racks" + ("" if page.total == fleet else f" (fleet: {fleet})")
    if len(rows) < page.total:
        title += f"; --limit {min(page.total, 100_000)} shows all"
    emit(rows, RACK_COLUMNS, fmt, console=console, title=title, caption=freshness_line(page), document=page)


def _parse_instant(text: str) -> datetime:
    try:
        instant = datetime.fromisoformat(text)
    except ValueError:
        raise typer.BadParameter(f"{text!r} is not an ISO-8601 instant, e.g. 2027-03-01T12:00:00Z",
                                 param_hint="--as-of") from None
    return instant if instant.tzinfo else instant.replace(tzinfo=timezone.utc)


_READINGS = ("power_watts", "inlet_temperature_celsius", "outlet_temperature_celsius",
             "coolant_supply_temperature_celsius", "coolant_return_temperature_celsius",
             "coolant_flow_liters_per_minute", "coolant_differential_pressure_kilopascals", "leak_detected",
             "hottest_accelerator_temperature_celsius", "fan_speed_percent", "network_links_up", "network_links_down")


def _stored(snapshot: dict[str, Any]) -> dict[str, Any]:
    """An answered twin document back in its stored form (answers call the stage `stage`)."""
    return {("status" if key == "stage" else key): value for key, value in snapshot.items()}


def _intent_in_force(source: Any, generation: str | None, instant: datetime) -> Any:
    """The generation's design intent in force at `instant`, from the answered revisions."""
    from schemas import GenerationIntent
    from twin.domain.intent import IntentCatalog

    if generation is None:
        return None
    catalog = IntentCatalog()
    for r in source.intents(generation=generation).revisions:
        detail = source.intent(generation, r.revision)
        if detail is not None:
            catalog.publish(GenerationIntent.model_validate(detail.body), r.published_at)
    return catalog.as_of(generation, instant)


def rack_document(source: Any, rack_id: str, instant: datetime | None, history: bool) -> dict[str, Any] | None:
    """One rack as the table and CSV show it, built from the answers (current twin, history, as of)
    and the pure domain (lead times, parts, onshore share, firmware drift, conformance as of)."""
    from twin.domain.components import firmware_drift, onshore_share
    from twin.domain.conformance import evaluate
    from twin.domain.lifecycle import lead_times
    from twin.domain.rack import RackTwin

    detail = source.rack(rack_id)
    if detail is None:
        return None
    events = source.rack_history(rack_id).events
    snapshot = source.rack_as_of(rack_id, instant).twin if instant else detail.twin
    twin = RackTwin.from_snapshot(_stored(snapshot))
    now = instant or datetime.now(timezone.utc)
    intent = _intent_in_force(source, twin.generation, now)
    spent = lead_times(twin, now)
    left = twin.stage_left_at
    counts = twin.bom.count_by_kind()
    required = intent.required_components if intent else {}
    share = onshore_share(twin.bom)
    if instant is None:
        deviations = [{"check_name": d.check, "severity": d.severity, "measured": d.measured,
                       "allowed_min": d.allowed_min, "allowed_max": d.allowed_max, "unit": d.unit,
                       "intent_revision": d.intent_revision, "detail": d.detail, "since": d.since}
                      for d in detail.deviations]
    else:
        deviations = [
            {"check_name": d.check, "severity": d.severity, "measured": d.measured, "allowed_min": d.allowed_min,
             "allowed_max": d.allowed_max, "unit": d.unit, "intent_revision": d.intent_revision, "detail": d.detail,
             "since": None}
            for d in (evaluate(twin, intent, now) if intent else []) if d.check != "telemetry-stale"
        ]
    doc: dict[str, Any] = {
        "rack_id": rack_id, "as_of": instant, "generation": twin.generation, "stage": twin.status.value,
        "stage_reason": twin.status_reason, "facility_id": twin.facility_id, "hall_id": twin.hall_id,
        "row_id": twin.row_id, "position": twin.position, "serial_number": twin.serial_number,
        "factory": twin.factory, "stream_version": events[-1].stream_version if events else 0,
        "events_folded": twin.version, "intent_revision": intent.revision if intent else None,
        "lifecycle": [
            {"stage": stage.value, "entered_at": at, "left_at": None if stage is twin.status else left.get(stage),
             "lead_time_days": round(spent[stage].total_seconds() / 86400, 3) if stage in spent else None}
            for stage, at in sorted(twin.stage_entered_at.items(), key=lambda kv: kv[1])
        ],
        "tests": [{"kind": kind, "passed": r.passed, "occurred_at": r.occurred_at} for kind, r in twin.tests.items()],
        "components": [{"kind": kind, "count": counts.get(kind, 0), "required": required.get(kind)}
                       for kind in sorted(set(counts) | set(required))],
        "onshore_share": None if not share.parts else {"by_count": share.by_count, "by_value": share.by_value},
        "firmware_drift": [d._asdict() for d in (firmware_drift(twin.bom, intent.firmware_baseline) if intent else [])],
        "telemetry_at": None if instant else detail.telemetry_at,
        "readings": None if instant or detail.telemetry_at is None else dict(detail.readings),
        "health": None if instant else (detail.health or None),
        "deviations": deviations,
        "rejected": [{"event_id": r.event_id, "type": r.type, "reason": r.reason, "detail": r.detail}
                     for r in twin.rejected],
    }
    if history:
        doc["history"] = [{"stream_version": e.stream_version, "type": e.type, "occurred_at": e.occurred_at,
                           "source": e.source, "seq": e.seq}
                          for e in events if instant is None or e.occurred_at <= instant]
    return doc


_HISTORY_COLUMNS = (Column.of("stream_version", "v", justify="right"), Column.of("type"),
                    Column.of("occurred_at", "occurred at"), Column.of("source"), Column.of("seq", justify="right"))
_RACK_CSV_COLUMNS = (
    Column.of("rack_id", key=True), Column.of("generation"), Column.of("stage"), Column.of("facility_id"),
    Column.of("hall_id"), Column.of("row_id"), Column.of("position"), Column.of("serial_number"),
    Column.of("stream_version"), Column.of("intent_revision"), Column.of("telemetry_at"),
    *(Column(k, lambda d, k=k: (d["readings"] or {}).get(k)) for k in _READINGS),
    Column("health", lambda d: (d["health"] or {}).get("overall")),
    Column("deviations", lambda d: len(d["deviations"])),
    Column("deviation_checks", lambda d: " ".join(x["check_name"] for x in d["deviations"])),
)


@app.command(rich_help_panel=ASK)
def rack(
    rack_id: Annotated[str, typer.Argument(help="The rack, e.g. dfw1-h1-r03-07.")],
    as_of: Annotated[Optional[str], typer.Option("--as-of", help="Show the rack as it was at this instant "
                                                 "(ISO 8601; UTC if no offset), rebuilt from its events.")] = None,
    history: Annotated[bool, typer.Option("--history", help="Also list every event of the rack's stream.")] = False,
    as_json: AsJson = False,
    as_csv: AsCsv = False,
) -> None:
    """One rack: lifecycle with lead times, tests, components (onshore share, firmware drift), health, deviations.

    --json prints what the API answers: GET /v1/racks/ID, or …/as-of?at=INSTANT with --as-of,
    or …/history with --history (with --as-of too, only the events up to the instant).
    --csv prints one row of the rack's current state, or its event history with --history.
    """
    fmt = output_format(as_json, as_csv)
    instant = _parse_instant(as_of) if as_of else None
    with answers() as source:
        if fmt is Format.JSON:
            if history:
                doc = source.rack_history(rack_id)
                if doc is not None and instant is not None:
                    doc = doc.model_copy(update={"events": [e for e in doc.events if e.occurred_at <= instant]})
            elif instant is not None:
                doc = source.rack_as_of(rack_id, instant)
            else:
                doc = source.rack(rack_id)
        else:
            doc = rack_document(source, rack_id, instant, history)
    if doc is None:
        fail(f"no rack {rack_id!r} in the twin (see `twin racks`)", code=1)
    if fmt is Format.JSON:
        emit_json(doc, console)
    elif fmt is Format.CSV:
        if history:
            emit(doc["history"], _HISTORY_COLUMNS, fmt, console=console)
        else:
            emit([doc], _RACK_CSV_COLUMNS, fmt, console=console)
    else:
        _print_rack(doc, instant)


def _print_rack(doc: dict[str, Any], instant: datetime | None) -> None:
    from rich.table import Table

    title = f"[bold]{escape(doc['rack_id'])}[/]  {doc['generation'] or '?'}  [cyan]{doc['stage']}[/]" + (
        f"  [yellow](as of {rfc3339(instant)})[/]" if instant else "")
    place = _place(doc)
    position = f" position {doc['position']}" if doc["position"] else ""
    facts = [f"place: {place}{position}",
             f"serial: {doc['serial_number'] or '-'}  factory: {doc['factory'] or '-'}",
             f"stream version {doc['stream_version']}, {doc['events_folded']} events folded"]
    if doc["stage_reason"]:
        facts.append(f"reason: {doc['stage_reason']}")
    console.print(Panel(escape("\n".join(facts)), title=title, expand=False))

    stages = Table("stage", "entered", "left", "lead time", title="lifecycle")
    for s in doc["lifecycle"]:
        stages.add_row(s["stage"], human(s["entered_at"]), human(s["left_at"]) if s["stage"] != doc["stage"] else "(now)",
                       "-" if s["lead_time_days"] is None else f"{s['lead_time_days']:.1f} d")
    console.print(stages)
    if doc["tests"]:
        tests = Table("test", "result", "at", title="tests")
        for t in doc["tests"]:
            tests.add_row(t["kind"], "[green]passed[/]" if t["passed"] else "[red]failed[/]", human(t["occurred_at"]))
        console.print(tests)
    bom = Table("kind", "count", "required", title="components")
    for c in doc["components"]:
        off = c["required"] is not None and c["count"] != c["required"]
        bom.add_row(c["kind"], f"[red]{c['count']}[/]" if off else str(c["count"]), human(c["required"]))
    console.print(bom)
    share = doc["onshore_share"]
    if share:
        console.print("onshore share (US-made power, cooling, cabling, networking): "
                      f"{share['by_count']:.0%} by count, "
                      + (f"{share['by_value']:.0%} by value" if share["by_value"] is not None else "no value"))
    if doc["firmware_drift"]:
        console.print("[yellow]firmware drift[/]: " + ", ".join(
            f"{d['slot']} {d['firmware_version']} (baseline {d['baseline']})" for d in doc["firmware_drift"]))
    health = doc["health"] or {}
    if health:
        h = Table("subsystem", "state", "reason", title=f"health (readings at {human(doc['telemetry_at'])})")
        for sub in ("power", "cooling", "compute", "network"):
            state = health.get(sub, {})
            h.add_row(sub, state.get("state", "-"), escape(state.get("reason", "")))
        console.print(h)
    r = doc["readings"]
    if r and r["power_watts"] is not None:
        console.print(f"power {r['power_watts'] / 1000:,.1f} kW, inlet {human(r['inlet_temperature_celsius'])} °C, "
                      f"coolant {human(r['coolant_supply_temperature_celsius'])}→"
                      f"{human(r['coolant_return_temperature_celsius'])} °C at "
                      f"{human(r['coolant_flow_liters_per_minute'], 0)} L/min, hottest GPU "
                      f"{human(r['hottest_accelerator_temperature_celsius'], 0)} °C")
    if doc["deviations"]:
        dev = Table("check", "severity", "measured", "allowed", "intent rev", "detail", title="deviations from design intent")
        for d in doc["deviations"]:
            allowed = f"{human(d['allowed_min'])} … {human(d['allowed_max'])}" + (f" {d['unit']}" if d["unit"] else "")
            sev = "[red]critical[/]" if d["severity"] == "critical" else "[yellow]warning[/]"
            dev.add_row(d["check_name"], sev, escape(str(d["measured"])), allowed, str(d["intent_revision"]),
                        escape(d["detail"]))
        console.print(dev)
    else:
        console.print("[green]conforms to its design intent[/]" if doc["intent_revision"] is not None
                      else "[dim]no design intent known[/]")
    if doc["rejected"]:
        rej = Table("event", "type", "reason", "detail", title="recently rejected events")
        for x in doc["rejected"]:
            rej.add_row(x["event_id"][:8], x["type"], x["reason"], escape(x["detail"]))
        console.print(rej)
    if "history" in doc:
        events = Table("v", "type", "occurred at", "source", title="event history")
        for e in doc["history"]:
            events.add_row(str(e["stream_version"]), e["type"], human(e["occurred_at"]), e["source"])
        console.print(events)
