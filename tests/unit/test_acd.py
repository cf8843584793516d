"""ACD: config cross-checks, the ContactCenter core end to end with the matcher, statistics.

Time is injected: every ``now`` is a number chosen by the test, timers fire through
``handle_timer`` at ``get_timer()``; nothing sleeps.
"""

from __future__ import annotations

import importlib
from collections import Counter
from collections.abc import Callable
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from edge_core.acd.center import (
    AGENT_MACHINE,
    AcdError,
    AgentInput,
    AgentState,
    AgentStateChanged,
    Announce,
    AutoPaused,
    CancelRing,
    ContactCenter,
    IllegalTransition,
    Overflow,
    Reject,
    RingAgent,
)
from edge_core.acd.model import AgentConfig, FeatureCodes, OverflowTarget, QueueConfig, check_acd
from edge_core.acd.stats import AgentIntervalRow, QueueIntervalRow, interval_bounds

S = AgentState


def _implementations() -> list[Any]:
    """The matcher twin, and the compiled matcher when it is built."""
    found = [
        pytest.param(
            importlib.import_module("cython_ext.acdmatch.acdmatch_py").Matcher, id="pure-python"
        )
    ]
    try:
        compiled = importlib.import_module("cython_ext.acdmatch._acdmatch")
    except ImportError:
        pass
    else:
        found.insert(0, pytest.param(compiled.Matcher, id="c-extension"))
    return found


MATCHERS = _implementations()
TWIN = MATCHERS[-1].values[0]


@pytest.fixture(params=MATCHERS)
def matcher(request: pytest.FixtureRequest) -> Callable[..., Any]:
    return request.param  # type: ignore[no-any-return]


def queue(name: str = "sales", **kw: Any) -> QueueConfig:
    return QueueConfig(name=name, **kw)


def agent(id: str, ext: str, queues: tuple[str, ...] = ("sales",), **kw: Any) -> AgentConfig:
    return AgentConfig(id=id, extension=ext, queues=list(queues), **kw)


def rings(actions: list[Any]) -> list[tuple[str, str]]:
    return [(a.call_id, a.agent_id) for a in actions if isinstance(a, RingAgent)]


def of(kind: type, actions: list[Any]) -> list[Any]:
    return [a for a in actions if isinstance(a, kind)]


def fire(cc: ContactCenter, until: float) -> list[Any]:
    """Run every timer due up to ``until``; the actions they produced."""
    out: list[Any] = []
    while (t := cc.get_timer()) is not None and t <= until:
        cc.handle_timer(t)
        out += cc.take_actions()
    return out


def logged_in(cc: ContactCenter, *pairs: tuple[str, str], at: float = 0.0) -> None:
    for i, (agent_id, ext) in enumerate(pairs):
        cc.agent_login(agent_id, ext, at + i)
    cc.take_actions()


def serve(cc: ContactCenter, call_id: str, agent_id: str, now: float, talk_s: float) -> None:
    """Answer a call that is ringing ``agent_id`` and hang it up ``talk_s`` later."""
    assert cc.ring_answered(call_id, agent_id, now)
    cc.call_ended(call_id, now + talk_s)


# -- config -----------------------------------------------------------------------------


def test_check_acd_names_each_bad_reference_by_path() -> None:
    queues = [
        queue("sales", overflow={"type": "queue", "target": "nowhere"}),
        queue("support", overflow={"type": "voicemail", "target": "9999"}),
        queue("sales"),
    ]
    agents = [
        agent("1001", "201", ("sales", "billing")),
        agent("1001", "202"),
        agent("1003", "999"),
        agent("1004", "201"),
    ]
    found = dict(check_acd(queues, agents, {"201", "202", "203"}))
    assert found["queues[0].overflow.target"] == "no queue named 'nowhere'"
    assert found["queues[1].overflow.target"] == "no extension '9999' for voicemail"
    assert found["queues[2].name"] == "duplicate queue name 'sales'"
    assert found["agents[0].queues[1]"] == "no queue named 'billing'"
    assert found["agents[1].id"] == "duplicate agent id '1001'"
    assert found["agents[2].extension"] == "no extension '999'"
    assert "already agent '1001'" in found["agents[3].extension"]
    assert check_acd([queue("sales")], [agent("1", "201")], {"201"}) == []


def test_check_acd_finds_overflow_cycles_and_unservable_skills() -> None:
    queues = [
        queue("a", overflow={"type": "queue", "target": "b"}),
        queue("b", overflow={"type": "queue", "target": "a"}, skills=["french"]),
        queue("c", overflow={"type": "queue", "target": "c"}),
    ]
    found = check_acd(queues, [agent("1", "201", ("b",), skills={"spanish": 5})], {"201"})
    assert ("queues[0].overflow.target", "overflow cycle a -> b -> a") in found
    assert ("queues[2].overflow.target", "a queue cannot overflow into itself") in found
    assert ("queues[1].skills", "no agent of queue 'b' has all of french") in found


