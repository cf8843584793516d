"""The contact center core, sans-I/O: queued calls, agents, ringing, wrap-up, overflow.

Inputs are method calls with an injected ``now`` (seconds, the same clock for every
call: the adapter's wall clock, so interval statistics line up with it); outputs are
frozen-dataclass actions drained with :meth:`ContactCenter.take_actions`, and one
timer deadline (:meth:`ContactCenter.get_timer` / :meth:`ContactCenter.handle_timer`).
No asyncio, no sockets, no clock. Which call goes to which agent is the matcher's
decision (``cython_ext.acdmatch``); this module owns everything around it.

Everything that changes an agent's state lives in :data:`AGENT_MACHINE`:
``(state, input) -> (new state, reason)``. A pair missing from it is illegal and
raises :class:`IllegalTransition` before anything changes.

A call ends exactly once, as one of: answered (:meth:`ContactCenter.ring_answered`
returned True), abandoned (:meth:`ContactCenter.abandon`), sent on (an
:class:`Overflow` other than ``kind="queue"``, which moves it to another queue of this
center), or given back to the flow (:class:`Reject`: ``full`` / ``no-agents`` at the
door, ``max-wait`` / ``no-agents`` later when the queue has no overflow).
"""

from __future__ import annotations

import enum
import heapq
import importlib
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from edge_core.acd.model import MAX_SKILL_NAMES, AgentConfig, FeatureCodes, QueueConfig
from edge_core.acd.stats import AgentLive, IntervalRow, QueueLive, Statistics

__all__ = [
    "AgentState",
    "AgentInput",
    "AGENT_MACHINE",
    "AcdError",
    "IllegalTransition",
    "RingAgent",
    "CancelRing",
    "Overflow",
    "Announce",
    "Reject",
    "AgentStateChanged",
    "AutoPaused",
    "Action",
    "ContactCenter",
]


class AgentState(enum.Enum):
    LOGGED_OUT = "logged_out"
    AVAILABLE = "available"
    RINGING = "ringing"
    ON_CALL = "on_call"
    WRAP_UP = "wrap_up"
    PAUSED = "paused"


class AgentInput(enum.Enum):
    LOGIN = "login"
    LOGOUT = "logout"
    PAUSE = "pause"
    UNPAUSE = "unpause"
    RING = "ring"
    ANSWER = "answer"
    RING_FAILED = "ring failed"  # no answer / busy / rejected
    RING_CANCELLED = "ring cancelled"  # another agent answered, or the caller left
    AUTO_PAUSE = "auto-pause"  # ring failed once too often in a row
    HANG_UP = "hang up"
    WRAP_UP_DONE = "wrap-up over"


S, In = AgentState, AgentInput
AGENT_MACHINE: dict[tuple[AgentState, AgentInput], tuple[AgentState, str]] = {
    (S.LOGGED_OUT, In.LOGIN): (S.AVAILABLE, "logged in"),
    (S.AVAILABLE, In.LOGOUT): (S.LOGGED_OUT, "logged out"),
    (S.PAUSED, In.LOGOUT): (S.LOGGED_OUT, "logged out"),
    (S.WRAP_UP, In.LOGOUT): (S.LOGGED_OUT, "logged out in wrap-up"),
    (S.RINGING, In.LOGOUT): (S.LOGGED_OUT, "logged out while ringing; the call goes back"),
    (S.AVAILABLE, In.PAUSE): (S.PAUSED, "paused"),
    (S.WRAP_UP, In.PAUSE): (S.PAUSED, "paused in wrap-up"),
    (S.PAUSED, In.PAUSE): (S.PAUSED, "pause reason changed"),
    (S.RINGING, In.PAUSE): (S.PAUSED, "paused while ringing; the call goes back"),
    (S.PAUSED, In.UNPAUSE): (S.AVAILABLE, "unpaused"),
    (S.AVAILABLE, In.RING): (S.RINGING, "offered a call"),
    (S.RINGING, In.ANSWER): (S.ON_CALL, "answered"),
    (S.RINGING, In.RING_FAILED): (S.AVAILABLE, "did not answer"),
    (S.RINGING, In.RING_CANCELLED): (S.AVAILABLE, "ring cancelled"),
    (S.RINGING, In.AUTO_PAUSE): (S.PAUSED, "auto-paused after unanswered rings"),
    (S.ON_CALL, In.HANG_UP): (S.WRAP_UP, "call ended"),
    (S.WRAP_UP, In.WRAP_UP_DONE): (S.AVAILABLE, "wrap-up over"),
}
"""Every legal agent transition with the reason reported in :class:`AgentStateChanged`.
On a call agents cannot log out or pause (the phone is busy; they do it in wrap-up)."""
del S, In


