"""The rebuild's hot path, profiled on each path: validate every stored event (before issue 13),
construct them (session 5), and the shipped compact read with light records (session 6).

    python -m bench.profile_rebuild [--racks 2000] [--out bench/reports/rebuild-profile.md]

cProfile on one process over a bulk-seeded fleet (`bench.seed`); the report lists the top frames
by own time for each path, so the next thing to speed up is named by measurement.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import pstats
import shutil
import sys
import tempfile
from pathlib import Path

import psycopg

from bench.rebuild import _baseline_path
from bench.seed import bench_database, seed_fleet
from twin.embedded.stack import EmbeddedStack
from twin.store import rebuild as rebuild_module


def _top(url: str, frames: int) -> tuple[str, int, float]:
    profile = cProfile.Profile()
    profile.enable()
    result = rebuild_module.rebuild(url)
    profile.disable()
    if not result.equal:
        raise SystemExit("rebuild disagrees with the live state")
    out = io.StringIO()
    stats = pstats.Stats(profile, stream=out)
    stats.sort_stats("tottime").print_stats(frames)
    text = out.getvalue()
    body = text[text.index("ncalls"):] if "ncalls" in text else text
    root = str(Path(__file__).resolve().parent.parent) + "/"
    return body.replace(root, "").replace(sys.prefix + "/lib/python3.11/site-packages/", ""), result.events, \
        stats.total_tt  # type: ignore[attr-defined]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--racks", type=int, default=2_000)
    parser.add_argument("--frames", type=int, default=15)
    parser.add_argument("--out", type=Path, default=Path("bench/reports/rebuild-profile.md"))
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="bench-profile-"))
    with EmbeddedStack(tmp / "stack") as stack:
        url = bench_database(stack, "bench_profile")
        seed_fleet(url, args.racks)
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("VACUUM ANALYZE events")
        profiles = []
        for name in ("validate", "construct"):
            undo = _baseline_path(name)
            try:
                profiles.append(_top(url, args.frames))
            finally:
                undo()
        profiles.append(_top(url, args.frames))
    lines = ["# Rebuild hot path: top frames by own time (cProfile)", "",
             f"Command: `python -m bench.profile_rebuild {' '.join(sys.argv[1:])}`. cProfile inflates the cost "
             "of small Python calls; read the order, not the absolute times.", ""]
    labels = ("Before issue 13: events row by row, stdlib json, every stored event validated (`model_validate`)",
              "Session 5: one row a rack (`json_agg`), orjson, stored events constructed (`twin.store.stored`)",
              "Now: installations and firmware updates as compact records folded as light `RecordedInstall`/"
              "`RecordedFlash` (runs packed at once by `installed_many`), the next batch read in a thread")
    for label, (text, events, total) in zip(labels, profiles, strict=True):
        lines += [f"## {label}", "", f"{events:,} events, {total:.2f} s profiled "
                  f"({total / events * 1e6:.1f} µs an event under the profiler)", "", "```", text.rstrip(), "```", ""]
    shutil.rmtree(tmp, ignore_errors=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(lines))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