@pytest.mark.parametrize(
    ("build", "where"),
    [
        (lambda: agent("1", "201", skills={"spanish": 11}), "skills.spanish"),
        (lambda: agent("1", "201", skills={"spanish": 0}), "skills.spanish"),
        (lambda: agent("1", "201", queues=()), "queues"),
        (lambda: queue(strategy="fastest"), "strategy"),
        (lambda: queue(overflow={"type": "number"}), "overflow"),
        (lambda: queue(overflow={"type": "number", "target": "abc"}), "overflow"),
        (lambda: queue(colour="red"), "colour"),
        (lambda: FeatureCodes(login="*7", pause="*73"), "(top level)"),
    ],
)
def test_field_rules_are_pydantic_errors(build: Callable[[], Any], where: str) -> None:
    with pytest.raises(ValidationError) as info:
        build()
    locs = [".".join(str(p) for p in e["loc"]) or "(top level)" for e in info.value.errors()]
    assert any(loc.startswith(where) or where == "(top level)" for loc in locs), locs


def test_models_are_frozen() -> None:
    with pytest.raises(ValidationError):
        queue().max_wait_s = 1  # type: ignore[misc]


# -- strategies end to end --------------------------------------------------------------


def three_agents(matcher: Callable[..., Any], strategy: str, **kw: Any) -> ContactCenter:
    cc = ContactCenter(
        [queue(strategy=strategy, wrap_up_s=0, **kw)],
        [agent("a", "201", order=2), agent("b", "202", order=0), agent("c", "203", order=1)],
        matcher_factory=matcher,
    )
    # c idle longest, then a, then b
    cc.agent_login("c", "203", 0)
    cc.agent_login("a", "201", 1)
    cc.agent_login("b", "202", 2)
    cc.take_actions()
    return cc


def one_by_one(cc: ContactCenter, n: int, start: float = 10.0, talk_s: float = 5.0) -> list[str]:
    """Offer ``n`` calls one after another, each answered and ended before the next."""
    chosen = []
    for i in range(n):
        now = start + 10 * i
        cc.enqueue(f"c{i}", "sales", now=now)
        ((call, who),) = rings(cc.take_actions())
        chosen.append(who)
        serve(cc, call, who, now + 1, talk_s)
        cc.take_actions()
    return chosen


def test_longest_idle_offers_the_agent_free_longest(matcher: Callable[..., Any]) -> None:
    cc = three_agents(matcher, "longest-idle")
    assert one_by_one(cc, 4) == ["c", "a", "b", "c"]


def test_linear_always_starts_at_the_lowest_order(matcher: Callable[..., Any]) -> None:
    cc = three_agents(matcher, "linear")
    assert one_by_one(cc, 3) == ["b", "b", "b"]
    cc.enqueue("x", "sales", now=100)
    cc.enqueue("y", "sales", now=100)
    assert rings(cc.take_actions()) == [("x", "b"), ("y", "c")]


def test_round_robin_goes_round_in_order(matcher: Callable[..., Any]) -> None:
    cc = three_agents(matcher, "round-robin")
    assert one_by_one(cc, 4) == ["b", "c", "a", "b"]


def test_fewest_calls_prefers_the_least_busy(matcher: Callable[..., Any]) -> None:
    cc = three_agents(matcher, "fewest-calls")
    # the first three go one each (ties by idle time), then the cycle repeats
    assert one_by_one(cc, 6) == ["c", "a", "b", "c", "a", "b"]


def test_random_is_reproducible_and_spreads(matcher: Callable[..., Any]) -> None:
    picks = [one_by_one(three_agents(matcher, "random"), 30) for _ in range(2)]
    assert picks[0] == picks[1]
    assert set(picks[0]) == {"a", "b", "c"}


def test_skills_picks_the_most_proficient_and_never_the_unskilled(
    matcher: Callable[..., Any],
) -> None:
    cc = ContactCenter(
        [queue(strategy="skills", wrap_up_s=0)],
        [
            agent("novice", "201", skills={"spanish": 3}),
            agent("expert", "202", skills={"spanish": 9}),
            agent("mono", "203", skills={"english": 10}),
        ],
        matcher_factory=matcher,
    )
    logged_in(cc, ("novice", "201"), ("expert", "202"), ("mono", "203"))
    cc.enqueue("c1", "sales", skills=("spanish",), now=10)
    cc.enqueue("c2", "sales", skills=("spanish",), now=11)
    cc.enqueue("c3", "sales", skills=("spanish",), now=12)
    assert rings(cc.take_actions()) == [("c1", "expert"), ("c2", "novice")]
    assert cc.waiting("sales") == ["c3"]  # mono is free but cannot take it


