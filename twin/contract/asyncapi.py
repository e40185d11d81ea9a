"""The producer contract as an AsyncAPI 3.0 document, made from the code that enforces it.

Why generated: a producer team reads this document, not our code, so every fact in it is read
from the one place the worker takes it from: topics and partition counts from `Topics`, message
schemas from the pydantic models, the state machine from `TRANSITIONS` and `TEST_STAGES`, the
dead-letter reasons from `twin.errors`, the clock-skew bound from the settings (or its constant),
the identity of a reading from `schemas.telemetry`. A test fails when the checked-in document
differs from what this module makes now (`python -m twin.contract` rewrites it).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta
from typing import Any

from pydantic.json_schema import models_json_schema

from schemas import ALL_TYPES, INTENT_TYPES, LIFECYCLE_TYPES, TELEMETRY_TYPES, DeadLetter, DeviationChanged, Envelope
from schemas.envelope import ENVELOPE_REQUIRED, MAX_CLOCK_SKEW_SECONDS
from schemas.telemetry import READING_IDENTITY
from twin.contract.examples import STORY_START, outputs, story
from twin.contract.render import rules
from twin.domain.intent import IntentCatalog
from twin.domain.lifecycle import TEST_STAGES, TRANSITIONS, RackStatus
from twin.errors import dead_letter_reasons
from twin.settings import Settings, Topics

__all__ = ["ASYNCAPI_VERSION", "CHANNELS", "clock_skew_seconds", "document", "first_event_type", "prerequisites",
           "required_tests", "transition_rows"]

ASYNCAPI_VERSION = "3.0.0"
KAFKA_BINDING = "0.5.0"


class _Channel:
    """A topic as producers see it: its setting, what it carries, how it is keyed, who writes it."""

    def __init__(self, setting: str, types: Mapping[str, type[Envelope]], key: str, description: str,
                 action: str) -> None:
        self.setting, self.types, self.key, self.description, self.action = setting, types, key, description, action


CHANNELS: dict[str, _Channel] = {
    "telemetry": _Channel(
        "telemetry", TELEMETRY_TYPES,
        "A key that keeps every reading of a rack on one partition: the collector of a fixed set of racks "
        "(the simulator's `facility/hall/cNN`), or the row (`facility/hall/row`). Never a random key: a rack's "
        "readings must stay in order.",
        "Telemetry reports: one message per collector poll cycle, with the readings of one or more racks.",
        "receive"),
    "lifecycle": _Channel(
        "lifecycle", LIFECYCLE_TYPES, "The `rack_id` of the event: a rack's history stays on one partition, in order.",
        "Lifecycle, test and component events of single racks: the append-only history each twin is folded from.",
        "receive"),
    "intent": _Channel(
        "intent", INTENT_TYPES,
        "The facility id, the generation, or `rollout`: informative only (the topic has one partition, so "
        "facilities, intents and plans stay in the order they were sent).",
        "What the fleet is meant to be: facilities with halls and rows, design intent per generation, the rollout plan.",
        "receive"),
    "deadletter": _Channel(
        "deadletter", {"deadletter": DeadLetter}, "None: the dead letter names its source topic, partition and offset.",
        "Bad input, refused with its precise reason (also kept in the `deadletters` table). Written by the twin.",
        "send"),
    "deviations": _Channel(
        "deviations", {DeviationChanged.TYPE: DeviationChanged}, "The `rack_id` of the deviation.",
        "Deviations from design intent starting (`firing`) and ending (`resolved`). Written by the twin.",
        "send"),
}
"""Every topic of the contract, by the name of its `Topics` setting."""


def clock_skew_seconds() -> float:
    """The clock-skew bound in force by default: a setting's default when the worker has one, else the constant."""
    for name, field in Settings.model_fields.items():
        if "skew" in name and field.default is not None:
            value = field.default
            return value.total_seconds() if isinstance(value, timedelta) else float(value)
    return float(MAX_CLOCK_SKEW_SECONDS)


def _skew_setting() -> str | None:
    return next((f"TWIN_{name.upper()}" for name in Settings.model_fields if "skew" in name), None)


