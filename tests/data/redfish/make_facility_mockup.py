"""Writes tests/data/redfish/facility-cdu-pdu: a CDU and rack PDU mockup following DMTF schemas.

Run: python tests/data/redfish/make_facility_mockup.py tests/data/redfish/facility-cdu-pdu
CDU 1 is healthy; CDU 2 is Warning (rollup Critical) with pump 2 failed; rack PDU 3 has no Metrics."""
import json, os, sys
root = sys.argv[1]
def put(path, body):
    d = os.path.join(root, path)
    os.makedirs(d, exist_ok=True)
    body = {"@odata.id": "/redfish/v1" + ("/" + path if path else ""), **body}
    with open(os.path.join(d, "index.json"), "w") as f:
        json.dump(body, f, indent=4); f.write("\n")
def ref(p): return {"@odata.id": "/redfish/v1/" + p}
def coll(path, typ, name, ids):
    put(path, {"@odata.type": f"#{typ}.{typ}", "Name": name, "Members@odata.count": len(ids),
               "Members": [ref(f"{path}/{i}") for i in ids]})
ok = {"State": "Enabled", "Health": "OK"}
put("", {"@odata.type": "#ServiceRoot.v1_16_0.ServiceRoot", "Id": "RootService", "Name": "Facility Redfish Service",
         "RedfishVersion": "1.18.0", "UUID": "5b1e4a2c-7f0d-4c2b-9a51-3f2b8d1c0e01",
         "ThermalEquipment": ref("ThermalEquipment"), "PowerEquipment": ref("PowerEquipment"),
         "SessionService": ref("SessionService"), "Links": {"Sessions": ref("SessionService/Sessions")}})
put("SessionService", {"@odata.type": "#SessionService.v1_1_9.SessionService", "Id": "SessionService",
                       "Name": "Session Service", "ServiceEnabled": True, "SessionTimeout": 600,
                       "Status": ok, "Sessions": ref("SessionService/Sessions")})
coll("SessionService/Sessions", "SessionCollection", "Sessions", [])
put("ThermalEquipment", {"@odata.type": "#ThermalEquipment.v1_1_0.ThermalEquipment", "Id": "ThermalEquipment",
                         "Name": "Cooling equipment", "Status": ok, "CDUs": ref("ThermalEquipment/CDUs")})
coll("ThermalEquipment/CDUs", "CoolingUnitCollection", "Coolant distribution units", ["1", "2"])
cdus = {
    "1": {"health": {"State": "Enabled", "Health": "OK", "HealthRollup": "OK"},
          "pumps": {"1": ok, "2": ok},
          "connectors": {"A": (40.2, 30.1, 41.3, 110.0), "B": (38.7, 30.4, 42.0, 108.5)}},
    "2": {"health": {"State": "Enabled", "Health": "Warning", "HealthRollup": "Critical"},
          "pumps": {"1": ok, "2": {"State": "Enabled", "Health": "Critical"}},
          "connectors": {"A": (22.0, 31.0, 45.5, 60.0), "B": (21.5, 31.2, 46.1, 58.0), "C": (20.9, 31.1, 46.4, 57.5)}},
}
for cid, c in cdus.items():
    base = f"ThermalEquipment/CDUs/{cid}"
    put(base, {"@odata.type": "#CoolingUnit.v1_1_0.CoolingUnit", "Id": cid, "Name": f"CDU {cid}",
               "EquipmentType": "CDU", "Manufacturer": "Contoso Cooling", "Model": "LC-400",
               "SerialNumber": f"CDU-000{cid}", "Status": c["health"], "CoolingCapacityWatts": 400000,
               "Coolant": {"CoolantType": "Water", "DensityKgPerCubicMeter": 1000, "SpecificHeatkJoulesPerKgK": 4.18},
               "SecondaryCoolantConnectors": ref(f"{base}/SecondaryCoolantConnectors"),
               "Pumps": ref(f"{base}/Pumps"), "Filters": ref(f"{base}/Filters"),
               "Reservoirs": ref(f"{base}/Reservoirs"), "LeakDetection": ref(f"{base}/LeakDetection")})
    coll(f"{base}/SecondaryCoolantConnectors", "CoolantConnectorCollection", "Secondary coolant connectors",
         list(c["connectors"]))
    for k, (flow, sup, ret, dp) in c["connectors"].items():
        put(f"{base}/SecondaryCoolantConnectors/{k}", {
            "@odata.type": "#CoolantConnector.v1_0_1.CoolantConnector", "Id": k, "Name": f"Secondary loop {k}",
            "CoolantConnectorType": "Pair", "Status": ok, "RatedFlowLitersPerMinute": 60,
            "FlowLitersPerMinute": {"Reading": flow}, "SupplyTemperatureCelsius": {"Reading": sup},
            "ReturnTemperatureCelsius": {"Reading": ret}, "DeltaPressurekPa": {"Reading": dp},
            "SupplyPressurekPa": {"Reading": 250.0}, "ReturnPressurekPa": {"Reading": round(250.0 - dp, 1)}})
    coll(f"{base}/Pumps", "PumpCollection", "Pumps", list(c["pumps"]))
    for k, status in c["pumps"].items():
        failed = status.get("Health") == "Critical"
        put(f"{base}/Pumps/{k}", {"@odata.type": "#Pump.v1_0_1.Pump", "Id": k, "Name": f"Pump {k}",
                                  "PumpType": "Liquid", "Status": status, "ServiceHours": 8123.5,
                                  "PumpSpeedPercent": {"Reading": 0 if failed else 62.5, "SpeedRPM": 0 if failed else 3100}})
    coll(f"{base}/Filters", "FilterCollection", "Filters", ["1"])
    put(f"{base}/Filters/1", {"@odata.type": "#Filter.v1_0_1.Filter", "Id": "1", "Name": "Secondary loop filter",
                              "Status": ok, "RatedServiceHours": 8760, "ServiceHours": 3120.0,
                              "ServicedDate": "2026-06-01T00:00:00Z"})
    coll(f"{base}/Reservoirs", "ReservoirCollection", "Reservoirs", ["1"])
    put(f"{base}/Reservoirs/1", {"@odata.type": "#Reservoir.v1_0_0.Reservoir", "Id": "1", "Name": "Expansion tank",
                                 "ReservoirType": "Reserve", "CapacityLiters": 40, "Status": ok})
    put(f"{base}/LeakDetection", {"@odata.type": "#LeakDetection.v1_0_1.LeakDetection", "Id": "LeakDetection",
                                  "Name": "Leak detection", "Status": ok,
                                  "LeakDetectors": ref(f"{base}/LeakDetection/LeakDetectors")})
    coll(f"{base}/LeakDetection/LeakDetectors", "LeakDetectorCollection", "Leak detectors", ["Tray"])
    put(f"{base}/LeakDetection/LeakDetectors/Tray", {
        "@odata.type": "#LeakDetector.v1_1_0.LeakDetector", "Id": "Tray", "Name": "Drip tray",
        "LeakDetectorType": "Moisture", "DetectorState": "OK", "Status": ok})
