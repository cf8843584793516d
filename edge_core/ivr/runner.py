"""The sans-I/O flow interpreter: one :class:`FlowRun` per call.

Events go in as method calls with an injected ``now`` (monotonic seconds) and ``wall``
(an aware datetime, for schedules); each returns the actions the adapter must carry out.
The run owns one timer (:meth:`FlowRun.get_timer` / :meth:`FlowRun.handle_timer`);
every wait has a deadline, so a run driven only by its timer always ends.

Where the run is and what an event does there is one table, ``_TRANSITIONS``.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal
from zoneinfo import ZoneInfo

from edge_core.ivr.model import (
    VAR_REF,
    CallbackNode,
    CollectNode,
    HangupNode,
    IvrFlow,
    LookupEntry,
    LookupNode,
    MenuNode,
    PlayNode,
    QueueNode,
    ScheduleNode,
    SetNode,
    SurveyNode,
    TransferNode,
    VoicemailNode,
)

Value = bool | int | str
DTMF_KEYS = "0123456789*#ABCD"


# -- actions -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Play:
    prompt: str
    """Name of the prompt in the prompt set."""
    play_id: int
    """Echoed back in ``on_play_done`` so a late report of a stopped prompt is ignored."""
    loop: bool = False
    """Repeat until stopped."""


@dataclass(frozen=True, slots=True)
class StopPlay:
    """Stop the prompt that is playing (the caller barged in)."""


@dataclass(frozen=True, slots=True)
class StartLookup:
    source: str
    """Where to look: ``"http"``."""
    key: str
    """The caller's number."""
    url: str
    """The URL to ask, variables substituted."""
    timeout_s: float
    """Give up after this long; the run also times out on its own."""


@dataclass(frozen=True, slots=True)
class EnterQueue:
    queue: str
    """ACD queue name."""
    priority: int
    """Caller priority; higher is answered sooner."""
    skills: tuple[str, ...]
    """Skills an agent needs to take the call."""


@dataclass(frozen=True, slots=True)
class StartCallback:
    queue: str
    """Queue whose agents call back."""
    number: str
    """The number to call back."""


@dataclass(frozen=True, slots=True)
class RecordVoicemail:
    mailbox: str
    """Mailbox the message goes to."""
    notify: str | None
    """Extension told that a message waits (RFC 3842), or None."""
    max_s: float
    """Longest recording, seconds; report the end with ``on_record_done``."""


@dataclass(frozen=True, slots=True)
class SurveyResult:
    score: int
    """The caller's answer."""
    low: bool
    """At or below the node's threshold: the owner of the run opens a follow-up task."""


@dataclass(frozen=True, slots=True)
class Transfer:
    target: str
    """Number to dial through the dial plan; the run has ended."""


@dataclass(frozen=True, slots=True)
class Hangup:
    cause: str
    """Why the call ends; the run has ended."""


@dataclass(frozen=True, slots=True)
class VariablesChanged:
    variables: dict[str, Value] = field(default_factory=dict)
    """The call variables that were set, with their new values."""


Action = (
    Play
    | StopPlay
    | StartLookup
    | EnterQueue
    | StartCallback
    | RecordVoicemail
    | SurveyResult
    | Transfer
    | Hangup
    | VariablesChanged
)
TERMINAL = (Hangup, Transfer, EnterQueue)
"""Actions after which the run waits for nothing from the caller (a queue may hand it back)."""
QueueOutcome = Literal["answered", "completed", "overflow", "abandoned"]


class Phase(enum.Enum):
    IDLE = "idle"  # not started
    PROMPTING = "prompting"  # prompts playing; digits barge in on input nodes
    INPUT = "input"  # waiting for digits
    LOOKUP = "lookup"  # waiting for an http lookup
    RECORDING = "recording"  # a voicemail is being recorded
    QUEUED = "queued"  # handed to the ACD
    ENDED = "ended"  # transferred, hung up, answered or abandoned


