"""What the read queries answer: pydantic models shared by the HTTP API, the client and the CLI.

Why one set of models: the API's OpenAPI document is generated from them, `twin.client`
parses responses into them, and the CLI prints them, so the three cannot disagree on a field
name or a unit. Names follow the rest of the twin: `stage` (a lifecycle slug), watts in
`*_watts`, instants as RFC 3339 UTC.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "Conformance", "DeviationAnswer", "FleetGroup", "FleetSummary", "Freshness", "GenerationScore", "Headroom",
    "HeadroomPlace", "HistoryEvent", "IntentDetail", "IntentRevision", "IntentRevisions", "LeadTime", "Placement",
    "PlacementRow", "RackAsOf", "RackDetail", "RackHistory", "RackPage", "RackSummary", "RolloutCell", "RolloutProgress",
    "Scorecard", "BadItem", "IngestAccepted", "IngestRejected", "GROUP_DIMENSIONS", "HEADROOM_LEVELS",
    "Liveness", "Readiness", "ReadinessCheck",
]

GroupDimension = Literal["facility", "hall", "row", "generation", "stage", "owner"]
GROUP_DIMENSIONS: tuple[str, ...] = ("facility", "hall", "row", "generation", "stage", "owner")
HeadroomLevel = Literal["facility", "hall", "row"]
HEADROOM_LEVELS: tuple[str, ...] = ("facility", "hall", "row")


class Answer(BaseModel):
    """Base of every answer: closed (no stray fields), so a schema check catches drift."""

    model_config = ConfigDict(extra="forbid")


class Freshness(Answer):
    """How current an answer is.

    `worker_lag_seconds` is the age of the newest offset commit the workers tracked in the
    database (consumer_offsets.updated_at), not a broker offset difference: asking the broker
    for end offsets on every request would cost a round trip per partition. An idle fleet
    therefore shows a growing lag; compare `newest_event_at` with the wall clock to tell.
    """

    newest_event_at: datetime | None = Field(
        description="Newest event time reflected: the newest lifecycle event (live) or reading (as of the last "
                    "summary rebuild, at most TWIN_API_SUMMARY_SECONDS old).")
    worker_committed_at: datetime | None = Field(description="When a worker last committed a batch.")
    worker_lag_seconds: float | None = Field(description="Seconds since that commit, at `answered_at`.")
    answered_at: datetime
    lag_basis: Literal["tracked-commit-time"] = "tracked-commit-time"


class FleetGroup(Answer):
    """One group of the fleet summary."""

    key: dict[str, str | None] = Field(description="Dimension column -> value, e.g. {'facility_id': 'dfw1'}.")
    racks: int
    in_service: int
    with_deviations: int = Field(description="Racks with at least one open deviation.")
    critical: int = Field(description="Racks whose health is critical.")
    power_watts: float = Field(description="Sum of the latest measured draw.")
    allocated_draw_watts: float = Field(description="Sum of the design draw of racks standing in a position.")


class FleetSummary(Answer):
    group_by: list[GroupDimension]
    groups: list[FleetGroup]
    racks: int
    summarised_at: datetime | None = Field(
        default=None, description="When the summary tables this answer reads were rebuilt from the current state.")
    freshness: Freshness | None = None


class HeadroomPlace(Answer):
    """A facility, hall or row: limits, allocation, measured draw and what is left."""

    level: HeadroomLevel
    facility_id: str
    hall_id: str | None
    row_id: str | None
    operator: str
    positions: int
    racks: int
    power_capacity_watts: float
    cooling_capacity_watts: float
    allocated_draw_watts: float
    measured_p95_watts: float | None = Field(description="p95 over the window of the place's per-minute draw; "
                                                         "None when no minute in the window has telemetry.")
    available_power_watts: float
    available_cooling_watts: float
    free_positions: int


class Headroom(Answer):
    level: HeadroomLevel
    window_minutes: int
    places: list[HeadroomPlace]
    summarised_at: datetime | None = Field(
        default=None, description="When the summary tables this answer reads were rebuilt from the current state.")
    freshness: Freshness | None = None


class PlacementRow(Answer):
    facility_id: str
    hall_id: str
    row_id: str
    racks: int = Field(description="Racks placed here by this what-if.")
    available_power_watts_after: float
    available_cooling_watts_after: float
    free_positions_after: int


class Placement(Answer):
    """Where `count` racks of a generation would fit, within power, cooling and positions."""

    generation: str
    requested: int
    placed: int
    design_draw_watts: float
    rows: list[PlacementRow]
    unplaced: int
    freshness: Freshness | None = None


class RackSummary(Answer):
    rack_id: str
    generation: str | None
    stage: str
    facility_id: str | None
    hall_id: str | None
    row_id: str | None
    position: int | None
    stage_entered_at: datetime | None
    health: str | None
    power_watts: float | None
    telemetry_at: datetime | None
    deviation_count: int
    onshore_share: float | None


class RackPage(Answer):
    racks: list[RackSummary]
    total: int = Field(description="Racks matching the filters (all pages).")
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page; None on the last page.")
    freshness: Freshness | None = None


class DeviationAnswer(Answer):
    check: str
    severity: str
    measured: str | None
    allowed_min: float | None
    allowed_max: float | None
    unit: str | None
    intent_revision: int
    detail: str
    since: datetime


class RackDetail(Answer):
    rack_id: str
    generation: str | None
    stage: str
    facility_id: str | None
    hall_id: str | None
    row_id: str | None
    position: int | None
    stage_entered_at: datetime | None
    telemetry_at: datetime | None
    readings: dict[str, float | int | bool | None]
    health: dict[str, Any]
    intent_revision: int | None
    onshore_share: float | None
    deviations: list[DeviationAnswer]
    twin: dict[str, Any] = Field(description="The folded twin (lifecycle side) as stored.")
    freshness: Freshness | None = None


class HistoryEvent(Answer):
    stream_version: int
    event_id: str
    type: str
    occurred_at: datetime
    recorded_at: datetime
    source: str
    seq: int
    body: dict[str, Any]


class RackHistory(Answer):
    rack_id: str
    events: list[HistoryEvent]
    freshness: Freshness | None = None


class RackAsOf(Answer):
    rack_id: str
    as_of: datetime
    stage: str
    twin: dict[str, Any]
    freshness: Freshness | None = None


class RolloutCell(Answer):
    facility_id: str
    generation: str
    quarter: str
    target: int
    in_service: int | None = Field(description="Racks in service now (only for the current and past quarters).")
    forecast: int = Field(description="Racks expected in service at the quarter's end from measured lead times.")
    on_plan: bool = Field(description="forecast >= target.")


class RolloutProgress(Answer):
    plan_revision: int | None
    quarters: list[str]
    lead_time_days_to_service: dict[str, float] = Field(
        description="Stage -> median days from entering it to entering service, as measured.")
    cells: list[RolloutCell]
    summarised_at: datetime | None = Field(
        default=None, description="When the summary tables this answer reads were rebuilt from the current state.")
    freshness: Freshness | None = None


class LeadTime(Answer):
    stage: str
    racks: int
    median_days: float
    p90_days: float


class GenerationScore(Answer):
    generation: str
    title: str | None
    racks: int
    racks_in_service: int
    deviation_rate: dict[str, float] = Field(description="Subsystem -> share of the generation's racks with an open deviation.")
    rack_years_in_service: float
    rma_per_rack_year: float | None
    failures_per_rack_year: float | None = Field(description="rack.degraded events per rack-year in service.")
    lead_times: list[LeadTime]
    onshore_share: float | None = Field(description="Mean onshore share by part count of racks with parts in scope.")
    power_per_rack_watts: float | None = Field(description="Mean measured draw of racks in service.")
    power_budget_watts: float | None = Field(description="The generation's power budget max (latest intent).")


class Scorecard(Answer):
    generations: list[GenerationScore]
    summarised_at: datetime | None = Field(
        default=None, description="When the summary tables this answer reads were rebuilt from the current state.")
    freshness: Freshness | None = None


class Conformance(Answer):
    """How the racks of a generation stand against one intent revision."""

    judged: int = Field(description="Racks last judged by this revision.")
    deviating: int = Field(description="Of those, racks with an open deviation naming this revision.")
    conforming: int
    open_deviations: dict[str, int] = Field(description="Check -> open deviations naming this revision.")


class IntentRevision(Answer):
    generation: str
    revision: int
    published_at: datetime
    title: str
    latest: bool
    conformance: Conformance


class IntentRevisions(Answer):
    revisions: list[IntentRevision]
    freshness: Freshness | None = None


class IntentDetail(IntentRevision):
    body: dict[str, Any]
    freshness: Freshness | None = None


# --- topology ---------------------------------------------------------------------------


class CoolingUnitRacks(Answer):
    """Which racks a CDU feeds (over the loops declared for it), as far as the caller may see."""

    cooling_unit_id: str
    loops: list[str] = Field(description="Its declared coolant loops that feed a rack the caller may see.")
    racks: list[str] = Field(description="Racks on those loops, sorted; empty when none is declared (or visible).")
    health: Literal["ok", "warning", "critical"] | None = Field(
        description="The CDU's Redfish health as its racks' latest readings saw it (the worst view); null if not polled.")
    reasons: list[str] = Field(description="Why it is not ok (e.g. `pump 2 failed`).")
    freshness: Freshness | None = None


# --- ingest -----------------------------------------------------------------------------


class BadItem(BaseModel):
    """One item of the batch that was refused, with the dead-letter reason slug."""

    index: int = Field(description="Position in the posted array.")
    reason: str = Field(description="Same slug as a dead letter: malformed-json, missing-field, unknown-type, ...")
    detail: str
    reading: int | None = Field(default=None, description="Index of the bad reading inside a telemetry report.")
    event_id: str | None = None


class IngestAccepted(BaseModel):
    accepted: list[str] = Field(description="event_ids published now, in batch order.")
    duplicates: list[str] = Field(description="event_ids already published recently: not sent again.")


class IngestRejected(BaseModel):
    detail: str
    errors: list[BadItem]


# -- the probes (/healthz, /readyz): no token, outside /v1 --------------------------------------


class Liveness(Answer):
    """The process serves HTTP."""

    status: Literal["alive"]


class ReadinessCheck(Answer):
    """One thing readiness needs, and what was found."""

    name: Literal["database", "migrations"]
    ok: bool
    detail: str


class Readiness(Answer):
    """Whether this API can answer requests now; `detail` names what is not ready."""

    status: Literal["ready", "not-ready"]
    detail: str
    checks: list[ReadinessCheck]
    schema_version: int | None = Field(description="The newest migration the database has applied (none if none).")
    expected_schema_version: int = Field(description="The newest migration this code ships.")
