"""Run every benchmark and write bench/REPORT.md with its plots.

    python -m bench                    # the full set: 3 ingest runs, 1 and 2 workers, rebuild at 20,000 racks, steady
    python -m bench --quick            # one small ingest run, rebuild at 2,000 racks (minutes, not an hour)
    python -m bench --report-only      # rewrite REPORT.md from the results already in bench/reports/

What runs, each as its own process (so one failing does not lose the others' figures):

- `bench/ingest.py` N times (3 by default) on the fleet-shaped load: (a) bare limit, (b) plain Faust
  agent, (c) our worker, latency at a steady rate; the ratios c/a and c/b are reported as the median
  of the runs and their spread, since the machine is shared;
- `bench/ingest.py --only a --workers 1,2`: our worker as 1 and as 2 processes in one consumer group,
  beside the bare limit, with the CPU each process used;
- `python -m bench.rebuild`: rebuild speed against the validate-every-event baseline, in 1 and 2
  processes, on a bulk-seeded fleet (every run checks the rebuilt twins equal the live ones);
- `python -m bench.judge`: the fold's judging cost in CPU time, full judgement against the calm path;
- `python -m bench.steady`: one worker at fleet size (20,000 to 100,000 racks at 1 Hz).

The report then takes in the headline figures of what other benches left in bench/reports/ (API
latency, alert latency, storage bytes per rack-day, collector, Grafana), from their JSON, or from
their markdown's first table when only that is there. Each figure the issue names (throughput
against fleet size, throughput against workers, the latency CDF, memory against twins) is a PNG in
bench/plots/ under that name, with the command that made its data.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import re
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
REPORTS = BENCH / "reports"
PLOTS = BENCH / "plots"
OWN = {"rebuild.json", "rebuild.md", "ingest.md", "ingest.json", "rebuild-profile.md", "worker-profile.md", "worker-profile-before.md"}
def workers_command(quick: bool = False) -> list[str]:
    """The 1-and-2-workers measurement: 3 interleaved rounds (1 round of a smaller load with --quick)."""
    rounds, readings = ("1", "100000") if quick else ("3", "300000")
    return ["bench/ingest.py", "--only", "a", "--workers", "1,2", "--worker-rounds", rounds, "--readings", readings,
            "--out", "bench/reports/ingest-workers.md"]


@dataclass(frozen=True, slots=True)
class Figure:
    """A plot the report must show: its title (as issue 13 names it) and its file in bench/plots/."""

    title: str
    file: str


FIGURES = (
    Figure("Throughput against fleet size", "throughput-fleet-size.png"),
    Figure("Throughput against workers (1 and 2)", "throughput-workers.png"),
    Figure("Latency CDF", "latency-cdf.png"),
    Figure("Memory against twins", "memory-twins.png"),
    Figure("Rebuild speed", "rebuild.png"),
)
SECTIONS = (
    "## Figures",
    "## Ingest ratios on the fleet-shaped load",
    "## Our worker as 1 and 2 processes in one group",
    "## Steady state at fleet size",
    "## Rebuild",
    "## Judging a poll cycle",
    "## API latency",
    "## Alert latency",
    "## Storage bytes per rack-day",
    "## Collector",
    "## Grafana panels",
    "## Targets (issue 13)",
)
"""Every section the report has, whether or not its figures were measured (then it says how to measure them)."""


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
    _run([py, *workers_command(quick)], logs / "ingest-workers.log")
    _run([py, "-m", "bench.rebuild", "--racks", str(rebuild_racks), "--workers", "1,2"], logs / "rebuild.log")
    _run([py, "-m", "bench.profile_rebuild", "--racks", "2000"], logs / "profile.log")
    _run([py, "-m", "bench.judge", *(["--racks", "2000"] if quick else [])], logs / "judge.log")
    _run([py, "-m", "bench.steady", *(["--quick"] if quick else [])], logs / "steady.log")


# --- reading results ------------------------------------------------------------------------------


def _load(path: Path) -> dict[str, Any] | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def _first_table(path: Path) -> tuple[str | None, list[str]]:
    """A markdown report's command (from its `Command:` line) and its first table, for a bench whose JSON is
    not here (JSON results were not kept before this report read them)."""
    try:
        text = path.read_text()
    except OSError:
        return None, []
    found = re.search(r"Command: `([^`]+)`", text)
    table: list[str] = []
    for line in text.splitlines():
        if line.startswith("|"):
            table.append(line)
        elif table:
            break
    return (found.group(1) if found else None), table


def _versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    out = {"python": platform.python_version()}
    for name in ("faust-streaming", "aiokafka", "psycopg", "pydantic", "orjson", "fastapi", "matplotlib"):
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


def _size(n: float) -> str:
    return f"{n / 2**20:,.2f} MiB" if n >= 2**20 else f"{n / 2**10:,.1f} KiB"


def _tidy(text: str) -> str:
    """A bench's machine line with its load averages rounded (they are written as raw floats)."""
    return re.sub(r"\d+\.\d{3,}", lambda m: f"{float(m.group()):.2f}", text)


def _seconds(value: float | None) -> str:
    return "?" if value is None else f"{value:.0f} s"


# --- plots ------------------------------------------------------------------------------------------


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig: Any, plots: Path, name: str) -> Path:
    plots.mkdir(parents=True, exist_ok=True)
    path = plots / name
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    _pyplot().close(fig)
    return path


