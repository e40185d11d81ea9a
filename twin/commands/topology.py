"""`twin topology ...`: declare what feeds what, and ask what a CDU or a feed failure touches."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path
from typing import Annotated, Any

import typer

from twin.commands import console, database, fail, freshness_line, settings
from twin.errors import TwinError
from twin.output import AsCsv, AsJson, Column, emit, output_format

app = typer.Typer(help="Cooling and power topology: which racks a CDU or a power feed serves, and which CDUs "
                       "degrade racks now.", no_args_is_help=True)

_FILE_HELP = """YAML or JSON: {coolant_loops: [{loop_id, cooling_unit_id, racks: [...]}],
power_feeds: [{feed_id, side: A|B, panel?, pdus?: [...], racks: [...]}]}"""


@app.command("declare")
def declare(
    file: Annotated[Path, typer.Argument(exists=True, dir_okay=False, readable=True, help=_FILE_HELP)],
    source: Annotated[str, typer.Option(help="Envelope source of the declarations.")] = "facility-topology",
) -> None:
    """Publish coolant loops and power feeds as fleet facts (the latest declaration of each wins)."""
    import yaml
    from pydantic import ValidationError

    from twin.domain.topology import declarations
    from twin.messages import Message
    from twin.publisher import Publisher

    try:
        events = declarations(yaml.safe_load(file.read_text()) or {}, source=source, now=datetime.now(timezone.utc))
    except (ValidationError, ValueError, TypeError, yaml.YAMLError) as exc:
        fail(f"{file} is not a valid topology file: {exc}")
    s = settings()
    try:
        with Publisher(s.kafka_bootstrap, s.topics) as publisher:
            for e in events:
                publisher.send(Message("intent", b"topology", e.model_dump_json().encode()))
            publisher.flush()
    except TwinError as exc:
        fail(exc)
    console.print(f"published {len(events)} declaration(s)")


def _topology() -> Any:
    from twin.store.topology import load_topology

    with database() as conn:
        return load_topology(conn)


_RACK_COLUMNS = (Column.of("rack_id", "rack", key=True),)


@app.command("cdu")
def cdu(
    cooling_unit_id: Annotated[str, typer.Argument(help="The CDU, as declared (cooling_unit_id).")],
    as_json: AsJson = False,
    as_csv: AsCsv = False,
) -> None:
    """Which racks does this CDU feed, and how was it last polled? (the API's /v1/topology/cdus/ID)

    Exits 2 naming the declared CDUs when this one feeds no rack.
    """
    from twin.commands.answers import answers

    with answers() as source:
        answer = source.cooling_unit(cooling_unit_id)
        known = source.cooling_units() if not answer.racks else []
    if not answer.racks:
        fail(f"no loop of CDU {cooling_unit_id!r} is declared (or feeds a rack you may see); known CDUs: "
             + (", ".join(known) or "none listed (twin topology declare FILE)"))
    health = f", {answer.health}" + (f": {'; '.join(answer.reasons)}" if answer.reasons else "") if answer.health else ""
    emit([{"rack_id": r} for r in answer.racks], _RACK_COLUMNS, output_format(as_json, as_csv), console=console,
         title=f"CDU {cooling_unit_id}{health} feeds {len(answer.racks)} rack(s)", caption=freshness_line(answer),
         document=answer)


_LOSS_COLUMNS = (Column.of("rack_id", "rack", key=True), Column.of("loses"))


@app.command("feed-loss")
def feed_loss(
    feed: Annotated[str, typer.Argument(help="A feed id, or a side (A or B) for every feed of it.")],
    as_json: AsJson = False,
    as_csv: AsCsv = False,
) -> None:
    """Which racks lose redundancy (and which lose power) if this feed, or every feed of a side, fails?"""
    try:
        loss = _topology().if_fails(feed)
    except KeyError as exc:
        fail(exc.args[0])
    rows = ([{"rack_id": r, "loses": "redundancy"} for r in loss.losing_redundancy]
            + [{"rack_id": r, "loses": "power"} for r in loss.losing_power])
    emit(rows, _LOSS_COLUMNS, output_format(as_json, as_csv), console=console,
         title=f"if {', '.join(loss.failed)} fail(s): {len(loss.losing_redundancy)} rack(s) lose redundancy, "
               f"{len(loss.losing_power)} lose power",
         document={"failed": list(loss.failed), "losing_redundancy": list(loss.losing_redundancy),
                   "losing_power": list(loss.losing_power)})


_CDU_COLUMNS = (
    Column.of("cooling_unit_id", "CDU", key=True), Column.of("health"),
    Column("why", lambda c: "; ".join(c["reasons"])), Column("racks", lambda c: " ".join(c["racks"])),
)


@app.command("cdus")
def cdus(as_json: AsJson = False, as_csv: AsCsv = False) -> None:
    """CDUs not ok, each with the racks whose cooling it degrades (one condition per CDU)."""
    from dataclasses import asdict

    from twin.domain.topology import cooling_unit_conditions
    from twin.store.topology import cooling_units_by_rack

    with database() as conn:
        conditions = [asdict(c) for c in cooling_unit_conditions(cooling_units_by_rack(conn))]
    emit(conditions, _CDU_COLUMNS, output_format(as_json, as_csv), console=console,
         title=f"{len(conditions)} CDU(s) not ok" if conditions else "every polled CDU is ok")
