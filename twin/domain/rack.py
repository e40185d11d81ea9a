"""The rack twin: the fold of one rack's lifecycle events, beside its latest telemetry.

Why a fold with a total order: producers repeat and reorder events, and the twin must end the
same whatever the delivery order and however often an event arrives. So the twin is defined as
the fold of its events sorted by `event_key` = (occurred_at, seq, event_id). Events that arrive
in that order are applied one by one (`fold`); one that sorts before the last folded event
(`needs_replay`) makes the caller load the rack's history and `replay` it. A repeat of the last
event is a no-op; older repeats are the store's business (its event_id is unique).

Why rejections are folded too: an illegal event (installed rack shipped again) changes nothing,
but it is recorded in `rejected` with its reason and it counts for ordering, so incremental
folding and replay agree even when a later event would have made it legal at its position.

Why so compact: a worker holds 100,000 twins in 500 MB. Stage and test timestamps are packed
in integer arrays, the bill of materials is packed (`twin.domain.components`), the telemetry window
is a small float array, and nothing of the event history, the intent or a set of seen ids is
kept. The public properties (`stage_entered_at`, `tests`, `components`, `latest`) unpack on
demand.

No I/O and no clock: time arrives on events, and as `now` where a check needs it.
"""

from __future__ import annotations

import sys
from array import array
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from operator import attrgetter, itemgetter
from typing import Any, NamedTuple
from uuid import UUID

from schemas import READING_FIELDS, Component, CoolingUnitStatus, EquipmentStatus, GenerationIntent, RackEvent, RackReading
from twin.domain.components import EMPTY_BOM, BillOfMaterials
from twin.errors import IllegalTransition, OutOfOrder, RejectedEvent, WrongRack
from twin.domain.intent import IntentCatalog, intent_for
from twin.domain.lifecycle import TEST_KINDS, RackStatus, check_service_gate, next_status
from twin.domain.recorded import INSTALLED, RECORDED, RecordedInstall

__all__ = [
    "READING_FIELDS", "REJECTIONS_KEPT", "TELEMETRY_SIDE_BLANKS", "EventKey", "Intents", "RackTwin", "ReadingWindow", "Rejection", "Replay",
    "Sample", "TestResult", "event_key", "fold_history",
]

_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
_US = timedelta(microseconds=1)
_NEVER = -(1 << 63)
_STAGES: tuple[RackStatus, ...] = tuple(RackStatus)
_STAGE_AT: dict[RackStatus, int] = {s: i for i, s in enumerate(_STAGES)}
_TEST_AT: dict[str, int] = {k: i for i, k in enumerate(TEST_KINDS)}
_intern = sys.intern

REJECTIONS_KEPT = 5
"""Rejections a twin remembers (the most recent by event order); the dead-letter table keeps all."""

TELEMETRY_SIDE_BLANKS: dict[str, Any] = {
    "components": [], "rejected": [], "tests": {}, "stage_entered_at": {}, "stage_left_at": {},
    "serial_number": None, "factory": None, "status_reason": None, "rma_number": None,
}
"""What the telemetry side blanks out of a twin's snapshot: it judges readings against intent by
generation and stage, and holds 100,000 twins; parts, tests and stage history stay with the
lifecycle side. (Stage entry times are blanked too, so stall checks stay with the lifecycle side.)"""

Intents = GenerationIntent | IntentCatalog | Mapping[str, GenerationIntent] | None
"""What the service gate may be given: the catalog (or a generation -> intent mapping), or one intent."""

EventKey = tuple[int, int, int]
"""(occurred_at in µs since the epoch, seq, event_id as an integer): sorts as (occurred_at, seq, str(event_id))."""


def _us(ts: datetime) -> int:
    return (ts - _EPOCH) // _US


def _at(us: int) -> datetime:
    return _EPOCH + timedelta(microseconds=us)


def event_key(event: RackEvent) -> EventKey:
    """Where `event` sits in its rack's fold. Canonical UUID strings sort as their integers do."""
    if type(event) in RECORDED:
        return event.key  # type: ignore[no-any-return]
    return (_us(event.occurred_at), event.seq, event.event_id.int)


