"""`twin grafana`: write the dashboards and provisioning files, or push them to a Grafana."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console

__all__ = ["grafana_app"]

grafana_app = typer.Typer(
    help="The fleet dashboards, built as code: export them for provisioning, or push them to a Grafana.",
    no_args_is_help=True,
)
console = Console()
err = Console(stderr=True)

TOKEN_ENV = "TWIN_GRAFANA_TOKEN"


@grafana_app.command("export")
def export_command(
    out: Annotated[Path, typer.Option("--out", help="The deploy/grafana directory to write.")] = Path("deploy/grafana"),
) -> None:
    """Write the five dashboards and Grafana's provisioning files under OUT.

    Files: dashboards/*.json, provisioning/datasources/fleet-twin.yaml and
    provisioning/dashboards/fleet-twin.yaml (the layout a Grafana container mounts)."""
    from twin.grafana.provisioning import export

    for path in export(out):
        console.print(f"wrote {path}")


@grafana_app.command("push")
def push_command(
    url: Annotated[str, typer.Option("--url", help="Grafana's base URL, e.g. http://127.0.0.1:3000.")],
    datasource_url: Annotated[Optional[str], typer.Option(
        "--datasource-url", help="Also create the PostgreSQL data source, reaching the twin database at this "
        "postgresql:// URL as the Grafana server sees it (its password is sent only on creation).")] = None,
    timeout: Annotated[float, typer.Option(help="Seconds to wait for each request.")] = 10.0,
) -> None:
    """Provision the dashboards through Grafana's HTTP API (token in TWIN_GRAFANA_TOKEN).

    Writes the folder and the dashboards (and with --datasource-url the data source). The token is
    a service account token with the Editor role. Only what differs is written: pushing again
    creates no new dashboard versions."""
    from twin.errors import TwinError
    from twin.grafana.push import DataSourceTarget, push

    token = os.environ.get(TOKEN_ENV)
    if not token:
        err.print(f"[bold red]error:[/] set {TOKEN_ENV} to a Grafana service account token (Editor role)")
        raise typer.Exit(2)
    try:
        report = push(url, token, datasource=DataSourceTarget.from_url(datasource_url) if datasource_url else None,
                      timeout=timeout)
    except TwinError as exc:
        err.print(f"[bold red]error:[/] {exc}")
        raise typer.Exit(1) from None
    for verb, names in (("created", report.created), ("updated", report.updated), ("unchanged", report.unchanged)):
        for name in names:
            console.print(f"{verb:9} {name}")
