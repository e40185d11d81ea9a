"""Capacity planning: `twin fleet`, `twin headroom`, `twin place`, `twin plan`, `twin scorecard`.

Each verb calls the query the HTTP API calls (`twin.store.queries`) and prints its answer:
`--json` is the API's document, freshness included; the table and `--csv` show its rows.
"""

from __future__ import annotations

from typing import Annotated, Any, Optional

import typer
from rich.markup import escape

from twin.commands import PLAN, console, freshness_line
from twin.commands.answers import answers
from twin.output import AsCsv, AsJson, Column, Format, emit, output_format

app = typer.Typer()


def _kw(header: str, field: str, *, red_below_zero: bool = False) -> Column:
    return Column(header, lambda r: None if r.get(field) is None else r[field] / 1000,
                  text=lambda v: "-" if v is None else f"{v:,.0f}", justify="right",
                  style=(lambda r: "red" if (r.get(field) or 0) < 0 else None) if red_below_zero else None)


def _share(value: Any) -> str:
    return "-" if value is None else f"{value:.0%}"


_KEY_HEADERS = {"facility_id": "facility", "hall_id": "hall", "row_id": "row", "generation": "generation",
                "stage": "stage", "owner": "owner"}


@app.command(rich_help_panel=PLAN)
def fleet(
    by: Annotated[Optional[list[str]], typer.Option(
        "--by", help="Group by this dimension; repeat for several: facility, hall, row, generation, stage, owner.",
        show_default="facility and generation")] = None,
    as_json: AsJson = False,
    as_csv: AsCsv = False,
) -> None:
    """The fleet summary: racks, racks in service, with deviations, critical, measured and allocated draw per group.

    --json prints what GET /v1/fleet/summary answers.
    """
    fmt = output_format(as_json, as_csv)
    group_by = by or ["facility", "generation"]
    with answers() as source:
        answer = source.fleet_summary(group_by=group_by)
    keys = list(answer.groups[0].key) if answer.groups else []
    rows = [{**g.key, **g.model_dump(exclude={"key"})} for g in answer.groups]
    columns = [*(Column.of(k, _KEY_HEADERS.get(k, k), key=True) for k in keys),
               Column.of("racks", justify="right"), Column.of("in_service", "in service", justify="right"),
               Column.of("with_deviations", "with deviations", justify="right"),
               Column.of("critical", justify="right", style=lambda r: "red" if r["critical"] else None),
               _kw("power kW", "power_watts"), _kw("allocated kW", "allocated_draw_watts")]
    emit(rows, columns, fmt, console=console, title=f"{answer.racks:,} racks by {', '.join(group_by)}",
         caption=freshness_line(answer), document=answer)


_HEADROOM_KEYS = {"facility": ("facility_id",), "hall": ("facility_id", "hall_id"),
                  "row": ("facility_id", "hall_id", "row_id")}


@app.command(rich_help_panel=PLAN)
def headroom(
    level: Annotated[str, typer.Option(help="Per facility, hall or row.")] = "row",
    facility: Annotated[Optional[str], typer.Option(help="Only this facility, e.g. dfw1.")] = None,
    window: Annotated[int, typer.Option(min=1, max=10_080, help="Minutes over which the measured p95 draw is "
                                        "taken.")] = 15,
    as_json: AsJson = False,
    as_csv: AsCsv = False,
) -> None:
    """Headroom: site power and cooling limits, design draw allocated to placed racks, measured p95 draw, what is left.

    Available = capacity - allocated (red when over). --json prints what GET /v1/headroom answers.
    """
    fmt = output_format(as_json, as_csv)
    with answers() as source:
        answer = source.headroom(level=level, facility=facility, window_minutes=window)
    rows = [p.model_dump() for p in answer.places]
    columns = [*(Column.of(k, _KEY_HEADERS[k], key=True) for k in _HEADROOM_KEYS[answer.level]),
               Column.of("operator"), Column.of("racks", justify="right"),
               Column.of("free_positions", "free positions", justify="right"),
               _kw("power capacity kW", "power_capacity_watts"), _kw("allocated kW", "allocated_draw_watts"),
               _kw(f"p95 drawn kW ({answer.window_minutes} min)", "measured_p95_watts"),
               _kw("power left kW", "available_power_watts", red_below_zero=True),
               _kw("cooling capacity kW", "cooling_capacity_watts"),
               _kw("cooling left kW", "available_cooling_watts", red_below_zero=True)]
    emit(rows, columns, fmt, console=console, title=f"headroom per {answer.level}", caption=freshness_line(answer),
         document=answer)


