"""The worker's Kafka consumer takes its fetch wait from our settings, not Faust's fixed 1500 ms."""

from __future__ import annotations

import asyncio

import pytest

from streams.transport import TwinApp
from twin.settings import Settings


@pytest.mark.parametrize("wait_ms", [0, 100, 1500])
def test_the_consumer_faust_builds_waits_what_the_app_was_given(wait_ms: int) -> None:
    async def built() -> int:
        app = TwinApp(f"transport-test-{wait_ms}", fetch_max_wait_ms=wait_ms, broker="kafka://127.0.0.1:1")
        consumer = app.consumer._thread._create_worker_consumer(app.transport)
        return consumer._fetch_max_wait_ms  # what AIOKafkaConsumer.start() hands its fetcher

    assert asyncio.run(built()) == wait_ms


def test_the_fetch_wait_setting_defaults_low_and_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    assert Settings().fetch_max_wait_ms == 100
    monkeypatch.setenv("TWIN_FETCH_MAX_WAIT_MS", "40")
    assert Settings().fetch_max_wait_ms == 40
    monkeypatch.setenv("TWIN_FETCH_MAX_WAIT_MS", "5000")
    with pytest.raises(ValueError, match="less than or equal to 1500"):
        Settings()
