"""Input rules against the real pipelines and database: each refusal has its own reason, its own
counter label, and leaves the twin as if the input had never come.

A small simulated fleet (facilities, intent, four racks in service) is set up first; each test
then sends its own crafted input on topics of its own (`topic_prefix`), as a producer would.
"""

from __future__ import annotations

import asyncio
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any
from uuid import UUID, uuid4

import psycopg
import pytest
from inprocess import run_pipelines
from prometheus_client import REGISTRY

from schemas import RackDegraded, RackReading, TelemetryReported
from twin.domain.intent import IntentCatalog
from twin.embedded.simulator import FaultPlan, FleetSimulator, Message
from twin.store.verify import verify

sys.path.insert(0, str(Path(__file__).parents[1] / "unit"))  # the unit tests' event builders
from given import Clock, installed, road_to  # noqa: E402

pytestmark = pytest.mark.integration

RACK = "dfw1-h1-r01-01"
OTHER = "dfw1-h1-r02-01"


def fleet(tenant: Any) -> FleetSimulator:
    catalog = IntentCatalog.default()
    start = datetime.now(timezone.utc) - timedelta(seconds=30)
    sim = FleetSimulator(2, 4, start, {g: catalog.latest(g) for g in catalog.generations()}, faults=FaultPlan())
    assert {RACK, OTHER} <= set(sim.racks)
    asyncio.run(run_pipelines(tenant.database_url, [*sim.reference_messages(), *sim.history_messages()], 100))
    return sim


def send(tenant: Any, messages: list[Message], prefix: str) -> None:
    asyncio.run(run_pipelines(tenant.database_url, messages, 100, topic_prefix=prefix))


def reading(rack: str, at: datetime, **changes: Any) -> RackReading:
    values = dict(power_watts=90_000.0, inlet_temperature_celsius=24.0, outlet_temperature_celsius=33.0,
                  coolant_supply_temperature_celsius=30.0, coolant_return_temperature_celsius=40.0,
                  coolant_flow_liters_per_minute=140.0, coolant_differential_pressure_kilopascals=110.0,
                  leak_detected=False, hottest_accelerator_temperature_celsius=70.0, fan_speed_percent=45.0,
                  network_links_up=1, network_links_down=0)
    return RackReading(rack_id=rack, occurred_at=at, **{**values, **changes})


def report(*readings: RackReading, rack_id: str | None = None, source: str = "collector-7",
           event_id: UUID | None = None) -> Message:
    body = TelemetryReported(event_id=event_id or uuid4(), occurred_at=readings[0].occurred_at, source=source,
                             seq=1, rack_id=rack_id, readings=readings)
    return Message("telemetry", b"dfw1/h1/r01", body.model_dump_json().encode())


def lifecycle(event: Any) -> Message:
    return Message("lifecycle", event.rack_id.encode(), event.model_dump_json().encode())


def rows(tenant: Any, sql: str, params: Any = ()) -> list[tuple[Any, ...]]:
    with psycopg.connect(tenant.database_url) as conn:
        return conn.execute(sql, params).fetchall()


def letters(tenant: Any) -> list[tuple[Any, ...]]:
    return rows(tenant, "SELECT reason, idx, rack_id FROM deadletters WHERE replayed_at IS NULL ORDER BY id")


def counted(reason: str) -> float:
    return REGISTRY.get_sample_value("twin_deadletters_total", {"reason": reason}) or 0.0


def test_a_reading_or_event_dated_beyond_the_clock_skew_bound_is_refused_and_never_moves_the_twin(tenant: Any) -> None:
    fleet(tenant)
    now = datetime.now(timezone.utc).replace(microsecond=0)
    before = counted("clock-skew")
    ahead = reading(RACK, now + timedelta(days=400))
    degraded = RackDegraded(event_id=uuid4(), occurred_at=now + timedelta(days=1), source="site-tool", seq=1,
                            rack_id=RACK, reason="fan wall")
    send(tenant, [report(ahead), lifecycle(degraded)], "skew.")
    assert letters(tenant) == [("clock-skew", 0, RACK), ("clock-skew", -1, RACK)]
    assert counted("clock-skew") - before == 2
    assert rows(tenant, "SELECT count(*) FROM telemetry WHERE occurred_at > now()") == [(0,)]
    assert rows(tenant, "SELECT count(*) FROM events WHERE event_id = %s", (degraded.event_id,)) == [(0,)]
    # The twin still moves with the next reading of the present (a reading from the future froze it).
    send(tenant, [report(reading(RACK, now))], "skew-then.")
    assert rows(tenant, "SELECT telemetry_at, status FROM rack_state WHERE rack_id = %s", (RACK,)) == [(now, "active")]
    assert verify(tenant.database_url).ok


