"""A rack's bill of materials: its parts by slot, their provenance, onshore share and firmware drift.

Why packed: a worker holds 100,000 twins in 500 MB, and a rack has 40 to 70 field-replaceable
parts. As pydantic `Component` objects a bill of materials would take some 40 kB a rack, as
tuples still 8 kB. Parts of one kind in one rack share everything but their serial number
(part number, supplier, country, firmware, value), so `BillOfMaterials` keeps each distinct
variant once (a `Spec` shared fleet-wide, and its unit value), one byte per slot pointing at
it, and the serial numbers in one length-prefixed string: about 1.2 kB for a 58-part rack.
`Component` objects are built only when asked for.

Onshore share (issue 3): the share of a rack's power, cooling, cabling and networking parts
made in the United States, by count and by value. Networking means NICs and switch trays (the
NVLink switch trays are the rack's fabric); compute trays are out of scope. A part is onshore
when its `country_of_manufacture` is `US`.

Firmware drift: a part whose kind has a baseline in the generation's intent and whose firmware
is not that version (an unknown version counts as drift). Kinds without a baseline (passive
parts: cabling, manifolds) are not judged.
"""

from __future__ import annotations

import sys
from array import array
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from operator import attrgetter, itemgetter
from typing import Any, NamedTuple, Protocol

from schemas import Component
from twin.errors import IllegalTransition

__all__ = [
    "EMPTY_BOM", "ONSHORE_COUNTRY", "ONSHORE_KINDS", "BillOfMaterials", "FirmwareDrift", "OnshoreShare", "Part",
    "PartLike", "Spec", "count_by_kind", "firmware_drift", "onshore_share",
]

ONSHORE_COUNTRY = "US"
ONSHORE_KINDS: frozenset[str] = frozenset(
    {"power-shelf", "psu", "cdu", "cooling-manifold", "cabling", "nic", "switch-tray"})
"""Kinds that count toward the onshore share: power, cooling, cabling and networking parts."""


class Spec(NamedTuple):
    """What parts of one kind usually share: everything but slot, serial number and unit value.

    Few distinct specs exist fleet-wide (kinds x part numbers x suppliers x firmware), so
    equal specs are one shared object (a bounded flyweight that never changes results).
    """

    kind: str
    part_number: str
    supplier: str
    country_of_manufacture: str
    firmware_version: str | None


class Part(NamedTuple):
    """One part, light: the fields of `schemas.Component`, without pydantic's per-object cost."""

    slot: str
    kind: str
    part_number: str
    serial_number: str
    supplier: str
    country_of_manufacture: str
    firmware_version: str | None
    unit_value_usd: float

    def component(self) -> Component:
        """The contract model of this part (not validated again: it was when it arrived)."""
        return Component.model_construct(**self._asdict())


class PartLike(Protocol):
    """A `Part` or a `schemas.Component`: the helpers below read only these attributes."""

    slot: str
    kind: str
    part_number: str
    serial_number: str
    supplier: str
    country_of_manufacture: str
    firmware_version: str | None
    unit_value_usd: float


_intern = sys.intern
_KEPT = 65_536
_SPECS: dict[tuple[Any, ...], Spec] = {}
_SLOT_LAYOUTS: dict[tuple[str, ...], tuple[str, ...]] = {}


def _shared(pool: dict[Any, Any], value: Any) -> Any:
    """The pooled equal of `value` (pooling it while the pool has room)."""
    held = pool.get(value)
    if held is not None:
        return held
    if len(pool) < _KEPT:
        pool[value] = value
    return value


def _spec(kind: str, part_number: str, supplier: str, country: str, firmware: str | None) -> Spec:
    """The pooled spec with these fields (a plain tuple finds its equal `Spec` in the pool)."""
    held = _SPECS.get((kind, part_number, supplier, country, firmware))
    if held is not None:
        return held
    return _shared(_SPECS, Spec(_intern(kind), _intern(part_number), _intern(supplier), _intern(country),
                                None if firmware is None else _intern(firmware)))


def _spec_of(c: PartLike | Component) -> Spec:
    return _spec(c.kind, c.part_number, c.supplier, c.country_of_manufacture, c.firmware_version)


_SLOT_OF_PART, _SERIAL_OF_PART = itemgetter(0), itemgetter(3)
_SLOT_OF, _SERIAL_OF = attrgetter("slot"), attrgetter("serial_number")
_VARIANT_OF_PART = itemgetter(1, 2, 4, 5, 6, 7)
"""A `Part` (or a tuple laid out alike) -> (kind, part_number, supplier, country, firmware, value)."""
_VARIANT_OF = attrgetter("kind", "part_number", "supplier", "country_of_manufacture", "firmware_version",
                         "unit_value_usd")


