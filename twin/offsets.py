"""Put a consumer group's Kafka offsets back to what the database has applied.

Why: a worker acknowledges an offset to Kafka only after the batch's facts and that offset are
committed in PostgreSQL, so normally Kafka's group offsets are at or behind the database's.
Restoring the database from a backup breaks that: the database goes back in time, Kafka's group
offsets do not, and the workers would go on after events the restored database never saw. Moved
back to the database's tracked offsets + 1 (the earliest offset Kafka still has, for a partition
the database never applied), the workers read those events again; what the database already has
is skipped by its tracked offsets. Nothing is lost while Kafka still holds the events
(docs/operations.md, "Backups and restore"); what it no longer holds is counted and reported.

How: the offsets are committed by a member of the group itself (aiokafka joins, must be given
every partition, commits, leaves), which both Apache Kafka and the embedded Tansu accept (Tansu
0.6 refuses the admin API's offset commit from outside the group, and keeps a group's protocol
after its members leave: the member joins with the workers' own assignor, given by the caller).
Given only some partitions, other members are alive: it commits nothing and says to stop the
workers first.

Tansu 0.6 can keep the leader of an emptied group (its last member left) as the leader of the
next generation, which then never forms: a joiner waits for that leader's assignment for ever.
So a group with no members is deleted first (DeleteGroups; Kafka refuses it for a group with
members), which loses nothing: every partition's offset is set anew, and were the command to stop
in between, workers would start the group from the earliest offsets and skip what the database
has already applied.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

import psycopg
from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import InconsistentGroupProtocolError, KafkaError
from aiokafka.protocol.admin import DeleteGroupsRequest

from twin.errors import TwinError
from twin.kafka_security import aiokafka_config
from twin.settings import KafkaSecurity

__all__ = ["OffsetsError", "Rewind", "rewind_to_database"]

NON_EMPTY_GROUP = 68
"""Kafka's error code for deleting a group that has members."""

SETTLE_SECONDS = 20.0
"""How long a partial assignment may wait for the members that hold the rest to leave (a worker that
just stopped stays in the group until its session times out) before the group is taken as in use."""


class OffsetsError(TwinError):
    """Raised when the group is in use, the broker does not answer, or the database cannot be read."""


@dataclass(frozen=True)
class Rewind:
    """Where one partition's group offset was put, and why."""

    topic: str
    partition: int
    offset: int
    source: str
    """`database` (tracked offset + 1) or `earliest` (the database never applied this partition)."""
    lost: int = 0
    """Events after the database's offset that Kafka no longer holds (retention): gone for good."""


def rewind_to_database(bootstrap: str, database_url: str, group_id: str, topics: list[str],
                       security: KafkaSecurity, *, assignor: Any = None, dry_run: bool = False,
                       timeout_s: float = 60) -> list[Rewind]:
    """Move `group_id`'s offsets on `topics` to the database's tracked offsets + 1; return what was set.

    `assignor` is the partition assignor the group's workers use (aiokafka's round robin if None)."""
    tracked = _tracked(database_url, group_id)
    try:
        return asyncio.run(asyncio.wait_for(
            _rewind(bootstrap, group_id, topics, security, tracked, dry_run, assignor), timeout_s))
    except InconsistentGroupProtocolError:  # the workers' members speak Faust's protocol: the group is in use
        raise OffsetsError(f"consumer group {group_id!r} has other live members: stop every worker first "
                           "(kubectl scale deployment/twin-worker --replicas=0)") from None
    except TimeoutError:
        raise OffsetsError(f"group {group_id!r} on {bootstrap}: no assignment within {timeout_s:.0f} s (is the "
                           "broker up and are the workers stopped?)") from None
    except KafkaError as err:
        raise OffsetsError(f"could not move the offsets of group {group_id!r} on {bootstrap}: {err}") from err


