"""The fleet simulator: deterministic, shaped like our fleet, its faults and bad input accounted for.

The demo, the integration tests and the benchmarks trust the simulator to say which racks are
faulty and how many dead letters must appear; these tests hold it to that.
"""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from datetime import datetime, timedelta, timezone
from itertools import islice

import orjson
import pytest
from pydantic import ValidationError

from schemas import (
    ALL_TYPES,
    INTENT_TYPES,
    LIFECYCLE_TYPES,
    FacilityRegistered,
    GenerationIntent,
    IntentPublished,
    RackEvent,
    RackReading,
    RackShipped,
    Range,
    RolloutPlanPublished,
    TelemetryReported,
)
from twin.embedded.simulator import (
    OUR_COMPANY,
    QUARTERS,
    READINGS_PER_COLLECTOR,
    BadInput,
    Fault,
    FaultPlan,
    FleetSimulator,
    Message,
    Stage,
)

START = datetime(2027, 3, 1, tzinfo=timezone.utc)
ALLOWANCE = {"received": 14.0, "installed": 21.0}


def intent(slug: str, kilowatts: int) -> GenerationIntent:
    """A small design intent for one generation, as the catalog would publish it."""
    watts = kilowatts * 1000.0
    return GenerationIntent(
        generation=slug,
        revision=1,
        title=f"{slug}, {kilowatts} kW, liquid-cooled",
        power_budget_watts=Range(min=None, max=watts),
        cooling_capacity_watts=watts * 1.05,
        inlet_temperature_celsius=Range(min=18.0, max=30.0),
        coolant_supply_temperature_celsius=Range(min=20.0, max=40.0),
        coolant_flow_liters_per_minute_per_kilowatt=Range(min=1.2, max=2.0),
        hottest_accelerator_temperature_celsius=Range(min=None, max=85.0),
        required_components={"compute-tray": 18, "switch-tray": 9, "power-shelf": 4, "psu": 6, "cdu": 1,
                             "cooling-manifold": 1, "cabling": 2, "nic": 4},
        firmware_baseline={"compute-tray": "2.1.0", "nic": "28.41.1000", "cdu": "5.0.2"},
        required_tests=("factory-acceptance", "burn-in", "site-acceptance"),
        stage_allowance_days=ALLOWANCE,
    )


INTENTS = {i.generation: i for i in (intent("gen-a-130kw", 130), intent("gen-b-200kw", 200),
                                     intent("gen-c-600kw", 600))}
FAULTS = FaultPlan(hot_rack=2, coolant_flow_loss=2, leak=1, power_over_budget=2, stalled_install=3)


def simulator(seed: int = 11, racks: int = 120, **kwargs: object) -> FleetSimulator:
    return FleetSimulator(seed, racks, START, INTENTS, **kwargs)  # type: ignore[arg-type]


def run(sim: FleetSimulator, cycles: int = 3) -> list[Message]:
    """Everything a demo run would publish: reference, histories, then a few telemetry cycles."""
    out = sim.reference_messages() + list(sim.history_messages())
    for _, messages in islice(sim.cycles(interval_s=1.0), cycles):
        out.extend(messages)
    return out


def decode(message: Message) -> object:
    types = {"intent": INTENT_TYPES, "lifecycle": LIFECYCLE_TYPES, "telemetry": {"telemetry.reported": TelemetryReported}}
    data = orjson.loads(message.value)
    return types[message.role][data["type"]].model_validate(data)


@pytest.fixture(scope="module")
def fleet() -> FleetSimulator:
    return simulator(faults=FAULTS)


@pytest.fixture(scope="module")
def histories(fleet: FleetSimulator) -> dict[str, list[RackEvent]]:
    by_rack: dict[str, list[RackEvent]] = defaultdict(list)
    for message in fleet.history_messages():
        event = decode(message)
        assert isinstance(event, RackEvent)
        assert message.key == event.rack_id.encode()
        by_rack[event.rack_id].append(event)
    return by_rack


# --- determinism -------------------------------------------------------------------------------


def test_the_same_seed_and_start_give_byte_identical_messages() -> None:
    first, second = simulator(faults=FAULTS, malformed_share=0.1), simulator(faults=FAULTS, malformed_share=0.1)
    assert run(first) == run(second)
    assert first.injected_bad == second.injected_bad
    assert first.faulty_racks == second.faulty_racks


