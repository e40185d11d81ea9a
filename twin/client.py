"""A typed Python client of the twin's HTTP API, sync (`TwinClient`) and async (`AsyncTwinClient`).

    with TwinClient("http://127.0.0.1:8080", token) as twin:
        page = twin.racks(stage="active", generation="gen-b-200kw")
        left = twin.headroom(level="hall", facility="dfw1")

Answers are the API's own response models (`twin.store.answers`), so a field the server
renames fails here, in tests, and not in a notebook. `OPERATIONS` maps every OpenAPI
operation to its method; a test checks both against the served document.

Errors, by status:

    ApiError            any answer that is not a success; `status`, `detail`, `valid`
    ├── Unauthorized    401: no token, or an unknown or revoked one
    ├── Forbidden       403: the token lacks the scope
    ├── NotFound        404: no such rack or intent (or not one this token may see)
    ├── InvalidRequest  422: a parameter or an event is wrong; `valid` / `errors` say how
    └── Unavailable     503: the database or broker is down; retry later
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator, Sequence
from datetime import datetime
from types import TracebackType
from typing import Any, Self, TypeVar

import httpx
from pydantic import BaseModel

from twin.errors import TwinError
from twin.store.answers import (
    BadItem,
    CoolingUnitRacks,
    IngestAccepted,
    FleetSummary,
    Headroom,
    IntentDetail,
    IntentRevisions,
    Liveness,
    Placement,
    RackAsOf,
    RackDetail,
    RackHistory,
    RackPage,
    RackSummary,
    Readiness,
    RolloutProgress,
    Scorecard,
)
from twin.store.tokens import Token, TokenList

__all__ = [
    "OPERATIONS", "ApiError", "AsyncTwinClient", "Forbidden", "InvalidRequest", "NotFound", "TwinClient",
    "Unauthorized", "Unavailable",
]

M = TypeVar("M", bound=BaseModel)


class ApiError(TwinError):
    """Raised when the API answers with an error status."""

    def __init__(self, status: int, detail: Any, valid: list[str] | None = None,
                 errors: list[BadItem] | None = None) -> None:
        super().__init__(f"{status}: {detail}")
        self.status, self.detail, self.valid, self.errors = status, detail, valid, errors or []


class Unauthorized(ApiError):
    """Raised on 401: no token, or an unknown or revoked one."""


class Forbidden(ApiError):
    """Raised on 403: the token lacks the endpoint's scope."""


class NotFound(ApiError):
    """Raised on 404: nothing by that id that this token may see."""


class InvalidRequest(ApiError):
    """Raised on 422: a parameter or an event is wrong (`valid`, `errors`)."""


class Unavailable(ApiError):
    """Raised on 503 (and when the server cannot be reached): retry later."""


_BY_STATUS = {401: Unauthorized, 403: Forbidden, 404: NotFound, 422: InvalidRequest, 503: Unavailable}


OPERATIONS: dict[tuple[str, str], tuple[str, type[BaseModel]]] = {
    ("GET", "/v1/fleet/summary"): ("fleet_summary", FleetSummary),
    ("GET", "/v1/headroom"): ("headroom", Headroom),
    ("GET", "/v1/placement"): ("place", Placement),
    ("GET", "/v1/racks"): ("racks", RackPage),
    ("GET", "/v1/racks/{rack_id}"): ("rack", RackDetail),
    ("GET", "/v1/racks/{rack_id}/history"): ("rack_history", RackHistory),
    ("GET", "/v1/racks/{rack_id}/as-of"): ("rack_as_of", RackAsOf),
    ("GET", "/v1/rollout"): ("rollout", RolloutProgress),
    ("GET", "/v1/scorecard"): ("scorecard", Scorecard),
    ("GET", "/v1/intents"): ("intents", IntentRevisions),
    ("GET", "/v1/intents/{generation}"): ("intent", IntentDetail),
    ("GET", "/v1/intents/{generation}/{revision}"): ("intent", IntentDetail),
    ("GET", "/v1/topology/cdus/{cooling_unit_id}"): ("cooling_unit", CoolingUnitRacks),
    ("POST", "/v1/events"): ("post_events", IngestAccepted),
    ("GET", "/v1/tokens"): ("tokens", TokenList),
    ("GET", "/healthz"): ("alive", Liveness),
    ("GET", "/readyz"): ("ready", Readiness),
}
"""OpenAPI operation -> (client method, response model)."""


def _params(**values: Any) -> dict[str, Any]:
    out = {}
    for k, v in values.items():
        if v is None:
            continue
        if isinstance(v, bool):
            v = "true" if v else "false"
        elif isinstance(v, datetime):
            v = v.isoformat()
        out[k] = v
    return out


