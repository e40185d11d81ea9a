"""What feeds what, and what follows when a feeder fails: pure, from the topology facts.

A CDU drives coolant loops that feed racks; power feeds (side A or B) power racks. Two
questions operators ask before and during an incident: which racks does CDU X feed, and which
racks lose redundancy (or power) if feed A fails. And one they should not have to ask: when a
CDU is in Warning or Critical, every rack it feeds shows degraded cooling naming the CDU
(`twin.domain.health`), and `cooling_unit_conditions` folds those racks back into one
condition per CDU, so alerting raises one alert for the CDU, not one per rack.

For alerting (`twin.alerting`): feed `cooling_unit_conditions` each rack's `RackTwin.cooling_unit`
(in a worker) or `twin.store.topology.cooling_units_by_rack(conn)` (from the database); raise one
alert per condition, keyed by `cooling_unit_id`, listing its racks; and leave out of the per-rack
cooling alerts the racks whose only cooling reason starts with `health.COOLING_UNIT_PREFIX`
(their cause is the CDU's alert). `twin topology cdus` shows the same conditions.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import orjson

from schemas import CoolantLoopDeclared, CoolingUnitStatus, PowerFeedDeclared

__all__ = ["CoolantLoop", "CoolingUnitCondition", "FeedLoss", "PowerFeed", "Topology", "cooling_unit_conditions",
           "declarations"]

_RANK = {"ok": 0, "warning": 1, "critical": 2}


@dataclass(frozen=True, slots=True)
class CoolantLoop:
    loop_id: str
    cooling_unit_id: str
    racks: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class PowerFeed:
    feed_id: str
    side: str
    racks: tuple[str, ...]
    panel: str | None = None
    pdus: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class FeedLoss:
    """What failing some feeds does: racks left on one side, racks left with no power at all."""

    failed: tuple[str, ...]
    """The feeds assumed failed."""
    losing_redundancy: tuple[str, ...]
    """Racks still powered by another feed, but no longer redundantly."""
    losing_power: tuple[str, ...]
    """Racks every one of whose feeds failed."""


@dataclass(frozen=True, slots=True)
class Topology:
    """The declared loops and feeds (the latest declaration of each)."""

    loops: Mapping[str, CoolantLoop] = field(default_factory=dict)
    feeds: Mapping[str, PowerFeed] = field(default_factory=dict)

    @classmethod
    def declared(cls, events: Iterable[CoolantLoopDeclared | PowerFeedDeclared]) -> Topology:
        """The topology these declarations leave, the latest of each loop or feed winning."""
        loops: dict[str, tuple[tuple, CoolantLoop]] = {}
        feeds: dict[str, tuple[tuple, PowerFeed]] = {}
        for e in events:
            key = (e.occurred_at, e.seq, str(e.event_id))
            if isinstance(e, CoolantLoopDeclared):
                if e.loop_id not in loops or loops[e.loop_id][0] < key:
                    loops[e.loop_id] = (key, CoolantLoop(e.loop_id, e.cooling_unit_id, e.racks))
            elif e.feed_id not in feeds or feeds[e.feed_id][0] < key:
                feeds[e.feed_id] = (key, PowerFeed(e.feed_id, e.side, e.racks, e.panel, e.pdus))
        return cls({k: v for k, (_, v) in loops.items()}, {k: v for k, (_, v) in feeds.items()})

    def racks_fed_by(self, cooling_unit_id: str) -> tuple[str, ...]:
        """Every rack on a loop of this CDU, sorted."""
        return tuple(sorted({r for loop in self.loops.values() if loop.cooling_unit_id == cooling_unit_id
                             for r in loop.racks}))

    def cooling_units(self) -> tuple[str, ...]:
        return tuple(sorted({loop.cooling_unit_id for loop in self.loops.values()}))

    def feeds_of(self, rack_id: str) -> tuple[PowerFeed, ...]:
        return tuple(f for f in self.feeds.values() if rack_id in f.racks)

    def if_fails(self, feed_or_side: str) -> FeedLoss:
        """What failing one feed (by id), or every feed of a side (`A` or `B`), does to the racks.

        Raises KeyError naming the known feeds when `feed_or_side` is neither.
        """
        if feed_or_side in self.feeds:
            failed = {feed_or_side}
        elif feed_or_side in ("A", "B"):
            failed = {f.feed_id for f in self.feeds.values() if f.side == feed_or_side}
        else:
            raise KeyError(f"no feed {feed_or_side!r}: known feeds are {', '.join(sorted(self.feeds)) or 'none'}, "
                           f"or a side A or B")
        hit = {r for f in failed for r in self.feeds[f].racks}
        redundant, dark = [], []
        for rack in sorted(hit):
            left = [f for f in self.feeds_of(rack) if f.feed_id not in failed]
            (redundant if left else dark).append(rack)
        # a rack only one feed ever powered had no redundancy to lose: it loses power
        return FeedLoss(tuple(sorted(failed)), tuple(redundant), tuple(dark))


@dataclass(frozen=True, slots=True)
class CoolingUnitCondition:
    """One CDU that is not ok, and the racks whose degraded cooling it explains (one alert, not N)."""

    cooling_unit_id: str
    health: str
    reasons: tuple[str, ...]
    racks: tuple[str, ...]

    @property
    def summary(self) -> str:
        why = f" ({'; '.join(self.reasons)})" if self.reasons else ""
        return f"cooling unit {self.cooling_unit_id} is {self.health}{why}: feeds {len(self.racks)} racks"


def cooling_unit_conditions(by_rack: Mapping[str, CoolingUnitStatus | None]) -> list[CoolingUnitCondition]:
    """Group racks by the CDU that degrades them: one condition per CDU not ok, worst first.

    `by_rack` is each rack's latest view of its CDU (`RackTwin.cooling_unit`, or the
    `cooling_unit` of the rack's stored health). Racks disagree only while a poll is in flight;
    the worst view wins, with its reasons.
    """
    worst: dict[str, CoolingUnitStatus] = {}
    racks: dict[str, list[str]] = {}
    for rack, cdu in by_rack.items():
        if cdu is None or cdu.health == "ok":
            continue
        racks.setdefault(cdu.cooling_unit_id, []).append(rack)
        held = worst.get(cdu.cooling_unit_id)
        if held is None or _RANK[cdu.health] > _RANK[held.health]:
            worst[cdu.cooling_unit_id] = cdu
    out = [CoolingUnitCondition(cid, s.health, s.reasons, tuple(sorted(racks[cid]))) for cid, s in worst.items()]
    return sorted(out, key=lambda c: (-_RANK[c.health], c.cooling_unit_id))


def declarations(data: Mapping[str, Any], *, source: str, now: datetime) -> list[CoolantLoopDeclared | PowerFeedDeclared]:
    """The topology events a topology file (`{coolant_loops: [...], power_feeds: [...]}`) declares at `now`.

    The event_id is derived from the declaration and `now`, so a retried publish is one fact,
    while declaring loop-1 = [r1], then [r2], then [r1] again is three (the last one wins).
    Raises ValueError (a pydantic ValidationError for a bad entry) naming what is wrong.
    """
    unknown = sorted(set(data) - {"coolant_loops", "power_feeds"})
    if unknown:
        raise ValueError(f"unknown key(s) {', '.join(unknown)}: expected coolant_loops and power_feeds")
    events: list[CoolantLoopDeclared | PowerFeedDeclared] = []
    seq = int(now.timestamp() * 1_000_000)
    kinds: tuple[tuple[str, type[CoolantLoopDeclared] | type[PowerFeedDeclared]], ...] = (
        ("coolant_loops", CoolantLoopDeclared), ("power_feeds", PowerFeedDeclared))
    for kind, model in kinds:
        for body in data.get(kind) or ():
            canonical = orjson.dumps(body, option=orjson.OPT_SORT_KEYS).decode()
            ident = uuid.uuid5(uuid.NAMESPACE_URL, f"topology/{kind}/{now.isoformat()}/{canonical}")
            events.append(model(event_id=ident, occurred_at=now, source=source, seq=seq + len(events), **body))
    return events
