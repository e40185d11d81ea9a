"""Our errors and the libraries' mapped to HTTP answers in one place (STYLE: `api.py` maps ours to 4xx/503).

    InvalidQuery                      422  what was wrong and the valid values
    RequestValidationError (FastAPI)  422  FastAPI's own: which parameter, what it expects
    StoreError, psycopg, PoolTimeout  503  the database is not answering; retry later
    PublishError                      503  the broker is not answering; nothing was published
"""

from __future__ import annotations

from typing import Any

import psycopg
import structlog
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from psycopg_pool import PoolTimeout
from pydantic import BaseModel

from twin.errors import InvalidQuery, StoreError
from twin.publisher import PublishError

__all__ = ["ERROR_RESPONSES", "Problem", "install"]

log = structlog.get_logger(__name__)


class Problem(BaseModel):
    """Every error answer: `detail` says what to fix; `valid` lists accepted values when there is a list."""

    detail: str
    field: str | None = None
    valid: list[str] | None = None


class ValidationProblem(BaseModel):
    """FastAPI's answer to a malformed request: one entry per wrong parameter."""

    detail: list[dict[str, Any]] | str


ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    401: {"model": Problem, "description": "No token, or an unknown or revoked one."},
    403: {"model": Problem, "description": "The token lacks the scope this endpoint needs."},
    422: {"model": ValidationProblem | Problem, "description": "A parameter or the body is wrong; `detail` says how."},
    503: {"model": Problem, "description": "The database or the broker is not answering; retry later."},
}
"""Responses every endpoint may give, declared so the OpenAPI document (and schemathesis) knows them."""


def install(app: FastAPI) -> None:
    @app.exception_handler(InvalidQuery)
    async def invalid(_: Request, exc: InvalidQuery) -> JSONResponse:
        return JSONResponse(Problem(detail=str(exc), field=exc.field, valid=exc.valid).model_dump(), status_code=422)

    async def unavailable(_: Request, exc: Exception) -> JSONResponse:
        log.warning("dependency unavailable", error=str(exc), kind=type(exc).__name__)
        what = "the broker" if isinstance(exc, PublishError) else "the twin database"
        return JSONResponse(Problem(detail=f"{what} is not answering; retry later").model_dump(), status_code=503,
                            headers={"Retry-After": "5"})

    for kind in (StoreError, psycopg.OperationalError, PoolTimeout, PublishError):
        app.add_exception_handler(kind, unavailable)
