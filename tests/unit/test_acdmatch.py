"""ACD matcher: strategies, priority and ageing, skills, bookkeeping; both implementations.

Every test runs once per implementation (ids ``c-extension`` and ``pure-python``); the
compiled one is skipped when it is not built, unless ``BRANCHLINE_REQUIRE_COMPILED=1``.
The property tests drive both with random operation sequences, check every answer
against a brute-force oracle and compare the two implementations step by step.
"""

from __future__ import annotations

import importlib
import os
from types import ModuleType
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import cython_ext.acdmatch as acdmatch_pkg
from cython_ext.acdmatch import acdmatch_py


def _import_compiled() -> ModuleType | None:
    try:
        return importlib.import_module("cython_ext.acdmatch._acdmatch")
    except ImportError:
        return None


COMPILED = _import_compiled()


def _require_compiled() -> ModuleType:
    if COMPILED is None:
        if os.environ.get("BRANCHLINE_REQUIRE_COMPILED") == "1":
            pytest.fail(
                "cython_ext.acdmatch._acdmatch is not built and BRANCHLINE_REQUIRE_COMPILED=1"
            )
        pytest.skip("cython_ext.acdmatch._acdmatch is not built")
    return COMPILED


@pytest.fixture(scope="module", params=["c-extension", "pure-python"])
def acd(request: pytest.FixtureRequest) -> ModuleType:
    """The implementation under test."""
    if request.param == "pure-python":
        return acdmatch_py
    return _require_compiled()


def bits(*skills: int) -> int:
    return sum(1 << s for s in skills)


def matcher(acd: ModuleType, strategy: str = "longest-idle", **kwargs: Any) -> Any:
    m = acd.Matcher(**kwargs)
    m.add_queue(1, strategy)
    return m


def drain(
    m: Any, now: float = 1000.0, *, answer: bool = True, back: bool = False
) -> list[tuple[int, int]]:
    """Decide until nothing matches: remove the call, agent busy (or straight back)."""
    out = []
    while (pair := m.next_match(now)) is not None:
        call, agent = pair
        assert m.remove_call(call)
        m.set_available(agent, False, since=now)
        if answer:
            m.note_answered(agent)
        if back:
            now += 1.0
            m.set_available(agent, True, since=now)
        out.append(pair)
    return out


# -- the module ----------------------------------------------------------------------


def test_implementation_is_exposed(acd: ModuleType) -> None:
    assert acd.IMPLEMENTATION == ("python" if acd is acdmatch_py else "cython")
    assert acd.STRATEGIES == (
        "longest-idle",
        "fewest-calls",
        "round-robin",
        "linear",
        "random",
        "skills",
    )
    assert (acd.MAX_SKILLS, acd.MAX_PROFICIENCY) == (64, 10)


def test_package_says_which_is_loaded() -> None:
    expected = "python" if COMPILED is None else "cython"
    if os.environ.get("BRANCHLINE_PURE_PYTHON") == "1":
        expected = "python"
    assert acdmatch_pkg.IMPLEMENTATION == expected


def test_unknown_strategy_is_refused(acd: ModuleType) -> None:
    m = acd.Matcher()
    with pytest.raises(ValueError):
        m.add_queue(1, "most-handsome")


@pytest.mark.parametrize(
    "call",
    [
        dict(call=1, queue=9, priority=0, skills=0, enqueued_at=0.0),  # unknown queue
        dict(call=1, queue=1, priority=0, skills=-1, enqueued_at=0.0),
        dict(call=1, queue=1, priority=0, skills=1 << 64, enqueued_at=0.0),
        dict(call=1, queue=1, priority=0, skills=0, enqueued_at=float("nan")),
        dict(call=1 << 63, queue=1, priority=0, skills=0, enqueued_at=0.0),
    ],
)
def test_bad_calls_are_refused(acd: ModuleType, call: dict[str, Any]) -> None:
    m = matcher(acd)
    with pytest.raises((ValueError, KeyError, OverflowError)):
        m.add_call(**call)
    assert m.waiting() == 0