def test_another_seed_gives_different_messages() -> None:
    a, b = run(simulator(seed=1)), run(simulator(seed=2))
    assert [m.value for m in a] != [m.value for m in b]
    assert {m.value for m in a}.isdisjoint({m.value for m in b})


def test_asking_for_telemetry_first_does_not_change_the_histories() -> None:
    plain, eager = simulator(), simulator()
    eager.telemetry_messages(START)
    assert list(plain.history_messages()) == list(eager.history_messages())


def test_bad_input_is_added_beside_the_good_messages_never_instead_of_them() -> None:
    clean = run(simulator(faults=FAULTS))
    dirty = run(simulator(faults=FAULTS, malformed_share=0.2))
    assert [m for m in dirty if m.bad is None] == clean


# --- the fleet's shape -------------------------------------------------------------------------


def test_a_fleet_of_a_hundred_racks_has_own_facilities_and_two_partners() -> None:
    sim = simulator(racks=120)
    own = [f for f in sim.facilities if f.ownership == "own"]
    partners = {f.operator for f in sim.facilities if f.ownership == "partner"}
    assert own and all(f.operator == OUR_COMPANY for f in own)
    assert len(partners) >= 2 and OUR_COMPANY not in partners


def test_a_small_fleet_still_has_an_own_and_a_partner_facility() -> None:
    sim = simulator(racks=20)
    assert {f.ownership for f in sim.facilities} == {"own", "partner"}


def test_racks_of_every_generation_are_spread_across_facilities(fleet: FleetSimulator) -> None:
    facilities_of: dict[str, set[str]] = defaultdict(set)
    for rack in fleet.racks.values():
        facilities_of[rack.generation].add(rack.facility_id)
    assert set(facilities_of) == set(INTENTS)
    assert all(len(sites) >= 2 for sites in facilities_of.values())


def test_rack_ids_read_as_facility_hall_row_and_position(fleet: FleetSimulator) -> None:
    for rack in fleet.racks.values():
        assert re.fullmatch(r"[a-z]{3}\d-h\d+-r\d{2}-\d{2}", rack.rack_id)
        assert rack.rack_id == f"{rack.facility_id}-{rack.hall_id}-{rack.row_id}-{rack.position:02d}"


def test_every_rack_stands_in_a_registered_row_within_its_positions(fleet: FleetSimulator) -> None:
    rows = {(f.facility_id, h.hall_id, r.row_id): r for f in fleet.facilities for h in f.halls for r in h.rows}
    for rack in fleet.racks.values():
        row = rows[(rack.facility_id, rack.hall_id, rack.row_id)]
        assert 1 <= rack.position <= row.positions


def test_row_and_hall_capacities_are_sized_from_the_generations_placed_there(fleet: FleetSimulator) -> None:
    generation_of = {r.row_key: r.generation for r in fleet.racks.values()}
    for facility in fleet.facilities:
        for hall in facility.halls:
            assert hall.power_capacity_watts == sum(r.power_capacity_watts for r in hall.rows)
            for row in hall.rows:
                budget = INTENTS[generation_of[f"{facility.facility_id}/{hall.hall_id}/{row.row_id}"]]
                assert row.power_capacity_watts == row.positions * budget.power_budget_watts.max
                assert row.cooling_capacity_watts == row.positions * budget.cooling_capacity_watts


def test_reference_messages_register_facilities_then_intents_then_the_plan(fleet: FleetSimulator) -> None:
    events = [decode(m) for m in fleet.reference_messages()]
    kinds = [type(e) for e in events]
    n = len(fleet.facilities)
    assert kinds == [FacilityRegistered] * n + [IntentPublished] * len(INTENTS) + [RolloutPlanPublished]
    assert [e.intent for e in events if isinstance(e, IntentPublished)] == list(INTENTS.values())


def test_the_rollout_plan_covers_every_quarter_from_2026q3_through_2029q4(fleet: FleetSimulator) -> None:
    assert QUARTERS[0] == "2026Q3" and QUARTERS[-1] == "2029Q4" and len(QUARTERS) == 14
    series: dict[tuple[str, str], list[int]] = defaultdict(list)
    for target in fleet.plan_targets:
        series[(target.facility_id, target.generation)].append(target.racks_in_service)
    assert {(r.facility_id, r.generation) for r in fleet.racks.values()} == set(series)
    for counts in series.values():
        assert len(counts) == len(QUARTERS)
        assert counts == sorted(counts)


