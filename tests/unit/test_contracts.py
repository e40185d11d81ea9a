"""The event contracts: JSON Schema files match the models; bad input is refused with its reason."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path
from uuid import uuid4

import pytest

from schemas import LIFECYCLE_TYPES, RackReading, TelemetryReported
from schemas.export import JSON_DIR, rendered
from twin.domain.decoding import decode_event, decode_report
from twin.errors import RejectedEvent

ROOT = Path(__file__).resolve().parents[2]


def test_checked_in_json_schemas_match_the_models() -> None:
    expected = rendered()
    on_disk = {p.name: p.read_text() for p in JSON_DIR.glob("*.json")}
    assert sorted(on_disk) == sorted(expected), "run `python -m schemas.export`"
    drifted = [name for name, text in expected.items() if on_disk[name] != text]
    assert not drifted, f"schemas drifted from the models, run `python -m schemas.export`: {drifted}"


def test_every_exported_schema_names_its_type() -> None:
    for name, text in rendered().items():
        schema = json.loads(text)
        if name.startswith("deadletter"):
            continue
        assert schema["properties"]["type"]["const"] == name.rsplit(".v", 1)[0]


def reading(**overrides: object) -> dict[str, object]:
    base = RackReading(
        rack_id="dfw1-h1-r01-01", occurred_at=datetime(2026, 11, 25, 12, tzinfo=timezone.utc), power_watts=100_000,
        inlet_temperature_celsius=24, outlet_temperature_celsius=38, coolant_supply_temperature_celsius=30,
        coolant_return_temperature_celsius=40, coolant_flow_liters_per_minute=180,
        coolant_differential_pressure_kilopascals=90, leak_detected=False, hottest_accelerator_temperature_celsius=70,
        fan_speed_percent=40, network_links_up=144, network_links_down=0,
    ).model_dump(mode="json")
    return {**base, **overrides}


def report(*readings: dict[str, object], **overrides: object) -> bytes:
    body = {"event_id": str(uuid4()), "type": "telemetry.reported", "schema_version": 1,
            "occurred_at": "2026-11-25T12:00:00Z", "source": "collector-dfw1-h1", "seq": 1,
            "readings": list(readings), **overrides}
    return json.dumps(body).encode()


def test_a_good_report_decodes_on_the_fast_path() -> None:
    decoded = decode_report(report(reading(), reading(rack_id="dfw1-h1-r01-02")))
    assert isinstance(decoded.report, TelemetryReported)
    assert [r.rack_id for r in decoded.report.readings] == ["dfw1-h1-r01-01", "dfw1-h1-r01-02"]
    assert decoded.bad == []


def test_one_bad_reading_is_refused_by_index_and_the_rest_of_the_report_is_kept() -> None:
    decoded = decode_report(report(reading(), reading(power_watts=-5), reading(rack_id="dfw1-h1-r01-03")))
    assert decoded.report is not None and len(decoded.report.readings) == 2
    [bad] = decoded.bad
    assert (bad.index, bad.error.reason, bad.rack_id) == (1, "out-of-physical-range", "dfw1-h1-r01-01")
    assert "power_watts" in bad.error.detail


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b"{not json", "malformed-json"),
        (b"[1, 2]", "malformed-json"),
        (report(reading(), type="telemetry.exploded"), "unknown-type"),
        (report(reading(), schema_version=9), "unknown-schema-version"),
        (report({k: v for k, v in reading().items() if k != "power_watts"}), "missing-field"),
        (report(reading(coolant_flow_liters_per_minute=99_999)), "out-of-physical-range"),
        (report(reading(), occurred_at="yesterday"), "invalid-field"),
    ],
)
def test_bad_telemetry_is_refused_with_a_precise_reason(raw: bytes, reason: str) -> None:
    try:
        decoded = decode_report(raw)
    except RejectedEvent as exc:
        assert exc.reason == reason
        return
    assert decoded.report is None or decoded.bad, "expected a refusal"
    assert [b.error.reason for b in decoded.bad] == [reason]


def test_a_lifecycle_event_missing_its_rack_is_refused_naming_the_field() -> None:
    raw = json.dumps({"event_id": str(uuid4()), "type": "rack.commissioned", "schema_version": 1,
                      "occurred_at": "2026-11-25T12:00:00Z", "source": "site-tool", "seq": 3}).encode()
    with pytest.raises(RejectedEvent) as caught:
        decode_event(raw, LIFECYCLE_TYPES)
    assert caught.value.reason == "missing-field"
    assert "rack_id" in caught.value.detail


def test_the_domain_and_contracts_import_no_io_libraries() -> None:
    """import-linter enforces the boundary drawn in pyproject.toml ([tool.importlinter])."""
    lint_imports = Path(sys.executable).parent / "lint-imports"
    result = subprocess.run([str(lint_imports), "--no-cache"], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "Contracts: 1 kept, 0 broken" in result.stdout
