"""Run every benchmark and write bench/REPORT.md with its plots.

    python -m bench                    # the full set: 3 ingest runs, rebuild at 20,000 racks
    python -m bench --quick            # one small ingest run, rebuild at 2,000 racks (minutes, not an hour)
    python -m bench --report-only      # rewrite REPORT.md from the JSON already in bench/reports/

What runs, each as its own process (so one failing does not lose the others' figures):

- `bench/ingest.py` N times (3 by default) on the fleet-shaped load: (a) bare limit, (b) plain Faust
  agent, (c) our worker, latency at a steady rate; the ratios c/a and c/b are reported as the median
  of the runs and their spread, since the machine is shared;
- `python -m bench.rebuild`: rebuild speed against the validate-every-event baseline, in 1 and 2
  processes, on a bulk-seeded fleet (every run checks the rebuilt twins equal the live ones).

The report then takes in what other benches left in bench/reports/ (API latency, alert latency,
Grafana, storage, collector: their JSON when they write one, else a link to their markdown).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
REPORTS = BENCH / "reports"
PLOTS = BENCH / "plots"
OWN = {"rebuild.json", "rebuild.md", "ingest.md", "ingest.json", "rebuild-profile.md", "worker-profile.md"}


def _run(cmd: list[str], log: Path) -> bool:
    """Run one bench as a child process (its output to `log`); True when it succeeded."""
    print("$", " ".join(cmd), flush=True)
    with log.open("w") as out:
        code = subprocess.run(cmd, stdout=out, stderr=subprocess.STDOUT, cwd=BENCH.parent).returncode
    if code != 0:
        print(f"  failed ({code}); see {log}", flush=True)
    return code == 0


def run_all(quick: bool, ingest_runs: int, rebuild_racks: int) -> None:
    REPORTS.mkdir(exist_ok=True)
    logs = REPORTS / "logs"
    logs.mkdir(exist_ok=True)
    py = sys.executable
    ingest_args = ["--readings", "60000", "--racks", "2000"] if quick else []
    for i in range(1, ingest_runs + 1):
        _run([py, "bench/ingest.py", *ingest_args, "--out", f"bench/reports/ingest-run{i}.md"],
             logs / f"ingest-run{i}.log")
    _run([py, "-m", "bench.rebuild", "--racks", str(rebuild_racks), "--workers", "1,2"], logs / "rebuild.log")
    _run([py, "-m", "bench.profile_rebuild", "--racks", "2000"], logs / "profile.log")
    _run([py, "-m", "bench.steady", *(["--quick"] if quick else [])], logs / "steady.log")


# --- the report -----------------------------------------------------------------------------------


def _load(path: Path) -> dict[str, Any] | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def _versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    out = {"python": platform.python_version()}
    for name in ("faust-streaming", "aiokafka", "psycopg", "pydantic", "orjson", "matplotlib"):
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            pass
    return out


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:,.0f} ms" if math.isfinite(seconds) else "never visible in the grace time"


def _median_spread(values: list[float]) -> str:
    if not values:
        return "not measured"
    med = statistics.median(values)
    return f"**{med:.2f}** (min {min(values):.2f}, max {max(values):.2f}, {len(values)} run(s))"


def _seconds(value: float | None) -> str:
    return "?" if value is None else f"{value:.0f} s"


def _plot_rebuild(rebuild: dict[str, Any]) -> Path | None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    variants = rebuild["variants"]
    labels = list(variants)
    fig, ax = plt.subplots(figsize=(6, 3.5))
    wall = [variants[k]["per_second"] for k in labels]
    cpu = [variants[k]["per_cpu_second"] for k in labels]
    x = range(len(labels))
    ax.bar([i - 0.2 for i in x], wall, width=0.4, label="events / wall second")
    ax.bar([i + 0.2 for i in x], cpu, width=0.4, label="events / Python CPU-second")
    ax.axhline(500_000, color="red", linestyle="--", linewidth=1, label="target 500,000/s")
    ax.set_xticks(list(x), [{"validate": "validate\n(before)"}.get(k, f"construct\n{k[1:]} proc.") for k in labels])
    ax.set_yscale("log")
    ax.set_ylabel("events/s")
    ax.set_title(f"Rebuild, {rebuild['racks']:,} racks, {rebuild['events']:,} events")
    ax.legend(fontsize=7)
    fig.tight_layout()
    PLOTS.mkdir(exist_ok=True)
    path = PLOTS / "rebuild.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _plot_latency(runs: list[dict[str, Any]]) -> Path | None:
    """Latency CDF of the ingest runs, from the quantiles each run recorded."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    points = []
    for run in runs:
        lat = run.get("latency") or {}
        qs = [(q, lat.get(k)) for q, k in ((0.5, "p50"), (0.99, "p99"), (1.0, "max"))
              if isinstance(lat.get(k), (int, float)) and math.isfinite(lat[k])]  # inf: never became visible
        if qs:
            points.append(qs)
    if not points:
        return None
    fig, ax = plt.subplots(figsize=(6, 3.5))
    for i, qs in enumerate(points, 1):
        ax.plot([v * 1000 for _, v in qs], [q for q, _ in qs], marker="o", label=f"run {i}")
    ax.set_xlabel("reading to visible twin (ms)")
    ax.set_ylabel("share of readings")
    ax.set_title("Latency: p50, p99 and max of each ingest run (steady load)")
    ax.legend(fontsize=7)
    fig.tight_layout()
    PLOTS.mkdir(exist_ok=True)
    path = PLOTS / "latency-cdf.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _plot_steady(steady: dict[str, Any]) -> Path | None:
    """Throughput and memory against fleet size, from the steady-state runs."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sizes = steady["sizes"]
    n = [r["racks"] for r in sizes]
    fig, (left, right) = plt.subplots(1, 2, figsize=(9, 3.5))
    left.plot(n, [r["offered_readings_per_second"] for r in sizes], marker="o", label="offered readings/s")
    left.plot(n, [r["worker_cpu"] * 100 for r in sizes], marker="s", label="worker CPU (% of a core)")
    left.set_xlabel("racks (1 Hz each)")
    left.set_title("Throughput and CPU against fleet size")
    left.legend(fontsize=7)
    right.plot(n, [r["worker_rss_mb"] for r in sizes], marker="o")
    right.axhline(500, color="red", linestyle="--", linewidth=1, label="target 500 MB")
    right.set_xlabel("twins held")
    right.set_ylabel("worker resident MB")
    right.set_title("Memory against twins")
    right.legend(fontsize=7)
    fig.tight_layout()
    PLOTS.mkdir(exist_ok=True)
    path = PLOTS / "steady.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _closing(runs: list[dict[str, Any]], rebuild: dict[str, Any] | None, steady: dict[str, Any] | None) -> list[str]:
    """Which of issue 13's targets these figures meet, computed from them (not written by hand)."""
    out = ["## Targets (issue 13), from the figures above", "", "| target | measured | met |", "|---|---|---|"]

    def row(target: str, measured: str, met: bool | None) -> None:
        out.append(f"| {target} | {measured} | {'yes' if met else 'no' if met is not None else 'not measured'} |")

    if runs:
        ca = statistics.median(r["ratios"]["c_a"] for r in runs)
        cb = statistics.median(r["ratios"]["c_b"] for r in runs)
        row("c/a ≥ 0.5 (median)", f"{ca:.2f}", ca >= 0.5)
        row("c/b ≥ 20 (median)", f"{cb:.1f}", cb >= 20)
    else:
        row("c/a ≥ 0.5, c/b ≥ 20", "-", None)
    if rebuild:
        best = max(v["per_second"] for k, v in rebuild["variants"].items() if k != "validate")
        row("rebuild ≥ 500,000 events/s", f"{best:,.0f} events/s at {rebuild['racks']:,} racks", best >= 500_000)
    else:
        row("rebuild ≥ 500,000 events/s", "-", None)
    sizes = {r["racks"]: r for r in (steady or {}).get("sizes", [])}
    at75 = sizes.get(75_000)
    row("one worker keeps up with 75,000 racks at p99 < 1 s",
        f"p99 {_ms(at75['p99_s'])}" if at75 else f"sizes measured: {sorted(sizes) or 'none'}",
        at75["keeps_up"] if at75 else None)
    at100 = sizes.get(100_000)
    row("worker with 100,000 twins < 500 MB resident",
        f"{at100['worker_rss_mb']:.0f} MB" if at100 else "100,000 not measured here", at100["worker_rss_mb"] < 500
        if at100 else None)
    out.append("")
    return out


