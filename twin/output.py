"""How every read verb prints: a table for people, JSON or CSV for programs.

One module decides the shape, so that `--json` and `--csv` mean the same on every verb,
timestamps are RFC 3339 UTC everywhere, and output that goes to a pipe or a file is plain
aligned text that never truncates a value (`twin racks | grep dfw1-h1-r03-07` works). On a
terminal the table is drawn by rich; identifier columns never wrap or shrink there either,
whatever the width.
"""

from __future__ import annotations

import csv
import io
import json
import math
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, fields, is_dataclass
from datetime import date, datetime, timezone
from decimal import Decimal
from enum import Enum, StrEnum
from typing import Annotated, Any, Literal
from uuid import UUID

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

__all__ = ["AsCsv", "AsJson", "Column", "Format", "emit", "emit_json", "human", "jsonable", "output_format", "rfc3339"]


class Format(StrEnum):
    TABLE = "table"
    JSON = "json"
    CSV = "csv"


AsJson = Annotated[bool, typer.Option("--json", help="Print one JSON document instead of a table.",
                                      rich_help_panel="Output")]
AsCsv = Annotated[bool, typer.Option("--csv", help="Print CSV (a header row, then one row per line) instead of a table.",
                                     rich_help_panel="Output")]


def output_format(as_json: bool, as_csv: bool) -> Format:
    if as_json and as_csv:
        raise typer.BadParameter("choose one of --json and --csv", param_hint="--json/--csv")
    return Format.JSON if as_json else Format.CSV if as_csv else Format.TABLE


def rfc3339(value: datetime) -> str:
    """`2026-11-29T12:21:42.500000Z`: UTC with `Z`, microseconds only when there are any (as pydantic writes it)."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=timezone.utc)
    return value.astimezone(timezone.utc).isoformat().replace("+00:00", "Z")


_ISO_INSTANT = re.compile(r"\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}(:?\d{2})?)")
"""An instant written by `isoformat()` or PostgreSQL's text form (as found inside stored JSON documents)."""


def jsonable(value: Any) -> Any:
    """`value` with every datetime as RFC 3339 UTC, decimals as numbers, enums as their value.

    Instants already written as text inside stored JSON (`+00:00`, a space for `T`) are
    rewritten too, so that one document never mixes two forms.
    """
    if isinstance(value, datetime):
        return rfc3339(value)
    if isinstance(value, str):
        if _ISO_INSTANT.fullmatch(value):
            try:
                return rfc3339(datetime.fromisoformat(value))
            except ValueError:
                return value
        return value
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [jsonable(v) for v in value]
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, UUID):
        return str(value)
    if is_dataclass(value) and not isinstance(value, type):
        return {f.name: jsonable(getattr(value, f.name)) for f in fields(value)}
    if hasattr(value, "model_dump"):
        return jsonable(value.model_dump(mode="json"))
    return value


def human(value: Any, digits: int = 1) -> str:
    """A value as a table cell: `-` for nothing, thousands separators, UTC seconds for instants."""
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:,.{digits}f}"
    if isinstance(value, Decimal):
        return f"{value:,.{digits}f}"
    if isinstance(value, datetime):
        return rfc3339(value.replace(microsecond=0))
    if isinstance(value, Enum):
        return str(value.value)
    return str(value)


def _csv_cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, (Mapping, list, tuple)):
        return json.dumps(jsonable(value), separators=(",", ":"))
    value = jsonable(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


@dataclass(frozen=True)
class Column:
    """One column of a read verb's table and CSV: its header, how to get its value from a row, how to show it.

    `key` marks an identifier or a token (rack id, generation, instant): on a terminal it never
    wraps or shrinks; the other columns fold instead.
    `style` may colour a cell on a terminal (rich style name, or None). `render`, when given,
    makes a table cell from the whole row (a row whose cells differ in kind, as a scorecard's).
    """

    header: str
    value: Callable[[Mapping[str, Any]], Any]
    text: Callable[[Any], str] = human
    justify: Literal["left", "right", "center"] = "left"
    key: bool = False
    style: Callable[[Mapping[str, Any]], str | None] | None = None
    render: Callable[[Mapping[str, Any]], str] | None = None

    def cell(self, row: Mapping[str, Any]) -> str:
        return self.render(row) if self.render else self.text(self.value(row))

    @classmethod
    def of(cls, field: str, header: str | None = None, **kwargs: Any) -> Column:
        return cls(header or field, lambda row, f=field: row.get(f), **kwargs)


def emit_json(document: Any, console: Console) -> None:
    """One JSON document: indented on a terminal, one line when piped (for jq and friends)."""
    text = json.dumps(jsonable(document), ensure_ascii=False, indent=2 if console.is_terminal else None)
    console.file.write(text + "\n")
    console.file.flush()


def emit(
    rows: Sequence[Mapping[str, Any]],
    columns: Sequence[Column],
    fmt: Format,
    *,
    console: Console,
    title: str | None = None,
    caption: str | None = None,
    document: Any = None,
    compact: bool = False,
) -> None:
    """Print `rows` as the chosen format.

    JSON prints `document` (the rows when not given): a verb may wrap its rows with totals.
    Piped, a table is plain text: its title and caption become lines starting with `# `, and
    a blank line ends it, so that several tables stay apart and `grep` finds whole rows.
    `compact` draws a terminal table without column rules, for many narrow columns.
    """
    if fmt is Format.JSON:
        emit_json(rows if document is None else document, console)
    elif fmt is Format.CSV:
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow([c.header for c in columns])
        for row in rows:
            writer.writerow([_csv_cell(c.value(row)) for c in columns])
        console.file.write(buffer.getvalue())
        console.file.flush()
    elif console.is_terminal:
        console.print(rich_table(rows, columns, title=title, caption=caption, compact=compact))
    else:
        text = (f"# {title}\n" if title else "") + plain_table(rows, columns) + (f"# {caption}\n" if caption else "")
        console.file.write(text + "\n")
        console.file.flush()


def rich_table(rows: Iterable[Mapping[str, Any]], columns: Sequence[Column], *, title: str | None = None,
               caption: str | None = None, compact: bool = False) -> Table:
    from rich import box

    rows = list(rows)
    shape: dict[str, Any] = {"box": box.SIMPLE_HEAD, "padding": (0, 0, 0, 1), "pad_edge": False} if compact else {}
    table = Table(title=escape(title) if title else None, caption=escape(caption) if caption else None, **shape)
    for c in columns:
        if c.key:
            width = max([len(c.header), *(len(c.cell(r)) for r in rows)])
            table.add_column(c.header, justify=c.justify, no_wrap=True, min_width=width)
        else:
            table.add_column(c.header, justify=c.justify, overflow="fold")
    for r in rows:
        cells = []
        for c in columns:
            text = escape(c.cell(r))
            style = c.style(r) if c.style else None
            cells.append(f"[{style}]{text}[/]" if style else text)
        table.add_row(*cells)
    return table


def plain_table(rows: Iterable[Mapping[str, Any]], columns: Sequence[Column]) -> str:
    """Header and rows, columns aligned by two spaces, nothing ever cut (like `kubectl get`)."""
    cells = [[c.header for c in columns]]
    cells += [[c.cell(r) for c in columns] for r in rows]
    widths = [max(len(line[i]) for line in cells) for i in range(len(columns))]
    lines = []
    for line in cells:
        parts = [text.rjust(w) if c.justify == "right" else text.ljust(w) for c, text, w in zip(columns, line, widths)]
        lines.append("  ".join(parts).rstrip())
    return "\n".join(lines) + "\n"
