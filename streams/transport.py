"""Faust's aiokafka transport with the consumer's fetch wait taken from our settings.

Faust builds its worker consumer with `fetch_max_wait_ms=1500` and offers no setting for it.
On Apache Kafka a long-poll fetch returns as soon as records arrive, so the value rarely
matters; Tansu answers a fetch only when the wait is over, so a caught-up worker would see
telemetry in bursts up to 1.5 s late (measured by `bench/ingest.py`: p99 event-to-twin 17 s at
20,000 readings/s with 1500 ms, about 1 s with 100 ms). aiokafka reads the value when the
consumer starts, so it is set on the consumer Faust has just built, before it starts.
"""

from __future__ import annotations

from typing import Any

import aiokafka
import faust
from faust.transport.drivers import aiokafka as faust_aiokafka

__all__ = ["TwinApp"]


class _ConsumerThread(faust_aiokafka.AIOKafkaConsumerThread):
    def _create_worker_consumer(self, transport: Any) -> aiokafka.AIOKafkaConsumer:
        consumer = super()._create_worker_consumer(transport)
        consumer._fetch_max_wait_ms = self.app.fetch_max_wait_ms  # read by AIOKafkaConsumer.start()
        return consumer


class _Consumer(faust_aiokafka.Consumer):
    def _new_consumer_thread(self) -> _ConsumerThread:
        return _ConsumerThread(self, loop=self.loop, beacon=self.beacon)


class _Transport(faust_aiokafka.Transport):
    Consumer = _Consumer


class TwinApp(faust.App):
    """A Faust app whose Kafka consumer waits at most `fetch_max_wait_ms` in a fetch."""

    def __init__(self, *args: Any, fetch_max_wait_ms: int, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fetch_max_wait_ms = fetch_max_wait_ms

    def _new_transport(self) -> _Transport:
        return _Transport(self.conf.broker_consumer, self)