def _skew_text(skew: float, reasons: Mapping[str, str]) -> str:
    if "clock-skew" not in reasons:
        return (f"Keep `occurred_at` within {skew:g} s of true time: the bound is the contract, but this worker "
                "does not refuse skewed events yet (no `clock-skew` reason exists in its code).")
    setting = _skew_setting()
    return (f"An event or reading whose `occurred_at` lies more than {skew:g} s ahead of the worker's clock is "
            "refused as `clock-skew` and never moves a twin." + (f" Setting: `{setting}`." if setting else ""))


def first_event_type() -> str:
    """The only lifecycle event legal for a rack the fleet does not know yet (`planned`)."""
    [first] = [kind for kind, move in TRANSITIONS.items() if RackStatus.PLANNED in move.sources]
    return first


def _stages(stages: frozenset[RackStatus]) -> list[str]:
    return [s.value for s in RackStatus if s in stages]


def transition_rows() -> list[dict[str, Any]]:
    """`TRANSITIONS` as rows: event type, the stages it is legal from, the stage it leads to."""
    rows = []
    for kind, move in TRANSITIONS.items():
        if kind == "rack.tested":
            for test, stages in TEST_STAGES.items():
                to = ("factory-tested when passed on a manufactured rack, else unchanged"
                      if test == "factory-acceptance" else "unchanged")
                rows.append({"event": f"rack.tested ({test})", "from": _stages(stages), "to": to})
            continue
        rows.append({"event": kind, "from": _stages(move.sources),
                     "to": move.target.value if move.target else "unchanged"})
    return rows


def required_tests() -> dict[str, list[str]]:
    """Tests each generation of the bundled design intent requires before service (the service gate)."""
    catalog = IntentCatalog.default()
    return {generation: list(catalog.latest(generation).required_tests)  # type: ignore[union-attr]
            for generation in catalog.generations()}


def prerequisites(reasons: Mapping[str, str]) -> list[str]:
    """What must exist before a rack's first event, and before the events that depend on more."""

    def refused(slug: str) -> str:
        return f" (else refused as `{slug}`)" if slug in reasons else ""

    first = first_event_type()
    return [
        "The topics exist with their partition counts (the channels below). Producers never create topics: a broker "
        "that auto-creates one gives it its own default partition count, which moves racks between workers.",
        f"A rack's first event is `{first}`: it is the only lifecycle event legal for a rack the fleet does not "
        f"know. Before it, any other event or reading about the rack is refused as `unknown-rack`, kept, and taken "
        f"again once `{first}` arrives.",
        "Its generation's design intent (`intent.published` on the intent channel) is published, dated before the "
        f"rack's `rack.entered_service`: with no intent the service gate fails closed" + (" (`missing-tests`)" if "missing-tests" in reasons else "") + ".",
        "Its facility, hall and row are registered (`facility.registered`) before `rack.installed` names them"
        f"{refused('unknown-location')}; a rack is installed only at the facility that received it.",
        "Each test its generation's intent lists in `required_tests` has passed, after the rack's last RMA, before "
        f"each `rack.entered_service`{refused('missing-tests')}.",
    ]


def _identity_text(reasons: Mapping[str, str]) -> str:
    fields = ", ".join(f"`{f}`" for f in READING_IDENTITY)
    text = (f"A reading is identified by ({fields}), `source` being the report's envelope source: the same reading "
            "sent again, in the same report or another, is one fact. An event is identified by its `event_id`.")
    if "conflicting-duplicate" in reasons:
        text += " The same identity again with a different body is refused as `conflicting-duplicate`."
    return text


def _schemas() -> tuple[dict[str, Any], dict[str, str]]:
    """Every message payload as JSON Schema, sharing one `components/schemas`; name of each top-level model."""
    models: dict[str, type[Any]] = {**ALL_TYPES, DeviationChanged.TYPE: DeviationChanged, "deadletter": DeadLetter}
    refs, top = models_json_schema([(m, "validation") for m in models.values()],
                                   ref_template="#/components/schemas/{model}")
    names = {kind: refs[(model, "validation")]["$ref"].rsplit("/", 1)[1] for kind, model in models.items()}
    return top["$defs"], names


def _example(event: Envelope | DeadLetter) -> dict[str, Any]:
    return event.model_dump(mode="json", exclude_none=True)


