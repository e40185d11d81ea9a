"""A producer that knows only the producer contract (docs/asyncapi.yaml) feeds a real worker."""

from __future__ import annotations

import ast
from pathlib import Path
from typing import Any

import pytest
from contract_producer import send_example_story
from test_worker import applied_messages
from worker_process import query, running_worker, scalar, wait_for

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
OURS = {"twin", "schemas", "streams", "worker_process", "test_worker", "inprocess"}


def test_the_contract_producer_imports_nothing_of_the_twin() -> None:
    tree = ast.parse((Path(__file__).parent / "contract_producer.py").read_text())
    imported = {alias.name.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.Import)
                for alias in node.names}
    imported |= {node.module.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.module}
    assert imported & OURS == set()
    assert "kafka" in imported and "json" in imported


def test_a_producer_written_from_the_document_alone_feeds_the_twin(tenant: Any, tmp_path: Path) -> None:
    topics = {"telemetry": tenant.topics.telemetry, "lifecycle": tenant.topics.lifecycle, "intent": tenant.topics.intent}
    sent = send_example_story(ROOT / "docs" / "asyncapi.yaml", tenant.kafka_bootstrap, topics)
    assert sent["lifecycle"] >= 14 and sent["telemetry"] >= 1 and sent["intent"] >= 3
    db, group, log = tenant.database_url, tenant.env["TWIN_WORKER_ID"], tmp_path / "worker.log"
    with running_worker(tenant.env, log) as worker:
        for channel, topic in topics.items():
            wait_for(f"every {channel} message applied", lambda topic=topic: applied_messages(db, group, topic),
                     lambda n, want=sent[channel]: n == want, log_path=log, proc=worker)
        wait_for("the reading stored", lambda: scalar(db, "SELECT count(*) FROM telemetry"), lambda n: n == 1,
                 timeout=15, log_path=log, proc=worker)
    letters = query(db, "SELECT reason, detail FROM deadletters WHERE replayed_at IS NULL")
    assert letters == []
    states = dict(query(db, "SELECT rack_id, status FROM rack_state"))
    assert states == {"dfw1-h1-r01-01": "active", "dfw1-h1-r01-02": "decommissioned"}
    assert scalar(db, "SELECT count(*) FROM events WHERE stream_id LIKE 'dfw1-%'") == sent["lifecycle"]
    assert scalar(db, "SELECT power_watts FROM rack_state WHERE rack_id = 'dfw1-h1-r01-01'") == 96_000
    assert scalar(db, "SELECT count(*) FROM facilities") == 1
