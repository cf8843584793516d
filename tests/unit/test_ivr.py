"""IVR flows: the model's validation (exact paths) and the sans-I/O runner, injected time."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import BaseModel, ValidationError

from edge_core.ivr.model import IvrFlow, check_prompts, check_queues, check_transfers
from edge_core.ivr.runner import (
    TERMINAL,
    Action,
    EnterQueue,
    FlowRun,
    Hangup,
    Phase,
    Play,
    RecordVoicemail,
    StartCallback,
    StartLookup,
    StopPlay,
    SurveyResult,
    Transfer,
    VariablesChanged,
)

BERLIN = ZoneInfo("Europe/Berlin")
OPEN_WALL = datetime(2024, 4, 2, 10, 0, tzinfo=BERLIN)  # a Tuesday morning
VIP = "+4930111"

MAIN: dict[str, Any] = {
    "start": "welcome",
    "nodes": {
        "welcome": {"type": "play", "prompt": "welcome", "next": "hours"},
        "hours": {
            "type": "schedule",
            "hours": [{"days": "mon-fri", "open": "08:00", "close": "18:00"}],
            "holidays": ["2024-12-25"],
            "open": "who",
            "closed": "closed_msg",
        },
        "closed_msg": {"type": "play", "prompt": "closed", "next": "vm"},
        "vm": {"type": "voicemail", "mailbox": "general", "max_s": 60, "next": "bye"},
        "who": {
            "type": "lookup",
            "source": "table",
            "table": {
                VIP: {"tier": "gold", "vip": True, "name": "Ada"},
                "+4930222": {"tier": "silver"},
            },
            "tier_priorities": {"silver": 5},
            "next": "main",
        },
        "main": {
            "type": "menu",
            "prompt": "menu_main",
            "options": {"1": "sales", "2": "support", "3": "account", "9": "survey"},
            "on_fail": "bye",
        },
        "sales": {
            "type": "queue",
            "queue": "sales",
            "priority": "${priority}",
            "skills": ["sales", "en"],
            "next_on_overflow": "cb",
        },
        "cb": {"type": "callback", "queue": "sales", "next": "cb_msg"},
        "cb_msg": {"type": "play", "prompt": "callback_confirm", "next": "bye"},
        "support": {"type": "transfer", "target": "2001"},
        "account": {
            "type": "collect",
            "prompt": "please_hold",
            "variable": "acct",
            "min_digits": 6,
            "max_digits": 8,
            "pattern": "[1-9][0-9]*",
            "on_fail": "bye",
            "next": "acct_q",
        },
        "acct_q": {"type": "queue", "queue": "support", "priority": 1},
        "survey": {"type": "survey", "next": "thanks"},
        "thanks": {"type": "play", "prompt": "survey_thanks", "next": "bye"},
        "bye": {"type": "play", "prompt": "goodbye", "next": "end"},
        "end": {"type": "hangup", "cause": "normal"},
    },
}


class Call:
    """One FlowRun with its own clock: ``t`` advances only when a test says so."""

    def __init__(
        self, spec: dict[str, Any] = MAIN, caller: str = VIP, wall: datetime = OPEN_WALL, **kw: Any
    ) -> None:
        self.t = 1000.0
        self.wall = wall
        self.run = FlowRun(IvrFlow.model_validate(spec), caller=caller, now=self.t, **kw)
        self.play_id = 0

    def _note(self, actions: list[Action]) -> list[Action]:
        for a in actions:
            if isinstance(a, Play):
                self.play_id = a.play_id
        return actions

    def start(self) -> list[Action]:
        return self._note(self.run.start(self.t, self.wall))

    def digits(self, keys: str) -> list[Action]:
        out: list[Action] = []
        for k in keys:
            out += self._note(self.run.on_digit(k, self.t, self.wall))
        return out

    def played(self) -> list[Action]:
        return self._note(self.run.on_play_done(self.play_id, self.t, self.wall))

    def timer(self) -> list[Action]:
        deadline = self.run.get_timer()
        assert deadline is not None
        self.t = deadline
        return self._note(self.run.handle_timer(self.t, self.wall))

    def to_menu(self) -> None:
        self.start()
        actions = self.played()
        assert actions[-1] == Play("menu_main", self.play_id)


def plays(actions: list[Action]) -> list[str]:
    return [a.prompt for a in actions if isinstance(a, Play)]


# -- runner: walking the flow -------------------------------------------------------------


def test_full_menu_walk_vip_to_queue() -> None:
    call = Call()
    assert call.start() == [Play("welcome", 1)]
    assert call.run.phase is Phase.PROMPTING and call.run.node == "welcome"
    actions = call.played()
    assert actions == [
        VariablesChanged({"tier": "gold", "vip": True, "name": "Ada", "priority": 10}),
        Play("menu_main", 2),
    ]
    call.played()
    assert call.run.phase is Phase.INPUT
    assert call.digits("1") == [EnterQueue("sales", 10, ("sales", "en"))]
    assert call.run.phase is Phase.QUEUED and call.run.get_timer() is None
    assert call.run.on_queue_result("answered", call.t, call.wall) == []
    assert call.run.phase is Phase.QUEUED  # talking to the agent; the flow waits
    assert call.run.on_queue_result("completed", call.t, call.wall) == [Hangup("done")]
    assert call.run.phase is Phase.ENDED
    assert call.digits("1") == []


def test_unknown_caller_gets_default_tier_and_priority() -> None:
    call = Call(caller="+4930999")
    call.start()
    assert call.played()[0] == VariablesChanged(
        {"tier": "standard", "vip": False, "name": "", "priority": 0}
    )
    silver = Call(caller="+4930222")
    silver.start()
    assert silver.played()[0].variables["priority"] == 5  # type: ignore[union-attr]


def test_menu_timeouts_retry_then_on_fail() -> None:
    call = Call()
    call.to_menu()
    call.played()
    assert call.run.get_timer() == call.t + 5.0
    assert call.run.handle_timer(call.t + 4.9, call.wall) == []  # early: nothing
    for _ in range(2):  # retries: 2
        assert plays(call.timer()) == ["timeout"]
        assert plays(call.played()) == ["menu_main"]
        assert call.played() == []
    assert plays(call.timer()) == ["goodbye"]
    assert call.played() == [Hangup("normal")]
    assert call.run.phase is Phase.ENDED and call.run.get_timer() is None


def test_invalid_digit_reprompts_then_valid_choice() -> None:
    call = Call()
    call.to_menu()
    call.played()
    assert call.digits("7") == [Play("invalid", call.play_id)]
    assert plays(call.played()) == ["menu_main"]
    assert call.digits("2") == [StopPlay(), Transfer("2001")]
    assert call.run.phase is Phase.ENDED


def test_three_invalid_digits_go_to_on_fail() -> None:
    call = Call()
    call.to_menu()
    call.played()
    assert plays(call.digits("7")) == ["invalid"]
    assert plays(call.digits("8")) == ["invalid"]  # barges into the invalid prompt
    assert call.digits("#") == [StopPlay(), Play("goodbye", call.play_id)]


def test_barge_in_stops_the_prompt_and_stale_done_is_ignored() -> None:
    call = Call()
    call.start()
    assert call.digits("1") == []  # a play node is heard to the end
    call.played()
    stopped = call.play_id
    assert call.digits("2") == [StopPlay(), Transfer("2001")]
    assert call.run.on_play_done(stopped, call.t, call.wall) == []


def test_non_dtmf_input_is_ignored_even_during_a_prompt() -> None:
    call = Call()
    call.to_menu()
    assert call.run.on_digit("x", call.t, call.wall) == []
    assert call.run.on_digit("12", call.t, call.wall) == []
    assert call.run.phase is Phase.PROMPTING


def test_collect_with_terminator_and_pattern() -> None:
    call = Call()
    call.to_menu()
    assert plays(call.digits("3")) == ["please_hold"]
    assert call.digits("1234") == [StopPlay()]  # barge-in with the first digit
    assert call.run.get_timer() == call.t + 5.0  # inter-digit timeout
    assert plays(call.digits("5#")) == ["invalid"]  # 5 digits: below min_digits
    call.played()
    call.played()
    assert plays(call.digits("0123456#")) == ["invalid"]  # pattern: no leading 0
    call.played()
    call.played()
    assert call.digits("1234567#") == [
        VariablesChanged({"acct": "1234567"}),
        EnterQueue("support", 1, ()),
    ]
    assert call.run.variables["acct"] == "1234567"


def test_collect_ends_at_max_digits_and_on_inter_digit_timeout() -> None:
    full = Call()
    full.to_menu()
    full.digits("3")
    assert full.digits("12345678")[-1] == EnterQueue("support", 1, ())
    partial = Call()
    partial.to_menu()
    partial.digits("3")
    partial.played()
    partial.digits("654321")
    assert partial.timer() == [VariablesChanged({"acct": "654321"}), EnterQueue("support", 1, ())]


def test_collect_retries_exhausted_go_to_on_fail() -> None:
    call = Call()
    call.to_menu()
    call.digits("3")
    call.played()
    for _ in range(2):
        assert plays(call.timer()) == ["timeout"]
        call.played()
        call.played()
    assert plays(call.timer()) == ["goodbye"]


@pytest.mark.parametrize(
    ("wall", "is_open"),
    [
        (datetime(2024, 3, 29, 6, 30, tzinfo=UTC), False),  # Fri 07:30 CET
        (datetime(2024, 4, 1, 6, 30, tzinfo=UTC), True),  # Mon 08:30 CEST, same UTC time
        (datetime(2024, 3, 29, 16, 30, tzinfo=UTC), True),  # Fri 17:30 CET
        (datetime(2024, 4, 1, 16, 30, tzinfo=UTC), False),  # Mon 18:30 CEST
        (datetime(2024, 10, 25, 16, 30, tzinfo=UTC), False),  # Fri 18:30 CEST
        (datetime(2024, 10, 28, 16, 30, tzinfo=UTC), True),  # Mon 17:30 CET, after the change back
        (datetime(2024, 12, 25, 10, 0, tzinfo=UTC), False),  # Wednesday, a holiday
        (datetime(2024, 3, 30, 10, 0, tzinfo=UTC), False),  # Saturday
    ],
)
def test_schedule_across_dst_and_holiday(wall: datetime, is_open: bool) -> None:
    call = Call(wall=wall, timezone="Europe/Berlin")  # the site's zone; the wall is UTC
    call.start()
    assert plays(call.played()) == (["menu_main"] if is_open else ["closed"])


def test_schedule_zone_of_its_own_and_holiday_is_a_local_date() -> None:
    spec = {
        "start": "s",
        "nodes": {
            "s": {
                "type": "schedule",
                "timezone": "Europe/Berlin",
                "hours": [{"days": "mon-sun", "open": "00:00", "close": "24:00"}],
                "holidays": ["2024-12-25"],
                "open": "o",
                "closed": "c",
            },
            "o": {"type": "hangup", "cause": "open"},
            "c": {"type": "hangup", "cause": "closed"},
        },
    }
    # 22:30 UTC on the 24th is still the 24th in Berlin; 23:30 UTC is Christmas there
    assert Call(spec, wall=datetime(2024, 12, 24, 22, 30, tzinfo=UTC)).start() == [Hangup("open")]
    assert Call(spec, wall=datetime(2024, 12, 24, 23, 30, tzinfo=UTC)).start() == [Hangup("closed")]
    ny = datetime(2024, 12, 24, 18, 30, tzinfo=ZoneInfo("America/New_York"))
    assert Call(spec, wall=ny, timezone="America/New_York").start() == [Hangup("closed")]


def test_voicemail_when_closed() -> None:
    call = Call(wall=datetime(2024, 4, 6, 12, 0, tzinfo=BERLIN))  # Saturday
    call.start()
    assert plays(call.played()) == ["closed"]
    assert plays(call.played()) == ["voicemail_greeting"]
    assert call.played() == [RecordVoicemail("general", None, 60.0)]
    assert call.run.phase is Phase.RECORDING
    assert call.run.on_record_done(call.t + 20, call.wall) == [Play("goodbye", call.play_id + 1)]


def test_queue_overflow_offers_callback() -> None:
    call = Call()
    call.to_menu()
    call.digits("1")
    actions = call.run.on_queue_result("overflow", call.t, call.wall)
    assert actions == [StartCallback("sales", VIP), Play("callback_confirm", call.play_id + 1)]


HTTP = {
    "start": "who",
    "nodes": {
        "who": {
            "type": "lookup",
            "source": "http",
            "url": "http://crm.local/callers/${caller}",
            "timeout_s": 1.5,
            "fallback": "plain",
            "not_found": "plain",
            "next": "q",
        },
        "q": {"type": "queue", "queue": "vip", "priority": "${priority}"},
        "plain": {"type": "queue", "queue": "general"},
    },
}


def test_http_lookup_vip_sets_priority() -> None:
    call = Call(HTTP)
    assert call.start() == [StartLookup("http", VIP, "http://crm.local/callers/+4930111", 1.5)]
    assert call.run.get_timer() == call.t + 1.5
    actions = call.run.on_lookup_result(
        {"vip": "true", "name": "Ada", "tier": "gold"}, call.t, call.wall
    )
    assert actions == [
        VariablesChanged({"tier": "gold", "vip": True, "name": "Ada", "priority": 10}),
        EnterQueue("vip", 10, ()),
    ]


def test_http_lookup_failure_timeout_and_not_found_go_elsewhere() -> None:
    failed = Call(HTTP)
    failed.start()
    assert failed.run.on_lookup_result(None, failed.t, failed.wall) == [
        EnterQueue("general", 0, ())
    ]
    timed_out = Call(HTTP)
    timed_out.start()
    assert timed_out.timer() == [EnterQueue("general", 0, ())]
    assert (
        timed_out.run.on_lookup_result({"vip": True}, timed_out.t, timed_out.wall) == []
    )  # too late
    unknown = Call(HTTP)
    unknown.start()
    assert unknown.run.on_lookup_result({}, unknown.t, unknown.wall)[-1] == EnterQueue(
        "general", 0, ()
    )


def test_survey_low_and_high_scores() -> None:
    low = Call()
    low.to_menu()
    assert plays(low.digits("9")) == ["survey_ask"]
    assert low.digits("1") == [
        StopPlay(),
        VariablesChanged({"score": 1}),
        SurveyResult(1, True),
        Play("survey_thanks", low.play_id),
    ]
    high = Call()
    high.to_menu()
    high.digits("9")
    high.played()
    assert plays(high.digits("8")) == ["invalid"]  # out of range 1-5
    assert high.digits("4")[1:3] == [VariablesChanged({"score": 4}), SurveyResult(4, False)]


def test_set_substitutes_and_transfer_uses_variables() -> None:
    spec = {
        "start": "s",
        "nodes": {
            "s": {"type": "set", "variables": {"ext": "20${suffix}", "flag": True}, "next": "t"},
            "t": {"type": "transfer", "target": "9${ext}"},
        },
    }
    call = Call(spec, variables={"suffix": "07"})
    assert call.start() == [VariablesChanged({"ext": "2007", "flag": True}), Transfer("92007")]


def test_a_flow_that_loops_forever_is_cut_off() -> None:
    spec = {
        "start": "m",
        "nodes": {
            "m": {"type": "menu", "prompt": "menu_main", "options": {"0": "m"}, "on_fail": "m"}
        },
    }
    call = Call(spec, max_steps=10)
    call.start()
    actions = call.digits("0" * 10)
    assert actions[-1] == Hangup("ivr-step-limit")


# -- model: validation with exact paths ---------------------------------------------------


class _Site(BaseModel):
    """Stands in for SiteConfig: ``flows`` is plugged in the same way."""

    flows: dict[str, IvrFlow]


def problems(spec: dict[str, Any]) -> list[tuple[str, str]]:
    from edge_core.config.schema import _path

    with pytest.raises(ValidationError) as info:
        _Site.model_validate({"flows": {"main": spec}})
    return [(_path(e["loc"]), e["msg"].removeprefix("Value error, ")) for e in info.value.errors()]


def test_main_flow_is_valid() -> None:
    flow = IvrFlow.model_validate(MAIN)
    assert flow.nodes["main"].type == "menu"


def test_dangling_reference_names_its_path() -> None:
    spec = {
        "start": "welcome",
        "nodes": {"welcome": {"type": "play", "prompt": "welcome", "next": "menu1"}},
    }
    assert problems(spec) == [("flows.main.nodes.welcome.next", "unknown node 'menu1'")]


def test_dangling_menu_option_and_start() -> None:
    spec = {
        "start": "nope",
        "nodes": {"m": {"type": "menu", "prompt": "p", "options": {"1": "x"}, "on_fail": "m"}},
    }
    assert problems(spec) == [
        ("flows.main.start", "unknown node 'nope'"),
        ("flows.main.nodes.m.options.1", "unknown node 'x'"),
    ]


def test_yaml_flow_with_unquoted_digit_keys() -> None:
    text = """
    start: m
    nodes:
      m: {type: menu, prompt: menu_main, options: {1: a, "#": m, 12: a}, on_fail: a}
      a: {type: hangup}
    """
    assert problems(yaml.safe_load(text)) == [
        ("flows.main.nodes.m.options.12", "not a single DTMF key (0-9, *, #)")
    ]
    ok = IvrFlow.model_validate(yaml.safe_load(text.replace(", 12: a", "")))
    assert ok.nodes["m"].options == {"1": "a", "#": "m"}  # type: ignore[union-attr]


def test_unquoted_caller_number_is_explained() -> None:
    text = """
    start: w
    nodes:
      w: {type: lookup, source: table, table: {+4930111: {vip: true}}, next: e}
      e: {type: hangup}
    """
    assert problems(yaml.safe_load(text)) == [
        (
            "flows.main.nodes.w.table.4930111",
            "put the number in quotes: YAML read it as the integer 4930111",
        )
    ]


def test_unreachable_node_is_an_error() -> None:
    spec = {"start": "a", "nodes": {"a": {"type": "hangup"}, "orphan": {"type": "hangup"}}}
    assert problems(spec) == [("flows.main.nodes.orphan", "not reachable from start 'a'")]


def test_bad_digit_key() -> None:
    spec = {
        "start": "m",
        "nodes": {"m": {"type": "menu", "prompt": "p", "options": {"12": "m"}, "on_fail": "m"}},
    }
    assert problems(spec) == [
        ("flows.main.nodes.m.options.12", "not a single DTMF key (0-9, *, #)")
    ]


def test_bad_regex() -> None:
    spec = {
        "start": "c",
        "nodes": {
            "c": {
                "type": "collect",
                "prompt": "p",
                "variable": "v",
                "pattern": "([0-9",
                "on_fail": "e",
                "next": "e",
            },
            "e": {"type": "hangup"},
        },
    }
    [(path, reason)] = problems(spec)
    assert path == "flows.main.nodes.c.pattern"
    assert reason.startswith("not a valid regular expression")


def test_bad_time_day_and_zone() -> None:
    spec = {
        "start": "s",
        "nodes": {
            "s": {
                "type": "schedule",
                "timezone": "Europe/Atlantis",
                "hours": [
                    {"days": "mon-fri", "open": "08:00", "close": "25:00"},
                    {"days": "someday", "open": "9:00", "close": "12:00"},
                    {"days": "sat", "open": "12:00", "close": "09:00"},
                ],
                "open": "e",
                "closed": "e",
            },
            "e": {"type": "hangup"},
        },
    }
    found = dict(problems(spec))
    assert found == {
        "flows.main.nodes.s.timezone": "unknown time zone 'Europe/Atlantis'",
        "flows.main.nodes.s.hours[0].close": "not a time HH:MM (00:00-24:00): '25:00'",
        "flows.main.nodes.s.hours[1].days": "not a day list like 'mon-fri' or 'sat,sun': 'someday'",
        "flows.main.nodes.s.hours[1].open": "not a time HH:MM (00:00-24:00): '9:00'",
        "flows.main.nodes.s.hours[2]": "close must be after open (split hours past midnight into two entries)",
    }


def test_unknown_field_and_type() -> None:
    spec = {"start": "a", "nodes": {"a": {"type": "hangup", "reason": "x"}, "b": {"type": "dance"}}}
    found = problems(spec)
    assert found[0] == ("flows.main.nodes.a.reason", "Extra inputs are not permitted")
    assert found[1][0] == "flows.main.nodes.b" and "'dance'" in found[1][1]


def test_loop_without_input_is_an_error() -> None:
    spec = {
        "start": "a",
        "nodes": {
            "a": {"type": "set", "variables": {"x": 1}, "next": "b"},
            "b": {"type": "callback", "queue": "q", "next": "a"},
        },
    }
    assert problems(spec) == [("flows.main.nodes.a", "loop with no prompt or input: a -> b -> a")]


def test_http_lookup_needs_url_and_fallback() -> None:
    spec = {
        "start": "l",
        "nodes": {"l": {"type": "lookup", "source": "http", "url": "http://x", "next": "l"}},
    }
    assert problems(spec) == [
        ("flows.main.nodes.l", "an http lookup needs 'fallback' (where a failed lookup goes)")
    ]


def test_check_prompts_and_queues() -> None:
    flow = IvrFlow.model_validate(MAIN)
    available = {"welcome", "closed", "voicemail_greeting", "menu_main", "invalid", "timeout"}
    available |= {"callback_confirm", "please_hold", "survey_thanks", "goodbye"}
    assert check_prompts(flow, available, prefix="flows.main") == [
        ("flows.main.nodes.survey.prompt", "unknown prompt 'survey_ask'")
    ]
    assert check_queues(flow, {"sales"}) == [("nodes.acct_q.queue", "unknown queue 'support'")]
    assert check_transfers(flow, lambda n: n.startswith("2")) == []
    assert check_transfers(flow, lambda n: False, "flows.main") == [
        ("flows.main.nodes.support.target", "no route in the dial plan for '2001'")
    ]


# -- property: any sequence of events ends the call -----------------------------------------

EVENTS = st.one_of(
    st.tuples(st.just("digit"), st.sampled_from([*"0123456789*#ABCD", "x", "", "12"])),
    st.tuples(st.just("timer"), st.none()),
    st.tuples(st.just("play_done"), st.booleans()),  # True: the current prompt, False: a stale one
    st.tuples(
        st.just("lookup"), st.sampled_from([None, {}, {"vip": True}, {"tier": 3, "priority": "x"}])
    ),
    st.tuples(st.just("queue"), st.sampled_from(["answered", "overflow", "abandoned"])),
    st.tuples(st.just("record_done"), st.none()),
    st.tuples(st.just("wait"), st.floats(0, 30)),
)
WALLS = st.sampled_from(
    [
        OPEN_WALL,
        datetime(2024, 4, 6, 12, 0, tzinfo=BERLIN),
        datetime(2024, 12, 25, 10, 0, tzinfo=UTC),
    ]
)


@settings(max_examples=300, deadline=None)
@given(
    spec=st.sampled_from([MAIN, HTTP]),
    caller=st.sampled_from([VIP, "+4930222", "555"]),
    wall=WALLS,
    events=st.lists(EVENTS, max_size=40),
)
def test_random_events_never_raise_and_the_timer_always_ends_the_call(
    spec: dict[str, Any], caller: str, wall: datetime, events: list[tuple[str, Any]]
) -> None:
    call = Call(spec, caller=caller, wall=wall)
    seen: list[Action] = call.start()
    run = call.run
    for kind, arg in events:
        if kind == "digit":
            seen += call._note(run.on_digit(arg, call.t, wall))
        elif kind == "timer":
            if run.get_timer() is not None:
                seen += call.timer()
        elif kind == "play_done":
            seen += call._note(
                run.on_play_done(call.play_id if arg else call.play_id - 1, call.t, wall)
            )
        elif kind == "lookup":
            seen += call._note(run.on_lookup_result(arg, call.t, wall))
        elif kind == "queue":
            seen += call._note(run.on_queue_result(arg, call.t, wall))
        elif kind == "record_done":
            seen += call._note(run.on_record_done(call.t, wall))
        else:
            call.t += arg
            seen += call._note(run.handle_timer(call.t, wall))
    steps = 0
    while run.phase not in (Phase.QUEUED, Phase.ENDED):
        assert run.get_timer() is not None, f"waiting in {run.node} with no timer"
        seen += call.timer()
        steps += 1
        assert steps < 60
    assert any(isinstance(a, TERMINAL) for a in seen)
    if run.phase is Phase.ENDED:
        assert run.get_timer() is None
        assert call.digits("1") == [] and run.handle_timer(call.t + 1e6, wall) == []