def document() -> dict[str, Any]:
    """The AsyncAPI 3.0 document of the fleet twin's topics, as a plain dict (key order kept for YAML)."""
    topics = {name: field.default for name, field in Topics.model_fields.items()}
    counts = Topics.model_construct(**topics).partition_counts()
    reasons = dead_letter_reasons()
    schemas, names = _schemas()
    examples: dict[str, list[dict[str, Any]]] = {}
    steps: list[dict[str, str]] = []
    for n, example in enumerate(story(), start=1):
        examples.setdefault(example.event.type, []).append(
            {"name": f"step-{n:02d}", "summary": example.summary, "payload": _example(example.event)})
        steps.append({"example": f"step-{n:02d}", "channel": example.channel, "message": example.event.type,
                      "key": example.key})
    for n, example in enumerate(outputs(), start=1):
        kind = "deadletter" if isinstance(example.event, DeadLetter) else example.event.type
        examples.setdefault(kind, []).append(
            {"name": f"output-{n:02d}", "summary": example.summary, "payload": _example(example.event)})
    skew = clock_skew_seconds()

    channels: dict[str, Any] = {}
    operations: dict[str, Any] = {}
    messages: dict[str, Any] = {}
    for channel_id, channel in CHANNELS.items():
        address = topics[channel.setting]
        channels[channel_id] = {
            "address": address,
            "title": address,
            "description": channel.description + f" Topic name setting: `TWIN_TOPIC_{channel.setting.upper()}`.",
            "messages": {kind: {"$ref": f"#/components/messages/{kind}"} for kind in channel.types},
            "bindings": {"kafka": {"topic": address, "partitions": counts[address], "bindingVersion": KAFKA_BINDING}},
        }
        operations[f"{channel.action}{channel_id.title()}"] = {
            "action": channel.action,
            "channel": {"$ref": f"#/channels/{channel_id}"},
            "summary": ("Producers send; the twin's workers consume (one consumer group)." if channel.action == "receive"
                        else "The twin's workers send; alerting and operators consume."),
            "messages": [{"$ref": f"#/channels/{channel_id}/messages/{kind}"} for kind in channel.types],
        }
        for kind, model in channel.types.items():
            message: dict[str, Any] = {
                "name": kind,
                "title": model.__name__,
                "summary": (model.__doc__ or kind).strip().splitlines()[0],
                "contentType": "application/json",
                "payload": {"$ref": f"#/components/schemas/{names[kind]}"},
                "bindings": {"kafka": {"key": {"type": "string", "description": channel.key},
                                       "bindingVersion": KAFKA_BINDING}},
            }
            if kind in examples:
                message["examples"] = examples[kind]
            messages[kind] = message

    doc = {
        "asyncapi": ASYNCAPI_VERSION,
        "id": "urn:fleet-twin:producer-contract",
        "info": {
            "title": "Fleet twin producer contract",
            "version": "1",
            "description": (
                "What a producer must send for the fleet twin to take it: topics and keys, every message's JSON "
                "Schema, the lifecycle state machine, the dead-letter reasons, the identity of a reading, the clock-"
                "skew bound and what must exist before a rack's first event. Generated from the code by "
                "`python -m twin.contract`; docs/producer-contract.md says the same for a human reader."),
            "license": {"name": "Proprietary"},
        },
        "defaultContentType": "application/json",
        "servers": {
            "embedded": {"host": "127.0.0.1:9092", "protocol": "kafka",
                         "description": "The embedded broker of `twin up` (address printed as TWIN_KAFKA_BOOTSTRAP)."},
        },
        "channels": channels,
        "operations": operations,
        "components": {"messages": messages, "schemas": schemas},
        "x-envelope-required": list(ENVELOPE_REQUIRED),
        "x-clock-skew-bound-seconds": skew,
        "x-clock-skew": _skew_text(skew, reasons),
        "x-reading-identity": {"fields": list(READING_IDENTITY), "description": _identity_text(reasons)},
        "x-first-event": first_event_type(),
        "x-prerequisites": prerequisites(reasons),
        "x-lifecycle-stages": [s.value for s in RackStatus],
        "x-lifecycle-transitions": transition_rows(),
        "x-required-tests": required_tests(),
        "x-deadletter-reasons": reasons,
        "x-examples-start": STORY_START.isoformat(),
        "x-example-story": steps,
    }
    # The rules again as Markdown in the description, for AsyncAPI tools that show no `x-` field.
    doc["info"]["description"] += "\n\n" + "\n".join(rules(doc)).strip() + "\n"
    return doc
