"""The poll cycle: every endpoint at once (bounded), merged per rack, one report per cycle.

    targets ─▶ ThreadPoolExecutor(concurrency) ─▶ read_bmc / read_cdu / read_pdu per endpoint
            ─▶ merge per rack ─▶ TelemetryReported (one per cycle) ─▶ fleet.telemetry.v1
            ─▶ endpoints that answered 500 or not-JSON ─▶ DeadLetter ─▶ fleet.deadletter.v1

Why threads: the DMTF client is synchronous (requests), and an endpoint's time is spent waiting
on the network, so `concurrency` threads keep that many endpoints in flight; each request has
the endpoint's timeout, and unanswered ones are retried with backoff and jitter (`client`).

Merging a rack's sources: power is the sum of its PDUs when any PDU measured it (PDUs see the
whole rack), else the sum of its BMCs' chassis; air and accelerator temperatures take the
hottest; fans average; coolant comes from its CDU; a leak anywhere is a leak. A quantity no
source measured is null. An endpoint that did not answer is named on each of its racks'
readings (`unreachable_endpoints`): the twin marks them stale, `endpoint-unreachable`.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timezone
from statistics import fmean
from typing import Any
from uuid import uuid4

import structlog
from pydantic import ValidationError

from schemas import DeadLetter, RackReading, TelemetryReported
from twin.collect.bmc import read_bmc
from twin.collect.cdu import read_cdu
from twin.collect.client import RedfishClient
from twin.collect.pdu import read_pdu
from twin.collect.resources import Get, Measured
from twin.collect.targets import Endpoint, Targets
from twin.domain.decoding import reason_for
from twin.errors import EndpointAnswerRefused, EndpointUnreachable, RejectedEvent

__all__ = ["Collector", "Cycle", "merge"]

log = structlog.get_logger(__name__)

READERS: dict[str, Callable[[Get, Endpoint], Measured]] = {"bmc": read_bmc, "cdu": read_cdu, "pdu": read_pdu}
_PAYLOAD_LIMIT = 16 * 1024


@dataclass(slots=True)
class Cycle:
    """One poll of every endpoint: the report (None when no rack has anything to say) and the rest."""

    seq: int
    started_at: datetime
    report: TelemetryReported | None
    measured: dict[str, Measured] = field(default_factory=dict)
    unreachable: dict[str, str] = field(default_factory=dict)
    """endpoint -> why (no answer after retries)."""
    refused: dict[str, EndpointAnswerRefused] = field(default_factory=dict)
    deadletters: list[DeadLetter] = field(default_factory=list)
    seconds: float = 0.0


class Collector:
    """Polls a targets file's endpoints; `poll_once` is one cycle, `run` repeats it and publishes."""

    def __init__(self, targets: Targets, *, environ: Mapping[str, str] | None = None,
                 clock: Callable[[], datetime] = lambda: datetime.now(timezone.utc)) -> None:
        self.targets = targets
        self._clock = clock
        self.clients: dict[str, RedfishClient] = {}
        for ep in targets.endpoints:  # resolve every credential now: a missing secret fails at start
            user, password = ep.credentials.resolve(environ) if ep.credentials else (None, None)
            self.clients[ep.name] = RedfishClient(ep, user, password, retries=targets.retries,
                                                  backoff_seconds=targets.backoff_seconds)
        self._pool = ThreadPoolExecutor(max_workers=min(targets.concurrency, len(targets.endpoints)),
                                        thread_name_prefix="redfish")
        self._last_seq = 0

    def __enter__(self) -> Collector:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)
        for client in self.clients.values():
            client.close()

    def poll_once(self) -> Cycle:
        """Poll every endpoint (at most `concurrency` at once) and build this cycle's report."""
        t0 = time.perf_counter()
        started = self._clock()
        seq = max(self._last_seq + 1, int(started.timestamp() * 1_000_000))  # monotonic across restarts
        self._last_seq = seq
        futures = {ep.name: self._pool.submit(self._read, ep) for ep in self.targets.endpoints}
        cycle = Cycle(seq, started, None)
        for ep in self.targets.endpoints:
            try:
                m = futures[ep.name].result()
            except EndpointUnreachable as exc:
                cycle.unreachable[ep.name] = str(exc)
                log.warning("endpoint unreachable", endpoint=ep.name, kind=ep.kind, racks=len(ep.racks),
                            detail=str(exc))
                continue
            except EndpointAnswerRefused as exc:
                cycle.refused[ep.name] = exc
                cycle.deadletters.append(self._letter(ep, exc, seq, started))
                log.warning("endpoint answer refused", endpoint=ep.name, reason=exc.reason, detail=exc.detail)
                continue
            except Exception as exc:  # noqa: BLE001 - JSON of a shape no schema allows: dead-lettered, never a crash
                refused = EndpointAnswerRefused(
                    f"a resource has a shape the Redfish schema does not allow: {type(exc).__name__}: {exc}",
                    reason="unexpected-shape", url=ep.base_url, payload="")
                cycle.refused[ep.name] = refused
                cycle.deadletters.append(self._letter(ep, refused, seq, started))
                log.warning("endpoint answer refused", endpoint=ep.name, reason=refused.reason, detail=refused.detail)
                continue
            cycle.measured[ep.name] = m
            if m.missing:
                log.debug("resources missing", endpoint=ep.name, missing=m.missing)
        readings, rejected = merge(self.targets.endpoints, cycle.measured, cycle.unreachable, started)
        for i, (rack, error, payload) in enumerate(rejected):  # a value no sensor can read: only it is refused
            cycle.deadletters.append(DeadLetter(
                reason=error.reason, detail=f"rack {rack}: {error.detail}"[:2_000], topic="redfish:merge",
                partition=0, offset=seq, index=i, rack_id=rack, source=self.targets.collector, payload=payload,
                recorded_at=started))
        if readings:
            cycle.report = TelemetryReported(
                event_id=uuid4(), occurred_at=started, source=self.targets.collector, seq=seq,
                rack_id=readings[0].rack_id if len(readings) == 1 else None, readings=tuple(readings))
        cycle.seconds = time.perf_counter() - t0
        return cycle

    def _read(self, ep: Endpoint) -> Measured:
        client = self.clients[ep.name]
        seen: dict[str, dict[str, Any] | None] = {}  # one GET per resource per cycle

        def get(path: str) -> dict[str, Any] | None:
            if path not in seen:
                seen[path] = client.get(path)
            return seen[path]

        return READERS[ep.kind](get, ep)

    def _letter(self, ep: Endpoint, exc: EndpointAnswerRefused, seq: int, at: datetime) -> DeadLetter:
        return DeadLetter(
            reason=exc.reason, detail=f"{ep.name} ({ep.kind}): {exc.detail}"[:2_000], topic=f"redfish:{ep.name}",
            partition=0, offset=seq, rack_id=ep.racks[0] if len(ep.racks) == 1 else None,
            source=self.targets.collector, payload=exc.payload[:_PAYLOAD_LIMIT], recorded_at=at)

    def run(self, publish: Callable[[Cycle], None], *, cycles: int | None = None,
            stop: threading.Event | None = None) -> int:
        """Poll every `interval_seconds` (`cycles` times, or until `stop` is set); returns cycles run."""
        stop = stop or threading.Event()
        done = 0
        while not stop.is_set() and (cycles is None or done < cycles):
            began = time.monotonic()
            cycle = self.poll_once()
            publish(cycle)
            done += 1
            log.info("poll cycle", seq=cycle.seq, endpoints=len(self.targets.endpoints),
                     readings=0 if cycle.report is None else len(cycle.report.readings),
                     unreachable=len(cycle.unreachable), refused=len(cycle.refused), seconds=round(cycle.seconds, 3))
            if cycles is not None and done >= cycles:
                break
            stop.wait(max(0.0, self.targets.interval_seconds - (time.monotonic() - began)))
        return done


