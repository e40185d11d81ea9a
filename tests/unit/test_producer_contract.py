"""The producer contract (docs/asyncapi.yaml): valid AsyncAPI 3.0, and it says what the code does."""

from __future__ import annotations

import ast
import copy
import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

import twin.errors
from schemas import ALL_TYPES
from schemas.export import rendered as exported_schemas
from twin.contract import DOCS_DIR, document, rendered
from twin.contract.examples import story
from twin.domain.decoding import TOPIC_FAMILIES, decode_event, decode_report
from twin.domain.intent import IntentCatalog
from twin.domain.lifecycle import TEST_STAGES, TRANSITIONS
from twin.domain.rack import RackTwin
from twin.errors import dead_letter_reasons

ROOT = Path(__file__).resolve().parents[2]
ASYNCAPI_SCHEMA = ROOT / "tests" / "data" / "asyncapi" / "asyncapi-3.0.0.schema.json"


@pytest.fixture(scope="module")
def checked_in() -> dict[str, Any]:
    return yaml.safe_load((DOCS_DIR / "asyncapi.yaml").read_text())


@pytest.fixture(scope="module")
def asyncapi_validator() -> jsonschema.Draft7Validator:
    return jsonschema.Draft7Validator(json.loads(ASYNCAPI_SCHEMA.read_text()))


def test_the_checked_in_document_is_valid_asyncapi_3(checked_in: dict[str, Any],
                                                      asyncapi_validator: jsonschema.Draft7Validator) -> None:
    errors = [f"{'/'.join(map(str, e.absolute_path))}: {e.message[:200]}" for e in asyncapi_validator.iter_errors(checked_in)]
    assert errors == []
    assert checked_in["asyncapi"] == "3.0.0"


def test_the_official_schema_refuses_a_broken_document(checked_in: dict[str, Any],
                                                        asyncapi_validator: jsonschema.Draft7Validator) -> None:
    broken = copy.deepcopy(checked_in)
    broken["operations"]["receiveTelemetry"]["action"] = "publish"  # AsyncAPI 2 word, not 3
    broken["channels"]["lifecycle"]["bindings"]["kafka"]["partitions"] = "four"
    assert len(list(asyncapi_validator.iter_errors(broken))) == 2


def test_the_checked_in_files_match_the_code() -> None:
    drifted = [name for name, text in rendered().items() if (DOCS_DIR / name).read_text() != text]
    assert drifted == [], f"run `python -m twin.contract`: {drifted} drifted from the code"


def test_a_new_dead_letter_reason_in_the_code_reaches_the_document(monkeypatch: pytest.MonkeyPatch) -> None:
    assert "fell-off-the-truck" not in document()["x-deadletter-reasons"]
    monkeypatch.setattr(twin.errors, "FELL_OFF_THE_TRUCK_REASON", "fell-off-the-truck", raising=False)
    doc = document()
    assert "fell-off-the-truck" in doc["x-deadletter-reasons"]
    assert rendered()["asyncapi.yaml"] != (DOCS_DIR / "asyncapi.yaml").read_text()


def test_every_reason_a_rejection_can_carry_is_listed() -> None:
    reasons = dead_letter_reasons()
    for cls in (twin.errors.MalformedEvent, twin.errors.MissingField, twin.errors.InvalidField,
                twin.errors.UnknownEventType, twin.errors.UnknownSchemaVersion, twin.errors.OutOfPhysicalRange,
                twin.errors.UnknownRack, twin.errors.IllegalTransition, twin.errors.ServiceGateNotMet):
        assert cls.reason in reasons and reasons[cls.reason]


def test_the_state_machine_table_has_every_transition(checked_in: dict[str, Any]) -> None:
    rows = {row["event"]: row for row in checked_in["x-lifecycle-transitions"]}
    for kind, move in TRANSITIONS.items():
        if kind == "rack.tested":
            for test, stages in TEST_STAGES.items():
                assert set(rows[f"rack.tested ({test})"]["from"]) == {s.value for s in stages}
            continue
        assert set(rows[kind]["from"]) == {s.value for s in move.sources}
        assert rows[kind]["to"] == (move.target.value if move.target else "unchanged")
    assert checked_in["x-first-event"] == "rack.manufactured"