def _rack_filters(stage: str | None, generation: str | None, facility: str | None, health: str | None,
                  deviation: str | None, stalled: bool | None, onshore_below: float | None,
                  firmware_drift: bool | None, limit: int, cursor: str | None) -> dict[str, Any]:
    return _params(stage=stage, generation=generation, facility=facility, health=health, deviation=deviation,
                   stalled=stalled, onshore_below=onshore_below, firmware_drift=firmware_drift, limit=limit,
                   cursor=cursor)


def _answer(response: httpx.Response, model: type[M]) -> M:
    if response.status_code < 300:
        return model.model_validate_json(response.content)
    try:
        body = response.json()
    except ValueError:
        body = {"detail": response.text}
    kind = _BY_STATUS.get(response.status_code, ApiError)
    errors = [BadItem.model_validate(e) for e in body.get("errors", [])] if isinstance(body, dict) else []
    raise kind(response.status_code, body.get("detail") if isinstance(body, dict) else body,
               body.get("valid") if isinstance(body, dict) else None, errors)


def _intent_path(generation: str, revision: int | None) -> str:
    return f"/v1/intents/{generation}" + ("" if revision is None else f"/{revision}")


class TwinClient:
    """The API, synchronously. Use as a context manager, or call `close()`."""

    def __init__(self, base_url: str, token: str, *, timeout: float = 30.0,
                 transport: httpx.BaseTransport | None = None) -> None:
        self._http = httpx.Client(base_url=base_url, headers={"Authorization": f"Bearer {token}"}, timeout=timeout,
                                  transport=transport)

    def _get(self, path: str, model: type[M], params: dict[str, Any] | None = None) -> M:
        try:
            return _answer(self._http.get(path, params=params), model)
        except httpx.TransportError as exc:
            raise Unavailable(503, f"the API at {self._http.base_url} did not answer: {exc}") from exc

    def fleet_summary(self, group_by: Sequence[str] = ("facility", "generation")) -> FleetSummary:
        return self._get("/v1/fleet/summary", FleetSummary, {"group_by": list(group_by)})

    def headroom(self, level: str = "row", facility: str | None = None, window_minutes: int = 15) -> Headroom:
        return self._get("/v1/headroom", Headroom, _params(level=level, facility=facility,
                                                           window_minutes=window_minutes))

    def place(self, generation: str, count: int, facility: str | None = None) -> Placement:
        return self._get("/v1/placement", Placement, _params(generation=generation, count=count, facility=facility))

    def racks(self, *, stage: str | None = None, generation: str | None = None, facility: str | None = None,
              health: str | None = None, deviation: str | None = None, stalled: bool | None = None,
              onshore_below: float | None = None, firmware_drift: bool | None = None, limit: int = 50,
              cursor: str | None = None) -> RackPage:
        return self._get("/v1/racks", RackPage, _rack_filters(stage, generation, facility, health, deviation, stalled,
                                                              onshore_below, firmware_drift, limit, cursor))

    def iter_racks(self, **filters: Any) -> Iterator[RackSummary]:
        """Every matching rack, following the cursor page by page."""
        cursor = None
        while True:
            page = self.racks(**filters, cursor=cursor)
            yield from page.racks
            if page.next_cursor is None:
                return
            cursor = page.next_cursor

    def rack(self, rack_id: str) -> RackDetail:
        return self._get(f"/v1/racks/{rack_id}", RackDetail)

    def rack_history(self, rack_id: str) -> RackHistory:
        return self._get(f"/v1/racks/{rack_id}/history", RackHistory)

    def rack_as_of(self, rack_id: str, at: datetime) -> RackAsOf:
        return self._get(f"/v1/racks/{rack_id}/as-of", RackAsOf, _params(at=at))

    def rollout(self, facility: str | None = None) -> RolloutProgress:
        return self._get("/v1/rollout", RolloutProgress, _params(facility=facility))

    def scorecard(self, generation: str | None = None) -> Scorecard:
        return self._get("/v1/scorecard", Scorecard, _params(generation=generation))

    def intents(self, generation: str | None = None) -> IntentRevisions:
        return self._get("/v1/intents", IntentRevisions, _params(generation=generation))

    def intent(self, generation: str, revision: int | None = None) -> IntentDetail:
        return self._get(_intent_path(generation, revision), IntentDetail)

    def cooling_unit(self, cooling_unit_id: str) -> CoolingUnitRacks:
        """Which racks this CDU feeds, and its health as last polled."""
        return self._get(f"/v1/topology/cdus/{cooling_unit_id}", CoolingUnitRacks)

    def tokens(self) -> list[Token]:
        return self._get("/v1/tokens", TokenList).tokens

    def alive(self) -> Liveness:
        """The liveness probe (no token needed): the process serves."""
        return self._get("/healthz", Liveness)

    def ready(self) -> Readiness:
        """The readiness probe (no token needed); not ready raises `Unavailable` naming what is not."""
        return self._get("/readyz", Readiness)

    def post_events(self, events: Sequence[BaseModel | dict[str, Any]]) -> IngestAccepted:
        """Publish a batch of events (contract models or dicts); 422 raises `InvalidRequest` with `errors`."""
        body = [e.model_dump(mode="json") if isinstance(e, BaseModel) else e for e in events]
        try:
            return _answer(self._http.post("/v1/events", json=body), IngestAccepted)
        except httpx.TransportError as exc:
            raise Unavailable(503, f"the API at {self._http.base_url} did not answer: {exc}") from exc

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None) -> None:
        self.close()


