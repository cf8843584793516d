"""Calls the edge answers itself: the IVR walk, the queue wait, and the agent's leg.

A route with a ``flow`` target makes the B2BUA answer the caller at once (one media
leg, prompts played into it by the media engine, digits read from it). This module is
the glue between three sans-I/O parts that know nothing of each other: the flow
interpreter (``ivr.runner.FlowRun``), the contact center (``acd.center.ContactCenter``)
and the B2BUA, which rings agents with fresh INVITE legs and joins the answering one to
the caller. Everything here runs on the event loop with an injected ``now``.

A queue node's ``after_call`` keeps the caller on when the agent hangs up (a survey:
the score goes on the CDR, a low one opens a follow-up task due within 24 h).

A voicemail node records the caller's leg until the caller hangs up or ``max_s``; the
daemon writes it as a mono WAV under ``media.voicemail_dir/MAILBOX/`` and indexes it.

A lookup node with an http source asks the daemon's HTTP client (``http_lookup``); the
flow's own deadline sends it to ``fallback`` when the answer is late.

Callbacks: a waiting caller who presses the queue's ``callback_key`` (or a flow's
``callback`` node) leaves a :class:`CallbackJob` in the queue with nobody on the line;
it keeps its place. When the contact center offers it to an agent, the edge places a
call to that agent (an originated call, its ``a`` leg the agent's), and once the agent
answers, rings the customer as that call's second leg. A customer who does not answer
is tried again after ``callback_retry_s``, up to ``callback_attempts`` calls; then a
``callback-failed`` task is opened for a supervisor. Every attempt is a call of its own
and leaves its own CDR (destination ``callback:QUEUE``).

A new config (:meth:`HostedCalls.reconfigure`) applies to calls that start after it;
calls in progress keep the flow they are in. The contact center is replaced only when it
is idle (nobody queued, ringing, talking or in wrap-up); until then the new queues and
agents wait (``pending_center``), and logged-in agents stay logged in across the swap.
"""

from __future__ import annotations

import functools
import heapq
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from edge_core.acd import center as acd
from edge_core.ivr import runner as ivr
from edge_core.media.legs import MediaError
from edge_core.routing.dialplan import ExtensionTarget, TrunkTarget
from edge_core.store.db import TaskRow


@dataclass(frozen=True)
class VoicemailMessage:
    """A message left in a mailbox, on its way to the store (file and index row)."""

    call_id: str
    mailbox: str
    caller: str
    received_at: float
    pcm: bytes
    """8 kHz mono int16 LE, time-aligned (silence where packets were missing)."""

if TYPE_CHECKING:
    from edge_core.config.schema import SiteConfig
    from edge_core.sip.b2bua import B2BUA
    from edge_core.sip.call import Call, RingLeg
    from edge_core.sip.registrar import Registrar

log = logging.getLogger("edge.hosted")

_ANNOUNCE_PLAY_ID = -1  # the queue announcement; when it ends, hold music resumes
_HOLD_PLAY_ID = -2
_FEATURE_PLAY_ID = -3  # the confirmation of a feature code; when it ends, hang up
_CALLBACK_PLAY_ID = -4  # "we will call you back"; when it ends, hang up
_CUSTOMER = "=customer"  # the key of a callback's customer ring (no agent id starts with "=")


@dataclass(frozen=True)
class Reach:
    """Where to send an INVITE (the shape of a registrar binding)."""

    contact: str
    source: tuple[str, int]
    transport: str


@dataclass(eq=False)
class CallbackJob:
    """A caller to call back. ``id`` is the contact center's call id: the queue entry
    outlives the call that asked for it."""

    id: str
    queue: str
    number: str
    priority: int = 0
    skills: tuple[str, ...] = ()
    attempts: int = 0
    """Calls to the customer placed so far (each after an agent answered)."""
    legs: dict[str, Call] = field(default_factory=dict)
    """Agent id -> the originated call ringing that agent."""
FOLLOW_UP_WITHIN_S = 24 * 3600  # a low survey score is called back within a day


