"""What the local control API sees of the running edge, and what it may do to it.

:class:`EdgeView` reads the daemon's live objects (the SIP core with its registrar,
B2BUA and contact center, the SIP endpoint's counters, the media relay) and returns
plain JSON-able dicts; its few actions (agent pause/unpause/login/logout, hang up a
call) run on the daemon's loop with the same ``now`` the SIP stack uses, then step the
endpoint so what they caused (a CANCEL to a ringing agent, a BYE) goes out at once.
Refusals are :class:`ApiError` with an HTTP status and a reason a person can act on.

It also carries the event stream: :meth:`EdgeView.publish` fans a dict out to every
:meth:`EdgeView.subscribe`-r through a bounded :class:`EventQueue`; a subscriber too
slow to keep up loses the oldest events and reads an ``overflow`` marker in their place.

Times: the contact center and the B2BUA timers run on the loop's clock
(``endpoint.loop.time()``); call start/answer and binding expiry are wall-clock epoch
seconds, shown both as epoch and as ISO 8601 in the site's time zone.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import importlib.metadata
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import asdict
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import cython_ext
from edge_core.acd.center import AcdError, AgentStateChanged, IllegalTransition
from edge_core.sip.call import CallState
from edge_core.sip.records import leg_mos
from edge_core.sip.registrar import BindingChange
from edge_core.store.db import CdrRow

__all__ = ["ApiError", "EdgeView", "EventQueue", "AGENT_ACTIONS"]

AGENT_ACTIONS = ("pause", "unpause", "logout", "login")
DEFAULT_PAUSE_REASON = "break"


class ApiError(Exception):
    """A request the edge refuses: ``status`` is the HTTP status, ``message`` the reason,
    ``field`` the request field at fault (when one is)."""

    def __init__(self, status: int, message: str, field: str | None = None,
                 detail: list[dict[str, str]] | None = None) -> None:  # fmt: skip
        super().__init__(message)
        self.status = status
        self.message = message
        self.field = field
        self.detail = detail
        """Every bad field (``{"field", "message"}``) when there are several."""


class EventQueue(asyncio.Queue[dict[str, Any]]):
    """A subscriber's events, at most ``limit`` of them plus one ``overflow`` marker.

    :meth:`offer` never blocks: when the queue is full the oldest event is dropped and
    counted in a marker ``{"type": "overflow", "lost": n}`` kept at the head, where the
    lost events were, so the reader learns about the gap before reading past it.
    """

    def __init__(self, limit: int) -> None:
        super().__init__()  # unbounded for asyncio; the bound is enforced by offer()
        self.limit = max(1, limit)
        self.lost = 0
        """Events dropped for this subscriber since it subscribed."""
        self._marker: dict[str, Any] | None = None

    def _init(self, maxsize: int) -> None:
        self._queue: collections.deque[dict[str, Any]] = collections.deque()

    def _get(self) -> dict[str, Any]:
        item = self._queue.popleft()
        if item is self._marker:
            self._marker = None
        return item

    def offer(self, event: dict[str, Any]) -> None:
        events = len(self._queue) - (self._marker is not None)
        if events >= self.limit:
            if self._marker is None:
                self._marker = {"type": "overflow", "lost": 0}
                self._queue.appendleft(self._marker)
            del self._queue[1]  # the oldest event, just behind the marker
            self._marker["lost"] += 1
            self.lost += 1
        self.put_nowait(event)


class EdgeView:
    """A read/act façade over the running daemon's objects (see the module docstring)."""

    def __init__(
        self,
        config: Any,
        core: Any,
        endpoint: Any,
        media: Any,
        started_at: float,
        *,
        wall: Callable[[], float] = time.time,
        queue_limit: int = 1000,
    ) -> None:
        self.config = config
        self.core = core
        self.endpoint = endpoint
        self.media = media
        self.started_at = started_at
        """Wall-clock epoch seconds the daemon started."""
        self.wall = wall
        self.queue_limit = queue_limit
        self.zone = ZoneInfo(config.site.timezone)
        try:
            self.version = importlib.metadata.version("branchline")
        except importlib.metadata.PackageNotFoundError:  # running from a bare checkout
            self.version = "unknown"
        self._extensions = {e.number: e for e in config.extensions}
        self._agents = {a.id: a for a in config.agents}
        self._subscribers: set[EventQueue] = set()
        self._closed = False
        self._seq = 0
        # agent id -> (state, loop time it was first seen in it): exact when the daemon
        # reports changes (agent_changed), else observed at each read and tick
        self._since: dict[str, tuple[str, float]] = {}
        self._announced: set[str] = set()  # call ids a call_started event went out for
        self.config_control: Any = None
        """The daemon (``reconfigure``, ``config_info``); None: config is read-only here."""

    def reconfigure(self, config: Any) -> None:
        """A new site config was applied: read extensions and agents from it."""
        self.config = config
        self.zone = ZoneInfo(config.site.timezone)
        self._extensions = {e.number: e for e in config.extensions}
        self._agents = {a.id: a for a in config.agents}
        for agent_id in list(self._since):
            if agent_id not in self._agents:
                del self._since[agent_id]

    # -- clocks and formatting -------------------------------------------------------
    def _now(self) -> float:
        return float(self.endpoint.loop.time())

    def _iso(self, epoch: float | None) -> str | None:
        if epoch is None:
            return None
        return datetime.fromtimestamp(epoch, self.zone).isoformat(timespec="milliseconds")

    @property
    def center(self) -> Any:
        return self.core.hosted.center

    # -- reading ---------------------------------------------------------------------
    def status(self) -> dict[str, Any]:
        wall = self.wall()
        queues = self.center.queue_live(self._now())
        return {
            "site": {
                "id": self.config.site.id,
                "name": self.config.site.name,
                "timezone": self.config.site.timezone,
            },
            "version": self.version,
            "started": self._iso(self.started_at),
            "uptime_s": round(max(0.0, wall - self.started_at), 3),
            "accepting_calls": bool(getattr(self.endpoint, "accepting_new", True)),
            "maintenance": bool(getattr(self.config_control, "maintenance", False)),
            "kernels": cython_ext.implementations(),
            "media": dict(self.media.stats()),
            "acd_matcher": self.center.matcher_implementation,
            "mode": self.mode(),
            "counts": self._counts(wall, queues),
            "sip": {
                "transport": dict(sorted(self.endpoint.counters.items())),
                "core": dict(sorted(self.core.counters.items())),
            },
        }

    def mode(self) -> dict[str, Any]:
        """NORMAL or SURVIVABLE, since when (wall clock), why, and the drill if any."""
        wan = self.core.wan
        offset = self.wall() - self._now()  # loop clock -> wall clock
        return {
            "mode": wan.mode.value,
            "since": self._iso(wan.since + offset),
            "for_s": round(self._now() - wan.since, 3),
            "wan_up": wan.wan_up(),
            "drill_until": self._iso(wan.drill_until + offset) if wan.drill_until is not None else None,
        }

    def trunks(self) -> dict[str, Any]:
        """Every trunk's health: keepalive state, last RTT, failures, calls on it."""
        offset = self.wall() - self._now()
        busy: dict[str, int] = {}
        for call in self.core.b2bua.calls.values():
            if call.trunk:
                busy[call.trunk] = busy.get(call.trunk, 0) + 1
        out = []
        for name, s in self.core.trunks.trunks.items():
            t = s.config
            out.append({
                "name": name, "kind": t.kind, "host": t.host, "port": t.port, "transport": t.transport,
                "up": s.up, "since": self._iso(s.since + offset),
                "keepalive_s": t.keepalive_s or None,
                "rtt_ms": None if s.rtt_ms is None else round(s.rtt_ms, 2),
                "failures": s.failures, "last_status": s.last_status,
                "last_probe": None if s.last_probe_at is None else self._iso(s.last_probe_at + offset),
                "calls": busy.get(name, 0), "max_calls": t.max_calls or None,
                "registration": self._registration(name, offset),
            })  # fmt: skip
        return {"mode": self.mode(), "trunks": out}

    def set_maintenance(self, on: bool, reason: str) -> dict[str, Any]:
        """Maintenance mode through the daemon (the fleet's command does the same)."""
        if self.config_control is None or not hasattr(self.config_control, "set_maintenance"):
            raise ApiError(503, "this edge has no maintenance control")
        self.config_control.set_maintenance(on, reason)
        self.publish({"type": "maintenance", "on": on, "reason": reason})
        return {"maintenance": on, "reason": reason, "accepting_calls": bool(self.endpoint.accepting_new)}

    def _registration(self, trunk: str, offset: float) -> dict[str, Any] | None:
        reg = self.core.registrations.registrations.get(trunk)
        if reg is None:
            return None
        expires = None if reg.expires_at is None else self._iso(reg.expires_at + offset)
        return {"state": reg.state, "expires": expires, "reason": reg.reason or None}

    def drill(self, seconds: float | None) -> dict[str, Any]:
        """Start (``seconds``) or end (None) the survivable drill."""
        self.core.drill(seconds, self._now())
        self.endpoint.step()  # re-arm the timer: the drill's end is a deadline of the core
        return self.mode()

    def routing_changed(self, event: Any) -> None:
        """A trunk went up or down, or the mode changed: tell the event stream."""
        from edge_core.routing.trunks import TrunkChanged

        if isinstance(event, TrunkChanged):
            self.publish({"type": "trunk", "trunk": event.trunk, "kind": event.kind,
                          "up": event.up, "cause": event.cause})  # fmt: skip
        else:
            self.publish({"type": "mode", "old": event.old.value, "new": event.new.value,
                          "cause": event.cause, "previous_s": round(event.previous_s, 3)})  # fmt: skip

    def _counts(self, wall: float, queues: dict[str, Any]) -> dict[str, Any]:
        agents = self._observe_agents(self._now())
        return {
            "registrations": self.core.registrar.count(wall),
            "calls_active": len(self.core.b2bua.calls),
            "calls_waiting": sum(q.waiting for q in queues.values()),
            "agents": dict(Counter(state for state, _ in agents.values())),
        }

    def calls(self) -> dict[str, Any]:
        wall = self.wall()
        hosted = self.core.hosted.calls
        out = []
        for call in list(self.core.b2bua.calls.values()):
            h = hosted.get(call.id)
            legs = [("a", call.a), ("b", call.b)]
            for _, leg in legs:  # live counters: loss, jitter and MOS as of now
                if leg is not None and leg.media is not None and hasattr(self.media, "refresh"):
                    with contextlib.suppress(Exception):  # released meanwhile: last counters stand
                        self.media.refresh(leg.media)
            scores = [m for _, leg in legs if leg is not None and (m := leg_mos(leg.media)) is not None]
            out.append(
                {
                    "id": call.id,
                    "from": call.from_number,
                    "from_uri": call.from_uri,
                    "to": call.to_number,
                    "destination": call.destination,
                    "state": call.state.value,
                    "on_hold": call.on_hold,
                    "hosted": call.hosted,
                    "queue": h.queue if h is not None else None,
                    "agent": h.agent if h is not None else None,
                    "ringing_agents": len(call.rings),
                    "started": self._iso(call.start_time),
                    "started_epoch": call.start_time,
                    "answered": self._iso(call.answer_time),
                    "answered_epoch": call.answer_time,
                    "duration_s": round(max(0.0, wall - call.start_time), 3),
                    "talk_s": round(max(0.0, wall - call.answer_time), 3)
                    if call.answer_time
                    else None,
                    "recording": call.recording is not None,
                    "mos": min(scores) if scores else None,
                    "legs": [_leg(side, leg) for side, leg in legs if leg is not None],
                }
            )
        out.sort(key=lambda c: c["started_epoch"])
        return {"calls": out}

    def registrations(self) -> dict[str, Any]:
        wall = self.wall()
        out = []
        for number, ext in self._extensions.items():
            for b in self.core.registrar.lookup(number, wall):
                out.append(
                    {
                        "extension": number,
                        "name": ext.name,
                        "aor": b.aor,
                        "contact": b.contact,
                        "source": f"{b.transport}:{b.source[0]}:{b.source[1]}",
                        "transport": b.transport,
                        "expires": self._iso(b.expires_at),
                        "expires_in_s": round(max(0.0, b.expires_at - wall), 3),
                        "user_agent": b.user_agent,
                    }
                )
        return {"registrations": out}

    def queues(self) -> dict[str, Any]:
        now = self._now()
        out = []
        for name, live in self.center.queue_live(now).items():
            t = live.totals
            out.append(
                {
                    "name": name,
                    "waiting": live.waiting,
                    "longest_wait_s": round(live.longest_wait_s, 3),
                    "agents": dict(live.agents),
                    "service_level": _round(t.service_level, 4),
                    "asa_s": _round(t.asa_s, 3),
                    "aht_s": _round(t.aht_s, 3),
                    "abandon_rate": _round(t.abandon_rate, 4),
                    "estimated_wait_s": _round(self.center.estimated_wait(name, 1), 3),
                    "totals": {k: _round(v, 3) for k, v in asdict(t).items()},
                }
            )
        return {"queues": out}

    def agents(self) -> dict[str, Any]:
        now = self._now()
        seen = self._observe_agents(now)
        out = []
        for agent_id, live in self.center.agent_live(now).items():
            config = self._agents[agent_id]
            out.append(
                {
                    "id": agent_id,
                    "name": config.name,
                    "home_extension": config.extension,
                    "queues": list(config.queues),
                    "state": live.state,
                    "reason": self.center.pause_reason(agent_id),
                    "time_in_state_s": round(max(0.0, now - seen[agent_id][1]), 3),
                    "calls": live.calls,
                    "talk_s": round(live.talk_s, 3),
                    "wrap_s": round(live.wrap_s, 3),
                    "paused_s": round(live.paused_s, 3),
                    "logged_in_s": round(live.logged_in_s, 3),
                    "occupancy": _round(live.occupancy, 4),
                }
            )
        return {"agents": out}

    def _observe_agents(self, now: float) -> dict[str, tuple[str, float]]:
        """Note each agent's state: one that changed since the last look starts its clock
        now and is published as an ``agent`` event with ``observed: true`` (the fallback
        while the daemon does not report the contact center's changes itself)."""
        for agent_id in self._agents:
            state = self.center.agent_state(agent_id).value
            if self._since.get(agent_id, ("", 0.0))[0] != state:
                old = self._since.get(agent_id)
                self._since[agent_id] = (state, now)
                if old is not None:
                    self.publish({"type": "agent", "agent": agent_id, "old": old[0], "new": state,
                                  "reason": None, "observed": True})  # fmt: skip
        return self._since

    # -- acting ------------------------------------------------------------------------
    def agent_action(
        self, agent_id: str, action: str, *, reason: str | None = None, extension: str | None = None
    ) -> dict[str, Any]:
        """Pause, unpause, log out or log in an agent; returns the agent's new state."""
        if action not in AGENT_ACTIONS:
            raise ApiError(
                400, f"unknown agent action {action!r} (one of {', '.join(AGENT_ACTIONS)})"
            )
        if agent_id not in self._agents:
            raise ApiError(404, f"no agent {agent_id!r} on this site")
        if action == "login" and (extension is None or extension not in self._extensions):
            raise ApiError(422, f"no extension {extension!r} on this site", field="extension")
        now = self._now()
        self._observe_agents(now)
        center = self.center
        try:
            if action == "pause":
                center.agent_pause(agent_id, reason or DEFAULT_PAUSE_REASON, now)
            elif action == "unpause":
                center.agent_unpause(agent_id, now)
            elif action == "logout":
                center.agent_logout(agent_id, now)
            else:
                assert extension is not None
                center.agent_login(agent_id, extension, now)
        except IllegalTransition as exc:
            raise ApiError(409, str(exc)) from None
        except AcdError as exc:  # e.g. another agent is logged in at that extension
            raise ApiError(409, str(exc)) from None
        # ring, cancel rings, send queued calls on: what the center asked for, now
        self.core.hosted.drain(now)  # HostedCalls has no public drain yet
        self.endpoint.step(now)
        self._observe_agents(now)
        state = center.agent_state(agent_id).value
        return {"agent": agent_id, "state": state, "reason": center.pause_reason(agent_id)}

    def hangup(self, call_id: str) -> dict[str, Any]:
        """End an answered call from the edge (BYE both legs, CDR cause ``operator``)."""
        call = self.core.b2bua.calls.get(call_id)
        if call is None:
            raise ApiError(404, f"no active call {call_id!r}")
        if call.state is not CallState.ANSWERED:
            raise ApiError(
                409,
                f"call {call_id!r} is {call.state.value}, not answered: it cannot be hung up yet",
            )
        now = self._now()
        self.core.b2bua.hang_up(call, now, cause="operator", reason="Hung Up By Operator")
        self.endpoint.step(now)
        return {"call": call_id, "state": call.state.value}

    # -- the site config ------------------------------------------------------------------
    def config_info(self) -> dict[str, Any]:
        if self.config_control is None:
            return {"version": None, "origin": "file", "applied_at": None, "pending_restart": [],
                    "config": None}  # fmt: skip
        return dict(self.config_control.config_info())

    async def apply_config(self, data: object) -> dict[str, Any]:
        """Validate and apply a SiteConfig mapping (the daemon's own path, as the fleet's
        configs take); 422 with every bad field's path, and nothing changes."""
        from edge_core.config.schema import ConfigError

        if self.config_control is None:
            raise ApiError(503, "this edge cannot apply a config at run time")
        try:
            note = await self.config_control.reconfigure(data, "api")
        except ConfigError as exc:
            detail = [{"field": path, "message": reason} for path, reason in exc.problems]
            first = detail[0] if detail else {"field": None, "message": "invalid config"}
            raise ApiError(422, str(first["message"]), first["field"], detail) from None
        self.publish({"type": "config_applied", "origin": "api", "note": note})
        return {**self.config_info(), "note": note}

    # -- the event stream --------------------------------------------------------------
    def subscribe(self) -> EventQueue:
        """A new subscriber's queue; events published from now on arrive in it."""
        if self._closed:
            raise ApiError(503, "the edge is shutting down")
        queue = EventQueue(self.queue_limit)
        self._subscribers.add(queue)
        return queue

    def unsubscribe(self, queue: EventQueue) -> None:
        self._subscribers.discard(queue)

    @property
    def subscribers(self) -> int:
        return len(self._subscribers)

    def publish(self, event: dict[str, Any]) -> None:
        """Send ``event`` (a dict with a ``type``) to every subscriber, stamped with a
        per-daemon ``seq`` and the wall-clock ``time`` unless it carries one."""
        if not self._subscribers:
            return
        self._seq += 1
        stamped = {**event, "seq": self._seq}
        stamped.setdefault("time", round(self.wall(), 3))
        for queue in self._subscribers:
            queue.offer(stamped)

    def close(self) -> None:
        """Shutdown: every subscriber reads a final ``{"type": "closed"}`` and is dropped."""
        self._closed = True
        for queue in self._subscribers:
            queue.offer({"type": "closed"})
        self._subscribers.clear()

    def tick(self) -> None:
        """Once a second (the daemon's timer): a ``stats`` snapshot, and ``call_started``
        for calls that appeared since the last tick (the B2BUA has no start hook)."""
        now = self._now()
        self._observe_agents(now)
        calls = self.core.b2bua.calls
        if not self._subscribers:  # a new subscriber reads the calls up now from /v1/calls
            self._announced = set(calls)
            return
        for call_id in calls.keys() - self._announced:
            self.publish(call_event("call_started", calls[call_id]))
        self._announced = set(calls)
        wall = self.wall()
        queues = self.center.queue_live(now)
        self.publish(
            {
                "type": "stats",
                "uptime_s": round(max(0.0, wall - self.started_at), 3),
                "counts": self._counts(wall, queues),
                "queues": {
                    name: {"waiting": q.waiting, "longest_wait_s": round(q.longest_wait_s, 3)}
                    for name, q in queues.items()
                },  # fmt: skip
                "media": dict(self.media.stats()),
            }
        )

    # -- events from the daemon's hooks ----------------------------------------------------
    def on_records(self, items: Iterable[object]) -> None:
        """What the stack produced for the store: CDRs become ``call_ended``, binding
        changes ``registration`` events (call it before the lists are cleared)."""
        if not self._subscribers:
            return
        for item in items:
            if isinstance(item, CdrRow):
                self._announced.discard(item.call_id)
                self.publish({"type": "call_ended", "call": item.call_id, "from": item.from_number,
                              "to": item.to_number, "destination": item.destination,
                              "disposition": item.disposition, "cause": item.cause,
                              "hangup_side": item.hangup_side, "sip_status": item.sip_status,
                              "mos": item.mos, "ended": self._iso(item.end_time)})  # fmt: skip
            elif isinstance(item, BindingChange):
                b = item.binding
                self.publish({"type": "registration", "extension": b.extension, "contact": b.contact,
                              "removed": item.removed, "source": f"{b.transport}:{b.source[0]}:{b.source[1]}",
                              "expires": self._iso(b.expires_at), "user_agent": b.user_agent})  # fmt: skip

    def agent_changed(self, change: AgentStateChanged, now: float) -> None:
        """An agent transition as the contact center reported it (exact time in state)."""
        self._since[change.agent_id] = (change.new.value, now)
        self.publish({"type": "agent", "agent": change.agent_id, "old": change.old.value,
                      "new": change.new.value, "reason": change.reason, "observed": False})  # fmt: skip

    def on_media_event(self, event: tuple[Any, ...]) -> None:
        """An event from the media engine; RTP timeouts are published (before the B2BUA
        ends the call, so the call is still found)."""
        if event[0] != "timeout" or not self._subscribers:
            return
        leg_id = event[1]
        for call in self.core.b2bua.calls.values():
            for side, leg in (("a", call.a), ("b", call.b)):
                if leg is not None and leg.media is not None and leg.media.id == leg_id:
                    self.publish({"type": "media_timeout", "call": call.id, "leg": side,
                                  "rtp_port": leg.media.local_port, "on_hold": call.on_hold})  # fmt: skip
                    return


def call_event(kind: str, call: Any) -> dict[str, Any]:
    return {"type": kind, "call": call.id, "from": call.from_number, "to": call.to_number,
            "destination": call.destination, "state": call.state.value}  # fmt: skip


def _leg(side: str, leg: Any) -> dict[str, Any]:
    media = leg.media
    return {
        "side": side,
        "sip_call_id": leg.call_id,
        "peer": f"{leg.transport}:{leg.addr[0]}:{leg.addr[1]}",
        "confirmed": leg.confirmed,
        "rtp_port": media.local_port if media is not None else None,
        "rtp_remote": f"{media.remote[0]}:{media.remote[1]}"
        if media is not None and media.remote
        else None,
        "packets_in": media.packets_in if media is not None else 0,
        "packets_out": media.packets_out if media is not None else 0,
        "lost": media.lost if media is not None else 0,
        "jitter_ms": _round(media.jitter_ms, 2) if media is not None else None,
        "mos": leg_mos(media),
    }


def _round(value: float | None, digits: int) -> float | None:
    return None if value is None else round(value, digits)
