"""bench/REPORT.md shows every figure issue 13 names (by name, as a PNG, with the command behind it) and
every section, including the other benches' headline figures; a result that is missing shows as
missing (with the command that measures it), never as a silently shorter report."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from bench.__main__ import FIGURES, SECTIONS, _workers_note, missing_items, write_report

BENCH = Path(__file__).resolve().parents[2] / "bench"


@pytest.fixture
def reports(tmp_path: Path) -> Path:
    """A copy of the results kept in bench/reports/ (the report is rewritten from them, not from a run)."""
    copy = tmp_path / "reports"
    shutil.copytree(BENCH / "reports", copy, ignore=shutil.ignore_patterns("logs"))
    return copy


def _write(tmp_path: Path, reports: Path) -> str:
    out = write_report("python -m bench --report-only", reports=reports, plots=tmp_path / "plots",
                       out=tmp_path / "REPORT.md")
    return out.read_text()


def test_the_report_from_the_kept_results_has_every_section_and_named_figure(tmp_path: Path, reports: Path) -> None:
    text = _write(tmp_path, reports)
    assert missing_items(text, tmp_path / "plots") == []
    for figure in FIGURES:
        assert (tmp_path / "plots" / figure.file).stat().st_size > 5_000, f"{figure.file} is an empty plot"
    assert "| 1 | **" in text and "| 2 | **" in text  # the 1- and 2-worker rows, with their rates
    assert "| fleet summary by facility, generation | `/v1/fleet/summary` |" in text  # API latency per endpoint
    assert "| telemetry (as shipped) |" in text and " MiB** |" in text  # storage bytes per rack-day, inlined
    assert "| leak | rack-leak-detected |" in text  # alert latency, from JSON or the markdown's table


def test_the_committed_report_is_complete() -> None:
    assert missing_items((BENCH / "REPORT.md").read_text(), BENCH / "plots") == []


def test_a_missing_result_shows_as_not_measured_with_its_command(tmp_path: Path, reports: Path) -> None:
    (reports / "ingest-workers.json").unlink()
    (reports / "steady.json").unlink()
    (reports / "steady-warm.json").unlink()
    text = _write(tmp_path, reports)
    assert "Not measured (no `bench/reports/ingest-workers.json`): `python bench/ingest.py --only a --workers 1,2" in text
    assert set(missing_items(text, tmp_path / "plots")) == {
        "plot throughput-workers.png", "command of Throughput against workers (1 and 2)",
        "plot throughput-fleet-size.png", "command of Throughput against fleet size",
        "plot memory-twins.png", "command of Memory against twins"}


def test_a_report_without_a_section_or_figure_is_found_lacking(tmp_path: Path, reports: Path) -> None:
    text = _write(tmp_path, reports)
    assert missing_items(text.replace("\n## API latency", "\n## API"), tmp_path / "plots") == ["section ## API latency"]
    latency = FIGURES[2]
    assert missing_items(text.replace(f"### Figure: {latency.title}", "### A plot"), tmp_path / "plots") == [
        f"figure {latency.title}"]
    (tmp_path / "plots" / latency.file).unlink()
    assert missing_items(text, tmp_path / "plots") == [f"plot {latency.file}"]
    assert len(SECTIONS) == len(set(SECTIONS))


def _summary(ratio: float, machine: float, ours: float) -> dict[str, dict[str, float]]:
    one = {"busy_cores": 0.8, "machine_cores": machine, "worker_cpu": 0.5, "postgres_cpu": 0.2, "broker_cpu": 0.05,
           "bench_cpu": 0.05, "to_one_worker": 1.0}
    two = {**one, "busy_cores": ours, "to_one_worker": ratio}
    return {"summary": {"1": one, "2": two}}


def test_the_two_worker_note_says_saturated_only_when_the_machine_was() -> None:
    busy = _workers_note(_summary(1.2, machine=1.95, ours=1.1), nproc=2)
    assert "1.20x" in busy and "saturated" in busy and "cannot double" in busy
    idle = _workers_note(_summary(1.9, machine=1.2, ours=1.1), nproc=2)
    assert "1.90x" in idle and "not saturated" in idle


def test_the_two_worker_ratio_is_the_median_of_each_rounds_ratio_to_one_worker() -> None:
    from bench.ingest import Rate, WorkersRun, workers_results

    def run(workers: int, round_: int, per_second: float) -> WorkersRun:
        rate = Rate("w", int(per_second * 10), int(per_second * 10), 10.0, True)
        return WorkersRun(workers, round_, rate, [[0, 1, 2, 3]], 7.0, 1.0, 10.0, [0.5] * workers, 0.2, 0.1, 0.05, 1.9)

    runs = [run(1, 1, 10_000), run(2, 1, 30_000), run(1, 2, 20_000), run(2, 2, 20_000), run(1, 3, 40_000),
            run(2, 3, 48_000)]
    bare = Rate("a", 1_000_000, 1_000_000, 10.0, True)
    summary = workers_results(runs, bare)["summary"]
    assert summary["2"]["to_one_worker_per_round"] == [3.0, 1.0, 1.2]
    assert summary["2"]["to_one_worker"] == 1.2          # within each round, not 30,000 / 20,000 of the medians
    assert summary["1"]["per_second"] == 20_000 and summary["2"]["per_second"] == 30_000
    assert summary["2"]["c_a"] == 0.3
    assert summary["2"]["worker_cpu"] == 1.0 and summary["2"]["machine_cores"] == 1.9
