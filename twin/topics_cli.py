"""`twin topics create`: the one-shot job that creates the fleet topics before anything produces;
`twin topics rewind`: after a database restore, the workers' group back to what the database applied.

Why a command: on production Kafka (compose's and Kubernetes' topics job) the topics must exist
with their partition counts before workers and collectors start, since the partition count
decides which worker owns which rack and a broker would auto-create with its own default.
Retention and compaction are set at creation: the intent topic (facilities, design intent
and rollout plans, keyed by facility, generation and "rollout") is compacted, so a new consumer
group still finds the latest of each; lifecycle history is never compacted (every event counts).
"""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console

from twin.commands import fail, settings as load_settings
from twin.errors import TwinError
from twin.settings import Topics

__all__ = ["TOPIC_CONFIGS", "topic_configs", "topics_app"]

DAY_MS = 24 * 3600 * 1000
TOPIC_CONFIGS: dict[str, dict[str, str]] = {
    # Reports are in PostgreSQL once applied; Kafka keeps them long enough to ride out an outage.
    "telemetry": {"cleanup.policy": "delete", "retention.ms": str(3 * DAY_MS)},
    # The event store holds history; Kafka keeps enough to replay into a new consumer group.
    "lifecycle": {"cleanup.policy": "delete", "retention.ms": str(30 * DAY_MS)},
    # Latest facility, intent revision and rollout plan per key, for ever; every revision is in the database.
    "intent": {"cleanup.policy": "compact", "min.compaction.lag.ms": str(7 * DAY_MS)},
    "deadletter": {"cleanup.policy": "delete", "retention.ms": str(14 * DAY_MS)},
    "deviations": {"cleanup.policy": "delete", "retention.ms": str(7 * DAY_MS)},
    # Every alert transition is in `alert_history`; Kafka keeps a week for other consumers to catch up.
    "alerts": {"cleanup.policy": "delete", "retention.ms": str(7 * DAY_MS)},
}
"""Topic configs by role, given to each topic when it is created (docs/operations.md explains them)."""

topics_app = typer.Typer(help="The fleet topics: create them with their partition counts, retention and compaction;"
                                " rewind the workers' group after a database restore.",
                         no_args_is_help=True)
console = Console()


def topic_configs(topics: Topics) -> dict[str, dict[str, str]]:
    """`TOPIC_CONFIGS` by topic name."""
    return {getattr(topics, role): config for role, config in TOPIC_CONFIGS.items()}


@topics_app.command("create")
def create(
    replication_factor: Annotated[int, typer.Option(
        min=-1, help="Replicas of each partition; -1 is the broker's default.replication.factor "
                     "(use 3 on a production cluster).")] = -1,
    timeout: Annotated[float, typer.Option(min=1, help="Seconds to wait for the broker to answer.")] = 60,
    configs: Annotated[bool, typer.Option(help="Set retention and compaction (see docs/operations.md); "
                                          "--no-configs leaves the broker's defaults.")] = True,
) -> None:
    """Create the fleet topics that are missing, with partition counts, retention and compaction.

    TWIN_TOPIC_PARTITIONS partitions for telemetry, lifecycle and deviations; 1 for intent and dead
    letters. Safe to run again: existing topics are left as they are (a different partition count is
    logged, not changed)."""
    from twin.topics import ensure_topics

    settings = load_settings()
    counts = settings.topics.partition_counts()
    try:
        created = ensure_topics(settings.kafka_bootstrap, counts, timeout, replication_factor=replication_factor,
                                configs=topic_configs(settings.topics) if configs else None)
    except TwinError as exc:
        fail(exc)
    for name, count in counts.items():
        state = "created" if name in created else "exists"
        console.print(f"{name}: {count} partition(s), {state}")


@topics_app.command("rewind")
def rewind(
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Only show where each offset would go.")] = False,
) -> None:
    """After a database restore, put the workers' group back to the offsets the database applied.

    The consumer group (TWIN_WORKER_ID) then reads the events after the backup again. Stop every
    worker first; start them after. Nothing is lost while Kafka still holds those events."""
    from streams.app import app as worker_app  # the workers' group protocol is Faust's assignor
    from twin.offsets import rewind_to_database

    settings = load_settings()
    # Every topic the workers consume (their group's assignment spans all of them), dead letters too:
    # the worker records the collector's reported letters and tracks that offset with its facts.
    topics = [settings.topics.intent, settings.topics.lifecycle, settings.topics.telemetry, settings.topics.deadletter]
    try:
        moved = rewind_to_database(settings.kafka_bootstrap, settings.database_url.get_secret_value(),
                                   settings.worker_id, topics, settings.kafka_security, dry_run=dry_run,
                                   assignor=worker_app.assignor)
    except TwinError as exc:
        fail(exc)
    for r in moved:
        console.print(f"{r.topic}:{r.partition} -> {r.offset} ({r.source})"
                      + (f" [red]{r.lost} event(s) already gone from Kafka[/]" if r.lost else ""))
    console.print(("would move" if dry_run else "moved") + f" {len(moved)} partition offset(s) of group "
                  f"{settings.worker_id}")
    lost = sum(r.lost for r in moved)
    if lost:
        Console(stderr=True).print(f"[bold red]{lost} event(s) after the backup are no longer in Kafka "
                                   "(retention): the restored database cannot get them back[/]")
        raise typer.Exit(1)