def _took_rate(sizes: dict[int, dict[str, Any]]) -> str:
    """Where one worker stopped meeting the target, and whether it still took the whole rate there
    (lag 0, every reading visible: only its latency missed)."""
    missed = sorted(r for r, x in sizes.items() if not x["keeps_up"])
    if not missed:
        return ""
    took = [r for r in missed if sizes[r].get("all_visible") and not sizes[r].get("lag_messages_after_grace")]
    said = f"it missed from {missed[0]:,} racks"
    if took:
        said += (f" (at {', '.join(f'{r:,}' for r in took)} it took the whole rate, lag 0, every reading visible, "
                 f"at p99 {_ms(sizes[took[0]]['p99_s'])}: its batches are folded, then written, one after the other)")
    return said + "; "


def _rebuild_variants(rebuild: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The rebuild's variants in the order they compare: the baselines (validate every event, the
    construct path of session 5, when recorded), then the shipped path per process count."""
    out = {"validate": rebuild["variants"]["validate"]} if "validate" in rebuild["variants"] else {}
    out.update(rebuild.get("baselines", {}))
    out.update((k, v) for k, v in rebuild["variants"].items() if k != "validate")
    return out


_REBUILD_SHORT = {"validate": "validate\n(before)", "construct": "construct\n(session 5)"}
_REBUILD_LONG = {"validate": "validate every event, 1 process (before)",
                 "construct": "construct stored events, 1 process (session 5)"}


def _plot_rebuild(rebuild: dict[str, Any], plots: Path) -> Path:
    plt = _pyplot()
    variants = _rebuild_variants(rebuild)
    labels = list(variants)
    fig, ax = plt.subplots(figsize=(6, 3.5))
    wall = [variants[k]["per_second"] for k in labels]
    cpu = [variants[k]["per_cpu_second"] for k in labels]
    x = range(len(labels))
    ax.bar([i - 0.2 for i in x], wall, width=0.4, label="events / wall second")
    ax.bar([i + 0.2 for i in x], cpu, width=0.4, label="events / Python CPU-second")
    ax.axhline(500_000, color="red", linestyle="--", linewidth=1, label="target 500,000/s")
    ax.set_xticks(list(x), [_REBUILD_SHORT.get(k, f"shipped\n{k[1:]} proc.") for k in labels])
    ax.set_yscale("log")
    ax.set_ylabel("events/s")
    ax.set_title(f"Rebuild, {rebuild['racks']:,} racks, {rebuild['events']:,} events")
    ax.legend(fontsize=7)
    return _save(fig, plots, "rebuild.png")


def _plot_latency(runs: list[dict[str, Any]], plots: Path) -> Path | None:
    """Latency CDF of the ingest runs: every percentile when the run recorded them, else p50, p99 and max."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 3.5))
    drawn = False
    for i, run in enumerate(runs, 1):
        lat = run.get("latency") or {}
        cdf = lat.get("cdf") or []
        if cdf:
            qs = [(q / 100, v) for q, v in enumerate(cdf) if math.isfinite(v)]
            style: dict[str, Any] = {}
        else:
            qs = [(q, lat.get(k)) for q, k in ((0.5, "p50"), (0.99, "p99"), (1.0, "max"))
                  if isinstance(lat.get(k), (int, float)) and math.isfinite(lat[k])]  # inf: never became visible
            style = {"marker": "o"}
        if qs:
            ax.plot([v * 1000 for _, v in qs], [q for q, _ in qs], label=f"run {i} at {lat['rate']:,.0f}/s"
                    + ("" if cdf else " (p50, p99, max only)"), **style)
            drawn = True
    if not drawn:
        plt.close(fig)
        return None
    ax.axvline(1000, color="red", linestyle="--", linewidth=1, label="target p99 1 s")
    ax.set_xlabel("reading to visible twin (ms)")
    ax.set_ylabel("share of readings")
    ax.set_title("Latency CDF: one worker at a steady rate (bench/ingest.py)")
    ax.legend(fontsize=7)
    return _save(fig, plots, "latency-cdf.png")


def _plot_workers(workers: dict[str, Any], plots: Path) -> Path:
    """Readings/s of our worker as 1 and 2 processes (median, spread as error bars) beside the bare limit."""
    plt = _pyplot()
    w = workers["workers"]
    counts = list(w["summary"])
    med = [w["summary"][n]["per_second"] for n in counts]
    low = [m - w["summary"][n]["min"] for n, m in zip(counts, med)]
    high = [w["summary"][n]["max"] - m for n, m in zip(counts, med)]
    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.bar(counts, med, yerr=[low, high], capsize=6, color="tab:blue", label="our worker (median, min-max)")
    rounds = sorted({r["round"] for r in w["runs"]})
    for i, rnd in enumerate(rounds):   # each round's runs, joined: the ratio within a round is what compares
        these = sorted((r for r in w["runs"] if r["round"] == rnd), key=lambda r: r["workers"])
        ax.plot([str(r["workers"]) for r in these], [r["rate"]["per_second"] for r in these], marker="o",
                color="black", alpha=0.35 + 0.5 * i / max(len(rounds) - 1, 1), linewidth=1,
                label="each round" if i == 0 else None)
    for n, m in zip(counts, med):
        cores = w["summary"][n]["machine_cores"] if "machine_cores" in w["summary"][n] else None
        ax.annotate(f"{m:,.0f}/s" + (f"\nmachine: {cores:.2f} cores busy" if cores is not None else ""),
                    (n, w["summary"][n]["max"]), textcoords="offset points", xytext=(0, 4), ha="center", fontsize=7)
    if w.get("a_per_second"):
        ax.axhline(w["a_per_second"], color="grey", linestyle="--", linewidth=1, label="(a) bare limit, same run")
    ax.set_xlabel("worker processes in one group (4 partitions)")
    ax.set_ylabel("readings/s")
    ax.set_title(f"Throughput against workers ({workers['machine']['nproc']} cores, broker and database on them)",
                 fontsize=10)
    ax.legend(fontsize=7, loc="lower right")
    return _save(fig, plots, "throughput-workers.png")