class FlowRun:
    """One call's walk through a flow.

    ``timezone`` is the site's zone, used by schedule nodes that name none (None: the
    zone of the ``wall`` passed in). ``prompt_guard_s`` bounds a prompt whose end is
    never reported; ``max_steps`` bounds the nodes one call may enter (a flow that
    loops back to its menu forever ends with cause ``ivr-step-limit``).
    """

    def __init__(
        self,
        flow: IvrFlow,
        *,
        caller: str,
        now: float,
        variables: dict[str, Value] | None = None,
        timezone: str | None = None,
        prompt_guard_s: float = 300.0,
        record_grace_s: float = 5.0,
        max_steps: int = 500,
    ) -> None:
        self.flow = flow
        self.created_at = now
        self._vars: dict[str, Value] = {"caller": caller, **(variables or {})}
        self._zone = ZoneInfo(timezone) if timezone is not None else None
        self._prompt_guard_s = prompt_guard_s
        self._record_grace_s = record_grace_s
        self._max_steps = max_steps
        self._steps = 0
        self._phase = Phase.IDLE
        self._node = ""
        self._deadline: float | None = None
        self._play_id = 0
        self._playing: int | None = None
        self._pending: list[str] = []  # prompts still to play after the current one
        self._attempts = 0
        self._digits = ""

    # -- state --------------------------------------------------------------------------

    @property
    def phase(self) -> Phase:
        return self._phase

    @property
    def node(self) -> str:
        """Name of the current node ("" before start)."""
        return self._node

    @property
    def variables(self) -> dict[str, Value]:
        return dict(self._vars)

    def get_timer(self) -> float | None:
        """When ``handle_timer`` must next be called, or None."""
        return self._deadline

    # -- events -------------------------------------------------------------------------

    def start(self, now: float, wall: datetime) -> list[Action]:
        if self._phase is not Phase.IDLE:
            return []
        return self._goto(self.flow.start, now, wall)

    def on_digit(self, digit: str, now: float, wall: datetime) -> list[Action]:
        """One DTMF key (0-9, *, #, A-D); anything else is ignored."""
        if len(digit) != 1 or digit not in DTMF_KEYS:
            return []
        return self._dispatch("digit", now, wall, digit)

    def on_play_done(self, play_id: int, now: float, wall: datetime) -> list[Action]:
        if play_id != self._playing:
            return []  # a prompt already stopped or replaced
        return self._dispatch("play_done", now, wall)

    def on_lookup_result(
        self, result: dict[str, Any] | None, now: float, wall: datetime
    ) -> list[Action]:
        """``result``: ``{tier, vip, name, priority?}``; ``{}`` not found; None failed."""
        return self._dispatch("lookup_result", now, wall, result)

    def on_record_done(self, now: float, wall: datetime) -> list[Action]:
        return self._dispatch("record_done", now, wall)

    def on_queue_result(self, outcome: QueueOutcome, now: float, wall: datetime) -> list[Action]:
        """The ACD's answer for a queued call; on overflow the flow carries on."""
        return self._dispatch("queue_result", now, wall, outcome)

    def handle_timer(self, now: float, wall: datetime) -> list[Action]:
        if self._deadline is None or now < self._deadline:
            return []
        self._deadline = None
        return self._dispatch("timer", now, wall)

    def _dispatch(self, event: str, now: float, wall: Any, arg: Any = None) -> list[Action]:
        handler = _TRANSITIONS.get((self._phase, event))
        if handler is None:
            return []  # e.g. a digit after hang-up or while queued: nothing to do
        return handler(self, now, wall, arg)

    # -- moving between nodes -----------------------------------------------------------

    def _goto(self, name: str, now: float, wall: datetime) -> list[Action]:
        actions: list[Action] = []
        next_name: str | None = name
        while next_name is not None:
            self._steps += 1
            if self._steps > self._max_steps:
                return actions + self._end(Hangup("ivr-step-limit"))
            self._node = next_name
            self._attempts = 0
            self._digits = ""
            self._deadline = None
            node = self.flow.nodes[next_name]
            next_name, more = _ENTER[type(node)](self, node, now, wall)
            actions += more
        return actions

    def _end(self, action: Action | None = None) -> list[Action]:
        self._phase = Phase.ENDED
        self._deadline = None
        self._playing = None
        return [action] if action is not None else []

    def _play(self, prompts: list[str], now: float) -> list[Action]:
        self._phase = Phase.PROMPTING
        self._pending = prompts[1:]
        self._play_id += 1
        self._playing = self._play_id
        self._deadline = now + self._prompt_guard_s
        return [Play(prompts[0], self._play_id)]

    def _stop_prompt(self) -> list[Action]:
        self._pending = []
        if self._playing is None:
            return []
        self._playing = None
        return [StopPlay()]

    def _set(self, values: dict[str, Value]) -> list[Action]:
        self._vars.update(values)
        return [VariablesChanged(dict(values))]

    def substitute(self, template: str) -> str:
        """``${var}`` -> the call variable's value ("" when unset)."""

        def value(m: Any) -> str:
            v = self._vars.get(m.group(1), "")
            return ("true" if v else "false") if isinstance(v, bool) else str(v)

        return VAR_REF.sub(value, template)

    # -- entering each node type: (next node now or None to wait, actions) ---------------

    def _enter_play(self, node: PlayNode, now: float, wall: datetime) -> _Step:
        return None, self._play([node.prompt], now)

    def _enter_prompted(
        self, node: MenuNode | CollectNode | SurveyNode | VoicemailNode, now: float, wall: datetime
    ) -> _Step:
        return None, self._play([node.prompt], now)

    def _enter_schedule(self, node: ScheduleNode, now: float, wall: datetime) -> _Step:
        return (node.open if self._is_open(node, wall) else node.closed), []

    def _is_open(self, node: ScheduleNode, wall: datetime) -> bool:
        if wall.tzinfo is None:
            raise ValueError("wall must be an aware datetime")
        zone = ZoneInfo(node.timezone) if node.timezone is not None else self._zone
        local = wall.astimezone(zone) if zone is not None else wall
        if local.date() in node.holidays:
            return False
        minute = local.hour * 60 + local.minute
        return any(
            local.weekday() in h.weekdays and h.minutes[0] <= minute < h.minutes[1]
            for h in node.hours
        )

    def _enter_lookup(self, node: LookupNode, now: float, wall: datetime) -> _Step:
        caller = str(self._vars["caller"])
        if node.source == "table":
            entry = node.table.get(caller)
            return self._lookup_done(node, entry)
        self._phase = Phase.LOOKUP
        self._deadline = now + node.timeout_s
        url = self.substitute(node.url or "")
        return None, [StartLookup("http", caller, url, node.timeout_s)]

    def _lookup_done(self, node: LookupNode, entry: LookupEntry | None) -> _Step:
        found = entry is not None
        entry = entry or LookupEntry()
        if entry.priority is not None:
            priority = entry.priority
        elif entry.vip:
            priority = node.vip_priority
        else:
            priority = node.tier_priorities.get(entry.tier, node.default_priority)
        values: dict[str, Value] = {
            "tier": entry.tier,
            "vip": entry.vip,
            "name": entry.name,
            "priority": priority,
        }
        target = node.next if found or node.not_found is None else node.not_found
        return target, self._set(values)

    def _enter_set(self, node: SetNode, now: float, wall: datetime) -> _Step:
        values = {
            k: self.substitute(v) if isinstance(v, str) else v for k, v in node.variables.items()
        }
        return node.next, self._set(values)

    def _enter_queue(self, node: QueueNode, now: float, wall: datetime) -> _Step:
        priority = node.priority
        if isinstance(priority, str):
            text = self.substitute(priority)
            priority = int(text) if text.lstrip("-").isdigit() else 0
        self._phase = Phase.QUEUED
        return None, [EnterQueue(node.queue, priority, tuple(node.skills))]

    def _enter_callback(self, node: CallbackNode, now: float, wall: datetime) -> _Step:
        return node.next, [StartCallback(node.queue, self.substitute(node.number))]

    def _enter_transfer(self, node: TransferNode, now: float, wall: datetime) -> _Step:
        target = self.substitute(node.target)
        if not target:
            return None, self._end(Hangup("transfer-target-empty"))
        return None, self._end(Transfer(target))

    def _enter_hangup(self, node: HangupNode, now: float, wall: datetime) -> _Step:
        return None, self._end(Hangup(node.cause))

    # -- handlers of _TRANSITIONS: (self, now, wall, arg) -> actions ---------------------

    def _prompt_done(self, now: float, wall: datetime, _: object = None) -> list[Action]:
        self._playing = None
        if self._pending:
            return self._play(self._pending, now)
        node = self.flow.nodes[self._node]
        if isinstance(node, PlayNode):
            return self._goto(node.next, now, wall)
        if isinstance(node, VoicemailNode):
            self._phase = Phase.RECORDING
            self._deadline = now + node.max_s + self._record_grace_s
            notify = node.notify or (node.mailbox if node.mailbox.isdigit() else None)
            return [RecordVoicemail(node.mailbox, notify, node.max_s)]
        assert isinstance(node, MenuNode | CollectNode | SurveyNode)
        self._phase = Phase.INPUT
        self._deadline = now + node.timeout_s
        return []

    def _prompt_guard(self, now: float, wall: datetime, _: object = None) -> list[Action]:
        # the end of the prompt was never reported: stop it and carry on as if it ended
        self._playing = None
        return [StopPlay(), *self._prompt_done(now, wall)]

    def _barge_in(self, now: float, wall: datetime, digit: str) -> list[Action]:
        node = self.flow.nodes[self._node]
        if not isinstance(node, MenuNode | CollectNode | SurveyNode):
            return []  # play and voicemail greetings are heard to the end
        actions = self._stop_prompt()
        self._phase = Phase.INPUT
        return actions + self._input_digit(now, wall, digit)

    def _input_digit(self, now: float, wall: datetime, digit: str) -> list[Action]:
        node = self.flow.nodes[self._node]
        if isinstance(node, MenuNode):
            target = node.options.get(digit)
            return (
                self._goto(target, now, wall) if target else self._retry(node, "invalid", now, wall)
            )
        if isinstance(node, SurveyNode):
            if not (digit.isdigit() and node.min <= int(digit) <= node.max):
                return self._retry(node, "invalid", now, wall)
            score = int(digit)
            actions = self._set({node.variable: score})
            actions.append(SurveyResult(score, score <= node.low_threshold))
            return actions + self._goto(node.next, now, wall)
        assert isinstance(node, CollectNode)
        if digit == node.terminator:
            return self._collect_finish(node, now, wall)
        self._digits += digit
        if len(self._digits) >= node.max_digits:
            return self._collect_finish(node, now, wall)
        self._deadline = now + node.timeout_s
        return []

    def _collect_finish(self, node: CollectNode, now: float, wall: datetime) -> list[Action]:
        entry, self._digits = self._digits, ""
        ok = node.min_digits <= len(entry) <= node.max_digits
        if ok and node.compiled is not None:
            ok = node.compiled.fullmatch(entry) is not None
        if not ok:
            return self._retry(node, "invalid", now, wall)
        return self._set({node.variable: entry}) + self._goto(node.next, now, wall)

    def _input_timeout(self, now: float, wall: datetime, _: object = None) -> list[Action]:
        node = self.flow.nodes[self._node]
        if isinstance(node, CollectNode) and self._digits:
            return self._collect_finish(node, now, wall)
        assert isinstance(node, MenuNode | CollectNode | SurveyNode)
        return self._retry(node, "timeout", now, wall)

    def _retry(
        self, node: MenuNode | CollectNode | SurveyNode, why: str, now: float, wall: datetime
    ) -> list[Action]:
        self._attempts += 1
        self._digits = ""
        if self._attempts > node.retries:
            target = node.next if isinstance(node, SurveyNode) else node.on_fail
            return self._goto(target, now, wall)
        first = node.invalid_prompt if why == "invalid" else node.timeout_prompt
        return self._play([first, node.prompt], now)

    def _lookup_result(
        self, now: float, wall: datetime, result: dict[str, Any] | None
    ) -> list[Action]:
        node = self.flow.nodes[self._node]
        assert isinstance(node, LookupNode)
        if result is None:
            assert node.fallback is not None  # the model requires it for http
            return self._goto(node.fallback, now, wall)
        entry = _entry_from(result) if result else None
        target, actions = self._lookup_done(node, entry)
        assert target is not None
        return actions + self._goto(target, now, wall)

    def _lookup_timeout(self, now: float, wall: datetime, _: object = None) -> list[Action]:
        return self._lookup_result(now, wall, None)

    def _record_done(self, now: float, wall: datetime, _: object = None) -> list[Action]:
        node = self.flow.nodes[self._node]
        assert isinstance(node, VoicemailNode)
        return self._goto(node.next, now, wall)

    def _queue_result(self, now: float, wall: datetime, outcome: str) -> list[Action]:
        """``answered``: an agent took the call (the run waits for the agent to leave);
        ``completed``: the agent hung up, the caller goes on to ``after_call``;
        ``overflow``: to ``next_on_overflow``; anything else ends the run."""
        node = self.flow.nodes[self._node]
        assert isinstance(node, QueueNode)
        if outcome == "answered":
            return []
        if outcome == "completed":
            if node.after_call is None:
                return self._end(Hangup("done"))
            return self._goto(node.after_call, now, wall)
        if outcome != "overflow":
            return self._end()
        if node.next_on_overflow is None:
            return self._end(Hangup("queue-overflow"))
        return self._goto(node.next_on_overflow, now, wall)


