#!/usr/bin/env python3
"""ACD end to end: calls/s that enter a queue, wait and are answered by SIPp agents.

The real edge daemon (``edge run``, ``prompts.generate: tones``) with one hotline:
the route ``^100$`` goes to the flow ``hotline`` whose start node is the queue
``bench`` (longest-idle, wrap_up_s 0, announce_every_s 0, max_length 0, no
overflow: a call that waits ``--max-wait-s`` is hung up by the edge, cause
``ivr-queue-overflow``). ``--agents`` agents (extensions 3000..) log in with *71
from one SIPp (tests/scenarios/acd_agent_login.xml, one CSV line per agent, all
from the same port), then one SIPp on that port answers every agent leg at once
and hangs up after ``--talk-ms`` (bench/scenarios/acd_e2e_agent.xml). That
scenario logs ``answered CALL-ID SECONDS MICROSECONDS`` for each agent leg it
answers.

Each step, SIPp's ``uac_wait_bye`` (no auth: ``auth_required: false``) calls 100
at ``R`` calls/s for ``--step-s`` seconds; each caller stays until the edge's BYE
(the agent's hang-up passed on). The edge answers the caller itself (the flow),
so SIPp alone cannot tell a caller who reached an agent from one the edge hung
up on: the edge's CDRs (SQLite, read while it runs) decide. A call counts as
answered by an agent when its hotline CDR (``a_call_id`` = the caller's Call-ID)
says ``disposition = answered`` and its ``b_call_id`` is an agent leg the agent
SIPp logged as answered. Everything else is a failure: a SIPp failure (non-200,
timeout), a call with no CDR, a CDR without an answered agent leg (with its cause
and hang-up side). Queue wait = the agent's 200 (its wall clock) minus the CDR's
``start_time`` (the edge got the INVITE); the CDR's own ``answer_time`` is when
the edge answered the caller for the flow, not when an agent did.

A step passes with zero failures, the edge seeing calls arrive at >= 90 % of R
(the CDRs' start times: SIPp kept the rate) and the agents answering at >= 90 %
of R (first arrival to last answer: an edge that falls behind, whose waits grow
through the step, fails here before its callers reach max_wait_s). Retransmissions
SIPp's callers sent and the edge's CPU while calls arrive (% of one core) are
reported, not judged.
Rates step up through ``--rates`` (5 .. 960 calls/s, 10 s each, on one edge;
``--quick``: 40 and 160, 3 s each, well under a minute); after the first failing
step a bisection between the last pass and that failure runs (``--bisect`` steps,
each on a fresh edge). The result is the highest passing rate. The agents are sized so that they are not
the limit: ``--agents`` / talk stays well above the highest rate
(``agent_capacity_cps`` in the JSON; a step beyond it is marked ``agent_bound``).
With the issue's example of 20 agents talking 1 s the agents would cap the
result at 20 calls/s whatever the edge can do.

Progress lines go to stdout; the last line is one JSON object:
{"max_queue_cps_zero_failures", "max_cps_every_call_answered" (highest step with
no failure even if the edge fell behind), "agents", "talk_ms", "step_s",
"agent_capacity_cps", "steps": [...], "loadavg_start", "loadavg_end", "cpus",
"quick"}; the two rates are null when sipp is missing.
Run: ``.venv/bin/python bench/acd_e2e.py [--quick] [--keep DIR]``.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import sqlite3
import sys
import tempfile
import threading
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import (  # noqa: E402
    EDGE_RTP_PORTS,
    SIPP_MEDIA_PORTS,
    Stopwatch,
    emit_json,
    log,
    pick_udp_ports,
    udp_bindable,
)

from tests.sipp import (  # noqa: E402
    EdgeProcess,
    EdgeStartError,
    Sipp,
    SippResult,
    SippTimeout,
    default_edge_config,
    sipp_binary,
    wait_for,
    write_users_csv,
)

AGENT_SCENARIO = Path(__file__).resolve().parent / "scenarios" / "acd_e2e_agent.xml"
HOTLINE = "100"
FLOW = "hotline"
QUEUE = "bench"
DOMAIN = "bench.local"
FIRST_EXTENSION = 3000
RATE_KEPT_MIN = 0.9  # arrival rate the edge saw / asked rate
CALL_LIMIT = 20_000  # sipp -l: never the limit (its default would throttle waiting callers)
ANSWERED_LINE = re.compile(r"^answered (\S+) (\d+)(?:\.\d*)? (\d+)(?:\.\d*)?\s*$", re.M)


# ------------------------------------------------------------------ the site


def agent_extensions(count: int) -> list[tuple[str, str]]:
    """``(extension, password)`` of each agent's phone."""
    return [(str(FIRST_EXTENSION + i), f"pw{FIRST_EXTENSION + i}") for i in range(count)]


