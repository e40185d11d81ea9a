"""Prometheus Alertmanager, through its API v2 (httpx): post alerts, manage silences.

Why Alertmanager does the paging: it groups alerts by their labels, routes them by severity and
owner, inhibits rack alerts a fleet alert explains, honours silences, and deduplicates: an
alert re-sent with the same labels is the same alert, so the engine re-sends firing alerts
periodically (as Prometheus does) and a restarted engine re-sending them pages no one again.
A firing alert is sent with `endsAt` a few resend periods ahead, so an engine that dies leaves
its alerts to expire rather than to fire forever; a resolved one with `endsAt` = when it cleared.

Sending retries with exponential backoff; httpx errors are translated here into `DeliveryFailed`.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

import httpx

from twin.alerting.errors import DeliveryFailed, SilenceNotFound

__all__ = ["Alertmanager", "Matcher", "Silence", "alert_payload"]


def _iso(ts: datetime) -> str:
    return ts.astimezone(timezone.utc).isoformat().replace("+00:00", "Z")


def alert_payload(labels: Mapping[str, str], annotations: Mapping[str, str], starts_at: datetime,
                  ends_at: datetime, generator_url: str = "") -> dict[str, Any]:
    """One element of `POST /api/v2/alerts`."""
    body: dict[str, Any] = {"labels": dict(labels), "annotations": dict(annotations), "startsAt": _iso(starts_at),
                            "endsAt": _iso(ends_at)}
    if generator_url:
        body["generatorURL"] = generator_url
    return body


@dataclass(frozen=True, slots=True)
class Matcher:
    """A silence matcher: label equals value (Alertmanager's `name="value"`)."""

    name: str
    value: str
    is_regex: bool = False

    def as_json(self) -> dict[str, Any]:
        return {"name": self.name, "value": self.value, "isRegex": self.is_regex, "isEqual": True}


@dataclass(frozen=True, slots=True)
class Silence:
    id: str
    matchers: tuple[Matcher, ...]
    starts_at: datetime
    ends_at: datetime
    created_by: str
    comment: str
    state: str

    @classmethod
    def from_json(cls, body: Mapping[str, Any]) -> Silence:
        return cls(body["id"], tuple(Matcher(m["name"], m["value"], m.get("isRegex", False))
                                     for m in body["matchers"]),
                   datetime.fromisoformat(body["startsAt"].replace("Z", "+00:00")),
                   datetime.fromisoformat(body["endsAt"].replace("Z", "+00:00")),
                   body.get("createdBy", ""), body.get("comment", ""), body.get("status", {}).get("state", ""))


class Alertmanager:
    """A client of one Alertmanager (or of a cluster's load balancer)."""

    def __init__(self, url: str, *, timeout_s: float = 5.0, attempts: int = 4, first_backoff_s: float = 0.2,
                 transport: httpx.BaseTransport | None = None) -> None:
        self.url = url.rstrip("/")
        self.attempts = attempts
        self.first_backoff_s = first_backoff_s
        self._http = httpx.Client(base_url=f"{self.url}/api/v2", timeout=timeout_s, transport=transport)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Alertmanager:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """One call, retried with doubling backoff on connection errors and 5xx answers."""
        delay = self.first_backoff_s
        last: str = ""
        for attempt in range(1, self.attempts + 1):
            try:
                response = self._http.request(method, path, **kwargs)
            except httpx.TransportError as exc:
                last = f"{type(exc).__name__}: {exc}"
            else:
                if response.status_code < 500:
                    return response
                last = f"HTTP {response.status_code}: {response.text.strip()[:200]}"
            if attempt < self.attempts:
                time.sleep(delay)
                delay *= 2
        raise DeliveryFailed(f"Alertmanager at {self.url} did not take {method} {path} after {self.attempts}"
                             f" attempts: {last}")

    def post_alerts(self, alerts: Sequence[Mapping[str, Any]]) -> None:
        """Send alerts (firing or resolved); Alertmanager deduplicates them by their labels."""
        if not alerts:
            return
        response = self._request("POST", "/alerts", json=list(alerts))
        if response.status_code >= 400:
            raise DeliveryFailed(f"Alertmanager at {self.url} refused {len(alerts)} alert(s): "
                                 f"HTTP {response.status_code}: {response.text.strip()[:300]}")

    def alerts(self, **filters: str) -> list[dict[str, Any]]:
        """What Alertmanager holds now (`GET /api/v2/alerts`), optionally filtered by label equality."""
        params = [("filter", f'{k}="{v}"') for k, v in filters.items()]
        response = self._request("GET", "/alerts", params=params)
        response.raise_for_status()
        return response.json()  # type: ignore[no-any-return]

    def create_silence(self, matchers: Sequence[Matcher], duration: timedelta, *, created_by: str, comment: str,
                       now: datetime | None = None) -> str:
        """Silence every alert matching all of `matchers` for `duration`; the silence's id."""
        start = now or datetime.now(timezone.utc)
        body = {"matchers": [m.as_json() for m in matchers], "startsAt": _iso(start),
                "endsAt": _iso(start + duration), "createdBy": created_by, "comment": comment}
        response = self._request("POST", "/silences", json=body)
        if response.status_code >= 400:
            raise DeliveryFailed(f"Alertmanager at {self.url} refused the silence: HTTP {response.status_code}: "
                                 f"{response.text.strip()[:300]}")
        return str(response.json()["silenceID"])

    def silences(self, *, active_only: bool = True) -> list[Silence]:
        response = self._request("GET", "/silences")
        response.raise_for_status()
        found = [Silence.from_json(s) for s in response.json()]
        return [s for s in found if s.state in ("active", "pending")] if active_only else found

    def expire_silence(self, silence_id: str) -> None:
        response = self._request("DELETE", f"/silence/{silence_id}")
        if response.status_code == 404:
            raise SilenceNotFound(f"no silence {silence_id} at {self.url}")
        if response.status_code >= 400:
            raise DeliveryFailed(f"Alertmanager at {self.url} did not expire silence {silence_id}: "
                                 f"HTTP {response.status_code}: {response.text.strip()[:300]}")
