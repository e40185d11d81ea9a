"""`twin deadletters`: bad input by reason, the latest letters, and `replay` after a fix."""

from __future__ import annotations

from typing import Annotated, Any, Optional

import typer

from twin.commands import console, database, fail, settings
from twin.domain.vocabulary import deadletter_reasons, require
from twin.errors import TwinError
from twin.output import AsCsv, AsJson, Column, Format, emit, output_format

app = typer.Typer(help="Bad input, recorded with its precise reason; `replay` sends it through again.",
                  invoke_without_command=True)


def _known_reasons(conn: Any) -> list[str]:
    from twin.store import views

    return sorted({*deadletter_reasons(), *views.recorded_reasons(conn)})


def _where(row: dict[str, Any]) -> str:
    return f"{row['topic']}[{row['partition']}]@{row['offset']}" + (f" #{row['idx']}" if row["idx"] >= 0 else "")


_COUNT_COLUMNS = (Column.of("reason", key=True), Column.of("open", justify="right"),
                  Column.of("replayed", justify="right"), Column.of("last_seen", "last seen"))
_LETTER_COLUMNS = (Column.of("id", justify="right"), Column.of("reason"), Column("from", _where),
                   Column.of("rack_id", "rack", key=True), Column.of("recorded_at", "recorded at"),
                   Column.of("detail"))
_LETTER_CSV_COLUMNS = (Column.of("id"), Column.of("reason"), Column.of("topic"), Column.of("partition"),
                       Column.of("offset"), Column.of("idx"), Column.of("rack_id"), Column.of("source"),
                       Column.of("recorded_at"), Column.of("detail"))


@app.callback()
def deadletters(
    ctx: typer.Context,
    reason: Annotated[Optional[str], typer.Option(help="Only this reason, e.g. out-of-physical-range.")] = None,
    limit: Annotated[int, typer.Option(min=1, max=10_000, help="Show at most this many letters.")] = 20,
    as_json: AsJson = False,
    as_csv: AsCsv = False,
) -> None:
    """Bad input by reason (open and replayed), then the latest open letters with their precise reason.

    --csv prints the letters; --json prints both, as {"by_reason": [...], "letters": [...]}.
    """
    if ctx.invoked_subcommand is not None:
        return
    from twin.store import views

    fmt = output_format(as_json, as_csv)
    with database() as conn:
        require("reason", reason, _known_reasons(conn))
        counts = views.deadletter_counts(conn)
        latest = views.latest_deadletters(conn, reason, limit)
    if fmt is Format.JSON:
        emit([], (), fmt, console=console, document={"by_reason": counts, "letters": latest})
    elif fmt is Format.CSV:
        emit(latest, _LETTER_CSV_COLUMNS, fmt, console=console)
    else:
        emit(counts, _COUNT_COLUMNS, fmt, console=console, title="dead letters by reason")
        if latest:
            emit(latest, _LETTER_COLUMNS, fmt, console=console, title=f"latest {len(latest)} open")


@app.command("replay")
def deadletters_replay(
    reason: Annotated[Optional[list[str]], typer.Option(help="Only these reasons (repeat the option); default: all.")] = None,
    limit: Annotated[int, typer.Option(min=1, max=1_000_000, help="At most this many letters.")] = 10_000,
) -> None:
    """Send open dead letters through again after a fix (a new schema version, a registered rack).

    Each is marked replayed once the broker acknowledged it; one refused again gets a new letter.
    """
    from twin.publisher import Publisher
    from twin.store.deadletters import replay

    with database() as conn:
        for r in reason or ():
            require("reason", r, _known_reasons(conn))
    s = settings()
    try:
        with Publisher(s.kafka_bootstrap, s.topics) as publisher:
            sent = replay(s.database_url.get_secret_value(), publisher, s.topics, reasons=reason or (), limit=limit)
    except TwinError as exc:
        fail(exc)
    total = sum(sent.values())
    console.print(f"replayed {total} dead letter(s)" + "".join(f"\n  {k}: {v}" for k, v in sent.most_common()))