def test_ring_all_rings_everyone_and_cancels_the_others(matcher: Callable[..., Any]) -> None:
    cc = three_agents(matcher, "ring-all")
    cc.enqueue("c1", "sales", now=10)
    actions = cc.take_actions()
    assert sorted(rings(actions)) == [("c1", "a"), ("c1", "b"), ("c1", "c")]
    assert {cc.agent_state(x) for x in "abc"} == {S.RINGING}
    assert cc.ring_answered("c1", "b", 12)
    actions = cc.take_actions()
    assert sorted(of(CancelRing, actions), key=lambda a: a.agent_id) == [
        CancelRing("c1", "a"),
        CancelRing("c1", "c"),
    ]
    assert [cc.agent_state(x) for x in "abc"] == [S.AVAILABLE, S.ON_CALL, S.AVAILABLE]
    assert not cc.ring_answered("c1", "a", 12.5)  # lost the race: the adapter hangs that leg up
    cc.enqueue("c2", "sales", now=13)
    assert sorted(rings(cc.take_actions())) == [("c2", "a"), ("c2", "c")]


# -- priority and ageing ----------------------------------------------------------------


def test_vip_first_then_ageing_lets_a_long_waiter_through(matcher: Callable[..., Any]) -> None:
    cc = ContactCenter(
        [queue(wrap_up_s=0)], [agent("a", "201")], matcher_factory=matcher, ageing_s=60
    )
    cc.agent_login("a", "201", 0)
    cc.agent_pause("a", "meeting", 0)
    cc.enqueue("plain", "sales", priority=0, now=0)
    cc.enqueue("vip", "sales", priority=1, now=10)
    cc.enqueue("late-vip", "sales", priority=1, now=70)  # 70 - 60 > 0: "plain" has aged past it
    cc.agent_unpause("a", 100)
    assert rings(cc.take_actions()) == [("vip", "a")]
    serve(cc, "vip", "a", 101, 10)
    assert rings(cc.take_actions()) == [("plain", "a")]
    serve(cc, "plain", "a", 112, 10)
    assert rings(cc.take_actions()) == [("late-vip", "a")]


# -- ringing ----------------------------------------------------------------------------


def test_ring_no_answer_moves_on_then_auto_pauses(matcher: Callable[..., Any]) -> None:
    cc = ContactCenter(
        [queue(strategy="linear", ring_timeout_s=15, auto_pause_after=2)],
        [agent("a", "201", order=0), agent("b", "202", order=1)],
        matcher_factory=matcher,
    )
    logged_in(cc, ("a", "201"), ("b", "202"))
    cc.enqueue("c1", "sales", now=10)
    assert rings(cc.take_actions()) == [("c1", "a")]
    assert cc.get_timer() == 25
    actions = fire(cc, 25)
    assert actions[0] == CancelRing("c1", "a")
    assert rings(actions) == [("c1", "b")]
    assert cc.agent_state("a") is S.AVAILABLE  # one miss: not yet paused
    # b is busy: rejects outright; the adapter reports it, no CancelRing needed
    assert cc.ring_failed("c1", "b", 27, "busy")
    actions = cc.take_actions()
    assert not of(CancelRing, actions)
    assert rings(actions) == [("c1", "a")]  # everyone tried: a new round
    actions = fire(cc, 42)
    assert of(AutoPaused, actions) == [AutoPaused("a", 2)]
    assert (
        AgentStateChanged("a", S.RINGING, S.PAUSED, "auto-paused after unanswered rings") in actions
    )
    assert cc.pause_reason("a") == "auto-pause"
    assert rings(actions) == [("c1", "b")]
    assert not cc.ring_failed("c1", "a", 43)  # stale


def test_an_answer_resets_the_unanswered_count(matcher: Callable[..., Any]) -> None:
    cc = ContactCenter(
        [queue(auto_pause_after=2, wrap_up_s=0)], [agent("a", "201")], matcher_factory=matcher
    )
    logged_in(cc, ("a", "201"))
    for i in range(4):
        cc.enqueue(f"c{i}", "sales", now=10 * i)
        cc.ring_failed(f"c{i}", "a", 10 * i + 1)
        serve(cc, f"c{i}", "a", 10 * i + 2, 1)
    assert cc.agent_state("a") is S.AVAILABLE
    assert not of(AutoPaused, cc.take_actions())


def test_wrap_up_then_available_then_the_next_call(matcher: Callable[..., Any]) -> None:
    cc = ContactCenter([queue(wrap_up_s=10)], [agent("a", "201")], matcher_factory=matcher)
    logged_in(cc, ("a", "201"))
    cc.enqueue("c1", "sales", now=5)
    serve(cc, "c1", "a", 6, 60)
    cc.take_actions()
    cc.enqueue("c2", "sales", now=70)
    assert not rings(cc.take_actions())
    assert cc.agent_state("a") is S.WRAP_UP
    assert cc.get_timer() == 76
    actions = fire(cc, 76)
    assert actions[:2] == [
        AgentStateChanged("a", S.WRAP_UP, S.AVAILABLE, "wrap-up over"),
        AgentStateChanged("a", S.AVAILABLE, S.RINGING, "offered a call"),
    ]
    assert rings(actions) == [("c2", "a")]


