"""Endpoints polled per second by one collector process, against a fast local Redfish server.

    python bench/collector.py [--endpoints 64] [--cycles 3] [--concurrency 1,4,16,64]
                              [--out bench/reports/collector.md]

The server is a separate process (so it does not share the collector's GIL): a threaded
`http.server` answering from memory with the test mockups (DMTF's rackmount BMC, our CDU and
rack PDU), every file read once at start. It is faster than `sushy-static`, which is single
threaded and reads each file per request; real BMCs are slower than both (tens to hundreds of
milliseconds per GET), which is why the collector keeps `concurrency` endpoints in flight.

Side by side, per endpoint kind and concurrency, in one run:
  (a) bare: a plain `requests.Session` per endpoint GETs the same paths the collector's poll
      asked for (recorded from one poll), in the same thread pool: HTTP and JSON only;
  (b) collector: `Collector.poll_once()` (DMTF redfish client, link walking, mapping to our
      contract, merge, report), every endpoint logged in once before timing.
Both count endpoints whose poll completed per second of wall time over `--cycles` cycles.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
DATA = ROOT / "tests" / "data" / "redfish"

KINDS = {  # kind -> (resource to read, racks per endpoint)
    "bmc": ("1U", 1),
    "cdu": ("1", 2),
    "pdu": ("1", 1),
}


def _tree() -> dict[str, bytes]:
    """URL path -> body, for the BMC mockup with the CDU and PDU mockups beside it."""
    files: dict[str, bytes] = {}
    for base in (DATA / "dmtf-public-rackmount1", DATA / "facility-cdu-pdu"):
        for f in base.rglob("index.json"):
            rel = f.parent.relative_to(base).as_posix()
            path = "/redfish/v1" + ("" if rel == "." else "/" + rel)
            if path == "/redfish/v1" and path in files:
                continue  # keep DMTF's service root
            files[path] = f.read_bytes()
    return files


def serve(port: int) -> None:
    files = _tree()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, as BMCs do
        wbufsize = 1 << 16  # headers and body leave in one segment (else delayed ACK costs 40 ms a GET)

        def log_message(self, *args: Any) -> None:
            pass

        def do_GET(self) -> None:  # noqa: N802
            body = files.get(self.path.rstrip("/"))
            self.send_response(200 if body is not None else 404)
            body = body if body is not None else b'{"error": {"message": "not found"}}'
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    server.daemon_threads = True
    print("ready", flush=True)
    server.serve_forever()


def _targets(url: str, kind: str, n: int, concurrency: int) -> Any:
    from twin.collect.targets import Targets

    resource, racks = KINDS[kind]
    return Targets.model_validate({
        "collector": "bench", "concurrency": concurrency, "retries": 0, "endpoints": [
            {"name": f"{kind}-{i}", "url": url, "kind": kind, "resource": resource,
             "racks": [f"r{i}-{j}" for j in range(racks)]} for i in range(n)]})


def _paths(url: str, kind: str) -> list[str]:
    """The GETs one poll of one endpoint of this kind makes (recorded from a real poll)."""
    from twin.collect.client import RedfishClient

    asked: list[str] = []
    original = RedfishClient.get

    def recording(self: RedfishClient, path: str) -> Any:
        asked.append(path)
        return original(self, path)

    RedfishClient.get = recording  # type: ignore[method-assign]
    try:
        from twin.collect.poll import Collector

        with Collector(_targets(url, kind, 1, 1)) as c:
            c.poll_once()
    finally:
        RedfishClient.get = original  # type: ignore[method-assign]
    return ["/redfish/v1/"] + asked


def bare(url: str, paths: list[str], n: int, concurrency: int, cycles: int) -> float:
    import requests

    sessions = [requests.Session() for _ in range(n)]

    def poll(s: requests.Session) -> None:
        for p in paths:
            r = s.get(url + p, timeout=5)
            if r.status_code == 200:
                r.json()

    with ThreadPoolExecutor(max_workers=min(concurrency, n)) as pool:
        list(pool.map(poll, sessions))  # warm: connections open
        t0 = time.perf_counter()
        for _ in range(cycles):
            list(pool.map(poll, sessions))
        return n * cycles / (time.perf_counter() - t0)


def collector(url: str, kind: str, n: int, concurrency: int, cycles: int) -> tuple[float, int]:
    from twin.collect.poll import Collector

    with Collector(_targets(url, kind, n, concurrency)) as c:
        warm = c.poll_once()  # logged in, connections open
        assert not warm.unreachable and not warm.refused, (warm.unreachable, warm.refused)
        t0 = time.perf_counter()
        readings = 0
        for _ in range(cycles):
            cycle = c.poll_once()
            readings += 0 if cycle.report is None else len(cycle.report.readings)
        return n * cycles / (time.perf_counter() - t0), readings


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--serve", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--endpoints", type=int, default=64)
    ap.add_argument("--cycles", type=int, default=3)
    ap.add_argument("--concurrency", default="1,4,16,64")
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "reports" / "collector.md")
    args = ap.parse_args()
    if args.serve:
        serve(args.serve)
        return 0

    from twin.logs import configure

    configure("error")
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = subprocess.Popen([sys.executable, __file__, "--serve", str(port)], stdout=subprocess.PIPE, text=True)
    rows: list[dict[str, Any]] = []
    try:
        assert server.stdout is not None and server.stdout.readline().strip() == "ready"
        url = f"http://127.0.0.1:{port}"
        for kind in KINDS:
            paths = _paths(url, kind)
            for conc in (int(c) for c in args.concurrency.split(",")):
                a = bare(url, paths, args.endpoints, conc, args.cycles)
                b, readings = collector(url, kind, args.endpoints, conc, args.cycles)
                rows.append({"kind": kind, "gets_per_poll": len(paths), "concurrency": conc, "bare_per_s": round(a, 1),
                             "collector_per_s": round(b, 1), "collector_gets_per_s": round(b * len(paths)),
                             "share_of_bare": round(b / a, 2), "readings": readings})
                print(json.dumps(rows[-1]), flush=True)
    finally:
        server.terminate()
        server.wait(timeout=10)

    command = "python bench/collector.py " + " ".join(sys.argv[1:])
    lines = [
        "# Collector: endpoints polled per second, one process",
        "",
        f"{datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC, {platform.processor() or platform.machine()}, "
        f"{os.cpu_count()} CPUs (shared), Python {platform.python_version()}. Command: `{command.strip()}`.",
        f"{args.endpoints} endpoints of each kind, {args.cycles} timed cycles after one warm-up cycle; server: a "
        "threaded in-memory HTTP server in its own process on loopback, answering the test mockups.",
        "",
        "(a) bare: plain `requests` GETs of the same paths, same thread pool. (b) the collector's `poll_once`.",
        "",
        "| kind | GETs per poll | concurrency | (a) bare endpoints/s | (b) collector endpoints/s | (b) GETs/s | b/a |",
        "|---|---:|---:|---:|---:|---:|---:|",
        *[f"| {r['kind']} | {r['gets_per_poll']} | {r['concurrency']} | {r['bare_per_s']} | {r['collector_per_s']} | "
          f"{r['collector_gets_per_s']} | {r['share_of_bare']} |" for r in rows],
        "",
        "A BMC poll walks every sensor of the DMTF rackmount mockup (41 sensors, no `$expand`), so its rate is",
        "bound by GETs; against real BMCs the network wait dominates and concurrency is what buys throughput.",
        "The bare baseline also GETs the service root once per poll (the collector only at login).",
    ]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(lines) + "\n")
    args.out.with_suffix(".json").write_text(json.dumps({"command": command, "rows": rows}, indent=2) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
