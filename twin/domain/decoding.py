"""Bytes from a topic -> a validated event, or a rejection with a precise reason.

The fast path is one `model_validate_json` per message (pydantic's Rust parser, far cheaper
than Faust's per-message cost). Only a message that fails pays for the diagnosis that names
the reason: malformed JSON, unknown type, unknown schema version, missing field, value out of
physical range. A telemetry report whose envelope is sound keeps its good readings; each bad
reading is rejected on its own, by index, so one broken sensor does not discard a row.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson
from pydantic import TypeAdapter, ValidationError

from schemas import INTENT_TYPES, LIFECYCLE_TYPES, TELEMETRY_TYPES, Envelope, RackReading, TelemetryReported
from twin.errors import (
    InvalidField,
    MalformedEvent,
    MissingField,
    OutOfPhysicalRange,
    RejectedEvent,
    UnknownEventType,
    UnknownSchemaVersion,
    WrongRack,
)

__all__ = ["BadReading", "DecodedReport", "decode_event", "decode_report", "positions", "reason_for"]

_RANGE_ERRORS = frozenset({"greater_than", "greater_than_equal", "less_than", "less_than_equal"})

_ADAPTERS: dict[str, TypeAdapter[Any]] = {}


@dataclass(frozen=True, slots=True)
class BadReading:
    """One reading of a report that could not be taken."""

    index: int
    error: RejectedEvent
    payload: str
    rack_id: str | None


@dataclass(frozen=True, slots=True)
class DecodedReport:
    """A telemetry report: the readings that validated and those that did not."""

    report: TelemetryReported | None
    bad: list[BadReading] = field(default_factory=list)
    event_id: str | None = None
    """The report's event_id when its envelope could be read (a bad reading's letter names it, so the
    same report delivered twice letters its bad reading once)."""


def reason_for(exc: ValidationError, *, what: str) -> RejectedEvent:
    """Translate pydantic's errors into our rejection with the most telling reason first."""
    errors = exc.errors(include_url=False)
    first = errors[0]
    loc = ".".join(str(p) for p in first["loc"]) or what
    if any(e["type"] == "json_invalid" for e in errors):
        return MalformedEvent(f"{what} is not valid JSON: {first['msg']}")
    if any(e["type"] == "missing" for e in errors):
        missing = [".".join(str(p) for p in e["loc"]) for e in errors if e["type"] == "missing"]
        return MissingField(f"{what} is missing required field(s): {', '.join(missing)}")
    ranged = [e for e in errors if e["type"] in _RANGE_ERRORS]
    if ranged:
        e = ranged[0]
        where = ".".join(str(p) for p in e["loc"])
        return OutOfPhysicalRange(f"{where}={e.get('input')!r} is outside its physical range: {e['msg']}")
    return InvalidField(f"{what} field {loc} is invalid: {first['msg']}")


