"""A deterministic fleet that talks like ours: facilities, plan, intent, rack histories, telemetry.

Why a simulator: the demo, the integration tests and the benchmarks need a fleet that behaves
like the real one (own and partner facilities, several generations rolling out side by side,
racks strung along the pipeline from factory to service, a few faulty racks, some bad input)
without a single real BMC. Why pure: the same seed and start give the same bytes, so a test
can name in advance the racks the twin must catch and the dead letters it must record, and a
benchmark can be run again. There is no clock, no I/O and no global randomness here; chance
comes from `random.Random` instances seeded from `seed`, one per stream (layout, each rack's
history, telemetry, bad input), so asking for telemetry first does not change a history.

What it emits is what producers put on Kafka: `Message(role, key, value)`, value being the
JSON of a `schemas` event (or, for bad input, crafted bytes). Keys keep order where order
matters: a rack's lifecycle events are keyed by rack id, a collector's telemetry report by
the collector (`dfw1/h1/c01`, or the row `dfw1/h1/r03` in the `row` shape), everything on the one-partition intent topic by what it describes.

Bad input is added beside the good messages, never in place of them: dropping a good fact
would change the fleet the twin should end with (a lost `rack.manufactured` would turn a whole
history into rejections), and then dead letters could not be reconciled one for one. Each bad
message is built to be refused exactly once, with the reason named in `BadInput`.
"""

from __future__ import annotations

import math
import random
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from enum import StrEnum
from typing import Any, Literal
from uuid import UUID

import orjson

from schemas import (
    Component,
    ComponentInstalled,
    ComponentReplaced,
    Facility,
    FacilityRegistered,
    FirmwareUpdated,
    GenerationIntent,
    Hall,
    IntentPublished,
    RackCommissioned,
    RackDegraded,
    RackEnteredService,
    RackEvent,
    RackInstalled,
    RackMaintenanceStarted,
    RackManufactured,
    RackReading,
    RackReceived,
    RackRmaOpened,
    RackShipped,
    RackTested,
    Range,
    RolloutPlanPublished,
    RolloutTarget,
    Row,
    TelemetryReported,
)
from twin.messages import Message, Role  # re-exported: producers and tests take Message from here too
from twin.domain.lifecycle import POWERED_STAGES  # racks report telemetry exactly in the domain's powered stages

__all__ = [
    "OUR_COMPANY", "POWERED_STAGES", "QUARTERS", "READINGS_PER_COLLECTOR", "BadInput", "Fault", "FaultPlan", "FleetSimulator", "Message",
    "ReportShape", "Role", "SimulatedRack", "Stage",
]

OUR_COMPANY = "Fleet Twin Inc."
"""Operator name of the facilities we own."""

QUARTERS: tuple[str, ...] = tuple(f"{y}Q{q}" for y in range(2026, 2030) for q in range(1, 5))[2:]
"""Quarters the rollout plan covers: 2026Q3 through 2029Q4."""

ReportShape = Literal["collector", "row"]
"""How telemetry is batched into reports. `collector` (the default) is what a facility collector
sends: one report per poll cycle for each collector of a hall, about `READINGS_PER_COLLECTOR`
readings each. `row` is the shape of earlier waves: one report per row (about 7 readings)."""

READINGS_PER_COLLECTOR = 50
"""Racks one simulated hall collector polls: a hall's powered racks are split into collectors of
at most this many, in rack order, so a rack's readings always travel under one key."""


class Stage(StrEnum):
    """Where a rack stands in its life at the simulator's start (slugs as in `stage_allowance_days`)."""

    MANUFACTURED = "manufactured"
    IN_TRANSIT = "in-transit"
    RECEIVED = "received"
    INSTALLED = "installed"
    COMMISSIONED = "commissioned"
    ACTIVE = "active"
    DEGRADED = "degraded"
    MAINTENANCE = "maintenance"
    RMA = "rma"




class Fault(StrEnum):
    """Faults the simulator can plant; each is out of a generation's intent in one obvious way."""

    HOT_RACK = "hot-rack"                    # inlet air and hottest accelerator above their ranges
    COOLANT_FLOW_LOSS = "coolant-flow-loss"  # flow per kW below its range; return temperature up
    LEAK = "leak"                            # leak_detected is true
    POWER_OVER_BUDGET = "power-over-budget"  # input power above the power budget's max
    STALLED_INSTALL = "stalled-install"      # sits in received or installed far beyond the stage allowance


class BadInput(StrEnum):
    """Bad-input kinds of docs/producer-contract.md ("Dead-letter reasons"); each value is the dead-letter reason it must get."""

    MALFORMED_JSON = "malformed-json"
    UNKNOWN_TYPE = "unknown-type"
    UNKNOWN_SCHEMA_VERSION = "unknown-schema-version"
    MISSING_FIELD = "missing-field"
    OUT_OF_PHYSICAL_RANGE = "out-of-physical-range"
    UNKNOWN_RACK = "unknown-rack"
    ILLEGAL_TRANSITION = "illegal-transition"


@dataclass(frozen=True, slots=True)
class FaultPlan:
    """How many racks get each fault: an `int` is a count, a `float` a share of the fleet.

    A positive share gives at least one rack. A rack gets at most one fault, so each fault's
    racks can be checked on their own.
    """

    hot_rack: int | float = 0
    coolant_flow_loss: int | float = 0
    leak: int | float = 0
    power_over_budget: int | float = 0
    stalled_install: int | float = 0

    @classmethod
    def typical(cls) -> FaultPlan:
        """Half a percent of the fleet for each fault (at least one rack each): the demo's plan."""
        return cls(0.005, 0.005, 0.005, 0.005, 0.005)

    def counts(self, racks: int) -> dict[Fault, int]:
        """Racks per fault for a fleet of `racks`."""
        out: dict[Fault, int] = {}
        for fault in Fault:
            value = getattr(self, fault.value.replace("-", "_"))
            if isinstance(value, float):
                if not 0.0 <= value <= 1.0:
                    raise ValueError(f"fault share {fault}={value} must lie in [0, 1]")
                out[fault] = max(1, round(value * racks)) if value > 0 else 0
            else:
                if value < 0:
                    raise ValueError(f"fault count {fault}={value} must not be negative")
                out[fault] = int(value)
        return out