def test_most_racks_are_active_and_the_rollout_is_under_way(fleet: FleetSimulator) -> None:
    stages = Counter(r.stage for r in fleet.racks.values())
    assert stages[Stage.ACTIVE] > len(fleet.racks) / 2
    assert {Stage.IN_TRANSIT, Stage.RECEIVED, Stage.INSTALLED, Stage.DEGRADED, Stage.MAINTENANCE, Stage.RMA} <= set(stages)


# --- lifecycle histories -----------------------------------------------------------------------

NEXT = {  # event type -> stages it may follow, and the stage it leads to (None: stays)
    "rack.manufactured": ({None}, Stage.MANUFACTURED),
    "rack.shipped": ({Stage.MANUFACTURED}, Stage.IN_TRANSIT),
    "rack.received": ({Stage.IN_TRANSIT}, Stage.RECEIVED),
    "rack.installed": ({Stage.RECEIVED}, Stage.INSTALLED),
    "rack.commissioned": ({Stage.INSTALLED}, Stage.COMMISSIONED),
    "rack.entered_service": ({Stage.COMMISSIONED, Stage.DEGRADED, Stage.MAINTENANCE}, Stage.ACTIVE),
    "rack.degraded": ({Stage.ACTIVE}, Stage.DEGRADED),
    "rack.maintenance_started": ({Stage.ACTIVE, Stage.DEGRADED}, Stage.MAINTENANCE),
    "rack.rma_opened": ({Stage.ACTIVE, Stage.DEGRADED, Stage.MAINTENANCE}, Stage.RMA),
}


def replay(events: list[RackEvent]) -> Stage | None:
    """Fold a history with the legal order of twin.domain.lifecycle.TRANSITIONS; fail on the first illegal step."""
    stage: Stage | None = None
    passed: set[str] = set()
    for event in events:
        if event.type in NEXT:
            allowed, to = NEXT[event.type]
            assert stage in allowed, f"{event.rack_id}: {event.type} from {stage}"
            if event.type == "rack.shipped":
                assert "factory-acceptance" in passed, f"{event.rack_id} shipped before factory acceptance"
            if event.type == "rack.entered_service":
                required = set(INTENTS[events[0].generation].required_tests)  # type: ignore[attr-defined]
                assert required <= passed, f"{event.rack_id} entered service without {required - passed}"
            stage = to
        else:
            assert stage is not None, f"{event.rack_id}: {event.type} before rack.manufactured"
            if event.type == "rack.tested" and event.passed:  # type: ignore[attr-defined]
                passed.add(event.test)  # type: ignore[attr-defined]
    return stage


def test_every_rack_has_a_history_that_follows_the_legal_order(
    fleet: FleetSimulator, histories: dict[str, list[RackEvent]]
) -> None:
    assert set(histories) == set(fleet.racks)
    for rack_id, events in histories.items():
        assert replay(events) == fleet.racks[rack_id].stage


def test_histories_keep_time_order_and_end_before_start(histories: dict[str, list[RackEvent]]) -> None:
    for events in histories.values():
        times = [e.occurred_at for e in events]
        assert times == sorted(times) and len(set(times)) == len(times)
        assert times[-1] < START - timedelta(hours=1)
        assert all(t.utcoffset() == timedelta(0) for t in times)


def test_each_source_numbers_its_events_in_order_and_event_ids_are_unique(fleet: FleetSimulator) -> None:
    last: dict[str, int] = {}
    ids = set()
    for message in run(fleet, cycles=2):
        event = decode(message)
        assert event.seq > last.get(event.source, 0), event.source  # type: ignore[attr-defined]
        last[event.source] = event.seq  # type: ignore[attr-defined]
        ids.add(event.event_id)  # type: ignore[attr-defined]
    assert len(ids) == sum(1 for _ in run(simulator(faults=FAULTS), cycles=2))


