"""Top frames of a worker's py-spy profile (collapsed stacks), as a markdown table for the report.

    python -m bench.hotpath PROFILE.txt [--label TEXT] [--top 15] [--out bench/reports/worker-profile.md]

`bench/ingest.py --profile DIR` records each worker variant with py-spy (`--format raw`: one line
per distinct stack, `frame;frame;... count`). Here each frame's share of the samples is summed
twice: self (the frame was running) and total (the frame was on the stack), so the table shows
both where the time goes and which of our functions it goes through. Idle samples (the event
loop waiting in `select`/`epoll`) are counted apart, so the shares are of busy time.
"""

from __future__ import annotations

import argparse
import re
from collections import Counter
from pathlib import Path

__all__ = ["hot_frames", "markdown"]

_IDLE = re.compile(r"\b(select|poll|epoll_wait|_run_once|sleep|wait)\b \(")
_SITE = re.compile(r"^.*?(site-packages/|lib/python3\.\d+/|/work/[^/]+/|/check/[^/]+/[^/]+/)")


def _short(frame: str) -> str:
    """`func (path)`: the path cut to the package (site-packages/…) or the repository, and the line
    dropped, so a function's samples add up whichever of its lines was running."""
    name, _, where = frame.partition(" (")
    if not where:
        return name
    path = _SITE.sub("", where.rstrip(")"))
    return f"{name} ({path.rpartition(':')[0] or path})"


def hot_frames(lines: list[str]) -> tuple[Counter[str], Counter[str], int, int]:
    """Self and total samples per frame, busy samples, idle samples."""
    self_: Counter[str] = Counter()
    total: Counter[str] = Counter()
    busy = idle = 0
    for line in lines:
        stack, _, count = line.rstrip().rpartition(" ")
        if not stack or not count.isdigit():
            continue
        n = int(count)
        frames = [_short(f) for f in stack.split(";") if f]
        if frames and _IDLE.search(frames[-1] + " ("):
            idle += n
            continue
        busy += n
        self_[frames[-1]] += n
        for f in set(frames):
            total[f] += n
    return self_, total, busy, idle


def markdown(path: Path, label: str, top: int) -> str:
    self_, total, busy, idle = hot_frames(path.read_text().splitlines())
    if not busy:
        return f"### {label}\n\nNo busy samples in `{path.name}`.\n"
    out = [f"### {label}", "",
           f"{busy:,} busy samples at 250 Hz ({busy / (busy + idle):.0%} of all; the rest waited in the event loop).",
           "", "| self | total | frame |", "|---:|---:|---|"]
    for frame, n in self_.most_common(top):
        out.append(f"| {n / busy:.1%} | {total[frame] / busy:.1%} | `{frame}` |")
    ours = [(f, n) for f, n in total.most_common() if "streams/" in f or "twin/" in f]
    out += ["", "Our functions by total share (on the stack):", "", "| total | frame |", "|---:|---|"]
    out += [f"| {n / busy:.1%} | `{f}` |" for f, n in ours[:top]]
    return "\n".join(out) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("profile", type=Path, nargs="+", help="py-spy raw output(s) (collapsed stacks)")
    parser.add_argument("--label", action="append", help="a heading per profile (default: its file name)")
    parser.add_argument("--top", type=int, default=15)
    parser.add_argument("--command", default="", help="the command that recorded the profiles, for the report")
    parser.add_argument("--out", type=Path, default=Path("bench/reports/worker-profile.md"))
    args = parser.parse_args()
    labels = args.label or [p.name for p in args.profile]
    parts = ["# Worker hot path", "", f"Recorded by `{args.command}`; summarised by `python -m bench.hotpath`.", ""]
    parts += [markdown(p, label, args.top) for p, label in zip(args.profile, labels)]
    args.out.write_text("\n".join(parts))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