# -- overflow and reject ----------------------------------------------------------------


def test_overflow_at_max_wait(matcher: Callable[..., Any]) -> None:
    cc = ContactCenter(
        [queue(max_wait_s=60, join_empty=True, overflow={"type": "voicemail", "target": "2000"})],
        [agent("a", "201")],
        matcher_factory=matcher,
    )
    cc.enqueue("c1", "sales", now=0)
    assert of(Announce, fire(cc, 59.9)) == [Announce("c1", 1, None)]
    assert fire(cc, 60) == [Overflow("c1", "voicemail", "2000", "max-wait")]
    assert cc.waiting("sales") == [] and cc.get_timer() is None


def test_overflow_into_another_queue_moves_the_call(matcher: Callable[..., Any]) -> None:
    cc = ContactCenter(
        [
            queue(
                "sales",
                max_wait_s=30,
                join_empty=True,
                overflow={"type": "queue", "target": "help"},
            ),
            queue("help"),
        ],
        [agent("a", "201", ("sales",)), agent("h", "301", ("help",))],
        matcher_factory=matcher,
    )
    logged_in(cc, ("h", "301"))
    cc.enqueue("c1", "sales", priority=2, now=0)
    actions = fire(cc, 30)
    assert actions[0] == Overflow("c1", "queue", "help", "max-wait")
    assert rings(actions) == [("c1", "h")]


def test_max_wait_while_ringing_waits_for_the_ring_to_end(matcher: Callable[..., Any]) -> None:
    cc = ContactCenter(
        [queue(max_wait_s=10, ring_timeout_s=15)], [agent("a", "201")], matcher_factory=matcher
    )
    logged_in(cc, ("a", "201"))
    cc.enqueue("c1", "sales", now=10)
    cc.take_actions()
    assert fire(cc, 24) == []  # max wait passed at 20, but a's phone is still ringing
    actions = fire(cc, 25)
    assert actions[0] == CancelRing("c1", "a")
    assert actions[-1] == Reject("c1", "max-wait")  # no overflow configured: back to the flow
    assert not rings(actions)


def test_reject_when_full_and_when_nobody_is_logged_in(matcher: Callable[..., Any]) -> None:
    cc = ContactCenter([queue(max_length=2)], [agent("a", "201")], matcher_factory=matcher)
    cc.enqueue("c0", "sales", now=0)
    assert cc.take_actions() == [Reject("c0", "no-agents")]
    logged_in(cc, ("a", "201"))
    cc.agent_pause("a", "break", 1)
    cc.enqueue("c1", "sales", now=2)
    cc.enqueue("c2", "sales", now=3)
    cc.enqueue("c3", "sales", now=4)
    assert of(Reject, cc.take_actions()) == [Reject("c3", "full")]
    assert cc.waiting("sales") == ["c1", "c2"]
    assert cc.queue_live(5)["sales"].totals.rejected == 2


def test_join_empty_and_leave_when_empty(matcher: Callable[..., Any]) -> None:
    cc = ContactCenter(
        [queue(join_empty=True, overflow={"type": "number", "target": "+15551234"})],
        [agent("a", "201", skills={"french": 5}), agent("b", "202")],
        matcher_factory=matcher,
    )
    cc.enqueue("c1", "sales", skills=("french",), now=0)
    cc.enqueue("c2", "sales", now=0)
    assert cc.take_actions() == []  # join_empty: both wait with nobody logged in
    cc.agent_login("b", "202", 1)
    assert rings(cc.take_actions()) == [("c2", "b")]
    cc.agent_pause("b", "x", 2)
    cc.agent_login("a", "201", 3)
    assert rings(cc.take_actions()) == [("c1", "a")]
    cc.agent_pause("a", "x", 4)
    cc.agent_logout("b", 5)  # a is still logged in (paused) and can take both
    assert of(Overflow, cc.take_actions()) == []
    cc.agent_logout("a", 6)
    actions = cc.take_actions()
    assert sorted(of(Overflow, actions), key=lambda o: o.call_id) == [
        Overflow("c1", "number", "+15551234", "no-agents"),
        Overflow("c2", "number", "+15551234", "no-agents"),
    ]


# -- agents: feature codes, pauses, illegal transitions ---------------------------------


