"""The API's answer cache: the spliced freshness gives the same bytes as serialising the whole
answer, and the cache stays within its byte bound."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from twin.api.answer_cache import AnswerCache, serialise_without_freshness, with_freshness
from twin.store import answers as a

NOW = datetime(2027, 3, 1, 12, 30, 15, 123456, tzinfo=timezone.utc)


def _headroom(rows: int) -> a.Headroom:
    places = [a.HeadroomPlace(level="row", facility_id="dfw1", hall_id="h1", row_id=f"r{k:03d}", operator="fleet-twin",
                              positions=20, racks=k % 21, power_capacity_watts=3.4e6 + k * 0.1,
                              cooling_capacity_watts=3.6e6, allocated_draw_watts=130_000.0 * (k % 21),
                              measured_p95_watts=None if k % 3 else 1e16 / (k + 1),
                              available_power_watts=3.4e6 - 130_000.0 * (k % 21), available_cooling_watts=-1.5,
                              free_positions=20 - k % 21) for k in range(rows)]
    return a.Headroom(level="row", window_minutes=15, places=places, summarised_at=NOW)


@pytest.mark.parametrize("freshness", [
    None,
    a.Freshness(newest_event_at=NOW - timedelta(seconds=3), worker_committed_at=None, worker_lag_seconds=None,
                answered_at=NOW),
    a.Freshness(newest_event_at=None, worker_committed_at=NOW.replace(microsecond=0), worker_lag_seconds=0.25,
                answered_at=NOW + timedelta(microseconds=7)),
])
def test_a_cached_answer_with_its_freshness_is_byte_for_byte_the_whole_answer(freshness: a.Freshness | None) -> None:
    for answer in (_headroom(50), _headroom(0),
                   a.FleetSummary(group_by=["row"], racks=3, summarised_at=None, groups=[a.FleetGroup(
                       key={"facility_id": "dfw1", "hall_id": None}, racks=3, in_service=2, with_deviations=1,
                       critical=0, power_watts=0.0, allocated_draw_watts=260_000.5)])):
        whole = answer.model_copy(update={"freshness": freshness}).model_dump_json().encode()
        assert with_freshness(serialise_without_freshness(answer), freshness) == whole


def test_an_answer_whose_last_field_is_not_its_freshness_is_refused() -> None:
    with pytest.raises(TypeError, match="freshness"):
        serialise_without_freshness(a.FleetGroup(key={}, racks=0, in_service=0, with_deviations=0, critical=0,
                                                 power_watts=0.0, allocated_draw_watts=0.0))


def test_the_cache_drops_the_least_recently_used_answers_beyond_its_byte_bound() -> None:
    cache = AnswerCache(max_bytes=100)
    cache.put("a", b"x" * 40)
    cache.put("b", b"y" * 40)
    assert cache.get("a") == b"x" * 40  # now "b" is the least recently used
    cache.put("c", b"z" * 40)
    assert cache.get("b") is None and cache.get("a") == b"x" * 40 and cache.get("c") == b"z" * 40
    cache.put("huge", b"h" * 101)  # larger than the whole bound: not kept, nothing else dropped
    assert cache.get("huge") is None and len(cache) == 2
    cache.put("a", b"w" * 61)  # replacing an entry counts its new size only: 101 bytes drop "c"
    assert cache.get("c") is None and cache.get("a") == b"w" * 61
    assert (cache.hits, cache.misses) == (4, 3)
