"""Probes for orchestrators, outside /v1 and without a token: `/healthz` (alive) and `/readyz` (ready).

Liveness asks nothing of the database: restarting the API does not bring a database back, so a
database that is down must not get the process killed. Readiness does ask: the database answers a
trivial query within `PROBE_SECONDS`, on a connection of its own (the pool's may all be busy), and
every migration this code ships is applied. A schema newer than the code (during a rolling upgrade the
new release migrates first) is ready: migrations only add. Not ready is 503, naming each check that
failed. The broker is not checked: reads do not need it, and `POST /v1/events` answers 503 itself.
"""

from __future__ import annotations

import psycopg
from fastapi import APIRouter, Request, Response

from twin.store.answers import Liveness, Readiness, ReadinessCheck
from twin.store.migrations import Migration, applied_versions

__all__ = ["PROBE_SECONDS", "readiness", "router"]

PROBE_SECONDS = 2
"""How long the database may take to connect, and then to answer (libpq's connect timeout is at least 2 s)."""


def readiness(database_url: str, shipped: list[Migration]) -> Readiness:
    """Ask the database (its own short-lived connection) whether it answers and has every shipped migration."""
    expected = max(m.version for m in shipped)
    applied: set[int] | None = None
    try:
        with psycopg.connect(database_url, autocommit=True, connect_timeout=PROBE_SECONDS) as conn:
            conn.execute("SELECT set_config('statement_timeout', %s, false)", (f"{PROBE_SECONDS}s",))
            conn.execute("SELECT 1")
            database = ReadinessCheck(name="database", ok=True, detail="answers")
            applied = applied_versions(conn)
    except psycopg.Error as exc:
        database = ReadinessCheck(name="database", ok=False, detail=" ".join(str(exc).split()) or type(exc).__name__)
    if applied is None:
        migrations = ReadinessCheck(name="migrations", ok=False, detail="unknown: the database did not answer")
    else:
        missing = [m for m in shipped if m.version not in applied]
        migrations = ReadinessCheck(name="migrations", ok=not missing, detail=(
            f"at {max(applied, default=0):04d}, this code expects {expected:04d}" if not missing else
            f"{len(missing)} of {len(shipped)} not applied (first {missing[0].version:04d}_{missing[0].name});"
            " run `twin migrate`"))
    checks = [database, migrations]
    failed = [f"{c.name}: {c.detail}" for c in checks if not c.ok]
    return Readiness(status="not-ready" if failed else "ready", detail="; ".join(failed) or "ready", checks=checks,
                     schema_version=max(applied or (), default=None),
                     expected_schema_version=expected)


router = APIRouter(tags=["probes"])


@router.get("/healthz", response_model=Liveness, summary="Liveness: the process serves (asks nothing else)")
async def healthz() -> Liveness:
    return Liveness(status="alive")


@router.get("/readyz", response_model=Readiness, summary="Readiness: the database answers and is migrated",
            responses={503: {"model": Readiness, "description": "Not ready: `detail` and `checks` say what."}})
def readyz(request: Request, response: Response) -> Readiness:
    """200 when the database answers within 2 s and has every migration this code ships; 503 otherwise."""
    answer = readiness(request.app.state.database_url, request.app.state.migrations)
    if answer.status != "ready":
        response.status_code = 503
        response.headers["Retry-After"] = "5"
    return answer