def test_feature_codes(matcher: Callable[..., Any]) -> None:
    cc = ContactCenter(
        [queue()],
        [agent("1001", "201"), agent("1002", "202")],
        feature_codes=FeatureCodes(pause_reasons={"1": "lunch"}),
        matcher_factory=matcher,
    )
    assert cc.feature_code("201", "2001", 0) is None
    assert cc.feature_code("201", "*72", 0) == "logout refused: no agent is logged in at 201"
    assert cc.feature_code("201", "*71", 0) == "agent 1001 logged in at 201"
    assert cc.feature_code("203", "*711002", 1) == "agent 1002 logged in at 203"  # hot desk
    assert (
        cc.feature_code("204", "*711001", 1) == "refused: agent '1001' cannot login while available"
    )
    assert cc.feature_code("204", "*719", 1) == "login refused: no agent 9"
    assert cc.feature_code("201", "*731", 2) == "agent 1001 paused: lunch"
    assert cc.pause_reason("1001") == "lunch"
    assert cc.feature_code("203", "*73", 2) == "agent 1002 paused: break"
    assert cc.feature_code("203", "*7342", 3) == "agent 1002 paused: 42"
    assert cc.feature_code("201", "*74", 4) == "agent 1001 available"
    assert cc.feature_code("201", "*72", 5) == "agent 1001 logged out"
    assert cc.agent_state("1001") is S.LOGGED_OUT and cc.agent_state("1002") is S.PAUSED
    assert cc.feature_code("201", "*73x", 6) is None


def test_pause_reasons_and_pause_while_ringing(matcher: Callable[..., Any]) -> None:
    cc = ContactCenter(
        [queue(strategy="linear")],
        [agent("a", "201"), agent("b", "202", order=1)],
        matcher_factory=matcher,
    )
    logged_in(cc, ("a", "201"), ("b", "202"))
    cc.enqueue("c1", "sales", now=10)
    cc.take_actions()
    cc.agent_pause("a", "training", 11)
    actions = cc.take_actions()
    assert actions[:2] == [
        CancelRing("c1", "a"),
        AgentStateChanged("a", S.RINGING, S.PAUSED, "training"),
    ]
    assert rings(actions) == [("c1", "b")]
    cc.agent_pause("a", "lunch", 12)
    assert cc.take_actions() == [AgentStateChanged("a", S.PAUSED, S.PAUSED, "lunch")]
    assert cc.pause_reason("a") == "lunch"


@pytest.mark.parametrize(
    ("setup", "bad"),
    [
        ([], lambda cc: cc.agent_logout("a", 9)),
        ([], lambda cc: cc.agent_pause("a", "x", 9)),
        (["login"], lambda cc: cc.agent_unpause("a", 9)),
        (["login"], lambda cc: cc.agent_login("a", "201", 9)),
        (["login", "call"], lambda cc: cc.agent_logout("a", 9)),
        (["login", "call"], lambda cc: cc.agent_pause("a", "x", 9)),
        (["login", "call"], lambda cc: cc.abandon("c1", 9)),
        (["login"], lambda cc: cc.call_ended("nope", 9)),
        (["login"], lambda cc: cc.agent_login("ghost", "209", 9)),
        (["login"], lambda cc: cc.enqueue("c9", "nowhere", now=9)),
    ],
)
def test_illegal_inputs_raise_and_change_nothing(
    setup: list[str], bad: Callable[[ContactCenter], None], matcher: Callable[..., Any]
) -> None:
    cc = ContactCenter([queue()], [agent("a", "201")], matcher_factory=matcher)
    if "login" in setup:
        cc.agent_login("a", "201", 0)
    if "call" in setup:
        cc.enqueue("c1", "sales", now=1)
        cc.ring_answered("c1", "a", 2)
    cc.take_actions()
    before = (cc.agent_state("a"), cc.get_timer(), cc.waiting("sales"))
    with pytest.raises(AcdError):
        bad(cc)
    assert cc.take_actions() == []
    assert (cc.agent_state("a"), cc.get_timer(), cc.waiting("sales")) == before


def test_the_state_table_is_what_the_transitions_report() -> None:
    assert issubclass(IllegalTransition, AcdError)
    assert AGENT_MACHINE[(S.RINGING, AgentInput.ANSWER)] == (S.ON_CALL, "answered")
    assert {old for old, _ in AGENT_MACHINE} == set(S)  # every state has a way out
    assert all(
        new is not S.RINGING or old is S.AVAILABLE for (old, _), (new, _) in AGENT_MACHINE.items()
    )
    assert not any(
        old is S.ON_CALL and new in (S.PAUSED, S.LOGGED_OUT)
        for (old, _), (new, _) in AGENT_MACHINE.items()
    )


# -- announcements ----------------------------------------------------------------------


def test_announcements_carry_position_and_ewt(matcher: Callable[..., Any]) -> None:
    cc = ContactCenter(
        [queue(wrap_up_s=20, announce_every_s=30)], [agent("a", "201")], matcher_factory=matcher
    )
    logged_in(cc, ("a", "201"))
    cc.enqueue("c0", "sales", now=0)
    serve(cc, "c0", "a", 0, 100)  # handle time 100 + 20 wrap-up: the first sample is the average
    fire(cc, 120)
    cc.enqueue("c1", "sales", now=120)
    assert cc.ring_answered("c1", "a", 120)
    cc.enqueue("c2", "sales", now=130)
    cc.enqueue("c3", "sales", now=131)
    cc.take_actions()
    assert of(Announce, fire(cc, 161)) == [Announce("c2", 1, 120.0), Announce("c3", 2, 240.0)]
    assert of(Announce, fire(cc, 191)) == [Announce("c2", 1, 120.0), Announce("c3", 2, 240.0)]
    cc.abandon("c2", 200)
    assert of(Announce, fire(cc, 221)) == [Announce("c3", 1, 120.0)]
    assert cc.estimated_wait("sales", 3) == 360.0


