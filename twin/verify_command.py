"""The `twin verify` verb: print what `twin.store.verify` finds, exit non-zero on any disagreement."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

__all__ = ["verify"]


def verify(
    limit: Annotated[int, typer.Option(min=0, help="Disagreements to list (all are counted).")] = 50,
) -> None:
    """Check that every view of every rack agrees with the others and with a rebuild from the store.

    Compares the live twin, the twin rebuilt from the store, the twin --as-of now, fold refusals
    against dead letters, and the deviation counts of the rack list, rack detail, fleet summary and
    demo header.

    Lists each disagreement with its rack and field and exits 1 on any (2: the database cannot be read).
    Run it while the workers are idle: a batch committing during the check can show as a disagreement.
    """
    from twin.errors import TwinError
    from twin.settings import get_settings
    from twin.store.verify import verify as run

    out, err = Console(), Console(stderr=True)
    try:
        report = run(get_settings().database_url.get_secret_value())
    except TwinError as exc:
        err.print(f"[bold red]error:[/] {exc}")
        raise typer.Exit(2) from None
    if report.ok:
        out.print(f"[green]every view agrees[/]: {report.racks:,} racks, {report.events:,} events")
        return
    table = Table("rack", "field", "views", "left", "right", title="disagreements")
    for d in report.disagreements[:limit]:
        table.add_row(d.rack_id, d.field, d.views, _short(d.left), _short(d.right))
    out.print(table)
    by_field = ", ".join(f"{name}: {n}" for name, n in report.by_field().most_common())
    out.print(f"[red]{len(report.disagreements)} disagreement(s) on {len(report.racks_disagreeing)} of "
              f"{report.racks:,} racks[/] ({by_field})")
    raise typer.Exit(1)


def _short(value: object, width: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= width else text[:width - 1] + "…"
