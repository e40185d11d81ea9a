"""Create the Kafka topics up front, each with its intended partition count.

Why up front: a broker auto-creates a topic on first produce with *its* default partition
count (Tansu: whatever it defaults to, Kafka: `num.partitions`), and a topic's partition
count decides which worker owns which rack. So every topic the twin does not leave to
Faust is created explicitly, before anyone produces. Idempotent: a topic that already
exists is left alone (a different partition count is logged, not changed: Tansu 0.6 does
not implement CreatePartitions, and on production Kafka growing a topic is an operator's
decision because it moves keys between partitions).

kafka-python errors are translated here, once, into `StackError`.
"""

from __future__ import annotations

import contextlib
import time

import structlog
from kafka import KafkaAdminClient
from kafka.errors import KafkaError, TopicAlreadyExistsError

from twin.errors import StackError
from twin.kafka_security import kafka_python_config
from twin.settings import KafkaSecurity, get_settings

__all__ = ["ensure_topics"]

log = structlog.get_logger(__name__)


def ensure_topics(bootstrap: str, partitions: dict[str, int], timeout_s: float = 20,
                  security: KafkaSecurity | None = None, *, replication_factor: int = -1,
                  configs: dict[str, dict[str, str]] | None = None) -> dict[str, int]:
    """Make sure each topic exists; create the missing ones with their partition count.

    Waits up to `timeout_s` for the broker to answer. Raises `StackError` when it does not,
    or when it refuses to create a topic. `security` defaults to the TWIN_KAFKA_* settings;
    `replication_factor` -1 is the broker's default; `configs` are topic configs
    (`cleanup.policy`, `retention.ms`) given to topics created now. Returns the ones created.
    """
    deadline = time.monotonic() + timeout_s
    admin = _connect(bootstrap, deadline, security or get_settings().kafka_security)
    try:
        existing = set(admin.list_topics())
        missing = {name: count for name, count in partitions.items() if name not in existing}
        if missing:
            _create(admin, missing, deadline, replication_factor, configs or {})
            log.info("topics created", bootstrap=bootstrap, topics=missing)
        _warn_about_other_counts(admin, {n: c for n, c in partitions.items() if n not in missing})
        return missing
    except KafkaError as err:
        raise StackError(f"could not create topics on {bootstrap}: {err}") from err
    finally:
        admin.close()


def _connect(bootstrap: str, deadline: float, security: KafkaSecurity) -> KafkaAdminClient:
    """An admin client, once the broker answers (kafka-python retries the bootstrap until `deadline`)."""
    remaining_ms = max(int((deadline - time.monotonic()) * 1000), 1000)
    try:
        return KafkaAdminClient(
            bootstrap_servers=bootstrap,
            client_id="twin-topics",
            bootstrap_timeout_ms=remaining_ms,
            request_timeout_ms=min(remaining_ms, 10_000),
            **kafka_python_config(security),
        )
    except KafkaError as err:
        raise StackError(f"no Kafka broker answered at {bootstrap} within {remaining_ms / 1000:.1f} s: {err}") from err


def _create(admin: KafkaAdminClient, topics: dict[str, int], deadline: float, replication_factor: int,
            configs: dict[str, dict[str, str]]) -> None:
    """Create topics, one request each, so that one already there (a racing creator) is fine."""
    for name, count in topics.items():
        timeout_ms = max(int((deadline - time.monotonic()) * 1000), 1000)
        spec: dict[str, object] = {"num_partitions": count, "replication_factor": replication_factor}
        if configs.get(name):
            spec["configs"] = configs[name]
        with contextlib.suppress(TopicAlreadyExistsError):
            # replication_factor -1: the broker's default (KIP-464), 1 on a single broker.
            admin.create_topics({name: spec}, timeout_ms=timeout_ms)


def _warn_about_other_counts(admin: KafkaAdminClient, expected: dict[str, int]) -> None:
    if not expected:
        return
    for topic in admin.describe_topics(list(expected)):
        actual = len(topic["partitions"])
        if actual != expected[topic["name"]]:
            log.warning(
                "topic has another partition count than intended; left as it is",
                topic=topic["name"],
                partitions=actual,
                intended=expected[topic["name"]],
            )