def _load(raw: bytes) -> dict[str, Any]:
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise MalformedEvent(f"not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise MalformedEvent(f"an event must be a JSON object, got {type(data).__name__}")
    return data


def _model_for(data: Mapping[str, Any], types: Mapping[str, type[Envelope]]) -> type[Envelope]:
    kind = data.get("type")
    if "type" not in data:
        raise MissingField("event is missing required field(s): type")
    model = types.get(kind) if isinstance(kind, str) else None
    if model is None:
        raise UnknownEventType(f"unknown event type {kind!r} on this topic; known: {', '.join(sorted(types))}")
    if "schema_version" not in data:
        raise MissingField("event is missing required field(s): schema_version")
    if data["schema_version"] != model.SCHEMA_VERSION:
        raise UnknownSchemaVersion(
            f"{kind} schema_version {data['schema_version']!r} is unknown; this worker reads version {model.SCHEMA_VERSION}"
        )
    return model


def _adapter(types: Mapping[str, type[Envelope]]) -> TypeAdapter[Any]:
    """One tagged-union adapter per topic family: a single Rust pass picks the type and validates."""
    key = ",".join(sorted(types))
    adapter = _ADAPTERS.get(key)
    if adapter is None:
        models = tuple(types.values())
        union = models[0] if len(models) == 1 else _tagged_union(models)
        adapter = _ADAPTERS[key] = TypeAdapter(union)
    return adapter


def _tagged_union(models: tuple[type[Envelope], ...]) -> Any:
    from typing import Annotated, Union

    from pydantic import Field

    return Annotated[Union[models], Field(discriminator="type")]  # type: ignore[valid-type]


def decode_event(raw: bytes, types: Mapping[str, type[Envelope]]) -> Envelope:
    """Decode one event of any of `types`; raise a RejectedEvent naming exactly what is wrong."""
    try:
        return _adapter(types).validate_json(raw)
    except ValidationError:
        pass
    data = _load(raw)
    model = _model_for(data, types)
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise reason_for(exc, what=str(data.get("type"))) from None


def decode_report(raw: bytes) -> DecodedReport:
    """Decode a telemetry report, keeping its good readings when only some readings are bad.

    A reading that names another rack than its report's envelope (a single-rack report) is bad:
    `wrong-rack`, since either name may be the wrong one.
    """
    try:
        report = TelemetryReported.model_validate_json(raw)
        return _same_rack(DecodedReport(report, [], str(report.event_id)))
    except ValidationError:
        pass
    data = _load(raw)
    _model_for(data, TELEMETRY_TYPES)
    readings = data.get("readings")
    if not isinstance(readings, list) or not readings:
        try:
            TelemetryReported.model_validate(data)
        except ValidationError as exc:
            raise reason_for(exc, what="telemetry report") from None
    good: list[RackReading] = []
    bad: list[BadReading] = []
    for index, item in enumerate(readings):
        try:
            good.append(RackReading.model_validate(item))
        except ValidationError as exc:
            rack_id = item.get("rack_id") if isinstance(item, dict) else None
            bad.append(BadReading(index, reason_for(exc, what=f"reading {index}"), orjson.dumps(item).decode(), rack_id))
    envelope = {k: v for k, v in data.items() if k != "readings"}
    try:
        if good:
            report = TelemetryReported.model_validate({**envelope, "readings": good})
            event_id = str(report.event_id)
        else:  # every reading is bad: still refuse the message whole if its envelope is bad too
            event_id = str(Envelope.model_validate(envelope).event_id)
            report = None
    except ValidationError as exc:
        raise reason_for(exc, what="telemetry report envelope") from None
    return _same_rack(DecodedReport(report, bad, event_id))


def _same_rack(decoded: DecodedReport) -> DecodedReport:
    """Move the readings that contradict the envelope's rack_id to the bad ones."""
    report = decoded.report
    if report is None or report.rack_id is None or all(r.rack_id == report.rack_id for r in report.readings):
        return decoded
    good, bad = [], list(decoded.bad)
    indexed = positions(decoded)
    for index, r in zip(indexed, report.readings):
        if r.rack_id == report.rack_id:
            good.append(r)
        else:
            bad.append(BadReading(index, WrongRack(
                f"reading {index} is of rack {r.rack_id!r}, but its report names rack {report.rack_id!r}"),
                r.model_dump_json(), r.rack_id))
    bad.sort(key=lambda b: b.index)
    kept = report.model_copy(update={"readings": tuple(good)}) if good else None
    return DecodedReport(kept, bad, decoded.event_id)


def positions(decoded: DecodedReport) -> Sequence[int]:
    """Where each good reading of a report stood in its message (the bad ones left gaps): the index
    its dead letter is keyed by."""
    n = len(decoded.report.readings) if decoded.report is not None else 0
    if not decoded.bad:
        return range(n)
    taken = {b.index for b in decoded.bad}
    out: list[int] = []
    i = 0
    while len(out) < n:
        if i not in taken:
            out.append(i)
        i += 1
    return out


TOPIC_FAMILIES: dict[str, Mapping[str, type[Envelope]]] = {
    "telemetry": TELEMETRY_TYPES,
    "lifecycle": LIFECYCLE_TYPES,
    "intent": INTENT_TYPES,
}