class Rejection(NamedTuple):
    """An event that was illegal at its position: it changed nothing, and this is why."""

    event_id: str
    type: str
    reason: str
    detail: str
    occurred_at: datetime


class TestResult(NamedTuple):
    """The latest result of one kind of test (its measurements stay in the event store)."""

    passed: bool
    occurred_at: datetime


_WIDTH = 1 + len(READING_FIELDS)


Sample = NamedTuple(  # type: ignore[misc]  # built from the one list of reading fields
    "Sample", [("occurred_at", datetime), *((f, RackReading.model_fields[f].annotation) for f in READING_FIELDS)])
Sample.__doc__ = "One reading as the window holds it: `RackReading`'s quantities (None: not measured), cheap to build."
_quantities = attrgetter(*READING_FIELDS)


_NAN = float("nan")
_LEAK, _UP, _DOWN = (1 + READING_FIELDS.index(f) for f in ("leak_detected", "network_links_up", "network_links_down"))


class ReadingWindow:
    """The newest readings of one rack, oldest first, as rows of doubles (about 110 bytes a reading).

    A row is the reading's time (µs since the epoch; exact in a double) and its twelve
    quantities. Readings are kept in time order whatever order they arrive in, so the window
    is the `CAPACITY` newest readings observed; a reading at a time already held is a repeat.
    """

    __slots__ = ("_rows",)
    CAPACITY = 6

    def __init__(self) -> None:
        self._rows = array("d")

    def __len__(self) -> int:
        return len(self._rows) // _WIDTH

    def __eq__(self, other: object) -> bool:
        # bytes, not floats: an unmeasured quantity is NaN, and NaN != NaN
        return isinstance(other, ReadingWindow) and self._rows.tobytes() == other._rows.tobytes()

    def __repr__(self) -> str:
        return f"ReadingWindow({len(self)} readings)"

    def insert(self, r: RackReading) -> bool:
        """Take a reading; True when the window changed (False: a repeat, or older than all held)."""
        t = float(_us(r.occurred_at))
        row = (t, *_quantities(r))
        if None in row:  # a quantity no source measured: NaN in the window, None again when read
            row = tuple(_NAN if v is None else v for v in row)
        a, w = self._rows, _WIDTH
        n = len(a) // w
        if n == 0 or t > a[len(a) - w]:
            if n < self.CAPACITY:
                a.extend(row)
            else:
                a[0:len(a) - w] = a[w:]
                a[len(a) - w:] = array("d", row)
            return True
        i = n - 1
        while i >= 0 and a[i * w] > t:
            i -= 1
        if i >= 0 and a[i * w] == t:
            return False
        if i < 0 and n >= self.CAPACITY:
            return False
        at = (i + 1) * w
        a[at:at] = array("d", row)
        if len(a) > self.CAPACITY * w:
            del a[:w]
        return True

    def has_gaps(self) -> bool:
        """Whether some reading held lacks a quantity (NaN: no source measured it). One C-level sum."""
        total = sum(self._rows)
        return total != total

    @property
    def latest_us(self) -> int | None:
        """Time of the newest reading, in µs since the epoch."""
        a = self._rows
        return int(a[len(a) - _WIDTH]) if a else None

    def times(self) -> list[datetime]:
        """Reading times, oldest first."""
        return [_at(int(t)) for t in self._rows[0::_WIDTH]]

    def column(self, field: str) -> array:
        """One quantity over the window, oldest first (booleans as 0.0/1.0)."""
        return self._rows[1 + READING_FIELDS.index(field)::_WIDTH]

    def since(self, us: float) -> ReadingWindow:
        """The readings at or after `us` (µs since the epoch)."""
        a, w = self._rows, _WIDTH
        i = 0
        while i < len(a) and a[i] < us:
            i += w
        out = ReadingWindow()
        out._rows = a[i:]
        return out

    def sample(self, i: int = -1) -> Sample:
        """Reading `i` (default: the newest), light."""
        n = len(self)
        if not -n <= i < n:
            raise IndexError(f"window holds {n} readings")
        start = (i % n) * _WIDTH
        row: list[Any] = self._rows[start:start + _WIDTH].tolist()
        if any(v != v for v in row):  # NaN: not measured
            row = [None if v != v else v for v in row]
        row[0] = _at(int(row[0]))
        if row[_LEAK] is not None:
            row[_LEAK] = row[_LEAK] != 0.0
        for col in (_UP, _DOWN):
            if row[col] is not None:
                row[col] = int(row[col])
        return Sample._make(row)

    def reading(self, rack_id: str, i: int = -1) -> RackReading:
        """Reading `i` (default: the newest) as the contract model."""
        return RackReading.model_construct(rack_id=rack_id, **self.sample(i)._asdict())

    def readings(self, rack_id: str) -> list[RackReading]:
        """Every reading held, oldest first."""
        return [self.reading(rack_id, i) for i in range(len(self))]

    def to_json(self) -> list[dict[str, Any]]:
        return [r.model_dump(mode="json", exclude={"rack_id"}) for r in self.readings("")]

    @classmethod
    def from_json(cls, rows: Iterable[Mapping[str, Any]], rack_id: str) -> ReadingWindow:
        out = cls()
        for row in rows:
            out.insert(RackReading.model_validate({**row, "rack_id": rack_id}))
        return out


