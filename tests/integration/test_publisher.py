"""The publisher puts a simulated fleet on the real broker, each message on its role's topic.

Read back with a plain kafka-python consumer (no group: kafka-python groups join slowly on
Tansu, see docs/architecture.md) from the beginning of topics each test creates for itself on the shared
broker. Why not the session's topics from their end offsets: Tansu 0.6 answers ListOffsets
(latest) with the last batch's base offset + 1, not the high watermark, so "the end" is
wrong by up to a batch; a topic of one's own has a beginning that is certain.
"""

from __future__ import annotations

import itertools
import time
from collections import Counter, defaultdict
from datetime import datetime, timezone

import pytest
from kafka import KafkaAdminClient, KafkaConsumer, TopicPartition

from schemas import GenerationIntent, Range
from twin.publisher import PublishError, Publisher
from twin.settings import Topics
from twin.embedded.simulator import FleetSimulator, Message
from twin.topics import ensure_topics

pytestmark = pytest.mark.integration

START = datetime(2027, 3, 1, tzinfo=timezone.utc)


def intent(slug: str, kilowatts: int) -> GenerationIntent:
    watts = kilowatts * 1000.0
    return GenerationIntent(
        generation=slug, revision=1, title=f"{slug}, {kilowatts} kW", power_budget_watts=Range(max=watts),
        cooling_capacity_watts=watts, inlet_temperature_celsius=Range(min=18.0, max=30.0),
        coolant_supply_temperature_celsius=Range(min=20.0, max=40.0),
        coolant_flow_liters_per_minute_per_kilowatt=Range(min=1.2, max=2.0),
        hottest_accelerator_temperature_celsius=Range(max=85.0),
        required_components={"compute-tray": 4, "switch-tray": 2, "power-shelf": 1, "cdu": 1, "nic": 2},
    )


INTENTS = {i.generation: i for i in (intent("gen-a-130kw", 130), intent("gen-b-200kw", 200),
                                     intent("gen-c-600kw", 600))}


_fresh = itertools.count(1)


def own_topics(bootstrap: str) -> Topics:
    """Fleet topics for this test alone, created with the intended partition counts."""
    prefix = f"test.publisher.{time.time_ns()}.{next(_fresh)}"
    topics = Topics(telemetry=f"{prefix}.telemetry", lifecycle=f"{prefix}.lifecycle", intent=f"{prefix}.intent",
                    deadletter=f"{prefix}.deadletter", deviations=f"{prefix}.deviations")
    ensure_topics(bootstrap, topics.partition_counts())
    return topics


def read_back(bootstrap: str, topics: Topics, expected: int,
              timeout_s: float = 30.0) -> list[tuple[TopicPartition, bytes, bytes]]:
    """Every record of the intent, lifecycle and telemetry topics from their beginning.

    Reads until `expected` records arrived (or the time is up), then polls once more, so a
    record too many would show.
    """
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False,
                             client_id="test-publisher-reader")
    try:
        counts = topics.partition_counts()
        partitions = [TopicPartition(name, p) for name in (topics.intent, topics.lifecycle, topics.telemetry)
                      for p in range(counts[name])]
        consumer.assign(partitions)
        consumer.seek_to_beginning(*partitions)
        records: list[tuple[TopicPartition, bytes, bytes]] = []
        deadline = time.monotonic() + timeout_s
        while len(records) < expected and time.monotonic() < deadline:
            for tp, batch in consumer.poll(timeout_ms=500).items():
                records.extend((tp, r.key, r.value) for r in batch)
        for tp, batch in consumer.poll(timeout_ms=500).items():
            records.extend((tp, r.key, r.value) for r in batch)
        return records
    finally:
        consumer.close()


def test_a_published_fleet_reads_back_whole_on_the_topic_of_each_role(stack) -> None:  # type: ignore[no-untyped-def]
    topics = own_topics(stack.kafka_bootstrap)
    sim = FleetSimulator(5, 40, START, INTENTS, malformed_share=0.02)
    messages: list[Message] = sim.reference_messages() + list(sim.history_messages())
    for _, cycle in sim.cycles(interval_s=1.0, count=3):
        messages.extend(cycle)

    with Publisher(stack.kafka_bootstrap, topics) as publisher:
        publisher.send_all(messages)
    sent = Counter(m.role for m in messages)
    assert publisher.sent == sent

    records = read_back(stack.kafka_bootstrap, topics, expected=len(messages))
    topic_of = {"intent": topics.intent, "lifecycle": topics.lifecycle, "telemetry": topics.telemetry}
    assert Counter(tp.topic for tp, _, _ in records) == {topic_of[role]: n for role, n in sent.items()}
    by_topic: dict[str, Counter[tuple[bytes, bytes]]] = defaultdict(Counter)
    for tp, key, value in records:
        by_topic[tp.topic][(key, value)] += 1
    for role, topic in topic_of.items():
        assert by_topic[topic] == Counter((m.key, m.value) for m in messages if m.role == role)


def test_every_message_of_a_key_lands_on_one_partition_in_the_order_sent(stack) -> None:  # type: ignore[no-untyped-def]
    topics = own_topics(stack.kafka_bootstrap)
    sim = FleetSimulator(6, 30, START, INTENTS)
    messages = list(sim.history_messages()) + sim.telemetry_messages(START)
    with Publisher(stack.kafka_bootstrap, topics) as publisher:
        publisher.send_all(messages)

    records = read_back(stack.kafka_bootstrap, topics, expected=len(messages))
    partitions: dict[bytes, set[int]] = defaultdict(set)
    received: dict[bytes, list[bytes]] = defaultdict(list)
    for tp, key, value in records:
        partitions[key].add(tp.partition)
        received[key].append(value)
    assert all(len(p) == 1 for p in partitions.values())
    assert len({p for ps in partitions.values() for p in ps}) > 1
    sent: dict[bytes, list[bytes]] = defaultdict(list)
    for m in messages:
        sent[m.key].append(m.value)
    assert received == sent


def test_a_broker_that_does_not_answer_is_a_publish_error() -> None:
    with pytest.raises(PublishError, match="127.0.0.1:9"):
        Publisher("127.0.0.1:9", Topics(), max_block_ms=1_000)


def test_a_topic_that_was_never_created_is_refused_before_anything_is_sent(stack) -> None:  # type: ignore[no-untyped-def]
    topics = Topics(telemetry=f"test.publisher.{time.time_ns()}.never-created")
    with pytest.raises(PublishError, match="never-created do not exist"):
        Publisher(stack.kafka_bootstrap, topics)
    admin = KafkaAdminClient(bootstrap_servers=stack.kafka_bootstrap)
    try:
        assert topics.telemetry not in admin.list_topics()
    finally:
        admin.close()
