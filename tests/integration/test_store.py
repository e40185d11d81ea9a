"""The store's unit of work against the real database: all of a batch, or nothing of it."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from schemas import DeadLetter, RackReading
from twin.errors import StoreError
from twin.store import TwinStore
from worker_process import scalar

pytestmark = pytest.mark.integration


def reading(rack_id: str, second: int) -> RackReading:
    return RackReading(
        rack_id=rack_id, occurred_at=datetime(2026, 11, 25, 12, 0, second, tzinfo=timezone.utc), power_watts=90_000,
        inlet_temperature_celsius=24, outlet_temperature_celsius=36, coolant_supply_temperature_celsius=30,
        coolant_return_temperature_celsius=40, coolant_flow_liters_per_minute=150,
        coolant_differential_pressure_kilopascals=80, leak_detected=False, hottest_accelerator_temperature_celsius=70,
        fan_speed_percent=40, network_links_up=100, network_links_down=0,
    )


def test_a_batch_that_fails_midway_leaves_nothing_written(tenant: Any) -> None:
    async def run() -> None:
        store = await TwinStore.connect(tenant.database_url)
        letter = DeadLetter(reason="malformed-json", detail="x", topic="t", partition=0, offset=1, payload="{",
                            recorded_at=datetime.now(timezone.utc))
        with pytest.raises(StoreError):
            async with store.unit_of_work() as uow:
                await uow.copy_readings([("collector", reading("r-1", s)) for s in range(10)])
                await uow.record_deadletters([letter])
                await uow.track("g", {("t", 0): 1})
                await uow.register_racks([("r-1", "gen-a-130kw", None, None)])  # type: ignore[list-item]
        async with store.unit_of_work() as uow:  # the connection is usable again
            await uow.copy_readings([("collector", reading("r-1", 59))])
        await store.close()

    asyncio.run(run())
    assert scalar(tenant.database_url, "SELECT count(*) FROM telemetry") == 1
    assert scalar(tenant.database_url, "SELECT count(*) FROM deadletters") == 0
    assert scalar(tenant.database_url, "SELECT count(*) FROM consumer_offsets") == 0


def test_the_same_readings_copied_twice_are_stored_once(tenant: Any) -> None:
    async def run() -> tuple[int, int]:
        store = await TwinStore.connect(tenant.database_url)
        batch = [("collector", reading("r-2", s)) for s in range(20)]
        async with store.unit_of_work() as uow:
            first = await uow.copy_readings(batch)
        async with store.unit_of_work() as uow:
            second = await uow.copy_readings(batch[::-1])
        await store.close()
        assert first.conflicting == second.conflicting == []
        return first.stored, second.stored

    assert asyncio.run(run()) == (20, 0)
    assert scalar(tenant.database_url, "SELECT count(*) FROM telemetry") == 20


def test_the_event_store_refuses_to_rewrite_history(tenant: Any) -> None:
    import psycopg

    with psycopg.connect(tenant.database_url, autocommit=True) as conn:
        conn.execute("INSERT INTO events (event_id, stream_id, stream_version, type, schema_version, occurred_at,"
                     " source, seq, body) VALUES (gen_random_uuid(), 'r-3', 1, 'rack.commissioned', 1, now(), 's', 1,"
                     " '{}')")
        for statement in ("UPDATE events SET type = 'rack.decommissioned'", "DELETE FROM events"):
            with pytest.raises(psycopg.errors.RaiseException, match="append-only"):
                conn.execute(statement)
    assert scalar(tenant.database_url, "SELECT type FROM events") == "rack.commissioned"


def test_a_reading_stamped_in_another_time_zone_lands_in_its_utc_day(tenant: Any) -> None:
    """Partitions are UTC days: 23:30 at UTC-5 is 04:30 the next UTC day, a day with no partition yet."""
    late_evening = reading("r-3", 0).model_copy(
        update={"occurred_at": datetime(2031, 3, 9, 23, 30, tzinfo=timezone(timedelta(hours=-5)))})

    async def run() -> int:
        store = await TwinStore.connect(tenant.database_url)
        async with store.unit_of_work() as uow:
            copied = await uow.copy_readings([("collector", late_evening)])
        await store.close()
        return copied.stored

    assert asyncio.run(run()) == 1
    assert scalar(tenant.database_url, "SELECT tableoid::regclass::text FROM telemetry WHERE rack_id = 'r-3'") \
        == "telemetry_20310310"
