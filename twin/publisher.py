"""Put simulator (or any producer's) messages on the fleet topics, with kafka-python.

Why a thin wrapper: the simulator is pure and says only *what* a message is (its role, key
and bytes); this edge decides *where* it goes (role -> topic name from `Topics`) and *how*
(every replica acknowledges, small linger so a cycle's reports travel in few requests, no
compression: reports are small and the broker is local or near). kafka-python's errors are
translated here, once, into `PublishError`; a delivery that fails in the producer's I/O
thread is remembered and raised by the next `flush()`, so nothing is dropped silently.

Topics are not created here (`twin.topics.ensure_topics` does that with the right partition
counts). A topic that does not exist is refused when the publisher starts, so a misspelt name
or a missing setup step fails loudly instead of a topic appearing with the broker's default
partition count (which decides which worker owns which rack). The producer also asks the
broker not to auto-create, but Tansu 0.6 ignores that flag, hence the check up front.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from types import TracebackType
from typing import Self

from kafka import KafkaAdminClient, KafkaProducer
from kafka.errors import KafkaError

from twin.errors import PublishError
from twin.kafka_security import kafka_python_config
from twin.settings import KafkaSecurity, Topics, get_settings
from twin.messages import Message

__all__ = ["PublishError", "Publisher"]


class Publisher:
    """A Kafka producer for `Message`s: role -> topic, counts what it sent per role."""

    def __init__(
        self,
        bootstrap: str,
        topics: Topics,
        *,
        client_id: str = "twin-publisher",
        linger_ms: int = 5,
        batch_size: int = 256 * 1024,
        max_block_ms: int = 10_000,
        delivery_timeout_ms: int = 30_000,
        check_topics: bool = True,
        security: KafkaSecurity | None = None,
    ) -> None:
        self.bootstrap = bootstrap
        self._security = kafka_python_config(security or get_settings().kafka_security)
        """TLS and SASL arguments of every client (default: the TWIN_KAFKA_* settings)."""
        self._topic = {"intent": topics.intent, "lifecycle": topics.lifecycle, "telemetry": topics.telemetry}
        self.sent: Counter[str] = Counter()
        """Messages handed to the producer, per role."""
        self._failures: list[BaseException] = []
        self._flush_timeout_s = (delivery_timeout_ms + max_block_ms) / 1000
        """A flush waits at most this long: every record is delivered or failed by then."""
        if check_topics:
            self._check_topics(client_id, max_block_ms)
        try:
            self._producer = KafkaProducer(
                bootstrap_servers=bootstrap,
                client_id=client_id,
                acks="all",
                linger_ms=linger_ms,
                batch_size=batch_size,
                compression_type=None,
                max_block_ms=max_block_ms,
                bootstrap_timeout_ms=max_block_ms,
                # A broker that went away fails a record within this, not kafka-python's 2 minutes
                # (it must cover linger and one request, hence the shorter request timeout).
                request_timeout_ms=min(10_000, delivery_timeout_ms - linger_ms),
                delivery_timeout_ms=delivery_timeout_ms,
                # Its sender thread expires records only between connection attempts; kafka-python lets
                # the wait between attempts grow to 30 s, which would hold an expired record that long.
                reconnect_backoff_max_ms=2_000,
                allow_auto_create_topics=False,
                **self._security,
            )
        except KafkaError as err:
            raise PublishError(f"no Kafka broker answered at {bootstrap}: {err}") from err

    def _check_topics(self, client_id: str, timeout_ms: int) -> None:
        """Refuse to start when a topic is missing (listing all topics creates none)."""
        try:
            admin = KafkaAdminClient(bootstrap_servers=self.bootstrap, client_id=f"{client_id}-check",
                                     bootstrap_timeout_ms=timeout_ms, request_timeout_ms=timeout_ms,
                                     **self._security)
            try:
                existing = set(admin.list_topics())
            finally:
                admin.close()
        except KafkaError as err:
            raise PublishError(f"no Kafka broker answered at {self.bootstrap}: {err}") from err
        missing = sorted(set(self._topic.values()) - existing)
        if missing:
            raise PublishError(f"topic(s) {', '.join(missing)} do not exist on {self.bootstrap}; create them first "
                               "(twin.topics.ensure_topics), with their partition counts")

    def topic_for(self, message: Message) -> str:
        """The topic a message of this role goes to."""
        try:
            return self._topic[message.role]
        except KeyError:
            raise PublishError(f"no topic for role {message.role!r}; known: {', '.join(self._topic)}") from None

    def send(self, message: Message) -> None:
        """Queue one message; a delivery failure surfaces at the next `flush()`."""
        topic = self.topic_for(message)
        try:
            future = self._producer.send(topic, key=message.key, value=message.value)
        except KafkaError as err:
            raise PublishError(f"could not send to {topic} at {self.bootstrap}: {err}") from err
        future.add_errback(self._failures.append)
        self.sent[message.role] += 1

    def send_all(self, messages: Iterable[Message]) -> int:
        """Queue every message; returns how many."""
        n = 0
        for message in messages:
            self.send(message)
            n += 1
        return n

    def flush(self, timeout_s: float | None = None) -> None:
        """Wait until every queued message is acknowledged; raise `PublishError` if any was not.

        Waits at most `timeout_s` (default: until every record is delivered or has failed)."""
        try:
            self._producer.flush(timeout=self._flush_timeout_s if timeout_s is None else timeout_s)
        except KafkaError as err:
            raise PublishError(f"flush to {self.bootstrap} did not finish: {err}") from err
        if self._failures:
            failures, self._failures = self._failures, []
            raise PublishError(f"{len(failures)} message(s) were not delivered to {self.bootstrap}; "
                               f"first: {failures[0]!r}")

    def close(self, timeout_s: float | None = None) -> None:
        """Send what is queued, then release the connections."""
        try:
            self._producer.close(timeout=self._flush_timeout_s if timeout_s is None else timeout_s)
        except KafkaError as err:
            raise PublishError(f"closing the producer for {self.bootstrap} failed: {err}") from err

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        try:
            if exc_type is None:
                self.flush()
        finally:
            # After a failure, what is still queued cannot be delivered either: do not wait for it long.
            self.close(timeout_s=None if exc_type is None else 2.0)