def _encode(serial: str) -> str:
    return chr(len(serial)) + serial


class BillOfMaterials:
    """The parts of one rack by slot, packed; an immutable value (each change returns a new one).

    Layout: slot names (a tuple shared by racks built alike), serial numbers in one
    length-prefixed string, the rack's distinct (spec, unit value) variants as a tuple of
    pooled specs beside an array of values, and one byte per slot naming its variant.
    Slots keep the order parts were fitted in. Changes check first and raise
    `IllegalTransition` (the slot is taken, empty, or holds another serial), so a rejected
    event leaves the rack's parts as they were.
    """

    __slots__ = ("_slots", "_serials", "_specs", "_values", "_index")

    def __init__(self, slots: tuple[str, ...] = (), serials: str = "", specs: tuple[Spec, ...] = (),
                 values: array | None = None, index: bytes | array = b"") -> None:
        self._slots = _shared(_SLOT_LAYOUTS, slots)
        self._serials = serials
        self._specs = specs
        self._values = array("d") if values is None else values
        self._index = index

    # --- reading ---------------------------------------------------------------------------

    def __len__(self) -> int:
        return len(self._slots)

    def __bool__(self) -> bool:
        return bool(self._slots)

    def __contains__(self, slot: object) -> bool:
        return slot in self._slots

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, BillOfMaterials):
            return NotImplemented
        return list(self) == list(other)

    def __hash__(self) -> int:
        return hash((self._slots, self._serials))

    def __repr__(self) -> str:
        return f"BillOfMaterials({len(self)} parts)"

    def _part(self, i: int, pos: int) -> tuple[Part, int]:
        """Part `i`, whose serial starts at `pos`; and where the next serial starts."""
        serials = self._serials
        n = ord(serials[pos])
        v = self._index[i]
        spec = self._specs[v]
        return Part(self._slots[i], spec.kind, spec.part_number, serials[pos + 1:pos + 1 + n], spec.supplier,
                    spec.country_of_manufacture, spec.firmware_version, self._values[v]), pos + 1 + n

    def __iter__(self) -> Iterator[Part]:
        """Every part, in the order the slots were filled."""
        pos = 0
        for i in range(len(self._slots)):
            part, pos = self._part(i, pos)
            yield part

    def get(self, slot: str) -> Part | None:
        """The part in `slot`, or None when it is empty."""
        try:
            i = self._slots.index(slot)
        except ValueError:
            return None
        return self._part(i, self._offset(i))[0]

    def components(self) -> dict[str, Component]:
        """Slot -> `schemas.Component`, built on demand (for APIs and reports, not hot paths)."""
        return {p.slot: p.component() for p in self}

    def count_by_kind(self) -> Counter[str]:
        """Parts per kind, without unpacking a single part."""
        out: Counter[str] = Counter()
        for v, n in Counter(self._index).items():
            out[self._specs[v].kind] += n
        return out

    def firmware_by_kind(self) -> dict[str, dict[str | None, int]]:
        """Kind -> firmware version -> parts: what count and drift checks need, without unpacking parts."""
        out: dict[str, dict[str | None, int]] = {}
        specs = self._specs
        for v, n in Counter(self._index).items():
            kind, fw = specs[v].kind, specs[v].firmware_version
            versions = out.get(kind)
            if versions is None:
                out[kind] = {fw: n}
            else:
                versions[fw] = versions.get(fw, 0) + n
        return out

    def _offset(self, i: int) -> int:
        serials, pos = self._serials, 0
        for _ in range(i):
            pos += 1 + ord(serials[pos])
        return pos

    def _holds_serial(self, serial: str) -> bool:
        return _encode(serial) in self._serials

    # --- changing (each returns a new value) -----------------------------------------------

    def _with_variant(self, spec: Spec, value: float) -> tuple[tuple[Spec, ...], array, int]:
        """The variants with (spec, value) among them, and its number."""
        specs, values = self._specs, self._values
        for v, held in enumerate(specs):
            if held == spec and values[v] == value:
                return specs, values, v
        grown = array("d", values)
        grown.append(value)
        return specs + (spec,), grown, len(specs)

    @staticmethod
    def _index_with(index: bytes | array, at: int | None, v: int) -> bytes | array:
        """`index` with `v` appended (at None) or put at `at`; bytes while variants fit a byte."""
        if v > 255 and isinstance(index, bytes):
            index = array("H", list(index))  # (array("H", some_bytes) would read the bytes as raw memory)
        if isinstance(index, bytes):
            return index + bytes((v,)) if at is None else index[:at] + bytes((v,)) + index[at + 1:]
        grown = array("H", index)  # a copy: bills are values
        if at is None:
            grown.append(v)
        else:
            grown[at] = v
        return grown

    def installed(self, component: PartLike | Component) -> BillOfMaterials:
        """This bill with `component` fitted into its (empty) slot."""
        slot = component.slot
        if slot in self._slots:
            held = self.get(slot)
            raise IllegalTransition(
                f"slot {slot} already holds {held.kind} {held.serial_number}; "  # type: ignore[union-attr]
                f"a swap is component.replaced")
        if self._holds_serial(component.serial_number):
            raise IllegalTransition(f"serial {component.serial_number} is already fitted in this rack")
        specs, values, v = self._with_variant(_spec_of(component), float(component.unit_value_usd))
        return BillOfMaterials(self._slots + (_intern(slot),), self._serials + _encode(component.serial_number),
                               specs, values, self._index_with(self._index, None, v))

    def installed_many(self, components: Iterable[PartLike | Component]) -> tuple[BillOfMaterials, int]:
        """This bill with `components` fitted one after another, packed once; and how many were fitted.

        Exactly `installed` applied in turn (same checks, same variant numbering, same packing),
        but stopping before the first part `installed` would refuse: the caller folds that one
        on its own (to record the refusal) and may go on with the rest. Why: a rack's history
        fits its 40 to 70 parts in a row, and re-packing the bill for each is quadratic.
        """
        components = list(components)
        fast = self._all_fit(components)
        if fast is not None:
            return fast, len(components)
        slots, serials, index = list(self._slots), self._serials, self._index
        specs, values = self._specs, self._values
        taken = set(slots)
        variants = self._variant_numbers()
        added_specs: list[Spec] = []
        added_values: list[float] = []
        added_index: list[int] = []
        for component in components:
            slot, serial = component.slot, component.serial_number
            encoded = chr(len(serial)) + serial  # `_encode`
            if slot in taken or encoded in serials:
                break
            variant = _VARIANT_OF_PART(component) if isinstance(component, tuple) else _VARIANT_OF(component)
            v = variants.get(variant)
            if v is None or variant[5] != variant[5]:  # (NaN equals no variant, as in `_with_variant`)
                v = variants[variant] = len(specs) + len(added_specs)
                added_specs.append(_spec(*variant[:5]))
                added_values.append(float(variant[5]))
            taken.add(slot)
            slots.append(_intern(slot))
            serials += encoded
            added_index.append(v)
        fitted = len(added_index)
        if not fitted:
            return self, 0
        if added_specs:
            grown = array("d", values)
            grown.extend(added_values)
            specs, values = specs + tuple(added_specs), grown
        if isinstance(index, bytes) and len(specs) <= 256:
            index = index + bytes(added_index)
        else:  # as `_index_with`: two bytes a slot once a variant number passes 255, and for good
            index = array("H", list(index))  # (from bytes directly, it would read them as raw memory)
            index.extend(added_index)
        return BillOfMaterials(tuple(slots), serials, specs, values, index), fitted

    def _variant_numbers(self) -> dict[tuple[Any, ...], int]:
        """(kind, part number, supplier, country, firmware, value) -> variant; the first equal one wins,
        as in `_with_variant`."""
        specs, values = self._specs, self._values
        return {(*specs[v], values[v]): v for v in range(len(specs) - 1, -1, -1)}

    def _all_fit(self, components: list[Any]) -> BillOfMaterials | None:
        """`installed_many` when every part fits, checked and packed with set and map calls; None
        when that is not certain (then the part-by-part loop decides).

        Certain means: slots and serials all new and distinct, no unit value NaN, and every serial
        (held or new) shorter than 32 characters and free of control characters. Then a
        length-prefixed serial (`_encode`) can only be found in the packed string where it starts
        a serial, so `installed`'s substring check is exact set membership.
        """
        if isinstance(components[0], tuple) if components else False:
            slots_of, serials_of, variants_of = _SLOT_OF_PART, _SERIAL_OF_PART, _VARIANT_OF_PART
        else:
            slots_of, serials_of, variants_of = _SLOT_OF, _SERIAL_OF, _VARIANT_OF
        try:
            new_slots = list(map(slots_of, components))
            new_serials = list(map(serials_of, components))
            keys = list(map(variants_of, components))
        except (AttributeError, IndexError, TypeError):
            return None
        held = self._held_serials()
        joined = "".join(new_serials)
        if (held is None or not joined.isprintable() or max(map(len, new_serials), default=0) >= 32
                or len(set(new_slots)) != len(new_slots) or not self._slots_free(new_slots)
                or len(set(new_serials)) != len(new_serials) or not held.isdisjoint(new_serials)):
            return None
        numbers = self._variant_numbers()
        specs, values = list(self._specs), list(self._values)
        for key in dict.fromkeys(keys):  # distinct variants, in first-seen order
            value = key[5]
            if value != value or type(value) not in (float, int):
                return None
            if key not in numbers:
                numbers[key] = len(specs)
                specs.append(_spec(*key[:5]))
                values.append(float(value))
        added = list(map(numbers.__getitem__, keys))
        index: bytes | array = self._index
        if isinstance(index, bytes) and len(specs) <= 256:
            index = index + bytes(added)
        else:
            index = array("H", list(index))
            index.extend(added)
        return BillOfMaterials(self._slots + tuple(map(_intern, new_slots)),
                               self._serials + "".join([chr(len(s)) + s for s in new_serials]),
                               tuple(specs), array("d", values), index)

    def _slots_free(self, slots: list[str]) -> bool:
        return self._slots == () or set(self._slots).isdisjoint(slots)

    def _held_serials(self) -> set[str] | None:
        """The serials held, when each is shorter than 32 characters and free of control characters."""
        out: set[str] = set()
        packed, pos = self._serials, 0
        while pos < len(packed):
            n = ord(packed[pos])
            serial = packed[pos + 1:pos + 1 + n]
            if n >= 32 or not serial.isprintable():
                return None
            out.add(serial)
            pos += 1 + n
        return out

    def replaced(self, removed_serial_number: str, component: PartLike | Component) -> BillOfMaterials:
        """This bill with the part `removed_serial_number` in `component.slot` swapped for `component`."""
        slot = component.slot
        held = self.get(slot)
        if held is None:
            raise IllegalTransition(f"slot {slot} is empty: nothing to replace (fit a part with component.installed)")
        if held.serial_number != removed_serial_number:
            raise IllegalTransition(
                f"slot {slot} holds serial {held.serial_number}, not {removed_serial_number}")
        if held.kind != component.kind:
            raise IllegalTransition(f"slot {slot} holds a {held.kind}; it cannot take a {component.kind}")
        if component.serial_number != removed_serial_number and self._holds_serial(component.serial_number):
            raise IllegalTransition(f"serial {component.serial_number} is already fitted in this rack")
        i = self._slots.index(slot)
        pos = self._offset(i)
        end = pos + 1 + ord(self._serials[pos])
        specs, values, v = self._with_variant(_spec_of(component), float(component.unit_value_usd))
        serials = self._serials[:pos] + _encode(component.serial_number) + self._serials[end:]
        return BillOfMaterials(self._slots, serials, specs, values, self._index_with(self._index, i, v))._pruned()

    def flashed(self, slot: str, firmware_version: str) -> BillOfMaterials:
        """This bill with the part in `slot` running `firmware_version`."""
        held = self.get(slot)
        if held is None:
            raise IllegalTransition(f"slot {slot} is empty: no part to flash")
        i = self._slots.index(slot)
        spec = _spec(held.kind, held.part_number, held.supplier, held.country_of_manufacture, firmware_version)
        specs, values, v = self._with_variant(spec, held.unit_value_usd)
        return BillOfMaterials(self._slots, self._serials, specs, values,
                               self._index_with(self._index, i, v))._pruned()

    def _pruned(self) -> BillOfMaterials:
        """Drop variants no slot points at any more (after swaps and flashes), so equal bills pack alike."""
        used = sorted(set(self._index))
        if len(used) == len(self._specs):
            return self
        remap = {old: new for new, old in enumerate(used)}
        index: bytes | array = bytes(remap[v] for v in self._index) if len(used) <= 256 else \
            array("H", [remap[v] for v in self._index])
        return BillOfMaterials(self._slots, self._serials, tuple(self._specs[v] for v in used),
                               array("d", [self._values[v] for v in used]), index)

    # --- JSON ------------------------------------------------------------------------------

    def to_json(self) -> list[dict[str, Any]]:
        """Parts as JSON objects (the `schemas.Component` fields, in their order), in slot order."""
        bases = [dict(zip(Part._fields, (None, s.kind, s.part_number, None, s.supplier, s.country_of_manufacture,
                                         s.firmware_version, value), strict=True))
                 for s, value in zip(self._specs, self._values, strict=True)]
        serials, index, out, pos = self._serials, self._index, [], 0
        for i, slot in enumerate(self._slots):
            n = ord(serials[pos])
            d = bases[index[i]].copy()
            d["slot"] = slot
            d["serial_number"] = serials[pos + 1:pos + 1 + n]
            out.append(d)
            pos += 1 + n
        return out

    @classmethod
    def from_parts(cls, parts: Iterable[PartLike | Component | Mapping[str, Any]]) -> BillOfMaterials:
        """A bill from parts in fitting order (`Part`, `Component` or their JSON objects), in one pass."""
        slots: list[str] = []
        serials: list[str] = []
        index: list[int] = []
        variants: dict[tuple[Spec, float], int] = {}
        seen_slots: set[str] = set()
        seen_serials: set[str] = set()
        for p in parts:
            if isinstance(p, dict) or not hasattr(p, "slot"):  # JSON objects (a Mapping check is slow)
                slot, serial, value = p["slot"], p["serial_number"], p["unit_value_usd"]
                spec = _spec(p["kind"], p["part_number"], p["supplier"], p["country_of_manufacture"],
                             p.get("firmware_version"))
            else:
                known: PartLike | Component = p  # type: ignore[assignment]
                slot, serial, value, spec = known.slot, known.serial_number, known.unit_value_usd, _spec_of(known)
            if slot in seen_slots:
                raise IllegalTransition(f"slot {slot} is listed twice")
            if serial in seen_serials:
                raise IllegalTransition(f"serial {serial} is listed twice")
            seen_slots.add(slot)
            seen_serials.add(serial)
            slots.append(_intern(slot))
            serials.append(_encode(serial))
            index.append(variants.setdefault((spec, float(value)), len(variants)))
        return cls(tuple(slots), "".join(serials), tuple(spec for spec, _ in variants),
                   array("d", [value for _, value in variants]),
                   bytes(index) if len(variants) <= 256 else array("H", index))