def test_bad_agents_and_unknown_ids_are_refused(acd: ModuleType) -> None:
    m = matcher(acd)
    with pytest.raises(KeyError):
        m.add_agent(1, queues=[2], skills={})
    with pytest.raises(ValueError):
        m.add_agent(1, queues=[1], skills={64: 5})
    with pytest.raises(ValueError):
        m.add_agent(1, queues=[1], skills={3: 11})
    with pytest.raises(ValueError):
        m.add_agent(1, queues=[1], skills={3: 0})
    m.add_agent(1, queues=[1], skills={3: 5})
    with pytest.raises(ValueError):
        m.add_agent(1, queues=[1], skills={})
    with pytest.raises(KeyError):
        m.set_available(2, True, since=0.0)
    with pytest.raises(ValueError):
        m.set_available(1, True, since=float("nan"))
    with pytest.raises(KeyError):
        m.note_answered(2)
    m.add_queue(2, "linear")
    with pytest.raises(ValueError):
        m.note_answered(1, queue=2)  # does not serve it
    with pytest.raises(KeyError):
        m.remove_agent(2)
    with pytest.raises(KeyError):
        m.position(7)
    with pytest.raises(KeyError):
        m.candidates(7, 0.0)
    with pytest.raises(KeyError):
        m.waiting(9)
    with pytest.raises(ValueError):
        acd.Matcher(ageing_s=0.0)
    m.add_call(5, 1, priority=0, skills=0, enqueued_at=0.0)
    with pytest.raises(ValueError):
        m.add_call(5, 1, priority=0, skills=0, enqueued_at=0.0)


# -- call order ----------------------------------------------------------------------


def one_agent(m: Any, agent: int = 100) -> None:
    m.add_agent(agent, queues=[1], skills={})
    m.set_available(agent, True, since=0.0)


def call_order(m: Any) -> list[int]:
    return [call for call, _ in drain(m, back=True)]


def test_vip_goes_first(acd: ModuleType) -> None:
    m = matcher(acd)
    one_agent(m)
    m.add_call(1, 1, priority=0, skills=0, enqueued_at=0.0)
    m.add_call(2, 1, priority=0, skills=0, enqueued_at=5.0)
    m.add_call(3, 1, priority=1, skills=0, enqueued_at=10.0)  # VIP, newest
    assert [m.position(c) for c in (1, 2, 3)] == [2, 3, 1]
    assert call_order(m) == [3, 1, 2]


def test_ageing_lets_a_long_wait_overtake_a_fresh_vip(acd: ModuleType) -> None:
    # priority 2 vs 0 at 60 s per level: a wait of more than 120 s wins.
    m = matcher(acd, ageing_s=60.0)
    one_agent(m)
    m.add_call(1, 1, priority=0, skills=0, enqueued_at=0.0)
    m.add_call(2, 1, priority=2, skills=0, enqueued_at=121.0)  # fresh VIP at now=121
    m.add_call(3, 1, priority=2, skills=0, enqueued_at=119.0)  # VIP waiting 2 s
    assert m.next_match(121.0) == (3, 100)
    assert call_order(m) == [3, 1, 2]


def test_ageing_is_scaled_by_ageing_s(acd: ModuleType) -> None:
    m = matcher(acd, ageing_s=10.0)
    one_agent(m)
    m.add_call(1, 1, priority=0, skills=0, enqueued_at=0.0)
    m.add_call(2, 1, priority=5, skills=0, enqueued_at=49.0)  # 49 - 50 < 0
    m.add_call(3, 1, priority=5, skills=0, enqueued_at=51.0)  # 51 - 50 > 0
    assert call_order(m) == [2, 1, 3]


def test_equal_keys_keep_arrival_order(acd: ModuleType) -> None:
    m = matcher(acd, ageing_s=60.0)
    one_agent(m)
    m.add_call(7, 1, priority=1, skills=0, enqueued_at=60.0)  # key 0
    m.add_call(3, 1, priority=0, skills=0, enqueued_at=0.0)  # key 0
    m.add_call(5, 1, priority=2, skills=0, enqueued_at=120.0)  # key 0
    assert call_order(m) == [7, 3, 5]


def test_best_key_wins_across_queues(acd: ModuleType) -> None:
    m = matcher(acd)
    m.add_queue(2, "linear")
    m.add_agent(100, queues=[1, 2], skills={})
    m.set_available(100, True, since=0.0)
    m.add_call(1, 1, priority=0, skills=0, enqueued_at=20.0)
    m.add_call(2, 2, priority=0, skills=0, enqueued_at=10.0)
    m.add_call(3, 2, priority=0, skills=0, enqueued_at=30.0)
    m.add_call(4, 1, priority=1, skills=0, enqueued_at=50.0)
    assert call_order(m) == [4, 2, 1, 3]


