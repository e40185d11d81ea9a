"""Stored lifecycle events back into contract models, without validating them again.

Why: every event in the store was validated (`twin.domain.decoding`) before it was appended, so
a rebuild that runs `model_validate` on each of millions of stored bodies pays, again, for checks
that cannot fail; that was three quarters of the rebuild's time (issue 13). `stored_event` builds
the same model that validation would give (equal by `==`, same field types: `UUID`, aware
`datetime`, nested `Component`) straight from the stored JSON, the way pydantic's
`model_construct` does but without its per-field default handling. A body that is not complete
(a field missing or unknown, say from an older schema) takes the validating path, so the fast path
never guesses.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any
from uuid import UUID, SafeUUID

from schemas import LIFECYCLE_TYPES, Component, RackEvent

__all__ = ["stored_event"]

_new = object.__new__
_set = object.__setattr__
_fromisoformat = datetime.fromisoformat
_UNKNOWN = SafeUUID.unknown
_FIELDS: dict[type[Any], frozenset[str]] = {
    cls: frozenset(cls.model_fields) for cls in (*LIFECYCLE_TYPES.values(), Component)}


def _typed(cls: type[Any]) -> tuple[tuple[str, tuple[type, ...]], ...]:
    """The fields whose JSON value validation could coerce (`"5"` -> 5, `1` -> True), with the types
    that need no coercion. String fields need no check: validation never turns a non-string into one."""
    out = []
    for name, info in cls.model_fields.items():
        kind = info.annotation
        if kind is int or name in ("schema_version",):
            out.append((name, (int,)))
        elif kind is bool:
            out.append((name, (bool,)))
        elif kind is float:
            out.append((name, (float,)))
    return tuple(out)


_CHECKED: dict[type[Any], tuple[tuple[str, tuple[type, ...]], ...]] = {cls: _typed(cls) for cls in _FIELDS}


def _plain(cls: type[Any], values: Mapping[str, Any]) -> bool:
    """True when validating `values` would change none of them (every coercible field has its own type)."""
    for name, types in _CHECKED[cls]:
        if type(values[name]) not in types:
            return False
    return True


def _construct(cls: type[Any], values: dict[str, Any]) -> Any:
    """`cls.model_construct(**values)` for a complete set of already-valid values, minus its overhead."""
    model = _new(cls)
    _set(model, "__dict__", values)
    _set(model, "__pydantic_fields_set__", set(values))
    _set(model, "__pydantic_extra__", None)
    _set(model, "__pydantic_private__", None)
    return model


def _uuid(text: str) -> UUID:
    """`UUID(text)` for a canonical UUID string, without the constructor's parsing of every spelling."""
    value = _new(UUID)
    _set(value, "int", int(text.replace("-", ""), 16))
    _set(value, "is_safe", _UNKNOWN)
    return value


def stored_event(kind: str, body: Mapping[str, Any]) -> RackEvent:
    """The contract model of a stored lifecycle event of type `kind` (its JSON body as a dict)."""
    cls = LIFECYCLE_TYPES[kind]
    values = dict(body)
    if values.keys() != _FIELDS[cls] or values["type"] != kind or not _plain(cls, values):
        return cls.model_validate(body)
    measurements = values.get("measurements")
    if measurements is not None and not (type(measurements) is dict and all(
            type(v) in (float, int) for v in measurements.values())):
        return cls.model_validate(body)
    try:
        values["event_id"] = _uuid(values["event_id"])
        at = values["occurred_at"] = _fromisoformat(values["occurred_at"])
        component = values.get("component")
    except (AttributeError, TypeError, ValueError):
        return cls.model_validate(body)
    if at.tzinfo is None:
        return cls.model_validate(body)
    if component is not None:
        if type(component) is not dict or component.keys() != _FIELDS[Component] or not _plain(Component, component):
            return cls.model_validate(body)
        values["component"] = _construct(Component, dict(component))
    return _construct(cls, values)  # type: ignore[no-any-return]
