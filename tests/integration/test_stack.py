"""The embedded stack: real Tansu, real PostgreSQL, and no process left behind."""

from __future__ import annotations

import json
import os
import select
import signal
import socket
import subprocess
import sys
import textwrap
import time
import uuid
from pathlib import Path
from typing import Any

import psutil
import psycopg
import pytest
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition

from twin.errors import StackError
from twin.settings import Topics
from twin.embedded.stack import EmbeddedStack, read_stack, stop_stack
from twin.topics import ensure_topics

pytestmark = pytest.mark.integration


def test_stack_serves_kafka_and_postgres(stack: EmbeddedStack) -> None:
    topic = f"test.stack.{uuid.uuid4().hex[:8]}"  # not a fleet topic: other tests consume those
    ensure_topics(stack.kafka_bootstrap, {topic: 1})
    producer = KafkaProducer(bootstrap_servers=stack.kafka_bootstrap)
    producer.send(topic, key=b"rack-1", value=b"hello").get(timeout=10)
    producer.close()
    consumer = KafkaConsumer(bootstrap_servers=stack.kafka_bootstrap, auto_offset_reset="earliest")
    consumer.assign([TopicPartition(topic, 0)])  # no group: kafka-python groups join slowly on Tansu
    records = consumer.poll(timeout_ms=10_000, max_records=1)
    consumer.close()

    with psycopg.connect(stack.database_url) as conn:
        row = conn.execute("SELECT current_database(), current_setting('server_version_num')::int").fetchone()

    assert [(r.key, r.value) for batch in records.values() for r in batch] == [(b"rack-1", b"hello")]
    assert row is not None and (row[0], row[1] // 10_000) == ("twin", 18)


def test_topics_are_created_with_their_partition_counts(stack: EmbeddedStack) -> None:
    intended = Topics().partition_counts()
    admin = KafkaAdminClient(bootstrap_servers=stack.kafka_bootstrap)
    described = admin.describe_topics(list(intended))
    admin.close()

    assert {t["name"]: len(t["partitions"]) for t in described} == intended


def test_ensuring_existing_topics_again_is_fine(stack: EmbeddedStack) -> None:
    ensure_topics(stack.kafka_bootstrap, Topics().partition_counts(), timeout_s=5)


def test_a_second_stack_on_a_running_state_dir_is_refused(stack: EmbeddedStack) -> None:
    with pytest.raises(StackError, match="already running"):
        EmbeddedStack(stack.state_dir).start()
    assert stack.running


def test_no_process_survives_sigkill_of_the_parent(tmp_path: Path) -> None:
    script = _START_AND_HANG.format(state_dir=str(tmp_path))
    parent = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        started = _read_json_line(parent, timeout_s=30)
        with psycopg.connect(started["database_url"], autocommit=True) as conn:  # a backend serving someone else
            backend = conn.execute("SELECT pg_backend_pid()").fetchone()[0]
            pids = {*started["pids"].values(), *started["postgres_children"], backend}

            parent.send_signal(signal.SIGKILL)
            parent.wait(timeout=5)
            survivors = _wait_for_survivors(pids, tmp_path, timeout_s=10)
    finally:
        parent.kill()
        parent.wait()

    assert survivors == []
    assert read_stack(tmp_path) is None  # stack.json is stale now
    with EmbeddedStack(tmp_path) as restarted:  # and a restart on the same state dir just works
        assert restarted.running


def test_stop_stack_from_another_process_stops_everything(tmp_path: Path) -> None:
    stack = EmbeddedStack(tmp_path)
    stack.start()
    try:
        with psycopg.connect(stack.database_url, autocommit=True) as conn:
            conn.execute("CREATE TABLE kept (n int); INSERT INTO kept VALUES (42)")
        pids = set(stack.pids.values())
        script = f"import sys, pathlib, twin.embedded.stack as s; sys.exit(not s.stop_stack(pathlib.Path({str(tmp_path)!r})))"
        down = subprocess.run([sys.executable, "-c", script], timeout=30)

        assert down.returncode == 0
        assert _wait_for_survivors(pids, tmp_path, timeout_s=5) == []
        assert not stack.running
        assert read_stack(tmp_path) is None
        assert stop_stack(tmp_path) is False
    finally:
        stack.stop()

    with EmbeddedStack(tmp_path) as restarted, psycopg.connect(restarted.database_url) as conn:
        assert conn.execute("SELECT n FROM kept").fetchone() == (42,)  # data survives a restart


def test_a_server_that_cannot_start_raises_stack_error_with_its_log(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        stack = EmbeddedStack(tmp_path, postgres_port=taken.getsockname()[1])
        with pytest.raises(StackError, match=r"(?s)postgres exited.*Address already in use"):
            stack.start()

    assert stack.pids == {}
    assert _wait_for_survivors(set(), tmp_path, timeout_s=5) == []


# -- helpers --------------------------------------------------------------------------------------

_START_AND_HANG = textwrap.dedent(
    """
    import json, sys, time
    from pathlib import Path
    import psutil, structlog
    structlog.configure(logger_factory=structlog.PrintLoggerFactory(sys.stderr))
    from twin.embedded.stack import EmbeddedStack
    stack = EmbeddedStack(Path({state_dir!r}))
    stack.start()
    children = [p.pid for p in psutil.Process(stack.pids["postgres"]).children(recursive=True)]
    started = {{"pids": stack.pids, "postgres_children": children, "database_url": stack.database_url}}
    print(json.dumps(started), flush=True)
    time.sleep(600)
    """
)


def _read_json_line(process: subprocess.Popen[str], timeout_s: float) -> dict[str, Any]:
    assert process.stdout is not None
    ready, _, _ = select.select([process.stdout], [], [], timeout_s)
    assert ready, f"the parent printed nothing within {timeout_s} s"
    return json.loads(process.stdout.readline())


def _wait_for_survivors(pids: set[int], state_dir: Path, timeout_s: float) -> list[str]:
    """Processes still up after `timeout_s`: any of `pids`, or anything running from `state_dir`."""
    deadline = time.monotonic() + timeout_s
    while True:
        survivors = _survivors(pids, state_dir)
        if not survivors or time.monotonic() > deadline:
            return survivors
        time.sleep(0.1)


def _survivors(pids: set[int], state_dir: Path) -> list[str]:
    found = []
    for proc in psutil.process_iter(["pid", "status", "cmdline", "cwd"]):
        if proc.info["status"] == psutil.STATUS_ZOMBIE or proc.pid == os.getpid():
            continue  # an orphan's zombie holds nothing: this sandbox's init does not reap
        cmdline = " ".join(proc.info["cmdline"] or ())
        if proc.pid in pids or str(state_dir) in cmdline or str(state_dir) in (proc.info["cwd"] or ""):
            found.append(f"{proc.pid} {cmdline}")
    return found
