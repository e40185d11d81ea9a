"""Cooling and power topology: which racks a CDU feeds."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path

from schemas.envelope import RACK_ID_PATTERN
from twin.api.routes.common import Connection, Reader, fresh
from twin.store.answers import CoolingUnitRacks
from twin.store.topology import cooling_unit_racks

router = APIRouter(tags=["topology"])


@router.get("/topology/cdus/{cooling_unit_id}", response_model=CoolingUnitRacks)
def cooling_unit(
    caller: Reader, conn: Connection,
    cooling_unit_id: Annotated[str, Path(pattern=RACK_ID_PATTERN, max_length=64,
                                         description="The CDU, as declared, e.g. cdu-3.")],
) -> CoolingUnitRacks:
    """Which racks does this CDU feed (of those the token may see), and its health as last polled.

    An undeclared CDU (or one feeding none of the caller's racks) answers with no racks, not 404:
    the answer is the same whether the CDU exists elsewhere or not, so nothing leaks.
    """
    return fresh(conn, cooling_unit_racks(conn, cooling_unit_id, owner=caller.owner))
