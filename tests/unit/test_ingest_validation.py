"""HTTP ingest judges a batch with the workers' own decoder, in the dead letters' words."""

from __future__ import annotations

import uuid
from datetime import datetime, timezone
from typing import Any

from twin.api.ingest import validate_batch


def manufactured(**over: Any) -> dict[str, Any]:
    return {"event_id": str(uuid.uuid4()), "type": "rack.manufactured", "schema_version": 1,
            "occurred_at": datetime.now(timezone.utc).isoformat(), "source": "mes", "seq": 1, "rack_id": "r-1",
            "generation": "gen-a-130kw", "serial_number": "S1", "factory": "Fremont CA", **over}


def test_a_good_event_becomes_a_lifecycle_message_keyed_by_its_rack() -> None:
    good, bad = validate_batch([manufactured()])
    assert bad == [] and good[0].message.role == "lifecycle" and good[0].message.key == b"r-1"


def test_each_bad_item_gets_the_reason_a_dead_letter_would_carry() -> None:
    items = [manufactured(schema_version=9), manufactured(seq=-1), {"type": "rack.manufactured"}, "text",
             manufactured(type=["rack.manufactured"]), manufactured(occurred_at="yesterday")]
    good, bad = validate_batch(items)
    assert good == []
    assert [(b.index, b.reason) for b in bad] == [
        (0, "unknown-schema-version"), (1, "out-of-physical-range"), (2, "missing-field"), (3, "malformed-json"),
        (4, "unknown-type"), (5, "invalid-field")]
