"""Input rules as pure decisions: the clock, identities, the envelope's rack, the registry."""

from __future__ import annotations

from datetime import timedelta

import orjson
import pytest
from given import RACK, T0, Clock, entered_service, history, installed, intent, reading

from twin.domain.decoding import decode_report, positions
from twin.domain.intake import DEFAULT_CLOCK_SKEW, check_clock, check_location, distinct_readings
from twin.domain.intent import IntentCatalog
from twin.domain.rack import fold_history
from twin.errors import ClockSkew, ConflictingDuplicate, FOLD_REASONS, UnknownLocation, WrongRack


def test_an_event_within_the_skew_bound_passes_and_one_beyond_it_is_clock_skew() -> None:
    check_clock(T0 + DEFAULT_CLOCK_SKEW, T0, DEFAULT_CLOCK_SKEW, "reading")
    with pytest.raises(ClockSkew, match="ahead of the worker's clock") as refused:
        check_clock(T0 + timedelta(days=400), T0, DEFAULT_CLOCK_SKEW, "reading")
    assert refused.value.reason == "clock-skew"


def test_a_reading_identity_twice_with_the_same_values_is_one_fact_and_with_others_a_conflict() -> None:
    r = reading(T0)
    out = list(distinct_readings([("s", r, 0), ("s", r, 1), ("t", r, 2), ("s", reading(T0, power_watts=1.0), 3)]))
    assert [(where, type(error)) for _, _, where, error in out] == [(0, type(None)), (2, type(None)),
                                                                     (3, ConflictingDuplicate)]


def test_a_reading_naming_another_rack_than_its_single_rack_report_is_wrong_rack() -> None:
    good = reading(T0).model_dump(mode="json")
    body = {"event_id": "00000000-0000-0000-0000-000000000007", "type": "telemetry.reported", "schema_version": 1,
            "occurred_at": T0.isoformat(), "source": "bmc", "seq": 1, "rack_id": RACK,
            "readings": [{**good, "power_watts": -1}, good, {**good, "rack_id": "dfw1-h1-r01-02"}]}
    decoded = decode_report(orjson.dumps(body))
    assert [(b.index, b.error.reason) for b in decoded.bad] == [(0, "out-of-physical-range"), (2, "wrong-rack")]
    assert isinstance(decoded.bad[1].error, WrongRack)
    assert list(positions(decoded)) == [1] and decoded.event_id == body["event_id"]


def test_an_install_into_an_unknown_row_is_unknown_location() -> None:
    [event] = Clock().events([installed(row="r09")])
    check_location(event, {("dfw1", "h1", "r09")})
    with pytest.raises(UnknownLocation, match="r09"):
        check_location(event, {("dfw1", "h1", "r01")})


def test_the_one_replay_returns_every_refusal_not_only_the_few_a_twin_remembers() -> None:
    events = history(entered_service())
    clock = Clock(events[-1].occurred_at)
    again = clock.events([entered_service() for _ in range(8)])  # already active: each is illegal
    replay = fold_history(RACK, [*events, *again], IntentCatalog([intent()]))
    assert set(replay.refused) == {str(e.event_id) for e in again}
    assert {r.reason for r in replay.refused.values()} <= set(FOLD_REASONS)
    assert len(replay.twin.rejected) < len(replay.refused)


def test_a_late_event_changes_the_verdict_on_an_event_that_came_before_it() -> None:
    events = history(entered_service())
    tests = [e for e in events if e.type == "rack.tested"]
    without = [e for e in events if e not in tests[-1:]]
    catalog = IntentCatalog([intent()])
    refused = fold_history(RACK, without, catalog).refused
    assert [r.reason for r in refused.values()] == ["missing-tests"]
    assert fold_history(RACK, [*without, tests[-1]], catalog).refused == {}


def test_the_reason_slugs_the_sql_names_are_the_error_trees() -> None:
    """The store takes reasons from the error classes as parameters; the one literal left in the
    schema (the orphan index of migration 0001) must still name `UnknownRack.reason`."""
    import re
    from pathlib import Path

    import twin.store
    from twin.errors import UnknownRack

    sql_dir = Path(twin.store.__file__).parent / "sql"
    named = {m for f in sql_dir.glob("*.sql") for m in re.findall(r"reason = '([a-z-]+)'", f.read_text())}
    assert named == {UnknownRack.reason}
    for module in ("postgres.py", "verify.py", "memory.py"):
        code = (sql_dir.parent / module).read_text()
        assert not re.search(r"reason (=|IN) \(?'", code), f"{module} spells a reason slug in its SQL"
