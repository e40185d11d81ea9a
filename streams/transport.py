"""Faust's aiokafka transport, with two costs of its consumer taken off the hot path.

Faust builds its worker consumer with `fetch_max_wait_ms=1500` and offers no setting for it.
On Apache Kafka a long-poll fetch returns as soon as records arrive, so the value rarely
matters; Tansu does not answer a waiting fetch early, so a caught-up consumer sees records
late by up to the wait (`bench/ingest.py` measures it: longest 760 ms at 1500 ms, 97 ms at
100 ms, on a plain aiokafka consumer). aiokafka reads the value when the
consumer starts, so it is set on the consumer Faust has just built, before it starts.

Per message, Faust hands the record to its stream through `wait_first(deliver, flow
suspended)`, which creates four tasks and an `asyncio.wait` for every Kafka message: most of
the ~100 µs a message that docs/architecture.md ("Telemetry travels as reports") gives. `_Consumer.wait_first` first runs the delivery
to its first suspension; when it completes at once (the stream's buffer had room, the usual
case) and nothing asked the flow to stop, that is the answer, as Faust's would have been.
When it must wait (the buffer is full: backpressure), it goes on under Faust's own
`wait_first`, so a suspended flow or a stop still interrupts it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine, Generator
from typing import Any

import aiokafka
import faust
from faust.transport.drivers import aiokafka as faust_aiokafka
from mode.services import WaitResults

__all__ = ["TwinApp"]


class _ConsumerThread(faust_aiokafka.AIOKafkaConsumerThread):
    def _create_worker_consumer(self, transport: Any) -> aiokafka.AIOKafkaConsumer:
        consumer = super()._create_worker_consumer(transport)
        consumer._fetch_max_wait_ms = self.app.fetch_max_wait_ms  # read by AIOKafkaConsumer.start()
        return consumer


class _Resumed:
    """A coroutine already run to its first suspension, as an awaitable that carries it on.

    The driving task gets the future the coroutine is waiting on, and whatever the task sends
    or throws (a cancellation) goes on into the coroutine: PEP 380 delegation, by hand, because
    the first step has already been taken.
    """

    __slots__ = ("_coro", "_pending")

    def __init__(self, coro: Coroutine[Any, Any, Any], pending: Any) -> None:
        self._coro = coro
        self._pending = pending

    def __await__(self) -> Generator[Any, Any, Any]:
        coro, pending = self._coro, self._pending
        while True:
            try:
                sent = yield pending
            except GeneratorExit:
                coro.close()
                raise
            except BaseException as exc:  # noqa: BLE001 - thrown in by the task: the coroutine's to handle
                try:
                    pending = coro.throw(exc)
                except StopIteration as stop:
                    return stop.value
            else:
                try:
                    pending = coro.send(sent)
                except StopIteration as stop:
                    return stop.value


class _Consumer(faust_aiokafka.Consumer):
    def _new_consumer_thread(self) -> _ConsumerThread:
        return _ConsumerThread(self, loop=self.loop, beacon=self.beacon)

    async def wait_first(self, *coros: Any, timeout: Any = None) -> WaitResults:
        first = coros[0] if coros else None
        if (timeout is None and asyncio.iscoroutine(first) and not self.suspend_flow.is_set()
                and not self._stopped.is_set() and not self._crashed.is_set()):
            try:
                pending = first.send(None)
            except StopIteration as done:  # delivered without waiting
                for other in coros[1:]:
                    if asyncio.iscoroutine(other):
                        other.close()  # never started: nothing to cancel
                return WaitResults([first], [done.value], False)
            coros = (_Resumed(first, pending), *coros[1:])
        return await super().wait_first(*coros, timeout=timeout)


class _Transport(faust_aiokafka.Transport):
    Consumer = _Consumer


class TwinApp(faust.App):
    """A Faust app whose Kafka consumer waits at most `fetch_max_wait_ms` in a fetch."""

    def __init__(self, *args: Any, fetch_max_wait_ms: int, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fetch_max_wait_ms = fetch_max_wait_ms

    def _new_transport(self) -> _Transport:
        return _Transport(self.conf.broker_consumer, self)
