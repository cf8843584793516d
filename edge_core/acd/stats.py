"""ACD statistics: live per queue and per agent, and 15-minute interval rows.

Fed by :class:`edge_core.acd.center.ContactCenter` with the same injected ``now`` (so
it reads no clock either). Definitions, per queue, over a period:

* offered: calls that joined the queue (a call refused at the door is ``rejected``,
  not offered); ``overflowed``: offered calls that left unanswered and unabandoned
  (max wait, or no agents left).
* service level ``SL = answered_in_sl / (answered + abandoned - abandoned_in_sl)``:
  calls answered within ``service_level_s`` (wait <= threshold) over all answered calls
  plus calls abandoned after the threshold. Calls abandoned within it ("short
  abandons") and overflowed calls count in neither part. None when nothing counts.
* ASA = total wait of answered calls / answered.
* AHT = (talk + wrap-up) / handled, a call being handled when its wrap-up ends.
* abandon rate = abandoned / offered.

Per agent: calls answered, talk time (time ``on_call``), wrap-up time, logged-in time
(every state but ``logged_out``, pauses included), occupancy = (talk + wrap-up) /
logged-in time.

An event counts in the interval in which it happens (an answer in the interval of the
answer, a handle time in that of the wrap-up's end); agent state time is split at the
interval boundary.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field, fields
from datetime import datetime
from zoneinfo import ZoneInfo

__all__ = [
    "QueueTotals",
    "AgentTotals",
    "QueueLive",
    "AgentLive",
    "QueueIntervalRow",
    "AgentIntervalRow",
    "IntervalRow",
    "Statistics",
    "interval_bounds",
]


def _ratio(num: float, den: float) -> float | None:
    return num / den if den else None


class QueueFigures:
    """The ratios a supervisor reads off a queue's counters, defined once: the edge's
    live and interval statistics and the fleet's reports (``fleet/reports.py``) both
    derive from it, so the figures on the console and in the NOC cannot drift apart."""

    __slots__ = ()
    offered: int
    answered: int
    answered_in_sl: int
    abandoned: int
    abandoned_in_sl: int
    wait_answered_s: float
    handled: int
    talk_s: float
    wrap_s: float

    @property
    def service_level(self) -> float | None:
        """Answered within the threshold / (answered + abandoned after the threshold):
        a caller who hangs up within it is not held against the queue."""
        return _ratio(self.answered_in_sl, self.answered + self.abandoned - self.abandoned_in_sl)

    @property
    def asa_s(self) -> float | None:
        return _ratio(self.wait_answered_s, self.answered)

    @property
    def aht_s(self) -> float | None:
        return _ratio(self.talk_s + self.wrap_s, self.handled)

    @property
    def abandon_rate(self) -> float | None:
        return _ratio(self.abandoned, self.offered)


@dataclass(slots=True)
class QueueTotals(QueueFigures):
    offered: int = 0
    answered: int = 0
    answered_in_sl: int = 0
    abandoned: int = 0
    abandoned_in_sl: int = 0
    overflowed: int = 0
    rejected: int = 0
    wait_answered_s: float = 0.0
    longest_wait_s: float = 0.0
    """Longest wait of a call that was answered, abandoned or overflowed."""
    handled: int = 0
    talk_s: float = 0.0
    wrap_s: float = 0.0


@dataclass(slots=True)
class AgentTotals:
    calls: int = 0
    time_s: defaultdict[str, float] = field(default_factory=lambda: defaultdict(float))
    """Seconds spent in each agent state (by state value)."""

    @property
    def talk_s(self) -> float:
        return self.time_s["on_call"]

    @property
    def wrap_s(self) -> float:
        return self.time_s["wrap_up"]

    @property
    def paused_s(self) -> float:
        return self.time_s["paused"]

    @property
    def logged_in_s(self) -> float:
        return sum(t for state, t in self.time_s.items() if state != "logged_out")

    @property
    def occupancy(self) -> float | None:
        return _ratio(self.talk_s + self.wrap_s, self.logged_in_s)


@dataclass(frozen=True, slots=True)
class QueueLive:
    queue: str
    waiting: int
    """Callers not yet answered (waiting or ringing an agent)."""
    longest_wait_s: float
    """Longest current wait."""
    agents: dict[str, int]
    """Member agents by state value."""
    totals: QueueTotals
    """Since start (a copy)."""


@dataclass(frozen=True, slots=True)
class AgentLive:
    agent: str
    state: str
    calls: int
    talk_s: float
    wrap_s: float
    paused_s: float
    logged_in_s: float
    occupancy: float | None


@dataclass(frozen=True, slots=True)
class QueueIntervalRow:
    start: float
    """Interval start, epoch seconds (wall-clock aligned in the site's zone)."""
    end: float
    queue: str
    offered: int
    answered: int
    answered_in_sl: int
    abandoned: int
    abandoned_in_sl: int
    overflowed: int
    rejected: int
    wait_answered_s: float
    longest_wait_s: float
    handled: int
    talk_s: float
    wrap_s: float
    service_level: float | None
    asa_s: float | None
    aht_s: float | None
    abandon_rate: float | None


@dataclass(frozen=True, slots=True)
class AgentIntervalRow:
    start: float
    end: float
    agent: str
    calls: int
    talk_s: float
    wrap_s: float
    paused_s: float
    logged_in_s: float
    occupancy: float | None


IntervalRow = QueueIntervalRow | AgentIntervalRow


def _copy(totals: QueueTotals) -> QueueTotals:
    return QueueTotals(**{f.name: getattr(totals, f.name) for f in fields(totals)})


class Statistics:
    """Counters since start and for the open interval; ``*_live`` and ``close_interval`` read them."""

    def __init__(self, service_level_s: dict[str, float], agents: Iterable[str]) -> None:
        self._sl = dict(service_level_s)
        self._queues = {q: QueueTotals() for q in self._sl}
        self._queues_iv = {q: QueueTotals() for q in self._sl}
        self._agents = {a: AgentTotals() for a in agents}
        self._agents_iv = {a: AgentTotals() for a in self._agents}
        self._clock: dict[str, tuple[str, float | None]] = dict.fromkeys(
            self._agents, ("logged_out", None)
        )

    def _both(self, queue: str) -> tuple[QueueTotals, QueueTotals]:
        return self._queues[queue], self._queues_iv[queue]

    # -- events ------------------------------------------------------------------------

    def offered(self, queue: str, now: float) -> None:
        for t in self._both(queue):
            t.offered += 1

    def rejected(self, queue: str, now: float) -> None:
        for t in self._both(queue):
            t.rejected += 1

    def answered(self, queue: str, agent: str, wait_s: float, now: float) -> None:
        for t in self._both(queue):
            t.answered += 1
            t.answered_in_sl += wait_s <= self._sl[queue]
            t.wait_answered_s += wait_s
            t.longest_wait_s = max(t.longest_wait_s, wait_s)
        self._agents[agent].calls += 1
        self._agents_iv[agent].calls += 1

    def abandoned(self, queue: str, wait_s: float, now: float) -> None:
        for t in self._both(queue):
            t.abandoned += 1
            t.abandoned_in_sl += wait_s <= self._sl[queue]
            t.longest_wait_s = max(t.longest_wait_s, wait_s)

    def overflowed(self, queue: str, wait_s: float, now: float) -> None:
        for t in self._both(queue):
            t.overflowed += 1
            t.longest_wait_s = max(t.longest_wait_s, wait_s)

    def handled(self, queue: str, agent: str, talk_s: float, wrap_s: float, now: float) -> None:
        for t in self._both(queue):
            t.handled += 1
            t.talk_s += talk_s
            t.wrap_s += wrap_s

    def agent_state(self, agent: str, old: str, new: str, now: float) -> None:
        self._accrue(agent, now)
        self._clock[agent] = (new, now)

    def _accrue(self, agent: str, until: float) -> None:
        state, since = self._clock[agent]
        if since is not None and until > since:
            self._agents[agent].time_s[state] += until - since
            self._agents_iv[agent].time_s[state] += until - since
            self._clock[agent] = (state, until)

    # -- reading -----------------------------------------------------------------------

    def queue_live(self, queue: str, waits: list[float], states: Iterable[str]) -> QueueLive:
        """The live board row of ``queue`` given its current waits and member states."""
        return QueueLive(
            queue,
            len(waits),
            max(waits, default=0.0),
            dict(Counter(states)),
            _copy(self._queues[queue]),
        )

    def agent_live(self, agent: str, now: float) -> AgentLive:
        totals = self._agents[agent]
        time_s = defaultdict(float, totals.time_s)
        state, since = self._clock[agent]
        if since is not None and now > since:
            time_s[state] += now - since
        view = AgentTotals(totals.calls, time_s)
        return AgentLive(
            agent,
            state,
            view.calls,
            view.talk_s,
            view.wrap_s,
            view.paused_s,
            view.logged_in_s,
            view.occupancy,
        )

    def close_interval(self, start: float, end: float) -> list[IntervalRow]:
        """Rows of the interval ``[start, end)``, queues then agents, and start the next one.

        Call it at (or just after) ``end``: agent state time is cut at ``end``.
        """
        rows: list[IntervalRow] = []
        for queue, t in self._queues_iv.items():
            rows.append(
                QueueIntervalRow(
                    start, end, queue, t.offered, t.answered, t.answered_in_sl, t.abandoned, t.abandoned_in_sl,
                    t.overflowed, t.rejected, t.wait_answered_s, t.longest_wait_s, t.handled, t.talk_s, t.wrap_s,
                    t.service_level, t.asa_s, t.aht_s, t.abandon_rate,
                )
            )  # fmt: skip
        for agent in self._agents:
            self._accrue(agent, end)
            a = self._agents_iv[agent]
            rows.append(
                AgentIntervalRow(
                    start,
                    end,
                    agent,
                    a.calls,
                    a.talk_s,
                    a.wrap_s,
                    a.paused_s,
                    a.logged_in_s,
                    a.occupancy,
                )
            )
        self._queues_iv = {q: QueueTotals() for q in self._sl}
        self._agents_iv = {a: AgentTotals() for a in self._agents}
        return rows


def interval_bounds(t: float, tz: str | ZoneInfo, minutes: int = 15) -> tuple[float, float]:
    """The ``minutes``-long interval holding epoch time ``t``, aligned to the wall clock
    of ``tz`` (10:00, 10:15, ... local), as epoch seconds ``(start, end)``."""
    zone = ZoneInfo(tz) if isinstance(tz, str) else tz
    local = datetime.fromtimestamp(t, zone)
    start = local.replace(minute=local.minute - local.minute % minutes, second=0, microsecond=0)
    return start.timestamp(), start.timestamp() + minutes * 60