def test_a_racks_bill_of_materials_is_what_its_generation_requires(
    fleet: FleetSimulator, histories: dict[str, list[RackEvent]]
) -> None:
    countries: Counter[str] = Counter()
    for rack_id, events in histories.items():
        parts = [e.component for e in events if e.type == "component.installed"]  # type: ignore[attr-defined]
        required = INTENTS[fleet.racks[rack_id].generation].required_components
        assert Counter(p.kind for p in parts) == Counter(required)
        assert len({p.slot for p in parts}) == len(parts) <= 48
        assert all(p.serial_number and p.supplier and p.unit_value_usd > 0 for p in parts)
        countries.update(p.country_of_manufacture for p in parts)
    assert countries["US"] and sum(n for c, n in countries.items() if c != "US") > countries["US"] / 4


def test_serial_numbers_are_unique_across_the_fleet(histories: dict[str, list[RackEvent]]) -> None:
    serials = [e.component.serial_number for events in histories.values() for e in events  # type: ignore[attr-defined]
               if e.type in ("component.installed", "component.replaced")]
    assert len(serials) == len(set(serials))


def test_racks_in_service_end_on_their_generations_firmware_baseline(
    fleet: FleetSimulator, histories: dict[str, list[RackEvent]]
) -> None:
    for rack_id, events in histories.items():
        baseline = INTENTS[fleet.racks[rack_id].generation].firmware_baseline
        firmware: dict[str, tuple[str, str | None]] = {}
        for e in events:
            if e.type in ("component.installed", "component.replaced"):
                firmware[e.component.slot] = (e.component.kind, e.component.firmware_version)  # type: ignore[attr-defined]
            elif e.type == "component.firmware_updated":
                firmware[e.slot] = (firmware[e.slot][0], e.firmware_version)  # type: ignore[attr-defined]
        assert all(version == baseline[kind] for kind, version in firmware.values() if kind in baseline), rack_id


def test_stalled_racks_have_sat_far_beyond_the_stage_allowance_and_no_other_rack_has(
    fleet: FleetSimulator, histories: dict[str, list[RackEvent]]
) -> None:
    stalled = set(fleet.faulty_racks[Fault.STALLED_INSTALL])
    assert len(stalled) == 3
    for rack_id, events in histories.items():
        stage = fleet.racks[rack_id].stage
        if stage not in (Stage.RECEIVED, Stage.INSTALLED):
            assert rack_id not in stalled
            continue
        days = (START - events[-1].occurred_at) / timedelta(days=1)
        if rack_id in stalled:
            assert days >= 2 * ALLOWANCE[stage]
        else:
            assert days <= ALLOWANCE[stage] / 2


# --- telemetry ---------------------------------------------------------------------------------


def test_every_powered_rack_appears_in_exactly_one_report_per_cycle(fleet: FleetSimulator) -> None:
    powered = {r.rack_id for r in fleet.racks.values() if r.powered}
    assert powered and powered != set(fleet.racks)
    for _, messages in islice(fleet.cycles(interval_s=10.0), 3):
        seen = Counter(reading.rack_id for m in messages for reading in decode(m).readings)  # type: ignore[attr-defined]
        assert set(seen) == powered and set(seen.values()) == {1}


def test_reports_in_the_row_shape_are_keyed_by_the_row_of_their_readings() -> None:
    fleet = FleetSimulator(3, 300, START, INTENTS, report_shape="row")
    messages = fleet.telemetry_messages(START)
    assert len({m.key for m in messages}) == len(messages)
    for message in messages:
        report = decode(message)
        assert isinstance(report, TelemetryReported)
        for reading in report.readings:
            assert fleet.racks[reading.rack_id].row_key.encode() == message.key
            assert reading.occurred_at == report.occurred_at == START
        assert report.rack_id == (report.readings[0].rack_id if len(report.readings) == 1 else None)


def test_collector_reports_carry_up_to_fifty_readings_of_one_hall_under_a_fixed_key() -> None:
    fleet = FleetSimulator(3, 3_000, START, INTENTS)
    first = fleet.telemetry_messages(START)
    again = fleet.telemetry_messages(START + timedelta(seconds=1))
    assert [m.key for m in first] == [m.key for m in again]
    sizes = []
    for message in first:
        report = decode(message)
        assert isinstance(report, TelemetryReported)
        sizes.append(len(report.readings))
        halls = {fleet.racks[r.rack_id].row_key.rsplit("/", 1)[0] for r in report.readings}
        assert halls == {message.key.decode().rsplit("/", 1)[0]}
    assert max(sizes) == READINGS_PER_COLLECTOR
    assert sum(sizes) / len(sizes) > 25  # most reports are full: the shape docs/architecture.md plans for
    row_shaped = FleetSimulator(3, 3_000, START, INTENTS, report_shape="row").telemetry_messages(START)
    assert len(row_shaped) > 3 * len(first)


