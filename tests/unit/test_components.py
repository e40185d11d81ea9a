"""Bill of materials: parts and provenance, swaps and RMAs, onshore share, firmware drift."""

from __future__ import annotations

import pytest
from given import (
    FIRMWARE,
    bill,
    entered_service,
    firmware_updated,
    given,
    installed,
    manufactured,
    part,
    part_installed,
    part_replaced,
)

from twin.domain.components import (
    EMPTY_BOM,
    ONSHORE_KINDS,
    BillOfMaterials,
    Part,
    count_by_kind,
    firmware_drift,
    onshore_share,
)
from twin.errors import IllegalTransition


def test_a_rack_knows_each_part_with_its_provenance() -> None:
    fitted = part("psu-01", "psu", "AE123", country="US", supplier="Advanced Energy", value=1_450.0)
    twin = given(manufactured()).when(part_installed(fitted)).accepted()
    assert twin.components == {"psu-01": fitted}
    assert twin.bom.get("psu-01") == Part(**fitted.model_dump())


def test_a_full_bill_of_materials_unpacks_to_the_parts_fitted() -> None:
    parts = bill()
    twin = given(installed(), parts=parts).twin
    assert list(twin.components.values()) == parts
    assert count_by_kind(twin.bom) == {"compute-tray": 2, "switch-tray": 1, "power-shelf": 1, "psu": 2, "cdu": 1,
                                       "cabling": 1, "nic": 1}


def test_a_taken_slot_cannot_take_a_second_part() -> None:
    given(installed()).when(part_installed(part("psu-01", "psu", "OTHER"))).rejects(
        IllegalTransition, "slot psu-01 already holds psu SN-psu-01")


def test_the_same_serial_cannot_sit_in_two_slots() -> None:
    given(installed()).when(part_installed(part("psu-09", "psu", "SN-psu-01"))).rejects(
        IllegalTransition, "already fitted")


def test_a_swap_replaces_the_part_in_its_slot() -> None:
    new = part("tray-02", "compute-tray", "SN-NEW", country="MX")
    twin = given(entered_service()).when(part_replaced("SN-tray-02", new, cause="rma")).accepted()
    assert twin.components["tray-02"] == new and len(twin.components) == len(bill())


def test_a_swap_must_name_the_serial_that_sits_in_the_slot() -> None:
    given(entered_service()).when(part_replaced("SN-WRONG", part("tray-02", "compute-tray", "SN-NEW"))).rejects(
        IllegalTransition, "holds serial SN-tray-02, not SN-WRONG")


def test_a_swap_into_an_empty_slot_is_refused() -> None:
    given(entered_service()).when(part_replaced("SN-X", part("tray-99", "compute-tray", "SN-NEW"))).rejects(
        IllegalTransition, "slot tray-99 is empty")


def test_a_swap_cannot_change_the_kind_of_a_slot() -> None:
    given(entered_service()).when(part_replaced("SN-psu-01", part("psu-01", "nic", "SN-NEW"))).rejects(
        IllegalTransition, "cannot take a nic")


def test_flashing_firmware_changes_only_that_part() -> None:
    twin = given(entered_service()).when(firmware_updated("tray-01", "1.9.0")).accepted()
    assert twin.components["tray-01"].firmware_version == "1.9.0"
    assert twin.components["tray-02"].firmware_version == FIRMWARE["compute-tray"]


def test_flashing_an_empty_slot_is_refused() -> None:
    given(entered_service()).when(firmware_updated("tray-42", "1.9.0")).rejects(IllegalTransition, "tray-42 is empty")


def test_bills_with_the_same_parts_are_equal_however_they_got_there() -> None:
    a = EMPTY_BOM.installed(part("psu-01", "psu", "A1")).flashed("psu-01", "9.9").flashed("psu-01", "1.2.7")
    b = EMPTY_BOM.installed(part("psu-01", "psu", "A1"))
    assert a == b and hash(a) == hash(b) and a.to_json() == b.to_json()
    assert BillOfMaterials.from_parts(a.to_json()) == a


