"""The FastAPI app: routes under /v1, a database pool, the ingest publisher, the draw rollup.

`create_app(settings)` builds it (tests build one per tenant); `twin api` serves it with
uvicorn. OpenAPI 3.1 is at /openapi.json, the interactive docs at /docs; the orchestrator's probes,
/healthz and /readyz, are outside /v1 and need no token (twin/api/probes.py).
"""

from __future__ import annotations

import threading
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import structlog
from fastapi import FastAPI
from psycopg.rows import dict_row
from psycopg_pool import ConnectionPool
from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from twin.api import errors, probes
from twin.api.answer_cache import AnswerCache
from twin.api.ingest import Ingest
from twin.api.routes import ROUTERS
from twin.settings import Settings, get_settings
from twin.store.migrations import available

__all__ = ["create_app"]

log = structlog.get_logger(__name__)

_DESCRIPTION = """
Capacity planning over the fleet twin: fleet summary, headroom, what-if placement, racks,
rollout progress, generation scorecard, design intent and conformance; and HTTP ingest.

Every request carries `Authorization: Bearer <token>` (`twin token create`). A partner's token
sees only its own facilities' racks, aggregates and history; another partner's rack is 404.
Every read answer carries `freshness`: the newest event time it reflects and the worker lag.
"""


class _Upkeep(threading.Thread):
    """Keeps the read side current in the background, so requests do not pay for it: rolls
    telemetry up into per-row minutes (headroom p95), rebuilds the summary tables, and then answers
    again the cached questions asked lately (`AnswerCache.warm`)."""

    def __init__(self, pool: ConnectionPool, rollup_seconds: float, summary_seconds: float,
                 answers: AnswerCache) -> None:
        super().__init__(name="twin-api-upkeep", daemon=True)
        self.pool, self.stop, self.answers = pool, threading.Event(), answers
        self.jobs = [(every, job) for every, job in ((rollup_seconds, self._rollup), (summary_seconds, self._summaries))
                     if every > 0]
        self.due = {job: 0.0 for _, job in self.jobs}

    def _rollup(self, conn: Any) -> None:
        conn.execute("SELECT refresh_row_power_minutes()")

    def _summaries(self, conn: Any, every: float = 0.0) -> None:
        from twin.store.queries import refresh_summaries

        refresh_summaries(conn, max_age_seconds=every)
        self.answers.warm(conn)

    def run(self) -> None:
        while not self.stop.is_set():
            now = time.monotonic()
            for every, job in self.jobs:
                if now < self.due[job]:
                    continue
                try:
                    with self.pool.connection() as conn:
                        job(conn)
                except Exception as exc:  # noqa: BLE001 -- retried next round, never fatal
                    log.warning("background upkeep failed; retried next round", job=job.__name__, error=str(exc))
                self.due[job] = time.monotonic() + every
            self.stop.wait(max(0.05, min(self.due.values()) - time.monotonic()))


class _ServerTiming:
    """`Server-Timing: app;dur=<ms>`: time spent in the API until the answer starts, apart from the
    network and the client. Plain ASGI: Starlette's `BaseHTTPMiddleware` would pass every answer
    body through a stream of its own (a millisecond a request, more for the 1.6 MB headroom)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()

        async def timed(message: Message) -> None:
            if message["type"] == "http.response.start":
                MutableHeaders(scope=message)["Server-Timing"] = f"app;dur={(time.perf_counter() - started) * 1000:.2f}"
            await send(message)

        await self.app(scope, receive, timed)


def create_app(settings: Settings | None = None) -> FastAPI:
    """The API for these settings (database, broker, topics)."""
    s = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        pool = ConnectionPool(s.database_url.get_secret_value(), min_size=1, max_size=s.api_pool_size, timeout=5,
                              kwargs={"autocommit": True, "row_factory": dict_row}, open=False,
                              name="twin-api")
        pool.open(wait=False)
        app.state.pool = pool
        app.state.ingest = Ingest(_publisher_factory(s))
        upkeep = _Upkeep(pool, s.api_rollup_seconds, s.api_summary_seconds, app.state.answers)
        if upkeep.jobs:
            upkeep.start()
        try:
            yield
        finally:
            if upkeep.is_alive():
                upkeep.stop.set()
                upkeep.join(timeout=30)
            app.state.ingest.close()
            pool.close()

    app = FastAPI(title="fleet twin API", version="1", description=_DESCRIPTION, lifespan=lifespan)
    errors.install(app)
    app.state.database_url = s.database_url.get_secret_value()  # for /readyz's own connection
    app.state.migrations = available()  # what /readyz expects the database to have applied
    app.state.answers = AnswerCache()  # fleet summary and headroom, by question and what they read

    app.add_middleware(_ServerTiming)
    for router in ROUTERS:  # the errors every /v1 endpoint may give; the probes give none of 401, 403, 422
        app.include_router(router, prefix="/v1", responses=errors.ERROR_RESPONSES)
    app.include_router(probes.router)
    return app


def _publisher_factory(s: Settings) -> Any:
    def make() -> Any:
        from twin.publisher import Publisher

        return Publisher(s.kafka_bootstrap, s.topics, client_id="twin-api")

    return make
