"""`twin storage` and `twin rollup`: what telemetry costs on disk, and keeping its rollups current."""

from __future__ import annotations

import time
from datetime import timedelta
from typing import Annotated, Any, Optional

import typer
from rich.console import Console
from rich.table import Table

__all__ = ["register"]

console = Console()
err = Console(stderr=True)

_MiB = 1024 * 1024


def _connect() -> Any:
    """A plain (tuple-row) autocommit connection to the twin database; errors as ours."""
    import psycopg

    from twin.errors import StoreUnavailable
    from twin.settings import get_settings

    try:
        return psycopg.connect(get_settings().database_url.get_secret_value(), autocommit=True, connect_timeout=10)
    except psycopg.OperationalError as exc:
        raise StoreUnavailable(f"cannot reach the twin database: {exc}") from exc


def _size(n: float) -> str:
    for unit, size in (("TiB", 1024**4), ("GiB", 1024**3), ("MiB", _MiB), ("KiB", 1024)):
        if n >= size:
            return f"{n / size:,.1f} {unit}"
    return f"{n:,.0f} B"


def storage(
    racks: Annotated[int, typer.Option(help="Fleet size to project to.")] = 75_000,
    raw_days: Annotated[int, typer.Option(help="Days of raw readings kept.")] = 14,
    minute_days: Annotated[int, typer.Option(help="Days of 1-minute rollups kept.")] = 400,
    hour_years: Annotated[int, typer.Option(help="Years of 1-hour rollups kept.")] = 5,
    estimate: Annotated[bool, typer.Option("--estimate", help="Use the planner's row counts (instant on "
                                           "billions of rows) instead of counting.")] = False,
) -> None:
    """Bytes per rack-day of raw telemetry and its rollups, and the projection to a fleet.

    Measured on the twin database: bytes per row (indexes included) times the rows a rack makes
    in a day."""
    from twin.errors import TwinError
    from twin.store import storage as measured

    try:
        with _connect() as conn:
            tables = measured.measure(conn, exact=not estimate)
    except TwinError as exc:
        err.print(f"[bold red]error:[/] {exc}")
        raise typer.Exit(2) from None
    out = Table(title="Telemetry storage (measured)")
    for col in ("table", "rows", "size", "bytes/row", "per rack-day"):
        out.add_column(col, justify="right" if col != "table" else "left")
    for t in tables.values():
        per_day = t.bytes_per_rack_day
        out.add_row(t.table, f"{t.rows:,}", _size(t.bytes), f"{t.bytes_per_row:,.1f}" if t.rows else "-",
                    _size(per_day) if per_day and t.rows else "-")
    console.print(out)
    per_rack_day = {t.table: t.bytes_per_rack_day or 0.0 for t in tables.values() if t.rows}
    p = measured.project(per_rack_day, racks, raw_days, minute_days, hour_years * 365)
    console.print(f"Projected for {racks:,} racks at 1 Hz: raw {_size(p.raw_bytes_per_day)}/day, "
                  f"{_size(p.raw_bytes)} for {raw_days} days; 1-minute rollups {_size(p.minute_bytes)} for "
                  f"{minute_days} days; 1-hour rollups {_size(p.hour_bytes)} for {hour_years} years; "
                  f"total {_size(p.total_bytes)}.")
    missing = [t for t in ("telemetry", "rack_minutes", "rack_hours") if t not in per_rack_day]
    if missing:
        console.print(f"[yellow]No rows yet in {', '.join(missing)}: their share is left out "
                      "(run `twin rollup --once` after some telemetry).[/]")
    console.print(f"[dim]{measured.TIMESCALE_COMPRESSION}[/]")


def rollup(
    once: Annotated[bool, typer.Option("--once", help="Run once and exit.")] = False,
    every: Annotated[float, typer.Option(help="Seconds between runs.")] = 10.0,
    settle: Annotated[float, typer.Option(help="Seconds a minute must have been closed before it is rolled up "
                                          "(until then dashboards read it from raw rows).")] = 60.0,
    keep_raw_days: Annotated[Optional[int], typer.Option(help="Drop raw daily partitions older than this.")] = 14,
    keep_minute_days: Annotated[Optional[int], typer.Option(help="Drop 1-minute rollup months older than this.")
                                ] = 400,
    keep_hour_days: Annotated[Optional[int], typer.Option(help="Drop 1-hour rollup years older than this "
                                                          "(default: keep for ever).")] = None,
) -> None:
    """Keep the telemetry rollups current and apply retention.

    Rolls the minutes the workers marked up into 1-minute, 1-hour and facility rollups, then drops
    whole partitions past retention. Safe to run in several places: one run at a time holds the
    lock, the others skip."""
    from twin.errors import TwinError
    from twin.store.rollups import RetentionPolicy, apply_retention, roll_up

    policy = RetentionPolicy(keep_raw_days, keep_minute_days, keep_hour_days)
    try:
        with _connect() as conn:
            while True:
                run = roll_up(conn, settle=timedelta(seconds=settle))
                dropped = apply_retention(conn, policy)
                gone = ", ".join(f"{n} {t}" for t, n in dropped.items() if n)
                console.print(("skipped: another rollup holds the lock" if run.skipped else
                               f"rolled up {run.minutes} minutes, {run.hours} hours ({run.rows:,} rows) in "
                               f"{run.seconds:.2f} s; materialized until {run.materialized_until:%Y-%m-%d %H:%M}Z")
                              + (f"; dropped partitions: {gone}" if gone else ""))
                if once:
                    return
                time.sleep(every)
    except TwinError as exc:
        err.print(f"[bold red]error:[/] {exc}")
        raise typer.Exit(2) from None
    except KeyboardInterrupt:
        return


def register(app: typer.Typer, rich_help_panel: str | None = None) -> None:
    """Add `storage` and `rollup` to the `twin` command."""
    app.command("storage", rich_help_panel=rich_help_panel)(storage)
    app.command("rollup", rich_help_panel=rich_help_panel)(rollup)