@dataclass
class HostedCall:
    call: Call
    run: ivr.FlowRun | None
    """The caller's walk through the flow; None for a feature-code call."""
    queue: str | None = None
    """The queue the call waits in, while it waits."""
    moh: str | None = None
    """The prompt looped while waiting."""
    rings: dict[str, RingLeg] = field(default_factory=dict)
    """Agent id -> the leg ringing that agent ("" for a plain transfer target)."""
    agent: str | None = None
    """The agent the caller talks to, once one answered."""
    voicemail: tuple[str, float, float, str | None] | None = None
    """(mailbox, wall time it started, monotonic deadline, extension to notify) while a
    message is recorded."""
    entry: tuple[int, tuple[str, ...]] = (0, ())
    """(priority, skills) the call joined its queue with (a callback keeps them)."""
    job: CallbackJob | None = None
    """For a call the edge placed to call a customer back: its job."""

    @property
    def center_id(self) -> str:
        """The contact center's id of this call."""
        return self.job.id if self.job is not None else self.call.id


class HostedCalls:
    def __init__(
        self,
        config: SiteConfig,
        b2bua: B2BUA,
        registrar: Registrar,
        dial_plan: Any,
        prompts: Any,
        wall: Callable[[], float],
        center: acd.ContactCenter | None = None,
    ) -> None:
        self.config = config
        self.b2bua = b2bua
        self.registrar = registrar
        self.dial_plan = dial_plan
        self.prompts = prompts
        self.wall = wall
        self.zone = ZoneInfo(config.site.timezone)
        self.center = center or acd.ContactCenter(
            config.queues, config.agents, feature_codes=config.feature_codes
        )
        self._queues = {q.name: q for q in config.queues}
        self.calls: dict[str, HostedCall] = {}
        self.callbacks: dict[str, CallbackJob] = {}
        self._retries: list[tuple[float, str]] = []  # (when, job id): customers to call again
        self._customer_rings: list[tuple[float, str]] = []  # (give up at, call id)
        self.trunk_attempts: Callable[[Any], list[Any]] | None = None
        """The trunks a call to a trunk target may take now (set by SipCore)."""
        self.waiting: dict[str, int] = {}
        """Mailbox -> messages left since the edge started (the count an RFC 3842
        NOTIFY carries; the store keeps every message and its ``heard`` flag)."""
        self.pending_center: SiteConfig | None = None
        """A config whose queues/agents wait for the contact center to be idle."""
        self._timers: list[tuple[float, str]] = []  # (deadline, call id) of flow runs
        self.on_agent_change: Callable[[acd.AgentStateChanged, float], None] | None = None
        """Told every agent transition (the control API's events and time in state)."""
        self.notes: list[str] = []  # what a flow asked that is not carried out (tests read it)
        # the daemon's HTTP client for lookup nodes: (url, timeout_s, done(result, now));
        # ``result`` is the JSON object, {} for not found, None for a failure
        self.http_lookup: Callable[[str, float, Callable[[dict[str, Any] | None, float], None]], None] | None = None

    # -- entry points ----------------------------------------------------------------------
    def feature_code(self, extension: str, dialled: str, now: float) -> str | None:
        """The result of an agent feature code (*71 login ...), or None if not one."""
        try:
            result = self.center.feature_code(extension, dialled, now)
        except acd.AcdError as exc:
            return f"refused: {exc}"
        self._drain_center(now)
        return result

    def start_feature(self, call: Call, result: str, now: float) -> None:
        """A feature-code call: confirm with a prompt, then hang up."""
        log.info("feature code from %s: %s", call.from_number, result)
        self.calls[call.id] = HostedCall(call, None)
        self._play(call, "thank_you", _FEATURE_PLAY_ID, loop=False)

    def start_flow(self, call: Call, flow_name: str, now: float) -> None:
        flow = self.config.flows[flow_name]
        run = ivr.FlowRun(
            flow, caller=call.from_number, now=now, timezone=self.config.site.timezone
        )
        self.calls[call.id] = HostedCall(call, run)
        self._apply(self.calls[call.id], run.start(now, self._wall()), now)

    # -- from the media engine -------------------------------------------------------------
    def on_digit(self, call: Call, digit: str, now: float) -> None:
        hosted = self.calls.get(call.id)
        if hosted is not None and hosted.queue is not None and hosted.agent is None:
            queue = self._queues.get(hosted.queue)
            if queue is not None and queue.callback_key == digit:
                self._callback_from_queue(hosted, now)
                return
        if hosted is not None and hosted.run is not None and hosted.agent is None:
            self._apply(hosted, hosted.run.on_digit(digit, now, self._wall()), now)

    def on_play_done(self, call: Call, play_id: int, now: float) -> None:
        hosted = self.calls.get(call.id)
        if hosted is None:
            return
        if play_id == _FEATURE_PLAY_ID:
            self.b2bua.hang_up(call, now, cause="feature-code", reason="Feature Code Done")
        elif play_id == _CALLBACK_PLAY_ID:
            self.b2bua.hang_up(call, now, cause="callback-requested", reason="Callback Requested")
        elif play_id == _ANNOUNCE_PLAY_ID and hosted.queue is not None and hosted.moh:
            self._play(call, hosted.moh, _HOLD_PLAY_ID, loop=True)
        elif hosted.run is not None and play_id >= 0:
            self._apply(hosted, hosted.run.on_play_done(play_id, now, self._wall()), now)

    # -- from the B2BUA: the agent legs ------------------------------------------------------
    def on_ring_answered(self, call: Call, ring: Any, now: float) -> bool:
        """An agent's phone answered; False when the center no longer wants it (the
        ring was cancelled meanwhile: a newer ring to the same agent is a different one)."""
        hosted = self.calls.get(call.id)
        agent_id = ring.agent_id
        if hosted is None or hosted.rings.get(agent_id) is not ring:
            return False
        if hosted.job is not None:
            return self._callback_answered(hosted, ring, now)
        if agent_id and not self.center.ring_answered(call.id, agent_id, now):
            return False
        hosted.rings.pop(agent_id, None)
        hosted.agent = agent_id
        hosted.queue = None
        self.b2bua.media.stop_play(call.a.media)
        self._drain_center(now)
        if hosted.run is not None:
            self._apply(hosted, hosted.run.on_queue_result("answered", now, self._wall()), now)
        return True

    def keeps_caller(self, call: Call) -> bool:
        """Whether the caller stays on when the agent hangs up (the queue node has an
        ``after_call``, e.g. a survey)."""
        hosted = self.calls.get(call.id)
        if hosted is None or hosted.run is None or not hosted.agent:
            return False
        node = hosted.run.flow.nodes.get(hosted.run.node)
        return getattr(node, "after_call", None) is not None

    def on_transferred(self, call: Call, now: float) -> None:
        """The agent transferred the caller away: the agent is free (wrap-up)."""
        hosted = self.calls.get(call.id)
        if hosted is not None and hosted.agent:
            self.center.call_ended(call.id, now)
            hosted.agent = None
            self._drain_center(now)

    def on_agent_left(self, call: Call, now: float) -> None:
        hosted = self.calls.get(call.id)
        if hosted is None or hosted.run is None:
            return
        if hosted.agent:
            self.center.call_ended(call.id, now)
            hosted.agent = None
        self._drain_center(now)
        self._apply(hosted, hosted.run.on_queue_result("completed", now, self._wall()), now)

    def on_ring_failed(self, call: Call, ring: Any, status: int, now: float) -> None:
        """A ring ended without an answer. A ring the center already cancelled (its 487)
        is not news to the center, and must not be taken for a newer ring to the same
        agent."""
        hosted = self.calls.get(call.id)
        agent_id = ring.agent_id
        if hosted is not None and hosted.job is not None:
            self._callback_ring_failed(hosted, ring, status, now)
            return
        if hosted is None or hosted.rings.get(agent_id) is not ring:
            return
        del hosted.rings[agent_id]
        if not agent_id:  # a transfer target that did not answer
            self.b2bua.hang_up(call, now, cause="transfer-failed", reason="Transfer Failed")
            return
        reason = "busy" if status in (486, 600) else "no-answer"
        self.center.ring_failed(call.id, agent_id, now, reason)
        self._drain_center(now)

    def on_call_end(self, call: Call, now: float) -> None:
        """The call ended (either side hung up, or the edge did)."""
        hosted = self.calls.pop(call.id, None)
        if hosted is None:
            return
        if hosted.voicemail is not None:  # the caller hung up after speaking: the usual end
            self._finish_voicemail(hosted, now)
        for leg in list(hosted.rings.values()):
            self.b2bua.cancel_ring(call, leg, now)
        job = hosted.job
        if job is not None and not hosted.agent:  # ended while the agent's phone rang
            for agent_id in hosted.rings:
                if job.legs.get(agent_id) is call:
                    del job.legs[agent_id]
                    self.center.ring_failed(job.id, agent_id, now, "ended")
        hosted.rings.clear()
        if hosted.agent:
            self.center.call_ended(hosted.center_id, now)
            if job is not None and job.id in self.callbacks:  # the customer was not reached
                self._retry_or_give_up(job, now)
        elif hosted.queue is not None:
            self.center.abandon(hosted.center_id, now)
        # what the center asks now (ring the next caller ...) is carried out by drain(),
        # which the B2BUA calls once this call's media ports are released

    # -- timers -----------------------------------------------------------------------------
    def get_timer(self) -> float | None:
        while self._timers and self._timers[0][1] not in self.calls:
            heapq.heappop(self._timers)
        deadlines = [t for t in (self._timers[0][0] if self._timers else None, self.center.get_timer()) if t is not None]
        deadlines += [h.voicemail[2] for h in self.calls.values() if h.voicemail is not None]
        deadlines += [heap[0][0] for heap in (self._retries, self._customer_rings) if heap]
        return min(deadlines) if deadlines else None

    def handle_timer(self, now: float) -> None:
        self.center.handle_timer(now)
        self._drain_center(now)
        while self._retries and self._retries[0][0] <= now:
            job = self.callbacks.get(heapq.heappop(self._retries)[1])
            if job is not None:
                self._queue_callback(job, now, count=False)
        while self._customer_rings and self._customer_rings[0][0] <= now:
            ringing = self.calls.get(heapq.heappop(self._customer_rings)[1])
            ring = ringing.rings.get(_CUSTOMER) if ringing is not None else None
            if ringing is not None and ring is not None:
                self.b2bua.cancel_ring(ringing.call, ring, now)  # its 487: no answer
        for recording in [h for h in self.calls.values() if h.voicemail and h.voicemail[2] <= now]:
            self._finish_voicemail(recording, now)  # the longest message allowed
            if recording.run is not None:
                self._apply(recording, recording.run.on_record_done(now, self._wall()), now)
        while self._timers and self._timers[0][0] <= now:
            _, call_id = heapq.heappop(self._timers)
            hosted = self.calls.get(call_id)
            if hosted is not None and hosted.run is not None:
                deadline = hosted.run.get_timer()
                if deadline is not None and deadline <= now:
                    self._apply(hosted, hosted.run.handle_timer(now, self._wall()), now)
                elif deadline is not None:
                    heapq.heappush(self._timers, (deadline, call_id))

    # -- carrying out actions -------------------------------------------------------------------
    def _wall(self) -> datetime:
        return datetime.fromtimestamp(self.wall(), self.zone)

    def _announcement(self, position: int, ewt_s: float | None) -> bytes:
        """"You are caller number 3. Your estimated wait is about 2 minutes." from the
        prompt set's pieces; the plain queue prompt when a piece is missing."""
        p = self.prompts
        try:
            audio = p["position_is"] + b"".join(p[f"digit_{d}"] for d in str(position))
            if ewt_s is not None:
                minutes = max(1, -int(-ewt_s // 60))  # rounded up: never promise too little
                audio += p["wait_about"] + b"".join(p[f"digit_{d}"] for d in str(minutes)) + p["minutes"]
            return bytes(audio)
        except KeyError:
            return bytes(p["queue_position"])

    def _play(self, call: Call, prompt: str, play_id: int, *, loop: bool) -> None:
        self.b2bua.media.play(call.a.media, self.prompts[prompt], loop=loop, play_id=play_id)

    def _apply(self, hosted: HostedCall, actions: list[Any], now: float) -> None:
        call = hosted.call
        for action in actions:
            if isinstance(action, ivr.Play):
                self._play(call, action.prompt, action.play_id, loop=action.loop)
            elif isinstance(action, ivr.StopPlay):
                self.b2bua.media.stop_play(call.a.media)
            elif isinstance(action, ivr.EnterQueue):
                self._enter_queue(hosted, action, now)
            elif isinstance(action, ivr.Hangup):
                self.b2bua.hang_up(call, now, cause=f"ivr-{action.cause}", reason="IVR Hangup")
            elif isinstance(action, ivr.Transfer):
                self._transfer(hosted, action.target, now)
            elif isinstance(action, ivr.StartLookup):
                if self.http_lookup is None:
                    self._not_yet(hosted, "http lookup")
                    self._apply(hosted, hosted.run.on_lookup_result(None, now, self._wall()), now)  # type: ignore[union-attr]
                else:
                    done = functools.partial(self._lookup_done, call.id)
                    self.http_lookup(action.url, action.timeout_s, done)
            elif isinstance(action, ivr.RecordVoicemail):
                self.b2bua.media.record(call.a.media, True)
                hosted.voicemail = (action.mailbox, self.wall(), now + action.max_s, action.notify)
            elif isinstance(action, ivr.SurveyResult):
                self._survey(hosted, action, now)
            elif isinstance(action, ivr.StartCallback):
                job = CallbackJob(f"cb-{call.id}", action.queue, action.number)
                self.callbacks[job.id] = job
                self._queue_callback(job, now, count=True)
        if hosted.run is not None and call.id in self.calls:
            deadline = hosted.run.get_timer()
            if deadline is not None:
                heapq.heappush(self._timers, (deadline, call.id))

    def _lookup_done(self, call_id: str, result: dict[str, Any] | None, now: float) -> None:
        """An http lookup answered; too late (the flow timed out, the caller left) is ignored."""
        hosted = self.calls.get(call_id)
        if hosted is None or hosted.run is None or hosted.run.phase is not ivr.Phase.LOOKUP:
            return
        self._apply(hosted, hosted.run.on_lookup_result(result, now, self._wall()), now)

    def _finish_voicemail(self, hosted: HostedCall, now: float) -> None:
        """Take the recorded message off the caller's leg; the daemon writes the file."""
        assert hosted.voicemail is not None
        mailbox, started, _, notify = hosted.voicemail
        hosted.voicemail = None
        media = self.b2bua.media
        pcm = media.take_recording(hosted.call.a.media)
        media.record(hosted.call.a.media, False)
        if pcm:
            self.b2bua.records.append(
                VoicemailMessage(hosted.call.id, mailbox, hosted.call.from_number, started, pcm)
            )
            self.waiting[mailbox] = self.waiting.get(mailbox, 0) + 1
            if notify is not None:
                for binding in self.registrar.lookup(notify, self.wall()):
                    self.b2bua.message_waiting(binding, mailbox, self.waiting[mailbox], now)

    def _survey(self, hosted: HostedCall, result: ivr.SurveyResult, now: float) -> None:
        """A rating: on the CDR; a low one also opens a follow-up task, due in 24 h."""
        call = hosted.call
        call.survey_score = result.score
        if result.low:
            created = self.wall()
            self.b2bua.records.append(
                TaskRow(
                    kind="survey-followup", call_id=call.id, caller=call.from_number,
                    detail=f"survey score {result.score}", created_at=created,
                    due_at=created + FOLLOW_UP_WITHIN_S,
                )
            )

    def _not_yet(self, hosted: HostedCall, what: str) -> None:
        note = f"call {hosted.call.id}: {what} is not carried out yet"
        log.warning(note)
        self.notes.append(note)

    def _enter_queue(self, hosted: HostedCall, action: ivr.EnterQueue, now: float) -> None:
        call = hosted.call
        queue = self._queues[action.queue]
        hosted.queue = call.queue = action.queue
        hosted.entry = (action.priority, tuple(action.skills))
        hosted.moh = queue.moh or "please_hold"
        self._play(call, hosted.moh, _HOLD_PLAY_ID, loop=True)
        self.center.enqueue(
            call.id, action.queue, priority=action.priority, skills=action.skills,
            caller=call.from_number, now=now,
        )
        self._drain_center(now)

    def _transfer(self, hosted: HostedCall, number: str, now: float) -> None:
        """Ring ``number`` (a phone, or out by a trunk the mode allows) for the caller."""
        target = self._reach(number)
        if target is None:
            self.b2bua.hang_up(hosted.call, now, cause="transfer-failed", reason="Transfer Failed")
            return
        try:
            hosted.rings[""] = self.b2bua.offer_leg(hosted.call, target, "", now)
        except MediaError as exc:
            self._out_of_ports(hosted, exc, now)

    def _out_of_ports(self, hosted: HostedCall, exc: Exception, now: float) -> None:
        """No RTP port for a second leg: the caller is let go with a cause that says so
        (the queue sees an abandoned call and frees the agent it was about to ring); an
        overloaded edge must not stall its timers on one call."""
        log.warning("call %s: no media port for the next leg: %s", hosted.call.id, exc)
        self.b2bua.hang_up(hosted.call, now, cause="no-media-ports", reason="Out Of Media Ports")

    def drain(self, now: float) -> None:
        """Carry out what the contact center asks after an outside change (an agent
        paused or logged in through the local API)."""
        self._drain_center(now)

    def _drain_center(self, now: float) -> None:
        """Carry out the center's actions, until what we do makes it ask for no more."""
        while actions := self.center.take_actions():
            for action in actions:
                self._center_action(action, now)
        if self.pending_center is not None:
            self._swap_center_when_idle(now)

    def _center_action(self, action: Any, now: float) -> None:
        job = self.callbacks.get(getattr(action, "call_id", ""))
        if job is not None:
            self._callback_action(job, action, now)
            return
        hosted = self.calls.get(getattr(action, "call_id", ""))
        if isinstance(action, acd.RingAgent) and hosted is not None:
            bindings = self.registrar.lookup(action.extension, self.wall())
            if not bindings:
                self.center.ring_failed(action.call_id, action.agent_id, now, "unregistered")
                return
            try:
                hosted.rings[action.agent_id] = self.b2bua.offer_leg(
                    hosted.call, bindings[0], action.agent_id, now
                )
            except MediaError as exc:  # out of RTP ports: the caller cannot be served now
                self._out_of_ports(hosted, exc, now)
        elif isinstance(action, acd.CancelRing) and hosted is not None:
            leg = hosted.rings.pop(action.agent_id, None)
            if leg is not None:
                self.b2bua.cancel_ring(hosted.call, leg, now)
        elif isinstance(action, acd.Announce) and hosted is not None:
            self.b2bua.media.play(
                hosted.call.a.media, self._announcement(action.position, action.ewt_s),
                loop=False, play_id=_ANNOUNCE_PLAY_ID,
            )  # fmt: skip
        elif isinstance(action, acd.Overflow | acd.Reject) and hosted is not None:
            if isinstance(action, acd.Overflow) and action.kind == "queue":
                hosted.queue = hosted.call.queue = action.target  # moved by the center; keeps waiting
                return
            hosted.queue = None
            if isinstance(action, acd.Overflow) and action.kind == "number":
                # e.g. a central queue over the WAN; in survivable mode (or with nowhere
                # to go) the flow's overflow branch is the local alternative
                target = self._reach(action.target)
                if target is not None:
                    self.b2bua.media.stop_play(hosted.call.a.media)
                    self._transfer(hosted, action.target, now)
                    return
                log.info("call %s: overflow to %s not reachable now: the flow's own way", hosted.call.id, action.target)
            if hosted.run is not None:
                self.b2bua.media.stop_play(hosted.call.a.media)
                self._apply(hosted, hosted.run.on_queue_result("overflow", now, self._wall()), now)
        elif isinstance(action, acd.AgentStateChanged | acd.AutoPaused):
            log.info("agent: %s", action)
            if isinstance(action, acd.AgentStateChanged) and self.on_agent_change is not None:
                self.on_agent_change(action, now)

    # -- callbacks ------------------------------------------------------------------------
    def _callback_from_queue(self, hosted: HostedCall, now: float) -> None:
        """The waiting caller pressed the callback key: keep the place, say so, hang up."""
        call = hosted.call
        assert hosted.queue is not None
        job = CallbackJob(call.id, hosted.queue, call.from_number, *hosted.entry)
        self.callbacks[job.id] = job
        hosted.queue = None  # no longer this caller's wait: hanging up is not abandoning
        for agent_id, ring in list(hosted.rings.items()):
            self.b2bua.cancel_ring(call, ring, now)
            del hosted.rings[agent_id]
        self.center.to_callback(job.id, now)
        log.info("call %s: callback requested for %s in %s", call.id, job.number, job.queue)
        self._play(call, "callback_confirm", _CALLBACK_PLAY_ID, loop=False)
        self._drain_center(now)

    def _queue_callback(self, job: CallbackJob, now: float, *, count: bool) -> None:
        if job.queue not in self._queues:  # the queue went away with a new config
            self._give_up(job, f"queue {job.queue} no longer exists")
            return
        self.center.enqueue(
            job.id, job.queue, priority=job.priority, skills=job.skills, caller=job.number,
            callback=True, count=count, now=now,
        )  # fmt: skip
        self._drain_center(now)

    def _callback_action(self, job: CallbackJob, action: Any, now: float) -> None:
        if isinstance(action, acd.RingAgent):
            bindings = self.registrar.lookup(action.extension, self.wall())
            if not bindings:
                self.center.ring_failed(job.id, action.agent_id, now, "unregistered")
                return
            try:
                call = self.b2bua.originate(
                    bindings[0], from_number=job.number, to_number=action.extension,
                    destination=f"callback:{job.queue}", agent_id=action.agent_id, now=now,
                )  # fmt: skip
            except MediaError as exc:  # out of RTP ports: give the turn back, try again soon
                log.warning("callback %s: no media port to ring %s: %s", job.id, action.agent_id, exc)
                self.center.abandon(job.id, now)
                heapq.heappush(self._retries, (now + 5.0, job.id))
                return
            call.queue = job.queue
            hosted = HostedCall(call, None, job=job)
            hosted.rings[action.agent_id] = next(iter(call.rings.values()))
            self.calls[call.id] = hosted
            job.legs[action.agent_id] = call
        elif isinstance(action, acd.CancelRing):
            ringing = job.legs.pop(action.agent_id, None)
            leg_call = self.calls.get(ringing.id) if ringing is not None else None
            ring = leg_call.rings.pop(action.agent_id, None) if leg_call is not None else None
            if leg_call is not None and ring is not None:
                self.b2bua.cancel_ring(leg_call.call, ring, now)  # its 487 ends that call
        elif isinstance(action, acd.Overflow | acd.Reject):
            log.warning("callback %s: the queue gave it up (%s)", job.id, action)

    def _callback_answered(self, hosted: HostedCall, ring: Any, now: float) -> bool:
        """A callback's agent answered (ring customer next), or its customer did."""
        job, call = hosted.job, hosted.call
        assert job is not None
        if ring.agent_id == _CUSTOMER:
            del hosted.rings[_CUSTOMER]
            self.b2bua.media.stop_play(call.a.media)
            self.callbacks.pop(job.id, None)
            log.info("callback %s: %s reached on attempt %d", job.id, job.number, job.attempts)
            return True
        agent_id = ring.agent_id
        del hosted.rings[agent_id]
        if job.legs.get(agent_id) is call:
            del job.legs[agent_id]
        if not self.center.ring_answered(job.id, agent_id, now):
            self._drain_center(now)
            return False
        hosted.agent = agent_id
        job.attempts += 1
        target = self._reach(job.number)
        if target is None:
            log.warning("callback %s: %s cannot be reached", job.id, job.number)
            self.b2bua.hang_up(call, now, cause="callback-unroutable", reason="Customer Unreachable")
        else:
            self._play(call, "please_hold", _HOLD_PLAY_ID, loop=True)  # while the customer rings
            try:
                hosted.rings[_CUSTOMER] = self.b2bua.offer_leg(call, target, _CUSTOMER, now)
            except MediaError as exc:
                self._out_of_ports(hosted, exc, now)
                self._drain_center(now)
                return True  # ended here: nothing left for the B2BUA to do
            ring_s = self._queues[job.queue].callback_ring_s if job.queue in self._queues else 30.0
            heapq.heappush(self._customer_rings, (now + ring_s, call.id))
        self._drain_center(now)
        return True  # answered and dealt with (or ended here, hung up already)

    def _callback_ring_failed(self, hosted: HostedCall, ring: Any, status: int, now: float) -> None:
        job, call = hosted.job, hosted.call
        assert job is not None
        mine = hosted.rings.get(ring.agent_id) is ring
        if mine:
            del hosted.rings[ring.agent_id]
        if ring.agent_id == _CUSTOMER:
            if mine:  # the agent hears the outcome as a hang-up; on_call_end retries
                self.b2bua.hang_up(call, now, cause="callback-no-answer", reason="Customer Did Not Answer")
            return
        if job.legs.get(ring.agent_id) is call:
            del job.legs[ring.agent_id]
        reason = "busy" if status in (486, 600) else "no-answer"
        if mine:
            self.center.ring_failed(job.id, ring.agent_id, now, reason)
        self.b2bua.end_unanswered(call, status, now, cause=f"callback-agent-{reason}")
        self._drain_center(now)

    def _retry_or_give_up(self, job: CallbackJob, now: float) -> None:
        queue = self._queues.get(job.queue)
        if queue is None or job.attempts >= queue.callback_attempts:
            self._give_up(job, f"no answer after {job.attempts} call(s)")
            return
        heapq.heappush(self._retries, (now + queue.callback_retry_s, job.id))

    def _give_up(self, job: CallbackJob, why: str) -> None:
        """The customer could not be reached: a supervisor takes it from here."""
        self.callbacks.pop(job.id, None)
        log.info("callback %s for %s given up: %s", job.id, job.number, why)
        created = self.wall()
        self.b2bua.records.append(
            TaskRow(
                kind="callback-failed", call_id=job.id, caller=job.number,
                detail=f"callback in {job.queue}: {why}", created_at=created,
                due_at=created + FOLLOW_UP_WITHIN_S,
            )
        )  # fmt: skip

    def _reach(self, number: str) -> Any:
        """Where a call to ``number`` goes: a registered phone or a trunk; None if nowhere."""
        target = self.dial_plan.route(number)
        if isinstance(target, ExtensionTarget):
            bindings = self.registrar.lookup(target.number, self.wall())
            return bindings[0] if bindings else None
        if isinstance(target, TrunkTarget) and self.trunk_attempts is not None:
            attempts = self.trunk_attempts(target)
            if attempts:
                a = attempts[0]
                return Reach(a.uri, a.addr, a.transport)
        return None

    # -- a new config -------------------------------------------------------------------------
    def reconfigure(self, config: SiteConfig, now: float) -> None:
        """Take a new (validated) config: flows, prompts' names, queues and agents.

        Calls in progress keep the flow run they have. The contact center is rebuilt
        only if its queues, agents or feature codes changed, and only once it is idle."""
        old = self.config
        self.config = config
        self.zone = ZoneInfo(config.site.timezone)
        same_center = (old.queues, old.agents, old.feature_codes) == (
            config.queues, config.agents, config.feature_codes,
        )  # fmt: skip
        if same_center:
            self.pending_center = None
            self._queues = {q.name: q for q in config.queues}
            return
        self.pending_center = config
        self._swap_center_when_idle(now)

    def _swap_center_when_idle(self, now: float) -> None:
        config = self.pending_center
        if config is None or not self.center.is_idle() or self.callbacks:
            return
        self.pending_center = None
        logged_in = self.center.logged_in()
        center = acd.ContactCenter(config.queues, config.agents, feature_codes=config.feature_codes)
        agents = {a.id for a in config.agents}
        for agent_id, (extension, pause) in logged_in.items():
            if agent_id in agents:
                center.agent_login(agent_id, extension, now)
                if pause is not None:
                    center.agent_pause(agent_id, pause, now)
        center.take_actions()  # the re-logins are not news
        self.center = center
        self._queues = {q.name: q for q in config.queues}
        log.info("contact center rebuilt: %d queues, %d agents", len(config.queues), len(config.agents))
