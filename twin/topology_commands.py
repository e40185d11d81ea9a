"""`twin topology ...`: declare what feeds what, and ask what a CDU or a feed failure touches."""

from __future__ import annotations

import uuid
from datetime import datetime, timezone
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from twin.errors import TwinError

topology_app = typer.Typer(help="Cooling and power topology: which racks a CDU or a power feed serves.",
                           no_args_is_help=True)
console = Console()
err = Console(stderr=True)

_FILE_HELP = """YAML or JSON: {coolant_loops: [{loop_id, cooling_unit_id, racks: [...]}],
power_feeds: [{feed_id, side: A|B, panel?, pdus?: [...], racks: [...]}]}"""


def _fail(exc: Exception) -> None:
    err.print(f"[bold red]error:[/] {exc}")
    raise typer.Exit(2)


def declarations(data: dict[str, Any], *, source: str, now: datetime) -> list[Any]:
    """The topology events a topology file declares at `now`.

    The event_id is derived from the declaration and `now`, so a retried publish is one fact,
    while declaring loop-1 = [r1], then [r2], then [r1] again is three (the last one wins).
    """
    import orjson

    from schemas import CoolantLoopDeclared, PowerFeedDeclared

    unknown = sorted(set(data) - {"coolant_loops", "power_feeds"})
    if unknown:
        raise ValueError(f"unknown key(s) {', '.join(unknown)}: expected coolant_loops and power_feeds")
    events: list[Any] = []
    seq = int(now.timestamp() * 1_000_000)
    for kind, model in (("coolant_loops", CoolantLoopDeclared), ("power_feeds", PowerFeedDeclared)):
        for i, body in enumerate(data.get(kind) or ()):
            canonical = orjson.dumps(body, option=orjson.OPT_SORT_KEYS).decode()
            ident = uuid.uuid5(uuid.NAMESPACE_URL, f"topology/{kind}/{now.isoformat()}/{canonical}")
            events.append(model(event_id=ident, occurred_at=now, source=source, seq=seq + len(events), **body))
    return events


@topology_app.command("declare")
def declare(
    file: Annotated[Path, typer.Argument(exists=True, dir_okay=False, readable=True, help=_FILE_HELP)],
    source: Annotated[str, typer.Option(help="Envelope source of the declarations.")] = "facility-topology",
) -> None:
    """Publish coolant loops and power feeds as fleet facts (the latest declaration of each wins)."""
    import yaml
    from pydantic import ValidationError

    from twin.embedded.simulator import Message
    from twin.publisher import Publisher
    from twin.settings import get_settings

    try:
        events = declarations(yaml.safe_load(file.read_text()) or {}, source=source, now=datetime.now(timezone.utc))
    except (ValidationError, ValueError, yaml.YAMLError) as exc:
        _fail(TwinError(f"{file} is not a valid topology file: {exc}"))
    settings = get_settings()
    try:
        with Publisher(settings.kafka_bootstrap, settings.topics) as publisher:
            for e in events:
                publisher.send(Message("intent", b"topology", e.model_dump_json().encode()))
            publisher.flush()
    except TwinError as exc:
        _fail(exc)
    console.print(f"published {len(events)} declaration(s)")


def _topology() -> Any:
    from twin.settings import get_settings
    from twin.store.topology import load_topology
    from twin.store.views import connect

    with connect(get_settings().database_url.get_secret_value()) as conn:
        return load_topology(conn)


@topology_app.command("cdu")
def cdu(cooling_unit_id: Annotated[str, typer.Argument(help="The CDU, as declared (cooling_unit_id).")]) -> None:
    """Which racks does this CDU feed?"""
    try:
        topo = _topology()
    except TwinError as exc:
        _fail(exc)
    racks = topo.racks_fed_by(cooling_unit_id)
    if not racks:
        known = ", ".join(topo.cooling_units()) or "none declared (twin topology declare FILE)"
        _fail(TwinError(f"no loop of CDU {cooling_unit_id!r} is declared; known CDUs: {known}"))
    console.print(f"CDU {cooling_unit_id} feeds {len(racks)} rack(s): {' '.join(racks)}")


@topology_app.command("feed-loss")
def feed_loss(feed: Annotated[str, typer.Argument(help="A feed id, or a side (A or B) for every feed of it.")]) -> None:
    """Which racks lose redundancy (and which lose power) if this feed, or every feed of a side, fails?"""
    try:
        loss = _topology().if_fails(feed)
    except TwinError as exc:
        _fail(exc)
    except KeyError as exc:
        _fail(TwinError(exc.args[0]))
    console.print(f"if {', '.join(loss.failed)} fail(s):")
    console.print(f"  lose redundancy ({len(loss.losing_redundancy)}): {' '.join(loss.losing_redundancy) or '-'}")
    console.print(f"  lose power      ({len(loss.losing_power)}): {' '.join(loss.losing_power) or '-'}")


@topology_app.command("cdus")
def cdus() -> None:
    """CDUs not ok, each with the racks whose cooling it degrades (one condition per CDU)."""
    from twin.domain.topology import cooling_unit_conditions
    from twin.settings import get_settings
    from twin.store.topology import cooling_units_by_rack
    from twin.store.views import connect

    try:
        with connect(get_settings().database_url.get_secret_value()) as conn:
            conditions = cooling_unit_conditions(cooling_units_by_rack(conn))
    except TwinError as exc:
        _fail(exc)
    if not conditions:
        console.print("every polled CDU is ok")
        return
    table = Table("CDU", "health", "why", "racks")
    for c in conditions:
        table.add_row(c.cooling_unit_id, c.health, "; ".join(c.reasons), f"{len(c.racks)}: {' '.join(c.racks)}")
    console.print(table)
