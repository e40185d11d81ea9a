"""Fleet summary, headroom per place, and what-if placement."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request

from twin.api.routes.common import Connection, Reader, fresh, fresh_from_summaries
from twin.store import queries
from twin.store.answers import FleetSummary, GroupDimension, Headroom, HeadroomLevel, Placement

router = APIRouter(tags=["fleet"])


@router.get("/fleet/summary", response_model=FleetSummary)
def fleet_summary(
    request: Request, caller: Reader, conn: Connection,
    group_by: Annotated[list[GroupDimension], Query(
        description="Dimensions to group by, repeatable: facility, hall, row, generation, stage, owner.")] = [  # noqa: B006
        "facility", "generation"],
) -> FleetSummary:
    """Racks, racks in service, deviations, critical health, measured and allocated draw per group."""
    return fresh_from_summaries(request, conn, ("fleet_summary", caller.owner, tuple(group_by)),
                                lambda c: queries.fleet_summary(c, owner=caller.owner, group_by=group_by))


@router.get("/headroom", response_model=Headroom)
def headroom(
    request: Request, caller: Reader, conn: Connection,
    level: Annotated[HeadroomLevel, Query(description="facility, hall or row.")] = "row",
    facility: Annotated[str | None, Query(description="Only this facility id.", max_length=64)] = None,
    window_minutes: Annotated[int, Query(ge=1, le=10_080, description="Window of the measured p95 draw.")] = 15,
) -> Headroom:
    """Site power and cooling limits, design draw allocated to placed racks, measured p95 draw, and what is left."""
    # Another window's p95 reads the per-row minutes live, which move every rollup: not cached.
    question = (("headroom", caller.owner, level, facility)
                if window_minutes == queries.DEFAULT_WINDOW_MINUTES else None)
    return fresh_from_summaries(request, conn, question, lambda c: queries.headroom(
        c, owner=caller.owner, level=level, facility=facility, window_minutes=window_minutes))


@router.get("/placement", response_model=Placement)
def placement(
    caller: Reader, conn: Connection,
    generation: Annotated[str, Query(description="Generation to place, e.g. gen-b-200kw.", max_length=64)],
    count: Annotated[int, Query(ge=1, le=100_000, description="How many racks.")],
    facility: Annotated[str | None, Query(description="Only in this facility.", max_length=64)] = None,
) -> Placement:
    """What-if: where `count` racks of `generation` fit within power, cooling and free positions."""
    return fresh(conn, queries.place(conn, owner=caller.owner, generation=generation, count=count, facility=facility))
