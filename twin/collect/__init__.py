"""The Redfish collector: poll BMCs, CDUs and rack PDUs; publish one telemetry report per cycle.

`targets` (the targets file), `client` (one endpoint over HTTP), `bmc` / `cdu` / `pdu` (what each
kind of endpoint measures, mapped to our contracts), `poll` (the cycle: bounded concurrency,
merge per rack, publish, dead letters), `units` and `resources` (Redfish reading helpers).
"""
