"""`twin`: run the fleet twin and ask it questions.

    twin demo                  embedded stack + worker + simulator + live view, one command
    twin up / twin down        start / stop the embedded broker and database
    twin worker                one stream worker against the configured broker and database
    twin simulate              publish a simulated fleet and its telemetry
    twin racks / twin rack ID  the stored twins
    twin capacity              site limits against placed racks, and the rollout plan
    twin fleet / headroom / place / plan / scorecard   capacity planning (the API's answers)
    twin intent list / show    design-intent revisions and the fleet's conformance
    twin deadletters           bad input by reason; `replay` sends it through again
    twin rollup / twin storage telemetry rollups and retention; bytes per rack-day
    twin grafana export|push   the fleet dashboards as code
    twin clean                 remove demo and test state no running stack uses
    twin alerts / twin silence firing alerts, a rack's alert history, the engine; Alertmanager silences

Every address is a setting: TWIN_KAFKA_BOOTSTRAP, TWIN_DATABASE_URL (see `twin settings`).
The verbs live in `twin/commands/`, one module per group; this module only assembles them.
"""

from __future__ import annotations

from typing import Annotated, Any

import typer

from twin.commands import admin, capacity, clean, deadletters, intent, planning, racks, stack
from twin.help import PlainFlagsGroup

app = typer.Typer(
    cls=PlainFlagsGroup,
    help="Run the fleet twin and ask it questions. Addresses come from TWIN_* settings (see `twin settings`).",
    epilog="Start with [bold]twin demo[/]. Step by step: [bold]twin up[/] (prints the exports), then "
           "[bold]twin worker[/] and [bold]twin simulate[/] in other terminals, then [bold]twin racks --stage active[/], "
           "[bold]twin rack RACK_ID --as-of 2026-10-01[/], [bold]twin capacity[/], [bold]twin deadletters[/]. "
           "Every read verb takes [bold]--json[/] or [bold]--csv[/].",
    no_args_is_help=True, rich_markup_mode="rich", pretty_exceptions_show_locals=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)
app.add_typer(stack.app)
app.add_typer(racks.app)
app.add_typer(capacity.app)
app.add_typer(planning.app)
app.add_typer(admin.app)
app.add_typer(clean.app)
app.add_typer(deadletters.app, name="deadletters", rich_help_panel="Ask the twin")
app.add_typer(intent.app, name="intent", rich_help_panel="Ask the twin")
from twin.api.commands import serve as _serve_api, token_app  # noqa: E402  (the API's verbs live with the API)
app.add_typer(token_app, name="token", rich_help_panel="Run the twin")
app.command("api", rich_help_panel="Run the twin")(_serve_api)
from twin.verify_command import verify as _verify  # noqa: E402  (its own module; registered here)
app.command("verify", rich_help_panel="Look after it")(_verify)
from twin.grafana.cli import grafana_app  # noqa: E402  (dashboards as code)
from twin.storage_cli import register as _register_storage  # noqa: E402
app.add_typer(grafana_app, name="grafana", rich_help_panel="Run the twin")
_register_storage(app, rich_help_panel="Look after it")  # twin storage, twin rollup
from twin.topics_cli import topics_app  # noqa: E402  (deploy: `twin topics create|rewind`, production's jobs)
app.add_typer(topics_app, name="topics", rich_help_panel="Run the twin")
from twin.alerting.cli import alerts_app, silence_app  # noqa: E402  (alerting's verbs live with alerting)
app.add_typer(alerts_app, name="alerts", rich_help_panel="Ask the twin")
app.add_typer(silence_app, name="silence", rich_help_panel="Look after it")


def _version(value: bool) -> None:
    if value:
        from importlib.metadata import PackageNotFoundError, version

        try:
            typer.echo(f"twin (fleet-twin) {version('fleet-twin')}")
        except PackageNotFoundError:
            typer.echo("twin (fleet-twin, not installed)")
        raise typer.Exit()


@app.callback()
def _configure(
    log_level: Annotated[str, typer.Option(envvar="TWIN_LOG_LEVEL", help="debug, info, warning or error.")] = "warning",
    version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True,
                                          help="Print the version and exit.")] = False,
) -> None:
    from twin.logs import configure

    try:
        configure(log_level)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--log-level") from None


def main() -> Any:
    return app()
