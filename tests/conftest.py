"""Fixtures shared by every test.

Integration tests share ONE embedded stack (Tansu broker and PostgreSQL) for the whole
session: starting servers per test would cost seconds each. A test that needs isolation
makes it from what the stack offers (its own topic, its own schema or database), and does
not stop or restart the shared stack; a test about the stack's own life cycle starts a
private `EmbeddedStack` in its own `tmp_path` instead.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from twin.store.migrations import migrate
from twin.settings import Topics
from twin.embedded.stack import EmbeddedStack
from twin.topics import ensure_topics


@pytest.fixture(scope="session")
def stack() -> Iterator[EmbeddedStack]:
    """The session's broker and database, with the fleet topics created, stopped at the end.

    Its state lives outside pytest's temp root: pytest resets that root to mode 0700 at every
    session start, which would lock out the unprivileged PostgreSQL user of a concurrent run.
    """
    state = Path(tempfile.mkdtemp(prefix="twin-test-stack-"))
    try:
        with EmbeddedStack(state) as running:
            yield running
    finally:
        shutil.rmtree(state, ignore_errors=True)


@dataclass(frozen=True)
class Tenant:
    """An isolated slice of the shared stack: its own database, topics and consumer group."""

    name: str
    kafka_bootstrap: str
    database_url: str
    topics: Topics

    @property
    def env(self) -> dict[str, str]:
        """Environment for a `twin` process (worker, CLI) that should work inside this slice."""
        return {
            **os.environ,
            "TWIN_KAFKA_BOOTSTRAP": self.kafka_bootstrap,
            "TWIN_DATABASE_URL": self.database_url,
            "TWIN_WORKER_ID": f"twin-{self.name}",
            "TWIN_TOPIC_TELEMETRY": self.topics.telemetry,
            "TWIN_TOPIC_LIFECYCLE": self.topics.lifecycle,
            "TWIN_TOPIC_INTENT": self.topics.intent,
            "TWIN_TOPIC_DEADLETTER": self.topics.deadletter,
            "TWIN_TOPIC_DEVIATIONS": self.topics.deviations,
            "TWIN_TOPIC_ALERTS": self.topics.alerts,
            "TWIN_TOPIC_PARTITIONS": str(self.topics.partitions),
        }


@pytest.fixture
def tenant(tenant_factory: Callable[[], Tenant]) -> Tenant:
    """A fresh database (migrated) and fresh topics on the shared stack, named after the test."""
    return tenant_factory()


@pytest.fixture
def tenant_factory(stack: EmbeddedStack, request: pytest.FixtureRequest) -> Callable[[], Tenant]:
    """Make as many isolated tenants as a test needs (for example, to compare two deliveries)."""
    return lambda: _new_tenant(stack, request.node.name)


def _new_tenant(stack: EmbeddedStack, test_name: str) -> Tenant:
    name = re.sub(r"[^a-z0-9]+", "_", test_name.lower())[:40] + f"_{uuid.uuid4().hex[:6]}"
    with psycopg.connect(stack.database_url, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    database_url = stack.database_url.rsplit("/", 1)[0] + f"/{name}"
    migrate(database_url)
    topics = Topics(**{role: f"t.{name}.{role}" for role in ("telemetry", "lifecycle", "intent", "deadletter",
                                                              "deviations", "alerts")}, partitions=4)
    ensure_topics(stack.kafka_bootstrap, topics.partition_counts())
    return Tenant(name, stack.kafka_bootstrap, database_url, topics)
