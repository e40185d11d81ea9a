"""API access tokens: created, listed, revoked and verified, stored only as a hash.

A token reads `twin_<id>_<secret>`: the id names it in lists and logs, the secret is 256
random bits shown once at creation. The table keeps sha256(token). Why not bcrypt or argon2:
those stretch low-entropy passwords against guessing; nobody can guess 2^256, and a slow hash
would add tens of milliseconds to every request. Scopes are `read` (the GET endpoints),
`write` (POST /v1/events) and `admin` (everything, and the token list); `owner` narrows
every read to one partner operator's facilities.
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import datetime
from typing import Any, Literal

import psycopg
from pydantic import BaseModel

from twin.errors import InvalidQuery

__all__ = ["SCOPES", "Scope", "Token", "TokenList", "create_token", "list_tokens", "revoke_token", "verify_token"]

Scope = Literal["read", "write", "admin"]
SCOPES: tuple[str, ...] = ("read", "write", "admin")


class Token(BaseModel):
    """A token as listed: never its secret."""

    token_id: str
    name: str
    scopes: list[Scope]
    owner: str | None
    created_at: datetime
    revoked_at: datetime | None

    def allows(self, scope: str) -> bool:
        return scope in self.scopes or "admin" in self.scopes


class TokenList(BaseModel):
    tokens: list[Token]


def _digest(secret: str) -> bytes:
    return hashlib.sha256(secret.encode()).digest()


_COLUMNS = "token_id, name, scopes, owner, created_at, revoked_at"


def create_token(conn: psycopg.Connection[Any], name: str, scopes: list[str], owner: str | None = None) -> tuple[Token, str]:
    """A new token and its secret (shown once). `owner` must be a known operator once facilities exist."""
    bad = sorted(set(scopes) - set(SCOPES))
    if bad or not scopes:
        raise InvalidQuery("scope", ",".join(bad) or "", list(SCOPES), "give at least one scope")
    if not name.strip():
        raise InvalidQuery("name", name, hint="name the token after who uses it")
    if owner is not None:
        operators = [r[0] if isinstance(r, tuple) else r["operator"]
                     for r in conn.execute("SELECT DISTINCT operator FROM facilities ORDER BY 1")]
        if operators and owner not in operators:
            raise InvalidQuery("owner", owner, operators, "an owner is a facility operator's name")
    token_id = secrets.token_hex(4)
    secret = f"twin_{token_id}_{secrets.token_urlsafe(32)}"
    row = conn.execute(
        f"INSERT INTO api_tokens (token_id, name, secret_sha256, scopes, owner) VALUES (%s, %s, %s, %s, %s)"
        f" RETURNING {_COLUMNS}", (token_id, name, _digest(secret), sorted(set(scopes)), owner)).fetchone()
    return _token(row), secret


def list_tokens(conn: psycopg.Connection[Any], *, owner: str | None = None, include_revoked: bool = True) -> list[Token]:
    """Tokens by creation time; with `owner`, only that owner's."""
    rows = conn.execute(
        f"SELECT {_COLUMNS} FROM api_tokens WHERE (%(owner)s::text IS NULL OR owner = %(owner)s)"
        " AND (%(all)s OR revoked_at IS NULL) ORDER BY created_at, token_id",
        {"owner": owner, "all": include_revoked}).fetchall()
    return [_token(r) for r in rows]


def revoke_token(conn: psycopg.Connection[Any], token_id: str) -> bool:
    """Revoke a token at once; False when no live token has that id."""
    row = conn.execute("UPDATE api_tokens SET revoked_at = now() WHERE token_id = %s AND revoked_at IS NULL"
                       " RETURNING token_id", (token_id,)).fetchone()
    return row is not None


def verify_token(conn: psycopg.Connection[Any], secret: str) -> Token | None:
    """The live token with this secret, or None."""
    row = conn.execute(f"SELECT {_COLUMNS} FROM api_tokens WHERE secret_sha256 = %s AND revoked_at IS NULL",
                       (_digest(secret),)).fetchone()
    return None if row is None else _token(row)


def _token(row: Any) -> Token:
    if isinstance(row, tuple):
        row = dict(zip(("token_id", "name", "scopes", "owner", "created_at", "revoked_at"), row, strict=True))
    return Token.model_validate(dict(row))
