"""The API's probes over real HTTP: /healthz asks nothing of the database; /readyz is 200 only when
the database answers and has every migration this code ships, and 503 naming what is not ready."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import psycopg
import pytest
from api_server import serving_settings
from psycopg import sql
from worker_process import free_port

from twin.client import TwinClient, Unavailable
from twin.settings import Settings
from twin.store.migrations import available, migrate

pytestmark = pytest.mark.integration


def _settings(stack: Any, database_url: str) -> Settings:
    return Settings(kafka_bootstrap=stack.kafka_bootstrap, database_url=database_url, api_rollup_seconds=0,
                    api_summary_seconds=0)


def _empty_database(stack: Any) -> str:
    name = f"probes_empty_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(stack.database_url, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    return stack.database_url.rsplit("/", 1)[0] + f"/{name}"


def test_readyz_is_503_until_the_database_is_migrated_and_200_after(stack: Any) -> None:
    database_url = _empty_database(stack)
    shipped = available()
    with serving_settings(_settings(stack, database_url)) as base_url:
        assert httpx.get(f"{base_url}/healthz").json() == {"status": "alive"}
        r = httpx.get(f"{base_url}/readyz")
        assert r.status_code == 503, r.text
        body = r.json()
        assert body["status"] == "not-ready" and body["schema_version"] is None
        assert body["expected_schema_version"] == shipped[-1].version
        checks = {c["name"]: c for c in body["checks"]}
        assert checks["database"]["ok"] and not checks["migrations"]["ok"]
        assert f"{len(shipped)} of {len(shipped)} not applied" in body["detail"] and "twin migrate" in body["detail"]
        assert body["detail"].startswith("migrations:") and "database:" not in body["detail"]

        migrate(database_url)
        r = httpx.get(f"{base_url}/readyz")
        assert r.status_code == 200, r.text
        assert r.json()["status"] == "ready" and r.json()["schema_version"] == shipped[-1].version
        with TwinClient(base_url, "no-token-needed") as client:
            assert client.ready().status == "ready" and client.alive().status == "alive"

        with psycopg.connect(database_url, autocommit=True) as conn:  # one shipped migration missing again
            conn.execute("DELETE FROM schema_migrations WHERE version = %s", (shipped[0].version,))
        r = httpx.get(f"{base_url}/readyz")
        assert r.status_code == 503 and f"first {shipped[0].version:04d}_{shipped[0].name}" in r.json()["detail"]


def test_readyz_is_503_naming_the_database_when_its_server_does_not_answer_and_healthz_stays_200(stack: Any) -> None:
    closed = free_port()  # nothing listens there
    database_url = f"postgresql://twin@127.0.0.1:{closed}/twin"
    with serving_settings(_settings(stack, database_url)) as base_url:
        alive = httpx.get(f"{base_url}/healthz")
        assert alive.status_code == 200 and alive.json() == {"status": "alive"}
        r = httpx.get(f"{base_url}/readyz", timeout=10)
        assert r.status_code == 503, r.text
        body = r.json()
        checks = {c["name"]: c for c in body["checks"]}
        assert not checks["database"]["ok"] and str(closed) in checks["database"]["detail"]
        assert "refused" in checks["database"]["detail"].lower()
        assert checks["migrations"] == {"name": "migrations", "ok": False, "detail": "unknown: the database did not answer"}
        assert body["detail"].startswith("database:") and body["schema_version"] is None
        assert r.headers["Retry-After"] == "5"
        with TwinClient(base_url, "no-token-needed") as client, pytest.raises(Unavailable) as raised:
            client.ready()
        assert raised.value.status == 503 and "database:" in str(raised.value.detail)