def _plot_fleet(steady: dict[str, Any], ceilings: dict[str, float], plots: Path) -> Path:
    """Offered readings/s against fleet size (kept up or not), beside what one (and two) workers can take."""
    plt = _pyplot()
    sizes = steady["sizes"]
    fig, ax = plt.subplots(figsize=(6, 3.5))
    kept = [r for r in sizes if r["keeps_up"]]
    behind = [r for r in sizes if not r["keeps_up"]]
    ax.plot([r["racks"] for r in sizes], [r["offered_readings_per_second"] for r in sizes], color="tab:blue",
            linewidth=1)
    if kept:
        ax.scatter([r["racks"] for r in kept], [r["offered_readings_per_second"] for r in kept], color="tab:green",
                   zorder=3, label="offered, one worker kept up (p99 < 1 s)")
    if behind:
        ax.scatter([r["racks"] for r in behind], [r["offered_readings_per_second"] for r in behind], color="tab:red",
                   marker="x", zorder=3, label="offered, one worker fell behind")
    for (label, value), style in zip(ceilings.items(), ("--", ":")):
        ax.axhline(value, color="grey", linestyle=style, linewidth=1, label=label)
    ax.set_xlabel("racks (1 Hz each)")
    ax.set_ylabel("readings/s")
    ax.set_title("Throughput against fleet size (bench.steady)")
    ax.legend(fontsize=7)
    return _save(fig, plots, "throughput-fleet-size.png")


def _plot_memory(steady: dict[str, Any], plots: Path) -> Path:
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 3.5))
    for warmup, sizes in _by_warmup(steady["sizes"]).items():
        ax.plot([r["racks"] for r in sizes], [r["worker_rss_mb"] for r in sizes], marker="o",
                label=f"worker resident, after {_seconds(warmup)} of warm-up and the measured window")
    ax.axhline(500, color="red", linestyle="--", linewidth=1, label="target 500 MB at 100,000 twins")
    ax.set_xlabel("twins held (racks)")
    ax.set_ylabel("worker resident MB")
    ax.set_title("Memory against twins (bench.steady)")
    ax.legend(fontsize=7)
    return _save(fig, plots, "memory-twins.png")


def _figure(figure: Figure, path: Path | None, command: str, note: str = "") -> list[str]:
    """A figure's lines in the report: title, image, the command that made its data."""
    if path is None:
        return [f"### Figure: {figure.title}", "", f"Not drawn: no data. Measure it with `{command}`.", ""]
    return [f"### Figure: {figure.title}", "", f"![{figure.title}](plots/{path.name})", "",
            f"Command: `{command}`." + (f" {note}" if note else ""), ""]


def _by_warmup(sizes: list[dict[str, Any]]) -> dict[float | None, list[dict[str, Any]]]:
    """The steady runs' sizes by their warm-up (memory grows while a worker runs: only like runs compare)."""
    out: dict[float | None, list[dict[str, Any]]] = {}
    for r in sizes:
        out.setdefault(r.get("warmup_s"), []).append(r)
    return out


def _memory_slope(sizes: list[dict[str, Any]]) -> float | None:
    """KB of worker memory per extra twin: the least-squares slope over the sizes of the warm-up measured at
    the most sizes."""
    sizes = max(_by_warmup(sizes).values(), key=len, default=[])
    xs, ys = [r["racks"] for r in sizes], [r["worker_rss_mb"] for r in sizes]
    if len(set(xs)) < 2:
        return None
    return statistics.linear_regression(xs, ys).slope * 1024


# --- sections -----------------------------------------------------------------------------------------


def _ingest_section(runs: list[dict[str, Any]], plots: Path, reports: Path) -> list[str]:
    lines = ["## Ingest ratios on the fleet-shaped load", ""]
    if not runs:
        return lines + ["Not measured in this report (no `bench/reports/ingest-run*.json`): run `python -m bench`.", "",
                        *_figure(FIGURES[2], None, "python bench/ingest.py")]
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
        f"[{p.name}](reports/{p.name})" for p in sorted(reports.glob("ingest-run*.md"))), ""]
    cdf = _plot_latency(runs, plots)
    commands = "`, `".join(r["command"] for r in runs)
    partial = "" if all((r.get("latency") or {}).get("cdf") for r in runs) else (
        " A run drawn as three points recorded only its p50, p99 and max (bench/ingest.py now records every "
        "percentile: the next run draws its whole curve).")
    return lines + _figure(FIGURES[2], cdf, commands, "Each run's (c) worker after its catch-up, fed at a paced rate; "
                           "a reading counts when a reader of `rack_state` sees it (polled every 50 ms)." + partial)


