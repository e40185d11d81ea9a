"""`twin intent`: design intent per generation; publish revisions from a file."""

from __future__ import annotations

import uuid
from datetime import datetime, timezone
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.markup import escape

from twin.commands import console, fail, freshness_line, settings
from twin.commands.answers import answers
from twin.errors import TwinError
from twin.output import AsCsv, AsJson, Column, Format, emit, emit_json, human, jsonable, output_format

app = typer.Typer(help="Design intent per generation: its revisions (list, show) with the fleet's conformance, and publishing new ones.", no_args_is_help=True)


@app.command("publish")
def intent_publish(
    file: Annotated[Path, typer.Argument(exists=True, dir_okay=False, readable=True,
                                         help="A catalog JSON: {\"intents\": [GenerationIntent, ...]} or a list.")],
    source: Annotated[str, typer.Option(help="Envelope source of the published events.")] = "design-intent",
) -> None:
    """Publish design-intent revisions from a file; workers re-judge every twin of a generation that gets a new revision."""
    from pydantic import ValidationError

    from schemas import IntentPublished
    from twin.domain.intent import IntentCatalog
    from twin.messages import Message
    from twin.publisher import Publisher

    try:
        catalog = IntentCatalog.from_json(file.read_bytes())
    except (ValidationError, ValueError) as exc:
        fail(f"{file} is not a valid intent catalog: {exc}")
    s = settings()
    now = datetime.now(timezone.utc)
    try:
        with Publisher(s.kafka_bootstrap, s.topics) as publisher:
            for seq, intent in enumerate(catalog, start=1):
                event = IntentPublished(
                    event_id=uuid.uuid5(uuid.NAMESPACE_URL, f"intent/{intent.generation}/{intent.revision}"),
                    occurred_at=now, source=source, seq=int(now.timestamp() * 1000) + seq, intent=intent)
                publisher.send(Message("intent", intent.generation.encode(), event.model_dump_json().encode()))
                console.print(f"published {intent.generation} revision {intent.revision}")
            publisher.flush()
    except TwinError as exc:
        fail(exc)


def _top(open_deviations: dict[str, int]) -> str:
    return ", ".join(f"{check} {n}" for check, n in sorted(open_deviations.items(), key=lambda kv: -kv[1])[:3]) or "-"


_REVISION_COLUMNS = (
    Column.of("generation", key=True), Column.of("revision", justify="right"),
    Column.of("published_at", "published at", key=True), Column("latest", lambda r: r["latest"]),
    Column("judged", lambda r: r["conformance"]["judged"], justify="right"),
    Column("conforming", lambda r: r["conformance"]["conforming"], justify="right"),
    Column("deviating", lambda r: r["conformance"]["deviating"], justify="right",
           style=lambda r: "yellow" if r["conformance"]["deviating"] else None),
    Column("open deviations", lambda r: r["conformance"]["open_deviations"], text=_top),
    Column.of("title"),
)


@app.command("list")
def intent_list(
    generation: Annotated[Optional[str], typer.Option(help="Only this generation, e.g. gen-b-200kw.")] = None,
    as_json: AsJson = False,
    as_csv: AsCsv = False,
) -> None:
    """Every design-intent revision, newest first per generation, with the fleet's conformance to it.

    Judged: racks last judged by that revision; deviating: of those, racks with an open
    deviation naming it. --json prints what GET /v1/intents answers.
    """
    fmt = output_format(as_json, as_csv)
    with answers() as source:
        answer = source.intents(generation=generation)
    rows = [r.model_dump() for r in answer.revisions]
    emit(rows, _REVISION_COLUMNS, fmt, console=console, title=f"{len(rows)} intent revision(s)",
         caption=freshness_line(answer), document=answer)


@app.command("show")
def intent_show(
    generation: Annotated[str, typer.Argument(help="The generation, e.g. gen-b-200kw.")],
    revision: Annotated[Optional[int], typer.Option(min=1, help="This revision.", show_default="the latest")] = None,
    as_json: AsJson = False,
    as_csv: AsCsv = False,
) -> None:
    """One design-intent revision in full (budgets, envelopes, required parts, firmware baseline) and its conformance.

    --json prints what GET /v1/intents/GENERATION answers; --csv one row of its summary.
    """
    from rich.json import JSON

    fmt = output_format(as_json, as_csv)
    with answers() as source:
        answer = source.intent(generation, revision)
        if answer is None:
            known = source.valid_generations()
            fail(f"no intent for {generation!r}" + (f" revision {revision}" if revision else "")
                 + f"; generations with intent: {', '.join(known) or 'none yet'}", code=1)
    row = answer.model_dump()
    if fmt is not Format.TABLE:
        emit([row], _REVISION_COLUMNS, fmt, console=console, document=answer)
        return
    c = answer.conformance
    console.print(f"[bold]{answer.generation}[/] revision {answer.revision}" + (" (latest)" if answer.latest else "")
                  + f", published {human(answer.published_at)}: {escape(answer.title)}", highlight=False, soft_wrap=True)
    console.print(f"racks judged by it: {c.judged}, conforming {c.conforming}, deviating {c.deviating}"
                  + (f" ({_top(c.open_deviations)})" if c.open_deviations else ""), highlight=False, soft_wrap=True)
    if console.is_terminal:
        console.print(JSON.from_data(jsonable(answer.body)))
    else:
        emit_json(answer.body, console)
    line = freshness_line(answer)
    if line:
        console.print(f"[dim]{line}[/]" if console.is_terminal else f"# {line}", highlight=False, soft_wrap=True)
