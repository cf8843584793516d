"""ACD matcher, pure-Python twin of ``_acdmatch`` (the readable reference).

Picks the next (waiting call, available agent) pair for the ACD.  Hand-written because
the rules are ours (priority with ageing, skills with proficiency, six agent-selection
strategies, a rare-skill call must not block the queue) and the decision sits on the
call path: the compiled ``_acdmatch`` implements exactly these rules in C structures,
and the tests hold the two to identical answers.

Rules (the stub ``_acdmatch.pyi`` is the API):

* Call order: effective priority ``priority + (now - enqueued_at) / ageing_s``, highest
  first, is the same order as the time-invariant key ``enqueued_at - priority *
  ageing_s``, smallest first -- so nothing is re-sorted as time passes.  Equal keys go
  in arrival order (``add_call`` order).  ``now`` therefore never changes a decision.
* Eligible agent: available, serves the call's queue, and has every required skill
  (``call.skills & ~agent.skill_bits == 0``).
* ``next_match``: over all queues, the first call in key order that has an eligible
  agent (a call nobody can take does not block the calls behind it), and for it the
  first agent in its queue's strategy order.  ``candidates`` is that whole order.
* Strategy order (ties always end on the agent id):
  longest-idle ``(since, id)``; fewest-calls ``(answered, since, id)``; linear
  ``(order, id)``; round-robin ``(order, id)`` starting after the last agent that
  answered in that queue and wrapping around; skills ``(-sum of proficiency over the
  call's skills, since, id)``; random: a per-call shuffle, ``(mix(mix(salt ^ call) ^
  agent), id)`` with splitmix64's finaliser and ``salt`` from the seed -- reproducible,
  stable between ``next_match`` and ``candidates`` for one call, independent of how
  often either is asked.
* Agents start unavailable; ``set_available(True)`` on an available agent updates
  ``since``.  ``note_answered`` counts one call (fewest-calls) and sets the round-robin
  memory of the given queue, or of every queue the agent serves.

Structure: waiting calls are grouped by (queue, required-skill bitset) -- there are few
distinct groups -- each group a heap by key with lazy deletion, and a count of the
available agents of its queue that cover its skills, kept up to date on availability
changes.  ``next_match`` compares the heads of the covered groups only.
"""

from __future__ import annotations

import heapq
import math
import operator
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

__all__ = ["IMPLEMENTATION", "MAX_PROFICIENCY", "MAX_SKILLS", "STRATEGIES", "Matcher"]

IMPLEMENTATION = "python"
STRATEGIES = ("longest-idle", "fewest-calls", "round-robin", "linear", "random", "skills")
MAX_SKILLS = 64  # skill indexes 0..63: one bit each in a call's bitset
MAX_PROFICIENCY = 10  # proficiencies 1..10

_M64 = (1 << 64) - 1
_GOLDEN = 0x9E3779B97F4A7C15


def _mix64(z: int) -> int:
    """splitmix64's finaliser: a bijection on 64-bit integers that spreads every bit."""
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _M64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _M64
    return z ^ (z >> 31)


def _int64(value: int) -> int:
    """``value`` as an int that fits the compiled version's int64 fields."""
    value = operator.index(value)
    if not -(1 << 63) <= value < (1 << 63):
        raise OverflowError(f"{value} does not fit in 64 bits")
    return value


def _time(value: float, what: str) -> float:
    value = float(value)
    if math.isnan(value):
        raise ValueError(f"{what} is NaN")
    return value


@dataclass(slots=True)
class _Call:
    call: int
    queue: int
    skills: int  # required skills, bitset
    key: float  # enqueued_at - priority * ageing_s: smaller is served first
    seq: int  # arrival number: breaks key ties


@dataclass(slots=True)
class _Agent:
    agent: int
    queues: tuple[int, ...]
    skill_bits: int
    proficiency: dict[int, int]
    order: int
    available: bool = False
    since: float = 0.0
    answered: int = 0


@dataclass(slots=True)
class _Group:
    """The waiting calls of one queue that need exactly ``skills``."""

    skills: int
    covering: int  # available agents of the queue that have all of ``skills``
    size: int = 0  # live calls; the heap also holds entries of removed calls
    heap: list[tuple[float, int, int]] = field(default_factory=list)  # (key, seq, call)