def test_a_bill_survives_many_distinct_specs() -> None:
    parts = [part(f"psu-{i:03d}", "psu", f"S{i}", value=float(i)) for i in range(300)]
    bom = BillOfMaterials.from_parts(parts)
    assert [p.unit_value_usd for p in bom] == [float(i) for i in range(300)]
    assert bom.replaced("S7", part("psu-007", "psu", "S7b", value=7.5)).get("psu-007").unit_value_usd == 7.5


# --- onshore share --------------------------------------------------------------------------

def test_onshore_share_counts_us_made_power_cooling_cabling_and_networking_parts() -> None:
    parts = [
        part("psu-01", "psu", country="US", value=1_000.0),
        part("psu-02", "psu", country="TH", value=1_000.0),
        part("cdu-01", "cdu", country="US", value=38_000.0),
        part("nic-01", "nic", country="TW", value=2_000.0),
    ]
    share = onshore_share(parts)
    assert (share.parts, share.onshore_parts) == (4, 2)
    assert share.by_count == pytest.approx(0.5)
    assert share.by_value == pytest.approx(39_000.0 / 42_000.0)


def test_compute_trays_do_not_count_toward_the_onshore_share() -> None:
    parts = [part("tray-01", "compute-tray", country="US"), part("psu-01", "psu", country="MX")]
    share = onshore_share(parts)
    assert (share.parts, share.onshore_parts, share.by_count) == (1, 0, 0.0)
    assert "compute-tray" not in ONSHORE_KINDS and {"psu", "cdu", "cabling", "nic", "switch-tray"} <= ONSHORE_KINDS


def test_a_rack_without_parts_in_scope_has_no_onshore_share() -> None:
    share = onshore_share([part("tray-01", "compute-tray")])
    assert share.by_count is None and share.by_value is None


def test_onshore_share_of_a_rack_follows_its_swaps() -> None:
    scenario = given(entered_service())  # every part US-made
    assert onshore_share(scenario.twin.bom).by_count == 1.0
    scenario.and_(part_replaced("SN-psu-01", part("psu-01", "psu", "SN-TH", country="TH")))
    share = onshore_share(scenario.twin.bom)
    in_scope = sum(n for kind, n in count_by_kind(scenario.twin.bom).items() if kind in ONSHORE_KINDS)
    assert share.parts == in_scope and share.onshore_parts == in_scope - 1


# --- firmware drift -------------------------------------------------------------------------

def test_firmware_drift_lists_the_parts_off_their_baseline() -> None:
    parts = [part("tray-01", "compute-tray", firmware="1.8.3"), part("tray-02", "compute-tray", firmware="1.8.2"),
             part("nic-01", "nic", firmware=None)]
    drift = firmware_drift(parts, {"compute-tray": "1.8.3", "nic": "28.41.1000"})
    assert [(d.slot, d.firmware_version, d.baseline) for d in drift] == [
        ("tray-02", "1.8.2", "1.8.3"), ("nic-01", None, "28.41.1000")]


def test_kinds_without_a_baseline_never_drift() -> None:
    assert firmware_drift([part("cable-01", "cabling", firmware="anything")], {"compute-tray": "1.8.3"}) == []


def test_flashing_to_the_baseline_ends_the_drift() -> None:
    old = part("tray-01", "compute-tray", "SN-tray-01", firmware="1.8.2")
    parts = [old] + [p for p in bill() if p.slot != "tray-01"]
    scenario = given(installed(), parts=parts)
    assert [d.slot for d in firmware_drift(scenario.twin.bom, FIRMWARE)] == ["tray-01"]
    assert scenario.twin.bom.firmware_by_kind()["compute-tray"] == {"1.8.2": 1, "1.8.3": 1}
    scenario.and_(firmware_updated("tray-01", FIRMWARE["compute-tray"]))
    assert firmware_drift(scenario.twin.bom, FIRMWARE) == []