def merge(endpoints: Iterable[Endpoint], measured: Mapping[str, Measured], unreachable: Mapping[str, str],
          polled_at: datetime) -> tuple[list[RackReading], list[tuple[str, RejectedEvent, str]]]:
    """One reading per rack from what its endpoints measured this cycle (see the module docstring),
    and the racks whose values break the contract (rack, why, the values as JSON)."""
    by_rack: dict[str, list[tuple[Endpoint, Measured | None]]] = {}
    for ep in endpoints:
        m = measured.get(ep.name)
        if m is None and ep.name not in unreachable:
            continue  # refused: dead-lettered, says nothing about its racks
        for rack in ep.racks:
            by_rack.setdefault(rack, []).append((ep, m))
    readings: list[RackReading] = []
    rejected: list[tuple[str, RejectedEvent, str]] = []
    for rack, sources in by_rack.items():
        got = {ep.kind: [] for ep, _ in sources}  # type: dict[str, list[dict[str, Any]]]
        times = []
        cooling_unit = None
        equipment = []
        for ep, m in sources:
            if m is None:
                continue
            got[ep.kind].append(m.values.get(rack, {}))
            times.append(m.taken_at or polled_at)  # a source without ReadingTime was read at the poll
            if m.cooling_unit is not None and cooling_unit is None:
                cooling_unit = m.cooling_unit
            if m.status is not None:
                equipment.append(m.status)
        fields = {"rack_id": rack, "occurred_at": max(times, default=polled_at), **_combine(got),
                  "unreachable_endpoints": tuple(ep.name for ep, m in sources if m is None),
                  "cooling_unit": cooling_unit, "equipment": tuple(equipment)}
        try:
            readings.append(RackReading(**fields))
        except ValidationError as exc:
            rejected.append((rack, reason_for(exc, what=f"reading of rack {rack}"),
                             json.dumps(fields, default=str)[:_PAYLOAD_LIMIT]))
    return readings, rejected


_FIELDS = tuple(f for f in RackReading.model_fields
                if f not in ("rack_id", "occurred_at", "unreachable_endpoints", "cooling_unit", "equipment"))


def _combine(got: Mapping[str, list[dict[str, Any]]]) -> dict[str, Any]:
    def all_of(field: str, kinds: Iterable[str] = ("bmc", "cdu", "pdu")) -> list[Any]:
        return [v[field] for k in kinds for v in got.get(k, ()) if field in v]

    out: dict[str, Any] = dict.fromkeys(_FIELDS)
    pdu_power = all_of("power_watts", ("pdu",))
    bmc_power = all_of("power_watts", ("bmc",))
    if pdu_power or bmc_power:
        out["power_watts"] = round(sum(pdu_power or bmc_power), 3)
    for f in ("inlet_temperature_celsius", "outlet_temperature_celsius", "hottest_accelerator_temperature_celsius"):
        if seen := all_of(f):
            out[f] = max(seen)
    if fans := all_of("fan_speed_percent"):
        out["fan_speed_percent"] = round(fmean(fans), 2)
    if leaks := all_of("leak_detected"):
        out["leak_detected"] = any(leaks)
    for f in ("coolant_supply_temperature_celsius", "coolant_return_temperature_celsius",
              "coolant_flow_liters_per_minute", "coolant_differential_pressure_kilopascals"):
        if seen := all_of(f, ("cdu",)):
            out[f] = seen[0]
    for f in ("network_links_up", "network_links_down"):
        if seen := all_of(f):
            out[f] = sum(seen)
    return out
