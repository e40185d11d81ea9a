"""Prometheus metrics of a worker, served on its web port at /metrics.

Names follow Prometheus conventions (`_total` counters, base units); labels are bounded sets
(topic, reason), never rack ids.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

__all__ = [
    "ASSIGNED_PARTITIONS", "BATCH_SIZE", "BATCH_SECONDS", "CONSUMER_LAG", "DEADLETTERS", "EVENTS_IN", "EVENTS_OUT",
    "READINGS_IN", "STORE_RETRIES", "VISIBLE_LATENCY", "TWINS_HELD",
]

EVENTS_IN = Counter("twin_messages_in_total", "Kafka messages taken by the worker.", ["topic"])
READINGS_IN = Counter("twin_readings_in_total", "Telemetry readings taken (a report carries many).", [])
EVENTS_OUT = Counter("twin_messages_out_total", "Messages the worker published.", ["topic"])
DEADLETTERS = Counter("twin_deadletters_total", "Bad input recorded as dead letters.", ["reason"])
BATCH_SIZE = Histogram(
    "twin_batch_messages", "Messages per processed batch.", ["topic"], buckets=(1, 5, 10, 50, 100, 250, 500, 1000, 5000)
)
BATCH_SECONDS = Histogram("twin_batch_seconds", "Time to decode, fold and commit one batch.", ["topic"])
VISIBLE_LATENCY = Histogram(
    "twin_event_to_visible_seconds",
    "From a reading's occurred_at to its commit in the twin tables.",
    buckets=(0.05, 0.1, 0.25, 0.5, 0.75, 1, 2, 5, 10, 30),
)
CONSUMER_LAG = Gauge(
    "twin_consumer_lag_messages",
    "Messages not yet applied: the partition's end offset minus the next offset to apply (on Tansu 0.6,"
    " low by up to one produce batch).",
    ["topic", "partition"],
)
ASSIGNED_PARTITIONS = Gauge(
    "twin_assigned_partitions", "Partitions this worker consumes now (1 each), as its consumer was assigned.",
    ["topic", "partition"],
)
STORE_RETRIES = Counter("twin_store_retries_total", "Batches retried after a database failure.", ["topic"])
TWINS_HELD = Gauge("twin_twins_in_memory", "Rack twins held by this worker.", ["side"])
