"""Versioned, re-runnable schema migrations: `twin/store/sql/NNNN_name.sql`, applied in order, once.

Each file runs in its own transaction and is recorded in `schema_migrations`; an advisory
lock lets several workers start at once without racing. Running `migrate` again applies only
what is new, so it is safe at every start.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from importlib import resources
from typing import Any

import psycopg
import structlog
from psycopg.rows import tuple_row

from twin.errors import StoreError, StoreUnavailable

__all__ = ["Migration", "applied_versions", "available", "migrate"]

log = structlog.get_logger(__name__)
_LOCK_KEY = 0x7477696E  # 'twin'
_NAME = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")


@dataclass(frozen=True, slots=True)
class Migration:
    version: int
    name: str
    sql: str


def available() -> list[Migration]:
    """Every migration shipped with the package, in version order."""
    found = []
    for entry in resources.files("twin.store.sql").iterdir():
        match = _NAME.match(entry.name)
        if match:
            found.append(Migration(int(match[1]), match[2], entry.read_text()))
    return sorted(found, key=lambda m: m.version)


def applied_versions(conn: psycopg.Connection[Any]) -> set[int]:
    """The versions this database has applied; none when it was never migrated (no `schema_migrations`)."""
    cur = conn.cursor(row_factory=tuple_row)  # whatever rows the connection makes by default
    if cur.execute("SELECT to_regclass('schema_migrations')").fetchone() == (None,):
        return set()
    return {version for (version,) in cur.execute("SELECT version FROM schema_migrations")}


def migrate(database_url: str) -> list[Migration]:
    """Apply the migrations this database has not seen; return those applied."""
    try:
        conn = psycopg.connect(database_url, autocommit=True, connect_timeout=10)
    except psycopg.OperationalError as exc:
        raise StoreUnavailable(f"cannot connect to the twin database: {exc}") from exc
    applied: list[Migration] = []
    with conn:
        conn.execute("SELECT pg_advisory_lock(%s)", (_LOCK_KEY,))
        try:
            conn.execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations ("
                " version integer PRIMARY KEY, name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())"
            )
            done = applied_versions(conn)
            for migration in available():
                if migration.version in done:
                    continue
                try:
                    with conn.transaction():
                        conn.execute(migration.sql.encode())
                        conn.execute(
                            "INSERT INTO schema_migrations (version, name) VALUES (%s, %s)",
                            (migration.version, migration.name),
                        )
                except psycopg.Error as exc:
                    raise StoreError(f"migration {migration.version:04d}_{migration.name} failed: {exc}") from exc
                log.info("migration applied", version=migration.version, name=migration.name)
                applied.append(migration)
        finally:
            conn.execute("SELECT pg_advisory_unlock(%s)", (_LOCK_KEY,))
    return applied
