"""bench/acd_e2e.py's parts: the site it runs, how a call is judged, the figures."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench"
sys.path.insert(0, str(BENCH))

import acd_e2e  # noqa: E402

from edge_core.config.schema import parse_config  # noqa: E402

# ------------------------------------------------------------------ the site


def test_site_config_is_valid_and_starts_in_the_queue(tmp_path: Path) -> None:
    args = acd_e2e.parse_args(["--quick", "--agents", "3"])
    config = parse_config(acd_e2e.site_config(tmp_path, 5070, args))
    assert config.sip.auth_required is False
    assert [r.flow for r in config.routes] == [acd_e2e.FLOW]
    flow = config.flows[acd_e2e.FLOW]
    assert flow.nodes[flow.start].type == "queue"
    (queue,) = config.queues
    assert (queue.wrap_up_s, queue.announce_every_s, queue.max_length) == (0, 0, 0)
    assert [a.extension for a in config.agents] == ["3000", "3001", "3002"]
    assert all(a.queues == [queue.name] for a in config.agents)


def test_quick_defaults_leave_the_agents_above_the_highest_rate() -> None:
    for argv in (["--quick"], []):
        args = acd_e2e.parse_args(argv)
        assert max(acd_e2e.rates_to_try(args)) < acd_e2e.agent_capacity(args)


# ------------------------------------------------------------------ the agents' log


def test_answered_lines_carry_sipps_doubles(tmp_path: Path) -> None:
    floor = acd_e2e.Floor(tmp_path, acd_e2e.parse_args(["--quick"]))
    floor.agent_log = tmp_path / "agents.log"
    floor.agent_log.write_text(
        "answered abc@127.0.0.1 1795670054.000000 186659.000000\n"
        "something else\n"
        "answered def@127.0.0.1 1795670055.000000 5.000000\n"
    )
    assert floor.answered() == {
        "abc@127.0.0.1": pytest.approx(1795670054.186659),
        "def@127.0.0.1": pytest.approx(1795670055.000005),
    }


# ------------------------------------------------------------------ judging calls


def cdr(a: str, b: str | None, start: float, **extra: Any) -> dict[str, Any]:
    row = {"a_call_id": a, "b_call_id": b, "start_time": start, "end_time": start + 1.0,
           "disposition": "answered", "hangup_side": "callee", "cause": "normal",
           "sip_status": 200, "sip_reason": "OK"}
    return {**row, **extra}


def test_a_call_counts_only_when_an_agent_answered_its_leg() -> None:
    answered = {"leg1": 100.010, "leg2": 100.530}
    rows = [
        cdr("c1", "leg1", 100.0),
        cdr("c2", "leg2", 100.5),
        cdr("c3", None, 101.0, hangup_side="edge", cause="ivr-queue-overflow"),
        cdr("c4", "leg-unknown", 101.5),
    ]
    waits, answer_times, failures, examples = acd_e2e.judge_calls(rows, answered, offered=6)
    assert waits == pytest.approx([0.010, 0.030])
    assert answer_times == [100.010, 100.530]
    assert failures == {
        "no agent leg (cause ivr-queue-overflow, hung up by edge)": 1,
        "agent leg the agents never answered": 1,
        "no CDR": 2,
    }
    assert [e.split(":")[0] for e in examples] == ["c3", "c4"]


def test_percentile_is_nearest_rank() -> None:
    values = [float(v) for v in range(1, 101)]
    assert acd_e2e.percentile(values, 0.50) == 50.0
    assert acd_e2e.percentile(values, 0.99) == 99.0
    assert acd_e2e.percentile([7.0], 0.99) == 7.0
    assert acd_e2e.percentile([], 0.5) is None


def test_rates_from_arrivals_and_answers() -> None:
    starts = [0.0, 0.1, 0.2, 0.3, 0.4]  # 10 calls/s
    assert acd_e2e.arrival_rate(starts) == pytest.approx(10.0)
    # answered promptly: the same rate; a backlog that grows: lower
    assert acd_e2e.answer_rate(starts, [s + 0.002 for s in starts]) == pytest.approx(10, rel=0.01)
    assert acd_e2e.answer_rate(starts, [s * 2 for s in starts]) == pytest.approx(5.0)
    assert acd_e2e.arrival_rate([1.0]) == 0.0
