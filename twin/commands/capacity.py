"""`twin capacity`: site limits against what is placed, per row and per facility, and the rollout plan."""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import datetime, timezone
from typing import Annotated, Any, Optional

import typer

from twin.commands import ASK, console, database
from twin.output import AsCsv, AsJson, Column, Format, emit, output_format

app = typer.Typer()


def _kw(field: str) -> Column:
    return Column(field.replace("_watts", " kW").replace("_", " "), lambda r, f=field: r[f] / 1000,
                  text=lambda v: f"{v:,.0f}", justify="right",
                  style=(lambda r, f=field: "red" if r[f] < 0 else None) if field.startswith("available") else None)


def _operator(row: dict[str, Any]) -> str:
    return row["operator"] + (" (partner)" if row["ownership"] == "partner" else "")


_ROW_COLUMNS = (
    Column.of("facility_id", "facility", key=True), Column("operator", _operator), Column.of("hall_id", "hall"),
    Column.of("row_id", "row"), Column.of("racks", justify="right"), Column.of("positions", justify="right"),
    _kw("power_capacity_watts"), _kw("allocated_watts"), _kw("available_power_watts"), _kw("drawn_watts"),
)
_FACILITY_COLUMNS = (
    Column.of("facility_id", "facility", key=True), Column("operator", _operator), Column.of("rows", justify="right"),
    Column.of("racks", justify="right"), Column.of("positions", justify="right"),
    _kw("power_capacity_watts"), _kw("allocated_watts"), _kw("available_power_watts"), _kw("drawn_watts"),
)
_PLAN_COLUMNS = (
    Column.of("facility_id", "facility", key=True), Column.of("generation"), Column.of("in_service", "in service",
                                                                                       justify="right"),
    Column.of("target", justify="right"),
    Column("vs plan", lambda r: r["difference"], text=lambda d: f"{d:+d}" if d else "0", justify="right",
           style=lambda r: "red" if r["difference"] < 0 else None),
)


def facility_totals(rows: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per facility: the sums of its rows (racks, positions, capacity, allocated, available, drawn)."""
    totals: dict[str, dict[str, Any]] = {}
    for r in rows:
        t = totals.setdefault(r["facility_id"], {
            "facility_id": r["facility_id"], "operator": r["operator"], "ownership": r["ownership"], "rows": 0,
            "racks": 0, "positions": 0, "power_capacity_watts": 0, "cooling_capacity_watts": 0,
            "allocated_watts": 0, "available_power_watts": 0, "drawn_watts": 0})
        t["rows"] += 1
        for key in ("racks", "positions", "power_capacity_watts", "cooling_capacity_watts", "allocated_watts",
                    "available_power_watts", "drawn_watts"):
            t[key] += r[key] or 0
    return list(totals.values())


@app.command("capacity", rich_help_panel=ASK)
def capacity(
    facility: Annotated[Optional[str], typer.Option(help="Only this facility, e.g. dfw1.")] = None,
    quarter: Annotated[Optional[str], typer.Option(help="Rollout quarter to compare against, e.g. 2027Q2.",
                                                   show_default="the current quarter")] = None,
    as_json: AsJson = False,
    as_csv: AsCsv = False,
) -> None:
    """Site limits against what is placed, per row and per facility, and racks in service against the rollout plan.

    Allocated is the design power budget of the racks placed in a row; available is capacity
    minus allocated (red when over); drawn is the latest measured power. --csv prints the
    rows; --json prints rows, facility totals and the plan.
    """
    from twin.domain.fleet import quarter_of
    from twin.errors import InvalidQuery
    from twin.store import queries, views

    fmt = output_format(as_json, as_csv)
    if quarter is not None and not re.fullmatch(r"20[2-3][0-9]Q[1-4]", quarter):
        raise typer.BadParameter(f"{quarter!r} is not a quarter like 2027Q2", param_hint="--quarter")
    quarter = quarter or quarter_of(datetime.now(timezone.utc))
    with database() as conn:
        if facility is not None and facility not in queries.valid_values(conn, "facility"):
            raise InvalidQuery("facility", facility, queries.valid_values(conn, "facility"))
        rows = views.capacity(conn, facility)
        plan = [p for p in views.rollout_progress(conn, quarter) if facility is None or p["facility_id"] == facility]
    totals = facility_totals(rows)
    if fmt is not Format.TABLE:
        emit(rows, _ROW_COLUMNS, fmt, console=console,
             document={"quarter": quarter, "rows": rows, "facilities": totals, "plan": plan})
        return
    emit(rows, _ROW_COLUMNS, fmt, console=console,
         title="power capacity by row (allocated = design budget of placed racks)")
    emit(totals, _FACILITY_COLUMNS, fmt, console=console, title="power capacity by facility")
    emit(plan, _PLAN_COLUMNS, fmt, console=console, title=f"rollout plan, {quarter}")
