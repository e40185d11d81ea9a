"""A CDU (Redfish `CoolingUnit` under `ThermalEquipment/CDUs`): the coolant its racks get, and its health.

Per rack, from the `SecondaryCoolantConnectors` member feeding it (`connectors` in the targets
file, or the connectors in listed order when there are as many as racks): supply and return
temperature, flow and differential pressure. Without a connector per rack, every rack gets the
loop's mean temperatures and pressure and an equal share of the total flow (said in `missing`).

The CDU's own condition becomes each fed rack's `cooling_unit`: the worst of its
`Status.Health` / `HealthRollup`, of its pumps (a pump in Critical, or not Enabled, has failed),
leak detectors (any `DetectorState` not OK), filters and reservoirs, with a reason for each.
"""

from __future__ import annotations

from statistics import fmean
from typing import Any

from schemas import CoolingUnitStatus
from twin.collect.resources import Get, Measured, health_of, link, members, reading_of, worst
from twin.collect.targets import Endpoint

__all__ = ["read_cdu"]

_QUANTITIES = {
    "coolant_supply_temperature_celsius": "SupplyTemperatureCelsius",
    "coolant_return_temperature_celsius": "ReturnTemperatureCelsius",
    "coolant_flow_liters_per_minute": "FlowLitersPerMinute",
    "coolant_differential_pressure_kilopascals": "DeltaPressurekPa",
}


def read_cdu(get: Get, endpoint: Endpoint) -> Measured:
    out = Measured(endpoint.name)
    cdu_path, cdu = _the_cdu(get, endpoint, out)
    if cdu is None:
        return out
    connectors = {p.rsplit("/", 1)[-1]: c for p, c in members(get, link(cdu, "SecondaryCoolantConnectors"))}
    feeding = dict(endpoint.connectors)
    if not feeding and len(connectors) == len(endpoint.racks):
        feeding = dict(zip(endpoint.racks, connectors, strict=True))
    shared = _loop_values(list(connectors.values()), len(endpoint.racks))
    for rack in endpoint.racks:
        connector = connectors.get(feeding.get(rack, ""))
        if connector is not None:
            values = {f: v for f, key in _QUANTITIES.items() if (v := reading_of(connector, key)) is not None}
        elif rack in feeding:  # its connector is named but absent: not measured, not someone else's values
            out.missing.append(f"{cdu_path}/SecondaryCoolantConnectors/{feeding[rack]} (feeds {rack})")
            values = {}
        else:
            values = dict(shared)
        out.values[rack] = values
    out.cooling_unit = _condition(get, cdu, endpoint.cooling_unit_id or endpoint.name)
    return out


def _the_cdu(get: Get, endpoint: Endpoint, out: Measured) -> tuple[str, dict[str, Any] | None]:
    if endpoint.resource:
        path = f"/redfish/v1/ThermalEquipment/CDUs/{endpoint.resource}"
        found = get(path)
        if found is None:
            out.missing.append(path)
        return path, found
    for path, cdu in members(get, "/redfish/v1/ThermalEquipment/CDUs"):
        return path, cdu  # the first; name `resource` in the targets file for a service with several
    out.missing.append("/redfish/v1/ThermalEquipment/CDUs (no CDU)")
    return "", None


def _loop_values(connectors: list[dict[str, Any]], racks: int) -> dict[str, float]:
    """Loop-level values when no connector is known per rack: means, and the flow shared equally."""
    values: dict[str, float] = {}
    for field, key in _QUANTITIES.items():
        seen = [v for c in connectors if (v := reading_of(c, key)) is not None]
        if seen:
            values[field] = sum(seen) / racks if field == "coolant_flow_liters_per_minute" else fmean(seen)
    return values


def _condition(get: Get, cdu: dict[str, Any], cooling_unit_id: str) -> CoolingUnitStatus:
    reasons: list[str] = []
    states: list[str | None] = []
    own = health_of(cdu)
    if own and own != "ok":
        status = cdu.get("Status") or {}
        reasons.append(f"Status.Health {status.get('Health')}, HealthRollup {status.get('HealthRollup')}")
        states.append(own)
    for path, pump in members(get, link(cdu, "Pumps")):
        name = pump.get("Id") or path.rsplit("/", 1)[-1]
        health, state = health_of(pump), (pump.get("Status") or {}).get("State")
        if health == "critical" or state in ("UnavailableOffline", "Disabled"):
            reasons.append(f"pump {name} failed ({health or state})")
            states.append("critical")
        elif health == "warning":
            reasons.append(f"pump {name} warning")
            states.append("warning")
    detection = get(link(cdu, "LeakDetection")) if link(cdu, "LeakDetection") else None
    for path, detector in members(get, link(detection, "LeakDetectors")):
        state = detector.get("DetectorState")
        if state and state != "OK":
            reasons.append(f"leak detector {detector.get('Id') or path.rsplit('/', 1)[-1]} {state}")
            states.append("critical" if state == "Critical" else "warning")
    for collection, label in (("Filters", "filter"), ("Reservoirs", "reservoir")):
        for path, part in members(get, link(cdu, collection)):
            health = health_of(part)
            if health and health != "ok":
                reasons.append(f"{label} {part.get('Id') or path.rsplit('/', 1)[-1]} {health}")
                states.append(health)
    return CoolingUnitStatus(cooling_unit_id=cooling_unit_id, health=worst(*states),  # type: ignore[arg-type]
                             reasons=tuple(reasons[:32]))
