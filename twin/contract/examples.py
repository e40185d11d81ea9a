"""One small fleet's story, told once per message type: the examples of the producer contract.

Why a story and not one example per type on its own: a producer reading the document can send
the examples in their order and watch the twin take every one of them (a registered facility, an
intent, a rack from manufacture to service, another rack from manufacture to its end, and a
telemetry report). Each example is a validated model, so an example that breaks its schema
fails here, not in a producer's hands. Fixed ids and instants: the document is regenerated
byte for byte.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import NamedTuple
from uuid import UUID, uuid5

from schemas import (
    Component, ComponentInstalled, DeadLetter, Deviation, DeviationChanged, ComponentReplaced, Envelope, Facility, FacilityRegistered, FirmwareUpdated, Hall,
    IntentPublished, RackCommissioned, RackDecommissioned, RackDegraded, RackEnteredService, RackInstalled,
    RackMaintenanceStarted, RackManufactured, RackReading, RackReceived, RackRmaOpened, RackShipped, RackTested,
    RolloutPlanPublished, RolloutTarget, Row, TelemetryReported,
)
from twin.domain.intent import IntentCatalog

__all__ = ["STORY_START", "Example", "outputs", "story"]

STORY_START = datetime(2026, 7, 1, 8, 0, tzinfo=timezone.utc)
"""When the story begins; a producer replaying it shifts every instant to its own clock."""

_IDS = UUID("6f1c0c1e-5a8e-4a1b-9f3e-2c7d0e9b4a10")


class Example(NamedTuple):
    """One message of the story: the channel it goes to, its Kafka key, its event."""

    channel: str
    key: str
    event: Envelope | DeadLetter
    summary: str


def story(generation: str = "gen-a-130kw") -> list[Example]:
    """The story's messages in the order a producer sends them."""
    intent = IntentCatalog.default().latest(generation)
    if intent is None:
        raise LookupError(f"the bundled intent catalog has no generation {generation!r}")
    clock = iter(STORY_START + timedelta(hours=6 * n) for n in range(1000))
    seqs: dict[str, int] = {}

    def envelope(source: str, name: str) -> dict[str, object]:
        seqs[source] = seqs.get(source, 0) + 1
        return {"event_id": uuid5(_IDS, name), "occurred_at": next(clock), "source": source, "seq": seqs[source]}

    rack, other = "dfw1-h1-r01-01", "dfw1-h1-r01-02"
    factory, site = "mes-fremont", "site-tool-dfw1"
    tray = Component(slot="tray-01", kind="compute-tray", part_number="CT-900", serial_number="CT900-0001",
                     supplier="Example Systems", country_of_manufacture="US", firmware_version="1.8.2",
                     unit_value_usd=250_000)
    facility = Facility(facility_id="dfw1", name="Dallas 1", ownership="own", operator="fleet-twin", region="us-south",
                        halls=(Hall(hall_id="h1", power_capacity_watts=2_000_000, cooling_capacity_watts=2_200_000,
                                    rows=(Row(row_id="r01", positions=8, power_capacity_watts=1_100_000,
                                              cooling_capacity_watts=1_200_000),)),))

    def about(rack_id: str, source: str, name: str) -> dict[str, object]:
        return {**envelope(source, name), "rack_id": rack_id}

    out = [
        Example("intent", "dfw1", FacilityRegistered(**envelope("fleet-registry", "facility"), facility=facility),
                "A facility with its halls and rows, registered before any rack is installed in it."),
        Example("intent", generation, IntentPublished(**envelope("design-intent", "intent"), intent=intent),
                "A generation's design intent, published before its racks enter service."),
        Example("intent", "rollout", RolloutPlanPublished(
            **envelope("capacity-planning", "plan"), revision=1,
            targets=(RolloutTarget(facility_id="dfw1", generation=generation, quarter="2026Q4", racks_in_service=1),)),
            "The rollout plan: racks in service per facility, generation and quarter."),
        Example("lifecycle", rack, RackManufactured(**about(rack, factory, "made-1"), generation=generation,
                                                    serial_number="SN-0001", factory="Fremont CA"),
                "A rack's first event: from here on the fleet knows it."),
        Example("lifecycle", rack, ComponentInstalled(**about(rack, factory, "tray-1"), component=tray),
                "A part fitted into a slot of the rack."),
        Example("lifecycle", rack, RackTested(**about(rack, factory, "fat-1"), test="factory-acceptance", passed=True,
                                              measurements={"peak_power_watts": 128_500.0}),
                "A passed factory acceptance test: the rack becomes factory-tested."),
        Example("lifecycle", rack, RackShipped(**about(rack, factory, "ship-1"), destination_facility_id="dfw1",
                                               carrier="Example Freight"), "The rack leaves the factory."),
        Example("lifecycle", rack, RackReceived(**about(rack, site, "recv-1"), facility_id="dfw1"),
                "The facility's dock accepts it."),
        Example("lifecycle", rack, RackInstalled(**about(rack, site, "inst-1"), facility_id="dfw1", hall_id="h1",
                                                 row_id="r01", position=1),
                "It stands in a registered position."),
        Example("lifecycle", rack, RackTested(**about(rack, site, "sat-1"), test="site-acceptance", passed=True),
                "A passed site acceptance test."),
        Example("lifecycle", rack, RackCommissioned(**about(rack, site, "comm-1")), "Commissioned on site."),
        Example("lifecycle", rack, RackEnteredService(**about(rack, site, "serve-1")),
                "Enters service: its generation's required tests have passed."),
        Example("lifecycle", rack, FirmwareUpdated(**about(rack, site, "fw-1"), slot="tray-01", firmware_version="1.8.3"),
                "Firmware of one slot updated."),
        Example("lifecycle", rack, RackDegraded(**about(rack, site, "degr-1"), reason="one compute tray offline"),
                "Serving with reduced capacity."),
        Example("lifecycle", rack, RackMaintenanceStarted(**about(rack, site, "mnt-1"), reason="replace compute tray"),
                "Drained for maintenance."),
        Example("lifecycle", rack, ComponentReplaced(**about(rack, site, "repl-1"), removed_serial_number="CT900-0001",
                                                     component=tray.model_copy(update={"serial_number": "CT900-0002",
                                                                                       "firmware_version": "1.8.3"}),
                                                     cause="rma", rma_number="RMA-PART-17"),
                "A part swapped for another."),
        Example("lifecycle", rack, RackEnteredService(**about(rack, site, "serve-2")), "Back in service."),
        Example("lifecycle", other, RackManufactured(**about(other, factory, "made-2"), generation=generation,
                                                     serial_number="SN-0002", factory="Fremont CA"),
                "A second rack."),
        Example("lifecycle", other, RackTested(**about(other, factory, "fat-2"), test="factory-acceptance", passed=True),
                "Factory-tested."),
        Example("lifecycle", other, RackShipped(**about(other, factory, "ship-2"), destination_facility_id="dfw1"),
                "Shipped."),
        Example("lifecycle", other, RackReceived(**about(other, site, "recv-2"), facility_id="dfw1"), "Received."),
        Example("lifecycle", other, RackRmaOpened(**about(other, site, "rma-2"), rma_number="RMA-7001",
                                                  reason="manifold damaged in transit"),
                "Sent back under RMA."),
        Example("lifecycle", other, RackDecommissioned(**about(other, factory, "end-2"), reason="beyond repair"),
                "Retired: no event is legal after this one."),
    ]
    at = next(clock)
    reading = RackReading(
        rack_id=rack, occurred_at=at, power_watts=96_000, inlet_temperature_celsius=24.5,
        outlet_temperature_celsius=39.0, coolant_supply_temperature_celsius=30.0,
        coolant_return_temperature_celsius=41.5, coolant_flow_liters_per_minute=170.0,
        coolant_differential_pressure_kilopascals=85.0, leak_detected=False, hottest_accelerator_temperature_celsius=71.0,
        fan_speed_percent=38.0, network_links_up=144, network_links_down=0)
    report = TelemetryReported(event_id=uuid5(_IDS, "report-1"), occurred_at=at, source="collector-dfw1-h1", seq=1,
                               readings=(reading,))
    out.append(Example("telemetry", "dfw1/h1/r01", report,
                       "One poll cycle of a row's collector: one reading per powered rack of the row."))
    return out


