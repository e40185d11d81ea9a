"""Redfish units (UCUM, as `ReadingUnits` spells them) to the units our contracts carry.

Excerpt properties name their unit (`FlowLitersPerMinute`, `DeltaPressurekPa`) and need none of
this; `Sensor` resources say theirs in `ReadingUnits`, which vendors fill in several ways.
"""

from __future__ import annotations

__all__ = ["UnknownUnit", "to_celsius", "to_kilopascals", "to_liters_per_minute", "to_watts"]


class UnknownUnit(ValueError):
    """Raised for a unit we cannot convert: the reading is left out, never guessed."""


def _convert(value: float, unit: str | None, table: dict[str, tuple[float, float]], default: str) -> float:
    key = unit or default
    if key not in table:
        raise UnknownUnit(f"cannot convert {unit!r} (known: {', '.join(table)})")
    scale, offset = table[key]
    return value * scale + offset


_CELSIUS = {"Cel": (1.0, 0.0), "C": (1.0, 0.0), "K": (1.0, -273.15), "[degF]": (5 / 9, -32 * 5 / 9)}
_WATTS = {"W": (1.0, 0.0), "kW": (1000.0, 0.0), "mW": (0.001, 0.0), "MW": (1e6, 0.0)}
_KPA = {"kPa": (1.0, 0.0), "Pa": (0.001, 0.0), "bar": (100.0, 0.0), "mbar": (0.1, 0.0), "[psi]": (6.894757, 0.0)}
_LPM = {"L/min": (1.0, 0.0), "L/s": (60.0, 0.0), "m3/h": (1000 / 60, 0.0), "[gal_us]/min": (3.785411784, 0.0)}


def to_celsius(value: float, unit: str | None) -> float:
    return _convert(value, unit, _CELSIUS, "Cel")


def to_watts(value: float, unit: str | None) -> float:
    return _convert(value, unit, _WATTS, "W")


def to_kilopascals(value: float, unit: str | None) -> float:
    return _convert(value, unit, _KPA, "kPa")


def to_liters_per_minute(value: float, unit: str | None) -> float:
    return _convert(value, unit, _LPM, "L/min")
