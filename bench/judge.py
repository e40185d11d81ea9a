"""Judging a fleet-shaped poll cycle: the full judgement against the calm path, side by side in one run.

    python -m bench.judge [--racks 20000] [--cycles 12] [--out bench/reports/judge.json]

In process, no broker and no database: the telemetry pipeline's fold (`TelemetryPipeline._fold`:
observe each reading, judge each rack whose newest reading changed) over the simulator's fleet
(typical faults planted), one reading per powered rack per cycle, as at fleet shape where every
reading is its rack's newest. Four variants, each on fresh twins:

  full, fresh    every rack judged in full (`assess`, `evaluate`, the health's JSON): before issue 13's calm path
  calm, fresh    as shipped: a rack whose window is all calm gets `calm_judgement`
  full, stale    the same cycles read 10 minutes late (a worker catching up on a backlog)
  calm, stale

Figures are CPU microseconds a reading (process time, so other work on the machine weighs less
than on wall time), over the cycles after the window filled; the cyclic GC is off, as the
worker keeps it off while it folds. Every variant's health and deviations equal the full
judgement's (the bench fails otherwise).
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import sys
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any
from unittest import mock

from bench.ingest import console
from schemas import RackReading
from streams import telemetry
from streams.batch import WorkerState
from streams.telemetry import TelemetryPipeline
from twin.domain.intent import IntentCatalog
from twin.domain.lifecycle import RackStatus
from twin.domain.rack import RackTwin, ReadingWindow
from twin.embedded.simulator import FaultPlan, FleetSimulator

STALE_AFTER = 30.0
LATE = timedelta(minutes=10)


def _cycles(racks: int, cycles: int, start: datetime) -> tuple[FleetSimulator, list[list[RackReading]]]:
    catalog = IntentCatalog.default()
    intents = {g: catalog.latest(g) for g in catalog.generations()}
    sim = FleetSimulator(7, racks, start, intents, faults=FaultPlan.typical())
    out = []
    for i in range(cycles):
        reports = sim.telemetry_cycle(start + timedelta(seconds=i))
        out.append([r for report in reports for r in report.readings])
    return sim, out


def _pipeline(sim: FleetSimulator) -> TelemetryPipeline:
    state = WorkerState("bench-judge", stale_after_seconds=STALE_AFTER)
    state.catalog = IntentCatalog(list(sim.intents.values()))
    p = TelemetryPipeline(None, state)  # type: ignore[arg-type]  # _fold does no I/O
    p.twins = {r.rack_id: RackTwin(r.rack_id, generation=r.generation, status=RackStatus(r.stage.value))
               for r in sim.racks.values()}
    return p


def _run(sim: FleetSimulator, cycles: list[list[RackReading]], clock: datetime, *, calm: bool
         ) -> tuple[float, list[dict[str, Any]]]:
    """CPU µs a reading over the cycles after the window filled, and the last cycle's projected health."""
    p = _pipeline(sim)
    known = {rack_id: twin.generation for rack_id, twin in p.twins.items()}
    spent, counted, last = 0.0, 0, []
    patches = [mock.patch.object(telemetry, "now", lambda: clock)]
    if not calm:
        patches.append(mock.patch.object(telemetry, "calm_judgement", lambda *a, **k: None))
    for patch in patches:
        patch.start()
    gc.disable()
    try:
        for i, readings in enumerate(cycles):
            began = time.process_time()
            projected, updates, _ = p._fold(readings, dict(known), {})  # type: ignore[arg-type]
            took = time.process_time() - began
            for rack_id, after in updates.items():
                p.open[rack_id] = dict(after)
            if i >= ReadingWindow.CAPACITY:
                spent += took
                counted += len(readings)
            last = [{"rack": r.rack_id, "health": h, "open": sorted(p.open.get(r.rack_id, {}))} for r, h, _ in projected]
    finally:
        gc.enable()
        for patch in patches:
            patch.stop()
    return 1e6 * spent / counted, last


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--racks", type=int, default=20_000, help="racks in the simulated fleet (default 20,000)")
    ap.add_argument("--cycles", type=int, default=12, help="poll cycles (the first 6 fill the window, default 12)")
    ap.add_argument("--out", type=Path, default=Path("bench/reports/judge.json"))
    args = ap.parse_args(argv)
    if args.cycles <= ReadingWindow.CAPACITY:
        ap.error(f"--cycles must be above {ReadingWindow.CAPACITY}: the first cycles fill the window and are not counted")
    start = datetime.now(timezone.utc).replace(microsecond=0)
    console.print(f"simulating {args.racks:,} racks, {args.cycles} cycles ...")
    sim, cycles = _cycles(args.racks, args.cycles, start)
    fresh = start + timedelta(seconds=args.cycles)
    variants = {}
    for label, clock, calm in (("full, fresh", fresh, False), ("calm, fresh", fresh, True),
                               ("full, stale", fresh + LATE, False), ("calm, stale", fresh + LATE, True)):
        us, last = _run(sim, cycles, clock, calm=calm)
        variants[label] = {"us_per_reading": round(us, 2), "last": last}
        console.print(f"  {label}: {us:.1f} µs CPU a reading")
    for state in ("fresh", "stale"):
        if variants[f"calm, {state}"]["last"] != variants[f"full, {state}"]["last"]:
            console.print(f"[red]the calm path's judgement differs from the full one ({state})[/red]")
            return 1
    readings = len(cycles[-1])
    result = {
        "command": "python -m bench.judge " + " ".join(argv if argv is not None else sys.argv[1:]),
        "racks": args.racks, "readings_per_cycle": readings, "cycles": args.cycles,
        "machine": f"{os.cpu_count()} CPUs", "loadavg": os.getloadavg(),
        "variants": {k: v["us_per_reading"] for k, v in variants.items()},
        "speedup_fresh": round(variants["full, fresh"]["us_per_reading"] / variants["calm, fresh"]["us_per_reading"], 2),
        "speedup_stale": round(variants["full, stale"]["us_per_reading"] / variants["calm, stale"]["us_per_reading"], 2),
        "calm_share": round(sum(1 for x in variants["calm, fresh"]["last"] if x["health"]["overall"] == "ok")
                            / max(1, len(variants["calm, fresh"]["last"])), 3),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    console.print(f"fresh: {result['speedup_fresh']}x, stale: {result['speedup_stale']}x faster on the calm path; "
                  f"judgements equal; wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