put("PowerEquipment", {"@odata.type": "#PowerEquipment.v1_2_0.PowerEquipment", "Id": "PowerEquipment",
                       "Name": "Power equipment", "Status": ok, "RackPDUs": ref("PowerEquipment/RackPDUs")})
coll("PowerEquipment/RackPDUs", "PowerDistributionCollection", "Rack PDUs", ["1", "2", "3"])
pdus = {"1": (6100.0, [3050.0, 3050.0]), "2": (5900.0, [2950.0, 2950.0]), "3": (None, [2400.0, 2300.0])}
for pid, (total, outlets) in pdus.items():
    base = f"PowerEquipment/RackPDUs/{pid}"
    body = {"@odata.type": "#PowerDistribution.v1_3_0.PowerDistribution", "Id": pid, "Name": f"Rack PDU {pid}",
            "EquipmentType": "RackPDU", "Manufacturer": "Contoso Power", "Model": "RP-63A",
            "SerialNumber": f"PDU-000{pid}", "Status": ok, "Mains": ref(f"{base}/Mains"),
            "Branches": ref(f"{base}/Branches"), "Outlets": ref(f"{base}/Outlets")}
    if total is not None:  # PDU 3 has no Metrics: its power comes from its mains
        body["Metrics"] = ref(f"{base}/Metrics")
        put(f"{base}/Metrics", {"@odata.type": "#PowerDistributionMetrics.v1_3_0.PowerDistributionMetrics",
                                "Id": "Metrics", "Name": f"Rack PDU {pid} metrics",
                                "PowerWatts": {"Reading": total}, "EnergykWh": {"Reading": 18250.4}})
    put(base, body)
    mains = sum(outlets)
    coll(f"{base}/Mains", "CircuitCollection", "Mains", ["1"])
    put(f"{base}/Mains/1", {"@odata.type": "#Circuit.v1_7_0.Circuit", "Id": "1", "Name": "Mains input",
                            "CircuitType": "Mains", "PhaseWiringType": "ThreePhase5Wire", "NominalVoltage": "AC400V",
                            "RatedCurrentAmps": 63, "BreakerState": "Normal", "Status": ok,
                            "PowerWatts": {"Reading": mains}, "EnergykWh": {"Reading": 18250.4},
                            "CurrentAmps": {"Reading": round(mains / 400 / 1.732, 2)}, "Voltage": {"Reading": 400.0}})
    coll(f"{base}/Branches", "CircuitCollection", "Branch circuits", ["A"])
    put(f"{base}/Branches/A", {"@odata.type": "#Circuit.v1_7_0.Circuit", "Id": "A", "Name": "Branch A",
                               "CircuitType": "Branch", "BreakerState": "Normal", "Status": ok,
                               "PowerWatts": {"Reading": mains}})
    coll(f"{base}/Outlets", "OutletCollection", "Outlets", [f"A{i + 1}" for i in range(len(outlets))])
    for i, w in enumerate(outlets):
        put(f"{base}/Outlets/A{i + 1}", {"@odata.type": "#Outlet.v1_4_0.Outlet", "Id": f"A{i + 1}",
                                         "Name": f"Outlet A{i + 1}", "OutletType": "C19", "PowerState": "On",
                                         "Status": ok, "PowerWatts": {"Reading": w},
                                         "CurrentAmps": {"Reading": round(w / 230, 2)}, "Voltage": {"Reading": 230.0}})
