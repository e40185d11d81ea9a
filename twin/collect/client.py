"""One Redfish endpoint over HTTP, with the DMTF `redfish` library: log in, GET a resource.

Why DMTF's `redfish` and not sushy: it is a thin, schema-agnostic client (GET a path, get a
dict), which fits a collector that walks links and reads newer resources (CoolingUnit,
PowerDistribution) sushy has no models for; and it does both basic auth and Redfish sessions.
Its own retry loop sleeps a fixed second; we turn it off (`max_retry=0`) and retry here with
exponential backoff and full jitter (tenacity), so a fleet of collectors does not retry in step.

Errors are translated here, once: no answer, or HTTP 503 (busy) -> `EndpointUnreachable`
(retried, then the racks go stale); another HTTP error or a body that is not JSON ->
`EndpointAnswerRefused` (a dead letter); 404 -> None (a resource this service does not have
is not an error). Passwords live in `SecretStr`
until the login call; nothing here logs a header or a credential.
"""

from __future__ import annotations

import json
import logging
from typing import Any

import redfish
import requests
from pydantic import SecretStr
from redfish.rest.v1 import (
    AuthMethod,
    InvalidCredentialsError,
    JsonDecodingError,
    RetriesExhaustedError,
    ServerDownOrUnreachableError,
    SessionCreationError,
)
from tenacity import Retrying, retry_if_exception_type, stop_after_attempt, wait_random_exponential

from twin.collect.targets import Endpoint
from twin.errors import EndpointAnswerRefused, EndpointUnreachable

__all__ = ["RedfishClient"]

logging.getLogger("redfish").setLevel(logging.WARNING)  # its INFO lines echo every request
_PAYLOAD_LIMIT = 4_096


class RedfishClient:
    """A logged-in connection to one endpoint; `get` a path, re-logging in once if the session expired."""

    def __init__(self, endpoint: Endpoint, username: str | None = None, password: SecretStr | None = None, *,
                 retries: int = 2, backoff_seconds: float = 0.5) -> None:
        self.endpoint = endpoint
        self._username = username
        self._password = password
        self._client: Any = None
        self._retrying = Retrying(
            stop=stop_after_attempt(retries + 1),
            wait=wait_random_exponential(multiplier=backoff_seconds, max=max(backoff_seconds * 8, 0.001)),
            retry=retry_if_exception_type(EndpointUnreachable),
            reraise=True,
        )

    def __repr__(self) -> str:  # never the password
        return f"RedfishClient({self.endpoint.name} {self.endpoint.base_url}, auth={self.endpoint.auth})"

    def get(self, path: str) -> dict[str, Any] | None:
        """The resource at `path` as a dict; None when the service does not have it (404)."""
        return self._retrying(self._get_once, path)

    def close(self) -> None:
        """Log out (deletes the Redfish session) and close the connection pool."""
        client, self._client = self._client, None
        if client is not None:
            try:
                client.logout()
            except Exception:  # noqa: BLE001 - a session we cannot delete expires on its own
                pass

    # --- one attempt ------------------------------------------------------------------------

    def _connect(self) -> Any:
        ep = self.endpoint
        try:
            client = redfish.redfish_client(
                base_url=ep.base_url, username=self._username,
                password=None if self._password is None else self._password.get_secret_value(),
                timeout=ep.timeout_seconds, max_retry=0, cafile=None if ep.ca_file is None else str(ep.ca_file))
            if ep.credentials is not None:
                client.login(auth=AuthMethod.BASIC if ep.auth == "basic" else AuthMethod.SESSION)
        except (RetriesExhaustedError, requests.RequestException) as exc:
            raise EndpointUnreachable(f"{ep.name} at {ep.base_url} did not answer: {_cause(exc)}") from None
        except ServerDownOrUnreachableError as exc:
            resp = getattr(exc, "response", None)
            if getattr(resp, "status", None) == 503:
                raise EndpointUnreachable(f"{ep.name} at {ep.base_url} is busy (HTTP 503)") from None
            raise EndpointAnswerRefused(
                f"{ep.name} service root {ep.base_url}/redfish/v1/ answered HTTP {getattr(resp, 'status', '?')}",
                reason="endpoint-http-error", url=f"{ep.base_url}/redfish/v1/",
                payload=_text(resp)) from None
        except JsonDecodingError as exc:
            raise EndpointAnswerRefused(f"{ep.name} service root is not valid JSON", reason="malformed-json",
                                        url=f"{ep.base_url}/redfish/v1/", payload=str(exc)[:_PAYLOAD_LIMIT]) from None
        except (InvalidCredentialsError, SessionCreationError) as exc:
            raise EndpointAnswerRefused(f"{ep.name} refused the login ({ep.auth}): {str(exc).splitlines()[0]}",
                                        reason="login-refused", url=ep.base_url, payload="") from None
        return client

    def _get_once(self, path: str) -> dict[str, Any] | None:
        if self._client is None:
            self._client = self._connect()
        url = f"{self.endpoint.base_url}{path}"
        try:
            resp = self._client.get(path)
            if resp.status == 401 and self.endpoint.credentials is not None:  # session expired: log in again
                self.close()
                self._client = self._connect()
                resp = self._client.get(path)
        except (RetriesExhaustedError, requests.RequestException) as exc:
            self._client = None  # reconnect (and log in) on the next attempt
            raise EndpointUnreachable(f"{self.endpoint.name} did not answer GET {url}: {_cause(exc)}") from None
        if resp.status == 404:
            return None
        if resp.status == 503:  # a busy BMC says so: retried like no answer, and its racks go stale if it stays
            raise EndpointUnreachable(f"{self.endpoint.name} is busy: GET {url} answered HTTP 503")
        if resp.status != 200:
            raise EndpointAnswerRefused(f"GET {url} answered HTTP {resp.status}", reason="endpoint-http-error",
                                        url=url, payload=_text(resp))
        try:
            body = json.loads(resp.text)
        except ValueError as exc:
            raise EndpointAnswerRefused(f"GET {url} is not valid JSON: {exc}", reason="malformed-json", url=url,
                                        payload=_text(resp)) from None
        if not isinstance(body, dict):
            raise EndpointAnswerRefused(f"GET {url} is JSON but not an object ({type(body).__name__})",
                                        reason="malformed-json", url=url, payload=_text(resp))
        return body


def _cause(exc: BaseException) -> str:
    """The innermost cause, short: `ConnectionRefusedError`, `ReadTimeout`, ..."""
    root: BaseException = exc
    while root.__cause__ is not None or root.__context__ is not None:
        root = root.__cause__ or root.__context__  # type: ignore[assignment]
    if isinstance(root, requests.ConnectionError) and "refused" in str(root):
        return "connection refused"
    text = str(root).split("(Caused by", 1)[0].strip()
    return type(root).__name__ + (f": {text[:160]}" if text else "")


def _text(resp: Any) -> str:
    try:
        return str(resp.text)[:_PAYLOAD_LIMIT]
    except Exception:  # noqa: BLE001 - a body we cannot decode is shown as nothing
        return ""