async def _rewind(bootstrap: str, group_id: str, topics: list[str], security: KafkaSecurity,
                  tracked: dict[tuple[str, int], int], dry_run: bool, assignor: Any) -> list[Rewind]:
    strategy = {"partition_assignment_strategy": [assignor]} if assignor is not None else {}
    # Short group timeouts, as the workers have: a member that went away without a word (a refused
    # attempt of ours, a killed worker) holds up the next rebalance for seconds, not aiokafka's minutes.
    # No records are fetched, so the poll interval is long: waiting here is not a stalled consumer.
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=group_id, client_id="twin-offsets",
                                enable_auto_commit=False, auto_offset_reset="earliest", session_timeout_ms=6000,
                                heartbeat_interval_ms=1000, rebalance_timeout_ms=6000, max_poll_interval_ms=300_000,
                                **strategy, **aiokafka_config(security))
    if not dry_run:  # the group's offsets are all set anew below: an empty group loses nothing
        await _forget_if_empty(bootstrap, group_id, security)
    assignments = _Assignments()
    consumer.subscribe(topics=topics, listener=assignments)
    try:
        await consumer.start()
        every = {TopicPartition(t, p) for t in topics for p in (consumer.partitions_for_topic(t) or ())}
        missing = [t for t in topics if not consumer.partitions_for_topic(t)]
        if missing:
            raise OffsetsError(f"topic(s) {', '.join(missing)} do not exist on {bootstrap}")
        settle_until: float | None = None
        while assignments.latest != every:
            wait = None if settle_until is None else max(settle_until - asyncio.get_running_loop().time(), 0)
            try:
                await asyncio.wait_for(assignments.changed.wait(), wait)
            except TimeoutError:
                held = len(assignments.latest or ())
                raise OffsetsError(f"consumer group {group_id!r} has other live members (given {held} of "
                                   f"{len(every)} partitions): stop every worker first "
                                   "(kubectl scale deployment/twin-worker --replicas=0)") from None
            assignments.changed.clear()
            if assignments.latest != every and settle_until is None:
                settle_until = asyncio.get_running_loop().time() + SETTLE_SECONDS
        first = await consumer.beginning_offsets(sorted(every))
        end = await consumer.end_offsets(sorted(every))
        plan: list[Rewind] = []
        for tp in sorted(every):
            applied = tracked.get((tp.topic, tp.partition))
            if applied is None:
                plan.append(Rewind(tp.topic, tp.partition, first[tp], "earliest"))
                continue
            wanted = applied + 1
            offset = min(max(wanted, first[tp]), end[tp])
            plan.append(Rewind(tp.topic, tp.partition, offset, "database", lost=max(first[tp] - wanted, 0)))
        if not dry_run:
            await consumer.commit({TopicPartition(r.topic, r.partition): r.offset for r in plan})
        return plan
    finally:
        await consumer.stop()


async def _forget_if_empty(bootstrap: str, group_id: str, security: KafkaSecurity) -> bool:
    """Delete `group_id` when it has no members (see the module docstring); True when deleted."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, client_id="twin-offsets-admin", **aiokafka_config(security))
    await admin.start()
    try:
        described = await admin.describe_consumer_groups([group_id])
        empty = any(group[1] == group_id and group[2] == "Empty" and not group[5]
                    for response in described for group in response.groups)
        if not empty:
            return False
        coordinator = await admin.find_coordinator(group_id)
        # aiokafka's admin client has no delete_consumer_groups: the request goes to the coordinator as is.
        response = await admin._send_request_to_node(coordinator, DeleteGroupsRequest([group_id]))
    finally:
        await admin.close()
    errors = [error for _, error in response.results if error != 0]
    if NON_EMPTY_GROUP in errors:  # a worker joined since the look: the group is in use
        raise OffsetsError(f"consumer group {group_id!r} has other live members: stop every worker first "
                           "(kubectl scale deployment/twin-worker --replicas=0)")
    if errors:
        raise OffsetsError(f"could not clear the empty group {group_id!r}: Kafka error code {errors[0]}")
    return True


class _Assignments(ConsumerRebalanceListener):
    """The partitions of the latest assignment (empty ones too), and an event at each one."""

    def __init__(self) -> None:
        self.latest: set[TopicPartition] | None = None
        self.changed = asyncio.Event()

    async def on_partitions_revoked(self, revoked: Any) -> None:
        return None

    async def on_partitions_assigned(self, assigned: Any) -> None:
        self.latest = set(assigned)
        self.changed.set()


def _tracked(database_url: str, group_id: str) -> dict[tuple[str, int], int]:
    """The last applied offset of each partition, as the worker's transactions recorded it."""
    try:
        with psycopg.connect(database_url, autocommit=True) as conn:
            rows = conn.execute('SELECT topic, partition, "offset" FROM consumer_offsets WHERE group_id = %s',
                                (group_id,)).fetchall()
    except psycopg.Error as err:
        raise OffsetsError(f"cannot read the applied offsets from the database: {str(err).strip()}") from None
    return {(topic, partition): offset for topic, partition, offset in rows}