def write_report(command: str) -> Path:
    lines = ["# Benchmarks", "", f"Written by `{command}` on {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}.", ""]
    lines += [f"Machine: {os.cpu_count()} CPUs, {platform.platform()}; load average now "
              f"{', '.join(f'{x:.2f}' for x in os.getloadavg())} (the machine is shared: figures taken under load "
              "are noisy; each section says when and how it was taken).  ",
              "Versions: " + ", ".join(f"{k} {v}" for k, v in _versions().items()), ""]

    # Ratios: median of the ingest runs.
    runs = [r for p in sorted(REPORTS.glob("ingest-run*.json")) if (r := _load(p))]
    lines += ["## Ingest ratios on the fleet-shaped load", ""]
    if runs:
        ca = [r["ratios"]["c_a"] for r in runs]
        cb = [r["ratios"]["c_b"] for r in runs]
        lines += ["| ratio | median (spread) | target |", "|---|---|---|",
                  f"| c / a | {_median_spread(ca)} | ≥ 0.5 |", f"| c / b | {_median_spread(cb)} | ≥ 20 |", "",
                  "| run | command | shape | a readings/s | b | c | c/a | c/b | latency p50 / p99 (steady rate) "
                  "| load avg at start |",
                  "|---|---|---|---:|---:|---:|---:|---:|---|---:|"]
        for i, r in enumerate(runs, 1):
            rates = r["rates"]
            lines.append(f"| {i} | `{r['command']}` | {r['load'].get('shape', '?')} | {rates['a']['per_second']:,.0f} | "
                         f"{rates['b']['per_second']:,.0f} | {rates['c']['per_second']:,.0f} | {r['ratios']['c_a']:.2f} | "
                         f"{r['ratios']['c_b']:.1f} | {_ms(r['latency']['p50'])} / {_ms(r['latency']['p99'])} at "
                         f"{r['latency']['rate']:,.0f}/s | {float(r.get('load_average_at_start', [float('nan')])[0]):.2f} |")
        lines += ["", "Each run's full report: " + ", ".join(
            f"[{p.name}](reports/{p.name})" for p in sorted(REPORTS.glob("ingest-run*.md"))), ""]
        cdf = _plot_latency(runs)
        if cdf:
            lines += [f"![latency CDF](plots/{cdf.name})", ""]
    else:
        lines += ["Not measured in this report (no `bench/reports/ingest-run*.json`): run `python -m bench`.", ""]

    # Rebuild.
    rebuild = _load(REPORTS / "rebuild.json")
    lines += ["## Rebuild", ""]
    if rebuild:
        lines += [f"Command: `{rebuild['command']}` at {rebuild['at']}, load average "
                  f"{rebuild['loadavg_before'][0]:.2f} before and {rebuild['loadavg_after'][0]:.2f} after. "
                  f"{rebuild['racks']:,} racks, {rebuild['events']:,} events, seeded in bulk in "
                  f"{rebuild['seed_seconds']:.0f} s. Every variant's rebuilt twins equal the live ones "
                  "(the bench fails otherwise).", "",
                  "| variant | events/s (wall) | events per Python CPU-second | seconds |", "|---|---:|---:|---:|"]
        for k, v in rebuild["variants"].items():
            what = "validate every event, 1 process (before)" if k == "validate" else f"construct, {k[1:]} process(es)"
            lines.append(f"| {what} | {v['per_second']:,.0f} | {v['per_cpu_second']:,.0f} | {v['seconds']:.1f} |")
        plot = _plot_rebuild(rebuild)
        if plot:
            lines += ["", f"![rebuild](plots/{plot.name})", ""]
    else:
        lines += ["Not measured (no `bench/reports/rebuild.json`): `python -m bench.rebuild`.", ""]

    profile = REPORTS / "rebuild-profile.md"
    lines += ["## Rebuild hot path, before and after", ""]
    if profile.exists():
        lines += [profile.read_text().split("\n", 1)[1].replace("\n## ", "\n### "), ""]
    else:
        lines += ["Not measured (no `bench/reports/rebuild-profile.md`): `python -m bench.profile_rebuild`.", ""]

    worker_profile = REPORTS / "worker-profile.md"
    lines += ["## Worker hot path", ""]
    if worker_profile.exists():
        lines += [worker_profile.read_text().split("\n", 1)[1].replace("\n### ", "\n#### ").replace("\n## ", "\n### "), ""]
    else:
        lines += ["Not measured (no `bench/reports/worker-profile.md`): `python bench/ingest.py --only a,c --profile DIR`, "
                  "then `python -m bench.hotpath DIR/worker-c.txt`.", ""]

    steady_runs = [r for p in sorted(REPORTS.glob("steady*.json")) if (r := _load(p)) and r.get("sizes")]
    steady = {"command": "`, `".join(r["command"] for r in steady_runs),
              "loadavg_before": max((r["loadavg_before"] for r in steady_runs), default=[float("nan")]),
              "sizes": sorted((s for r in steady_runs for s in r["sizes"]), key=lambda s: s["racks"])} \
        if steady_runs else None
    if steady and steady["sizes"][-1]["keeps_up"]:
        steady["workers_needed_for_largest"] = max(1, math.ceil(steady["sizes"][-1]["worker_cpu"]))
    lines += ["## Steady state at fleet size (one worker, 1 Hz a rack, fleet-shaped reports)", ""]
    if steady and steady.get("sizes"):
        lines += [f"Commands: `{steady['command']}`; highest load average before a run {steady['loadavg_before'][0]:.2f}.", "",
                  "| racks | warm-up | readings/s offered | p50 | p99 | max | worker CPU | PostgreSQL CPU | worker RSS | "
                  "lag after grace (messages) | keeps up (p99 < 1 s) |",
                  "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|"]
        for r in steady["sizes"]:
            short = " (pacer fell behind: " + f"{r['offered_share']:.0%} of 1 Hz)" if r.get("offered_share", 1) < 0.95 else ""
            lines.append(f"| {r['racks']:,} | {_seconds(r.get('warmup_s'))} | {r['offered_readings_per_second']:,.0f}{short} | "
                         f"{_ms(r['p50_s'])} | "
                         f"{_ms(r['p99_s'])} | {_ms(r['max_s'])} | {r['worker_cpu']:.0%} | "
                         f"{r['postgres_cpu']:.0%} | {r['worker_rss_mb']:.0f} MB | {'not valid in this run' if r['lag_messages_after_grace'] is None else format(r['lag_messages_after_grace'], ',')} | "
                         f"{'yes' if r['keeps_up'] else 'no'} |")
        largest = steady["sizes"][-1]
        if largest["keeps_up"]:
            lines += ["", f"Workers needed at the largest size measured ({largest['racks']:,} racks): "
                      f"{steady.get('workers_needed_for_largest')} (its worker CPU share, rounded up to whole cores).", ""]
        else:
            kept = [r for r in steady["sizes"] if r["keeps_up"]]
            busy = largest["worker_cpu"] + largest["postgres_cpu"] + largest.get("bench_cpu", 0.0)
            lines += ["", f"Workers needed: not derivable from these runs: one worker kept up at "
                      f"{'no size measured' if not kept else format(kept[-1]['racks'], ',') + ' racks'}. At "
                      f"{largest['racks']:,} racks the worker used {largest['worker_cpu']:.0%} of a core, PostgreSQL "
                      f"{largest['postgres_cpu']:.0%} and the load generator {largest.get('bench_cpu', 0.0):.0%}, "
                      f"{busy:.1f} of the machine's {os.cpu_count()} cores with the broker besides: the machine was the "
                      "limit, so a second worker here would share the same cores. Where the worker's time goes is in "
                      "\"Worker hot path\" above.", ""]
        plot = _plot_steady(steady)
        if plot:
            lines += [f"![steady](plots/{plot.name})", ""]
    else:
        lines += ["Not measured (no `bench/reports/steady.json`): `python -m bench.steady`.", ""]

    # Other benches' figures.
    others = sorted(p for p in REPORTS.glob("*") if p.is_file() and p.name not in OWN
                    and not p.name.startswith(("ingest-run", "steady")) and p.suffix in (".md", ".json"))
    lines += ["## Other benches", ""]
    if others:
        for p in others:
            data = _load(p) if p.suffix == ".json" else None
            if data is not None:
                summary = ", ".join(f"{k}: {v}" for k, v in data.items() if isinstance(v, (int, float, str)))[:400]
                lines.append(f"- [{p.name}](reports/{p.name}): {summary}")
            elif not (p.with_suffix(".json")).exists():
                lines.append(f"- [{p.name}](reports/{p.name})")
    else:
        lines.append("None found in bench/reports/ (API latency, alert latency, storage, collector write theirs there).")
    lines.append("")
    lines += _closing(runs, rebuild, steady)
    path = BENCH / "REPORT.md"
    path.write_text("\n".join(lines))
    return path


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="one small ingest run and a 2,000-rack rebuild")
    parser.add_argument("--ingest-runs", type=int, help="ingest runs for the ratios' median (default 3, quick 1)")
    parser.add_argument("--rebuild-racks", type=int, help="racks seeded for the rebuild (default 20,000, quick 2,000)")
    parser.add_argument("--report-only", action="store_true", help="only rewrite REPORT.md from bench/reports/")
    args = parser.parse_args()
    command = "python -m bench " + " ".join(sys.argv[1:])
    if not args.report_only:
        runs = args.ingest_runs if args.ingest_runs is not None else (1 if args.quick else 3)
        racks = args.rebuild_racks or (2_000 if args.quick else 20_000)
        run_all(args.quick, runs, racks)
    print(f"wrote {write_report(command.strip())}")


if __name__ == "__main__":
    main()