@app.command(rich_help_panel=PLAN)
def place(
    generation: Annotated[str, typer.Argument(help="Generation to place, e.g. gen-b-200kw.")],
    count: Annotated[int, typer.Argument(min=1, max=100_000, help="How many racks.")],
    facility: Annotated[Optional[str], typer.Option(help="Only in this facility, e.g. dfw1.")] = None,
    as_json: AsJson = False,
    as_csv: AsCsv = False,
) -> None:
    """What if: where COUNT racks of GENERATION would fit within power, cooling and free positions, and what is left.

    Nothing is reserved. --json prints what GET /v1/placement answers.
    """
    fmt = output_format(as_json, as_csv)
    with answers() as source:
        answer = source.place(generation, count, facility=facility)
    rows = [r.model_dump() for r in answer.rows]
    columns = [Column.of("facility_id", "facility", key=True), Column.of("hall_id", "hall"), Column.of("row_id", "row"),
               Column.of("racks", justify="right"),
               _kw("power left kW", "available_power_watts_after"),
               _kw("cooling left kW", "available_cooling_watts_after"),
               Column.of("free_positions_after", "free positions left", justify="right")]
    title = (f"{answer.placed:,} of {answer.requested:,} {answer.generation} racks fit "
             f"({answer.design_draw_watts / 1000:,.0f} kW design draw each)")
    if answer.unplaced:
        title += f"; {answer.unplaced:,} do not fit"
    emit(rows, columns, fmt, console=console, title=title, caption=freshness_line(answer), document=answer)


@app.command("plan", rich_help_panel=PLAN)
def plan(
    facility: Annotated[Optional[str], typer.Option(help="Only this facility, e.g. dfw1.")] = None,
    as_json: AsJson = False,
    as_csv: AsCsv = False,
) -> None:
    """Deployment progress against the rollout plan per facility, generation and quarter, 2026H2 to 2029, with a forecast.

    The table shows forecast/target per quarter (red when the forecast misses the target); the
    forecast adds racks on their way, due at the measured median lead time to service.
    --csv prints one line per cell; --json prints what GET /v1/rollout answers.
    """
    fmt = output_format(as_json, as_csv)
    with answers() as source:
        answer = source.rollout(facility=facility)
    cells = [c.model_dump() for c in answer.cells]
    if fmt is not Format.TABLE:
        columns = [Column.of("facility_id", key=True), Column.of("generation"), Column.of("quarter"),
                   Column.of("target"), Column.of("in_service"), Column.of("forecast"), Column.of("on_plan")]
        emit(cells, columns, fmt, console=console, document=answer)
        return
    pairs: dict[tuple[str, str], dict[str, Any]] = {}
    for c in cells:
        pairs.setdefault((c["facility_id"], c["generation"]), {"facility_id": c["facility_id"],
                                                              "generation": c["generation"]})[c["quarter"]] = c
    keys = [Column.of("facility_id", "facility", key=True), Column.of("generation", key=True)]
    quarters = [Column(q, lambda r, q=q: r.get(q),
                       text=lambda c: "-" if c is None else f"{c['forecast']}/{c['target']}", justify="right",
                       key=True, style=lambda r, q=q: "red" if r.get(q) and not r[q]["on_plan"] else None)
                for q in answer.quarters]
    lead = ", ".join(f"{stage} {days:.1f}" for stage, days in answer.lead_time_days_to_service.items())
    caption = "; ".join(x for x in (f"median days to service: {lead}" if lead else "", freshness_line(answer)) if x)
    title = f"rollout plan revision {answer.plan_revision}: forecast/target racks in service at quarter end"
    rows = list(pairs.values())
    if not console.is_terminal:
        emit(rows, [*keys, *quarters], fmt, console=console, title=title, caption=caption, document=answer)
        return
    for i, chunk in enumerate(_fitting(rows, keys, quarters, console.width)):
        emit(rows, [*keys, *chunk], fmt, console=console, title=None if i else title, compact=True)
    console.print(f"[dim]{escape(caption)}[/]")


