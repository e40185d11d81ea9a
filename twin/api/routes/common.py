"""What every read route shares: the caller's token, a connection, and freshness on the answer."""

from __future__ import annotations

from collections.abc import Hashable
from typing import Annotated, Any, TypeVar

import psycopg
from fastapi import Depends, HTTPException, Request, Response

from twin.api.answer_cache import AnswerCache, Compute, with_freshness
from twin.api.auth import Connection, require
from twin.store import queries
from twin.store.tokens import Token

__all__ = ["Connection", "Reader", "Writer", "Admin", "fresh", "fresh_from_summaries", "found"]

Reader = Annotated[Token, Depends(require("read"))]
Writer = Annotated[Token, Depends(require("write"))]
Admin = Annotated[Token, Depends(require("admin"))]

T = TypeVar("T")


def fresh(conn: psycopg.Connection[dict[str, Any]], answer: Any) -> Any:
    """The answer with how fresh it is (newest event reflected, worker lag), serialised once.

    Returned as a ready response: FastAPI would otherwise validate the model a second time
    against the route's response model, which costs as much as building it for 4,500 rows of
    headroom. The route still declares the model, so the OpenAPI document describes the answer,
    and the tests check every answer against that document.
    """
    answer = answer.model_copy(update={"freshness": queries.freshness(conn)})
    return Response(answer.model_dump_json(), media_type="application/json")


def fresh_from_summaries(request: Request, conn: psycopg.Connection[dict[str, Any]], question: Hashable | None,
                         compute: Compute) -> Response:
    """`fresh(conn, compute(conn))`, kept in the app's answer cache under `question` and the current
    `queries.AnswerSources` (twin/api/answer_cache.py); a repeat while they stand costs a lookup.

    `question` must hold everything the answer depends on besides those sources: the route, the
    caller's owner scope and the parameters; None when the answer reads something live (not cached).
    """
    cache: AnswerCache = request.app.state.answers
    body = cache.answer(conn, question, compute)
    return Response(with_freshness(body, queries.freshness(conn)), media_type="application/json")


def found(answer: T | None, what: str) -> T:
    """404 for an unknown thing, and for one the caller may not see (the same answer: nothing leaks)."""
    if answer is None:
        raise HTTPException(404, f"no {what} (or not one this token may see)")
    return answer
