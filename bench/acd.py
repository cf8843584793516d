"""ACD matcher decisions: per-decision latency and decisions per second, compiled vs twin.

A decision is what the ACD does when it routes one call: ``next_match(now)``, then
``remove_call(call)`` and ``set_available(agent, False)`` -- timed together with
``time.perf_counter_ns``.  The set-up is a realistic mix: 2 000 agents over 8 queues
(each agent serves 1-3 of them, the queues cycle through the six strategies), 20 skills
with skewed popularity (a few common ones, several rare), calls needing 1-2 skills,
agents having 2-6 with proficiency 1-10, one call in ten a VIP.  A quarter of the agents
are available at any time: after each decision (untimed) the call is counted answered,
a new call arrives so the number waiting stays fixed, and the agent that has been busy
longest comes back; callers who have waited 15 minutes abandon and are replaced (so
calls that no agent can take do not pile up and turn the mix into misses).  Measured at
100 / 1 000 / 10 000 waiting calls.

``decisions_per_s`` is decisions over the time spent inside them (single thread).
The garbage collector stays on (set-up objects frozen), as in the edge.
Prints progress lines, then one JSON object as its last line.  ``--quick`` takes well
under a minute.  Run: ``.venv/bin/python bench/acd.py [--quick]``.
"""

from __future__ import annotations

import argparse
import gc
import importlib
import json
import platform
import random
import statistics
import sys
import time
from collections import deque
from pathlib import Path
from types import ModuleType
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent
if str(REPO_ROOT) not in sys.path:  # run from a checkout without `pip install -e .`
    sys.path.insert(0, str(REPO_ROOT))

AGENTS = 2000
QUEUES = 8
SKILLS = 20
AVAILABLE_SHARE = 0.25
ABANDON_S = 900.0
WAITING = (100, 1000, 10_000)
SKILL_WEIGHTS = [1.0 / (i + 1) ** 1.2 for i in range(SKILLS)]  # skill 0 common, 19 rare


def pick_skills(rng: random.Random, low: int, high: int) -> list[int]:
    wanted = rng.randint(low, high)
    chosen: set[int] = set()
    while len(chosen) < wanted:
        chosen.add(rng.choices(range(SKILLS), SKILL_WEIGHTS)[0])
    return sorted(chosen)


class Floor:
    """One contact-center floor driven through a matcher implementation."""

    def __init__(self, impl: ModuleType, waiting: int, seed: int) -> None:
        self.rng = random.Random(seed)
        self.m = impl.Matcher(ageing_s=60.0, seed=seed)
        strategies = impl.STRATEGIES
        for queue in range(QUEUES):
            self.m.add_queue(queue, strategies[queue % len(strategies)])
        self.now = 0.0
        agents = list(range(AGENTS))
        for agent in agents:
            queues = self.rng.sample(range(QUEUES), self.rng.randint(1, 3))
            skills = {s: self.rng.randint(1, 10) for s in pick_skills(self.rng, 2, 6)}
            self.m.add_agent(agent, queues=queues, skills=skills, order=self.rng.randrange(100))
        self.rng.shuffle(agents)
        cut = int(AGENTS * AVAILABLE_SHARE)
        for agent in agents[:cut]:
            self.m.set_available(agent, True, since=-self.rng.uniform(0, 300))
        self.busy = deque(agents[cut:])
        self.next_call = 0
        self.arrivals: deque[tuple[float, int]] = deque()  # (enqueued_at, call)
        for at in sorted(-self.rng.uniform(0, 600) for _ in range(waiting)):
            self.arrive(at)

    def arrive(self, at: float) -> None:
        priority = 0 if self.rng.random() < 0.9 else self.rng.randint(1, 2)
        skills = sum(1 << s for s in pick_skills(self.rng, 1, 2))
        queue = self.rng.randrange(QUEUES)
        self.m.add_call(self.next_call, queue, priority=priority, skills=skills, enqueued_at=at)
        self.arrivals.append((at, self.next_call))
        self.next_call += 1

    def abandon(self) -> None:
        """Callers waiting longer than ABANDON_S hang up; new ones take their place."""
        while self.arrivals and self.arrivals[0][0] < self.now - ABANDON_S:
            if self.m.remove_call(self.arrivals.popleft()[1]):
                self.arrive(self.now)

    def run(self, decisions: int) -> tuple[list[int], int]:
        """Decide ``decisions`` times; the latencies (ns) and how many found no pair."""
        m, clock = self.m, time.perf_counter_ns
        latencies: list[int] = []
        misses = 0
        for _ in range(decisions):
            self.now += 0.05
            now = self.now
            began = clock()
            pair = m.next_match(now)
            if pair is not None:
                m.remove_call(pair[0])
                m.set_available(pair[1], False, since=now)
            latencies.append(clock() - began)
            if pair is None:
                misses += 1
            else:
                m.note_answered(pair[1])
                self.busy.append(pair[1])
                self.arrive(now)
            if self.busy:
                m.set_available(self.busy.popleft(), True, since=now)
            self.abandon()
        return latencies, misses


def measure(impl: ModuleType, waiting: int, decisions: int) -> dict[str, Any]:
    floor = Floor(impl, waiting, seed=waiting)
    floor.run(min(decisions, 200))  # warm up
    gc.collect()
    gc.freeze()
    try:
        latencies, misses = floor.run(decisions)
    finally:
        gc.unfreeze()
    latencies.sort()
    total_s = sum(latencies) / 1e9
    cuts = statistics.quantiles(latencies, n=100, method="inclusive")
    return {
        "waiting": floor.m.waiting(),
        "decisions": decisions,
        "no_match": misses,
        "decisions_per_s": round(decisions / total_s),
        "p50_us": round(cuts[49] / 1000, 2),
        "p99_us": round(cuts[98] / 1000, 2),
        "max_us": round(latencies[-1] / 1000, 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer decisions (< 1 min)")
    args = parser.parse_args()
    twin = importlib.import_module("cython_ext.acdmatch.acdmatch_py")
    try:
        compiled = importlib.import_module("cython_ext.acdmatch._acdmatch")
    except ImportError:
        sys.exit("cython_ext.acdmatch._acdmatch is not built: `make venv` or cythonize -i")
    runs = {"cython": (compiled, 50_000 if args.quick else 200_000)}
    runs["python"] = (twin, 2_000 if args.quick else 10_000)
    results: dict[str, dict[str, Any]] = {}
    for name, (impl, decisions) in runs.items():
        for waiting in WAITING:
            row = measure(impl, waiting, decisions)
            results.setdefault(name, {})[str(waiting)] = row
            print(
                f"{name:6} waiting={waiting:>6} decisions={decisions:>7}: "
                f"{row['decisions_per_s']:>9,}/s p50 {row['p50_us']:>8} us "
                f"p99 {row['p99_us']:>8} us max {row['max_us']:>8} us "
                f"(no match {row['no_match']})",
                flush=True,
            )
    top = str(WAITING[-1])
    summary = {
        "p99_us_at_10000_waiting": results["cython"][top]["p99_us"],
        "decisions_per_s_at_10000_waiting": results["cython"][top]["decisions_per_s"],
        "twin_p99_us_at_10000_waiting": results["python"][top]["p99_us"],
        "twin_decisions_per_s_at_10000_waiting": results["python"][top]["decisions_per_s"],
        "agents": AGENTS,
        "queues": QUEUES,
        "skills": SKILLS,
        "available_share": AVAILABLE_SHARE,
        "quick": args.quick,
        "python": platform.python_version(),
        "results": results,
    }
    print(json.dumps(summary), flush=True)


if __name__ == "__main__":
    main()
