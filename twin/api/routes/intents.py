"""Design intent revisions, and the fleet's conformance to each."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query

from schemas.lifecycle import SLUG
from twin.api.routes.common import Connection, Reader, found, fresh
from twin.store import queries
from twin.store.answers import IntentDetail, IntentRevisions

router = APIRouter(tags=["intent"])

Generation = Annotated[str, Path(pattern=SLUG, description="Generation, e.g. gen-b-200kw.")]


@router.get("/intents", response_model=IntentRevisions)
def intents(
    caller: Reader, conn: Connection,
    generation: Annotated[str | None, Query(max_length=64, description="Only this generation.")] = None,
) -> IntentRevisions:
    """Every revision, newest first per generation, with how many of the caller's racks conform to it."""
    return fresh(conn, queries.intent_revisions(conn, owner=caller.owner, generation=generation))


@router.get("/intents/{generation}", response_model=IntentDetail, responses={404: {"description": "No such intent."}})
def latest_intent(caller: Reader, conn: Connection, generation: Generation) -> IntentDetail:
    """The generation's latest revision, its body and conformance."""
    return fresh(conn, found(queries.intent_revision(conn, generation, owner=caller.owner), f"intent for {generation}"))


@router.get("/intents/{generation}/{revision}", response_model=IntentDetail,
            responses={404: {"description": "No such revision."}})
def intent(caller: Reader, conn: Connection, generation: Generation,
           revision: Annotated[int, Path(ge=1, le=1_000_000)]) -> IntentDetail:
    """One revision, its body and conformance."""
    return fresh(conn, found(queries.intent_revision(conn, generation, revision, owner=caller.owner),
                             f"revision {revision} of {generation}"))