def test_channels_carry_every_event_type_with_a_key(checked_in: dict[str, Any]) -> None:
    carried = {kind for channel in checked_in["channels"].values() for kind in channel["messages"]}
    assert set(ALL_TYPES) <= carried
    for kind, message in checked_in["components"]["messages"].items():
        assert message["bindings"]["kafka"]["key"]["description"], kind


def test_every_event_schema_requires_type_and_schema_version(checked_in: dict[str, Any]) -> None:
    for name, text in exported_schemas().items():
        if not name.startswith("deadletter"):
            assert {"type", "schema_version"} <= set(json.loads(text)["required"]), name
    schemas = checked_in["components"]["schemas"]
    for kind in ALL_TYPES:
        ref = checked_in["components"]["messages"][kind]["payload"]["$ref"].rsplit("/", 1)[1]
        assert {"type", "schema_version"} <= set(schemas[ref]["required"]), kind


def _payload_validator(doc: dict[str, Any], kind: str) -> jsonschema.Draft202012Validator:
    ref = doc["components"]["messages"][kind]["payload"]["$ref"]
    return jsonschema.Draft202012Validator({"$ref": ref, "components": doc["components"]})


def test_every_example_is_valid_by_its_schema_and_taken_by_the_decoder(checked_in: dict[str, Any]) -> None:
    seen = set()
    for kind, message in checked_in["components"]["messages"].items():
        for example in message.get("examples", []):
            assert list(_payload_validator(checked_in, kind).iter_errors(example["payload"])) == []
            raw = json.dumps(example["payload"]).encode()
            family = next((f for f, types in TOPIC_FAMILIES.items() if kind in types), None)
            if family is None:  # what the twin writes (dead letters, deviations): the schema is the check
                continue
            if family == "telemetry":
                assert decode_report(raw).bad == []
            else:
                assert decode_event(raw, TOPIC_FAMILIES[family]).type == kind
            seen.add(kind)
    assert seen == set(ALL_TYPES), "every event type has an example"
    assert {"deadletter", "deviation.changed"} <= {k for k, m in checked_in["components"]["messages"].items()
                                                   if m.get("examples")}


def test_an_event_without_type_breaks_its_schema(checked_in: dict[str, Any]) -> None:
    example = checked_in["components"]["messages"]["rack.installed"]["examples"][0]["payload"]
    without = {k: v for k, v in example.items() if k != "type"}
    assert list(_payload_validator(checked_in, "rack.installed").iter_errors(without)) != []


def test_the_example_story_folds_without_a_refusal() -> None:
    events = [e.event for e in story() if e.channel == "lifecycle"]
    catalog = IntentCatalog.default()
    for rack_id in {e.rack_id for e in events}:
        twin = RackTwin.replay(rack_id, [e for e in events if e.rack_id == rack_id], catalog)
        assert twin.rejected == ()
    assert {RackTwin.replay(r, [e for e in events if e.rack_id == r], catalog).status.value
            for r in {e.rack_id for e in events}} == {"active", "decommissioned"}


def test_every_integration_test_file_carries_the_integration_marker() -> None:
    unmarked = []
    for path in sorted((ROOT / "tests" / "integration").glob("test_*.py")):
        tree = ast.parse(path.read_text())
        marks = [node for node in tree.body if isinstance(node, ast.Assign)
                 and any(isinstance(t, ast.Name) and t.id == "pytestmark" for t in node.targets)
                 and "integration" in ast.unparse(node.value)]
        if not marks:
            unmarked.append(path.name)
    assert unmarked == []


def _refs(node: Any) -> list[str]:
    if isinstance(node, dict):
        return ([node["$ref"]] if isinstance(node.get("$ref"), str) else []) + [r for v in node.values() for r in _refs(v)]
    if isinstance(node, list):
        return [r for v in node for r in _refs(v)]
    return []


def test_every_reference_in_the_document_resolves(checked_in: dict[str, Any]) -> None:
    refs = _refs(checked_in)
    assert any(r.startswith("#/channels/") for r in refs) and any(r.startswith("#/components/schemas/") for r in refs)
    unresolved = []
    for ref in set(refs):
        node: Any = checked_in
        for part in ref.removeprefix("#/").split("/"):
            part = part.replace("~1", "/").replace("~0", "~")
            if not isinstance(node, dict) or part not in node:
                unresolved.append(ref)
                break
            node = node[part]
    assert unresolved == []
