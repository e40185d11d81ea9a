"""The senders' retry and translation of errors, with httpx.MockTransport (the real Alertmanager is in
tests/integration/test_alerting.py), and the PagerDuty event shape."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import httpx
import pytest

from twin.alerting.alertmanager import Alertmanager, Matcher, alert_payload
from twin.alerting.errors import DeliveryFailed, SilenceNotFound
from twin.alerting.pagerduty import dedup_key, event_body

T0 = datetime(2026, 11, 1, 3, 0, tzinfo=timezone.utc)
LABELS = {"alertname": "rack-leak-detected", "rack": "r-7", "severity": "critical", "facility": "fra-1",
          "subsystem": "cooling"}


def flaky(failures: int, calls: list[httpx.Request]) -> httpx.MockTransport:
    def handle(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        if len(calls) <= failures:
            return httpx.Response(503, text="not ready")
        return httpx.Response(200, json={})
    return httpx.MockTransport(handle)


def test_posting_alerts_retries_with_backoff_until_alertmanager_takes_them() -> None:
    calls: list[httpx.Request] = []
    am = Alertmanager("http://am.test", attempts=4, first_backoff_s=0.001, transport=flaky(2, calls))
    am.post_alerts([alert_payload(LABELS, {"summary": "leak"}, T0, T0 + timedelta(minutes=4))])
    assert len(calls) == 3 and calls[-1].url.path == "/api/v2/alerts"


def test_posting_alerts_fails_loudly_after_the_last_attempt() -> None:
    calls: list[httpx.Request] = []
    am = Alertmanager("http://am.test", attempts=3, first_backoff_s=0.001, transport=flaky(10, calls))
    with pytest.raises(DeliveryFailed, match="after 3 attempts: HTTP 503"):
        am.post_alerts([alert_payload(LABELS, {}, T0, T0)])
    assert len(calls) == 3


def test_a_refused_alert_is_not_retried() -> None:
    calls: list[httpx.Request] = []

    def handle(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        return httpx.Response(400, text="bad labels")

    am = Alertmanager("http://am.test", attempts=3, first_backoff_s=0.001, transport=httpx.MockTransport(handle))
    with pytest.raises(DeliveryFailed, match="bad labels"):
        am.post_alerts([alert_payload(LABELS, {}, T0, T0)])
    assert len(calls) == 1


def test_expiring_an_unknown_silence_says_so() -> None:
    am = Alertmanager("http://am.test", transport=httpx.MockTransport(lambda r: httpx.Response(404)))
    with pytest.raises(SilenceNotFound):
        am.expire_silence("nope")


def test_a_silence_matches_labels_exactly() -> None:
    assert Matcher("rack", "r-7").as_json() == {"name": "rack", "value": "r-7", "isRegex": False, "isEqual": True}


def test_the_pagerduty_dedup_key_is_rack_and_rule() -> None:
    assert dedup_key(LABELS) == "r-7/rack-leak-detected"
    drift = {"alertname": "generation-deviation-drift", "generation": "gb300", "check": "leak-detected"}
    assert dedup_key(drift) == "gb300/leak-detected/generation-deviation-drift"


def test_a_pagerduty_trigger_carries_summary_links_and_details_and_a_resolve_only_the_key() -> None:
    notes = {"summary": "r-7: leak", "runbook_url": "docs/runbooks/rack-leak-detected.md",
             "dashboard_url": "http://grafana/d/fleet-rack?var-rack=r-7"}
    trigger = event_body("KEY", "trigger", LABELS, notes, "fleet-twin")
    assert trigger["payload"]["summary"] == "r-7: leak" and trigger["payload"]["severity"] == "critical"
    assert [link["text"] for link in trigger["links"]] == ["runbook", "rack dashboard"]
    assert event_body("KEY", "resolve", LABELS, notes, "fleet-twin") == {
        "routing_key": "KEY", "event_action": "resolve", "dedup_key": "r-7/rack-leak-detected"}