@dataclass(frozen=True, slots=True)
class SimulatedRack:
    """A rack of the simulated fleet: where it stands (or will), its generation, stage and fault."""

    rack_id: str
    index: int
    generation: str
    facility_id: str
    hall_id: str
    row_id: str
    position: int
    stage: Stage
    fault: Fault | None = None

    @property
    def row_key(self) -> str:
        """The row as a Kafka key, `facility/hall/row`: every reading of the rack goes to one partition."""
        return f"{self.facility_id}/{self.hall_id}/{self.row_id}"

    @property
    def powered(self) -> bool:
        return self.stage in POWERED_STAGES


# --- the fleet's places ---------------------------------------------------------------------

_SITES: tuple[tuple[str, str, str | None, str], ...] = (
    # facility_id, name, partner operator (None: ours), region
    ("dfw1", "Dallas 1", None, "us-central"),
    ("hil1", "Hillsboro 1", "Cascadia Colocation", "us-west"),
    ("ord2", "Chicago 2", "Lakeshore Data Centers", "us-central"),
    ("phx1", "Phoenix 1", None, "us-west"),
    ("ash3", "Ashburn 3", "Potomac Digital Infrastructure", "us-east"),
    ("atl1", "Atlanta 1", None, "us-east"),
    ("osl1", "Oslo 1", "Nordfjord Compute AS", "eu-north"),
    ("cmh1", "Columbus 1", None, "us-east"),
    ("pdx2", "Portland 2", "Cascadia Colocation", "us-west"),
)
_ROWS_PER_HALL = 6
_ROW_FILL = 0.8  # simulated racks fill about this share of a row; the rest await the rollout

_STAGE_SHARES: tuple[tuple[Stage, float], ...] = (
    (Stage.MANUFACTURED, 0.02), (Stage.IN_TRANSIT, 0.05), (Stage.RECEIVED, 0.04), (Stage.INSTALLED, 0.06),
    (Stage.COMMISSIONED, 0.04), (Stage.DEGRADED, 0.03), (Stage.MAINTENANCE, 0.03), (Stage.RMA, 0.03),
)  # the rest are active

_ILLEGAL_SHIP_FROM = frozenset(POWERED_STAGES)
"""Stages from which `rack.shipped` is certainly illegal (already on site, not on its way back)."""

# --- lifecycle timing (days) -------------------------------------------------------------------

_DEFAULT_ALLOWANCE_DAYS: dict[str, float] = {
    "manufactured": 30, "in-transit": 30, "received": 14, "installed": 21, "commissioned": 7,
    "degraded": 30, "maintenance": 14, "rma": 60,
}
_DWELL_DAYS: dict[Stage, tuple[float, float]] = {
    Stage.MANUFACTURED: (0.1, 2), Stage.IN_TRANSIT: (0.2, 4), Stage.RECEIVED: (0.1, 5), Stage.INSTALLED: (0.2, 7),
    Stage.COMMISSIONED: (0.1, 2), Stage.ACTIVE: (1, 120), Stage.DEGRADED: (0.1, 10), Stage.MAINTENANCE: (0.1, 3),
    Stage.RMA: (0.5, 20),
}
_STALL_FACTOR = (2.0, 3.0)  # a stalled rack has sat 2-3 times its stage allowance
_REFERENCE_LEAD = timedelta(days=400)  # facilities, intents and plan are published this long before start

_FACTORIES = ("Fremont CA", "Austin TX", "Houston TX", "San Jose CA", "Columbus OH", "Chandler AZ")
_CARRIERS = ("Crane Worldwide Logistics", "UPS Supply Chain Solutions", "DHL Global Forwarding", "Pilot Freight")
_DEGRADED_REASONS = (
    "2 of 18 compute trays fenced after uncorrectable ECC errors",
    "one NVLink switch tray offline; fabric at reduced bandwidth",
    "one power shelf down; rack capped at 75 % power",
    "CDU pump B failed; running on pump A",
)
_MAINTENANCE_REASONS = (
    "planned firmware rollout", "quarterly coolant filter change", "compute tray swap", "PDU breaker inspection",
)
_RMA_REASONS = (
    "repeated accelerator Xid errors after tray swap", "manifold quick-disconnect weeping", "backplane fault",
)

# --- bill of materials -----------------------------------------------------------------------

_DEFAULT_BOM: dict[str, int] = {
    "compute-tray": 18, "switch-tray": 9, "power-shelf": 4, "psu": 4, "cdu": 1, "cooling-manifold": 1,
    "cabling": 2, "nic": 2,
}
_SLOT_PREFIX = {
    "compute-tray": "tray", "switch-tray": "switch", "power-shelf": "pshelf", "psu": "psu", "cdu": "cdu",
    "cooling-manifold": "manifold", "cabling": "cable", "nic": "nic",
}
_PART_PREFIX = {
    "compute-tray": "CT", "switch-tray": "ST", "power-shelf": "PS", "psu": "PSU", "cdu": "CDU",
    "cooling-manifold": "MF", "cabling": "CBL", "nic": "NIC",
}
_SUPPLIERS: dict[str, tuple[tuple[str, str, str], ...]] = {
    # kind -> (supplier, ISO country of manufacture, serial prefix): a realistic US / non-US mix
    "compute-tray": (("Foxconn Industrial Internet", "MX", "FX"), ("Wistron", "TW", "WI"),
                     ("Quanta Cloud Technology", "US", "QC")),
    "switch-tray": (("Celestica", "TH", "CL"), ("Accton Technology", "TW", "AC"), ("Jabil", "US", "JB")),
    "power-shelf": (("Delta Electronics", "TH", "DE"), ("Vertiv", "US", "VT"), ("Lite-On Technology", "TW", "LO")),
    "psu": (("Delta Electronics", "TH", "DE"), ("Murata Power Solutions", "JP", "MU"), ("Advanced Energy", "US", "AE")),
    "cdu": (("Vertiv", "US", "VT"), ("CoolIT Systems", "CA", "CI"), ("Motivair", "US", "MV")),
    "cooling-manifold": (("nVent", "US", "NV"), ("Boyd", "MX", "BY"), ("Parker Hannifin", "US", "PH")),
    "cabling": (("Amphenol", "US", "AM"), ("Molex", "MY", "MX"), ("Luxshare Precision", "CN", "LX")),
    "nic": (("NVIDIA", "TW", "NV"), ("Broadcom", "SG", "BC"), ("Intel", "MY", "IN")),
}
_UNIT_VALUE_USD = {
    "compute-tray": 165_000.0, "switch-tray": 42_000.0, "power-shelf": 9_500.0, "psu": 1_450.0, "cdu": 38_000.0,
    "cooling-manifold": 6_800.0, "cabling": 18_500.0, "nic": 1_900.0,
}
_DEFAULT_FIRMWARE = {
    "compute-tray": "1.8.3", "switch-tray": "2.4.1", "power-shelf": "3.1.0", "psu": "1.2.7", "cdu": "5.0.2",
    "nic": "28.41.1000",
}
_LINKS_PER = {"compute-tray": 8, "switch-tray": 4, "nic": 2}  # fabric and front-end links expected up

