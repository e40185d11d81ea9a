"""Part installations folded as a run (issue 13, rebuild speed) give exactly what folding them one by one gives.

`BillOfMaterials.installed_many` packs a run of parts at once and `fold_history` uses it for
consecutive `component.installed` events; `RecordedInstall` is the light form the rebuild reads
them in. Drawn here: runs with taken slots, repeated serials, shared and distinct variants, in
stages where installing is legal and where it is not, so every refusal is exercised too.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any
from uuid import UUID

from given import CATALOG, RACK, T0, installed, manufactured, part, road_to
from hypothesis import given as for_all
from hypothesis import settings
from hypothesis import strategies as st

from schemas import Component, FirmwareUpdated, ComponentInstalled, RackEvent
from twin.domain.components import EMPTY_BOM, BillOfMaterials, Part
from twin.domain.rack import RackTwin, event_key, fold_history
from twin.domain.recorded import RecordedFlash, RecordedInstall
from test_properties import histories
from twin.errors import IllegalTransition, WrongRack

SETTINGS = settings(max_examples=200, deadline=None)
KINDS = ["compute-tray", "psu", "nic", "cabling"]

parts = st.builds(
    lambda slot, kind, serial, value, firmware, pn, country: part(
        f"slot-{slot}", kind, f"SN-{serial}", value=value, firmware=firmware, part_number=pn, country=country),
    slot=st.integers(0, 9), kind=st.sampled_from(KINDS), serial=st.integers(0, 9),
    value=st.sampled_from([0.0, -0.0, 120.0, 120.5, 9_999.0]), firmware=st.sampled_from([None, "1.0", "2.0"]),
    pn=st.sampled_from(["PN-A", "PN-B"]), country=st.sampled_from(["US", "MX"]))


def one_by_one(bom: BillOfMaterials, fitting: list[Any]) -> tuple[BillOfMaterials, int]:
    """`installed` part by part, up to the first refusal."""
    fitted = 0
    for p in fitting:
        try:
            bom = bom.installed(p)
        except IllegalTransition:
            break
        fitted += 1
    return bom, fitted


def packed(bom: BillOfMaterials) -> tuple[Any, ...]:
    """Everything a bill holds, as laid out (not only what `==` compares)."""
    return (bom._slots, bom._serials, bom._specs, list(bom._values), type(bom._index), list(bom._index))


@SETTINGS
@for_all(st.lists(parts, max_size=8), st.lists(parts, max_size=12), st.booleans())
def test_a_run_packed_at_once_is_the_bill_installed_part_by_part(before: list[Component], run: list[Component],
                                                                  light: bool) -> None:
    start, _ = one_by_one(EMPTY_BOM, before)
    fitting: list[Any] = [Part(**p.model_dump()) for p in run] if light else run
    expected, n = one_by_one(start, fitting)
    got, fitted = start.installed_many(fitting)
    assert fitted == n
    assert packed(got) == packed(expected)
    assert got == expected
    if n < len(run):  # it stopped exactly where `installed` refuses
        try:
            expected.installed(fitting[n])
        except IllegalTransition:
            pass
        else:
            raise AssertionError(f"installed_many stopped before {fitting[n]}, which installed accepts")


def test_a_run_that_passes_256_variants_packs_its_index_as_one_by_one_does() -> None:
    run = [part(f"tray-{i:03d}", "compute-tray", value=float(i)) for i in range(300)]
    expected, _ = one_by_one(EMPTY_BOM.installed(run[0]), run[1:])
    got, fitted = EMPTY_BOM.installed(run[0]).installed_many(run[1:])
    assert fitted == 299
    assert packed(got) == packed(expected)
    assert got.get("tray-299") == Part(**run[299].model_dump())


@st.composite
def install_histories(draw: st.DrawFn) -> list[RackEvent]:
    """A rack manufactured (or taken to an installed stage), then runs of installations with collisions."""
    road = road_to(draw(st.sampled_from([manufactured(), installed()])))
    if draw(st.booleans()):
        road = road[:0]  # a planned rack: every installation is refused
    events: list[RackEvent] = []
    at = T0
    for n, step in enumerate(road):
        at += timedelta(hours=1)
        events.append(step.cls(event_id=UUID(int=10_000 + n), occurred_at=at, source="factory-mes", seq=n + 1,
                               rack_id=RACK, **step.fields))
    fits = draw(st.lists(parts, min_size=1, max_size=20))
    ids = draw(st.lists(st.integers(2**64, 2**128 - 1), min_size=len(fits), max_size=len(fits), unique=True))  # (none a road id)
    for p, event_id in zip(fits, ids, strict=True):
        at += draw(st.sampled_from([timedelta(0), timedelta(seconds=1)]))
        events.append(ComponentInstalled(event_id=UUID(int=event_id), occurred_at=at, source="site-tool",
                                         seq=len(events) + 1, rack_id=draw(st.sampled_from([RACK, RACK, RACK, "other"]))
                                         if p.slot == "slot-9" else RACK, component=p))
    return events


def recorded(event: RackEvent) -> Any:
    """The light form the rebuild reads an installation or a firmware update in; other events as they are."""
    if isinstance(event, ComponentInstalled):
        return RecordedInstall(*Part(**event.component.model_dump()), event_key(event), event.rack_id)
    if isinstance(event, FirmwareUpdated):
        return RecordedFlash(event.slot, event.firmware_version, event_key(event), event.rack_id)
    return event


@SETTINGS
@for_all(install_histories())
def test_a_fold_with_runs_of_installations_equals_folding_each_and_keeps_every_refusal(
        events: list[RackEvent]) -> None:
    if any(e.rack_id != RACK for e in events):  # a caller error, raised whichever way it is folded
        for form in (events, [recorded(e) for e in events]):
            try:
                fold_history(RACK, form, CATALOG)  # type: ignore[arg-type]
            except WrongRack:
                pass
            else:
                raise AssertionError("an event of another rack was folded")
        return
    twin = RackTwin(RACK)
    refused = {}
    for event in sorted(events, key=event_key):
        rejection = twin.fold(event, CATALOG)
        if rejection is not None:
            refused[str(event.event_id)] = twin.rejected[-1]
    for form in (events, [recorded(e) for e in events]):
        replay = fold_history(RACK, form, CATALOG)  # type: ignore[arg-type]
        assert replay.twin.snapshot() == twin.snapshot()
        assert replay.twin == twin
        assert replay.refused == refused


@SETTINGS
@for_all(histories())
def test_any_history_folds_alike_with_its_installations_and_flashes_recorded(events: list[RackEvent]) -> None:
    expected = fold_history(RACK, events, CATALOG)
    light = fold_history(RACK, [recorded(e) for e in events], CATALOG)
    assert light.twin.snapshot() == expected.twin.snapshot()
    assert light.refused == expected.refused


def test_a_recorded_installation_reads_as_the_event_it_was_stored_from() -> None:
    event = ComponentInstalled(event_id=UUID(int=7), occurred_at=T0 + timedelta(microseconds=3), source="s", seq=4,
                               rack_id=RACK, component=part("tray-01", "compute-tray"))
    light = recorded(event)
    assert (light.type, light.rack_id, light.occurred_at, light.seq, light.event_id) == (
        event.type, event.rack_id, event.occurred_at, event.seq, event.event_id)
    assert event_key(light) == event_key(event)  # type: ignore[arg-type]
