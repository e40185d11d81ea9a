"""A BMC: chassis power, air temperatures, accelerator temperatures, fans and leak detectors.

Sources in order of preference (newer schemas first; a BMC may have any subset):
power from `Sensors` (a Power sensor of the whole chassis), else `EnvironmentMetrics.PowerWatts`,
else the deprecated `Power.PowerControl[].PowerConsumedWatts`, else the sum of
`PowerSubsystem` supplies' `InputPowerWatts`; air and accelerator temperatures from `Sensors`
(`PhysicalContext` Intake, Exhaust, GPU/Accelerator), else the deprecated `Thermal`; fans from
`ThermalSubsystem/Fans` (`SpeedPercent`), else `EnvironmentMetrics.FanSpeedsPercent`, else
`Thermal.Fans` (percent, or RPM over its `MaxReadingRange`); leaks from
`ThermalSubsystem/LeakDetection`. A sensor's `ReadingTime`, when present, is the reading's time.

A rack holds several BMCs' chassis: power adds up, air temperatures take the hottest, fans
average (`twin.collect.poll` merges). A chassis contained by another one read here is not
counted twice.
"""

from __future__ import annotations

from statistics import fmean
from typing import Any

from twin.collect.resources import Get, Measured, equipment_status, link, members, number, reading_of, reading_time
from twin.collect.targets import Endpoint
from twin.collect.units import UnknownUnit, to_celsius, to_watts

__all__ = ["read_bmc"]

_ACCELERATOR = {"GPU", "Accelerator"}


def read_bmc(get: Get, endpoint: Endpoint) -> Measured:
    """Read every chassis of the BMC (or `endpoint.resource`); the same values for each of its racks."""
    out = Measured(endpoint.name)
    if endpoint.resource:
        path = f"/redfish/v1/Chassis/{endpoint.resource}"
        found = get(path)
        if found is None:
            out.missing.append(path)
        chassis = [(path, found)] if found else []
    else:
        chassis = list(members(get, "/redfish/v1/Chassis"))
    ids = {p for p, _ in chassis}
    out.status = equipment_status(endpoint, "bmc", [(f"chassis {c.get('Id') or p.rsplit('/', 1)[-1]}", c)
                                                    for p, c in chassis])
    power: list[float] = []
    inlet: list[float] = []
    outlet: list[float] = []
    accel: list[float] = []
    fans: list[float] = []
    leaks: list[bool] = []
    for path, c in chassis:
        contained = link(c.get("Links") or {}, "ContainedBy")
        s = _sensors(get, c, out)
        if contained not in ids:
            watts = s["power"] if s["power"] is not None else _power_fallback(get, c, out)
            if watts is not None:
                power.append(watts)
        thermal = None
        if not s["inlet"] or not s["outlet"]:
            thermal = get(link(c, "Thermal")) if link(c, "Thermal") else None
        inlet += s["inlet"] or _thermal_temps(thermal, "Intake")
        outlet += s["outlet"] or _thermal_temps(thermal, "Exhaust")
        accel += s["accel"] or _thermal_temps(thermal, *_ACCELERATOR)
        fans += _fans(get, c, out)
        leak = _leak(get, c)
        if leak is not None:
            leaks.append(leak)
    values: dict[str, Any] = {}
    if power:
        values["power_watts"] = sum(power)
    if inlet:
        values["inlet_temperature_celsius"] = max(inlet)
    if outlet:
        values["outlet_temperature_celsius"] = max(outlet)
    if accel:
        values["hottest_accelerator_temperature_celsius"] = max(accel)
    if fans:
        values["fan_speed_percent"] = round(fmean(fans), 2)
    if leaks:
        values["leak_detected"] = any(leaks)
    out.values = {rack: dict(values) for rack in endpoint.racks}
    return out


