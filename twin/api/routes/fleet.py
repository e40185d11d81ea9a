"""Fleet summary, headroom per place, and what-if placement."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from twin.api.routes.common import Connection, Reader, fresh
from twin.store import queries
from twin.store.answers import FleetSummary, GroupDimension, Headroom, HeadroomLevel, Placement

router = APIRouter(tags=["fleet"])


@router.get("/fleet/summary", response_model=FleetSummary)
def fleet_summary(
    caller: Reader, conn: Connection,
    group_by: Annotated[list[GroupDimension], Query(
        description="Dimensions to group by, repeatable: facility, hall, row, generation, stage, owner.")] = [  # noqa: B006
        "facility", "generation"],
) -> FleetSummary:
    """Racks, racks in service, deviations, critical health, measured and allocated draw per group."""
    return fresh(conn, queries.fleet_summary(conn, owner=caller.owner, group_by=group_by))


@router.get("/headroom", response_model=Headroom)
def headroom(
    caller: Reader, conn: Connection,
    level: Annotated[HeadroomLevel, Query(description="facility, hall or row.")] = "row",
    facility: Annotated[str | None, Query(description="Only this facility id.", max_length=64)] = None,
    window_minutes: Annotated[int, Query(ge=1, le=10_080, description="Window of the measured p95 draw.")] = 15,
) -> Headroom:
    """Site power and cooling limits, design draw allocated to placed racks, measured p95 draw, and what is left."""
    return fresh(conn, queries.headroom(conn, owner=caller.owner, level=level, facility=facility,
                                        window_minutes=window_minutes))


@router.get("/placement", response_model=Placement)
def placement(
    caller: Reader, conn: Connection,
    generation: Annotated[str, Query(description="Generation to place, e.g. gen-b-200kw.", max_length=64)],
    count: Annotated[int, Query(ge=1, le=100_000, description="How many racks.")],
    facility: Annotated[str | None, Query(description="Only in this facility.", max_length=64)] = None,
) -> Placement:
    """What-if: where `count` racks of `generation` fit within power, cooling and free positions."""
    return fresh(conn, queries.place(conn, owner=caller.owner, generation=generation, count=count, facility=facility))
