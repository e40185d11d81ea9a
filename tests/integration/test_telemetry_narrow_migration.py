"""Migration 0010 rebuilds a telemetry table that already holds readings (0002's wide layout)
into the narrow one, keeping every reading, its partitions' names, and their rollup pending."""

from __future__ import annotations

import re
import uuid
from typing import Any

import psycopg
import pytest
from psycopg import sql

from twin.store.migrations import available, migrate

pytestmark = pytest.mark.integration


def test_existing_readings_survive_the_narrowing_and_are_rolled_up(stack: Any) -> None:
    name = f"narrow_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(stack.database_url, autocommit=True) as admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    url = stack.database_url.rsplit("/", 1)[0] + f"/{name}"
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("CREATE TABLE schema_migrations (version integer PRIMARY KEY, name text NOT NULL,"
                      " applied_at timestamptz NOT NULL DEFAULT now())")
        for m in available():
            if m.version <= 3:  # the schema as it was before this work
                conn.execute(m.sql.encode())
                conn.execute("INSERT INTO schema_migrations (version, name) VALUES (%s, %s)", (m.version, m.name))
        for day in ("2026-03-01", "2026-03-02"):
            conn.execute("SELECT ensure_telemetry_partition(%s)", (day,))
        conn.execute("""
            INSERT INTO telemetry SELECT 'r-' || (n % 3), timestamptz '2026-03-01 23:58:00+00' + n * interval '10 s',
                   'bmc', 123456.789, 21.5, 35.25, 25, 35, 150.5, 60, n % 50 = 0, 71.125, 40, 16, n % 2
            FROM generate_series(0, 59) n""")
        before = conn.execute("SELECT rack_id, occurred_at, source, power_watts, leak_detected, network_links_down"
                              " FROM telemetry ORDER BY 1, 2").fetchall()
    applied = [m.version for m in migrate(url)]
    assert 10 in applied and 11 in applied
    with psycopg.connect(url, autocommit=True) as conn:
        after = conn.execute("SELECT rack_id, occurred_at, source, power_watts, leak_detected, network_links_down"
                             " FROM telemetry ORDER BY 1, 2").fetchall()
        assert [(r[0], r[1], r[2], r[4], r[5]) for r in after] == [(r[0], r[1], r[2], r[4], r[5]) for r in before]
        assert all(abs(a[3] - b[3]) <= 0.01 for a, b in zip(after, before))  # real: 123456.79
        types = dict(conn.execute("SELECT column_name, data_type FROM information_schema.columns"
                                  " WHERE table_name = 'telemetry'").fetchall())
        assert types["power_watts"] == "real" and types["network_links_up"] == "smallint"
        parts = sorted(r[0] for r in conn.execute(
            "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid"
            " WHERE i.inhparent = 'telemetry'::regclass"))
        assert parts == ["telemetry_20260301", "telemetry_20260302"]
        assert all(re.fullmatch(r"telemetry_\d{8}", p) for p in parts)
        options = conn.execute("SELECT reloptions FROM pg_class WHERE relname = 'telemetry_20260302'").fetchone()[0]
        assert options == ["fillfactor=100"]
        # the readings stored before are pending, so the first run of the job rolls them up
        assert conn.execute("SELECT count(DISTINCT minute) FROM rollup_pending").fetchone()[0] == 10
        conn.execute("SELECT drop_telemetry_partitions_before('2026-03-02')")  # 0002's retention still works
        assert conn.execute("SELECT count(*) FROM telemetry").fetchone()[0] == 48