def _sensors(get: Get, chassis: dict[str, Any], out: Measured) -> dict[str, Any]:
    found: dict[str, Any] = {"power": None, "inlet": [], "outlet": [], "accel": []}
    total: tuple[int, float] | None = None  # (preference, watts): a Total chassis sensor beats others
    for _, s in members(get, link(chassis, "Sensors")):
        value, unit, where = number(s.get("Reading")), s.get("ReadingUnits"), s.get("PhysicalContext")
        if value is None or (s.get("Status") or {}).get("State") in ("Absent", "Disabled"):
            continue
        kind = s.get("ReadingType") or {"Cel": "Temperature", "W": "Power", "kW": "Power"}.get(unit)
        try:
            if kind == "Power" and where == "Chassis":
                rank = 0 if s.get("ElectricalContext") == "Total" else 1
                if total is None or rank < total[0]:
                    total = (rank, to_watts(value, unit))
                    out.saw(reading_time(s))
            elif kind == "Temperature" and where in ("Intake", "Exhaust", *_ACCELERATOR):
                key = "inlet" if where == "Intake" else "outlet" if where == "Exhaust" else "accel"
                found[key].append(to_celsius(value, unit))
                out.saw(reading_time(s))
        except UnknownUnit:
            out.missing.append(f"{s.get('@odata.id')} (unit {unit!r})")
    if total is not None:
        found["power"] = total[1]
    return found


def _power_fallback(get: Get, chassis: dict[str, Any], out: Measured) -> float | None:
    env = get(link(chassis, "EnvironmentMetrics")) if link(chassis, "EnvironmentMetrics") else None
    watts = reading_of(env, "PowerWatts")
    if watts is not None:
        return watts
    power = get(link(chassis, "Power")) if link(chassis, "Power") else None
    consumed = [number(c.get("PowerConsumedWatts")) for c in (power or {}).get("PowerControl", ())]
    if any(w is not None for w in consumed):
        return sum(w for w in consumed if w is not None)
    subsystem = get(link(chassis, "PowerSubsystem")) if link(chassis, "PowerSubsystem") else None
    inputs = [reading_of(get(link(psu, "Metrics")) if link(psu, "Metrics") else None, "InputPowerWatts")
              for _, psu in members(get, link(subsystem, "PowerSupplies"))]
    if any(w is not None for w in inputs):
        return sum(w for w in inputs if w is not None)
    out.missing.append(f"{chassis.get('@odata.id')}: no chassis power in Sensors, EnvironmentMetrics, Power"
                       " or PowerSubsystem")
    return None


def _thermal_temps(thermal: dict[str, Any] | None, *contexts: str) -> list[float]:
    return [t for t in (number(x.get("ReadingCelsius")) for x in (thermal or {}).get("Temperatures", ())
                        if x.get("PhysicalContext") in contexts) if t is not None]


def _fans(get: Get, chassis: dict[str, Any], out: Measured) -> list[float]:
    subsystem = get(link(chassis, "ThermalSubsystem")) if link(chassis, "ThermalSubsystem") else None
    speeds = [reading_of(f, "SpeedPercent") for _, f in members(get, link(subsystem, "Fans"))]
    if any(s is not None for s in speeds):
        return [s for s in speeds if s is not None]
    env = get(link(chassis, "EnvironmentMetrics")) if link(chassis, "EnvironmentMetrics") else None
    excerpts = [number(f.get("Reading")) for f in (env or {}).get("FanSpeedsPercent", ())]
    if any(s is not None for s in excerpts):
        return [s for s in excerpts if s is not None]
    thermal = get(link(chassis, "Thermal")) if link(chassis, "Thermal") else None
    percent = []
    for f in (thermal or {}).get("Fans", ()):
        value, unit, top = number(f.get("Reading")), f.get("ReadingUnits"), number(f.get("MaxReadingRange"))
        if value is not None and unit == "Percent":
            percent.append(value)
        elif value is not None and unit == "RPM" and top:
            percent.append(min(100.0, 100.0 * value / top))
    return percent


def _leak(get: Get, chassis: dict[str, Any]) -> bool | None:
    subsystem = get(link(chassis, "ThermalSubsystem")) if link(chassis, "ThermalSubsystem") else None
    detection = get(link(subsystem, "LeakDetection")) if link(subsystem, "LeakDetection") else None
    states = [d.get("DetectorState") for _, d in members(get, link(detection, "LeakDetectors"))]
    states = [s for s in states if s]
    return None if not states else any(s != "OK" for s in states)
