"""The FastAPI app: routes under /v1, a database pool, the ingest publisher, the draw rollup.

`create_app(settings)` builds it (tests build one per tenant); `twin api` serves it with
uvicorn. OpenAPI 3.1 is at /openapi.json, the interactive docs at /docs.
"""

from __future__ import annotations

import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import structlog
from fastapi import FastAPI
from psycopg.rows import dict_row
from psycopg_pool import ConnectionPool

from twin.api import errors
from twin.api.ingest import Ingest
from twin.api.routes import ROUTERS
from twin.settings import Settings, get_settings

__all__ = ["create_app"]

log = structlog.get_logger(__name__)

_DESCRIPTION = """
Capacity planning over the fleet twin: fleet summary, headroom, what-if placement, racks,
rollout progress, generation scorecard, design intent and conformance; and HTTP ingest.

Every request carries `Authorization: Bearer <token>` (`twin token create`). A partner's token
sees only its own facilities' racks, aggregates and history; another partner's rack is 404.
Every read answer carries `freshness`: the newest event time it reflects and the worker lag.
"""


class _Rollup(threading.Thread):
    """Rolls telemetry up into per-row minutes every `interval` seconds (headroom's p95 reads them)."""

    def __init__(self, pool: ConnectionPool, interval: float) -> None:
        super().__init__(name="twin-api-rollup", daemon=True)
        self.pool, self.interval, self.stop = pool, interval, threading.Event()

    def run(self) -> None:
        while not self.stop.wait(self.interval):
            try:
                with self.pool.connection() as conn:
                    conn.execute("SELECT refresh_row_power_minutes()")
            except Exception as exc:  # noqa: BLE001 -- a failed roll-up is retried next round, never fatal
                log.warning("draw rollup failed; retried next round", error=str(exc))


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
        rollup = _Rollup(pool, s.api_rollup_seconds) if s.api_rollup_seconds > 0 else None
        if rollup:
            rollup.start()
        try:
            yield
        finally:
            if rollup:
                rollup.stop.set()
                rollup.join(timeout=10)
            app.state.ingest.close()
            pool.close()

    app = FastAPI(title="fleet twin API", version="1", description=_DESCRIPTION, lifespan=lifespan,
                  responses=errors.ERROR_RESPONSES)
    errors.install(app)
    for router in ROUTERS:
        app.include_router(router, prefix="/v1")
    return app


def _publisher_factory(s: Settings) -> Any:
    def make() -> Any:
        from twin.publisher import Publisher

        return Publisher(s.kafka_bootstrap, s.topics, client_id="twin-api")

    return make
