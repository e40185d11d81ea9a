"""The token list, for admins (tokens are created and revoked with `twin token`)."""

from __future__ import annotations

from fastapi import APIRouter
from pydantic import BaseModel

from twin.api.routes.common import Admin, Connection
from twin.store.tokens import Token, list_tokens

router = APIRouter(tags=["access"])


class Tokens(BaseModel):
    tokens: list[Token]


@router.get("/tokens", response_model=Tokens)
def tokens(caller: Admin, conn: Connection) -> Tokens:
    """Tokens (never their secrets); an owner-scoped admin sees only its owner's."""
    return Tokens(tokens=list_tokens(conn, owner=caller.owner))
