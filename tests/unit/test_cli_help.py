"""The CLI's own surface, without a database: help that teaches, --version, output rendering."""

from __future__ import annotations

import csv
import io
import json
import re
from datetime import datetime, timedelta, timezone
from importlib.metadata import version

import pytest
import typer
from rich.console import Console
from typer.testing import CliRunner

from twin.cli import app
from twin.domain.vocabulary import deadletter_reasons, require
from twin.errors import InvalidQuery
from twin.output import Column, Format, emit, jsonable, rfc3339

runner = CliRunner()


def _commands(group: object, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    out = []
    for name, command in getattr(group, "commands", {}).items():
        out.append((*prefix, name))
        out.extend(_commands(command, (*prefix, name)))
    return out


def _all_commands() -> list[tuple[str, ...]]:
    import typer.main

    return [(), *_commands(typer.main.get_command(app))]


@pytest.mark.parametrize("command", _all_commands(), ids=lambda c: " ".join(c) or "twin")
def test_help_shows_no_bool_on_flags_and_no_space_before_punctuation(command: tuple[str, ...]) -> None:
    result = runner.invoke(app, [*command, "--help"], env={"COLUMNS": "100"})
    assert result.exit_code == 0, result.output
    text = result.output
    assert "<bool>" not in text
    # a word, then a space, then punctuation: what a swallowed [markup] leaves behind ("their state .")
    assert not re.search(r"\w \.(\s|$)|\w ,", text), text


def test_help_lists_every_verb_of_the_issue() -> None:
    text = runner.invoke(app, ["--help"], env={"COLUMNS": "200"}).output
    for verb in ("racks", "rack", "capacity", "deadletters", "clean", "simulate", "demo"):
        assert re.search(rf"│ {verb}\s", text), verb


def test_version_prints_the_installed_version() -> None:
    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0
    assert result.output.strip() == f"twin (fleet-twin) {version('fleet-twin')}"


def test_json_and_csv_together_are_refused() -> None:
    result = runner.invoke(app, ["racks", "--json", "--csv"])
    assert result.exit_code == 2
    assert "choose one of --json and --csv" in result.output


def test_rfc3339_is_utc_with_z_whatever_the_offset_and_stored_text_is_rewritten() -> None:
    plus2 = timezone(timedelta(hours=2))
    assert rfc3339(datetime(2027, 3, 1, 14, 0, tzinfo=plus2)) == "2027-03-01T12:00:00Z"
    assert rfc3339(datetime(2027, 3, 1, 12, 0, 0, 250000)) == "2027-03-01T12:00:00.250000Z"
    doc = jsonable({"at": datetime(2027, 3, 1, tzinfo=timezone.utc),
                    "health": {"last_reading_at": "2027-03-01T12:00:00+00:00", "pg": "2027-03-01 12:00:00+00"},
                    "detail": "power 12:00:00 over budget", "day": "2027-03-01"})
    assert doc == {"at": "2027-03-01T00:00:00Z",
                   "health": {"last_reading_at": "2027-03-01T12:00:00Z", "pg": "2027-03-01T12:00:00Z"},
                   "detail": "power 12:00:00 over budget", "day": "2027-03-01"}


_ROWS = [{"rack_id": f"dfw1-h1-r0{i}-{i:02d}-with-a-long-suffix", "power_watts": 123456.0 * i,
          "at": datetime(2027, 1, 1, tzinfo=timezone.utc), "note": None} for i in range(1, 4)]
_COLUMNS = (Column.of("rack_id", "rack", key=True), Column("power kW", lambda r: r["power_watts"] / 1000, justify="right"),
            Column.of("at"), Column.of("note"))


def _render(fmt: Format, **console_kwargs: object) -> str:
    out = io.StringIO()
    emit(_ROWS, _COLUMNS, fmt, console=Console(file=out, **console_kwargs), title="3 of 3 racks")  # type: ignore[arg-type]
    return out.getvalue()


def test_piped_table_is_plain_aligned_text_that_never_cuts_an_id() -> None:
    text = _render(Format.TABLE, width=40)
    lines = text.splitlines()
    assert lines[0] == "# 3 of 3 racks"
    assert lines[1].split() == ["rack", "power", "kW", "at", "note"]
    for row, line in zip(_ROWS, lines[2:5]):
        assert line.startswith(row["rack_id"] + "  ")
        assert "2027-01-01T00:00:00Z" in line
    assert "…" not in text


@pytest.mark.parametrize("width", [60, 80, 120])
def test_terminal_table_keeps_ids_whole_at_any_width(width: int) -> None:
    text = _render(Format.TABLE, width=width, force_terminal=True, color_system=None)
    for row in _ROWS:
        assert row["rack_id"] in text


def test_csv_has_a_header_and_raw_values() -> None:
    rows = list(csv.reader(io.StringIO(_render(Format.CSV))))
    assert rows[0] == ["rack", "power kW", "at", "note"]
    assert rows[1] == [_ROWS[0]["rack_id"], "123.456", "2027-01-01T00:00:00Z", ""]


def test_json_is_one_document() -> None:
    doc = json.loads(_render(Format.JSON))
    assert [r["rack_id"] for r in doc] == [r["rack_id"] for r in _ROWS]
    assert doc[0]["at"] == "2027-01-01T00:00:00Z"


def test_unknown_values_are_refused_with_the_valid_ones_and_a_close_one_offered() -> None:
    from twin.commands import fail

    with pytest.raises(InvalidQuery) as caught:
        require("stage", "actve", ["installed", "active"])
    assert str(caught.value) == "stage='actve' is not valid; valid values: active, installed"
    require("stage", None, ["active"])
    require("stage", "active", ["active"])
    out = io.StringIO()
    import twin.commands

    original = twin.commands.err
    twin.commands.err = Console(file=out, width=200)
    try:
        with pytest.raises(typer.Exit) as exited:
            fail(caught.value)
    finally:
        twin.commands.err = original
    assert exited.value.exit_code == 2
    assert out.getvalue().strip() == ("error: stage='actve' is not valid; valid values: active, installed; "
                                      "did you mean 'active'?")


def test_dead_letter_reasons_come_from_the_error_tree() -> None:
    reasons = deadletter_reasons()
    for reason in ("malformed-json", "missing-field", "invalid-field", "unknown-type", "unknown-rack",
                   "illegal-transition", "missing-tests", "out-of-physical-range", "unknown-schema-version"):
        assert reason in reasons
    assert "rejected" not in reasons


def test_every_verb_has_a_one_line_summary() -> None:
    import typer.main

    root = typer.main.get_command(app)
    for path in _all_commands()[1:]:
        command = root
        for name in path:
            command = command.commands[name]  # type: ignore[attr-defined]
        first = (command.help or "").strip().split("\n\n")[0]
        assert first and "\n" not in first, (path, first)