EMPTY_BOM = BillOfMaterials()
"""The bill of a rack with no parts yet (shared by every such rack)."""


@dataclass(frozen=True, slots=True)
class OnshoreShare:
    """US-made share of a rack's power, cooling, cabling and networking parts."""

    parts: int
    onshore_parts: int
    value_usd: float
    onshore_value_usd: float

    @property
    def by_count(self) -> float | None:
        """Onshore parts / parts in scope; None when the rack has no part in scope."""
        return self.onshore_parts / self.parts if self.parts else None

    @property
    def by_value(self) -> float | None:
        """Onshore value / value in scope; None when the parts in scope have no value."""
        return self.onshore_value_usd / self.value_usd if self.value_usd else None


def onshore_share(parts: Iterable[PartLike]) -> OnshoreShare:
    """The onshore share of `parts` (a `BillOfMaterials`, `Part`s or `Component`s)."""
    n = onshore = 0
    value = onshore_value = 0.0
    for p in parts:
        if p.kind not in ONSHORE_KINDS:
            continue
        n += 1
        value += p.unit_value_usd
        if p.country_of_manufacture == ONSHORE_COUNTRY:
            onshore += 1
            onshore_value += p.unit_value_usd
    return OnshoreShare(n, onshore, value, onshore_value)


class FirmwareDrift(NamedTuple):
    """A part whose firmware is not its kind's baseline."""

    slot: str
    kind: str
    firmware_version: str | None
    baseline: str


def firmware_drift(parts: Iterable[PartLike], baseline: Mapping[str, str]) -> list[FirmwareDrift]:
    """Parts off their kind's baseline version (kinds without a baseline are not judged)."""
    out = []
    for p in parts:
        wanted = baseline.get(p.kind)
        if wanted is not None and p.firmware_version != wanted:
            out.append(FirmwareDrift(p.slot, p.kind, p.firmware_version, wanted))
    return out


def count_by_kind(parts: Iterable[PartLike]) -> Counter[str]:
    """Parts per kind."""
    if isinstance(parts, BillOfMaterials):
        return parts.count_by_kind()
    return Counter(p.kind for p in parts)
