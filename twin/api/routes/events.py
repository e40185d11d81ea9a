"""POST /v1/events: factory, logistics and site tools put events on Kafka over HTTP."""

from __future__ import annotations

from typing import Any

import orjson
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from schemas import ALL_TYPES
from twin.api.ingest import MAX_BATCH, BadItem, IngestAccepted, IngestRejected, validate_batch
from twin.api.routes.common import Writer

router = APIRouter(tags=["ingest"])

_BODY = {
    "required": True,
    "content": {"application/json": {"schema": {
        "type": "array", "minItems": 1, "maxItems": MAX_BATCH,
        "items": {"type": "object", "required": ["event_id", "type", "schema_version", "occurred_at", "source", "seq"],
                  "properties": {"type": {"type": "string", "enum": sorted(ALL_TYPES)}}},
        "description": "Events of the published contracts (schemas/json/*.json), any mix of types.",
    }}},
}


def _reject(detail: str, errors: list[BadItem]) -> JSONResponse:
    return JSONResponse(IngestRejected(detail=detail, errors=errors).model_dump(), status_code=422)


@router.post("/events", status_code=202, response_model=IngestAccepted, openapi_extra={"requestBody": _BODY},
             responses={422: {"model": IngestRejected, "description": "Every bad item with its reason; nothing sent."}})
async def post_events(caller: Writer, request: Request) -> Any:
    """Validate a batch with the workers' own models and publish it; 202 with the event ids.

    Idempotent by event_id. A batch with any bad item publishes nothing: the answer lists each
    bad item with the dead-letter reason (malformed-json, missing-field, invalid-field,
    unknown-type, unknown-schema-version, out-of-physical-range).
    """
    del caller
    body = await request.body()
    try:
        items = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        return _reject("the body is not JSON", [BadItem(index=-1, reason="malformed-json", detail=str(exc))])
    if not isinstance(items, list) or not items:
        return _reject("the body must be a non-empty JSON array of events",
                       [BadItem(index=-1, reason="malformed-json", detail=f"got {type(items).__name__}")])
    if len(items) > MAX_BATCH:
        return _reject(f"at most {MAX_BATCH} events per request, got {len(items)}", [])
    valid, bad = validate_batch(items)
    if bad:
        return _reject(f"{len({b.index for b in bad})} of {len(items)} event(s) refused; nothing was published", bad)
    from starlette.concurrency import run_in_threadpool

    return await run_in_threadpool(request.app.state.ingest.publish, valid)
