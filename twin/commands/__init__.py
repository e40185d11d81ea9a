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

__all__ = ["ASK", "MAINTAIN", "RUN", "StateDir", "console", "database", "err", "fail", "settings"]

console = Console()
err = Console(stderr=True)

RUN = "Run the twin"
ASK = "Ask the twin"
MAINTAIN = "Look after it"

StateDir = Annotated[
    Optional[Path],
    typer.Option("--state-dir", help="Where the embedded broker and database keep their state.",
                 show_default="TWIN_STATE_DIR, else the user data directory"),
]


def settings(state_dir: Path | None = None) -> Settings:
    s = get_settings()
    return s.model_copy(update={"state_dir": state_dir}) if state_dir else s


def fail(exc: Exception | str, code: int = 2) -> NoReturn:
    """Print `error: …` on stderr and exit non-zero (2, as for a usage error, unless told)."""
    err.print(f"[bold red]error:[/] {escape(str(exc))}")
    raise typer.Exit(code)


@contextmanager
def database() -> Iterator[Any]:
    """A read connection to the twin database; any twin error (unreachable, unknown value) ends the verb."""
    from twin.store import views

    try:
        with views.connect(settings().database_url.get_secret_value()) as conn:
            yield conn
    except TwinError as exc:
        fail(exc)
