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

What a flow may ask that is not carried out yet (said in the log): callbacks.
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
from edge_core.routing.dialplan import ExtensionTarget
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
    voicemail: tuple[str, float, float] | None = None
    """(mailbox, wall time it started, monotonic deadline) while a message is recorded."""


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
        if hosted is not None and hosted.run is not None and hosted.agent is None:
            self._apply(hosted, hosted.run.on_digit(digit, now, self._wall()), now)

    def on_play_done(self, call: Call, play_id: int, now: float) -> None:
        hosted = self.calls.get(call.id)
        if hosted is None:
            return
        if play_id == _FEATURE_PLAY_ID:
            self.b2bua.hang_up(call, now, cause="feature-code", reason="Feature Code Done")
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
            self._finish_voicemail(hosted)
        for leg in list(hosted.rings.values()):
            self.b2bua.cancel_ring(call, leg, now)
        hosted.rings.clear()
        if hosted.agent:
            self.center.call_ended(call.id, now)
        elif hosted.queue is not None:
            self.center.abandon(call.id, now)
        self._drain_center(now)

    # -- timers -----------------------------------------------------------------------------
    def get_timer(self) -> float | None:
        while self._timers and self._timers[0][1] not in self.calls:
            heapq.heappop(self._timers)
        deadlines = [t for t in (self._timers[0][0] if self._timers else None, self.center.get_timer()) if t is not None]
        deadlines += [h.voicemail[2] for h in self.calls.values() if h.voicemail is not None]
        return min(deadlines) if deadlines else None

    def handle_timer(self, now: float) -> None:
        self.center.handle_timer(now)
        self._drain_center(now)
        for recording in [h for h in self.calls.values() if h.voicemail and h.voicemail[2] <= now]:
            self._finish_voicemail(recording)  # the longest message allowed
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
                hosted.voicemail = (action.mailbox, self.wall(), now + action.max_s)
            elif isinstance(action, ivr.SurveyResult):
                self._survey(hosted, action, now)
            elif isinstance(action, ivr.StartCallback):
                self._not_yet(hosted, "callback")
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

    def _finish_voicemail(self, hosted: HostedCall) -> None:
        """Take the recorded message off the caller's leg; the daemon writes the file."""
        assert hosted.voicemail is not None
        mailbox, started, _ = hosted.voicemail
        hosted.voicemail = None
        media = self.b2bua.media
        pcm = media.take_recording(hosted.call.a.media)
        media.record(hosted.call.a.media, False)
        if pcm:
            self.b2bua.records.append(
                VoicemailMessage(hosted.call.id, mailbox, hosted.call.from_number, started, pcm)
            )

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
        hosted.queue = action.queue
        hosted.moh = queue.moh or "please_hold"
        self._play(call, hosted.moh, _HOLD_PLAY_ID, loop=True)
        self.center.enqueue(
            call.id, action.queue, priority=action.priority, skills=action.skills,
            caller=call.from_number, now=now,
        )
        self._drain_center(now)

    def _transfer(self, hosted: HostedCall, number: str, now: float) -> None:
        target = self.dial_plan.route(number)
        bindings = self.registrar.lookup(target.number, self.wall()) if isinstance(target, ExtensionTarget) else []
        if not bindings:
            self.b2bua.hang_up(hosted.call, now, cause="transfer-failed", reason="Transfer Failed")
            return
        hosted.rings[""] = self.b2bua.offer_leg(hosted.call, bindings[0], "", now)

    def drain(self, now: float) -> None:
        """Carry out what the contact center asks after an outside change (an agent
        paused or logged in through the local API)."""
        self._drain_center(now)

    def _drain_center(self, now: float) -> None:
        """Carry out the center's actions, until what we do makes it ask for no more."""
        while actions := self.center.take_actions():
            for action in actions:
                self._center_action(action, now)

    def _center_action(self, action: Any, now: float) -> None:
        hosted = self.calls.get(getattr(action, "call_id", ""))
        if isinstance(action, acd.RingAgent) and hosted is not None:
            bindings = self.registrar.lookup(action.extension, self.wall())
            if not bindings:
                self.center.ring_failed(action.call_id, action.agent_id, now, "unregistered")
                return
            hosted.rings[action.agent_id] = self.b2bua.offer_leg(
                hosted.call, bindings[0], action.agent_id, now
            )
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
                hosted.queue = action.target  # moved by the center; keeps waiting
                return
            hosted.queue = None
            if hosted.run is not None:
                self.b2bua.media.stop_play(hosted.call.a.media)
                self._apply(hosted, hosted.run.on_queue_result("overflow", now, self._wall()), now)
        elif isinstance(action, acd.AgentStateChanged | acd.AutoPaused):
            log.info("agent: %s", action)
            if isinstance(action, acd.AgentStateChanged) and self.on_agent_change is not None:
                self.on_agent_change(action, now)
