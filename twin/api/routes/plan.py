"""Deployment against the rollout plan, and the generation scorecard."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from twin.api.routes.common import Connection, Reader, fresh
from twin.store import queries
from twin.store.answers import RolloutProgress, Scorecard

router = APIRouter(tags=["plan"])


@router.get("/rollout", response_model=RolloutProgress)
def rollout(
    caller: Reader, conn: Connection,
    facility: Annotated[str | None, Query(max_length=64, description="Only this facility.")] = None,
) -> RolloutProgress:
    """Per facility, generation and quarter 2026Q3-2029Q4: target, in service, forecast from measured lead times."""
    return fresh(conn, queries.rollout(conn, owner=caller.owner, facility=facility))


@router.get("/scorecard", response_model=Scorecard)
def scorecard(
    caller: Reader, conn: Connection,
    generation: Annotated[str | None, Query(max_length=64, description="Only this generation.")] = None,
) -> Scorecard:
    """Generations side by side: in service, deviation rate per subsystem, RMA and failure rates per rack-year,
    lead times, onshore share, power per rack against budget."""
    return fresh(conn, queries.scorecard(conn, owner=caller.owner, generation=generation))