class AcdError(Exception):
    """The adapter asked for something illegal (unknown id, call not in that phase):
    a bug in the caller. Raised before anything changes."""


class IllegalTransition(AcdError):
    """An agent input that :data:`AGENT_MACHINE` does not allow in the agent's state."""


# -- actions -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RingAgent:
    call_id: str
    """The waiting call offered."""
    agent_id: str
    extension: str
    """Where the agent is logged in: the extension to ring."""
    timeout_s: float
    """The center gives up (and says :class:`CancelRing`) after this long."""


@dataclass(frozen=True, slots=True)
class CancelRing:
    call_id: str
    agent_id: str
    """Stop ringing this agent for this call (timeout, answered elsewhere, caller left)."""


@dataclass(frozen=True, slots=True)
class Overflow:
    call_id: str
    kind: str
    """``queue`` (already moved into ``target`` here), ``voicemail``, ``callback``, ``number``."""
    target: str
    reason: str = "max-wait"
    """``max-wait`` or ``no-agents`` (the last agent logged out, ``leave_when_empty``)."""


@dataclass(frozen=True, slots=True)
class Announce:
    call_id: str
    position: int
    """1-based place in the queue's serving order."""
    ewt_s: float | None
    """Estimated wait; None while no handle time is known or no agent is staffed."""


@dataclass(frozen=True, slots=True)
class Reject:
    call_id: str
    reason: str
    """``full``, ``no-agents`` or ``max-wait``: the call goes back to its flow."""


@dataclass(frozen=True, slots=True)
class AgentStateChanged:
    agent_id: str
    old: AgentState
    new: AgentState
    reason: str
    """The table's reason, or the pause reason for a pause."""


@dataclass(frozen=True, slots=True)
class AutoPaused:
    agent_id: str
    unanswered: int
    """Rings in a row the agent let fail."""


Action = RingAgent | CancelRing | Overflow | Announce | Reject | AgentStateChanged | AutoPaused


# -- state ------------------------------------------------------------------------


@dataclass(slots=True, eq=False)
class QueueCall:
    call_id: str
    key: int  # the matcher's id
    queue: str
    priority: int
    skills: tuple[str, ...]  # required: the queue's and the flow's
    flow_skills: tuple[str, ...]  # the flow's alone: they follow the call to an overflow queue
    caller: str
    enqueued_at: float
    phase: str = "waiting"  # waiting | ringing | connected
    ringing: list[str] = field(default_factory=list)  # agent ids
    tried: set[str] = field(default_factory=set)  # agents that let it ring out since the last round
    agent: str | None = None
    answered_at: float = 0.0
    overflow_due: bool = False  # max wait passed while ringing
    callback: bool = False  # nobody is on the line: the edge calls the caller back


@dataclass(slots=True, eq=False)
class Agent:
    config: AgentConfig
    key: int
    state: AgentState = AgentState.LOGGED_OUT
    extension: str | None = None
    pause_reason: str | None = None
    call_id: str | None = None  # the call ringing or connected
    unanswered: int = 0
    idle_since: float = 0.0
    wrap: tuple[str, float, float] | None = None  # (queue, talk_s, wrap-up start)


