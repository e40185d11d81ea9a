"""A producer written from docs/asyncapi.yaml alone: kafka-python, json and the document, nothing of ours.

It is what a partner team would write after reading the producer contract: it sends the
document's example story in its order, to each channel's topic with the key the story names,
dated by its own clock (the examples' instants moved to now, order kept) and with fresh
event ids. `test_producer_from_contract.py` checks that this module imports nothing of the twin.
"""

from __future__ import annotations

import json
import uuid
from collections import Counter
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import yaml
from kafka import KafkaProducer


def _dated(payload: dict[str, Any], at: datetime) -> dict[str, Any]:
    stamp = at.isoformat()
    out = {**payload, "event_id": str(uuid.uuid4()), "occurred_at": stamp}
    if "readings" in out:
        out["readings"] = [{**reading, "occurred_at": stamp} for reading in out["readings"]]
    return out


def send_example_story(document_path: Path, bootstrap: str, topic_of_channel: dict[str, str]) -> Counter[str]:
    """Send every step of `x-example-story`; returns how many messages went to each channel."""
    document = yaml.safe_load(document_path.read_text())
    messages = document["components"]["messages"]
    story = document["x-example-story"]
    start = datetime.now(timezone.utc) - timedelta(minutes=len(story) + 1)
    sent: Counter[str] = Counter()
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all")
    try:
        for n, step in enumerate(story):
            [example] = [e for e in messages[step["message"]]["examples"] if e["name"] == step["example"]]
            value = _dated(example["payload"], start + timedelta(minutes=n))
            producer.send(topic_of_channel[step["channel"]], key=step["key"].encode(), value=json.dumps(value).encode())
            sent[step["channel"]] += 1
        producer.flush(timeout=30)
    finally:
        producer.close(timeout=10)
    return sent