# --- telemetry ---------------------------------------------------------------------------------

_COOLANT_HEAT_J_PER_LITRE_K = 4_000.0  # water-glycol, ~1 kg/L
_LOAD: dict[Stage, tuple[float, float]] = {  # share of the power budget's max drawn, by stage
    Stage.ACTIVE: (0.45, 0.85), Stage.DEGRADED: (0.30, 0.55), Stage.COMMISSIONED: (0.15, 0.40),
    Stage.INSTALLED: (0.05, 0.20), Stage.MAINTENANCE: (0.03, 0.12),
}
_WARMTH: dict[Stage, tuple[float, float]] = {  # part of the accelerator and fan bands used, by stage
    Stage.ACTIVE: (0.2, 0.9), Stage.DEGRADED: (0.1, 0.6), Stage.COMMISSIONED: (0.05, 0.5),
    Stage.INSTALLED: (0.0, 0.3), Stage.MAINTENANCE: (0.0, 0.3),
}
_BAD_SOURCE = "sim-bad-input"
"""Source of crafted bad input: its own seq counter, so a bad event never collides with a good one."""


def _utc(ts: datetime) -> datetime:
    if ts.tzinfo is None or ts.utcoffset() is None:
        raise ValueError(f"timestamp {ts!r} has no UTC offset; the simulator needs aware datetimes")
    return ts.astimezone(timezone.utc)


def _uuid(rng: random.Random) -> UUID:
    return UUID(int=rng.getrandbits(128), version=4)


def _iso(ts: datetime) -> str:
    return ts.isoformat().replace("+00:00", "Z")


def _apportion(total: int, weights: Sequence[float], minimum: int = 0) -> list[int]:
    """Split `total` by `weights` (largest remainder), giving each at least `minimum` when it can."""
    n = len(weights)
    floor_each = minimum if total >= minimum * n else 0
    rest = total - floor_each * n
    whole = sum(weights)
    exact = [rest * w / whole for w in weights]
    counts = [math.floor(x) for x in exact]
    by_remainder = sorted(range(n), key=lambda i: (counts[i] - exact[i], i))
    for i in by_remainder[: rest - sum(counts)]:
        counts[i] += 1
    return [c + floor_each for c in counts]


def _perm(n: int, modulus: int, salt: int) -> int:
    """A bijection on [0, modulus) that looks random: unique, opaque serial numbers without a registry."""
    return (n * 3_486_784_401 + salt) % modulus  # 3**20 is coprime with every power of ten


def _older(version: str) -> str | None:
    """The version one patch before `version`, when it is dotted numbers; else None."""
    parts = version.split(".")
    if not all(p.isdigit() for p in parts):
        return None
    for i in range(len(parts) - 1, -1, -1):
        if int(parts[i]) > 0:
            parts[i] = str(int(parts[i]) - 1)
            return ".".join(parts)
    return None


def _band(r: Range, lo: float, hi: float) -> tuple[float, float]:
    """The plausible band [lo, hi], kept safely inside the intent's range `r`."""
    margin = 0.05 * (hi - lo)
    a = max(lo, r.min + margin) if r.min is not None else lo
    b = min(hi, r.max - margin) if r.max is not None else hi
    if a <= b:
        return a, b
    if r.min is not None and r.max is not None:  # the intent's range lies outside the usual band
        mid, half = (r.min + r.max) / 2, (r.max - r.min) / 4
        return mid - half, mid + half
    if r.min is not None:
        return r.min + margin, r.min + margin + (hi - lo)
    assert r.max is not None
    return r.max - margin - (hi - lo), r.max - margin


def _rack_watts(intent: GenerationIntent) -> float:
    """The power a rack is sized for: the budget's max, else the cooling capacity."""
    return intent.power_budget_watts.max or intent.cooling_capacity_watts


@dataclass(slots=True)
class _Probe:
    """One powered rack as its collector sees it: bands it moves in and its random-walk state."""

    rack_id: str
    scale_watts: float
    load: tuple[float, float]
    inlet: tuple[float, float]
    supply: tuple[float, float]
    flow_per_kw: tuple[float, float]
    accelerator: tuple[float, float]
    fan: tuple[float, float]
    pressure: tuple[float, float]
    links_up: int
    leak: bool
    state: list[float] = field(default_factory=list)
    bands: tuple[tuple[float, float], ...] = ()

    def __post_init__(self) -> None:
        self.bands = (self.load, self.inlet, self.supply, self.flow_per_kw, self.accelerator, self.fan, self.pressure)

    def read(self, at: datetime, rng: random.Random) -> RackReading:
        """Take one reading: every quantity steps a little, staying inside its band."""
        r = rng.random
        state = self.state
        if not state:
            state.extend(lo + (hi - lo) * r() for lo, hi in self.bands)
        for i, (lo, hi) in enumerate(self.bands):
            x = state[i] + (r() - 0.5) * 0.1 * (hi - lo)
            state[i] = lo if x < lo else hi if x > hi else x
        load, inlet, supply, per_kw, accelerator, fan, pressure = state
        power = self.scale_watts * load
        flow = power / 1000.0 * per_kw
        rise = power * 60.0 / (flow * _COOLANT_HEAT_J_PER_LITRE_K)
        return RackReading(
            rack_id=self.rack_id,
            occurred_at=at,
            power_watts=round(power, 1),
            inlet_temperature_celsius=round(inlet, 2),
            outlet_temperature_celsius=round(inlet + 4.0 + 8.0 * min(load, 1.0), 2),
            coolant_supply_temperature_celsius=round(supply, 2),
            coolant_return_temperature_celsius=round(min(supply + rise, 99.0), 2),
            coolant_flow_liters_per_minute=round(flow, 2),
            coolant_differential_pressure_kilopascals=round(pressure, 1),
            leak_detected=self.leak,
            hottest_accelerator_temperature_celsius=round(accelerator, 2),
            fan_speed_percent=round(fan, 1),
            network_links_up=self.links_up,
            network_links_down=0,
        )


