"""`twin demo --redfish`: a few racks measured by a real Redfish collector beside the simulator.

`sushy-static` serves DMTF's rackmount BMC mockup with our CDU and rack PDU mockups beside it
(one service, as `combined_mockup` lays them out); the collector polls it for the racks of one
row, and the simulator stops reporting those racks, so their twins show the mockups' values.
Their topology is declared too: CDU 1 feeds the first two racks, CDU 2 (pump 2 failed) the rest,
so `twin topology cdus` has something to say while the demo runs.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import threading
import time
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import orjson
import structlog

from twin.collect.poll import Collector, Cycle
from twin.collect.targets import Targets
from twin.embedded.simulator import FleetSimulator, Message
from twin.embedded.stack import spawn_child
from twin.errors import StackError, TwinError

__all__ = ["DEFAULT_MOCKUPS", "DemoCollector", "combined_mockup", "start_demo_collector"]

log = structlog.get_logger(__name__)

DEFAULT_MOCKUPS = Path(__file__).resolve().parents[2] / "tests" / "data" / "redfish"
"""The mockups in a checkout of this repository (they are test data, not shipped in the wheel)."""


def combined_mockup(mockups: Path, into: Path) -> Path:
    """One service tree: DMTF's rackmount1 BMC, plus ThermalEquipment and PowerEquipment from
    facility-cdu-pdu, linked from the service root as a real service would."""
    bmc, facility = mockups / "dmtf-public-rackmount1", mockups / "facility-cdu-pdu"
    for needed in (bmc, facility):
        if not (needed / "index.json").is_file():
            raise StackError(f"no Redfish mockup at {needed}: run from a checkout, or pass --redfish-mockups DIR")
    tree = into / "redfish-mockup"
    shutil.rmtree(tree, ignore_errors=True)
    shutil.copytree(bmc, tree)
    root = json.loads((tree / "index.json").read_text())
    for part in ("ThermalEquipment", "PowerEquipment"):
        shutil.copytree(facility / part, tree / part)
        root[part] = {"@odata.id": f"/redfish/v1/{part}"}
    (tree / "index.json").write_text(json.dumps(root, indent=4))
    return tree


@dataclass(slots=True)
class DemoCollector:
    racks: frozenset[str]
    topology: list[Message]
    thread: threading.Thread

    def without_collected(self, message: Message) -> Message | None:
        """The simulator's message minus readings of racks the collector reports (None: nothing left)."""
        if message.role != "telemetry" or message.bad is not None:
            return message  # crafted bad input goes through as it is: the worker must dead-letter it
        try:
            body = orjson.loads(message.value)
        except orjson.JSONDecodeError:
            return message
        readings = body.get("readings")
        if not isinstance(readings, list) or not any(r.get("rack_id") in self.racks for r in readings
                                                     if isinstance(r, dict)):
            return message
        kept = [r for r in readings if not (isinstance(r, dict) and r.get("rack_id") in self.racks)]
        if not kept:
            return None
        body["readings"] = kept
        return message._replace(value=orjson.dumps(body))


def start_demo_collector(sim: FleetSimulator, mockups: Path, state_dir: Path, children: dict[str, Any],
                         publish: Callable[[Message], None], stop: threading.Event, *,
                         racks: int = 4, interval_s: float = 2.0) -> DemoCollector:
    """Serve the mockups (a child), pick `racks` powered racks of one row, poll them every `interval_s`."""
    from twin.domain.topology import declarations

    chosen = _one_row(sim, racks)
    tree = combined_mockup(mockups, state_dir)
    port = _free_port()
    exe = Path(sys.executable).with_name("sushy-static")
    children["sushy-static"] = spawn_child([str(exe), "-i", "127.0.0.1", "-p", str(port), "-m", str(tree)],
                                           env=dict(os.environ), log_path=state_dir / "logs" / "sushy-static.log")
    url = f"http://127.0.0.1:{port}"
    _wait_for(url, children["sushy-static"])
    a, b, *rest = chosen
    targets = Targets.model_validate({"collector": "demo-redfish", "interval_seconds": interval_s, "retries": 1,
                                      "backoff_seconds": 0.2, "endpoints": [
        {"name": "bmc-1", "url": url, "kind": "bmc", "racks": [a], "resource": "1U", "auth": "basic"},
        {"name": "cdu-1", "url": url, "kind": "cdu", "racks": [a, b], "resource": "1"},
        {"name": "pdu-1", "url": url, "kind": "pdu", "racks": [b], "resource": "1"},
        *([{"name": "cdu-2", "url": url, "kind": "cdu", "racks": rest, "resource": "2"},
           {"name": "pdu-3", "url": url, "kind": "pdu", "racks": rest, "resource": "3"}] if rest else []),
    ]})
    topology = {"coolant_loops": [{"loop_id": "demo-loop-1", "cooling_unit_id": "cdu-1", "racks": [a, b]},
                                  *([{"loop_id": "demo-loop-2", "cooling_unit_id": "cdu-2", "racks": rest}]
                                    if rest else [])],
                "power_feeds": [{"feed_id": "demo-feed-a", "side": "A", "racks": chosen},
                                {"feed_id": "demo-feed-b", "side": "B", "racks": chosen[:2]}]}
    declared = [Message("intent", b"topology", e.model_dump_json().encode())
                for e in declarations(topology, source="demo", now=datetime.now(timezone.utc))]

    def send(cycle: Cycle) -> None:
        if cycle.report is not None:
            publish(Message("telemetry", b"demo-redfish", cycle.report.model_dump_json().encode()))
        for letter in cycle.deadletters:
            publish(Message("deadletter", letter.topic.encode(), letter.model_dump_json().encode()))

    def run() -> None:
        with Collector(targets) as collector:
            try:
                collector.run(send, stop=stop)
            except TwinError as exc:  # the broker went away: the demo is stopping, or will say why
                if not stop.is_set():
                    log.error("the demo's Redfish collector stopped", error=str(exc))

    thread = threading.Thread(target=run, name="redfish-collector", daemon=True)
    return DemoCollector(frozenset(chosen), declared, thread)


def _one_row(sim: FleetSimulator, n: int) -> list[str]:
    rows: dict[tuple[str, str, str], list[str]] = {}
    for rack in sim.powered_racks:
        rows.setdefault((rack.facility_id, rack.hall_id, rack.row_id), []).append(rack.rack_id)
    best: Sequence[str] = max(rows.values(), key=len, default=[])
    if len(best) < 2:
        raise StackError("the simulated fleet has no row with two powered racks for the Redfish collector;"
                         " use more --racks")
    return sorted(best)[:n]


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_for(url: str, proc: Any) -> None:
    deadline = time.monotonic() + 20
    while True:
        try:
            urllib.request.urlopen(f"{url}/redfish/v1/", timeout=1).read()
            return
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise StackError(f"sushy-static did not start at {url}") from None
            time.sleep(0.1)