def outputs() -> list[Example]:
    """What the twin writes back, one example each: a dead letter and a deviation that fired."""
    at = STORY_START + timedelta(days=7)
    letter = DeadLetter(
        reason="out-of-physical-range", detail="readings.0.coolant_flow_liters_per_minute=99999.0 is outside its "
        "physical range: Input should be less than or equal to 2000", topic="fleet.telemetry.v1", partition=2,
        offset=1841, index=0, event_id=str(uuid5(_IDS, "bad-report")), rack_id="dfw1-h1-r01-01",
        source="collector-dfw1-h1", payload='{"rack_id": "dfw1-h1-r01-01", "coolant_flow_liters_per_minute": 99999.0}',
        recorded_at=at)
    fired = DeviationChanged(
        event_id=uuid5(_IDS, "deviation-1"), occurred_at=at, source="twin-worker", seq=1, rack_id="dfw1-h1-r01-01",
        state="firing", deviation=Deviation(
            rack_id="dfw1-h1-r01-01", check="power-over-budget", severity="critical", measured=141_000.0,
            allowed_min=26_000.0, allowed_max=132_000.0, unit="W", generation="gen-a-130kw", intent_revision=1,
            detail="rack input power above its generation's budget"))
    return [Example("deadletter", "", letter, "A reading refused for a value no sensor can read."),
            Example("deviations", "dfw1-h1-r01-01", fired, "A rack drawing more than its design budget.")]