def _stamps() -> array:
    return array("q", [_NEVER]) * (2 * len(_STAGES))


@dataclass(slots=True)
class RackTwin:
    """One rack: where it is in its life, where it stands, its parts and tests, its latest readings."""

    rack_id: str
    generation: str | None = None
    status: RackStatus = RackStatus.PLANNED
    version: int = 0
    """Accepted lifecycle, component and test events folded."""
    serial_number: str | None = None
    factory: str | None = None
    destination_facility_id: str | None = None
    facility_id: str | None = None
    hall_id: str | None = None
    row_id: str | None = None
    position: int | None = None
    status_reason: str | None = None
    """Why the rack is degraded, in maintenance, in RMA or decommissioned (None otherwise)."""
    rma_number: str | None = None
    intent_revision: int = 0
    """Revision of the intent that last judged this twin (set by the judge; 0: never judged)."""
    bom: BillOfMaterials = EMPTY_BOM
    rejected: tuple[Rejection, ...] = ()
    last_key: EventKey | None = None
    """Key of the last event folded or rejected; an event sorting before it needs a replay."""
    window: ReadingWindow | None = None
    stage_stamps: array | None = None
    """Per stage, µs since the epoch of its latest entry, then of its latest exit (`stage_entered_at`)."""
    test_stamps: array | None = None
    """Per test kind, µs of the latest result and whether it passed (`tests`)."""
    unreachable: tuple[str, ...] = ()
    """Endpoints that did not answer the poll of the newest reading (the rack is then stale)."""
    cooling_unit: CoolingUnitStatus | None = None
    """The CDU feeding the rack, as the poll of the newest reading saw it."""
    equipment: tuple[EquipmentStatus, ...] = ()
    """Its BMCs and PDUs that were not OK at the poll of the newest reading."""

    # --- reading the state ----------------------------------------------------------------

    @property
    def stage_entered_at(self) -> dict[RackStatus, datetime]:
        """Stage -> when the rack last entered it."""
        s = self.stage_stamps
        if s is None:
            return {}
        return {stage: _at(s[i]) for i, stage in enumerate(_STAGES) if s[i] != _NEVER}

    @property
    def since(self) -> datetime | None:
        """When the rack entered its current stage (None while planned)."""
        return self.entered(self.status)

    @property
    def last_event_at(self) -> datetime | None:
        """occurred_at of the last event folded or rejected."""
        return None if self.last_key is None else _at(self.last_key[0])

    def entered(self, stage: RackStatus) -> datetime | None:
        """When the rack last entered `stage` (None: never)."""
        s = self.stage_stamps
        if s is None or s[_STAGE_AT[stage]] == _NEVER:
            return None
        return _at(s[_STAGE_AT[stage]])

    @property
    def stage_left_at(self) -> dict[RackStatus, datetime]:
        """Stage -> when the rack last left it."""
        s, n = self.stage_stamps, len(_STAGES)
        if s is None:
            return {}
        return {stage: _at(s[n + i]) for i, stage in enumerate(_STAGES) if s[n + i] != _NEVER}

    @property
    def tests(self) -> dict[str, TestResult]:
        """Test kind -> its latest result."""
        t = self.test_stamps
        if t is None:
            return {}
        return {kind: TestResult(bool(t[2 * i + 1]), _at(t[2 * i])) for i, kind in enumerate(TEST_KINDS)
                if t[2 * i] != _NEVER}

    @property
    def components(self) -> dict[str, Component]:
        """Slot -> part, as contract models (built on demand; hot paths read `bom`)."""
        return self.bom.components()

    @property
    def latest(self) -> RackReading | None:
        """The newest reading (by occurred_at), or None before the first."""
        w = self.window
        return w.reading(self.rack_id) if w else None

    @property
    def latest_at(self) -> datetime | None:
        """When the newest reading was taken."""
        w = self.window
        return _at(w.latest_us) if w else None  # type: ignore[arg-type]

    @property
    def readings(self) -> list[RackReading]:
        """The readings window, oldest first."""
        return self.window.readings(self.rack_id) if self.window else []

    # --- folding events -------------------------------------------------------------------

    def needs_replay(self, event: RackEvent) -> bool:
        """True when `event` sorts before the last event folded: fold its rack's history with `replay`.

        A repeat of an older event sorts before too: fold only the events the store took as new.
        """
        return self.last_key is not None and event_key(event) < self.last_key

    def apply(self, event: RackEvent, intent: Intents = None) -> None:
        """Fold one lifecycle, component or test event; raise a `RejectedEvent` before changing anything.

        Only `rack.entered_service` reads `intent` (the service gate): pass the catalog (the
        revision in force at the event is taken, as `replay` does) or that revision itself. A
        repeat of the last event is a no-op. An event sorting before the last one raises
        `RejectedEvent` with reason `out-of-order` (check `needs_replay` first). Use `fold` to
        record rejections instead of raising them.
        """
        key = self._key_after_last(event)
        if key is not None:
            self._apply(event, key, intent)

    def fold(self, event: RackEvent, intent: Intents = None) -> RejectedEvent | None:
        """`apply`, but an illegal event is recorded in `rejected` and returned, not raised.

        Still raises for caller errors: an out-of-order event, or an event of another rack.
        """
        key = self._key_after_last(event)
        if key is None:
            return None
        try:
            self._apply(event, key, intent)
        except RejectedEvent as rejection:
            if isinstance(rejection, (OutOfOrder, WrongRack)):
                raise
            self._reject(event, key, rejection)
            return rejection
        return None

    def _key_after_last(self, event: RackEvent) -> EventKey | None:
        key = event_key(event)
        last = self.last_key
        if last is not None and key <= last:
            if key == last:
                return None
            raise OutOfOrder(
                f"{event.type} {event.event_id} of {event.occurred_at.isoformat()} sorts before the last event "
                f"folded into rack {self.rack_id}: replay the rack's history")
        return key

    def _reject(self, event: RackEvent, key: EventKey, rejection: RejectedEvent) -> None:
        entry = Rejection(str(event.event_id), event.type, rejection.reason, rejection.detail, _at(key[0]))
        self.rejected = (self.rejected + (entry,))[-REJECTIONS_KEPT:]
        self.last_key = key

    def _apply(self, event: RackEvent, key: EventKey, intent: Intents) -> None:
        if event.rack_id != self.rack_id:
            raise WrongRack(f"{event.type} {event.event_id} is about rack {event.rack_id}, not {self.rack_id}")
        # --- decide: every check raises before anything changes ---
        kind = event.type
        status = next_status(self.status, event)
        bom = self.bom
        if kind == "rack.installed":
            if self.facility_id is not None and event.facility_id != self.facility_id:  # type: ignore[attr-defined]
                raise IllegalTransition(
                    f"illegal transition received -> installed: rack was received at {self.facility_id}, "
                    f"it cannot be installed in {event.facility_id}")  # type: ignore[attr-defined]
        elif kind == "rack.entered_service":
            if intent is not None and not isinstance(intent, GenerationIntent):
                intent = intent_for(intent, self.generation, event.occurred_at)
            check_service_gate(self, intent)
        elif kind == "component.installed":
            bom = bom.installed(event.component)  # type: ignore[attr-defined]
        elif kind == "component.replaced":
            bom = bom.replaced(event.removed_serial_number, event.component)  # type: ignore[attr-defined]
        elif kind == "component.firmware_updated":
            bom = bom.flashed(event.slot, event.firmware_version)  # type: ignore[attr-defined]

        # --- mutate ---
        us = key[0]
        e: Any = event
        if kind == "rack.manufactured":
            self.generation = _intern(e.generation)
            self.serial_number = e.serial_number
            self.factory = _intern(e.factory)
        elif kind == "rack.tested":
            if self.test_stamps is None:
                self.test_stamps = array("q", [_NEVER, 0]) * len(TEST_KINDS)
            at = 2 * _TEST_AT[e.test]
            self.test_stamps[at] = us
            self.test_stamps[at + 1] = 1 if e.passed else 0
        elif kind == "rack.shipped":
            self.destination_facility_id = _intern(e.destination_facility_id)
            self.facility_id = self.hall_id = self.row_id = self.position = None
        elif kind == "rack.received":
            self.facility_id = _intern(e.facility_id)
        elif kind == "rack.installed":
            self.facility_id = _intern(e.facility_id)
            self.hall_id = _intern(e.hall_id)
            self.row_id = _intern(e.row_id)
            self.position = e.position
        elif kind == "rack.rma_opened":
            self.rma_number = e.rma_number
        self.bom = bom
        if status is not self.status:
            stamps = self.stage_stamps
            if stamps is None:
                stamps = self.stage_stamps = _stamps()
            if self.status is not RackStatus.PLANNED:
                stamps[len(_STAGES) + _STAGE_AT[self.status]] = us
            stamps[_STAGE_AT[status]] = us
            self.status = status
            fields = getattr(e, "__dict__", None)  # (a model's missing attribute is a slow miss through pydantic)
            self.status_reason = fields.get("reason") if fields is not None else getattr(e, "reason", None)
        self.version += 1
        self.last_key = key

    def _fit_run(self, ordered: list[tuple[EventKey, RackEvent]], start: int) -> int:
        """Fold, in one packing of the bill, the part installations from `ordered[start]` on that
        `_apply` would accept one by one; return the index after them (`start`: none were folded).

        Installations never move the stage, so the stage check of the first holds for the run;
        `installed_many` stops before the first part `installed` would refuse, which the caller
        then folds on its own, refusal and all. Same twin as folding each, a fraction of the work.
        """
        stop, n = start, len(ordered)
        while stop < n and ordered[stop][1].type == INSTALLED and ordered[stop][1].rack_id == self.rack_id:
            stop += 1
        if stop - start < 2:
            return start
        try:
            next_status(self.status, ordered[start][1])
        except RejectedEvent:
            return start
        bom, fitted = self.bom.installed_many(  # a recorded installation is its own part
            [e if type(e) is RecordedInstall else e.component for _, e in ordered[start:stop]])  # type: ignore[attr-defined]
        if fitted:
            self.bom = bom
            self.version += fitted
            self.last_key = ordered[start + fitted - 1][0]
        return start + fitted

    @classmethod
    def replay(cls, rack_id: str, events: Iterable[RackEvent],
               intents: IntentCatalog | Mapping[str, GenerationIntent], *, until: datetime | None = None,
               snapshot: Mapping[str, Any] | None = None) -> RackTwin:
        """The fold of `events` in key order (see `fold_history`, which also returns every refusal)."""
        return fold_history(rack_id, events, intents, until=until, snapshot=snapshot).twin

    # --- telemetry --------------------------------------------------------------------------

    def observe(self, reading: RackReading) -> bool:
        """Take a reading; True when the twin's telemetry state changed.

        The newest reading (by occurred_at) is the current one; an older reading joins the
        window if it is among the newest `ReadingWindow.CAPACITY` (else only the caller's store
        keeps it); a reading at a time already held is a repeat and changes nothing.
        """
        w = self.window
        if w is None:
            w = self.window = ReadingWindow()
        if not w.insert(reading):
            return False
        if ((reading.unreachable_endpoints or reading.cooling_unit is not None or reading.equipment
             or self.unreachable or self.cooling_unit is not None or self.equipment)
                and w.latest_us == _us(reading.occurred_at)):
            self.unreachable = reading.unreachable_endpoints  # the newest poll's view of its endpoints
            self.cooling_unit = reading.cooling_unit
            self.equipment = reading.equipment
        return True

    def take_telemetry_side(self, other: RackTwin) -> None:
        """Hold `other`'s telemetry side: its readings and what its newest poll saw of the sources
        (a fresh lifecycle side swapped in by the telemetry path must not forget a silent endpoint or a failing CDU)."""
        self.window = other.window
        self.unreachable, self.cooling_unit, self.equipment = other.unreachable, other.cooling_unit, other.equipment

    # --- snapshots --------------------------------------------------------------------------

    def snapshot(self, *, readings: bool = False) -> dict[str, Any]:
        """The twin as JSON-able data (datetimes as ISO strings); with `readings`, its window too."""
        last = self.last_key
        out: dict[str, Any] = {
            "format": 1,
            "rack_id": self.rack_id,
            "generation": self.generation,
            "status": self.status.value,
            "version": self.version,
            "serial_number": self.serial_number,
            "factory": self.factory,
            "destination_facility_id": self.destination_facility_id,
            "facility_id": self.facility_id,
            "hall_id": self.hall_id,
            "row_id": self.row_id,
            "position": self.position,
            "status_reason": self.status_reason,
            "rma_number": self.rma_number,
            "intent_revision": self.intent_revision,
            "stage_entered_at": {s.value: t.isoformat() for s, t in self.stage_entered_at.items()},
            "stage_left_at": {s.value: t.isoformat() for s, t in self.stage_left_at.items()},
            "tests": {k: {"passed": r.passed, "occurred_at": r.occurred_at.isoformat()} for k, r in self.tests.items()},
            "components": self.bom.to_json(),
            "rejected": [{**r._asdict(), "occurred_at": r.occurred_at.isoformat()} for r in self.rejected],
            "last_event": None if last is None else {
                "occurred_at": _at(last[0]).isoformat(), "seq": last[1], "event_id": str(UUID(int=last[2]))},
        }
        if readings:
            out["readings"] = self.window.to_json() if self.window else []
        if self.unreachable:
            out["unreachable"] = list(self.unreachable)
        if self.cooling_unit is not None:
            out["cooling_unit"] = self.cooling_unit.model_dump(mode="json")
        if self.equipment:
            out["equipment"] = [e.model_dump(mode="json") for e in self.equipment]
        return out

    @classmethod
    def from_snapshot(cls, data: Mapping[str, Any]) -> RackTwin:
        """The twin a `snapshot()` was taken of."""
        if data.get("format") != 1:
            raise ValueError(f"unknown rack snapshot format {data.get('format')!r}")
        s = lambda v: None if v is None else _intern(v)  # noqa: E731
        twin = cls(
            rack_id=data["rack_id"], generation=s(data["generation"]), status=RackStatus(data["status"]),
            version=data["version"], serial_number=data["serial_number"], factory=s(data["factory"]),
            destination_facility_id=s(data["destination_facility_id"]), facility_id=s(data["facility_id"]),
            hall_id=s(data["hall_id"]), row_id=s(data["row_id"]), position=data["position"],
            status_reason=data["status_reason"], rma_number=data["rma_number"],
            intent_revision=data["intent_revision"],
            bom=BillOfMaterials.from_parts(data["components"]) if data["components"] else EMPTY_BOM,
        )
        entered, left = data["stage_entered_at"], data["stage_left_at"]
        if entered or left:
            stamps = twin.stage_stamps = _stamps()
            n = len(_STAGES)
            for stage, at in entered.items():
                stamps[_STAGE_AT[RackStatus(stage)]] = _us(datetime.fromisoformat(at))
            for stage, at in left.items():
                stamps[n + _STAGE_AT[RackStatus(stage)]] = _us(datetime.fromisoformat(at))
        if data["tests"]:
            t = twin.test_stamps = array("q", [_NEVER, 0]) * len(TEST_KINDS)
            for kind, result in data["tests"].items():
                t[2 * _TEST_AT[kind]] = _us(datetime.fromisoformat(result["occurred_at"]))
                t[2 * _TEST_AT[kind] + 1] = 1 if result["passed"] else 0
        twin.rejected = tuple(Rejection(**{**r, "occurred_at": datetime.fromisoformat(r["occurred_at"])})
                              for r in data["rejected"])
        last = data["last_event"]
        if last is not None:
            twin.last_key = (_us(datetime.fromisoformat(last["occurred_at"])), last["seq"], UUID(last["event_id"]).int)
        if data.get("readings"):
            twin.window = ReadingWindow.from_json(data["readings"], twin.rack_id)
        twin.unreachable = tuple(data.get("unreachable", ()))
        if data.get("cooling_unit"):
            twin.cooling_unit = CoolingUnitStatus.model_validate(data["cooling_unit"])
        twin.equipment = tuple(EquipmentStatus.model_validate(e) for e in data.get("equipment", ()))
        return twin


