"""The event contracts of the fleet twin: pydantic v2 models and their exported JSON Schemas.

Other teams read `schemas/json/*.json`, not this code; `python -m schemas.export` rewrites
them and a test fails when they drift from the models.
"""

from schemas.alerts import Alert, AlertChanged, AlertPhase
from schemas.deviations import DeadLetter, Deviation, DeviationChanged, Severity
from schemas.envelope import Contract, Envelope
from schemas.fleet import Facility, FacilityRegistered, Hall, RolloutPlanPublished, RolloutTarget, Row
from schemas.intent import GenerationIntent, IntentPublished, Range
from schemas.lifecycle import (
    LIFECYCLE_EVENTS,
    LIFECYCLE_TYPES,
    Component,
    ComponentInstalled,
    ComponentReplaced,
    FirmwareUpdated,
    RackCommissioned,
    RackDecommissioned,
    RackDegraded,
    RackEnteredService,
    RackEvent,
    RackInstalled,
    RackMaintenanceStarted,
    RackManufactured,
    RackReceived,
    RackRmaOpened,
    RackShipped,
    RackTested,
)
from schemas.telemetry import READING_FIELDS, READING_IDENTITY, TELEMETRY_TYPES, RackReading, TelemetryReported

INTENT_TYPES: dict[str, type[Envelope]] = {
    cls.TYPE: cls for cls in (IntentPublished, FacilityRegistered, RolloutPlanPublished)
}
"""Event types on `fleet.intent.v1`: what the fleet is meant to be."""

ALL_TYPES: dict[str, type[Envelope]] = {**TELEMETRY_TYPES, **LIFECYCLE_TYPES, **INTENT_TYPES}

__all__ = [
    "ALL_TYPES", "Alert", "AlertChanged", "AlertPhase", "INTENT_TYPES", "READING_FIELDS", "READING_IDENTITY",
    "LIFECYCLE_EVENTS", "LIFECYCLE_TYPES", "TELEMETRY_TYPES",
    "Component", "ComponentInstalled", "ComponentReplaced", "Contract", "DeadLetter", "Deviation",
    "DeviationChanged", "Envelope", "Facility", "FacilityRegistered", "FirmwareUpdated", "GenerationIntent",
    "Hall", "IntentPublished", "RackCommissioned", "RackDecommissioned", "RackDegraded", "RackEnteredService",
    "RackEvent", "RackInstalled", "RackMaintenanceStarted", "RackManufactured", "RackReading", "RackReceived",
    "RackRmaOpened", "RackShipped", "RackTested", "Range", "RolloutPlanPublished", "RolloutTarget", "Row",
    "Severity", "TelemetryReported",
]
