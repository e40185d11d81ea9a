"""Reading Redfish resources: follow links, list members, take a reading and its time.

Every reader walks links one GET at a time (sushy-static, and some BMCs, refuse `$expand`).
`Get` is the one thing a reader needs from the network: a path in, a dict or None (the service
does not have it) out; the readers themselves stay plain functions over dicts.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

__all__ = ["Get", "Measured", "health_of", "link", "members", "number", "reading_of", "reading_time"]

Get = Callable[[str], "dict[str, Any] | None"]

_HEALTH = {"OK": "ok", "Warning": "warning", "Critical": "critical"}
_RANK = {"ok": 0, "warning": 1, "critical": 2}


@dataclass(slots=True)
class Measured:
    """What one endpoint measured in one poll: per rack, the quantities it saw (others absent)."""

    endpoint: str
    values: dict[str, dict[str, Any]] = field(default_factory=dict)
    """rack id -> {RackReading field: value}; a field absent here was not measured by this endpoint."""
    taken_at: datetime | None = None
    """The newest `ReadingTime` of the sensors used, when they carry one (the source's clock)."""
    cooling_unit: Any = None
    """A CDU's `CoolingUnitStatus`, for every rack it feeds."""
    status: Any = None
    """A BMC's or PDU's `EquipmentStatus` when it is not OK, for each of its racks."""
    missing: list[str] = field(default_factory=list)
    """Resources the service did not have (404 or no link): handled, and said, not an error."""

    def saw(self, when: datetime | None) -> None:
        if when is not None and (self.taken_at is None or when > self.taken_at):
            self.taken_at = when


def link(resource: dict[str, Any] | None, key: str) -> str | None:
    """The `@odata.id` of `resource[key]`, when it links somewhere."""
    if not resource:
        return None
    target = resource.get(key)
    return target.get("@odata.id") if isinstance(target, dict) else None


def members(get: Get, collection: str | None) -> Iterator[tuple[str, dict[str, Any]]]:
    """(path, resource) of every member of a collection that the service has."""
    if collection is None:
        return
    body = get(collection)
    for m in (body or {}).get("Members", ()):
        path = m.get("@odata.id") if isinstance(m, dict) else None
        if path:
            res = get(path)
            if res is not None:
                yield path, res


def number(value: Any) -> float | None:
    """A JSON number as float; None for null, strings, booleans."""
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def reading_of(resource: dict[str, Any] | None, key: str) -> float | None:
    """An excerpt's `Reading` (`{"Reading": 40.5, "DataSourceUri": ...}`) or a plain number property."""
    if not resource:
        return None
    value = resource.get(key)
    return number(value.get("Reading")) if isinstance(value, dict) else number(value)


def reading_time(resource: dict[str, Any] | None) -> datetime | None:
    """A sensor's `ReadingTime` in UTC, when it has a valid one."""
    text = (resource or {}).get("ReadingTime")
    if not isinstance(text, str):
        return None
    try:
        at = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return at.astimezone(timezone.utc) if at.tzinfo else None


def health_of(resource: dict[str, Any] | None) -> str | None:
    """The worse of `Status.Health` and `Status.HealthRollup`, in our words (ok/warning/critical)."""
    status = (resource or {}).get("Status") or {}
    words = [_HEALTH[w] for w in (status.get("Health"), status.get("HealthRollup")) if w in _HEALTH]
    return max(words, key=_RANK.__getitem__) if words else None


def equipment_status(endpoint: Any, kind: str, parts: list[tuple[str, dict[str, Any]]]) -> Any:
    """An `EquipmentStatus` for the parts (chassis, PDUs) whose Status is not OK; None when all are."""
    from schemas import EquipmentStatus

    bad = [(label, h, (p.get("Status") or {})) for label, p in parts if (h := health_of(p)) not in (None, "ok")]
    if not bad:
        return None
    reasons = tuple(f"{label} Health {s.get('Health')}, HealthRollup {s.get('HealthRollup')}" for label, _, s in bad)
    return EquipmentStatus(endpoint=endpoint.name, kind=kind, health=worst(*(h for _, h, _ in bad)),
                           reasons=reasons[:32])


def worst(*states: str | None) -> str:
    found = [s for s in states if s]
    return max(found, key=_RANK.__getitem__) if found else "ok"