def test_an_agent_takes_only_calls_of_queues_it_serves(acd: ModuleType) -> None:
    m = matcher(acd)
    m.add_queue(2, "longest-idle")
    m.add_agent(100, queues=[2], skills={})
    m.set_available(100, True, since=0.0)
    m.add_call(1, 1, priority=9, skills=0, enqueued_at=0.0)
    m.add_call(2, 2, priority=0, skills=0, enqueued_at=50.0)
    assert m.next_match(60.0) == (2, 100)
    assert m.candidates(1, 60.0) == []


def test_remove_call_position_and_waiting(acd: ModuleType) -> None:
    m = matcher(acd)
    m.add_queue(2, "linear")
    for call, at in [(1, 10.0), (2, 20.0), (3, 30.0), (4, 40.0)]:
        m.add_call(call, 1, priority=0, skills=bits(call % 2), enqueued_at=at)
    m.add_call(9, 2, priority=0, skills=0, enqueued_at=0.0)
    assert (m.waiting(), m.waiting(1), m.waiting(2)) == (5, 4, 1)
    assert [m.position(c) for c in (1, 2, 3, 4, 9)] == [1, 2, 3, 4, 1]
    assert m.remove_call(2)
    assert not m.remove_call(2)
    assert not m.remove_call(77)
    assert [m.position(c) for c in (1, 3, 4)] == [1, 2, 3]
    assert (m.waiting(), m.waiting(1)) == (4, 3)
    m.add_call(2, 1, priority=0, skills=0, enqueued_at=20.0)  # the id is free again
    assert m.position(2) == 2
    assert m.next_match(50.0) is None  # no agents at all


def test_unavailable_and_removed_agents_are_not_matched(acd: ModuleType) -> None:
    m = matcher(acd)
    m.add_agent(100, queues=[1], skills={})
    m.add_call(1, 1, priority=0, skills=0, enqueued_at=0.0)
    assert m.next_match(1.0) is None  # agents start unavailable
    m.set_available(100, True, since=0.0)
    assert m.next_match(1.0) == (1, 100)
    m.set_available(100, False, since=1.0)
    assert m.next_match(1.0) is None
    m.set_available(100, True, since=2.0)
    m.remove_agent(100)
    assert m.next_match(3.0) is None
    assert m.candidates(1, 3.0) == []


def test_next_match_changes_nothing(acd: ModuleType) -> None:
    m = matcher(acd, "round-robin")
    one_agent(m)
    m.add_call(1, 1, priority=0, skills=0, enqueued_at=0.0)
    assert [m.next_match(t) for t in (1.0, 2.0, 3.0)] == [(1, 100)] * 3
    assert m.waiting() == 1


# -- skills --------------------------------------------------------------------------


def test_a_skill_goes_only_to_agents_who_have_it(acd: ModuleType) -> None:
    m = matcher(acd)
    m.add_agent(1, queues=[1], skills={0: 10, 1: 10, 2: 10})
    m.add_agent(2, queues=[1], skills={3: 2})
    m.add_agent(3, queues=[1], skills={3: 5, 4: 1})
    for agent, since in [(1, 0.0), (2, 20.0), (3, 10.0)]:
        m.set_available(agent, True, since=since)
    m.add_call(1, 1, priority=0, skills=bits(3), enqueued_at=0.0)
    m.add_call(2, 1, priority=0, skills=bits(3, 4), enqueued_at=1.0)
    assert m.candidates(1, 5.0) == [3, 2]  # longest idle among those with skill 3
    assert m.candidates(2, 5.0) == [3]
    assert drain(m, 5.0) == [(1, 3)]  # agent 3 busy: call 2 has nobody left
    assert m.waiting() == 1


def test_skills_strategy_prefers_proficiency(acd: ModuleType) -> None:
    m = matcher(acd, "skills")
    m.add_agent(1, queues=[1], skills={3: 4, 5: 10})
    m.add_agent(2, queues=[1], skills={3: 9})
    m.add_agent(3, queues=[1], skills={1: 5, 2: 5})  # 10 on {1, 2}
    m.add_agent(4, queues=[1], skills={1: 9, 2: 2, 3: 1})  # 11 on {1, 2}
    m.add_agent(5, queues=[1], skills={3: 9})  # ties with 2, idle longer
    for agent, since in [(1, 0.0), (2, 20.0), (3, 0.0), (4, 30.0), (5, 10.0)]:
        m.set_available(agent, True, since=since)
    m.add_call(1, 1, priority=0, skills=bits(3), enqueued_at=0.0)
    m.add_call(2, 1, priority=0, skills=bits(1, 2), enqueued_at=1.0)
    assert m.candidates(1, 9.0) == [5, 2, 1, 4]
    assert m.candidates(2, 9.0) == [4, 3]
    assert drain(m, 9.0) == [(1, 5), (2, 4)]