def _workers_section(workers: dict[str, Any] | None, runs: list[dict[str, Any]], plots: Path) -> list[str]:
    lines = ["## Our worker as 1 and 2 processes in one group", ""]
    if not workers or not workers.get("workers"):
        command = "python " + " ".join(workers_command())
        return lines + [f"Not measured (no `bench/reports/ingest-workers.json`): `{command}`.", "",
                        *_figure(FIGURES[1], None, command)]
    w, nproc = workers["workers"], workers["machine"]["nproc"]
    lines += [f"Command: `{workers['command']}` at {workers['when']}, load average "
              f"{workers['load_average_at_start'][0]:.2f} at the start; {workers['load']['readings']:,} readings in "
              f"{workers['load']['messages']:,} fleet-shaped reports. The group forms on the empty topic, then the "
              "workers are paused while the load is published and resumed to take it as a backlog, as (c) does; rates "
              "count first commit to last; CPU is each process's over the same window, in shares of one core. "
              f"Full report: [ingest-workers.md](reports/ingest-workers.md).", "",
              "| workers | readings/s (median) | spread | rounds | vs 1 worker | vs (a) bare limit | workers' CPU | "
              "PostgreSQL | broker | bench | cores busy: ours | whole machine |",
              "|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for n, x in w["summary"].items():
        to_one = "-" if x.get("to_one_worker") is None else f"**{x['to_one_worker']:.2f}**"
        lines.append(f"| {n} | **{x['per_second']:,.0f}** | {x['min']:,.0f}–{x['max']:,.0f} | {x['rounds']} | {to_one} | "
                     f"{'-' if x.get('c_a') is None else format(x['c_a'], '.2f')} | {x['worker_cpu']:.0%} | "
                     f"{x['postgres_cpu']:.0%} | {x['broker_cpu']:.0%} | {x['bench_cpu']:.0%} | "
                     f"{x['busy_cores']:.2f} | {x.get('machine_cores', float('nan')):.2f} of {nproc} |")
    if w.get("a_per_second"):
        lines += ["", f"(a) bare limit in the same run: {w['a_per_second']:,.0f} readings/s."]
    note = _workers_note(w, nproc)
    if note:
        lines += ["", note]
    one = w["summary"].get("1")
    if one and runs:
        c = statistics.median(r["rates"]["c"]["per_second"] for r in runs)
        loads = ", ".join(f"{r['load_average_at_start'][0]:.2f}" for r in runs if r.get("load_average_at_start"))
        lines += ["", f"One worker took {one['per_second']:,.0f} readings/s here against a median {c:,.0f} for (c) in "
                  f"the ingest runs above (load average at their start {loads}; here "
                  f"{workers['load_average_at_start'][0]:.2f}): compare rows within one run, not across runs."]
    lines.append("")
    return lines + _figure(FIGURES[1], _plot_workers(workers, plots), workers["command"])


def _workers_note(w: dict[str, Any], nproc: int) -> str:
    """What the 2-worker ratio says, judged from the CPU measured beside it."""
    one, two = w["summary"].get("1"), w["summary"].get("2")
    if not (one and two and two.get("to_one_worker") is not None):
        return ""
    rounds = ", ".join(f"{x:.2f}" for x in two.get("to_one_worker_per_round", []))
    head = (f"Two workers took **{two['to_one_worker']:.2f}x** one worker's readings/s (median of the rounds' ratios"
            + (f": {rounds}" if rounds else "") + "). ")
    ours = (f"the workers {two['worker_cpu']:.0%} of a core together, PostgreSQL {two['postgres_cpu']:.0%}, the broker "
            f"{two['broker_cpu']:.0%}, the bench's poller {two['bench_cpu']:.0%}")
    machine = two.get("machine_cores")
    if machine is not None and machine >= 0.85 * nproc:
        return head + (f"The machine was saturated while they ran: {machine:.2f} of its {nproc} cores busy, "
                       f"{two['busy_cores']:.2f} of them this bench's ({ours}), the rest other work on the shared "
                       "machine. The broker and PostgreSQL share the same 2 cores with the workers, so a second "
                       "worker here cannot double the rate; a worker with its own 2 cores, the broker and database "
                       "elsewhere, is not measured here.")
    return head + (f"The machine was not saturated ({'?' if machine is None else format(machine, '.2f')} of {nproc} "
                   f"cores busy; {ours}): each worker also waits for its commits and fetches.")


def _steady(reports: Path) -> dict[str, Any] | None:
    steady_runs = [r for p in sorted(reports.glob("steady*.json")) if (r := _load(p)) and r.get("sizes")]
    if not steady_runs:
        return None
    return {"command": "`, `".join(r["command"].strip() for r in steady_runs),
            "loadavg_before": max((r["loadavg_before"] for r in steady_runs), default=[float("nan")]),
            "sizes": sorted((s for r in steady_runs for s in r["sizes"]), key=lambda s: s["racks"])}


def _steady_section(steady: dict[str, Any] | None, runs: list[dict[str, Any]], workers: dict[str, Any] | None,
                    plots: Path) -> list[str]:
    lines = ["## Steady state at fleet size (one worker, 1 Hz a rack, fleet-shaped reports)", ""]
    if not steady:
        return lines + ["Not measured (no `bench/reports/steady.json`): `python -m bench.steady`.", "",
                        *_figure(FIGURES[0], None, "python -m bench.steady"),
                        *_figure(FIGURES[3], None, "python -m bench.steady")]
    lines += [f"Commands: `{steady['command']}`; highest load average before a run {steady['loadavg_before'][0]:.2f}.",
              "", "| racks | warm-up | readings/s offered | p50 | p99 | max | worker CPU | PostgreSQL CPU | worker RSS | "
              "lag after grace (messages) | keeps up (p99 < 1 s) |",
              "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|"]
    for r in steady["sizes"]:
        short = " (pacer fell behind: " + f"{r['offered_share']:.0%} of 1 Hz)" if r.get("offered_share", 1) < 0.95 else ""
        lag = r["lag_messages_after_grace"]
        lines.append(f"| {r['racks']:,} | {_seconds(r.get('warmup_s'))} | {r['offered_readings_per_second']:,.0f}{short} | "
                     f"{_ms(r['p50_s'])} | {_ms(r['p99_s'])} | {_ms(r['max_s'])} | {r['worker_cpu']:.0%} | "
                     f"{r['postgres_cpu']:.0%} | {r['worker_rss_mb']:.0f} MB | "
                     f"{'not valid in this run' if lag is None else format(lag, ',')} | "
                     f"{'yes' if r['keeps_up'] else 'no'} |")
    largest = steady["sizes"][-1]
    if largest["keeps_up"]:
        lines += ["", f"Workers needed at the largest size measured ({largest['racks']:,} racks): "
                  f"{max(1, math.ceil(largest['worker_cpu']))} (its worker CPU share, rounded up to whole cores).", ""]
    else:
        kept = [r for r in steady["sizes"] if r["keeps_up"]]
        busy = largest["worker_cpu"] + largest["postgres_cpu"] + largest.get("bench_cpu", 0.0)
        lines += ["", f"Workers needed: not derivable from these runs: one worker kept up at "
                  f"{'no size measured' if not kept else format(kept[-1]['racks'], ',') + ' racks'}. At "
                  f"{largest['racks']:,} racks the worker used {largest['worker_cpu']:.0%} of a core, PostgreSQL "
                  f"{largest['postgres_cpu']:.0%} and the load generator {largest.get('bench_cpu', 0.0):.0%}, "
                  f"{busy:.1f} of the machine's {os.cpu_count()} cores with the broker besides: the machine was the "
                  "limit, so a second worker here would share the same cores (measured in \"Our worker as 1 and 2 "
                  "processes\" above). Where the worker's time goes is in \"Worker hot path\" below.", ""]
    ceilings: dict[str, float] = {}
    if runs:
        ceilings["one worker catching up, median of the ingest runs (c)"] = statistics.median(
            r["rates"]["c"]["per_second"] for r in runs)
    fleet_note = ("Readings/s offered at each size (green: one worker kept up, red: it fell behind; the steady bench "
                  "records whether the worker kept up and its lag, not the rate it took). The grey line is what one "
                  "worker took when catching up on a backlog in the ingest runs, for scale"
                  + (f" (`{runs[0]['command']}` and the others above)" if runs else "") + ".")
    lines += _figure(FIGURES[0], _plot_fleet(steady, ceilings, plots), steady["command"], fleet_note)
    slope = _memory_slope(steady["sizes"])
    memory_note = (f"Least-squares slope over the sizes of one warm-up: {slope:,.1f} KB a twin." if slope is not None
                   else "")
    return lines + _figure(FIGURES[3], _plot_memory(steady, plots), steady["command"], memory_note)


def _rebuild_section(rebuild: dict[str, Any] | None, plots: Path) -> list[str]:
    lines = ["## Rebuild", ""]
    if not rebuild:
        return lines + ["Not measured (no `bench/reports/rebuild.json`): `python -m bench.rebuild`.", "",
                        *_figure(FIGURES[4], None, "python -m bench.rebuild")]
    lines += [f"Command: `{rebuild['command']}` at {rebuild['at']}, load average "
              f"{rebuild['loadavg_before'][0]:.2f} before and {rebuild['loadavg_after'][0]:.2f} after. "
              f"{rebuild['racks']:,} racks, {rebuild['events']:,} events, seeded in bulk in "
              f"{rebuild['seed_seconds']:.0f} s. Every variant's rebuilt twins equal the live ones "
              "(the bench fails otherwise).", "",
              "| variant | events/s (wall) | events per Python CPU-second | seconds |", "|---|---:|---:|---:|"]
    for k, v in _rebuild_variants(rebuild).items():
        what = _REBUILD_LONG.get(k, f"shipped (light records, runs of installations packed at once), {k[1:]} process(es)")
        lines.append(f"| {what} | {v['per_second']:,.0f} | {v['per_cpu_second']:,.0f} | {v['seconds']:.1f} |")
    lines.append("")
    return lines + _figure(FIGURES[4], _plot_rebuild(rebuild, plots), rebuild["command"])


def _profiles(reports: Path) -> list[str]:
    lines = ["## Rebuild hot path, before and after", ""]
    profile = reports / "rebuild-profile.md"
    if profile.exists():
        lines += [profile.read_text().split("\n", 1)[1].replace("\n## ", "\n### "), ""]
    else:
        lines += ["Not measured (no `bench/reports/rebuild-profile.md`): `python -m bench.profile_rebuild`.", ""]
    lines += ["## Worker hot path, before and after", "",
              "Before: session 4's worker (every changed rack judged in full). After: the calm path "
              "(`twin.domain.calm`) and the fold's other changes of session 5. Same command, same fleet.", ""]
    for name, when in (("worker-profile-before.md", "Before"), ("worker-profile.md", "After")):
        worker_profile = reports / name
        lines += [f"### {when}", ""]
        if worker_profile.exists():
            lines += [worker_profile.read_text().split("\n", 1)[1].replace("\n### ", "\n#### ").replace("\n## ", "\n#### "), ""]
        else:
            lines += [f"Not measured (no `bench/reports/{name}`): `python -m bench.steady --sizes 20000 --warmup 60 "
                      "--profile DIR`, then `python -m bench.hotpath DIR/worker-steady20000.txt`.", ""]
    return lines


def _judge_section(reports: Path) -> list[str]:
    """The fold's judging cost, full judgement against the calm path (bench.judge), in CPU time."""
    lines = ["## Judging a poll cycle: full judgement against the calm path", ""]
    judge = _load(reports / "judge.json")
    if not judge or "variants" not in judge:
        return lines + ["Not measured (no `bench/reports/judge.json`): `python -m bench.judge`.", ""]
    lines += [f"Command: `{judge['command'].strip()}`; {judge['machine']}, load average {judge['loadavg'][0]:.2f}. In "
              f"process (no broker, no database): the telemetry fold over {judge['racks']:,} racks, "
              f"{judge['readings_per_cycle']:,} readings a cycle, {judge['cycles']} cycles; CPU time a reading, so "
              "other work on the machine weighs less than on wall time. Every variant's judgements equal the full "
              f"one's (the bench fails otherwise); {judge['calm_share']:.0%} of racks were calm.", "",
              "| variant | µs CPU a reading |", "|---|---:|",
              *(f"| {k} | {v:,.1f} |" for k, v in judge["variants"].items()), "",
              f"The calm path against the full judgement: **{judge['speedup_fresh']:.2f}x** on fresh readings, "
              f"**{judge['speedup_stale']:.2f}x** on a backlog read late.", ""]
    return lines


# --- other benches' headline figures --------------------------------------------------------------


def _from_markdown(reports: Path, name: str, how: str) -> list[str]:
    """A bench's command and first table from its markdown, when its JSON is not here."""
    command, table = _first_table(reports / f"{name}.md")
    if not table:
        return [f"Not measured (no `bench/reports/{name}.json` or `.md`): `{how}`.", ""]
    return [f"Command: `{command or how}` (figures from [{name}.md](reports/{name}.md); its JSON was not kept).", "",
            *table, ""]


def _api_section(reports: Path) -> list[str]:
    lines = ["## API latency", ""]
    api = _load(reports / "api.json")
    if not api:
        return lines + _from_markdown(reports, "api", "python bench/api.py")
    timed = [e for e in api["endpoints"] if e.get("target_p99_ms") not in (None, "-")]
    met = [e for e in timed if e["p99_ms"] <= float(e["target_p99_ms"])]
    lines += [f"Command: `{api['command']}`; {api['machine']}; {api['racks']:,} racks in the store "
              f"({api['database_size']}); load average {api['load_average_before'][0]:.2f} before timing, "
              f"{api['load_average_after'][0]:.2f} after. One keep-alive client against one `twin api` process; "
              f"p99 within its target for **{len(met)} of {len(timed)}** endpoints with a target. "
              "Full report: [api.md](reports/api.md).", "",
              "| endpoint | path | requests | p50 ms | p99 ms | target p99 ms | met |", "|---|---|---:|---:|---:|---:|---|"]
    for e in api["endpoints"]:
        target = e.get("target_p99_ms") or "-"
        ok = "-" if target == "-" else ("yes" if e["p99_ms"] <= float(target) else "**no**")
        lines.append(f"| {e['endpoint']} | `{e['path']}` | {e['n']} | {e['p50_ms']:.1f} | {e['p99_ms']:.1f} | "
                     f"{target} | {ok} |")
    ingest = api.get("ingest") or {}
    if ingest:
        lines += ["", f"POST /v1/events: {ingest['lifecycle_events_per_s']:,.0f} lifecycle events/s (batches of "
                  f"{ingest['batch']:,}); {ingest['readings_per_s']:,.0f} readings/s ({ingest['reports_per_batch']} "
                  "reports a POST)."]
    return lines + [""]


def _alerts_section(reports: Path) -> list[str]:
    lines = ["## Alert latency", ""]
    alerts = _load(reports / "alerts.json")
    if not alerts or "summary" not in alerts:
        return lines + _from_markdown(reports, "alerts", "python bench/alerts.py")
    lines += [f"Command: `{alerts['command']}` at {alerts['when']}, load average {alerts['load'][0]:.2f} at the end; "
              f"{alerts['racks']} racks. Event to Alertmanager's webhook, beyond the rule's for-duration; target p99 "
              "under 2 s. Full report: [alerts.md](reports/alerts.md).", "",
              "| fault | rule | trials | no page | beyond for p50 | p99 | max |", "|---|---|---:|---:|---:|---:|---:|"]
    for r in alerts["summary"]:
        q = [_ms(r[k]) if r[k] is not None else "-" for k in ("beyond_for_p50_s", "beyond_for_p99_s", "beyond_for_max_s")]
        lines.append(f"| {r['fault']} | {r['rule']} | {r['trials']} | {r['no_page']} | **{q[0]}** | **{q[1]}** | {q[2]} |")
    ticks = alerts.get("ticks")
    if ticks:
        lines += ["", f"The engine over {ticks['racks']:,} racks ({ticks['open_deviations']:,} open deviations): steady "
                  f"tick p50 {_ms(ticks['p50_s'])}, max {_ms(ticks['max_s'])} (it evaluates every "
                  f"{alerts['eval_seconds']:g} s)."]
    return lines + [""]


def _storage_section(reports: Path) -> list[str]:
    lines = ["## Storage bytes per rack-day", ""]
    st = _load(reports / "storage.json")
    if not st or "bytes_per_rack_day" not in st:
        return lines + _from_markdown(reports, "storage", "python bench/storage.py")
    per = st["bytes_per_rack_day"]
    proj = st.get("projection_75k") or {}
    lines += [f"Command: `{st['command']}`; {_tidy(st['machine'])}. {st['readings']:,} readings of {st['racks']:,} racks at "
              "1 Hz. Full report: [storage.md](reports/storage.md).", "",
              "| table | bytes a row | per rack-day |", "|---|---:|---:|"]
    for name, label in (("before (0002)", "telemetry, before (0002 layout)"), ("telemetry", "telemetry (as shipped)"),
                        ("rack_minutes", "rack_minutes rollup"), ("rack_hours", "rack_hours rollup")):
        if name in per:
            table = st["tables"].get("telemetry_0002" if name.startswith("before") else name, {})
            row_bytes = f"{table['bytes_per_row']:.0f}" if table else "-"
            lines.append(f"| {label} | {row_bytes} | **{_size(per[name])}** |")
    if proj:
        lines += ["", f"At 75,000 racks: raw {proj['raw_per_day_after'] / 2**40:,.2f} TiB a day; 14 days raw, 400 days "
                  f"of minutes and 5 years of hours: {proj['total'] / 2**40:,.1f} TiB."]
    if "ingest_on_over_off" in st:
        lines += ["", f"Ingest with rollups on against off (median): {st['ingest_on_over_off']:.2f}."]
    return lines + [""]


def _collector_section(reports: Path) -> list[str]:
    lines = ["## Collector", ""]
    col = _load(reports / "collector.json")
    if not col or "rows" not in col:
        return lines + _from_markdown(reports, "collector", "python bench/collector.py")
    lines += [f"Command: `{col['command']}`. Endpoints polled a second by one collector process, against plain "
              "HTTP GETs of the same paths (b/a). Full report: [collector.md](reports/collector.md).", "",
              "| kind | GETs a poll | concurrency | (a) bare endpoints/s | (b) collector endpoints/s | b/a |",
              "|---|---:|---:|---:|---:|---:|"]
    for r in col["rows"]:
        lines.append(f"| {r['kind']} | {r['gets_per_poll']} | {r['concurrency']} | {r['bare_per_s']:,.1f} | "
                     f"**{r['collector_per_s']:,.1f}** | {r['share_of_bare']:.2f} |")
    return lines + [""]


def _grafana_section(reports: Path) -> list[str]:
    lines = ["## Grafana panels", ""]
    gf = _load(reports / "grafana.json")
    if not gf or "results" not in gf:
        return lines + _from_markdown(reports, "grafana", "python bench/grafana.py")
    lines += [f"Command: `{gf['command']}`; {_tidy(gf['machine'])}; {gf['racks']:,} racks. Target p99 under 1 s. Full "
              "report: [grafana.md](reports/grafana.md)"
              + (" (reading the raw tail live instead: [grafana-live-tail.md](reports/grafana-live-tail.md))."
                 if (reports / "grafana-live-tail.md").exists() else "."), "",
              "| panel | range | points | p50 ms | p99 ms | p99 < 1 s |", "|---|---|---:|---:|---:|---|"]
    for r in gf["results"]:
        lines.append(f"| {r['panel']} | {r['range']} | {r['rows']:,} | {r['p50_ms']:,.0f} | **{r['p99_ms']:,.0f}** | "
                     f"{'yes' if r['p99_ms'] < 1000 else 'no'} |")
    return lines + [""]


HANDLED = {"api", "alerts", "storage", "collector", "grafana", "grafana-live-tail", "ingest-workers", "judge"}


def _unlisted(reports: Path) -> list[str]:
    """Links to any other result a bench left in bench/reports/ that no section above reads."""
    others = sorted(p for p in reports.glob("*") if p.is_file() and p.name not in OWN and p.stem not in HANDLED
                    and not p.name.startswith(("ingest-run", "steady")) and p.suffix in (".md", ".json"))
    links = sorted({f"[{p.stem}](reports/{p.with_suffix('.md').name if p.with_suffix('.md').exists() else p.name})"
                    for p in others})
    return ["## Other results", "", "Not summarised above: " + ", ".join(links) + ".", ""] if links else []


# --- the closing table --------------------------------------------------------------------------------


def _closing(runs: list[dict[str, Any]], rebuild: dict[str, Any] | None, steady: dict[str, Any] | None,
             workers: dict[str, Any] | None) -> list[str]:
    """Which of issue 13's targets these figures meet and, for each not met, what blocks it: computed from the
    figures above, not written by hand."""
    out = ["## Targets (issue 13), from the figures above", "",
           "| target | measured | met | what blocks it (measured) |", "|---|---|---|---|"]

    def row(target: str, measured: str, met: bool | None, blocks: str = "") -> None:
        verdict = "yes" if met else "no" if met is not None else "not measured"
        out.append(f"| {target} | {measured} | {verdict} | {'' if met else blocks} |")

    if runs:
        ca = statistics.median(r["ratios"]["c_a"] for r in runs)
        cb = statistics.median(r["ratios"]["c_b"] for r in runs)
        lat = [r["latency"] for r in runs]
        a_us = statistics.median(1e6 / r["rates"]["a"]["per_second"] for r in runs)
        c_us = statistics.median(1e6 * r["rates"]["c"]["handling"] / r["rates"]["c"]["readings"] for r in runs
                                 if r["rates"]["c"].get("handling"))
        blocks = (f"the worker's pipeline: {c_us:.1f} µs a reading inside it while catching up (decode, fold, judge, "
                  f"write: `twin_batch_seconds`), where (a) takes {a_us:.1f} µs a reading in all; where the pipeline's "
                  "time goes is in \"Worker hot path\"")
        row("c/a ≥ 0.5 (median)", f"{ca:.2f}", ca >= 0.5, blocks)
        row("c/b ≥ 20 (median)", f"{cb:.1f}", cb >= 20, "the plain agent's rate varies run to run (see the runs above)")
        p99 = statistics.median(x["p99"] for x in lat)
        row("p99 event to visible < 1 s (ingest, steady rate)", _ms(p99), p99 < 1.0, "")
    else:
        row("c/a ≥ 0.5, c/b ≥ 20", "-", None)
    if rebuild:
        best_key, best = max(((k, v) for k, v in rebuild["variants"].items() if k != "validate"),
                             key=lambda kv: kv[1]["per_second"])
        cores = 500_000 / best["per_cpu_second"] if best.get("per_cpu_second") else float("nan")
        row("rebuild ≥ 500,000 events/s", f"{best['per_second']:,.0f} events/s at {rebuild['racks']:,} racks",
            best["per_second"] >= 500_000,
            f"{best['per_cpu_second']:,.0f} events per Python CPU-second ({best_key[1:]} process(es)): 500,000/s would "
            f"take about {cores:.0f} cores at that cost, and the machine has {os.cpu_count()}")
    else:
        row("rebuild ≥ 500,000 events/s", "-", None)
    sizes = {r["racks"]: r for r in (steady or {}).get("sizes", [])}   # the last run of a size (they are sorted)
    at75 = sizes.get(75_000)
    row("one worker keeps up with 75,000 racks at p99 < 1 s",
        f"p99 {_ms(at75['p99_s'])}" if at75 else f"sizes measured: {sorted(sizes) or 'none'}",
        at75["keeps_up"] if at75 else None,
        f"{_took_rate(sizes)}at 75,000 the worker "
        f"used {at75['worker_cpu']:.0%} of a core, PostgreSQL {at75['postgres_cpu']:.0%}, the load generator "
        f"{at75.get('bench_cpu', 0):.0%} (with the broker: the 2 cores)" if at75 and not at75["keeps_up"] else "")
    at100 = sizes.get(100_000)
    slope = _memory_slope(steady["sizes"]) if steady else None
    row("worker with 100,000 twins < 500 MB resident",
        f"{at100['worker_rss_mb']:.0f} MB" if at100 else "100,000 not measured here",
        at100["worker_rss_mb"] < 500 if at100 else None,
        f"about {slope:,.1f} KB a twin held (slope over the sizes measured)" if slope is not None else "")
    out.append("")
    if workers and workers.get("workers") and (two := workers["workers"]["summary"].get("2")) \
            and two.get("to_one_worker") is not None:
        out += [f"Not a target, measured: two workers in one group took {two['to_one_worker']:.2f}x one worker's "
                "readings/s on this machine (\"Our worker as 1 and 2 processes\" says why from the CPU).", ""]
    return out


def missing_items(report: str, plots: Path) -> list[str]:
    """What the report lacks of what it must show: a section, a named figure, its image file, its command."""
    missing = [f"section {s}" for s in SECTIONS if f"\n{s}" not in report]
    for fig in FIGURES:
        at = report.find(f"### Figure: {fig.title}\n")
        if at < 0:
            missing.append(f"figure {fig.title}")
            continue
        end = report.find("\n#", at + 1)   # the figure's block runs to the next heading
        block = report[at:end if end > 0 else len(report)]
        if f"](plots/{fig.file})" not in block or not (plots / fig.file).exists():
            missing.append(f"plot {fig.file}")
        if "Command: `" not in block:
            missing.append(f"command of {fig.title}")
    return missing


def write_report(command: str, reports: Path = REPORTS, plots: Path = PLOTS, out: Path | None = None) -> Path:
    """Write the report from the results in `reports` (plots into `plots`); return its path."""
    out = out or BENCH / "REPORT.md"
    runs = [r for p in sorted(reports.glob("ingest-run*.json")) if (r := _load(p))]
    workers = _load(reports / "ingest-workers.json")
    rebuild = _load(reports / "rebuild.json")
    steady = _steady(reports)
    machine = (runs[0]["machine"] if runs else (workers or {}).get("machine")) or {}
    lines = ["# Benchmarks", "", f"Written by `{command}` on {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}.", "",
             f"Machine: {os.cpu_count()} CPUs" + (f" ({machine['cpu']})" if machine.get("cpu") else "")
             + f", {platform.platform()}; load average now {', '.join(f'{x:.2f}' for x in os.getloadavg())} (the "
             "machine is shared: figures taken under load are noisy; each section says when and how it was taken, "
             "and ratios are taken within one run).  ",
             "Versions (this environment's, which ran the benches): " + ", ".join(f"{k} {v}" for k, v in _versions().items())
             + (f", PostgreSQL {machine['postgres']}" if machine.get("postgres") else "") + ", Tansu 0.6 (embedded).",
             "", "## Figures", "", "| figure | file | section |", "|---|---|---|"]
    where = {FIGURES[0]: "Steady state", FIGURES[1]: "Our worker as 1 and 2 processes", FIGURES[2]: "Ingest ratios",
             FIGURES[3]: "Steady state", FIGURES[4]: "Rebuild"}
    lines += [f"| {f.title} | [plots/{f.file}](plots/{f.file}) | {where[f]} |" for f in FIGURES]
    lines.append("")
    lines += _ingest_section(runs, plots, reports)
    lines += _workers_section(workers, runs, plots)
    lines += _steady_section(steady, runs, workers, plots)
    lines += _rebuild_section(rebuild, plots)
    lines += _profiles(reports)
    lines += _judge_section(reports)
    lines += _api_section(reports)
    lines += _alerts_section(reports)
    lines += _storage_section(reports)
    lines += _collector_section(reports)
    lines += _grafana_section(reports)
    lines += _unlisted(reports)
    lines += _closing(runs, rebuild, steady, workers)
    text = "\n".join(lines)
    out.write_text(text)
    for item in missing_items(text, plots):
        print(f"report: {item} missing (not measured?)", file=sys.stderr)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true",
                        help="one small ingest run, one round of 1 and 2 workers, a 2,000-rack rebuild")
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