def test_an_event_id_repeated_with_another_body_is_a_conflicting_duplicate_not_a_transition(tenant: Any) -> None:
    fleet(tenant)
    now = datetime.now(timezone.utc)
    first = RackDegraded(event_id=uuid4(), occurred_at=now, source="site-tool", seq=1, rack_id=RACK, reason="fan wall")
    other = first.model_copy(update={"reason": "two switch trays down"})
    later = first.model_copy(update={"reason": "coolant alarm", "seq": 2})
    before = counted("conflicting-duplicate")
    send(tenant, [lifecycle(first), lifecycle(other), lifecycle(first)], "dup.")  # in one batch: first wins
    send(tenant, [lifecycle(later)], "dup-later.")  # in a later batch: the stored body wins
    assert letters(tenant) == [("conflicting-duplicate", -1, RACK), ("conflicting-duplicate", -1, RACK)]
    assert counted("conflicting-duplicate") - before == 2
    assert rows(tenant, "SELECT body ->> 'reason' FROM events WHERE event_id = %s", (first.event_id,)) == \
        [("fan wall",)]
    assert rows(tenant, "SELECT status, twin ->> 'status_reason' FROM rack_state WHERE rack_id = %s", (RACK,)) == \
        [("degraded", "fan wall")]
    assert verify(tenant.database_url).ok


def test_a_reading_identity_repeated_with_other_values_is_a_conflicting_duplicate(tenant: Any) -> None:
    fleet(tenant)
    at = datetime.now(timezone.utc).replace(microsecond=0)
    kept = reading(RACK, at, power_watts=91_000.0)
    before = counted("conflicting-duplicate")
    send(tenant, [report(kept), report(kept), report(reading(OTHER, at), kept.model_copy(
        update={"power_watts": 5_000.0}))], "readings.")
    assert letters(tenant) == [("conflicting-duplicate", 1, RACK)]  # the same values again are the same fact
    send(tenant, [report(kept.model_copy(update={"power_watts": 7_000.0}))], "readings-later.")
    assert letters(tenant) == [("conflicting-duplicate", 1, RACK), ("conflicting-duplicate", 0, RACK)]
    assert counted("conflicting-duplicate") - before == 2
    assert rows(tenant, "SELECT power_watts FROM telemetry WHERE rack_id = %s AND occurred_at = %s", (RACK, at)) \
        == [(91_000.0,)]
    assert rows(tenant, "SELECT power_watts FROM rack_state WHERE rack_id = %s", (RACK,)) == [(91_000.0,)]


def test_a_reading_naming_another_rack_than_its_report_is_refused_as_wrong_rack(tenant: Any) -> None:
    fleet(tenant)
    at = datetime.now(timezone.utc).replace(microsecond=0)
    before = counted("wrong-rack")
    send(tenant, [report(reading(RACK, at), reading(OTHER, at), rack_id=RACK)], "wrong.")
    assert letters(tenant) == [("wrong-rack", 1, OTHER)]
    assert counted("wrong-rack") - before == 1
    assert rows(tenant, "SELECT rack_id FROM telemetry ORDER BY 1") == [(RACK,)]


def test_a_duplicated_reports_bad_reading_is_dead_lettered_once(tenant: Any) -> None:
    fleet(tenant)
    at = datetime.now(timezone.utc).replace(microsecond=0)
    good = reading(RACK, at).model_dump(mode="json")
    body = TelemetryReported(event_id=uuid4(), occurred_at=at, source="collector-7", seq=1,
                             readings=(reading(RACK, at),)).model_dump(mode="json")
    body["readings"] = [good, {**good, "rack_id": OTHER, "power_watts": -5.0}]
    import orjson

    message = Message("telemetry", b"dfw1/h1/r01", orjson.dumps(body))
    send(tenant, [message, message], "twice.")
    send(tenant, [message], "thrice.")
    assert letters(tenant) == [("out-of-physical-range", 1, OTHER)]


def test_an_install_into_a_place_the_registry_does_not_know_waits_as_unknown_location(tenant: Any) -> None:
    sim = fleet(tenant)
    rack = "dfw1-h1-r01-15"
    assert rack not in sim.racks
    clock = Clock(datetime.now(timezone.utc) - timedelta(days=30), source="factory-mes")
    events = clock.events(road_to(installed(rack, facility="dfw1", hall="h1", row="r77", position=3)))
    before = counted("unknown-location")
    send(tenant, [lifecycle(e) for e in events], "place.")
    assert letters(tenant) == [("unknown-location", -1, rack)]
    assert counted("unknown-location") - before == 1
    assert rows(tenant, "SELECT status, facility_id, row_id FROM rack_state WHERE rack_id = %s", (rack,)) == \
        [("received", "dfw1", None)]
    assert verify(tenant.database_url).ok