_Step = tuple[str | None, list[Action]]


def _entry_from(result: dict[str, Any]) -> LookupEntry:
    """A lookup answer from outside, read leniently: odd fields fall back to defaults."""
    vip = result.get("vip")
    if isinstance(vip, str):
        vip = vip.strip().lower() in {"1", "true", "yes"}
    priority = result.get("priority")
    if isinstance(priority, str) and priority.lstrip("-").isdigit():
        priority = int(priority)
    return LookupEntry(
        tier=str(result.get("tier") or "standard"),
        vip=vip is True,
        name=str(result.get("name") or ""),
        priority=priority if isinstance(priority, int) and not isinstance(priority, bool) else None,
    )


_ENTER: dict[type, Callable[[FlowRun, Any, float, datetime], _Step]] = {
    PlayNode: FlowRun._enter_play,
    MenuNode: FlowRun._enter_prompted,
    CollectNode: FlowRun._enter_prompted,
    SurveyNode: FlowRun._enter_prompted,
    VoicemailNode: FlowRun._enter_prompted,
    ScheduleNode: FlowRun._enter_schedule,
    LookupNode: FlowRun._enter_lookup,
    SetNode: FlowRun._enter_set,
    QueueNode: FlowRun._enter_queue,
    CallbackNode: FlowRun._enter_callback,
    TransferNode: FlowRun._enter_transfer,
    HangupNode: FlowRun._enter_hangup,
}

# (where the run is, what happened) -> handler. A pair not listed is ignored.
_TRANSITIONS: dict[tuple[Phase, str], Callable[[FlowRun, float, Any, Any], list[Action]]] = {
    (Phase.PROMPTING, "play_done"): FlowRun._prompt_done,
    (Phase.PROMPTING, "timer"): FlowRun._prompt_guard,
    (Phase.PROMPTING, "digit"): FlowRun._barge_in,
    (Phase.INPUT, "digit"): FlowRun._input_digit,
    (Phase.INPUT, "timer"): FlowRun._input_timeout,
    (Phase.LOOKUP, "lookup_result"): FlowRun._lookup_result,
    (Phase.LOOKUP, "timer"): FlowRun._lookup_timeout,
    (Phase.RECORDING, "record_done"): FlowRun._record_done,
    (Phase.RECORDING, "timer"): FlowRun._record_done,
    (Phase.QUEUED, "queue_result"): FlowRun._queue_result,
}
