"""`twin api` (serve the HTTP API) and `twin token create|list|revoke` (who may call it)."""

from __future__ import annotations

import json
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.table import Table

from twin.errors import TwinError

__all__ = ["serve", "token_app"]

console = Console()
err = Console(stderr=True)

token_app = typer.Typer(help="API tokens: create (the secret is shown once), list, revoke.", no_args_is_help=True)


def _fail(exc: Exception) -> None:
    err.print(f"[bold red]error:[/] {exc}")
    raise typer.Exit(2)


def _conn():  # type: ignore[no-untyped-def]
    from twin.settings import get_settings
    from twin.store.views import connect

    return connect(get_settings().database_url.get_secret_value())


def serve(
    host: Annotated[Optional[str], typer.Option(help="Interface to listen on.",
                                                      show_default="TWIN_API_HOST, else 127.0.0.1")] = None,
    port: Annotated[Optional[int], typer.Option(help="Port.", show_default="TWIN_API_PORT, else 8080")] = None,
) -> None:
    """Serve the capacity-planning HTTP API (OpenAPI at /openapi.json, docs at /docs).

    Needs TWIN_DATABASE_URL (reads) and TWIN_KAFKA_BOOTSTRAP (POST /v1/events). Callers need a
    token: `twin token create NAME --scope read`.
    """
    import uvicorn

    from twin.api import create_app
    from twin.settings import get_settings

    s = get_settings()
    uvicorn.run(create_app(s), host=host or s.api_host, port=s.api_port if port is None else port,
                log_level="warning", access_log=False)


@token_app.command("create")
def token_create(
    name: Annotated[str, typer.Argument(help="Who uses it, e.g. capacity-notebooks or acme-dc-ops.")],
    scope: Annotated[list[str], typer.Option("--scope", "-s", help="read, write or admin; repeat for several.")] = ["read"],  # noqa: B006
    owner: Annotated[Optional[str], typer.Option(help="Partner operator whose facilities alone it may read.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON (token and secret).")] = False,
) -> None:
    """Create a token and print its secret once (only its hash is stored)."""
    from twin.store.tokens import create_token

    try:
        with _conn() as conn:
            token, secret = create_token(conn, name, scope, owner)
    except TwinError as exc:
        _fail(exc)
    if as_json:
        print(json.dumps({**token.model_dump(mode="json"), "secret": secret}))
        return
    console.print(f"token [bold]{token.token_id}[/] ({', '.join(token.scopes)}"
                  f"{', owner ' + token.owner if token.owner else ''}) created. Its secret, shown only now:")
    print(secret)


@token_app.command("list")
def token_list(
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON document instead of a table.")] = False,
    as_csv: Annotated[bool, typer.Option("--csv", help="Print CSV instead of a table.")] = False,
) -> None:
    """List tokens (never their secrets), revoked ones too."""
    from twin.output import Column, emit, output_format
    from twin.store.tokens import list_tokens

    fmt = output_format(as_json, as_csv)
    try:
        with _conn() as conn:
            tokens = list_tokens(conn)
    except TwinError as exc:
        _fail(exc)
    columns = (Column.of("token_id", "id", key=True), Column.of("name"),
               Column("scopes", lambda t: ",".join(t["scopes"])), Column.of("owner"),
               Column.of("created_at", "created", key=True), Column.of("revoked_at", "revoked", key=True))
    emit([t.model_dump() for t in tokens], columns, fmt, console=console, title=f"{len(tokens)} token(s)",
         document={"tokens": tokens})


@token_app.command("revoke")
def token_revoke(token_id: Annotated[str, typer.Argument(help="The id from `twin token list`.")]) -> None:
    """Revoke a token at once: its next request gets 401."""
    from twin.store.tokens import revoke_token

    try:
        with _conn() as conn:
            done = revoke_token(conn, token_id)
    except TwinError as exc:
        _fail(exc)
    if not done:
        _fail(TwinError(f"no live token with id {token_id!r} (see `twin token list`)"))
    console.print(f"token {token_id} revoked")
