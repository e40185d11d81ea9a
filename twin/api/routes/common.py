"""What every read route shares: the caller's token, a connection, and freshness on the answer."""

from __future__ import annotations

from typing import Annotated, Any, TypeVar

import psycopg
from fastapi import Depends, HTTPException

from twin.api.auth import Connection, require
from twin.store import queries
from twin.store.tokens import Token

__all__ = ["Connection", "Reader", "Writer", "Admin", "fresh", "found"]

Reader = Annotated[Token, Depends(require("read"))]
Writer = Annotated[Token, Depends(require("write"))]
Admin = Annotated[Token, Depends(require("admin"))]

T = TypeVar("T")


def fresh(conn: psycopg.Connection[dict[str, Any]], answer: T) -> T:
    """The answer with how fresh it is (newest event reflected, worker lag)."""
    return answer.model_copy(update={"freshness": queries.freshness(conn)})  # type: ignore[attr-defined]


def found(answer: T | None, what: str) -> T:
    """404 for an unknown thing, and for one the caller may not see (the same answer: nothing leaks)."""
    if answer is None:
        raise HTTPException(404, f"no {what} (or not one this token may see)")
    return answer
