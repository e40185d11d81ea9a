"""Stored lifecycle events are constructed, not validated again (issue 13): the model must be the
one validation gives, and any body validation would change must take the validating path."""

from __future__ import annotations

from datetime import datetime, timezone
from uuid import UUID

import orjson
import pytest

from schemas import LIFECYCLE_TYPES, Component
from twin.domain.intent import IntentCatalog
from twin.domain.rack import RackTwin
from twin.embedded.simulator import FaultPlan, FleetSimulator
from twin.store.stored import stored_event


def _histories() -> dict[str, list[tuple[str, dict]]]:
    catalog = IntentCatalog.default()
    sim = FleetSimulator(11, 60, datetime(2026, 6, 1, tzinfo=timezone.utc),
                         {g: catalog.latest(g) for g in catalog.generations()}, faults=FaultPlan.typical())
    return {rid: [(e.type, orjson.loads(e.model_dump_json())) for e in sim.history(rid)] for rid in sim.racks}


def test_every_simulated_event_type_constructs_to_the_model_validation_gives() -> None:
    histories = _histories()
    kinds = set()
    for history in histories.values():
        for kind, body in history:
            built = stored_event(kind, body)
            validated = LIFECYCLE_TYPES[kind].model_validate(body)
            assert built == validated
            assert type(built) is type(validated)
            assert isinstance(built.event_id, UUID) and built.event_id.int == validated.event_id.int
            assert built.occurred_at == validated.occurred_at and built.occurred_at.tzinfo is not None
            if hasattr(built, "component"):
                assert type(built.component) is Component
            kinds.add(kind)
    assert {"component.installed", "rack.manufactured", "rack.tested", "rack.installed"} <= kinds


def test_a_fold_of_constructed_events_equals_the_fold_of_validated_ones() -> None:
    catalog = IntentCatalog.default()
    for rid, history in list(_histories().items())[:20]:
        fast = RackTwin.replay(rid, [stored_event(k, b) for k, b in history], catalog)
        slow = RackTwin.replay(rid, [LIFECYCLE_TYPES[k].model_validate(b) for k, b in history], catalog)
        assert fast.snapshot() == slow.snapshot()


def _installed() -> dict:
    _, body = next(e for h in _histories().values() for e in h if e[0] == "component.installed")
    return body


@pytest.mark.parametrize("change", [
    {"seq": "7"},                                         # a string validation turns into an int
    {"occurred_at": "2026-06-01T10:00:00+02:00"},        # another offset: kept, as validation keeps it
    {"event_id": "{12345678-1234-5678-1234-567812345678}"},  # a spelling only UUID() reads
    {"component": {"unit_value_usd": 12}},              # an int validation turns into a float
])
def test_a_body_validation_would_change_gives_the_validated_model(change: dict) -> None:
    body = _installed()
    for key, value in change.items():
        body[key] = {**body[key], **value} if isinstance(value, dict) else value
    built = stored_event("component.installed", body)
    validated = LIFECYCLE_TYPES["component.installed"].model_validate(body)
    assert built == validated
    assert type(built.seq) is int and type(built.component.unit_value_usd) is float
    assert built.occurred_at.utcoffset() == validated.occurred_at.utcoffset()


def test_an_incomplete_or_unknown_field_body_is_validated_so_it_fails_as_before() -> None:
    body = _installed()
    del body["source"]
    with pytest.raises(ValueError, match="source"):
        stored_event("component.installed", body)
    body = {**_installed(), "surprise": 1}
    with pytest.raises(ValueError, match="surprise"):
        stored_event("component.installed", body)
