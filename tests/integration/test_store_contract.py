"""One contract, two stores (eventsourcing's style): `StoreContract` is written once against the
store's interface and run against PostgreSQL and against the in-memory store.

What the contract says: a unit of work is all or nothing; an event_id is one fact (a repeat is
skipped, another body under it is refused); a reading's identity likewise; a message's dead
letter is one letter, and a duplicated report's bad reading is one letter; a rack's fold
refusals are settled to exactly the fold's; tracked offsets only move forward; the lifecycle
state of an older stream version never wins; replacing one family of deviations leaves the other.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta, timezone
from typing import Any
from uuid import uuid4

import pytest

from schemas import DeadLetter, Deviation, RackDegraded, RackReading
from twin.domain.rack import Rejection
from twin.store import StateRow, StoredEvent, TwinStore
from twin.store.memory import MemoryStore

pytestmark = pytest.mark.integration  # the file's marker; the in-memory class needs no stack but shares the contract

T0 = datetime(2027, 1, 4, 12, tzinfo=timezone.utc)
RACK = "dfw1-h1-r01-01"


def degraded(reason: str = "fan wall", event_id: Any = None) -> RackDegraded:
    return RackDegraded(event_id=event_id or uuid4(), occurred_at=T0, source="site", seq=1, rack_id=RACK,
                        reason=reason)


def stored(event: RackDegraded, offset: int) -> StoredEvent:
    return StoredEvent(RACK, event, event.model_dump_json().encode(), ("lifecycle", 0, offset))


def reading(power: float = 90_000.0) -> RackReading:
    return RackReading(rack_id=RACK, occurred_at=T0, power_watts=power, inlet_temperature_celsius=24,
                       outlet_temperature_celsius=33, coolant_supply_temperature_celsius=30,
                       coolant_return_temperature_celsius=40, coolant_flow_liters_per_minute=140,
                       coolant_differential_pressure_kilopascals=110, leak_detected=False,
                       hottest_accelerator_temperature_celsius=70, fan_speed_percent=45, network_links_up=1,
                       network_links_down=0)


def bad_reading_letter(offset: int, report: str) -> DeadLetter:
    return DeadLetter(reason="out-of-physical-range", detail="power_watts=-5", topic="telemetry", partition=0,
                      offset=offset, index=1, event_id=report, rack_id=RACK, payload="{}", recorded_at=T0)


def deviation(check: str, severity: str = "warning") -> Deviation:
    return Deviation(rack_id=RACK, check=check, severity=severity, measured=1.0, allowed_min=0.0, allowed_max=0.5,
                     unit="x", generation="gen-a-130kw", intent_revision=1, detail="")  # type: ignore[arg-type]


def row(version: int, status: str) -> StateRow:
    return StateRow(rack_id=RACK, generation="gen-a-130kw", status=status, version=version, stream_version=version,
                    facility_id=None, hall_id=None, row_id=None, position=None, stage_entered_at=None,
                    lifecycle_at=None, twin={"status": status})


class StoreContract:
    """The store contract; a subclass says how to make a fresh store (`make`)."""

    def make(self) -> Awaitable[Any]:
        raise NotImplementedError

    def run(self, test: Callable[[Any], Awaitable[None]]) -> None:
        async def go() -> None:
            store = await self.make()
            try:
                await test(store)
            finally:
                await store.close()
        asyncio.run(go())

    def test_a_failed_unit_of_work_leaves_nothing_behind(self) -> None:
        async def test(store: Any) -> None:
            with pytest.raises(RuntimeError):
                async with store.unit_of_work() as uow:
                    await uow.append_events([stored(degraded(), 0)])
                    await uow.copy_readings([("bmc", reading())])
                    await uow.track("g", {("lifecycle", 0): 0})
                    raise RuntimeError("the batch fails after its writes")
            async with store.unit_of_work() as uow:
                assert await uow.stream(RACK) == []
            assert await store.tracked_offsets("g") == {}
            assert await store.stored_reading(RACK, T0, "bmc") is None
        self.run(test)

    def test_an_event_id_is_one_fact_and_another_body_under_it_is_refused(self) -> None:
        async def test(store: Any) -> None:
            first = degraded()
            async with store.unit_of_work() as uow:
                done = await uow.append_events([stored(first, 0), stored(first, 1),
                                                stored(degraded("other", first.event_id), 2)])
            assert [a.stream_version for a in done.new] == [1]
            assert [c.origin for c in done.conflicting] == [("lifecycle", 0, 2)]
            async with store.unit_of_work() as uow:
                again = await uow.append_events([stored(first, 3), stored(degraded("later", first.event_id), 4)])
                events = await uow.stream(RACK)
            assert again.new == [] and [c.origin for c in again.conflicting] == [("lifecycle", 0, 4)]
            assert [(e.type, e.origin) for e in events] == [("rack.degraded", ("lifecycle", 0, 0))]
        self.run(test)

    def test_a_reading_identity_is_one_fact_and_other_values_under_it_are_refused(self) -> None:
        async def test(store: Any) -> None:
            async with store.unit_of_work() as uow:
                first = await uow.copy_readings([("bmc", reading()), ("bmc", reading()), ("bmc", reading(1.0)),
                                                 ("pdu", reading(2.0))])
            async with store.unit_of_work() as uow:
                second = await uow.copy_readings([("bmc", reading()), ("bmc", reading(3.0))])
            assert (first.stored, first.conflicting) == (2, [2])
            assert (second.stored, second.conflicting) == (0, [1])
            assert (await store.stored_reading(RACK, T0, "bmc"))["power_watts"] == 90_000.0  # type: ignore[index]
        self.run(test)

    def test_a_duplicated_reports_bad_reading_is_one_letter_and_a_message_is_one_letter(self) -> None:
        async def test(store: Any) -> None:
            async with store.unit_of_work() as uow:
                await uow.record_deadletters([bad_reading_letter(5, "r-1"), bad_reading_letter(9, "r-1"),
                                              bad_reading_letter(5, "r-1")])
            assert [(d.offset, d.index) for d in await store.open_deadletters()] == [(5, 1)]
        self.run(test)

    def test_settling_a_racks_refusals_leaves_exactly_the_folds(self) -> None:
        async def test(store: Any) -> None:
            a, b = Rejection("e-a", "rack.shipped", "illegal-transition", "no", T0), \
                Rejection("e-b", "rack.entered_service", "missing-tests", "no", T0)
            async with store.unit_of_work() as uow:
                first = await uow.settle_refusals(RACK, [(a, ("lifecycle", 0, 1), "{}"), (b, ("lifecycle", 0, 2), "{}")])
            async with store.unit_of_work() as uow:
                again = await uow.settle_refusals(RACK, [(a, ("lifecycle", 0, 1), "{}")])
            assert [d.event_id for d in first] == ["e-a", "e-b"] and again == []
            assert [(d.event_id, d.reason) for d in await store.open_deadletters()] == [("e-a", "illegal-transition")]
        self.run(test)

    def test_tracked_offsets_only_move_forward(self) -> None:
        async def test(store: Any) -> None:
            for offset in (7, 3):
                async with store.unit_of_work() as uow:
                    await uow.track("g", {("telemetry", 1): offset})
            assert await store.tracked_offsets("g") == {("telemetry", 1): 7}
        self.run(test)

    def test_an_older_stream_version_never_overwrites_the_lifecycle_state(self) -> None:
        async def test(store: Any) -> None:
            async with store.unit_of_work() as uow:
                await uow.register_racks([(RACK, "gen-a-130kw", "SN", T0)])
                await uow.project_lifecycle([row(5, "active")])
            async with store.unit_of_work() as uow:
                await uow.project_lifecycle([row(4, "installed")])
            assert (await store.states([RACK]))[RACK]["stream_version"] == 5
            assert await store.generations_of([RACK, "dfw1-h1-r01-02"]) == {RACK: "gen-a-130kw"}
        self.run(test)

    def test_replacing_one_family_of_deviations_updates_it_and_leaves_the_other_alone(self) -> None:
        async def test(store: Any) -> None:
            async with store.unit_of_work() as uow:
                await uow.register_racks([(RACK, "gen-a-130kw", "SN", T0)])
                await uow.project_lifecycle([row(1, "active")])
                await uow.replace_deviations_of({RACK: [deviation("leak-detected")]}, T0, {"leak-detected"})
                await uow.replace_deviations(RACK, [deviation("stalled-in-stage")], T0, {"leak-detected"},
                                             family=False)
            async with store.unit_of_work() as uow:
                await uow.replace_deviations_of({RACK: [deviation("leak-detected", "critical")]},
                                                T0 + timedelta(hours=1), {"leak-detected"})
            found = {d.check: d.severity for d in (await store.open_deviations([RACK]))[RACK]}
            assert found == {"leak-detected": "critical", "stalled-in-stage": "warning"}
        self.run(test)


class TestMemoryStore(StoreContract):
    async def make(self) -> Any:  # type: ignore[override]
        return MemoryStore()


@pytest.mark.integration
class TestPostgresStore(StoreContract):
    @pytest.fixture(autouse=True)
    def _tenant(self, tenant: Any) -> None:
        self.database_url = tenant.database_url

    async def make(self) -> Any:  # type: ignore[override]
        return await TwinStore.connect(self.database_url)