def _fitting(rows: list[dict[str, Any]], keys: list[Column], columns: list[Column], width: int) -> list[list[Column]]:
    """`columns` in runs that fit beside `keys` in `width` (a terminal too narrow for every quarter at once)."""
    def span(c: Column) -> int:  # a compact table's column: its widest text, a rule and a space
        return 2 + max([len(c.header), *(len(c.cell(r)) for r in rows)])

    room = width - sum(span(k) for k in keys) - 1
    chunks: list[list[Column]] = [[]]
    used = 0
    for c in columns:
        if chunks[-1] and used + span(c) > room:
            chunks.append([])
            used = 0
        chunks[-1].append(c)
        used += span(c)
    return chunks


def _metric(label: str, get: Any, text: Any = None) -> tuple[str, Any, Any]:
    return label, get, text or (lambda v: "-" if v is None else f"{v:,.2f}" if isinstance(v, float) else str(v))


@app.command(rich_help_panel=PLAN)
def scorecard(
    generation: Annotated[Optional[str], typer.Option(help="Only this generation, e.g. gen-c-600kw.")] = None,
    as_json: AsJson = False,
    as_csv: AsCsv = False,
) -> None:
    """Generations side by side: in service, deviations, RMA and failures, lead times, onshore share, power.

    Deviation rate per subsystem, RMA and failures per rack-year in service, lead time per
    stage (median and p90), onshore share, power per rack against budget. One row per measure, one column per generation (CSV too). --json prints what GET /v1/scorecard answers.
    """
    from twin.store.queries import SUBSYSTEMS

    fmt = output_format(as_json, as_csv)
    with answers() as source:
        answer = source.scorecard(generation=generation)
    gens = answer.generations
    stages = list(dict.fromkeys(lt.stage for g in gens for lt in g.lead_times))
    kw = lambda v: "-" if v is None else f"{v / 1000:,.1f}"  # noqa: E731
    metrics = [
        _metric("racks", lambda g: g.racks),
        _metric("racks in service", lambda g: g.racks_in_service),
        _metric("rack-years in service", lambda g: g.rack_years_in_service),
        _metric("RMA per rack-year", lambda g: g.rma_per_rack_year),
        _metric("failures per rack-year", lambda g: g.failures_per_rack_year),
        *(_metric(f"deviation rate {s}", lambda g, s=s: g.deviation_rate.get(s), _share) for s in SUBSYSTEMS),
        *(_metric(f"lead time {stage} (median / p90 d)",
                  lambda g, st=stage: next(((lt.median_days, lt.p90_days) for lt in g.lead_times if lt.stage == st), None),
                  lambda v: "-" if v is None else f"{v[0]:.1f} / {v[1]:.1f}") for stage in stages),
        _metric("onshore share", lambda g: g.onshore_share, _share),
        _metric("power per rack kW", lambda g: g.power_per_rack_watts, kw),
        _metric("power budget kW", lambda g: g.power_budget_watts, kw),
        _metric("power vs budget", lambda g: None if not g.power_per_rack_watts or not g.power_budget_watts
                else g.power_per_rack_watts / g.power_budget_watts, _share),
    ]
    rows = [{"measure": label, **{g.generation: get(g) for g in gens}, "_text": text} for label, get, text in metrics]
    columns = [Column.of("measure", key=True),
               *(Column(g.generation, lambda r, n=g.generation: r[n], render=lambda r, n=g.generation: r["_text"](r[n]),
                        justify="right") for g in gens)]
    emit(rows, columns, fmt, console=console, title="generation scorecard", caption=freshness_line(answer),
         document=answer)