@dataclass(slots=True)
class _Queue:
    queue: int
    strategy: str
    available: set[int] = field(default_factory=set)  # agent ids
    groups: dict[int, _Group] = field(default_factory=dict)  # by required skills
    waiting: int = 0
    last_answered: tuple[int, int] | None = None  # (order, agent): round-robin memory


class Matcher:
    """Waiting calls, agents and the queues that join them; picks the next pair."""

    def __init__(self, *, ageing_s: float = 60.0, seed: int = 0) -> None:
        ageing_s = float(ageing_s)
        if not ageing_s > 0.0 or math.isinf(ageing_s):
            raise ValueError(f"ageing_s must be positive and finite, not {ageing_s}")
        self._ageing_s = ageing_s
        self._salt = _mix64((_int64(seed) + _GOLDEN) & _M64)
        self._queues: dict[int, _Queue] = {}
        self._calls: dict[int, _Call] = {}
        self._agents: dict[int, _Agent] = {}
        self._seq = 0

    # -- queues --------------------------------------------------------------------

    def add_queue(self, queue: int, strategy: str) -> None:
        """Declare ``queue`` (or change its strategy, keeping its calls and agents)."""
        if strategy not in STRATEGIES:
            raise ValueError(f"unknown strategy {strategy!r}; one of {', '.join(STRATEGIES)}")
        queue = _int64(queue)
        if queue in self._queues:
            self._queues[queue].strategy = strategy
        else:
            self._queues[queue] = _Queue(queue, strategy)

    # -- calls ---------------------------------------------------------------------

    def add_call(
        self, call: int, queue: int, *, priority: int, skills: int, enqueued_at: float
    ) -> None:
        """A caller starts waiting in ``queue``; ``skills`` is the bitset it needs."""
        call, priority = _int64(call), _int64(priority)
        q = self._queues[_int64(queue)]
        if not 0 <= operator.index(skills) <= _M64:
            raise ValueError(f"skills must be a 64-bit bitset, not {skills}")
        key = _time(enqueued_at, "enqueued_at") - float(priority) * self._ageing_s
        if call in self._calls:
            raise ValueError(f"call {call} is already waiting")
        entry = _Call(call, q.queue, skills, key, self._seq)
        self._seq += 1
        group = q.groups.get(skills)
        if group is None:
            covering = sum(1 for a in q.available if self._covers(self._agents[a], skills))
            group = q.groups[skills] = _Group(skills, covering)
        heapq.heappush(group.heap, (entry.key, entry.seq, call))
        group.size += 1
        q.waiting += 1
        self._calls[call] = entry

    def remove_call(self, call: int) -> bool:
        """Forget a waiting call (answered, abandoned, overflowed); False if unknown."""
        entry = self._calls.pop(call, None)
        if entry is None:
            return False
        q = self._queues[entry.queue]
        q.waiting -= 1
        group = q.groups[entry.skills]
        group.size -= 1
        if group.size == 0:
            del q.groups[entry.skills]
        elif len(group.heap) > 2 * group.size + 16:  # mostly stale entries: rebuild
            group.heap = [e for e in group.heap if self._live(e)]
            heapq.heapify(group.heap)
        return True

    def waiting(self, queue: int | None = None) -> int:
        """Calls waiting in ``queue``, or in all queues."""
        if queue is None:
            return len(self._calls)
        return self._queues[queue].waiting

    def position(self, call: int) -> int:
        """1-based place of ``call`` in its queue's serving order (O(calls))."""
        me = self._calls[call]
        ahead = sum(
            1
            for c in self._calls.values()
            if c.queue == me.queue and (c.key, c.seq) < (me.key, me.seq)
        )
        return ahead + 1

    # -- agents --------------------------------------------------------------------

    def add_agent(
        self, agent: int, *, queues: Iterable[int], skills: Mapping[int, int], order: int = 0
    ) -> None:
        """An agent who serves ``queues`` with ``skills`` (index -> 1..10); unavailable."""
        agent, order = _int64(agent), _int64(order)
        served: list[int] = []
        for queue in queues:
            queue = _int64(queue)
            if queue not in self._queues:
                raise KeyError(queue)
            if queue not in served:
                served.append(queue)
        proficiency: dict[int, int] = {}
        for skill, level in skills.items():
            skill, level = operator.index(skill), operator.index(level)
            if not 0 <= skill < MAX_SKILLS:
                raise ValueError(f"skill index {skill} is outside 0..{MAX_SKILLS - 1}")
            if not 1 <= level <= MAX_PROFICIENCY:
                raise ValueError(f"proficiency {level} is outside 1..{MAX_PROFICIENCY}")
            proficiency[skill] = level
        if agent in self._agents:
            raise ValueError(f"agent {agent} already exists")
        bits = sum(1 << s for s in proficiency)
        self._agents[agent] = _Agent(agent, tuple(served), bits, proficiency, order)

    def remove_agent(self, agent: int) -> None:
        """Forget an agent (logged out); KeyError if unknown."""
        self.set_available(agent, False, since=0.0)
        del self._agents[agent]

    def set_available(self, agent: int, available: bool, *, since: float) -> None:
        """Mark an agent ready (idle since ``since``) or not ready / busy."""
        a = self._agents[agent]
        if available:
            a.since = _time(since, "since")
        if bool(available) == a.available:
            return
        a.available = bool(available)
        step = 1 if available else -1
        for queue in a.queues:
            q = self._queues[queue]
            if available:
                q.available.add(a.agent)
            else:
                q.available.discard(a.agent)
            for group in q.groups.values():
                if self._covers(a, group.skills):
                    group.covering += step

    def note_answered(self, agent: int, *, queue: int | None = None) -> None:
        """The agent answered a call (from ``queue``, or: from any queue it serves)."""
        a = self._agents[agent]
        if queue is not None:
            if queue not in self._queues:
                raise KeyError(queue)
            if queue not in a.queues:
                raise ValueError(f"agent {agent} does not serve queue {queue}")
        a.answered += 1
        for served in a.queues if queue is None else (queue,):
            self._queues[served].last_answered = (a.order, a.agent)

    # -- matching ------------------------------------------------------------------

    def next_match(self, now: float) -> tuple[int, int] | None:
        """The next (call, agent) pair, or None; changes nothing."""
        best: tuple[float, int, int] | None = None
        best_queue: _Queue | None = None
        for q in self._queues.values():
            for group in q.groups.values():
                if group.covering:
                    head = self._head(group)
                    if best is None or head < best:
                        best, best_queue = head, q
        if best is None or best_queue is None:
            return None
        call = self._calls[best[2]]
        agent = min(self._eligible(best_queue, call), key=self._rank(best_queue, call))
        return call.call, agent.agent

    def candidates(self, call: int, now: float) -> list[int]:
        """Available agents able to take ``call``, in its queue's strategy order."""
        entry = self._calls[call]
        q = self._queues[entry.queue]
        return [a.agent for a in sorted(self._eligible(q, entry), key=self._rank(q, entry))]

    # -- internals -----------------------------------------------------------------

    @staticmethod
    def _covers(agent: _Agent, skills: int) -> bool:
        return skills & ~agent.skill_bits == 0

    def _live(self, entry: tuple[float, int, int]) -> bool:
        call = self._calls.get(entry[2])
        return call is not None and call.seq == entry[1]

    def _head(self, group: _Group) -> tuple[float, int, int]:
        while not self._live(group.heap[0]):
            heapq.heappop(group.heap)
        return group.heap[0]

    def _eligible(self, q: _Queue, call: _Call) -> list[_Agent]:
        agents = (self._agents[a] for a in q.available)
        return [a for a in agents if self._covers(a, call.skills)]

    def _rank(self, q: _Queue, call: _Call) -> Callable[[_Agent], tuple]:
        """Sort key of eligible agents for ``call`` under ``q``'s strategy: first wins."""
        strategy = q.strategy
        if strategy == "longest-idle":
            return lambda a: (a.since, a.agent)
        if strategy == "fewest-calls":
            return lambda a: (a.answered, a.since, a.agent)
        if strategy == "linear":
            return lambda a: (a.order, a.agent)
        if strategy == "round-robin":
            last = q.last_answered
            return lambda a: (last is not None and (a.order, a.agent) <= last, a.order, a.agent)
        if strategy == "random":
            salt = _mix64(self._salt ^ (call.call & _M64))
            return lambda a: (_mix64(salt ^ (a.agent & _M64)), a.agent)
        needed = [s for s in range(MAX_SKILLS) if call.skills >> s & 1]  # "skills"
        return lambda a: (-sum(a.proficiency[s] for s in needed), a.since, a.agent)
