"""`twin alerts` and `twin silence`: what is firing, a rack's alert history, the engine, and silences.

    twin alerts                      firing (and pending, suppressed) alerts now
    twin alerts history [RACK]       transitions, newest first (one rack's, or all)
    twin alerts rules                every rule: severity, for-duration, owner, runbook
    twin alerts run                  the alert engine (one is active; more stand by)
    twin silence create --rack R --for 2h --comment "..."    (or --facility / --generation / --cooling-unit)
    twin silence list | expire ID

Silences live in Alertmanager (API v2, TWIN_ALERTMANAGER_URL); the alert state in the twin database.
"""

from __future__ import annotations

import re
import signal
import threading
from datetime import timedelta
from typing import Annotated, Any, Optional

import typer
from rich.console import Console
from rich.table import Table

from twin.errors import TwinError

__all__ = ["alerts_app", "silence_app"]

alerts_app = typer.Typer(help="Alerts: what is firing now, a rack's history, the rules, the engine.",
                         invoke_without_command=True)
silence_app = typer.Typer(help="Silences in Alertmanager, by rack, facility, generation or CDU.", no_args_is_help=True)
console = Console()
err = Console(stderr=True)


def _fail(exc: Exception) -> None:
    err.print(f"[bold red]error:[/] {exc}")
    raise typer.Exit(2)


def _store() -> Any:
    from twin.alerting.store import AlertStore
    from twin.settings import get_settings

    return AlertStore.connect(get_settings().database_url.get_secret_value())


def _when(ts: Any) -> str:
    return "-" if ts is None else ts.strftime("%Y-%m-%d %H:%M:%S")


@alerts_app.callback()
def alerts(
    ctx: typer.Context,
    all_phases: Annotated[bool, typer.Option("--all", help="Also pending and suppressed (stage explains it).")] = False,
) -> None:
    """Firing alerts now, critical first, with the measured value, the design band and the runbook."""
    if ctx.invoked_subcommand is not None:
        return
    try:
        store = _store()
        try:
            rows = store.live(("firing", "pending", "suppressed") if all_phases else ("firing",))
        finally:
            store.close()
    except TwinError as exc:
        _fail(exc)
    if not rows:
        console.print("no alerts firing" + ("" if all_phases else " (--all shows pending and suppressed too)"))
        return
    table = Table("phase", "severity", "alert", "subject", "since", "summary", "runbook", title="alerts")
    for r in rows:
        labels, notes = r["labels"], r["annotations"]
        subject = r["rack_id"] or r["alert_key"].split("/", 1)[1]
        colour = "red" if labels.get("severity") == "critical" else "yellow"
        table.add_row(r["phase"], f"[{colour}]{labels.get('severity', '')}[/]", r["rule"], subject,
                      _when(r["fired_at"] or r["active_since"]), notes.get("summary", ""), notes.get("runbook_url", ""))
    console.print(table)


@alerts_app.command("history")
def history(
    rack: Annotated[Optional[str], typer.Argument(help="A rack id; leave out for the whole fleet.")] = None,
    limit: Annotated[int, typer.Option(min=1, max=10_000, help="At most this many transitions.")] = 50,
) -> None:
    """Alert transitions (pending, firing, resolved, suppressed, cancelled), newest first, with delivery."""
    try:
        store = _store()
        try:
            rows = store.history(rack, limit)
        finally:
            store.close()
    except TwinError as exc:
        _fail(exc)
    if not rows:
        console.print(f"no alert history{' for ' + rack if rack else ''}")
        return
    table = Table("at", "alert", "subject", "from", "to", "measured", "band", "delivered to Alertmanager",
                  title=f"alert history{' of ' + rack if rack else ''}")
    for r in rows:
        am = r["alertmanager_at"]
        delivered = "not a page" if r["not_a_page"] else _when(am) if am else "pending"
        table.add_row(_when(r["at"]), r["rule"], r["rack_id"] or r["alert_key"].split("/", 1)[1],
                      r["previous"] or "-", r["phase"], r["annotations"].get("measured", "-"),
                      r["annotations"].get("band", "-"), delivered)
    console.print(table)


@alerts_app.command("rules")
def rules() -> None:
    """Every rule: scope, severity, `for` duration, owner and runbook."""
    from twin.alerting.rules import RULES, RackRule

    table = Table("rule", "scope", "severity", "for", "owner", "subsystem", "quiet in stages", "runbook")
    for name, rule in RULES.items():
        scope = "rack" if isinstance(rule, RackRule) else rule.scope
        quiet = ", ".join(sorted(rule.explained_by)) if isinstance(rule, RackRule) else "-"
        severity = rule.severity if isinstance(rule, RackRule) or not rule.severity_from else (
            f"{rule.severity_from}'s, up to {rule.severity}")
        table.add_row(name, scope, severity, f"{rule.for_seconds:g} s", rule.owner, rule.subsystem, quiet,
                      f"docs/runbooks/{name}.md")
    console.print(table)