def agent_id(extension: str) -> str:
    return f"agent{extension}"


def site_config(workdir: Path, sip_port: int, args: argparse.Namespace) -> dict[str, Any]:
    """Hotline 100 -> flow whose start node is the queue; ``args.agents`` agents in it."""
    config = default_edge_config(workdir, sip_port=sip_port)
    config["site"]["id"] = "bench-acd-e2e"
    config["sip"].update(auth_required=False, domain=DOMAIN, realm=DOMAIN)
    config["media"].update(
        rtp_port_min=EDGE_RTP_PORTS[0], rtp_port_max=EDGE_RTP_PORTS[1],
        record_calls=args.record,
    )  # fmt: skip
    extensions = agent_extensions(args.agents)
    config["extensions"] = [{"number": n, "password": p} for n, p in extensions]
    config["trunks"] = []
    config["routes"] = [{"match": rf"^{HOTLINE}$", "flow": FLOW}]
    config["prompts"] = {"dir": str(workdir / "prompts"), "generate": "tones"}
    config["flows"] = {
        FLOW: {"start": "queue", "nodes": {"queue": {"type": "queue", "queue": QUEUE}}}
    }
    config["queues"] = [{
        "name": QUEUE, "strategy": "longest-idle", "ring_timeout_s": args.ring_timeout_s,
        "auto_pause_after": 0, "wrap_up_s": 0, "announce_every_s": 0,
        "max_wait_s": args.max_wait_s, "max_length": 0, "join_empty": False,
    }]  # fmt: skip
    config["agents"] = [
        {"id": agent_id(n), "extension": n, "queues": [QUEUE]} for n, _ in extensions
    ]
    return config


# ------------------------------------------------------------------ the floor


