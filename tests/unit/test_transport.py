"""The worker's Kafka consumer takes its fetch wait from our settings, not Faust's fixed 1500 ms."""

from __future__ import annotations

import asyncio
import warnings
from typing import Any

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


async def _consumer() -> Any:
    app = TwinApp("transport-wait-first", fetch_max_wait_ms=100, broker="kafka://127.0.0.1:1")
    return app.consumer


def test_a_delivery_that_completes_at_once_is_the_answer_without_tasks() -> None:
    async def run() -> tuple[Any, list[str]]:
        consumer = await _consumer()
        log: list[str] = []

        async def deliver() -> str:
            log.append("delivered")
            return "ok"

        tasks_before = len(asyncio.all_tasks())
        result = await consumer.wait_first(deliver(), consumer.suspend_flow.wait())
        assert len(asyncio.all_tasks()) == tasks_before  # no task left behind (nor created and cancelled)
        return result, log

    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)  # "coroutine ... was never awaited" would fail here
        result, log = asyncio.run(run())
    assert (result.results, result.stopped, log) == (["ok"], False, ["delivered"])


def test_a_delivery_that_must_wait_for_room_is_carried_on_to_its_end() -> None:
    async def run() -> Any:
        consumer = await _consumer()
        room = asyncio.Queue(maxsize=1)
        room.put_nowait("earlier message")

        async def deliver() -> str:
            await room.put("this message")  # the stream's buffer is full: waits for the agent
            return "delivered after waiting"

        asyncio.get_running_loop().call_later(0.05, room.get_nowait)  # the agent takes one
        result = await consumer.wait_first(deliver(), consumer.suspend_flow.wait())
        return result, list(room._queue)  # type: ignore[attr-defined]

    result, queued = asyncio.run(run())
    assert result.results == ["delivered after waiting"] and queued == ["this message"]


def test_a_flow_suspended_while_a_delivery_waits_still_interrupts_it() -> None:
    """Faust suspends the flow on a rebalance: a delivery stuck on a full buffer must give way."""
    async def run() -> tuple[Any, list[str]]:
        consumer = await _consumer()
        log: list[str] = []

        async def deliver() -> None:
            try:
                await asyncio.Event().wait()  # never room
            except asyncio.CancelledError:
                log.append("delivery cancelled")
                raise

        asyncio.get_running_loop().call_later(0.05, consumer.suspend_flow.set)
        result = await consumer.wait_first(deliver(), consumer.suspend_flow.wait())
        await asyncio.sleep(0)  # let the cancellation reach the delivery
        return result, log

    result, log = asyncio.run(run())
    assert result.results == [True] and log == ["delivery cancelled"]


def test_a_delivery_that_fails_at_once_raises_as_faust_would() -> None:
    async def run() -> None:
        consumer = await _consumer()

        async def deliver() -> None:
            raise KeyError("no callback for this partition")

        await consumer.wait_first(deliver(), consumer.suspend_flow.wait())

    with pytest.raises(KeyError, match="no callback"):
        asyncio.run(run())


def test_a_suspended_flow_takes_the_slow_path_and_is_seen_at_once() -> None:
    async def run() -> Any:
        consumer = await _consumer()
        consumer.suspend_flow.set()

        async def deliver() -> str:
            await asyncio.sleep(10)
            return "late"

        return await consumer.wait_first(deliver(), consumer.suspend_flow.wait())

    assert asyncio.run(run()).results == [True]