@alerts_app.command("run")
def run() -> None:
    """Run the alert engine until Ctrl-C: rules, alert history, Alertmanager, PagerDuty, fleet.alerts.v1.

    Start more than one for take-over: one is active (it holds a database lock), the others stand by.
    Timing: TWIN_ALERT_EVAL_SECONDS, TWIN_ALERT_RESEND_SECONDS, TWIN_ALERT_FOR_SCALE (see `twin alerts rules`).
    """
    from twin.alerting.engine import Engine
    from twin.alerting.settings import get_alerting_settings
    from twin.logs import configure
    from twin.settings import get_settings
    from twin.store.migrations import migrate

    settings = get_settings()
    configure(settings.log_level)
    stop = threading.Event()
    for s in (signal.SIGINT, signal.SIGTERM):
        signal.signal(s, lambda *_: stop.set())
    try:
        migrate(settings.database_url.get_secret_value())
        engine = Engine(settings.database_url.get_secret_value(), get_alerting_settings(),
                        stale_after_seconds=settings.telemetry_stale_seconds,
                        kafka_bootstrap=settings.kafka_bootstrap, alerts_topic=settings.topics.alerts)
        engine.run(stop, on_active=lambda: print("alert engine active", flush=True))
    except TwinError as exc:
        _fail(exc)


_DURATION = re.compile(r"^(\d+(?:\.\d+)?)([smhd])$")


def _duration(text: str) -> timedelta:
    match = _DURATION.match(text.strip())
    if not match:
        raise typer.BadParameter(f"{text!r} is not a duration: write 30m, 2h or 1d", param_hint="--for")
    return timedelta(seconds=float(match[1]) * {"s": 1, "m": 60, "h": 3600, "d": 86400}[match[2]])


def _alertmanager() -> Any:
    from twin.alerting.alertmanager import Alertmanager
    from twin.alerting.settings import get_alerting_settings

    return Alertmanager(get_alerting_settings().alertmanager_url, attempts=2)


@silence_app.command("create")
def silence_create(
    comment: Annotated[str, typer.Option(help="Why: the change ticket, the work being done.")],
    rack: Annotated[Optional[str], typer.Option(help="Silence this rack's alerts.")] = None,
    facility: Annotated[Optional[str], typer.Option(help="Silence every alert of this facility.")] = None,
    generation: Annotated[Optional[str], typer.Option(help="Silence every alert of this generation.")] = None,
    cooling_unit: Annotated[Optional[str], typer.Option(
        help="Silence this CDU's alert and the cooling alerts of the racks it feeds (CDU maintenance).")] = None,
    rule: Annotated[Optional[str], typer.Option(help="Only this rule (alertname), e.g. rack-telemetry-stale.")] = None,
    duration: Annotated[str, typer.Option("--for", help="How long: 30m, 2h, 1d.")] = "2h",
    author: Annotated[str, typer.Option(help="Who silenced it.", envvar="USER")] = "twin",
) -> None:
    """Silence alerts by rack, facility, generation or CDU (several narrow it down) in Alertmanager.

    Example: twin silence create --facility fra-1 --rule rack-telemetry-stale --for 4h --comment "CHG-123 collector swap"
    """
    from twin.alerting.alertmanager import Matcher

    matchers = [Matcher(k, v) for k, v in (("rack", rack), ("facility", facility), ("generation", generation),
                                           ("cooling_unit", cooling_unit), ("alertname", rule)) if v]
    if not any(m.name != "alertname" for m in matchers):
        raise typer.BadParameter("say what to silence: --rack, --facility, --generation or --cooling-unit",
                                 param_hint="--rack")
    length = _duration(duration)
    try:
        with _alertmanager() as am:
            silence_id = am.create_silence(matchers, length, created_by=author, comment=comment)
    except TwinError as exc:
        _fail(exc)
    console.print(f"silence {silence_id} created for {duration}: "
                  + ", ".join(f'{m.name}="{m.value}"' for m in matchers))
    print(silence_id)


@silence_app.command("list")
def silence_list(
    expired: Annotated[bool, typer.Option("--expired", help="Also expired silences.")] = False,
) -> None:
    """Active (and pending) silences: id, what they match, until when, who and why."""
    try:
        with _alertmanager() as am:
            found = am.silences(active_only=not expired)
    except TwinError as exc:
        _fail(exc)
    if not found:
        console.print("no silences")
        return
    table = Table("state", "matches", "ends", "by", "comment", title="silences")
    table.add_column("id", no_wrap=True, min_width=36)  # copied into `twin silence expire`: never cut
    for s in sorted(found, key=lambda s: s.ends_at):
        table.add_row(s.state, ", ".join(f'{m.name}="{m.value}"' for m in s.matchers),
                      s.ends_at.strftime("%Y-%m-%d %H:%M"), s.created_by, s.comment, s.id)
    console.print(table)


@silence_app.command("expire")
def silence_expire(silence_id: Annotated[str, typer.Argument(help="The id `twin silence list` shows.")]) -> None:
    """End a silence now: its alerts page again."""
    try:
        with _alertmanager() as am:
            am.expire_silence(silence_id)
    except TwinError as exc:
        _fail(exc)
    console.print(f"silence {silence_id} expired")