def test_a_rare_skill_call_does_not_block_the_others(acd: ModuleType) -> None:
    m = matcher(acd)
    m.add_agent(1, queues=[1], skills={1: 5})
    m.add_agent(2, queues=[1], skills={1: 5, 7: 5})
    m.set_available(1, True, since=0.0)
    m.add_call(1, 1, priority=5, skills=bits(7), enqueued_at=0.0)  # first in line
    m.add_call(2, 1, priority=0, skills=bits(1), enqueued_at=5.0)
    m.add_call(3, 1, priority=0, skills=0, enqueued_at=6.0)
    assert m.next_match(10.0) == (2, 1)
    m.set_available(2, True, since=1.0)
    assert m.next_match(10.0) == (1, 2)


# -- strategies ----------------------------------------------------------------------


def add_calls(m: Any, n: int, skills: int = 0) -> None:
    for call in range(1, n + 1):
        m.add_call(call, 1, priority=0, skills=skills, enqueued_at=float(call))


def agents_of(pairs: list[tuple[int, int]]) -> list[int]:
    return [agent for _, agent in pairs]


def test_longest_idle(acd: ModuleType) -> None:
    m = matcher(acd, "longest-idle")
    for agent, since in [(1, 30.0), (2, 10.0), (3, 20.0), (4, 10.0)]:
        m.add_agent(agent, queues=[1], skills={})
        m.set_available(agent, True, since=since)
    add_calls(m, 6)
    assert m.candidates(1, 50.0) == [2, 4, 3, 1]
    # each agent comes back idle right after its call: it goes to the end of the line
    assert agents_of(drain(m, 50.0, back=True)) == [2, 4, 3, 1, 2, 4]


def test_set_available_again_updates_since(acd: ModuleType) -> None:
    m = matcher(acd, "longest-idle")
    for agent, since in [(1, 10.0), (2, 20.0)]:
        m.add_agent(agent, queues=[1], skills={})
        m.set_available(agent, True, since=since)
    m.set_available(1, True, since=30.0)
    add_calls(m, 1)
    assert m.candidates(1, 50.0) == [2, 1]


def test_fewest_calls(acd: ModuleType) -> None:
    m = matcher(acd, "fewest-calls")
    for agent, since, answered in [(1, 0.0, 2), (2, 50.0, 0), (3, 0.0, 1), (4, 40.0, 0)]:
        m.add_agent(agent, queues=[1], skills={})
        m.set_available(agent, True, since=since)
        for _ in range(answered):
            m.note_answered(agent)
    add_calls(m, 7)
    assert m.candidates(1, 60.0) == [4, 2, 3, 1]
    assert agents_of(drain(m, 60.0, back=True)) == [4, 2, 3, 4, 2, 1, 3]


def test_round_robin_continues_after_the_last_answerer(acd: ModuleType) -> None:
    m = matcher(acd, "round-robin")
    for agent, order in [(10, 1), (12, 3), (11, 2), (9, 2)]:  # order, then id: 10, 9, 11, 12
        m.add_agent(agent, queues=[1], skills={}, order=order)
        m.set_available(agent, True, since=0.0)
    add_calls(m, 6)
    assert m.candidates(1, 9.0) == [10, 9, 11, 12]
    assert agents_of(drain(m, 9.0, back=True)) == [10, 9, 11, 12, 10, 9]
    m.note_answered(11)  # memory moves to 11 wherever it was
    add_calls(m, 1)
    assert m.candidates(1, 9.0) == [12, 10, 9, 11]


def test_round_robin_skips_busy_agents_and_keeps_memory_per_queue(acd: ModuleType) -> None:
    m = matcher(acd, "round-robin")
    m.add_queue(2, "round-robin")
    for agent in (1, 2, 3):
        m.add_agent(agent, queues=[1, 2], skills={}, order=agent)
        m.set_available(agent, True, since=0.0)
    m.note_answered(1, queue=1)
    m.set_available(2, False, since=0.0)
    m.add_call(1, 1, priority=0, skills=0, enqueued_at=0.0)
    m.add_call(2, 2, priority=0, skills=0, enqueued_at=1.0)
    assert m.candidates(1, 5.0) == [3, 1]
    assert m.candidates(2, 5.0) == [1, 3]  # queue 2 has no memory yet
    m.note_answered(3)  # no queue given: every queue it serves
    assert m.candidates(1, 5.0) == m.candidates(2, 5.0) == [1, 3]
    m.remove_agent(3)  # the memory survives its agent
    m.set_available(2, True, since=0.0)
    assert m.candidates(1, 5.0) == [1, 2]