class FleetSimulator:
    """A deterministic fleet: reference data, lifecycle histories and telemetry, as Kafka messages.

    Call order of a run: `reference_messages()`, `history_messages()`, then `telemetry_messages(t)`
    (or `cycles()`) for as long as wanted. Reference data and good history are a function of
    the constructor's arguments (asking again replays the same bytes); telemetry and bad input
    are streams that move on with every call.
    """

    def __init__(
        self,
        seed: int,
        racks: int,
        start: datetime,
        intents: Mapping[str, GenerationIntent],
        *,
        faults: FaultPlan | None = None,
        malformed_share: float = 0.0,
        report_shape: ReportShape = "collector",
    ) -> None:
        if racks < 1:
            raise ValueError(f"a fleet needs at least one rack, got {racks}")
        if not intents:
            raise ValueError("a fleet needs at least one generation intent")
        for slug, intent in intents.items():
            if slug != intent.generation:
                raise ValueError(f"intent keyed {slug!r} is for generation {intent.generation!r}")
        if not 0.0 <= malformed_share <= 1.0:
            raise ValueError(f"malformed_share {malformed_share} must lie in [0, 1]")
        if report_shape not in ("collector", "row"):
            raise ValueError(f"report_shape {report_shape!r} must be 'collector' or 'row'")
        self.seed = seed
        self.report_shape: ReportShape = report_shape
        self.start = _utc(start)
        self.intents: dict[str, GenerationIntent] = dict(intents)
        self.malformed_share = malformed_share
        self.injected_bad: Counter[str] = Counter()
        """Bad messages emitted so far, by `BadInput` kind (the dead-letter reason each must get)."""

        layout = random.Random(seed)
        self.facilities, placed = self._lay_out(layout, racks)
        self.racks: dict[str, SimulatedRack] = self._assign(layout, placed, faults or FaultPlan())
        self.plan_targets: tuple[RolloutTarget, ...] = self._plan()
        self._reference_ids = [_uuid(layout) for _ in range(len(self.facilities) + len(self.intents) + 1)]

        self._telemetry_rng = random.Random(f"{seed}/telemetry")
        self._bad_rng = random.Random(f"{seed}/bad-input")
        self._seq: Counter[str] = Counter()
        self._bad_turn = 0
        self._rows: list[tuple[bytes, str, list[_Probe]]] = self._probes()
        self._telemetry_key: dict[str, bytes] = {p.rack_id: key for key, _, probes in self._rows for p in probes}
        self._ship_candidates = [r for r in self.racks.values() if r.stage in _ILLEGAL_SHIP_FROM]

    # --- what tests and the demo check against -----------------------------------------------

    @property
    def faulty_racks(self) -> dict[Fault, list[str]]:
        """Rack ids planted with each fault (every fault listed, maybe with no racks)."""
        out: dict[Fault, list[str]] = {fault: [] for fault in Fault}
        for rack in self.racks.values():
            if rack.fault is not None:
                out[rack.fault].append(rack.rack_id)
        return out

    @property
    def powered_racks(self) -> list[SimulatedRack]:
        """Racks that report telemetry every cycle."""
        return [r for r in self.racks.values() if r.powered]

    # --- messages ------------------------------------------------------------------------------

    def reference_messages(self) -> list[Message]:
        """Facilities, then each generation's intent, then the rollout plan (for the intent topic)."""
        at = self.start - _REFERENCE_LEAD
        ids = iter(self._reference_ids)
        out: list[Message] = []
        for i, facility in enumerate(self.facilities):
            event = FacilityRegistered(event_id=next(ids), occurred_at=at + timedelta(minutes=i),
                                       source="fleet-registry", seq=i + 1, facility=facility)
            out.append(Message("intent", facility.facility_id.encode(), event.model_dump_json().encode()))
        for i, intent in enumerate(self.intents.values()):
            event = IntentPublished(event_id=next(ids), occurred_at=at + timedelta(hours=1, minutes=i),
                                    source="design-intent", seq=i + 1, intent=intent)
            out.append(Message("intent", intent.generation.encode(), event.model_dump_json().encode()))
        plan = RolloutPlanPublished(event_id=next(ids), occurred_at=at + timedelta(hours=2),
                                    source="capacity-planning", seq=1, revision=1, targets=self.plan_targets)
        out.append(Message("intent", b"rollout", plan.model_dump_json().encode()))
        return out

    def history_messages(self) -> Iterator[Message]:
        """Every rack's lifecycle history, rack by rack, each in order; bad input follows some."""
        seqs: Counter[str] = Counter()
        settled: list[SimulatedRack] = []  # racks whose history is out and that stand on site
        for rack in self.racks.values():
            key = rack.rack_id.encode()
            for event in self.history(rack.rack_id, seqs):
                yield Message("lifecycle", key, event.model_dump_json().encode())
                if self.malformed_share and self._bad_rng.random() < self.malformed_share:
                    yield self._bad(rack, event.occurred_at, "lifecycle", settled,
                                    at_illegal=self.start - timedelta(minutes=30))
            if rack.stage in _ILLEGAL_SHIP_FROM:
                settled.append(rack)

    def telemetry_cycle(self, t: datetime) -> list[TelemetryReported]:
        """One poll cycle at instant `t`: one report per collector (or row), one reading per powered rack in it."""
        return [report for _, report in self._cycle(_utc(t))]

    def telemetry_messages(self, t: datetime) -> list[Message]:
        """One poll cycle at `t` as messages keyed by collector (or row); bad input follows some."""
        t = _utc(t)
        out: list[Message] = []
        for key, report in self._cycle(t):
            out.append(Message("telemetry", key, report.model_dump_json().encode()))
            if self.malformed_share and self._bad_rng.random() < self.malformed_share:
                context = self.racks[report.readings[0].rack_id]
                out.append(self._bad(context, t, "telemetry", self._ship_candidates, at_illegal=t))
        return out

    def cycles(
        self, interval_s: float = 1.0, first: datetime | None = None, count: int | None = None
    ) -> Iterator[tuple[datetime, list[Message]]]:
        """Telemetry cycles `interval_s` apart from `first` (default: start); the caller keeps the pace."""
        if interval_s <= 0:
            raise ValueError(f"interval_s must be positive, got {interval_s}")
        t = _utc(first) if first is not None else self.start
        step = timedelta(seconds=interval_s)
        n = 0
        while count is None or n < count:
            yield t, self.telemetry_messages(t)
            t += step
            n += 1

    # --- the fleet's layout ------------------------------------------------------------------

    def _lay_out(
        self, rng: random.Random, racks: int
    ) -> tuple[tuple[Facility, ...], list[tuple[str, str, str, str, int]]]:
        """Facilities with halls and rows sized for the generations placed there, and rack positions."""
        n_sites = 2 if racks < 100 else min(len(_SITES), 3 + racks // 250)
        n_sites = min(n_sites, racks)
        sites = _SITES[:n_sites]
        weights = [rng.uniform(0.7, 1.3) * (1.25 if operator is None else 1.0) for _, _, operator, _ in sites]
        per_site = _apportion(racks, weights, minimum=1)
        gens = list(self.intents)
        facilities: list[Facility] = []
        placed: list[tuple[str, str, str, str, int]] = []  # generation, facility, hall, row, position
        for f, ((facility_id, name, operator, region), count) in enumerate(zip(sites, per_site)):
            hosted = [gens[f % len(gens)]] if len(gens) == 1 else [gens[f % len(gens)], gens[(f + 1) % len(gens)]]
            split = _apportion(count, [0.6, 0.4][: len(hosted)], minimum=1)
            rows: list[tuple[str, int, int]] = []  # generation, positions, racks in the row
            for generation, k in zip(hosted, split):
                if k == 0:
                    continue
                positions = self._positions(self.intents[generation])
                n_rows = math.ceil(k / (positions * _ROW_FILL))
                rows.extend((generation, positions, c) for c in _apportion(k, [1.0] * n_rows))
            halls: list[Hall] = []
            for h in range(math.ceil(len(rows) / _ROWS_PER_HALL)):
                hall_id = f"h{h + 1}"
                hall_rows: list[Row] = []
                for j, (generation, positions, filled) in enumerate(rows[h * _ROWS_PER_HALL:(h + 1) * _ROWS_PER_HALL]):
                    intent = self.intents[generation]
                    row_id = f"r{j + 1:02d}"
                    hall_rows.append(Row(row_id=row_id, positions=positions,
                                         power_capacity_watts=positions * _rack_watts(intent),
                                         cooling_capacity_watts=positions * intent.cooling_capacity_watts))
                    placed.extend((generation, facility_id, hall_id, row_id, p) for p in range(1, filled + 1))
                halls.append(Hall(hall_id=hall_id, rows=tuple(hall_rows),
                                  power_capacity_watts=sum(r.power_capacity_watts for r in hall_rows),
                                  cooling_capacity_watts=sum(r.cooling_capacity_watts for r in hall_rows)))
            facilities.append(Facility(facility_id=facility_id, name=name,
                                       ownership="own" if operator is None else "partner",
                                       operator=operator or OUR_COMPANY, region=region, halls=tuple(halls)))
        return tuple(facilities), placed

    @staticmethod
    def _positions(intent: GenerationIntent) -> int:
        """Rack positions per row: denser racks, shorter rows (16 at 130 kW, 7 at 600 kW)."""
        return max(6, min(20, round(16 * math.sqrt(130_000 / _rack_watts(intent)))))

    def _assign(
        self, rng: random.Random, placed: list[tuple[str, str, str, str, int]], plan: FaultPlan
    ) -> dict[str, SimulatedRack]:
        """Give each rack its stage (most active, the rollout under way) and plant the faults."""
        n = len(placed)
        stages = [Stage.ACTIVE] * n
        order = list(range(n))
        rng.shuffle(order)
        cursor = 0
        for stage, share in _STAGE_SHARES:
            for i in order[cursor:cursor + round(share * n)]:
                stages[i] = stage
            cursor += round(share * n)
        faults: list[Fault | None] = [None] * n
        wanted = plan.counts(n)

        stall = wanted[Fault.STALLED_INSTALL]
        waiting = [i for i in range(n) if stages[i] in (Stage.RECEIVED, Stage.INSTALLED)]
        chosen = rng.sample(waiting, min(stall, len(waiting)))
        if len(chosen) < stall:
            active = [i for i in range(n) if stages[i] is Stage.ACTIVE]
            if stall - len(chosen) > len(active):
                raise ValueError(f"fault plan wants {stall} stalled racks; the fleet of {n} cannot give them")
            for k, i in enumerate(sorted(rng.sample(active, stall - len(chosen)))):
                stages[i] = Stage.RECEIVED if k % 2 == 0 else Stage.INSTALLED
                chosen.append(i)
        for i in chosen:
            faults[i] = Fault.STALLED_INSTALL

        for fault in (Fault.HOT_RACK, Fault.COOLANT_FLOW_LOSS, Fault.LEAK, Fault.POWER_OVER_BUDGET):
            pool = [i for i in range(n) if stages[i] is Stage.ACTIVE and faults[i] is None
                    and (fault is not Fault.POWER_OVER_BUDGET
                         or self.intents[placed[i][0]].power_budget_watts.max is not None)]
            if wanted[fault] > len(pool):
                raise ValueError(f"fault plan wants {wanted[fault]} racks with {fault}; only {len(pool)} can have it")
            for i in rng.sample(pool, wanted[fault]):
                faults[i] = fault

        racks: dict[str, SimulatedRack] = {}
        for i, (generation, facility_id, hall_id, row_id, position) in enumerate(placed):
            rack_id = f"{facility_id}-{hall_id}-{row_id}-{position:02d}"
            racks[rack_id] = SimulatedRack(rack_id, i, generation, facility_id, hall_id, row_id, position,
                                           stages[i], faults[i])
        return racks

    def _plan(self) -> tuple[RolloutTarget, ...]:
        """Racks in service per facility, generation and quarter: from today's count up to full rows."""
        generation_of = {r.row_key: r.generation for r in self.racks.values()}
        capacity: Counter[tuple[str, str]] = Counter()
        for facility in self.facilities:
            for hall in facility.halls:
                for row in hall.rows:
                    generation = generation_of[f"{facility.facility_id}/{hall.hall_id}/{row.row_id}"]
                    capacity[(facility.facility_id, generation)] += row.positions
        serving: Counter[tuple[str, str]] = Counter(
            (r.facility_id, r.generation) for r in self.racks.values()
            if r.stage in (Stage.ACTIVE, Stage.DEGRADED, Stage.MAINTENANCE)
        )
        order = {g: i for i, g in enumerate(self.intents)}
        targets: list[RolloutTarget] = []
        for (facility_id, generation), full in capacity.items():
            now, first = serving[(facility_id, generation)], 2 * order[generation]
            for k, quarter in enumerate(QUARTERS):
                ramp = min(1.0, max(0.0, (k - first + 1) / 6))
                targets.append(RolloutTarget(facility_id=facility_id, generation=generation, quarter=quarter,
                                             racks_in_service=round(now + (full - now) * ramp)))
        return tuple(targets)

    # --- lifecycle histories -------------------------------------------------------------------

    def _allowance(self, intent: GenerationIntent, stage: str) -> float:
        return intent.stage_allowance_days.get(stage, _DEFAULT_ALLOWANCE_DAYS.get(stage, math.inf))

    def history(self, rack_id: str, seqs: Counter[str] | None = None) -> list[RackEvent]:
        """One rack's lifecycle events in order, ending before start; `seqs` numbers each source."""
        rack = self.racks[rack_id]
        intent = self.intents[rack.generation]
        rng = random.Random(f"{self.seed}:{rack_id}")
        u = rng.uniform
        seqs = Counter() if seqs is None else seqs
        facility = next(f for f in self.facilities if f.facility_id == rack.facility_id)
        factory, site = "factory-mes", f"site-tool-{rack.facility_id}"
        drafts: list[tuple[float, str, type[RackEvent], dict[str, Any]]] = []
        clock = 0.0

        def add(after_days: float, source: str, cls: type[RackEvent], **fields: Any) -> None:
            nonlocal clock
            clock += after_days
            drafts.append((clock, source, cls, fields))

        def span(stage: str, lo: float, hi: float) -> float:
            hi = min(hi, 0.5 * self._allowance(intent, stage))
            return u(min(lo, hi), hi)

        watts = _rack_watts(intent)
        bom = self._bill_of_materials(rack, intent, rng)
        reached = list(Stage).index(rack.stage if rack.stage is not Stage.RMA else Stage.DEGRADED)
        at_least = lambda stage: reached >= list(Stage).index(stage)  # noqa: E731
        firmware_kind = None
        if at_least(Stage.COMMISSIONED) and rng.random() < 0.3:
            choices = [c.kind for c in bom if c.firmware_version and _older(c.firmware_version)]
            firmware_kind = rng.choice(choices) if choices else None

        add(0.0, factory, RackManufactured, generation=rack.generation, factory=rng.choice(_FACTORIES),
            serial_number=f"FTR-{_perm(rack.index, 10**8, self.seed):08d}")
        for component in bom:
            if component.kind == firmware_kind:
                component = component.model_copy(update={"firmware_version": _older(component.firmware_version or "")})
            add(0.004, factory, ComponentInstalled, component=component)
        fa = {"peak_power_watts": round(watts * u(0.9, 0.98), 1),
              "leak_test_pressure_kilopascals": round(u(340, 360), 1),
              "coolant_flow_liters_per_minute": round(watts / 1000 * u(1.45, 1.6), 1)}
        if rng.random() < 0.05:  # fails factory acceptance once; a compute tray is swapped
            add(u(0.5, 1.5), factory, RackTested, test="factory-acceptance", passed=False,
                measurements={**fa, "failed_accelerators": 1.0})
            add(0.3, factory, ComponentReplaced, **self._swap(rack, bom, "compute-tray", rng, 200))
            add(0.5, factory, RackTested, test="factory-acceptance", passed=True, measurements=fa)
        else:
            add(u(0.5, 1.5), factory, RackTested, test="factory-acceptance", passed=True, measurements=fa)
        if "burn-in" in intent.required_tests or rng.random() < 0.5:  # 48 hours at full load
            add(u(2.2, 2.5), factory, RackTested, test="burn-in", passed=True,
                measurements={"duration_hours": 48.0, "hottest_accelerator_temperature_celsius": round(u(62, 76), 1)})
        if at_least(Stage.IN_TRANSIT):
            add(span("manufactured", 0.5, 3), factory, RackShipped, destination_facility_id=rack.facility_id,
                carrier=rng.choice(_CARRIERS))
        if at_least(Stage.RECEIVED):
            transit = (8, 16) if facility.region.startswith("eu") else (2, 6)
            add(span("in-transit", *transit), site, RackReceived, facility_id=rack.facility_id)
        if at_least(Stage.INSTALLED):
            add(span("received", 1, 7), site, RackInstalled, facility_id=rack.facility_id, hall_id=rack.hall_id,
                row_id=rack.row_id, position=rack.position)
        if at_least(Stage.COMMISSIONED):
            install_days = span("installed", 2, 10)
            clock += install_days * 0.2
            if firmware_kind is not None:
                for component in bom:
                    if component.kind == firmware_kind:
                        add(0.002, site, FirmwareUpdated, slot=component.slot,
                            firmware_version=component.firmware_version)
            sat = {"peak_power_watts": round(watts * u(0.88, 0.97), 1),
                   "coolant_flow_liters_per_minute": round(watts / 1000 * u(1.45, 1.6), 1)}
            if rng.random() < 0.04:
                add(install_days * 0.4, site, RackTested, test="site-acceptance", passed=False,
                    measurements={**sat, "links_down": 2.0})
                add(install_days * 0.2, site, RackTested, test="site-acceptance", passed=True, measurements=sat)
            else:
                add(install_days * 0.6, site, RackTested, test="site-acceptance", passed=True, measurements=sat)
            add(install_days * 0.2, site, RackCommissioned)
        if at_least(Stage.ACTIVE):
            add(span("commissioned", 0.5, 3), site, RackEnteredService)
            if rng.random() < 0.2:
                add(u(5, 40), site, RackMaintenanceStarted, reason=rng.choice(_MAINTENANCE_REASONS))
                add(span("maintenance", 0.5, 3), site, RackEnteredService)
            if rng.random() < 0.1:
                add(u(3, 30), site, ComponentReplaced, **self._swap(rack, bom, "psu", rng, 220))
        if rack.stage is Stage.DEGRADED or rack.stage is Stage.RMA:
            add(u(5, 60), site, RackDegraded, reason=rng.choice(_DEGRADED_REASONS))
        if rack.stage is Stage.MAINTENANCE:
            add(u(5, 60), site, RackMaintenanceStarted, reason=rng.choice(_MAINTENANCE_REASONS))
        if rack.stage is Stage.RMA:
            add(span("degraded", 0.5, 5), site, RackRmaOpened, rma_number=f"RMA-{_perm(rack.index, 10**6, 7):06d}",
                reason=rng.choice(_RMA_REASONS))

        if rack.fault is Fault.STALLED_INSTALL:
            dwell = self._allowance(intent, rack.stage) * u(*_STALL_FACTOR)
            if math.isinf(dwell):
                raise ValueError(f"no stage allowance for {rack.stage}: cannot plant a stalled install")
        else:
            lo, hi = _DWELL_DAYS[rack.stage]
            entered = 0.0 if rack.stage is Stage.MANUFACTURED else clock
            hi = max(min(hi, 0.5 * self._allowance(intent, rack.stage) - (clock - entered)), 0.05)
            dwell = u(min(lo, hi), hi)
        origin = self.start - timedelta(seconds=round((clock + dwell) * 86_400))

        events: list[RackEvent] = []
        for offset, source, cls, fields in drafts:
            seqs[source] += 1
            events.append(cls(event_id=_uuid(rng), occurred_at=origin + timedelta(seconds=round(offset * 86_400)),
                              source=source, seq=seqs[source], rack_id=rack_id, **fields))
        return events

    def _bill_of_materials(self, rack: SimulatedRack, intent: GenerationIntent, rng: random.Random) -> list[Component]:
        """The rack's parts: the intent's required kinds and counts, one supplier per kind."""
        wanted = dict(intent.required_components) or _DEFAULT_BOM
        scale = (_rack_watts(intent) / 130_000) ** 0.6
        code = "".join(ch for ch in rack.generation.upper() if ch.isalnum())[:10]
        bom: list[Component] = []
        for kind, count in wanted.items():
            supplier, country, prefix = rng.choice(_SUPPLIERS[kind])
            firmware = intent.firmware_baseline.get(kind, _DEFAULT_FIRMWARE.get(kind))  # type: ignore[call-overload]
            value = _UNIT_VALUE_USD[kind] * scale * rng.uniform(0.97, 1.03)
            for i in range(count):
                bom.append(Component(
                    slot=f"{_SLOT_PREFIX[kind]}-{i + 1:02d}", kind=kind,
                    part_number=f"{_PART_PREFIX[kind]}-{code}-{prefix}",
                    serial_number=f"{prefix}{_perm(rack.index * 256 + len(bom), 10**10, self.seed):010d}",
                    supplier=supplier, country_of_manufacture=country, firmware_version=firmware,
                    unit_value_usd=round(value, 2),
                ))
        return bom

    def _swap(self, rack: SimulatedRack, bom: list[Component], kind: str, rng: random.Random, serial_no: int
              ) -> dict[str, Any]:
        """Fields of a `component.replaced` that swaps one part of `kind` (else any) for a fresh one."""
        candidates = [i for i, c in enumerate(bom) if c.kind == kind] or list(range(len(bom)))
        at = rng.choice(candidates)
        old = bom[at]
        prefix = old.serial_number[:2]
        new = old.model_copy(update={
            "serial_number": f"{prefix}{_perm(rack.index * 256 + serial_no, 10**10, self.seed):010d}"})
        bom[at] = new
        return {"removed_serial_number": old.serial_number, "component": new, "cause": "swap"}

    # --- telemetry -------------------------------------------------------------------------------

    def _probes(self) -> list[tuple[bytes, str, list[_Probe]]]:
        """Per report of a cycle: its Kafka key, its source, and a probe per powered rack in it.

        `row`: one report per row, keyed by the row. `collector`: a hall's powered racks split
        into collectors of at most `READINGS_PER_COLLECTOR`, keyed `facility/hall/cNN`.
        """
        groups: dict[str, tuple[str, list[SimulatedRack]]] = {}
        for rack in self.racks.values():
            if not rack.powered:
                continue
            if self.report_shape == "row":
                groups.setdefault(rack.row_key, (f"collector-{rack.facility_id}-{rack.hall_id}", []))[1].append(rack)
            else:
                groups.setdefault(f"{rack.facility_id}/{rack.hall_id}", ("", []))[1].append(rack)
        out: list[tuple[bytes, str, list[_Probe]]] = []
        for key, (source, members) in groups.items():
            if self.report_shape == "row":
                out.append((key.encode(), source, [self._probe(r) for r in members]))
                continue
            for n, start in enumerate(range(0, len(members), READINGS_PER_COLLECTOR), 1):
                chunk = members[start:start + READINGS_PER_COLLECTOR]
                facility, hall = key.split("/")
                out.append((f"{key}/c{n:02d}".encode(), f"collector-{facility}-{hall}-c{n:02d}",
                            [self._probe(r) for r in chunk]))
        return out

    def _probe(self, rack: SimulatedRack) -> _Probe:
        intent = self.intents[rack.generation]
        watts = _rack_watts(intent)
        load = _LOAD[rack.stage]
        budget = intent.power_budget_watts
        if rack.stage is Stage.ACTIVE and budget.min is not None:
            floor = budget.min / watts + 0.02
            load = (max(load[0], floor), max(load[1], floor))
        inlet = _band(intent.inlet_temperature_celsius, 22.0, 28.0)
        supply = _band(intent.coolant_supply_temperature_celsius, 25.0, 35.0)
        per_kw = _band(intent.coolant_flow_liters_per_minute_per_kilowatt, 1.4, 1.7)
        hot = _band(intent.hottest_accelerator_temperature_celsius, 55.0, 80.0)
        warm = _WARMTH[rack.stage]
        accelerator = (hot[0] + (hot[1] - hot[0]) * warm[0], hot[0] + (hot[1] - hot[0]) * warm[1])
        fan = (30.0 + 30.0 * warm[0], 30.0 + 30.0 * warm[1])
        if rack.fault is Fault.HOT_RACK:
            top = intent.inlet_temperature_celsius.max or 28.0
            inlet = (min(top + 3.0, 78.0), min(top + 6.0, 79.0))
            top = intent.hottest_accelerator_temperature_celsius.max or 80.0
            accelerator = (min(top + 4.0, 140.0), min(top + 10.0, 145.0))
            fan = (85.0, 100.0)
        elif rack.fault is Fault.COOLANT_FLOW_LOSS:
            low = intent.coolant_flow_liters_per_minute_per_kilowatt.min or 1.4
            per_kw = (low * 0.35, low * 0.55)
        elif rack.fault is Fault.POWER_OVER_BUDGET:
            load = (1.04, 1.12)
        bom = dict(intent.required_components) or _DEFAULT_BOM
        links = sum(_LINKS_PER.get(kind, 0) * n for kind, n in bom.items())
        return _Probe(rack_id=rack.rack_id, scale_watts=watts, load=load, inlet=inlet, supply=supply,
                      flow_per_kw=per_kw, accelerator=accelerator, fan=fan, pressure=(90.0, 140.0),
                      links_up=links, leak=rack.fault is Fault.LEAK)

    def _cycle(self, t: datetime) -> Iterator[tuple[bytes, TelemetryReported]]:
        rng = self._telemetry_rng
        for key, source, probes in self._rows:
            readings = tuple(p.read(t, rng) for p in probes)
            self._seq[source] += 1
            yield key, TelemetryReported(
                event_id=_uuid(rng), occurred_at=t, source=source, seq=self._seq[source],
                rack_id=readings[0].rack_id if len(readings) == 1 else None, readings=readings,
            )

    # --- bad input -------------------------------------------------------------------------------

    def _bad(self, context: SimulatedRack, at: datetime, role: Role, settled: Sequence[SimulatedRack], *,
             at_illegal: datetime) -> Message:
        """The next kind of bad input, round robin, about `context` (or, for a transition, a settled rack).

        Kinds the decoder refuses on any topic (malformed JSON, unknown type or version, missing
        field) take the shape of the message they follow (`role`); a value out of range and an
        unknown rack are telemetry; an illegal transition is `rack.shipped` for a rack on site.
        """
        kinds = list(BadInput)
        kind = kinds[self._bad_turn % len(kinds)]
        self._bad_turn += 1
        if kind is BadInput.ILLEGAL_TRANSITION and not settled:  # no rack on site yet: take the next kind
            kind = kinds[self._bad_turn % len(kinds)]
            self._bad_turn += 1
        rng = self._bad_rng
        self._seq[_BAD_SOURCE] += 1
        envelope = {"event_id": str(_uuid(rng)), "occurred_at": _iso(at), "source": _BAD_SOURCE,
                    "seq": self._seq[_BAD_SOURCE]}
        self.injected_bad[kind.value] += 1

        if kind is BadInput.ILLEGAL_TRANSITION:
            rack = rng.choice(settled)
            event = RackShipped(event_id=UUID(envelope["event_id"]), occurred_at=at_illegal, source=_BAD_SOURCE,
                                seq=envelope["seq"], rack_id=rack.rack_id, destination_facility_id=rack.facility_id,
                                carrier=rng.choice(_CARRIERS))
            return Message("lifecycle", rack.rack_id.encode(), event.model_dump_json().encode(), kind.value)

        report = {"type": "telemetry.reported", "schema_version": 1, **envelope, "rack_id": context.rack_id,
                  "readings": [self._nominal_reading(context, at)]}
        reading = report["readings"][0]
        if kind is BadInput.OUT_OF_PHYSICAL_RANGE:
            if self.injected_bad[kind.value] % 2:
                reading["power_watts"] = -5.0
            else:
                reading["coolant_flow_liters_per_minute"] = 99_999.0
            return self._telemetry_bad(context, report, kind)
        if kind is BadInput.UNKNOWN_RACK:
            ghost = f"{context.facility_id}-{context.hall_id}-{context.row_id}-99"  # no row has 99 positions
            reading["rack_id"] = report["rack_id"] = ghost
            return self._telemetry_bad(context, report, kind)

        if role == "telemetry":
            body: dict[str, Any] = report
        else:
            body = {"type": "rack.tested", "schema_version": 1, **envelope, "rack_id": context.rack_id,
                    "test": "burn-in", "passed": True, "measurements": {"duration_hours": 48.0}}
        if kind is BadInput.UNKNOWN_TYPE:
            body["type"] = "telemetry.forecast" if role == "telemetry" else "rack.teleported"
        elif kind is BadInput.UNKNOWN_SCHEMA_VERSION:
            body["schema_version"] = 2
        elif kind is BadInput.MISSING_FIELD:
            if role == "telemetry":
                del reading["power_watts"]
            else:
                del body["passed"]
        value = orjson.dumps(body)
        if kind is BadInput.MALFORMED_JSON:
            value = value[: len(value) // 2]  # cut mid-stream: an unterminated object
        key = self._key_of(context) if role == "telemetry" else context.rack_id.encode()
        return Message(role, key, value, kind.value)

    def _telemetry_bad(self, context: SimulatedRack, report: dict[str, Any], kind: BadInput) -> Message:
        return Message("telemetry", self._key_of(context), orjson.dumps(report), kind.value)

    def _key_of(self, rack: SimulatedRack) -> bytes:
        """The key `rack`'s readings travel under (an unpowered rack's: its row, as a collector would)."""
        return self._telemetry_key.get(rack.rack_id, rack.row_key.encode())

    def _nominal_reading(self, rack: SimulatedRack, at: datetime) -> dict[str, Any]:
        """A plausible mid-band reading for `rack`, without moving the telemetry random walk."""
        intent = self.intents[rack.generation]
        watts = _rack_watts(intent) * 0.6
        mid = lambda band: round(sum(band) / 2, 2)  # noqa: E731
        inlet = mid(_band(intent.inlet_temperature_celsius, 22.0, 28.0))
        supply = mid(_band(intent.coolant_supply_temperature_celsius, 25.0, 35.0))
        per_kw = mid(_band(intent.coolant_flow_liters_per_minute_per_kilowatt, 1.4, 1.7))
        return {
            "rack_id": rack.rack_id, "occurred_at": _iso(at), "power_watts": round(watts, 1),
            "inlet_temperature_celsius": inlet, "outlet_temperature_celsius": round(inlet + 9.0, 2),
            "coolant_supply_temperature_celsius": supply,
            "coolant_return_temperature_celsius": round(supply + 60.0 / (per_kw * 4.0), 2),
            "coolant_flow_liters_per_minute": round(watts / 1000 * per_kw, 2),
            "coolant_differential_pressure_kilopascals": 110.0, "leak_detected": False,
            "hottest_accelerator_temperature_celsius": mid(_band(intent.hottest_accelerator_temperature_celsius,
                                                                 55.0, 80.0)),
            "fan_speed_percent": 45.0, "network_links_up": 1, "network_links_down": 0,
        }