def test_default_matcher_is_the_package_one_and_says_which() -> None:
    cc = ContactCenter([queue(join_empty=True)], [agent("a", "201", skills={"es": 3})])
    assert cc.matcher_implementation in ("cython", "python")
    cc.enqueue("c1", "sales", skills=("klingon",), now=0)  # nobody has it: waits, no new bit
    cc.agent_login("a", "201", 1)
    assert not rings(cc.take_actions())
    assert cc.waiting("sales") == ["c1"]


def test_no_ewt_before_any_handle_time() -> None:
    cc = ContactCenter(
        [queue(join_empty=True, announce_every_s=10)], [agent("a", "201")], matcher_factory=TWIN
    )
    cc.enqueue("c1", "sales", now=0)
    assert fire(cc, 10) == [Announce("c1", 1, None)]


# -- statistics -------------------------------------------------------------------------

T0 = datetime(2024, 3, 1, 10, 0, tzinfo=ZoneInfo("Europe/Paris")).timestamp()


def test_scripted_day_matches_hand_computed_statistics(matcher: Callable[..., Any]) -> None:
    """Queue sales, SL 20 s, wrap-up 10 s, agents a and b from T0 (times below are T0 + s).

    c1 100 -> a rings, answered 105 (wait 5, in SL), ends 205 (talk 100), wrap to 215
    c2 110 -> b rings, answered 140 (wait 30, late), ends 300 (talk 160), wrap to 310
    c3 150 abandons 160 (wait 10: short abandon, outside SL both ways)
    c4 170 abandons 200 (wait 30: counts against SL)
    c5 210 -> a at 215, answered 220 (wait 10, in SL), ends 280 (talk 60), wrap to 290
    b pauses 320 ("lunch"), logs out 1000.

    SL = 2 / (3 + 2 - 1) = 0.5; ASA = (5 + 30 + 10) / 3 = 15; AHT = (110 + 170 + 70) / 3
    = 116.67; abandon rate = 2 / 5 = 0.4. At 400: a occupancy (160 + 20) / 400 = 0.45,
    b (160 + 10) / 400 = 0.425.
    """
    cc = ContactCenter(
        [queue(service_level_s=20, wrap_up_s=10)],
        [agent("a", "201"), agent("b", "202")],
        matcher_factory=matcher,
    )

    def at(s: float) -> float:
        fire(cc, T0 + s)
        return T0 + s

    cc.agent_login("a", "201", at(0))
    cc.agent_login("b", "202", at(0))
    cc.enqueue("c1", "sales", now=at(100))
    cc.ring_answered("c1", "a", at(105))
    cc.enqueue("c2", "sales", now=at(110))
    cc.ring_answered("c2", "b", at(140))
    cc.enqueue("c3", "sales", now=at(150))
    cc.abandon("c3", at(160))
    cc.enqueue("c4", "sales", now=at(170))
    cc.abandon("c4", at(200))
    cc.call_ended("c1", at(205))
    cc.enqueue("c5", "sales", now=at(210))
    assert rings(fire(cc, T0 + 215)) == [("c5", "a")]
    cc.ring_answered("c5", "a", at(220))
    cc.call_ended("c5", at(280))
    cc.call_ended("c2", at(300))
    cc.agent_pause("b", "lunch", at(320))
    at(400)

    live = cc.queue_live(T0 + 400)["sales"]
    t = live.totals
    assert (t.offered, t.answered, t.answered_in_sl, t.abandoned, t.abandoned_in_sl) == (
        5,
        3,
        2,
        2,
        1,
    )
    assert t.service_level == 0.5
    assert t.asa_s == 15.0
    assert t.aht_s == pytest.approx(350 / 3)
    assert t.abandon_rate == 0.4
    assert t.longest_wait_s == 30
    assert (live.waiting, live.agents) == (0, {"available": 1, "paused": 1})
    agents = cc.agent_live(T0 + 400)
    assert (agents["a"].calls, agents["a"].talk_s, agents["a"].wrap_s, agents["a"].occupancy) == (
        2,
        160,
        20,
        0.45,
    )
    assert (agents["b"].calls, agents["b"].talk_s, agents["b"].paused_s, agents["b"].occupancy) == (
        1,
        160,
        80,
        0.425,
    )

    assert interval_bounds(T0 + 400, "Europe/Paris") == (T0, T0 + 900)
    at(900)
    rows = cc.close_interval(T0, T0 + 900)
    (q,) = [r for r in rows if isinstance(r, QueueIntervalRow)]
    assert (q.start, q.end, q.queue, q.offered, q.answered, q.abandoned, q.handled) == (
        T0,
        T0 + 900,
        "sales",
        5,
        3,
        2,
        3,
    )
    assert (q.service_level, q.asa_s, q.abandon_rate) == (0.5, 15.0, 0.4)
    a, b = (r for r in rows if isinstance(r, AgentIntervalRow))
    assert (a.agent, a.logged_in_s, a.talk_s + a.wrap_s, a.occupancy) == ("a", 900, 180, 0.2)
    assert (b.agent, b.logged_in_s, b.paused_s, b.occupancy) == (
        "b",
        900,
        580,
        pytest.approx(170 / 900),
    )

    cc.agent_logout("b", at(1000))
    rows = cc.close_interval(T0 + 900, at(1800))
    (q,) = [r for r in rows if isinstance(r, QueueIntervalRow)]
    assert (q.offered, q.service_level, q.asa_s, q.aht_s, q.abandon_rate) == (
        0,
        None,
        None,
        None,
        None,
    )
    a, b = (r for r in rows if isinstance(r, AgentIntervalRow))
    assert (a.logged_in_s, a.occupancy, b.logged_in_s, b.paused_s) == (900, 0.0, 100, 100)


