"""Rebuild in parallel processes (issue 13): the racks split into id ranges give the same answer as
one process, and a live twin that differs from its events' fold is still found, whichever range holds it."""

from __future__ import annotations

from typing import Any

import psycopg
import pytest

from bench.seed import seed_fleet
from twin.store.rebuild import rebuild

pytestmark = pytest.mark.integration


def test_a_bulk_seeded_fleet_rebuilds_equal_in_one_and_in_three_processes_and_a_tampered_twin_shows(
        tenant: Any) -> None:
    seeded = seed_fleet(tenant.database_url, 40)
    one = rebuild(tenant.database_url)
    three = rebuild(tenant.database_url, workers=3)
    assert one.equal and three.equal, (one.mismatched, one.missing, three.mismatched, three.missing)
    assert (one.racks, one.events) == (three.racks, three.events) == (40, seeded.events)

    with psycopg.connect(tenant.database_url, autocommit=True) as conn:
        racks = [r for (r,) in conn.execute("SELECT rack_id FROM rack_lifecycle ORDER BY rack_id")]
        tampered = [racks[0], racks[len(racks) // 2], racks[-1]]   # the first, a middle and the last range
        conn.execute("UPDATE rack_lifecycle SET twin = jsonb_set(twin, '{version}', '0') WHERE rack_id = ANY(%s)",
                     (tampered,))
        conn.execute("DELETE FROM rack_lifecycle WHERE rack_id = %s", (racks[1],))
    found = rebuild(tenant.database_url, workers=3)
    assert found.mismatched == sorted(tampered)
    assert found.missing == [racks[1]]
    healed = rebuild(tenant.database_url, workers=3, write=True)
    assert healed.mismatched == sorted(tampered)
    assert rebuild(tenant.database_url, workers=2).mismatched == []
