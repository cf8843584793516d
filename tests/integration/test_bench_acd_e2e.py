"""bench/acd_e2e.py's quick path, tiny: the real edge, 3 SIPp agents, one step of 5 calls."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench"
sys.path.insert(0, str(BENCH))

import acd_e2e  # noqa: E402

pytestmark = [pytest.mark.timeout(90), pytest.mark.sipp, pytest.mark.slow]


def test_one_tiny_step_answers_every_call(
    sipp_bin: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["--quick", "--agents", "3", "--rates", "5", "--step-s", "1", "--talk-ms", "200",
            "--keep", str(tmp_path)]
    assert acd_e2e.main(argv) == 0
    out = capsys.readouterr().out
    result = json.loads(out.strip().splitlines()[-1])
    assert result["max_queue_cps_zero_failures"] == 5, out
    assert result["agents"] == 3
    (step,) = result["steps"]
    assert (step["offered"], step["answered_by_agent"], step["failed"]) == (5, 5, 0), step
    assert step["wait_p50_ms"] is not None and step["wait_p50_ms"] <= step["wait_p99_ms"]
