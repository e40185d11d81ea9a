"""Looking after the twin: `twin settings`, `twin migrate`, `twin rebuild`."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.markup import escape

from twin.commands import MAINTAIN, console, err, fail, settings
from twin.errors import TwinError

app = typer.Typer()


@app.command("settings", rich_help_panel=MAINTAIN)
def show_settings() -> None:
    """Print every effective setting (secrets redacted), the variable that sets it, and where addresses came from."""
    from twin.settings import address_source

    for key, value in settings().redacted().items():
        console.print(f"[bold]{key}[/] = {escape(str(value))}   [dim](TWIN_{key.upper()})[/]", soft_wrap=True,
                      highlight=False)
    console.print(f"[dim]broker and database addresses: from {address_source()}[/]", soft_wrap=True)


@app.command(rich_help_panel=MAINTAIN)
def migrate() -> None:
    """Create or upgrade the twin database schema (safe to run again)."""
    from twin.store.migrations import migrate as run

    try:
        applied = run(settings().database_url.get_secret_value())
    except TwinError as exc:
        fail(exc)
    console.print(f"applied {len(applied)} migration(s)" + "".join(f"\n  {m.version:04d} {m.name}" for m in applied))


@app.command("rebuild", rich_help_panel=MAINTAIN)
def rebuild_command(
    write: Annotated[bool, typer.Option("--write", help="Replace the live lifecycle state with the rebuilt one "
                                        "(after a fix to the fold); default: only compare.")] = False,
    workers: Annotated[int, typer.Option(min=1, max=64, help="Processes folding racks in parallel (id ranges); "
                                         "more is faster on idle cores but takes them from running workers.")] = 1,
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
            result = rebuild(settings().database_url.get_secret_value(), write=write, progress=advance,
                             workers=workers)
        except TwinError as exc:
            fail(exc)
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
