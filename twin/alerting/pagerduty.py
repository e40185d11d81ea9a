"""PagerDuty Events API v2 (optional): trigger on firing, resolve on recovery, dedup key = rack + rule.

Why a sender of its own beside Alertmanager: some on-call rotations take PagerDuty events
directly. PagerDuty deduplicates by `dedup_key`: a trigger for a key whose incident is open adds
nothing, a resolve closes it. The engine sends each transition once (the history is its
outbox), and holds back rack alerts that a fleet alert inhibits, as Alertmanager would.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

import httpx

from twin.alerting.errors import DeliveryFailed

__all__ = ["PagerDuty", "dedup_key", "event_body"]

EVENTS_URL = "https://events.pagerduty.com/v2/enqueue"


def dedup_key(labels: Mapping[str, str]) -> str:
    """Rack + rule for rack alerts (`r-17/rack-leak-detected`); CDU + severity + rule for a CDU's (its warning
    resolving as it turns critical must not close the critical incident); place or generation + rule otherwise."""
    if labels.get("scope") == "cooling-unit":
        return f"{labels.get('cooling_unit')}/{labels.get('severity')}/{labels['alertname']}"
    subject = (labels.get("rack") or "/".join(labels[k] for k in ("generation", "check", "facility", "hall")
                                              if labels.get(k)) or "fleet")
    return f"{subject}/{labels['alertname']}"


def event_body(routing_key: str, action: str, labels: Mapping[str, str], annotations: Mapping[str, str],
               source: str) -> dict[str, Any]:
    """One Events v2 request: `trigger` carries the payload, `resolve` only the key."""
    body: dict[str, Any] = {"routing_key": routing_key, "event_action": action, "dedup_key": dedup_key(labels)}
    if action == "trigger":
        body["payload"] = {
            "summary": annotations.get("summary", labels["alertname"])[:1024],
            "source": labels.get("rack") or labels.get("facility") or labels.get("generation") or source,
            "severity": labels.get("severity", "warning"),
            "component": labels.get("subsystem"),
            "group": labels.get("facility"),
            "class": labels["alertname"],
            "custom_details": {**labels, **{k: v for k, v in annotations.items() if k != "summary"}},
        }
        body["links"] = [{"href": annotations[k], "text": text}
                         for k, text in (("runbook_url", "runbook"), ("dashboard_url", "rack dashboard"))
                         if annotations.get(k)]
    return body


class PagerDuty:
    def __init__(self, routing_key: str, url: str = EVENTS_URL, *, timeout_s: float = 5.0, attempts: int = 4,
                 first_backoff_s: float = 0.2, source: str = "fleet-twin") -> None:
        self.routing_key = routing_key
        self.url = url
        self.attempts = attempts
        self.first_backoff_s = first_backoff_s
        self.source = source
        self._http = httpx.Client(timeout=timeout_s)

    def close(self) -> None:
        self._http.close()

    def send(self, action: str, labels: Mapping[str, str], annotations: Mapping[str, str]) -> None:
        """Trigger or resolve; retried with doubling backoff on connection errors, 429 and 5xx."""
        body = event_body(self.routing_key, action, labels, annotations, self.source)
        delay, last = self.first_backoff_s, ""
        for attempt in range(1, self.attempts + 1):
            try:
                response = self._http.post(self.url, json=body)
            except httpx.TransportError as exc:
                last = f"{type(exc).__name__}: {exc}"
            else:
                if response.status_code < 300:
                    return
                last = f"HTTP {response.status_code}: {response.text.strip()[:200]}"
                if response.status_code < 500 and response.status_code != 429:
                    break  # a bad request stays bad: do not retry it
            if attempt < self.attempts:
                time.sleep(delay)
                delay *= 2
        raise DeliveryFailed(f"PagerDuty at {self.url} did not take {action} {body['dedup_key']}: {last}")