class ContactCenter:
    """Queues and agents of one site; see the module docstring for the contract."""

    def __init__(
        self,
        queues: Sequence[QueueConfig],
        agents: Sequence[AgentConfig],
        *,
        feature_codes: FeatureCodes | None = None,
        matcher_factory: Callable[..., Any] | None = None,
        ageing_s: float = 60.0,
        seed: int = 0,
    ) -> None:
        if matcher_factory is None:
            from cython_ext.acdmatch import Matcher

            matcher_factory = Matcher
        self._matcher = matcher_factory(ageing_s=ageing_s, seed=seed)
        self._codes = feature_codes or FeatureCodes()
        self._queues = {q.name: q for q in queues}
        self._qkey = {name: i for i, name in enumerate(self._queues)}
        for name, q in self._queues.items():
            # ring-all rings every candidate; the order only picks the lead one
            self._matcher.add_queue(
                self._qkey[name], "linear" if q.strategy == "ring-all" else q.strategy
            )
        names = sorted(
            {s for q in queues for s in q.skills} | {s for a in agents for s in a.skills}
        )
        if len(names) > MAX_SKILL_NAMES:
            raise ValueError(f"{len(names)} skill names; the matcher holds {MAX_SKILL_NAMES}")
        self._skill_bit = {s: i for i, s in enumerate(names)}
        # one bit no agent has stands for every skill nobody was configured with
        self._nobody_bit = len(names)
        self._agents: dict[str, Agent] = {}
        self._agent_by_key: dict[int, Agent] = {}
        for i, a in enumerate(agents):
            agent = Agent(a, i)
            self._agents[a.id] = agent
            self._agent_by_key[i] = agent
            skills = {self._skill_bit[s]: level for s, level in a.skills.items()}
            self._matcher.add_agent(
                i, queues=[self._qkey[q] for q in a.queues], skills=skills, order=a.order
            )
        self._home = {a.extension: a.id for a in agents}
        self._at_ext: dict[str, str] = {}  # extension -> logged-in agent id
        self._calls: dict[str, QueueCall] = {}
        self._call_by_key: dict[int, QueueCall] = {}
        self._next_key = 0
        self._aht: dict[str, float | None] = dict.fromkeys(self._queues)  # EMA, talk + wrap-up
        self._actions: list[Action] = []
        self._heap: list[tuple[float, int, str, tuple[str, ...]]] = []
        self._timers: dict[tuple[str, tuple[str, ...]], int] = {}
        self._timer_seq = 0
        module = importlib.import_module(type(self._matcher).__module__)
        self.matcher_implementation: str = getattr(module, "IMPLEMENTATION", "unknown")
        """``cython`` or ``python``: which matcher decides (for status and telemetry)."""
        self.stats = Statistics({q.name: q.service_level_s for q in queues}, [a.id for a in agents])

    # -- outputs ---------------------------------------------------------------------

    def take_actions(self) -> list[Action]:
        """The actions produced since the last call, oldest first."""
        actions, self._actions = self._actions, []
        return actions

    def get_timer(self) -> float | None:
        """The earliest deadline to call :meth:`handle_timer` at, or None."""
        while self._heap:
            deadline, seq, kind, key = self._heap[0]
            if self._timers.get((kind, key)) == seq:
                return deadline
            heapq.heappop(self._heap)
        return None

    def handle_timer(self, now: float) -> None:
        """Fire every timer due at ``now``: ring timeouts, wrap-up ends, max waits, announcements."""
        while (deadline := self.get_timer()) is not None and deadline <= now:
            _, _, kind, key = heapq.heappop(self._heap)
            del self._timers[(kind, key)]
            if kind == "ring":
                self._ring_over(
                    self._calls[key[0]], self._agents[key[1]], now, "no-answer", cancel=True
                )
            elif kind == "wrap":
                self._end_wrap_up(self._agents[key[0]], now)
                self._transition(self._agents[key[0]], AgentInput.WRAP_UP_DONE, now)
            elif kind == "maxwait":
                call = self._calls[key[0]]
                if call.phase == "waiting":
                    self._send_away(call, now, "max-wait")
                else:
                    call.overflow_due = True
            elif kind == "announce":
                self._announce(self._calls[key[0]], now)
        self._dispatch(now)

    # -- calls -----------------------------------------------------------------------

    def enqueue(
        self,
        call_id: str,
        queue: str,
        *,
        priority: int = 0,
        skills: Iterable[str] = (),
        caller: str = "",
        callback: bool = False,
        count: bool = True,
        now: float,
    ) -> None:
        """A caller joins ``queue``; ``skills`` are needed on top of the queue's own.

        A ``callback`` entry has nobody on the line: it is neither refused (full, no
        agents) nor sent away (max wait, the last agent leaving), and hears no
        announcements; it waits for an agent like any other. ``count=False`` keeps a
        retry of a callback out of the offered figure (it was offered once)."""
        if call_id in self._calls:
            raise AcdError(f"call {call_id!r} is already queued")
        if queue not in self._queues:
            raise AcdError(f"no queue named {queue!r}")
        q = self._queues[queue]
        flow_skills = tuple(skills)
        needed = tuple(dict.fromkeys([*q.skills, *flow_skills]))
        if not callback and (
            q.max_length
            and sum(
                1
                for c in self._calls.values()
                if c.queue == queue and c.phase != "connected" and not c.callback
            )
            >= q.max_length
        ):
            self._reject(call_id, queue, "full", now)
            return
        if not callback and not q.join_empty and not self._staffable(queue, needed):
            self._reject(call_id, queue, "no-agents", now)
            return
        call = QueueCall(call_id, self._next_key, queue, priority, needed, flow_skills, caller, now)
        call.callback = callback
        self._next_key += 1
        self._calls[call_id] = call
        self._call_by_key[call.key] = call
        self._wait(call)
        if count:
            self.stats.offered(queue, now)
        if not callback:
            self._arm("maxwait", (call_id,), now + q.max_wait_s)
            if q.announce_every_s:
                self._arm("announce", (call_id,), now + q.announce_every_s)
        self._dispatch(now)

    def to_callback(self, call_id: str, now: float) -> None:
        """The waiting caller asked to be called back: the call keeps its place (its
        enqueue time and priority) with nobody on the line; rings to it stop."""
        call = self._call(call_id)
        if call.phase == "connected":
            raise AcdError(f"call {call_id!r} was answered")
        if call.ringing:
            self._cancel_rings(call, now)
            self._wait(call)
        call.callback = True
        call.overflow_due = False
        for kind in ("maxwait", "announce"):
            self._disarm(kind, (call_id,))
        self._dispatch(now)

    def abandon(self, call_id: str, now: float) -> None:
        """The caller hung up before an agent answered."""
        call = self._call(call_id)
        if call.phase == "connected":
            raise AcdError(f"call {call_id!r} was answered; use call_ended")
        self._cancel_rings(call, now)
        self._forget(call)
        self.stats.abandoned(call.queue, now - call.enqueued_at, now)
        self._dispatch(now)

    def ring_answered(self, call_id: str, agent_id: str, now: float) -> bool:
        """The agent picked up. False if that ring is already over (cancelled or timed
        out): the adapter must then hang up the agent's leg."""
        agent = self._agent(agent_id)
        call = self._calls.get(call_id)
        if call is None or agent_id not in call.ringing:
            return False
        self._disarm("ring", (call_id, agent_id))
        call.ringing.remove(agent_id)
        self._cancel_rings(call, now)
        self._transition(agent, AgentInput.ANSWER, now)
        agent.unanswered = 0
        call.phase, call.agent, call.answered_at = "connected", agent_id, now
        self._disarm("maxwait", (call_id,))
        self._disarm("announce", (call_id,))
        self._matcher.note_answered(agent.key, queue=self._qkey[call.queue])
        self.stats.answered(call.queue, agent_id, now - call.enqueued_at, now)
        self._dispatch(now)
        return True

    def ring_failed(
        self, call_id: str, agent_id: str, now: float, reason: str = "no-answer"
    ) -> bool:
        """Ringing the agent failed (``no-answer``, ``busy``, ``rejected``, ...). False
        if that ring is already over."""
        agent = self._agent(agent_id)
        call = self._calls.get(call_id)
        if call is None or agent_id not in call.ringing:
            return False
        self._disarm("ring", (call_id, agent_id))
        self._ring_over(call, agent, now, reason, cancel=False)
        self._dispatch(now)
        return True

    def call_ended(self, call_id: str, now: float) -> None:
        """An answered call hung up (either side): the agent goes to wrap-up."""
        call = self._call(call_id)
        if call.phase != "connected" or call.agent is None:
            raise AcdError(f"call {call_id!r} is not connected")
        agent = self._agents[call.agent]
        q = self._queues[call.queue]
        self._forget(call)
        self._transition(agent, AgentInput.HANG_UP, now)
        agent.call_id = None
        talk = now - call.answered_at
        agent.wrap = (call.queue, talk, now)
        old = self._aht[call.queue]
        sample = talk + q.wrap_up_s
        self._aht[call.queue] = sample if old is None else old + q.ewt_smoothing * (sample - old)
        if q.wrap_up_s > 0:
            self._arm("wrap", (agent.config.id,), now + q.wrap_up_s)
        else:
            self._end_wrap_up(agent, now)
            self._transition(agent, AgentInput.WRAP_UP_DONE, now)
        self._dispatch(now)

    # -- agents ----------------------------------------------------------------------

    def agent_login(self, agent_id: str, extension: str, now: float) -> None:
        """The agent starts taking calls at ``extension``."""
        agent = self._agent(agent_id)
        self._check(agent, AgentInput.LOGIN)
        other = self._at_ext.get(extension)
        if other is not None:
            raise AcdError(f"agent {other!r} is already logged in at {extension}")
        agent.extension = extension
        self._at_ext[extension] = agent_id
        agent.unanswered = 0
        self._transition(agent, AgentInput.LOGIN, now)
        self._dispatch(now)

    def agent_logout(self, agent_id: str, now: float) -> None:
        agent = self._agent(agent_id)
        self._check(agent, AgentInput.LOGOUT)
        self._leave_ringing(agent, now)
        if agent.state is AgentState.WRAP_UP:
            self._end_wrap_up(agent, now)
        self._transition(agent, AgentInput.LOGOUT, now)
        if agent.extension is not None:
            self._at_ext.pop(agent.extension, None)
        agent.extension = agent.pause_reason = None
        for call in list(self._calls.values()):
            if call.phase != "waiting" or self._calls.get(call.call_id) is not call:
                continue  # rung or moved meanwhile (an overflow into a queue dispatches)
            q = self._queues[call.queue]
            if (
                q.leave_when_empty
                and not call.callback
                and call.queue in agent.config.queues
                and not self._staffable(call.queue, call.skills)
            ):
                self._send_away(call, now, "no-agents")
        self._dispatch(now)

    def agent_pause(self, agent_id: str, reason: str, now: float) -> None:
        agent = self._agent(agent_id)
        self._check(agent, AgentInput.PAUSE)
        self._leave_ringing(agent, now)
        if agent.state is AgentState.WRAP_UP:
            self._end_wrap_up(agent, now)
        agent.pause_reason = reason
        self._transition(agent, AgentInput.PAUSE, now, reason)
        self._dispatch(now)

    def agent_unpause(self, agent_id: str, now: float) -> None:
        agent = self._agent(agent_id)
        self._check(agent, AgentInput.UNPAUSE)
        agent.pause_reason = None
        agent.unanswered = 0
        self._transition(agent, AgentInput.UNPAUSE, now)
        self._dispatch(now)

    def feature_code(self, extension: str, dialled: str, now: float) -> str | None:
        """Run an agent feature code dialled from ``extension``; the result to play or
        show, or None when ``dialled`` is not a feature code (route it normally)."""
        codes = self._codes
        if dialled.startswith(codes.login):
            wanted = dialled[len(codes.login) :]
            agent_id = wanted or self._home.get(extension)
            if agent_id is None or agent_id not in self._agents:
                return f"login refused: no agent {wanted or 'for extension ' + extension}"
            return self._feature(
                lambda: self.agent_login(agent_id, extension, now),
                f"agent {agent_id} logged in at {extension}",
            )
        digits = dialled[len(codes.pause) :]
        if dialled.startswith(codes.pause) and all(c in "0123456789" for c in digits):
            reason = codes.pause_reasons.get(digits, digits) or "break"
            return self._at(
                extension, "pause", lambda a: self.agent_pause(a, reason, now), f"paused: {reason}"
            )
        if dialled == codes.logout:
            return self._at(extension, "logout", lambda a: self.agent_logout(a, now), "logged out")
        if dialled == codes.unpause:
            return self._at(extension, "unpause", lambda a: self.agent_unpause(a, now), "available")
        return None

    def _at(self, extension: str, what: str, run: Callable[[str], None], done: str) -> str:
        agent_id = self._at_ext.get(extension)
        if agent_id is None:
            return f"{what} refused: no agent is logged in at {extension}"
        return self._feature(lambda: run(agent_id), f"agent {agent_id} {done}")

    @staticmethod
    def _feature(run: Callable[[], None], done: str) -> str:
        try:
            run()
        except AcdError as exc:
            return f"refused: {exc}"
        return done

    # -- reading -----------------------------------------------------------------------

    def is_idle(self) -> bool:
        """No call queued, ringing or connected, and no agent ringing, on a call or in
        wrap-up: the center can be replaced (a new config) without anyone noticing."""
        busy = (AgentState.RINGING, AgentState.ON_CALL, AgentState.WRAP_UP)
        return not self._calls and all(a.state not in busy for a in self._agents.values())

    def logged_in(self) -> dict[str, tuple[str, str | None]]:
        """Agent id -> (extension, pause reason or None) of everyone logged in."""
        return {
            a.config.id: (a.extension, a.pause_reason if a.state is AgentState.PAUSED else None)
            for a in self._agents.values()
            if a.extension is not None and a.state is not AgentState.LOGGED_OUT
        }

    def agent_state(self, agent_id: str) -> AgentState:
        return self._agent(agent_id).state

    def pause_reason(self, agent_id: str) -> str | None:
        return self._agent(agent_id).pause_reason

    def waiting(self, queue: str) -> list[str]:
        """Call ids waiting (not ringing) in ``queue``, in serving order."""
        calls = [c for c in self._calls.values() if c.queue == queue and c.phase == "waiting"]
        return [c.call_id for c in sorted(calls, key=lambda c: self._matcher.position(c.key))]

    def estimated_wait(self, queue: str, position: int) -> float | None:
        """EWT for the caller at ``position``: moving average of handle time (talk +
        wrap-up) x position / staffed agents (logged in, not paused)."""
        aht = self._aht[queue]
        staffed = sum(
            1
            for a in self._agents.values()
            if queue in a.config.queues
            and a.state not in (AgentState.LOGGED_OUT, AgentState.PAUSED)
        )
        if aht is None or staffed == 0:
            return None
        return aht * position / staffed

    def queue_live(self, now: float) -> dict[str, QueueLive]:
        """Live board per queue: waiting calls, longest wait, agents by state, totals."""
        out = {}
        for name in self._queues:
            waits = [
                now - c.enqueued_at
                for c in self._calls.values()
                if c.queue == name and c.phase != "connected"
            ]
            states = [a.state.value for a in self._agents.values() if name in a.config.queues]
            out[name] = self.stats.queue_live(name, waits, states)
        return out

    def agent_live(self, now: float) -> dict[str, AgentLive]:
        return {a: self.stats.agent_live(a, now) for a in self._agents}

    def close_interval(self, start: float, end: float) -> list[IntervalRow]:
        """Rows for the interval ``[start, end)`` (see :meth:`Statistics.close_interval`)."""
        return self.stats.close_interval(start, end)

    # -- internals ---------------------------------------------------------------------

    def _agent(self, agent_id: str) -> Agent:
        agent = self._agents.get(agent_id)
        if agent is None:
            raise AcdError(f"no agent {agent_id!r}")
        return agent

    def _call(self, call_id: str) -> QueueCall:
        call = self._calls.get(call_id)
        if call is None:
            raise AcdError(f"no queued call {call_id!r}")
        return call

    @staticmethod
    def _check(agent: Agent, event: AgentInput) -> None:
        if (agent.state, event) not in AGENT_MACHINE:
            raise IllegalTransition(
                f"agent {agent.config.id!r} cannot {event.value} while {agent.state.value}"
            )

    def _transition(
        self, agent: Agent, event: AgentInput, now: float, reason: str | None = None
    ) -> None:
        self._check(agent, event)
        old = agent.state
        new, why = AGENT_MACHINE[(old, event)]
        agent.state = new
        if (
            new is AgentState.AVAILABLE
            and event is not AgentInput.RING_FAILED
            and event is not AgentInput.RING_CANCELLED
        ):
            agent.idle_since = now  # an unanswered ring does not reset idle time
        self._matcher.set_available(agent.key, new is AgentState.AVAILABLE, since=agent.idle_since)
        self.stats.agent_state(agent.config.id, old.value, new.value, now)
        self._actions.append(AgentStateChanged(agent.config.id, old, new, reason or why))

    def _staffable(self, queue: str, skills: Iterable[str]) -> bool:
        """Is someone logged in who could take a call of ``queue`` needing ``skills``?"""
        needed = set(skills)
        return any(
            queue in a.config.queues
            and needed <= a.config.skills.keys()
            and a.state is not AgentState.LOGGED_OUT
            for a in self._agents.values()
        )

    def _wait(self, call: QueueCall) -> None:
        call.phase = "waiting"
        bits = 0
        for s in call.skills:  # a skill nobody has: the call waits until max_wait_s
            bits |= 1 << self._skill_bit.get(s, self._nobody_bit)
        self._matcher.add_call(
            call.key,
            self._qkey[call.queue],
            priority=call.priority,
            skills=bits,
            enqueued_at=call.enqueued_at,
        )

    def _dispatch(self, now: float) -> None:
        """Offer waiting calls to free agents until the matcher has no pair left."""
        while (pair := self._matcher.next_match(now)) is not None:
            call = self._call_by_key[pair[0]]
            lead = self._agent_by_key[pair[1]]
            q = self._queues[call.queue]
            order = [self._agent_by_key[k] for k in self._matcher.candidates(call.key, now)]
            if q.strategy == "ring-all":
                chosen = order
            else:
                fresh = [a for a in order if a.config.id not in call.tried]
                if not fresh:  # everyone able has let it ring out: start a new round
                    call.tried.clear()
                chosen = [fresh[0] if fresh else lead]
            self._matcher.remove_call(call.key)
            call.phase = "ringing"
            for agent in chosen:
                self._transition(agent, AgentInput.RING, now)
                agent.call_id = call.call_id
                call.ringing.append(agent.config.id)
                self._arm("ring", (call.call_id, agent.config.id), now + q.ring_timeout_s)
                assert agent.extension is not None
                self._actions.append(
                    RingAgent(call.call_id, agent.config.id, agent.extension, q.ring_timeout_s)
                )

    def _ring_over(
        self, call: QueueCall, agent: Agent, now: float, reason: str, *, cancel: bool
    ) -> None:
        """One agent's ring for ``call`` failed; the call goes back when none is left."""
        q = self._queues[call.queue]
        call.ringing.remove(agent.config.id)
        call.tried.add(agent.config.id)
        agent.call_id = None
        if cancel:
            self._actions.append(CancelRing(call.call_id, agent.config.id))
        agent.unanswered += 1
        if q.auto_pause_after and agent.unanswered >= q.auto_pause_after:
            agent.pause_reason = "auto-pause"
            self._transition(agent, AgentInput.AUTO_PAUSE, now)
            self._actions.append(AutoPaused(agent.config.id, agent.unanswered))
        else:
            self._transition(agent, AgentInput.RING_FAILED, now, f"did not answer ({reason})")
        if not call.ringing:
            self._wait(call)
            if call.overflow_due:
                self._send_away(call, now, "max-wait")

    def _cancel_rings(self, call: QueueCall, now: float) -> None:
        for agent_id in call.ringing:
            agent = self._agents[agent_id]
            self._disarm("ring", (call.call_id, agent_id))
            self._actions.append(CancelRing(call.call_id, agent_id))
            agent.call_id = None
            self._transition(agent, AgentInput.RING_CANCELLED, now)
        call.ringing.clear()

    def _leave_ringing(self, agent: Agent, now: float) -> None:
        """The agent leaves while ringing (logout/pause): stop the ring, the call goes back."""
        if agent.state is not AgentState.RINGING or agent.call_id is None:
            return
        call = self._calls[agent.call_id]
        self._disarm("ring", (call.call_id, agent.config.id))
        self._actions.append(CancelRing(call.call_id, agent.config.id))
        call.ringing.remove(agent.config.id)
        agent.call_id = None
        if not call.ringing:
            self._wait(call)
            if call.overflow_due:
                self._send_away(call, now, "max-wait")

    def _end_wrap_up(self, agent: Agent, now: float) -> None:
        self._disarm("wrap", (agent.config.id,))
        if agent.wrap is not None:
            queue, talk, started = agent.wrap
            self.stats.handled(queue, agent.config.id, talk, now - started, now)
            agent.wrap = None

    def _send_away(self, call: QueueCall, now: float, reason: str) -> None:
        """The call leaves unanswered: to the overflow target, or back to its flow."""
        q = self._queues[call.queue]
        self._forget(call)
        self.stats.overflowed(call.queue, now - call.enqueued_at, now)
        if q.overflow is None:
            self._actions.append(Reject(call.call_id, reason))
            return
        target = q.overflow.target or (call.queue if q.overflow.type == "callback" else "")
        self._actions.append(Overflow(call.call_id, q.overflow.type, target, reason))
        if q.overflow.type == "queue":
            self.enqueue(
                call.call_id,
                target,
                priority=call.priority,
                skills=call.flow_skills,
                caller=call.caller,
                now=now,
            )

    def _reject(self, call_id: str, queue: str, reason: str, now: float) -> None:
        self.stats.rejected(queue, now)
        self._actions.append(Reject(call_id, reason))

    def _forget(self, call: QueueCall) -> None:
        self._matcher.remove_call(call.key)
        del self._calls[call.call_id]
        del self._call_by_key[call.key]
        for kind in ("maxwait", "announce"):
            self._disarm(kind, (call.call_id,))

    def _announce(self, call: QueueCall, now: float) -> None:
        q = self._queues[call.queue]
        self._arm("announce", (call.call_id,), now + q.announce_every_s)
        if call.phase == "waiting":
            position = self._matcher.position(call.key)
            self._actions.append(
                Announce(call.call_id, position, self.estimated_wait(call.queue, position))
            )

    def _arm(self, kind: str, key: tuple[str, ...], deadline: float) -> None:
        self._timer_seq += 1
        self._timers[(kind, key)] = self._timer_seq
        heapq.heappush(self._heap, (deadline, self._timer_seq, kind, key))

    def _disarm(self, kind: str, key: tuple[str, ...]) -> None:
        self._timers.pop((kind, key), None)