class CpuMeter:
    """CPU a process used from when this was made to ``mark()``, in % of one core.

    Read from /proc (Linux); None where it cannot be read.
    """

    def __init__(self, pid: int | None) -> None:
        self.pid = pid
        self.watch = Stopwatch()
        self.start = self._ticks()
        self.marked: tuple[int, float] | None = None

    def _ticks(self) -> int | None:
        if self.pid is None:
            return None
        try:
            fields = Path(f"/proc/{self.pid}/stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            return None
        return int(fields[11]) + int(fields[12])  # utime + stime (fields 14, 15)

    def mark(self) -> None:
        ticks = self._ticks()
        if ticks is not None and self.marked is None:
            self.marked = (ticks, self.watch.elapsed())

    def percent(self) -> float | None:
        self.mark()  # no-op when marked already
        if self.start is None or self.marked is None or self.marked[1] <= 0:
            return None
        ticks, elapsed = self.marked
        return round(100 * (ticks - self.start) / os.sysconf("SC_CLK_TCK") / elapsed, 1)


def rss_mb(pid: int | None) -> float | None:
    """Resident memory of a process in MiB (Linux /proc), None where unknown."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    match = re.search(r"^VmRSS:\s+(\d+) kB", status, re.M)
    return round(int(match.group(1)) / 1024, 1) if match else None


def port_taken(port: int) -> bool:
    return not udp_bindable(port)


class Floor:
    """The edge with every agent logged in and the agents' SIPp answering."""

    def __init__(self, workdir: Path, args: argparse.Namespace) -> None:
        self.workdir = workdir
        self.args = args
        self.runs = 0
        self.edge: EdgeProcess | None = None
        self.agents: Sipp | None = None
        self.agent_log = workdir / "agents.log"

    def start(self) -> None:
        self.runs += 1
        run_dir = self.workdir / f"edge{self.runs}"
        sip_port, self.agent_port, self.caller_port = pick_udp_ports(3)
        self.agent_media, self.caller_media, login_media = pick_udp_ports(
            3, SIPP_MEDIA_PORTS, stride=4
        )
        self.agent_log = run_dir / "agents.log"
        self.edge = EdgeProcess(run_dir, site_config(run_dir, sip_port, self.args))
        watch = Stopwatch()
        self.edge.start(timeout_s=30.0)
        log(f"[floor] edge pid {self.edge.pid} ready on {self.edge.sip_udp[1]} "
            f"in {watch.elapsed():.1f}s")
        self._login(run_dir, login_media)
        self.agents = Sipp(
            run_dir, AGENT_SCENARIO, local_port=self.agent_port, media_port=self.agent_media,
            hold_ms=self.args.talk_ms, limit=CALL_LIMIT, timeout_s=None, name="agents",
            extra_args=["-trace_logs", "-log_file", str(self.agent_log)],
        ).start()  # fmt: skip
        agents = self.agents
        wait_for(lambda: not agents.running() or port_taken(self.agent_port), 10.0,
                 what=f"the agents' sipp listening on {self.agent_port}")
        if not agents.running():
            raise RuntimeError("agents' sipp exited:\n" + agents.stop().describe())
        log(f"[floor] {self.args.agents} agents logged in and answering "
            f"(talk {self.args.talk_ms} ms) after {watch.elapsed():.1f}s")

    def _login(self, run_dir: Path, media_port: int) -> None:
        """Every agent registers from the agents' port and dials *71 (one sipp run)."""
        assert self.edge is not None
        extensions = agent_extensions(self.args.agents)
        users = write_users_csv(run_dir / "agents.csv", extensions, DOMAIN)
        login = Sipp(
            run_dir, "acd_agent_login", remote=self.edge.sip_udp, local_port=self.agent_port,
            media_port=media_port, service="*71", calls=len(extensions),
            rate=self.args.login_rate, limit=len(extensions), inf=users, timeout_s=60.0,
            timeout_error=False, name="login",
        ).start()  # fmt: skip
        result = login.wait()
        if result.successful != len(extensions):
            raise RuntimeError("agent login failed:\n" + result.describe())
        edge = self.edge

        def all_logged_in() -> bool:
            text = edge.stderr_text()
            return all(f"agent {agent_id(n)} logged in at {n}" in text for n, _ in extensions)

        wait_for(all_logged_in, 10.0, what="every agent logged in (edge log)")

    def answered(self) -> dict[str, float]:
        """Agent leg Call-ID -> wall time the agent sent its 200."""
        try:
            text = self.agent_log.read_text(errors="replace")
        except OSError:
            return {}
        return {cid: int(s) + int(us) / 1e6 for cid, s, us in ANSWERED_LINE.findall(text)}

    def hotline_cdrs(self, caller_pid: int) -> list[dict[str, Any]]:
        """The hotline CDRs of one caller sipp (its Call-IDs end ``-PID@HOST``)."""
        assert self.edge is not None
        path = self.edge.config["store"]["path"]
        con = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5.0)
        con.row_factory = sqlite3.Row
        try:
            rows = con.execute(
                "SELECT * FROM cdrs WHERE destination = ? AND a_call_id LIKE ? ORDER BY id",
                (f"flow:{FLOW}", f"%-{caller_pid}@%"),
            ).fetchall()
        finally:
            con.close()
        return [dict(r) for r in rows]

    def diagnostics(self) -> str:
        return self.edge.stderr_text()[-2000:] if self.edge else ""

    def stop(self) -> None:
        if self.agents is not None and self.agents.proc is not None:
            self.agents.stop(grace_s=2.0)
        self.agents = None
        if self.edge is not None and self.edge.running():
            self.edge.stop(timeout_s=20.0, expect_returncode=None)


# ------------------------------------------------------------------ one step


