"""`twin capacity`: site limits against what is placed, per row and per facility, and the rollout plan.

An overview in one verb, from the same answers as `twin headroom` (rows and facilities) and
`twin plan` (the cells of one quarter).
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Annotated, Any, Optional

import typer

from twin.commands import ASK, console, fail, freshness_line
from twin.commands.answers import answers
from twin.output import AsCsv, AsJson, Column, Format, emit, output_format

app = typer.Typer()


def _kw(header: str, field: str, *, red_below_zero: bool = False) -> Column:
    return Column(header, lambda r: None if r.get(field) is None else r[field] / 1000,
                  text=lambda v: "-" if v is None else f"{v:,.0f}", justify="right",
                  style=(lambda r: "red" if (r.get(field) or 0) < 0 else None) if red_below_zero else None)


_PLACE_COLUMNS = (
    Column.of("racks", justify="right"), Column.of("positions", justify="right"),
    _kw("power capacity kW", "power_capacity_watts"), _kw("allocated kW", "allocated_draw_watts"),
    _kw("available kW", "available_power_watts", red_below_zero=True), _kw("p95 drawn kW", "measured_p95_watts"),
    _kw("cooling left kW", "available_cooling_watts", red_below_zero=True),
)
_ROW_COLUMNS = (Column.of("facility_id", "facility", key=True), Column.of("operator"), Column.of("hall_id", "hall"),
                Column.of("row_id", "row"), *_PLACE_COLUMNS)
_FACILITY_COLUMNS = (Column.of("facility_id", "facility", key=True), Column.of("operator"), *_PLACE_COLUMNS)


def _vs_plan(cell: dict[str, Any]) -> int:
    return (cell["in_service"] if cell["in_service"] is not None else cell["forecast"]) - cell["target"]


_PLAN_COLUMNS = (
    Column.of("facility_id", "facility", key=True), Column.of("generation"),
    Column.of("in_service", "in service", justify="right"), Column.of("forecast", justify="right"),
    Column.of("target", justify="right"),
    Column("vs plan", _vs_plan, text=lambda d: f"{d:+d}" if d else "0", justify="right",
           style=lambda r: "red" if _vs_plan(r) < 0 else None),
)


@app.command("capacity", rich_help_panel=ASK)
def capacity(
    facility: Annotated[Optional[str], typer.Option(help="Only this facility, e.g. dfw1.")] = None,
    quarter: Annotated[Optional[str], typer.Option(help="Rollout quarter to compare against, e.g. 2027Q2.",
                                                   show_default="the current quarter")] = None,
    as_json: AsJson = False,
    as_csv: AsCsv = False,
) -> None:
    """Site limits against what is placed, per row and per facility, and racks in service against the rollout plan.

    Allocated is the design draw of the racks standing in a place; available is capacity minus
    allocated (red when over); p95 drawn is the measured draw over the last 15 minutes. The
    plan compares racks in service now (the current quarter) or the forecast (other quarters)
    with the target. --csv prints the rows; --json prints rows, facilities and the plan.
    """
    from twin.domain.fleet import quarter_of

    fmt = output_format(as_json, as_csv)
    quarter = quarter or quarter_of(datetime.now(timezone.utc))
    with answers() as source:
        rows = source.headroom(level="row", facility=facility)
        facilities = source.headroom(level="facility", facility=facility)
        rollout = source.rollout(facility=facility)
    if quarter not in rollout.quarters:
        fail(f"--quarter {quarter!r} is not a quarter of the rollout plan; valid values: {', '.join(rollout.quarters)}")
    plan = [c.model_dump() for c in rollout.cells if c.quarter == quarter]
    row_dicts = [p.model_dump() for p in rows.places]
    facility_dicts = [p.model_dump() for p in facilities.places]
    if fmt is not Format.TABLE:
        emit(row_dicts, _ROW_COLUMNS, fmt, console=console,
             document={"quarter": quarter, "rows": rows, "facilities": facilities, "plan": plan})
        return
    emit(row_dicts, _ROW_COLUMNS, fmt, console=console,
         title="power capacity by row (allocated = design draw of the racks standing there)")
    emit(facility_dicts, _FACILITY_COLUMNS, fmt, console=console, title="power capacity by facility")
    emit(plan, _PLAN_COLUMNS, fmt, console=console, title=f"rollout plan, {quarter}", caption=freshness_line(rows))
