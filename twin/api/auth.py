"""Bearer tokens on every request: 401 without a live token, 403 without the endpoint's scope.

The token's owner rides along: every route passes `caller.owner` to the queries, which scope
in SQL. Another partner's rack is then simply not found (404), so its existence does not leak.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Annotated, Any

import psycopg
from fastapi import Depends, HTTPException, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from twin.store.tokens import Token, verify_token

__all__ = ["Caller", "database", "require"]

_bearer = HTTPBearer(auto_error=False, description="`Authorization: Bearer twin_<id>_<secret>` (see `twin token create`).")


def database(request: Request) -> Iterator[psycopg.Connection[dict[str, Any]]]:
    """One pooled connection for the request (autocommit, dict rows)."""
    with request.app.state.pool.connection() as conn:
        yield conn


Connection = Annotated[psycopg.Connection[dict[str, Any]], Depends(database)]


def require(scope: str) -> Callable[..., Token]:
    """A dependency that yields the calling token when it is live and holds `scope` (admin holds all)."""

    def caller(conn: Connection,
               credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]) -> Token:
        if credentials is None or credentials.scheme.lower() != "bearer":
            raise HTTPException(401, "send a token: Authorization: Bearer <token> (create one with `twin token create`)",
                                headers={"WWW-Authenticate": "Bearer"})
        token = verify_token(conn, credentials.credentials)
        if token is None:
            raise HTTPException(401, "unknown or revoked token", headers={"WWW-Authenticate": "Bearer"})
        if not token.allows(scope):
            raise HTTPException(403, f"this token's scopes are {', '.join(token.scopes)}; this endpoint needs {scope}")
        return token

    return caller


Caller = Token