@dataclass
class Step:
    rate: int
    offered: int
    answered_by_agent: int
    failed: int
    arrival_cps: float
    answered_cps: float
    caller_retransmissions: int
    edge_cpu_pct: float | None
    edge_rss_mb: float | None
    wait_p50_ms: float | None
    wait_p99_ms: float | None
    wait_max_ms: float | None
    agent_bound: bool
    passed: bool
    why: str
    failures: dict[str, int] = field(default_factory=dict)
    examples: list[str] = field(default_factory=list)
    edge_warnings: list[str] = field(default_factory=list)


def percentile(values: list[float], q: float) -> float | None:
    """Nearest-rank percentile (``q`` in 0..1) of ``values``; None when empty."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, -(-len(ordered) * q // 1))  # ceil(n * q), at least the first
    return ordered[int(min(rank, len(ordered))) - 1]


def arrival_rate(start_times: list[float]) -> float:
    """Calls per second between the first and the last arrival the edge saw."""
    if len(start_times) < 2:
        return 0.0
    span = max(start_times) - min(start_times)
    return (len(start_times) - 1) / span if span > 0 else float("inf")


def answer_rate(start_times: list[float], answer_times: list[float]) -> float:
    """Calls/s agents answered, from the first arrival to the last answer.

    Below the arrival rate when the edge falls behind: waits grow through the step.
    """
    if len(answer_times) < 2 or not start_times:
        return 0.0
    span = max(answer_times) - min(start_times)
    return (len(answer_times) - 1) / span if span > 0 else float("inf")


def judge_calls(
    cdrs: list[dict[str, Any]], answered: dict[str, float], offered: int
) -> tuple[list[float], list[float], dict[str, int], list[str]]:
    """Queue waits (s) and answer times of the calls an agent answered, failures by
    kind, a few examples. ``offered`` calls were asked for; one without a CDR counts
    as ``no CDR``.
    """
    waits: list[float] = []
    answer_times: list[float] = []
    failures: dict[str, int] = {}
    examples: list[str] = []
    for row in cdrs:
        leg = row.get("b_call_id")
        if row.get("disposition") == "answered" and leg and leg in answered:
            waits.append(answered[leg] - row["start_time"])
            answer_times.append(answered[leg])
            continue
        if not leg:
            kind = f"no agent leg (cause {row.get('cause')}, hung up by {row.get('hangup_side')})"
        elif leg not in answered:
            kind = "agent leg the agents never answered"
        else:
            kind = f"disposition {row.get('disposition')}"
        failures[kind] = failures.get(kind, 0) + 1
        if len(examples) < 5:
            examples.append(
                f"{row.get('a_call_id')}: {kind}, sip {row.get('sip_status')} "
                f"{row.get('sip_reason')}, {row.get('end_time', 0) - row.get('start_time', 0):.2f}s"
            )
    missing = offered - len(cdrs)
    if missing > 0:
        failures["no CDR"] = missing
    return waits, answer_times, failures, examples


def warnings_since(text: str, offset: int) -> list[str]:
    return [line for line in text[offset:].splitlines() if " WARNING " in line or " ERROR " in line]


def run_step(floor: Floor, rate: int, args: argparse.Namespace) -> Step:
    assert floor.edge is not None
    edge = floor.edge
    calls = max(2, round(rate * args.step_s))
    log_offset = len(edge.stderr_text())
    cpu = CpuMeter(edge.pid)
    # the edge's CPU while calls arrive, not while the last ones talk or time out
    cpu_mark = threading.Timer(args.step_s, cpu.mark)
    wait_budget_s = args.max_wait_s + args.talk_ms / 1000 + 10
    caller = Sipp(
        floor.workdir / f"edge{floor.runs}", "uac_wait_bye", remote=edge.sip_udp,
        local_port=floor.caller_port, media_port=floor.caller_media, service=HOTLINE,
        calls=calls, rate=rate, limit=CALL_LIMIT, recv_timeout_ms=int(wait_budget_s * 1000),
        timeout_s=args.step_s + wait_budget_s + 20, timeout_error=False, name=f"callers-{rate}",
    )  # fmt: skip
    result: SippResult
    try:
        caller.start()
        cpu_mark.start()
        try:
            result = caller.wait()
        except SippTimeout as exc:
            result = exc.result
    finally:  # also on Ctrl-C: never leave a sipp behind
        cpu_mark.cancel()
        if caller.proc is not None and caller.running():
            caller.stop(grace_s=1.0)
    assert caller.pid is not None
    pid = caller.pid
    # A CDR is written when its call ends; the last ones may trail the caller's exit.
    with contextlib.suppress(TimeoutError):
        wait_for(lambda: len(floor.hotline_cdrs(pid)) >= result.created, 10.0,
                 interval_s=0.1, what="the step's CDRs")
    cdrs = floor.hotline_cdrs(pid)
    waits, answer_times, failures, examples = judge_calls(cdrs, floor.answered(), calls)
    if result.failed:
        failures.update({f"sipp {k}": v for k, v in result.failure_reasons.items()} or
                        {"sipp failed": result.failed})
    failed = calls - len(waits)
    starts = [row["start_time"] for row in cdrs]
    arrival = arrival_rate(starts)
    answering = answer_rate(starts, answer_times)
    reasons = []
    if failed or result.failed:
        reasons.append(f"{max(failed, result.failed)} failed")
    if arrival < RATE_KEPT_MIN * rate:
        reasons.append(f"arrivals at {arrival:.1f}/s")
    if answering < RATE_KEPT_MIN * rate:
        reasons.append(f"agents answered at {answering:.1f}/s")
    capacity = agent_capacity(args)

    def ms(value: float | None) -> float | None:
        return None if value is None else round(value * 1000, 1)

    return Step(
        rate=rate, offered=result.created, answered_by_agent=len(waits),
        failed=max(failed, result.failed), arrival_cps=round(arrival, 1),
        answered_cps=round(answering, 1), caller_retransmissions=result.retransmissions,
        edge_cpu_pct=cpu.percent(), edge_rss_mb=rss_mb(edge.pid),
        wait_p50_ms=ms(percentile(waits, 0.50)), wait_p99_ms=ms(percentile(waits, 0.99)),
        wait_max_ms=ms(max(waits) if waits else None), agent_bound=rate > capacity,
        passed=not reasons, why="; ".join(reasons) or "ok", failures=failures,
        examples=examples, edge_warnings=warnings_since(edge.stderr_text(), log_offset)[:10],
    )  # fmt: skip


def agent_capacity(args: argparse.Namespace) -> float:
    """Calls/s the agents can take at most: each is busy for the talk (wrap-up is 0)."""
    return args.agents / (args.talk_ms / 1000)


# ------------------------------------------------------------------ search


def rates_to_try(args: argparse.Namespace) -> list[int]:
    return [int(r) for r in args.rates.split(",") if r.strip()]


def search(floor: Floor, args: argparse.Namespace) -> tuple[int, list[Step]]:
    steps: list[Step] = []
    best = 0
    lowest_fail: int | None = None
    pending = rates_to_try(args)
    bisections = 0
    watch = Stopwatch()
    needs_restart = True
    while pending and watch.elapsed() < args.budget_s:
        rate = pending.pop(0)
        if needs_restart:
            floor.stop()
            floor.start()
            needs_restart = False
        step = run_step(floor, rate, args)
        steps.append(step)
        waits = (f"wait p50 {step.wait_p50_ms} ms p99 {step.wait_p99_ms} ms "
                 f"max {step.wait_max_ms} ms")
        log(f"[step] {rate:>4} cps x {args.step_s:g}s: {step.answered_by_agent}/{step.offered} "
            f"answered by an agent, {step.failed} failed, arrivals {step.arrival_cps}/s, "
            f"answered {step.answered_cps}/s, {waits}, {step.caller_retransmissions} retrans, "
            f"edge cpu {step.edge_cpu_pct}% rss {step.edge_rss_mb} MiB"
            f"{' (agent-bound)' if step.agent_bound else ''} -> "
            f"{'PASS' if step.passed else 'FAIL (' + step.why + ')'}")
        for kind, count in step.failures.items():
            log(f"[step]   {count} x {kind}")
        for example in step.examples:
            log(f"[step]   e.g. {example}")
        for line in step.edge_warnings[:5]:
            log(f"[edge]   {line}")
        if step.passed:
            best = max(best, rate)
        else:
            lowest_fail = rate if lowest_fail is None else min(lowest_fail, rate)
            needs_restart = True  # a failed step can leave a backlog: a fresh edge
            pending = []
        if lowest_fail is not None and not pending and bisections < args.bisect:
            middle = (best + lowest_fail) // 2
            if middle > best and middle != lowest_fail and (lowest_fail - best) > 1:
                pending = [middle]
                bisections += 1
    return best, steps


# ------------------------------------------------------------------ main


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true",
                        help="two short steps: the whole run stays under a minute")
    parser.add_argument("--agents", type=int, default=None,
                        help="agents logged in (600; --quick: 80)")
    parser.add_argument("--talk-ms", type=int, default=400,
                        help="how long an agent talks before hanging up")
    parser.add_argument("--rates", default=None, help="calls/s tried, in order (comma-separated)")
    parser.add_argument("--step-s", type=float, default=None, help="seconds of calls per step")
    parser.add_argument("--bisect", type=int, default=None,
                        help="steps between the last pass and the first failure")
    parser.add_argument("--max-wait-s", type=float, default=20.0,
                        help="queue max_wait_s: a caller waiting longer is hung up, a failure")
    parser.add_argument("--ring-timeout-s", type=float, default=5.0, help="queue ring_timeout_s")
    parser.add_argument("--login-rate", type=int, default=100, help="agent logins per second")
    parser.add_argument("--record", action="store_true",
                        help="media.record_calls on (off by default: routing, not disk)")
    parser.add_argument("--keep", metavar="DIR", default=None,
                        help="keep the edge's log and store, sipp traces in DIR")
    args = parser.parse_args(argv)
    if args.quick:
        args.agents = args.agents or 80
        args.rates = args.rates or "40,160"
        args.step_s = args.step_s or 3.0
        args.bisect = 0 if args.bisect is None else args.bisect
        args.budget_s = 40.0
    else:
        args.agents = args.agents or 600
        args.rates = args.rates or "5,10,20,40,80,160,320,640,960"
        args.step_s = args.step_s or 10.0
        args.bisect = 2 if args.bisect is None else args.bisect
        args.budget_s = 600.0
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    loadavg_start = [round(x, 2) for x in os.getloadavg()]
    best: int | None = None
    steps: list[Step] = []
    if sipp_binary() is None:
        log("ERROR: sipp not found (apt-get install -y sip-tester)")
    else:
        log(f"acd_e2e: {args.agents} agents, talk {args.talk_ms} ms (capacity "
            f"{agent_capacity(args):.0f} calls/s), {args.step_s:g}s per step, rates {args.rates}, "
            f"load {loadavg_start} on {os.cpu_count()} cpus, quick={args.quick}")
        with contextlib.ExitStack() as stack:
            if args.keep:
                tmp = args.keep
                Path(tmp).mkdir(parents=True, exist_ok=True)
            else:
                tmp = stack.enter_context(tempfile.TemporaryDirectory(prefix="acd_e2e-"))
            floor = Floor(Path(tmp), args)
            try:
                best, steps = search(floor, args)
            except (EdgeStartError, RuntimeError, TimeoutError, OSError) as exc:
                log(f"ERROR: {str(exc).splitlines()[0]}")
                for line in (floor.diagnostics() or str(exc)).strip().splitlines()[-10:]:
                    log(f"  {line}")
            finally:
                floor.stop()
    all_answered = max((s.rate for s in steps if s.failed == 0), default=0) if steps else None
    log(f"highest rate with zero routing failures, kept up with: {best} calls/s "
        f"(every call answered, backlog or not: {all_answered} calls/s)")
    emit_json({
        "max_queue_cps_zero_failures": best,
        "max_cps_every_call_answered": all_answered,
        "agents": args.agents,
        "talk_ms": args.talk_ms,
        "step_s": args.step_s,
        "agent_capacity_cps": round(agent_capacity(args), 1),
        "steps": [asdict(s) for s in steps],
        "loadavg_start": loadavg_start,
        "loadavg_end": [round(x, 2) for x in os.getloadavg()],
        "cpus": os.cpu_count(),
        "quick": args.quick,
    })
    return 0


if __name__ == "__main__":
    sys.exit(main())
