"""`python -m bench.judge` runs both judgements on one simulated fleet and refuses a calm path that disagrees."""

from __future__ import annotations

import json
from pathlib import Path
from unittest import mock

from bench import judge
from twin.domain import calm


def test_the_judging_bench_measures_both_paths_and_they_agree(tmp_path: Path) -> None:
    out = tmp_path / "judge.json"
    assert judge.main(["--racks", "300", "--cycles", "8", "--out", str(out)]) == 0
    result = json.loads(out.read_text())
    assert set(result["variants"]) == {"full, fresh", "calm, fresh", "full, stale", "calm, stale"}
    assert all(v > 0 for v in result["variants"].values())
    assert 0.5 < result["calm_share"] <= 1.0  # the simulator's fleet is mostly healthy, some racks faulty


def test_the_judging_bench_fails_when_the_calm_path_is_wrong(tmp_path: Path) -> None:
    wrong = calm.calm_judgement

    def stale_never(twin, intent, now, stale_after_seconds, **kw):  # type: ignore[no-untyped-def]
        return wrong(twin, intent, now, 1e9, **kw)  # a calm path that never sees a rack go stale

    with mock.patch("streams.telemetry.calm_judgement", stale_never):
        assert judge.main(["--racks", "300", "--cycles", "8", "--out", str(tmp_path / "j.json")]) == 1