class AsyncTwinClient:
    """The API, for asyncio (notebooks, services). Use as an async context manager, or `await aclose()`."""

    def __init__(self, base_url: str, token: str, *, timeout: float = 30.0,
                 transport: httpx.AsyncBaseTransport | None = None) -> None:
        self._http = httpx.AsyncClient(base_url=base_url, headers={"Authorization": f"Bearer {token}"},
                                       timeout=timeout, transport=transport)

    async def _get(self, path: str, model: type[M], params: dict[str, Any] | None = None) -> M:
        try:
            return _answer(await self._http.get(path, params=params), model)
        except httpx.TransportError as exc:
            raise Unavailable(503, f"the API at {self._http.base_url} did not answer: {exc}") from exc

    async def fleet_summary(self, group_by: Sequence[str] = ("facility", "generation")) -> FleetSummary:
        return await self._get("/v1/fleet/summary", FleetSummary, {"group_by": list(group_by)})

    async def headroom(self, level: str = "row", facility: str | None = None, window_minutes: int = 15) -> Headroom:
        return await self._get("/v1/headroom", Headroom, _params(level=level, facility=facility,
                                                                 window_minutes=window_minutes))

    async def place(self, generation: str, count: int, facility: str | None = None) -> Placement:
        return await self._get("/v1/placement", Placement,
                               _params(generation=generation, count=count, facility=facility))

    async def racks(self, *, stage: str | None = None, generation: str | None = None, facility: str | None = None,
                    health: str | None = None, deviation: str | None = None, stalled: bool | None = None,
                    onshore_below: float | None = None, firmware_drift: bool | None = None, limit: int = 50,
                    cursor: str | None = None) -> RackPage:
        return await self._get("/v1/racks", RackPage, _rack_filters(
            stage, generation, facility, health, deviation, stalled, onshore_below, firmware_drift, limit, cursor))

    async def iter_racks(self, **filters: Any) -> AsyncIterator[RackSummary]:
        """Every matching rack, following the cursor page by page."""
        cursor = None
        while True:
            page = await self.racks(**filters, cursor=cursor)
            for rack in page.racks:
                yield rack
            if page.next_cursor is None:
                return
            cursor = page.next_cursor

    async def rack(self, rack_id: str) -> RackDetail:
        return await self._get(f"/v1/racks/{rack_id}", RackDetail)

    async def rack_history(self, rack_id: str) -> RackHistory:
        return await self._get(f"/v1/racks/{rack_id}/history", RackHistory)

    async def rack_as_of(self, rack_id: str, at: datetime) -> RackAsOf:
        return await self._get(f"/v1/racks/{rack_id}/as-of", RackAsOf, _params(at=at))

    async def rollout(self, facility: str | None = None) -> RolloutProgress:
        return await self._get("/v1/rollout", RolloutProgress, _params(facility=facility))

    async def scorecard(self, generation: str | None = None) -> Scorecard:
        return await self._get("/v1/scorecard", Scorecard, _params(generation=generation))

    async def intents(self, generation: str | None = None) -> IntentRevisions:
        return await self._get("/v1/intents", IntentRevisions, _params(generation=generation))

    async def intent(self, generation: str, revision: int | None = None) -> IntentDetail:
        return await self._get(_intent_path(generation, revision), IntentDetail)

    async def cooling_unit(self, cooling_unit_id: str) -> CoolingUnitRacks:
        """Which racks this CDU feeds, and its health as last polled."""
        return await self._get(f"/v1/topology/cdus/{cooling_unit_id}", CoolingUnitRacks)

    async def tokens(self) -> list[Token]:
        return (await self._get("/v1/tokens", TokenList)).tokens

    async def alive(self) -> Liveness:
        """The liveness probe (no token needed): the process serves."""
        return await self._get("/healthz", Liveness)

    async def ready(self) -> Readiness:
        """The readiness probe (no token needed); not ready raises `Unavailable` naming what is not."""
        return await self._get("/readyz", Readiness)

    async def post_events(self, events: Sequence[BaseModel | dict[str, Any]]) -> IngestAccepted:
        """Publish a batch of events (contract models or dicts); 422 raises `InvalidRequest` with `errors`."""
        body = [e.model_dump(mode="json") if isinstance(e, BaseModel) else e for e in events]
        try:
            return _answer(await self._http.post("/v1/events", json=body), IngestAccepted)
        except httpx.TransportError as exc:
            raise Unavailable(503, f"the API at {self._http.base_url} did not answer: {exc}") from exc

    async def aclose(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None) -> None:
        await self.aclose()
