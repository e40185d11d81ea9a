"""The worker hot-path summary reads py-spy's collapsed stacks right: self and total shares of
busy samples, idle event-loop samples apart, our frames listed by total."""

from __future__ import annotations

from pathlib import Path

from bench.hotpath import hot_frames, markdown

STACKS = [
    "<module> (streams/__main__.py:9);run (asyncio/base_events.py:1);_run_once (asyncio/base_events.py:1845);"
    "select (selectors.py:451) 50",
    "<module> (streams/__main__.py:9);handle (/work/main/streams/telemetry.py:200);"
    "decode_report (/work/main/twin/domain/decoding.py:40);loads (orjson:0) 30",
    "<module> (streams/__main__.py:9);handle (/work/main/streams/telemetry.py:200);"
    "evaluate (/work/main/twin/domain/conformance.py:88) 10",
    "not a stack line",
]


def test_self_and_total_shares_are_of_busy_samples_and_idle_is_apart(tmp_path: Path) -> None:
    self_, total, busy, idle = hot_frames(STACKS)
    assert (busy, idle) == (40, 50)
    assert self_["loads (orjson)"] == 30
    assert total["handle (streams/telemetry.py)"] == 40  # on the stack of both busy lines, path and line cut
    profile = tmp_path / "worker-c.txt"
    profile.write_text("\n".join(STACKS))
    table = markdown(profile, "our worker", top=5)
    assert "| 75.0% | 75.0% | `loads (orjson)` |" in table
    assert "| 100.0% | `handle (streams/telemetry.py)` |" in table
    assert "44% of all" in table  # 40 busy of 90 samples