def test_linear(acd: ModuleType) -> None:
    m = matcher(acd, "linear")
    for agent, order in [(5, 3), (6, 1), (7, 2), (8, 1)]:
        m.add_agent(agent, queues=[1], skills={}, order=order)
        m.set_available(agent, True, since=float(agent))
    add_calls(m, 5)
    assert m.candidates(1, 9.0) == [6, 8, 7, 5]
    assert agents_of(drain(m, 9.0, back=True)) == [6, 6, 6, 6, 6]  # the first always wins
    add_calls(m, 4)
    assert agents_of(drain(m, 9.0)) == [6, 8, 7, 5]


def test_changing_the_strategy_keeps_calls_and_agents(acd: ModuleType) -> None:
    m = matcher(acd, "linear")
    for agent, order, since in [(1, 1, 20.0), (2, 2, 10.0)]:
        m.add_agent(agent, queues=[1], skills={}, order=order)
        m.set_available(agent, True, since=since)
    add_calls(m, 1)
    assert m.candidates(1, 30.0) == [1, 2]
    m.add_queue(1, "longest-idle")
    assert m.candidates(1, 30.0) == [2, 1]
    assert m.waiting(1) == 1


def random_firsts(acd: ModuleType, seed: int, calls: int = 400) -> list[int]:
    m = matcher(acd, "random", seed=seed)
    for agent in range(1, 5):
        m.add_agent(agent, queues=[1], skills={})
        m.set_available(agent, True, since=0.0)
    add_calls(m, calls)
    return [m.candidates(c, 0.0)[0] for c in range(1, calls + 1)]


def test_random_is_reproducible_spread_and_stable(acd: ModuleType) -> None:
    first = random_firsts(acd, seed=42)
    assert first == random_firsts(acd, seed=42)
    assert first != random_firsts(acd, seed=43)
    assert all(first.count(agent) > 60 for agent in range(1, 5))  # ~100 each
    m = matcher(acd, "random", seed=7)
    for agent in range(1, 9):
        m.add_agent(agent, queues=[1], skills={})
        m.set_available(agent, True, since=0.0)
    add_calls(m, 1)
    order = m.candidates(1, 0.0)
    assert sorted(order) == list(range(1, 9))
    assert [m.next_match(t)[1] for t in (0.0, 1.0, 2.0)] == [order[0]] * 3  # type: ignore[index]
    m.set_available(order[0], False, since=0.0)
    assert m.next_match(3.0) == (1, order[1])  # "next agent after ring-no-answer"


# -- properties ----------------------------------------------------------------------

QUEUES = (1, 2, 3)
skill_sets = st.sampled_from([0, 0, bits(0), bits(1), bits(2), bits(0, 1), bits(1, 3), bits(3)])
operations = st.one_of(
    st.tuples(
        st.just("queue"), st.sampled_from((*QUEUES, 4)), st.sampled_from(acdmatch_py.STRATEGIES)
    ),
    st.tuples(
        st.just("call"),
        st.integers(0, 15),
        st.sampled_from(QUEUES),
        st.integers(0, 2),
        skill_sets,
        st.integers(0, 300).map(float),
    ),
    st.tuples(st.just("remove_call"), st.integers(0, 15)),
    st.tuples(
        st.just("agent"),
        st.integers(0, 7),
        st.lists(st.sampled_from(QUEUES), max_size=3),
        st.dictionaries(st.integers(0, 3), st.integers(1, 10), max_size=4),
        st.integers(0, 3),
    ),
    st.tuples(st.just("remove_agent"), st.integers(0, 7)),
    st.tuples(
        st.just("available"), st.integers(0, 7), st.booleans(), st.integers(0, 300).map(float)
    ),
    st.tuples(st.just("answered"), st.integers(0, 7), st.sampled_from((None, *QUEUES))),
    st.tuples(st.just("decide"), st.integers(0, 300).map(float)),
)


