"""Erlang C staffing: how many agents a queue needs for a target service level.

The M/M/N model (Poisson arrivals, exponential handle times, callers who wait and do not
abandon). For ``A = calls * aht_s / period_s`` Erlangs of offered traffic and ``N``
agents (``N > A``):

* Erlang B by the recursion ``B(0) = 1``, ``B(n) = A·B(n-1) / (n + A·B(n-1))`` — every
  step stays in [0, 1], so no factorial or power of ``A`` is ever formed and traffic of
  thousands of Erlangs is as exact as ten;
* the probability of waiting ``C = N·B / (N - A·(1 - B))``;
* service level ``SL(t) = 1 - C·exp(-(N - A)·t / aht_s)`` (share answered within ``t``);
* average speed of answer ``ASA = C·aht_s / (N - A)``.

Pure functions, no I/O: the reports module feeds them observed volumes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

__all__ = ["Staffing", "erlang_b", "erlang_c", "service_level", "asa_s", "required_agents", "staffing"]


def erlang_b(traffic: float, agents: int) -> float:
    """Blocking probability of ``agents`` servers offered ``traffic`` Erlangs (Erlang B)."""
    if traffic < 0 or agents < 0:
        raise ValueError("traffic and agents must not be negative")
    b = 1.0
    for n in range(1, agents + 1):
        ab = traffic * b
        b = ab / (n + ab)
    return b


def _c_from_b(traffic: float, agents: int, b: float) -> float:
    if agents <= traffic:
        return 1.0
    return agents * b / (agents - traffic * (1.0 - b))


def erlang_c(traffic: float, agents: int) -> float:
    """Probability that a call waits (Erlang C); 1.0 when ``agents <= traffic`` (the queue grows without bound)."""
    return _c_from_b(traffic, agents, erlang_b(traffic, agents))


def _sl(traffic: float, agents: int, c: float, aht_s: float, threshold_s: float) -> float:
    if agents <= traffic:
        return 0.0
    return max(0.0, 1.0 - c * math.exp(-(agents - traffic) * threshold_s / aht_s))


def service_level(traffic: float, agents: int, aht_s: float, threshold_s: float) -> float:
    """Share of calls answered within ``threshold_s`` (0.0 when ``agents <= traffic``)."""
    return _sl(traffic, agents, erlang_c(traffic, agents), aht_s, threshold_s)


def asa_s(traffic: float, agents: int, aht_s: float) -> float:
    """Average speed of answer in seconds (infinite when ``agents <= traffic``)."""
    if agents <= traffic:
        return math.inf
    return erlang_c(traffic, agents) * aht_s / (agents - traffic)


@dataclass(frozen=True)
class Staffing:
    """A staffing recommendation for one interval."""

    calls: float
    """Calls offered in the interval."""
    period_s: float
    aht_s: float
    traffic_erlangs: float
    """``calls * aht_s / period_s``."""
    agents: int
    """The fewest agents that reach the target (0 when no traffic)."""
    service_level: float
    """Predicted share answered within the threshold at ``agents``."""
    asa_s: float
    """Predicted average speed of answer at ``agents``, seconds."""
    wait_probability: float
    """Erlang C at ``agents``."""
    occupancy: float
    """``traffic / agents`` (0 when no agents)."""


def required_agents(
    traffic: float, aht_s: float, target_sl: float, threshold_s: float, *, max_agents: int = 1_000_000
) -> tuple[int, float, float]:
    """``(agents, predicted SL, Erlang C)``: the fewest agents with ``SL >= target_sl``.

    Walks N upwards from ``floor(A) + 1`` carrying the Erlang B recursion along, so the
    search costs O(N) in all. ``target_sl`` must be below 1 (SL < 1 for any finite N).
    """
    if not 0.0 <= target_sl < 1.0:
        raise ValueError("target_sl must be in [0, 1)")
    if aht_s <= 0 or threshold_s < 0 or traffic < 0:
        raise ValueError("aht_s must be positive, threshold_s and traffic not negative")
    if traffic == 0:
        return 0, 1.0, 0.0
    n = math.floor(traffic) + 1
    b = erlang_b(traffic, n)
    while True:
        c = _c_from_b(traffic, n, b)
        sl = _sl(traffic, n, c, aht_s, threshold_s)
        if sl >= target_sl:
            return n, sl, c
        if n >= max_agents:
            raise ValueError(f"target not reached with {max_agents} agents")
        n += 1
        ab = traffic * b
        b = ab / (n + ab)


def staffing(
    calls: float, aht_s: float, *, period_s: float = 900.0, target_sl: float = 0.8, threshold_s: float = 20.0
) -> Staffing:
    """The Erlang C recommendation for ``calls`` offered in ``period_s`` with handle time ``aht_s``."""
    if period_s <= 0:
        raise ValueError("period_s must be positive")
    if calls < 0:
        raise ValueError("calls must not be negative")
    traffic = calls * aht_s / period_s if aht_s > 0 else 0.0
    if traffic == 0:
        return Staffing(calls, period_s, aht_s, 0.0, 0, 1.0, 0.0, 0.0, 0.0)
    agents, sl, c = required_agents(traffic, aht_s, target_sl, threshold_s)
    return Staffing(
        calls=calls, period_s=period_s, aht_s=aht_s, traffic_erlangs=traffic, agents=agents,
        service_level=sl, asa_s=c * aht_s / (agents - traffic), wait_probability=c,
        occupancy=traffic / agents,
    )