def test_cycles_step_by_the_interval_and_readings_walk_a_little(fleet: FleetSimulator) -> None:
    times, powers = [], []
    for t, messages in fleet.cycles(interval_s=0.5, first=START, count=4):
        times.append(t)
        powers.append(decode(messages[0]).readings[0].power_watts)  # type: ignore[attr-defined]
    assert times == [START + timedelta(seconds=0.5 * i) for i in range(4)]
    assert len(set(powers)) > 1
    assert max(powers) - min(powers) < 0.2 * INTENTS["gen-c-600kw"].power_budget_watts.max


def out_of_envelope(reading: RackReading, spec: GenerationIntent) -> set[Fault]:
    """Which planted faults a reading shows, judged against its generation's intent."""
    shown = set()
    if (not spec.inlet_temperature_celsius.contains(reading.inlet_temperature_celsius)
            or not spec.hottest_accelerator_temperature_celsius.contains(reading.hottest_accelerator_temperature_celsius)):
        shown.add(Fault.HOT_RACK)
    per_kw = reading.coolant_flow_liters_per_minute / (reading.power_watts / 1000)
    if not spec.coolant_flow_liters_per_minute_per_kilowatt.contains(per_kw):
        shown.add(Fault.COOLANT_FLOW_LOSS)
    if reading.leak_detected:
        shown.add(Fault.LEAK)
    if not spec.power_budget_watts.contains(reading.power_watts):
        shown.add(Fault.POWER_OVER_BUDGET)
    if not spec.coolant_supply_temperature_celsius.contains(reading.coolant_supply_temperature_celsius):
        shown.add("coolant-supply")  # type: ignore[arg-type]  # never planted: must never show
    return shown


def test_each_fault_puts_exactly_its_racks_out_of_envelope(fleet: FleetSimulator) -> None:
    planted = fleet.faulty_racks
    assert [len(planted[f]) for f in Fault] == [2, 2, 1, 2, 3]
    for _, messages in islice(fleet.cycles(interval_s=1.0), 20):
        shown: dict[Fault, set[str]] = defaultdict(set)
        for message in messages:
            for reading in decode(message).readings:  # type: ignore[attr-defined]
                for fault in out_of_envelope(reading, INTENTS[fleet.racks[reading.rack_id].generation]):
                    shown[fault].add(reading.rack_id)
        assert dict(shown) == {f: set(planted[f]) for f in Fault if f is not Fault.STALLED_INSTALL}


def test_coolant_flow_loss_raises_the_return_temperature(fleet: FleetSimulator) -> None:
    rises: dict[bool, list[float]] = defaultdict(list)
    lossy = set(fleet.faulty_racks[Fault.COOLANT_FLOW_LOSS])
    for report in fleet.telemetry_cycle(START):
        for r in report.readings:
            rises[r.rack_id in lossy].append(r.coolant_return_temperature_celsius - r.coolant_supply_temperature_celsius)
    assert min(rises[True]) > max(rises[False])


def test_fault_plan_shares_give_at_least_one_rack_and_counts_are_taken_as_given() -> None:
    counts = FaultPlan(hot_rack=0.001, leak=3, coolant_flow_loss=0.1).counts(200)
    assert counts[Fault.HOT_RACK] == 1 and counts[Fault.LEAK] == 3 and counts[Fault.COOLANT_FLOW_LOSS] == 20
    assert counts[Fault.STALLED_INSTALL] == 0


def test_a_fault_plan_the_fleet_cannot_hold_is_refused() -> None:
    with pytest.raises(ValueError, match="hot-rack"):
        simulator(racks=10, faults=FaultPlan(hot_rack=50))


def test_naive_timestamps_are_refused() -> None:
    with pytest.raises(ValueError, match="UTC offset"):
        FleetSimulator(1, 10, datetime(2027, 1, 1), INTENTS)


# --- bad input ---------------------------------------------------------------------------------


