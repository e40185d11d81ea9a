"""Headroom's per-row draw (row_power_minutes) counts readings stored after their minute was rolled
up (migration 0055), as the Grafana rollups do: the real pipelines write, the real refresh rolls."""

from __future__ import annotations

import asyncio
from collections import defaultdict
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from inprocess import run_pipelines

from schemas import TelemetryReported
from twin.domain.intent import IntentCatalog
from twin.embedded.simulator import FaultPlan, FleetSimulator
from twin.messages import Message
from twin.store import views

pytestmark = pytest.mark.integration


def _row_minutes(conn: Any, minute: datetime) -> dict[tuple[str, str, str], tuple[int, float]]:
    rows = conn.execute("SELECT facility_id, hall_id, row_id, racks, power_watts FROM row_power_minutes"
                        " WHERE minute = %s", (minute,)).fetchall()
    return {(r["facility_id"], r["hall_id"], r["row_id"]): (r["racks"], r["power_watts"]) for r in rows}


def _expected(conn: Any, reports: list[TelemetryReported]) -> dict[tuple[str, str, str], tuple[int, float]]:
    """Each placed rack's mean power over the readings sent, summed by the row it stands in."""
    by_rack: dict[str, list[float]] = defaultdict(list)
    for report in reports:
        for reading in report.readings:
            by_rack[reading.rack_id].append(reading.power_watts)
    places = {r["rack_id"]: (r["facility_id"], r["hall_id"], r["row_id"]) for r in conn.execute(
        "SELECT rack_id, facility_id, hall_id, row_id FROM rack_lifecycle WHERE row_id IS NOT NULL").fetchall()}
    out: dict[tuple[str, str, str], list[float]] = defaultdict(list)
    for rack, powers in by_rack.items():
        if rack in places:
            out[places[rack]].append(sum(powers) / len(powers))
    return {row: (len(means), sum(means)) for row, means in out.items()}


def _same(got: dict[tuple[str, str, str], tuple[int, float]],
          want: dict[tuple[str, str, str], tuple[int, float]]) -> bool:
    """The same rows and rack counts, and the same watts up to float rounding (readings are stored as real)."""
    return got.keys() == want.keys() and all(
        got[k][0] == want[k][0] and got[k][1] == pytest.approx(want[k][1], rel=1e-6) for k in want)


def _messages(reports: list[TelemetryReported]) -> list[Message]:
    return [Message("telemetry", r.source.encode(), r.model_dump_json().encode()) for r in reports]


def test_readings_stored_after_their_minute_was_rolled_up_are_counted_at_the_next_refresh(tenant: Any) -> None:
    now = datetime.now(timezone.utc)
    minute = now.replace(second=0, microsecond=0) - timedelta(minutes=3)  # complete well before the refresh
    catalog = IntentCatalog.default()
    sim = FleetSimulator(5, 24, minute - timedelta(minutes=2), {g: catalog.latest(g) for g in catalog.generations()},
                         faults=FaultPlan())
    on_time = sim.telemetry_cycle(minute + timedelta(seconds=10))
    asyncio.run(run_pipelines(tenant.database_url, [*sim.reference_messages(), *sim.history_messages(),
                                                    *_messages(on_time)], 500))
    with views.connect(tenant.database_url) as conn:
        assert conn.execute("SELECT refresh_row_power_minutes(60)").fetchone()["refresh_row_power_minutes"] == 60
        first = _row_minutes(conn, minute)
        assert first and _same(first, _expected(conn, on_time))

        # The same racks again in that minute, 20 s later and 700 W higher each: stored after the roll-up.
        late = [r.model_copy(update={"readings": tuple(x.model_copy(update={"power_watts": x.power_watts + 700.0})
                                                       for x in r.readings)})
                for r in sim.telemetry_cycle(minute + timedelta(seconds=30))]
        asyncio.run(run_pipelines(tenant.database_url, _messages(late), 500, topic_prefix="late."))
        assert conn.execute("SELECT count(*) AS n FROM telemetry WHERE occurred_at >= %s AND occurred_at < %s",
                            (minute, minute + timedelta(minutes=1))).fetchone()["n"] == 2 * sum(
                                len(r.readings) for r in on_time), "the late readings are stored"
        assert _row_minutes(conn, minute) == first, "not counted before the refresh"

        rolled = conn.execute("SELECT refresh_row_power_minutes(60)").fetchone()["refresh_row_power_minutes"]
        again = _row_minutes(conn, minute)
        assert _same(again, _expected(conn, on_time + late)), (again, _expected(conn, on_time + late))
        assert rolled >= 1, "the late minute counts as rolled"
        assert again != first
        assert conn.execute("SELECT count(*) AS n FROM row_power_pending WHERE minute < date_trunc('minute', now())"
                            ).fetchone()["n"] == 0, "the queue is drained up to the open minute"
        # Nothing new: the next refresh leaves the minute as it is.
        conn.execute("SELECT refresh_row_power_minutes(60)")
        assert _row_minutes(conn, minute) == again