@pytest.mark.parametrize(
    ("zone", "local", "start"),
    [
        ("Europe/Paris", (2024, 3, 1, 10, 14, 59), (10, 0)),
        ("Asia/Kathmandu", (2024, 3, 1, 10, 29, 0), (10, 15)),  # UTC+5:45
        ("America/St_Johns", (2024, 3, 1, 23, 59, 0), (23, 45)),  # UTC-3:30
        ("Europe/Paris", (2024, 3, 31, 3, 7, 0), (3, 0)),  # the hour after the spring jump
    ],
)
def test_interval_bounds_follow_the_local_wall_clock(
    zone: str, local: tuple[int, int, int, int, int, int], start: tuple[int, int]
) -> None:
    tz = ZoneInfo(zone)
    t = datetime(*local, tzinfo=tz).timestamp()
    lo, hi = interval_bounds(t, zone)
    began = datetime.fromtimestamp(lo, tz)
    assert (began.hour, began.minute, began.second) == (*start, 0)
    assert hi - lo == 900 and lo <= t < hi


# -- invariants under random event sequences --------------------------------------------

FUZZ_QUEUES = [
    QueueConfig(name="sales", strategy="longest-idle", max_wait_s=60, ring_timeout_s=5, wrap_up_s=3,
                auto_pause_after=2, announce_every_s=20, overflow=OverflowTarget(type="queue", target="help")),
    QueueConfig(name="help", strategy="ring-all", max_wait_s=40, ring_timeout_s=4, wrap_up_s=0,
                max_length=3, overflow=OverflowTarget(type="voicemail", target="200")),
    QueueConfig(name="es", strategy="skills", max_wait_s=50, ring_timeout_s=6, skills=["spanish"],
                join_empty=True, leave_when_empty=False),
    QueueConfig(name="rr", strategy="round-robin", max_wait_s=30, ring_timeout_s=5, auto_pause_after=0),
]  # fmt: skip
FUZZ_AGENTS = [
    AgentConfig(id="a", extension="201", queues=["sales", "help"]),
    AgentConfig(id="b", extension="202", queues=["sales", "es", "rr"], skills={"spanish": 4}),
    AgentConfig(id="c", extension="203", queues=["help", "es"], skills={"spanish": 9, "vip": 2}),
    AgentConfig(id="d", extension="204", queues=["rr", "help"], order=1),
]

ENQUEUE = st.tuples(
    st.just("enqueue"),
    st.sampled_from([q.name for q in FUZZ_QUEUES]),
    st.integers(0, 2),
    st.sampled_from([(), (), ("vip",), ("french",)]),
)
ANSWER = st.tuples(st.just("answer"), st.integers(0, 30))
END = st.tuples(st.just("end"), st.integers(0, 30))
WAIT = st.tuples(st.just("wait"), st.floats(0.1, 20))
op = st.one_of(
    ENQUEUE, ENQUEUE, ANSWER, ANSWER, ANSWER, END, END, WAIT, WAIT,
    st.tuples(st.just("abandon"), st.integers(0, 30)),
    st.tuples(st.just("fail"), st.integers(0, 30), st.sampled_from(["busy", "rejected", "no-answer"])),
    st.tuples(st.sampled_from(["login", "logout", "pause", "unpause"]), st.sampled_from(FUZZ_AGENTS)),
    st.tuples(st.sampled_from(["login", "logout", "pause", "unpause"]), st.sampled_from(FUZZ_AGENTS)),
    st.tuples(st.just("code"), st.sampled_from(["201", "202", "203", "204"]), st.sampled_from(["*71", "*72", "*73", "*731", "*74", "*71c", "555"])),
)  # fmt: skip