def reason(message: Message, sim: FleetSimulator, on_site: set[str]) -> str:
    """Why the twin must refuse this message, found with the contracts alone."""
    try:
        data = orjson.loads(message.value)
    except orjson.JSONDecodeError:
        return BadInput.MALFORMED_JSON
    model = ALL_TYPES.get(data["type"])
    if model is None:
        return BadInput.UNKNOWN_TYPE
    if data["schema_version"] != model.SCHEMA_VERSION:
        return BadInput.UNKNOWN_SCHEMA_VERSION
    try:  # a report's readings one by one, as the decoder takes them
        for reading in data.get("readings", ()):
            RackReading.model_validate(reading)
        event = model.model_validate(data)
    except ValidationError as err:
        kinds = {e["type"] for e in err.errors()}
        if "missing" in kinds:
            return BadInput.MISSING_FIELD
        assert kinds <= {"greater_than_equal", "less_than_equal"}, kinds
        return BadInput.OUT_OF_PHYSICAL_RANGE
    if isinstance(event, TelemetryReported):
        assert all(r.rack_id not in sim.racks for r in event.readings)
        return BadInput.UNKNOWN_RACK
    assert isinstance(event, RackShipped) and event.rack_id in on_site
    return BadInput.ILLEGAL_TRANSITION


def test_a_malformed_share_produces_every_kind_of_bad_input_and_counts_each_one() -> None:
    sim = simulator(racks=60, faults=FAULTS, malformed_share=0.05)
    messages = run(sim, cycles=30)
    bad = [m for m in messages if m.bad is not None]
    assert Counter(m.bad for m in bad) == sim.injected_bad
    assert set(sim.injected_bad) == set(BadInput)
    assert 0.02 < len(bad) / (len(messages) - len(bad)) < 0.08
    on_site = {r.rack_id for r in sim.racks.values() if r.powered}
    for message in bad:
        assert reason(message, sim, on_site) == message.bad
        assert message.role in ("lifecycle", "telemetry")


def test_each_bad_message_is_one_refusal_never_a_report_of_many() -> None:
    sim = simulator(racks=60, malformed_share=0.3)
    for message in run(sim, cycles=5):
        if message.bad in (BadInput.OUT_OF_PHYSICAL_RANGE, BadInput.UNKNOWN_RACK, BadInput.MISSING_FIELD) \
                and message.role == "telemetry":
            assert len(orjson.loads(message.value)["readings"]) == 1


def test_an_illegal_transition_ships_a_rack_after_its_install_and_before_start() -> None:
    sim = simulator(racks=60, malformed_share=0.3)
    installed_at = {}
    for message in sim.history_messages():
        if message.bad == BadInput.ILLEGAL_TRANSITION:
            shipped = decode(message)
            assert shipped.rack_id in installed_at  # type: ignore[attr-defined]
            assert installed_at[shipped.rack_id] < shipped.occurred_at < START  # type: ignore[attr-defined]
        elif message.bad is None:
            event = decode(message)
            if event.type == "rack.installed":  # type: ignore[attr-defined]
                installed_at[event.rack_id] = event.occurred_at  # type: ignore[attr-defined]
    assert sim.injected_bad[BadInput.ILLEGAL_TRANSITION] > 0


def test_the_decoder_refuses_each_bad_message_with_the_reason_it_was_made_for() -> None:
    from twin.domain.decoding import decode_event, decode_report
    from twin.errors import RejectedEvent

    sim = simulator(racks=60, malformed_share=0.1)
    outcome: Counter[tuple[str, str]] = Counter()
    for message in run(sim, cycles=10):
        if message.bad is None:
            continue
        try:
            if message.role == "telemetry":
                decoded = decode_report(message.value)
                got = decoded.bad[0].error.reason if decoded.bad else "decoded"
                assert decoded.report is None or not decoded.bad  # one refusal, never a partial report
                assert len(decoded.bad) <= 1
            else:
                decode_event(message.value, LIFECYCLE_TYPES)
                got = "decoded"
        except RejectedEvent as err:
            got = err.reason
        outcome[(message.bad, got)] += 1
    domain = {BadInput.UNKNOWN_RACK, BadInput.ILLEGAL_TRANSITION}  # well-formed: the twin refuses them
    assert {bad for bad, _ in outcome} == set(BadInput)
    assert all(got == ("decoded" if bad in domain else bad) for bad, got in outcome)
