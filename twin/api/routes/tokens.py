"""The token list, for admins (tokens are created and revoked with `twin token`)."""

from __future__ import annotations

from fastapi import APIRouter
from twin.api.routes.common import Admin, Connection
from twin.store.tokens import TokenList, list_tokens

router = APIRouter(tags=["access"])


@router.get("/tokens", response_model=TokenList)
def tokens(caller: Admin, conn: Connection) -> TokenList:
    """Tokens (never their secrets); an owner-scoped admin sees only its owner's."""
    return TokenList(tokens=list_tokens(conn, owner=caller.owner))