class Referee:
    """Watches the actions of one ContactCenter and checks the invariants."""

    def __init__(self, cc: ContactCenter) -> None:
        self.cc = cc
        self.state = {a.id: S.LOGGED_OUT for a in FUZZ_AGENTS}
        self.ringing: dict[str, set[str]] = {a.id: set() for a in FUZZ_AGENTS}  # agent -> calls
        self.connected: list[str] = []
        self.outcome: dict[str, list[str]] = {}
        self.enqueued: list[str] = []

    def ended(self, call_id: str, how: str) -> None:
        self.outcome.setdefault(call_id, []).append(how)
        assert len(self.outcome[call_id]) == 1, (call_id, self.outcome[call_id])

    def absorb(self) -> None:
        for act in self.cc.take_actions():
            if isinstance(act, AgentStateChanged):
                assert self.state[act.agent_id] is act.old
                assert act.new is not S.RINGING or act.old is S.AVAILABLE
                self.state[act.agent_id] = act.new
            elif isinstance(act, RingAgent):
                assert self.state[act.agent_id] is S.RINGING, "rang an agent who is not free"
                self.ringing[act.agent_id].add(act.call_id)
                assert len(self.ringing[act.agent_id]) == 1, f"{act.agent_id} rings two calls"
            elif isinstance(act, CancelRing):
                self.ringing[act.agent_id].discard(act.call_id)
            elif isinstance(act, Reject) or isinstance(act, Overflow) and act.kind != "queue":
                self.ended(act.call_id, type(act).__name__)
        for agent_id, calls in self.ringing.items():
            assert bool(calls) == (self.state[agent_id] is S.RINGING)
            assert self.cc.agent_state(agent_id) is self.state[agent_id]

    def pairs(self) -> list[tuple[str, str]]:
        return sorted((c, a) for a, calls in self.ringing.items() for c in calls)


def agent_input(cc: ContactCenter, kind: str, a: AgentConfig, now: float) -> None:
    if kind == "login":
        cc.agent_login(a.id, a.extension, now)
    elif kind == "logout":
        cc.agent_logout(a.id, now)
    elif kind == "pause":
        cc.agent_pause(a.id, "fuzz", now)
    else:
        cc.agent_unpause(a.id, now)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(op, min_size=10, max_size=80))
def test_random_event_sequences_keep_the_invariants(ops: list[tuple[Any, ...]]) -> None:
    cc = ContactCenter(FUZZ_QUEUES, FUZZ_AGENTS, matcher_factory=TWIN, seed=7)
    ref = Referee(cc)
    now = 0.0
    for a in FUZZ_AGENTS[:3]:
        cc.agent_login(a.id, a.extension, now)
    ref.absorb()
    for step in ops:
        kind = step[0]
        try:
            if kind == "enqueue":
                call_id = f"c{len(ref.enqueued)}"
                ref.enqueued.append(call_id)
                cc.enqueue(call_id, step[1], priority=step[2], skills=step[3], now=now)
            elif kind == "abandon" and ref.enqueued:
                call_id = ref.enqueued[step[1] % len(ref.enqueued)]
                cc.abandon(call_id, now)
                ref.ended(call_id, "abandoned")
            elif kind in ("answer", "fail") and ref.pairs():
                call_id, agent_id = ref.pairs()[step[1] % len(ref.pairs())]
                ref.ringing[agent_id].discard(call_id)
                if kind == "answer":
                    assert cc.ring_answered(call_id, agent_id, now)
                    ref.ended(call_id, "answered")
                    ref.connected.append(call_id)
                else:
                    assert cc.ring_failed(call_id, agent_id, now, step[2])
            elif kind == "end" and ref.connected:
                cc.call_ended(ref.connected.pop(step[1] % len(ref.connected)), now)
            elif kind in ("login", "logout", "pause", "unpause"):
                agent_input(cc, kind, step[1], now)
            elif kind == "code":
                cc.feature_code(step[1], step[2], now)
            elif kind == "wait":
                now += step[1]
                cc.handle_timer(now)
        except AcdError:
            assert cc.take_actions() == []  # refused inputs change nothing
        ref.absorb()
    # wind down: hang up the answered calls and let every timer run out
    for call_id in ref.connected:
        cc.call_ended(call_id, now)
    for _ in range(10_000):
        if (deadline := cc.get_timer()) is None:
            break
        now = max(now, deadline)
        cc.handle_timer(now)
        ref.absorb()
    assert cc.get_timer() is None
    assert sorted(ref.outcome) == sorted(ref.enqueued)
    assert all(len(v) == 1 for v in ref.outcome.values())
    for name, live in cc.queue_live(now).items():
        t = live.totals
        assert live.waiting == 0
        assert t.offered == t.answered + t.abandoned + t.overflowed, name
    assert Counter(o[0] for o in ref.outcome.values())["answered"] == sum(
        live.totals.answered for live in cc.queue_live(now).values()
    )
