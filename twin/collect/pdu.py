"""A rack PDU (Redfish `PowerDistribution` under `PowerEquipment/RackPDUs`): the power its rack draws.

Power from the PDU's `Metrics.PowerWatts`, else the sum of its `Mains` circuits, else the sum of
its branch circuits, else of its outlets: the first that reports, so nothing is counted twice.
A rack on two PDUs (feeds A and B) draws their sum (`twin.collect.poll` adds them up). Energy
(`EnergykWh`) is read by the same walk but our telemetry contract carries no energy field yet.
"""

from __future__ import annotations

from typing import Any

from twin.collect.resources import Get, Measured, equipment_status, link, members, reading_of
from twin.collect.targets import Endpoint

__all__ = ["read_pdu"]


def read_pdu(get: Get, endpoint: Endpoint) -> Measured:
    out = Measured(endpoint.name)
    if endpoint.resource:
        path = f"/redfish/v1/PowerEquipment/RackPDUs/{endpoint.resource}"
        pdu = get(path)
        pdus = [(path, pdu)] if pdu else []
        if pdu is None:
            out.missing.append(path)
    else:
        pdus = list(members(get, "/redfish/v1/PowerEquipment/RackPDUs"))
    watts = [w for path, pdu in pdus if (w := _power(get, path, pdu, out)) is not None]
    out.status = equipment_status(endpoint, "pdu", [(f"PDU {p.get('Id') or path.rsplit('/', 1)[-1]}", p)
                                                    for path, p in pdus])
    share = sum(watts) / len(endpoint.racks) if watts else None  # a PDU listing several racks splits evenly
    out.values = {rack: ({} if share is None else {"power_watts": share}) for rack in endpoint.racks}
    return out


def _power(get: Get, path: str, pdu: dict[str, Any], out: Measured) -> float | None:
    metrics = get(link(pdu, "Metrics")) if link(pdu, "Metrics") else None
    watts = reading_of(metrics, "PowerWatts")
    if watts is not None:
        return watts
    for collection in ("Mains", "Branches", "Outlets"):
        seen = [w for _, c in members(get, link(pdu, collection)) if (w := reading_of(c, "PowerWatts")) is not None]
        if seen:
            return sum(seen)
    out.missing.append(f"{path}: no PowerWatts in Metrics, Mains, Branches or Outlets")
    return None
