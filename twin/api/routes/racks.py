"""Racks: filtered lists with cursor pagination, one rack now, its history, and as of an instant."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Path, Query

from schemas.envelope import RACK_ID_PATTERN
from twin.api.routes.common import Connection, Reader, found, fresh
from twin.domain.health import HealthState
from twin.domain.lifecycle import RackStatus
from twin.store import queries
from twin.store.answers import RackAsOf, RackDetail, RackHistory, RackPage

router = APIRouter(tags=["racks"])

Stage = Literal[tuple(s.value for s in RackStatus)]  # type: ignore[valid-type]
Health = Literal[tuple(h.value for h in HealthState)]  # type: ignore[valid-type]
RackId = Annotated[str, Path(pattern=RACK_ID_PATTERN, description="Rack id, e.g. dfw1-h1-r01-01.")]


@router.get("/racks", response_model=RackPage)
def list_racks(
    caller: Reader, conn: Connection,
    stage: Annotated[Stage | None, Query(description="Lifecycle stage.")] = None,
    generation: Annotated[str | None, Query(max_length=64)] = None,
    facility: Annotated[str | None, Query(max_length=64)] = None,
    health: Annotated[Health | None, Query(description="Overall health.")] = None,
    deviation: Annotated[str | None, Query(max_length=64, description="An open deviation of this check, "
                                                                      "e.g. accelerator-too-hot.")] = None,
    stalled: Annotated[bool | None, Query(description="Longer in its stage than allowed (or not).")] = None,
    onshore_below: Annotated[float | None, Query(ge=0, le=1, description="Onshore share by part count below this.")] = None,
    firmware_drift: Annotated[bool | None, Query(description="Parts off the firmware baseline (or not).")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 50,
    cursor: Annotated[str | None, Query(max_length=200, description="next_cursor of the previous page.")] = None,
) -> RackPage:
    """Racks matching every filter, ordered by rack id; follow `next_cursor` for the next page."""
    return fresh(conn, queries.list_racks(
        conn, owner=caller.owner, stage=stage, generation=generation, facility=facility, health=health,
        deviation=deviation, stalled=stalled, onshore_below=onshore_below, firmware_drift=firmware_drift,
        limit=limit, cursor=cursor))


@router.get("/racks/{rack_id}", response_model=RackDetail, responses={404: {"description": "No such rack."}})
def rack(caller: Reader, conn: Connection, rack_id: RackId) -> RackDetail:
    """The rack's current twin: stage, place, latest readings, health, open deviations."""
    return fresh(conn, found(queries.rack(conn, rack_id, owner=caller.owner), f"rack {rack_id}"))


@router.get("/racks/{rack_id}/history", response_model=RackHistory, responses={404: {"description": "No such rack."}})
def rack_history(caller: Reader, conn: Connection, rack_id: RackId) -> RackHistory:
    """The rack's stored lifecycle, part and test events in stream order."""
    return fresh(conn, found(queries.rack_history(conn, rack_id, owner=caller.owner), f"rack {rack_id}"))


@router.get("/racks/{rack_id}/as-of", response_model=RackAsOf, responses={404: {"description": "No such rack."}})
def rack_as_of(
    caller: Reader, conn: Connection, rack_id: RackId,
    at: Annotated[datetime, Query(description="RFC 3339 instant with offset, e.g. 2027-01-01T00:00:00Z.")],
) -> RackAsOf:
    """The rack's twin as it was at `at` (the fold of its events up to then)."""
    return fresh(conn, found(queries.rack_as_of(conn, rack_id, at, owner=caller.owner), f"rack {rack_id}"))
