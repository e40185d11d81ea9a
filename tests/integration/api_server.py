"""A real uvicorn server on a loopback port, serving the API for one tenant, with its tokens."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import uvicorn
from worker_process import free_port

from twin.api import create_app
from twin.settings import Settings
from twin.store import tokens, views


@dataclass
class ApiWorld:
    """A served API over a tenant, and tokens by role: admin, reader, writer, partner:<operator>; `app`
    is the served FastAPI app (its state, e.g. the answer cache, can be looked at)."""

    base_url: str
    tenant: Any
    tokens: dict[str, str] = field(default_factory=dict)
    app: Any = None

    def headers(self, who: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[who]}"}


def settings_for(tenant: Any, **more: Any) -> Settings:
    return Settings(kafka_bootstrap=tenant.kafka_bootstrap, database_url=tenant.database_url, topics=tenant.topics,
                    api_rollup_seconds=0, api_summary_seconds=0, **more)


@contextmanager
def serving(tenant: Any, partners: list[str]) -> Iterator[ApiWorld]:
    """Serve the API for `tenant` until the block ends; the server thread is stopped and joined."""
    with views.connect(tenant.database_url) as conn:
        made = {"admin": tokens.create_token(conn, "test-admin", ["admin"])[1],
                "reader": tokens.create_token(conn, "test-reader", ["read"])[1],
                "writer": tokens.create_token(conn, "test-writer", ["write"])[1]}
        for p in partners:
            made[f"partner:{p}"] = tokens.create_token(conn, f"test-{p}", ["read"], owner=p)[1]
    app = create_app(settings_for(tenant))
    with serving_app(app) as base_url:
        yield ApiWorld(base_url, tenant, made, app)


@contextmanager
def serving_settings(settings: Settings) -> Iterator[str]:
    """Serve the API for these settings (any database, even one not migrated or not there) until the
    block ends; yields its base URL. The server thread is stopped and joined."""
    with serving_app(create_app(settings)) as base_url:
        yield base_url


@contextmanager
def serving_app(app: Any) -> Iterator[str]:
    """Serve `app` on a free loopback port until the block ends; yields its base URL."""
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port,
                                           log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, name="api-under-test", daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise AssertionError("the API server did not start")
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=15)
