"""The verbs of `twin`, one module per group; `twin/cli.py` assembles them.

A verb parses its options, calls a query or a service, and renders the answer through
`twin.output`. What every verb shares lives here: the two consoles (answers on stdout,
progress and errors on stderr), the settings, and one way to fail with a clear message.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any, NoReturn, Optional

import typer
from rich.console import Console
from rich.markup import escape

from twin.errors import TwinError
from twin.settings import Settings, get_settings

__all__ = ["ASK", "MAINTAIN", "PLAN", "RUN", "StateDir", "console", "database", "err", "fail", "freshness_line",
           "settings"]

console = Console()
err = Console(stderr=True)

RUN = "Run the twin"
ASK = "Ask the twin"
PLAN = "Plan capacity"
MAINTAIN = "Look after it"

StateDir = Annotated[
    Optional[Path],
    typer.Option("--state-dir", help="Where the embedded broker and database keep their state.",
                 show_default="TWIN_STATE_DIR, else the user data directory"),
]


def settings(state_dir: Path | None = None) -> Settings:
    try:
        s = get_settings()
    except TwinError as exc:  # a bad TWIN_* value: one line, no traceback
        fail(exc)
    return s.model_copy(update={"state_dir": state_dir}) if state_dir else s


def fail(exc: Exception | str, code: int = 2) -> NoReturn:
    """Print `error: …` on stderr and exit non-zero (2, as for a usage error, unless told).

    An unknown filter value (`InvalidQuery`) already lists the valid ones; a close one is offered too.
    A broker or database that cannot be reached says where its address came from (a `twin up`
    stack's state file, or the defaults), since that is the usual cause.
    """
    import difflib

    from twin.errors import InvalidQuery, PublishError, StackError, StoreError
    from twin.settings import address_hint

    message = " ".join(str(exc).split())  # one line: psycopg's messages carry newlines and tabs
    if isinstance(exc, InvalidQuery) and exc.valid and isinstance(exc.value, str):
        close = difflib.get_close_matches(exc.value, exc.valid, n=1)
        if close:
            message += f"; did you mean {close[0]!r}?"
    hint = address_hint() if isinstance(exc, (StoreError, StackError, PublishError)) else ""
    err.print(f"[bold red]error:[/] {escape(message)}" + (f" ({escape(hint)})" if hint else ""), soft_wrap=True,
              highlight=False)
    raise typer.Exit(code)


def freshness_line(answer: Any) -> str:
    """`newest event 2026-11-29T12:00:00Z; workers committed 1.2 s before this answer`, for a table caption
    (and when the aggregates were summarised, for answers read from the summary tables)."""
    from twin.output import human

    f = getattr(answer, "freshness", None)
    if f is None:
        return ""
    lag = "no worker commit recorded" if f.worker_lag_seconds is None else \
        f"workers committed {f.worker_lag_seconds:,.1f} s before this answer"
    summarised = getattr(answer, "summarised_at", None)
    return f"newest event {human(f.newest_event_at)}; {lag}" + (
        f"; aggregates summarised at {human(summarised)}" if summarised else "")


@contextmanager
def database() -> Iterator[Any]:
    """A read connection to the twin database; any twin error (unreachable, unknown value) ends the verb."""
    from twin.store import views

    try:
        with views.connect(settings().database_url.get_secret_value()) as conn:
            yield conn
    except TwinError as exc:
        fail(exc)