class Replay(NamedTuple):
    """A twin folded from its history, and every event that fold refused (by event_id).

    The twin itself remembers only its last `REJECTIONS_KEPT` refusals; `refused` is all of
    them, and it is what the dead letters of the rack's fold refusals must equal.
    """

    twin: RackTwin
    refused: dict[str, Rejection]


def fold_history(rack_id: str, events: Iterable[RackEvent], intents: IntentCatalog | Mapping[str, GenerationIntent],
                 *, until: datetime | None = None, snapshot: Mapping[str, Any] | None = None) -> Replay:
    """The one way a twin is built from its events: live (after a late event), `--as-of`, rebuild.

    Events are folded in key order: same set of events, any order, any repeats, same twin.
    Events after `until` are left out (time travel: the rack as of that instant). From a
    `snapshot`, only events sorting after it are folded (and only their refusals returned); the
    snapshot must not be newer than `until`. Illegal events change nothing and are returned in
    `refused`. Of two events with one event_id (a producer bug the intake refuses as a
    conflicting duplicate), the one sorting first is taken. The service gate of an entry into
    service reads the intent revision in force at that event.
    """
    twin = RackTwin.from_snapshot(snapshot) if snapshot is not None else RackTwin(rack_id)
    if twin.rack_id != rack_id:
        raise ValueError(f"snapshot is of rack {twin.rack_id}, not {rack_id}")
    floor = twin.last_key
    if until is not None and floor is not None and floor[0] > _us(until):
        raise ValueError(f"snapshot of rack {rack_id} is newer than {until.isoformat()}")
    chosen: dict[int, tuple[EventKey, RackEvent]] = {}
    for event in events:
        if until is not None and event.occurred_at > until:
            continue
        key = event.key if type(event) in RECORDED else event_key(event)  # type: ignore[attr-defined]
        if floor is not None and key <= floor:
            continue
        held = chosen.get(key[2])
        if held is None or key < held[0]:
            chosen[key[2]] = (key, event)
    refused: dict[str, Rejection] = {}
    ordered = sorted(chosen.values(), key=itemgetter(0))
    i, n = 0, len(ordered)
    while i < n:
        key, event = ordered[i]
        if event.type == INSTALLED:  # a run of part installations: packed at once (`_fit_run`)
            after = twin._fit_run(ordered, i)
            if after > i:
                i = after
                continue
        try:
            twin._apply(event, key, intents)
        except RejectedEvent as rejection:
            if isinstance(rejection, WrongRack):
                raise
            twin._reject(event, key, rejection)
            refused[str(event.event_id)] = twin.rejected[-1]
        i += 1
    return Replay(twin, refused)
