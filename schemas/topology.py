"""What feeds what: coolant loops from CDUs to racks, power feeds (side A or B) to racks.

Why fleet facts and not collector config: operators ask "which racks does CDU X feed" and
"which racks lose redundancy if feed A fails" before anything fails, and the twin must name
the CDU that explains a rack's cooling trouble. These travel on `fleet.intent.v1` beside the
facility registrations (both say what the fleet is built as); the latest declaration of a loop
or feed replaces the earlier one. Vocabulary from NetBox dcim (`power_feed`, side A/B).
"""

from __future__ import annotations

from typing import Annotated, ClassVar, Literal

from pydantic import Field

from schemas.envelope import RACK_ID_PATTERN, Envelope
from schemas.lifecycle import ID

RackId = Annotated[str, Field(pattern=RACK_ID_PATTERN)]


class CoolantLoopDeclared(Envelope):
    """A CDU's secondary coolant loop feeds these racks (an empty list: the loop was retired)."""

    TYPE: ClassVar[str] = "topology.coolant_loop_declared"
    type: Literal["topology.coolant_loop_declared"] = "topology.coolant_loop_declared"
    schema_version: Literal[1] = 1
    loop_id: str = Field(pattern=ID, description="The secondary loop, unique in the fleet.")
    cooling_unit_id: str = Field(pattern=RACK_ID_PATTERN, description="The CDU (Redfish CoolingUnit) driving the loop.")
    racks: tuple[RackId, ...] = Field(max_length=1_000, description="Racks on the loop.")


class PowerFeedDeclared(Envelope):
    """A power feed (one side of the racks' A/B redundancy) powers these racks."""

    TYPE: ClassVar[str] = "topology.power_feed_declared"
    type: Literal["topology.power_feed_declared"] = "topology.power_feed_declared"
    schema_version: Literal[1] = 1
    feed_id: str = Field(pattern=ID, description="The feed (NetBox `power_feed`), unique in the fleet.")
    side: Literal["A", "B"] = Field(description="Which side of the rack's redundant pair this feed is.")
    panel: str | None = Field(default=None, max_length=128, description="Upstream panel or UPS, for operators.")
    pdus: tuple[RackId, ...] = Field(default=(), max_length=1_000, description="Rack PDUs on the feed.")
    racks: tuple[RackId, ...] = Field(max_length=10_000, description="Racks the feed powers.")


TOPOLOGY_TYPES: dict[str, type[Envelope]] = {c.TYPE: c for c in (CoolantLoopDeclared, PowerFeedDeclared)}