class Oracle:
    """What the rules say, by brute force over everything: calls and agents by id."""

    def __init__(self, ageing_s: float) -> None:
        self.ageing_s = ageing_s
        self.calls: dict[int, tuple[float, int, int, int]] = {}  # key, seq, queue, skills
        self.agents: dict[int, tuple[set[int], int]] = {}  # queues, skill bits
        self.available: set[int] = set()
        self.seq = 0

    def eligible(self, call: int) -> set[int]:
        _, _, queue, skills = self.calls[call]
        return {
            a
            for a in self.available
            if queue in self.agents[a][0] and skills & ~self.agents[a][1] == 0
        }

    def next_call(self) -> int | None:
        callable_ = [c for c in self.calls if self.eligible(c)]
        return min(callable_, key=lambda c: self.calls[c][:2], default=None)


def apply(m: Any, oracle: Oracle | None, op: tuple) -> Any:
    """Run one operation; return what it gave (or the exception's type name)."""
    kind, *args = op
    try:
        if kind == "queue":
            return m.add_queue(*args)
        if kind == "call":
            call, queue, priority, skills, at = args
            m.add_call(call, queue, priority=priority, skills=skills, enqueued_at=at)
            if oracle is not None:
                key = at - priority * oracle.ageing_s
                oracle.calls[call] = (key, oracle.seq, queue, skills)
                oracle.seq += 1
            return None
        if kind == "remove_call":
            removed = m.remove_call(args[0])
            if oracle is not None:
                assert removed == (oracle.calls.pop(args[0], None) is not None)
            return removed
        if kind == "agent":
            agent, queues, skills, order = args
            m.add_agent(agent, queues=queues, skills=skills, order=order)
            if oracle is not None:
                oracle.agents[agent] = (set(queues), bits(*skills))
            return None
        if kind == "remove_agent":
            m.remove_agent(args[0])
            if oracle is not None:
                del oracle.agents[args[0]]
                oracle.available.discard(args[0])
            return None
        if kind == "available":
            agent, available, since = args
            m.set_available(agent, available, since=since)
            if oracle is not None:
                (oracle.available.add if available else oracle.available.discard)(agent)
            return None
        if kind == "answered":
            agent, queue = args
            return m.note_answered(agent, queue=queue)
        assert kind == "decide"
        pair = m.next_match(args[0])
        if pair is not None:
            call, agent = pair
            for step in (
                ("remove_call", call),
                ("available", agent, False, 0.0),
                ("answered", agent, None),
            ):
                assert apply(m, oracle, step) in (None, True)
        return pair
    except (KeyError, ValueError, OverflowError) as exc:
        return type(exc).__name__


def observe(m: Any, calls: list[int]) -> tuple:
    return (
        m.next_match(0.0),
        m.waiting(),
        [(m.candidates(c, 0.0), m.position(c)) for c in calls],
    )


def check(m: Any, oracle: Oracle) -> None:
    pair = m.next_match(0.0)
    expected = oracle.next_call()
    assert (pair and pair[0]) == expected
    assert m.waiting() == len(oracle.calls)
    for call in oracle.calls:
        candidates = m.candidates(call, 0.0)
        assert len(candidates) == len(set(candidates))
        assert set(candidates) == oracle.eligible(call)
        if pair is not None and call == pair[0]:
            assert candidates[0] == pair[1]


@settings(max_examples=300, deadline=None)
@given(st.lists(operations, max_size=60), st.integers(0, 2**32))
def test_every_answer_follows_the_rules(acd: ModuleType, ops: list[tuple], seed: int) -> None:
    m, oracle = acd.Matcher(ageing_s=60.0, seed=seed), Oracle(60.0)
    for queue in QUEUES[:2]:
        m.add_queue(queue, "longest-idle")
    for op in ops:
        apply(m, oracle, op)
        check(m, oracle)


@settings(max_examples=300, deadline=None)
@given(st.lists(operations, max_size=60), st.integers(0, 2**32))
def test_both_implementations_agree(ops: list[tuple], seed: int) -> None:
    compiled = _require_compiled()
    pair = [impl.Matcher(ageing_s=60.0, seed=seed) for impl in (compiled, acdmatch_py)]
    for m in pair:
        for queue in QUEUES[:2]:
            m.add_queue(queue, "round-robin" if seed % 2 else "random")
    oracle = Oracle(60.0)
    for op in ops:
        results = [apply(pair[0], None, op), apply(pair[1], oracle, op)]
        assert results[0] == results[1], op
        calls = sorted(oracle.calls)
        assert observe(pair[0], calls) == observe(pair[1], calls)
