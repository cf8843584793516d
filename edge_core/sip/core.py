"""The edge's SIP transaction user: what to do with each request and response.

Sits on the transaction layer (``transaction.py``) and dispatches: REGISTER to the
registrar after digest authentication (401), INVITE through authentication (407),
the dial plan and the B2BUA, OPTIONS answered here, in-dialog requests to their call.
Sans-I/O: the daemon feeds it events and drains what the layer has to send.

It also owns the branch's routing state: the trunk keepalives (``routing.trunks``,
OPTIONS sent from here), the WAN monitor and the mode (``routing.wan``; the daemon
feeds in the fleet session with :meth:`SipCore.fleet_connected`), and the choice of
trunks for a call: a route's trunks in order, skipping the down and the full ones and,
in survivable mode, the WAN ones; emergency numbers go to the local trunks first and
are tried on every trunk there is. What changes is told to ``on_routing_event``.
"""

from __future__ import annotations

import logging
import re
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

from edge_core.config.schema import SiteConfig, Trunk
from edge_core.media.sdp import SdpError, SessionDescription
from edge_core.routing.dialplan import DialPlan, ExtensionTarget, FlowTarget, TrunkTarget
from edge_core.routing.registration import OutboundRegistrations
from edge_core.routing.trunks import TrunkChanged, TrunkMonitor
from edge_core.routing.wan import Mode, ModeChanged, WanMonitor
from edge_core.sip import transaction as txl
from edge_core.sip.auth import DigestChallenger, build_authorization
from edge_core.sip.b2bua import B2BUA
from edge_core.sip.call import TrunkAttempt
from edge_core.sip.dialog import Leg
from edge_core.sip.hosted import HostedCalls
from edge_core.sip.message import (
    NameAddr,
    Request,
    Response,
    SipParseError,
    SipUri,
    new_call_id,
    new_tag,
)
from edge_core.sip.registrar import Registrar

log = logging.getLogger("edge.sip")

ALLOW = "INVITE, ACK, CANCEL, BYE, OPTIONS, REGISTER, INFO, REFER, NOTIFY"


class _Registering:
    """The owner of an outbound REGISTER's client transaction."""

    __slots__ = ("trunk", "attempt")

    def __init__(self, trunk: str, attempt: int) -> None:
        self.trunk, self.attempt = trunk, attempt


_EXPIRES = re.compile(r";\s*expires\s*=\s*(\d+)", re.I)


class _Probe:
    """The owner of an OPTIONS keepalive's client transaction."""

    __slots__ = ("trunk", "id")

    def __init__(self, trunk: str, probe_id: int) -> None:
        self.trunk, self.id = trunk, probe_id


class SipCore:
    def __init__(
        self,
        config: SiteConfig,
        layer: txl.TransactionLayer,
        media: Any,
        local: dict[str, tuple[str, int]],
        wall: Callable[[], float],
        secret: bytes,
        recorder: Any = None,
        prompts: Any = None,
        now: float | None = None,
    ) -> None:
        sip = config.sip
        start = time.monotonic() if now is None else now
        self.config = config
        self.layer = layer
        self.wall = wall
        self.passwords = {e.number: e.password for e in config.extensions}
        self.dialplan = DialPlan(config)
        self.registrar = Registrar(sip.domain, sip.registration_min_expires_s, sip.registration_max_expires_s)
        self.challenger = DigestChallenger(
            sip.realm, secret, nonce_ttl_s=sip.nonce_ttl_s, algorithms=tuple(sip.digest_algorithms)
        )
        self.b2bua = B2BUA(
            layer,
            media,
            local,
            wall,
            domain=sip.domain,
            ring_timeout_s=sip.ring_timeout_s,
            user_agent=sip.user_agent,
            media_host=config.media.host,
            recorder=recorder,
        )
        self.counters: Counter[str] = Counter()
        self.hosted = HostedCalls(config, self.b2bua, self.registrar, self.dialplan, prompts or {}, wall)
        self.b2bua.hosted = self.hosted
        self.b2bua.resolve_transfer = self._transfer_binding
        self.hosted.trunk_attempts = self.trunk_attempts
        self.trunks = TrunkMonitor(list(config.trunks), start)
        self.wan = WanMonitor(config.routing.wan, start)
        self.wan.signal("trunks", self.trunks.wan_up(), start)
        self.registrations = OutboundRegistrations(list(config.trunks), start)
        self.overloaded = False
        """Set by the daemon while its loop lags (``sip.overload_lag_ms``): new calls get 503."""
        self._register_legs: dict[str, Leg] = {}  # trunk -> the binding's dialog-like state
        self.on_routing_event: Callable[[TrunkChanged | ModeChanged], None] | None = None
        """Told every trunk up/down and every mode change (the API's events, the outbox)."""

    # -- routing state ---------------------------------------------------------------------
    @property
    def mode(self) -> Mode:
        return self.wan.mode

    def fleet_connected(self, up: bool | None, now: float) -> None:
        """The MQTT session to the fleet came up or went down (None: no telemetry)."""
        self.wan.signal("fleet", up, now)
        self._routing_events(now)

    def drill(self, seconds: float | None, now: float) -> None:
        """Force survivable mode for ``seconds`` (None: end the drill)."""
        self.wan.drill(seconds, now)
        self._routing_events(now)

    def reconfigure_routing(self, config: SiteConfig, now: float) -> None:
        """A new config: new trunks are probed from now; the mode and its history stay."""
        self.dialplan = DialPlan(config)
        old = self.trunks.trunks
        self.trunks = TrunkMonitor(list(config.trunks), now)
        for name, status in self.trunks.trunks.items():  # keep what is known of kept trunks
            if name in old and old[name].config.kind == status.config.kind:
                status.up, status.since, status.rtt_ms = old[name].up, old[name].since, old[name].rtt_ms
        self.wan.settings = config.routing.wan
        wanted = {t.name: t for t in config.trunks if t.registration}
        if {n: r.trunk for n, r in self.registrations.registrations.items()} != wanted:
            self.registrations = OutboundRegistrations(list(config.trunks), now)  # register anew
            self._register_legs.clear()
        self.wan.signal("trunks", self.trunks.wan_up(), now)
        self._routing_events(now)

    def _register(self, name: str, now: float, challenge: tuple[str, str] | None = None) -> None:
        """REGISTER to a carrier's registrar: same Call-ID for the binding, CSeq + 1
        (§10.2.4); ``challenge`` is (header name, value) of a 401/407 to answer."""
        t = self.registrations.registrations[name].trunk
        leg = self._register_legs.get(name)
        if leg is None:
            aor = f"<sip:{t.username}@{t.host}>"
            leg = Leg(call_id=new_call_id(self.b2bua.local[t.transport][0]), local_tag=new_tag(),
                      local_party="", remote_party=aor, remote_target=f"sip:{t.host}:{t.port}",
                      addr=(t.host, t.port), transport=t.transport)  # fmt: skip
            leg.local_party = f"{aor};tag={leg.local_tag}"
            self._register_legs[name] = leg
        req = leg.request("REGISTER", self.b2bua._via(t.transport), "")
        req.add_header("Contact", self.b2bua._contact(t.transport))
        req.add_header("Expires", str(t.register_expires_s))
        req.add_header("User-Agent", self.config.sip.user_agent)
        if challenge is not None:
            header = "Proxy-Authorization" if challenge[0] == "Proxy-Authenticate" else "Authorization"
            try:
                req.add_header(header, build_authorization(
                    challenge[1], method="REGISTER", uri=req.uri, username=t.username or "",
                    password=t.password or "", cnonce=new_tag(),
                ))  # fmt: skip
            except ValueError as exc:
                log.warning("trunk %s: cannot answer the registrar's challenge: %s", name, exc)
                self.registrations.answered(name, self.registrations.registrations[name].attempt,
                                            403, f"unanswerable challenge: {exc}", None, now)  # fmt: skip
                return
        attempt = self.registrations.sent(name, challenged=challenge is not None)
        tx = self.layer.send_request(req, leg.addr, now, reliable=t.transport == "tcp", transport=t.transport)
        tx.owner = _Registering(name, attempt)

    def _registered(self, owner: _Registering, resp: Response, now: float) -> None:
        granted: float | None = None
        expires = resp.header("Expires")
        for contact in resp.header_values("Contact"):
            m = _EXPIRES.search(contact)
            if m and "sip:edge@" in contact:
                granted = float(m.group(1))
        if granted is None and expires and expires.strip().isdigit():
            granted = float(expires)
        reg = self.registrations.registrations[owner.trunk]
        before = reg.state
        result = self.registrations.answered(owner.trunk, owner.attempt, resp.status, resp.reason, granted, now)
        if result == "challenge":
            name = "WWW-Authenticate" if resp.status == 401 else "Proxy-Authenticate"
            self._register(owner.trunk, now, (name, resp.header(name) or ""))
        elif result in ("registered", "failed") and reg.state != before:
            log.warning("trunk %s registration %s%s", owner.trunk, reg.state, f": {reg.reason}" if reg.reason else "")

    def _probe(self, name: str, now: float) -> None:
        t = self.trunks.trunks[name].config
        tx = self.b2bua.send_out_of_dialog(
            "OPTIONS", f"sip:{t.host}:{t.port}", (t.host, t.port), t.transport, "keepalive", now,
            headers=[("Accept", "application/sdp")],
        )  # fmt: skip
        tx.owner = _Probe(name, self.trunks.sent(name, now))

    def _routing_events(self, now: float) -> None:
        for change in self.trunks.take_events():
            log.warning("trunk %s (%s) %s: %s", change.trunk, change.kind, "up" if change.up else "down", change.cause)
            self.wan.signal("trunks", self.trunks.wan_up(), now)
            if self.on_routing_event is not None:
                self.on_routing_event(change)
        for mode in self.wan.take_events():
            log.warning("mode %s -> %s (%s) after %.1f s", mode.old.value, mode.new.value, mode.cause, mode.previous_s)
            if self.on_routing_event is not None:
                self.on_routing_event(mode)

    def trunk_attempts(self, target: TrunkTarget) -> list[TrunkAttempt]:
        """The trunks to try for ``target``, in order (empty: none can take the call)."""
        survivable = self.wan.mode is Mode.SURVIVABLE
        busy: Counter[str] = Counter()
        if any(t.max_calls for t in target.trunks):  # counted only when a limit asks (a scan of every call)
            busy.update(c.trunk for c in self.b2bua.calls.values() if c.trunk)
        good: list[Trunk] = []
        last_resort: list[Trunk] = []
        for t in target.trunks:
            usable = (
                self.trunks.usable(t.name)
                and not (survivable and t.kind == "wan")
                and not (t.max_calls and busy[t.name] >= t.max_calls)
            )
            if usable:
                good.append(t)
            elif target.emergency:  # an emergency call tries everything there is
                last_resort.append(t)
        return [
            TrunkAttempt(t.name, f"sip:{target.number}@{t.host}:{t.port}", (t.host, t.port), t.transport,
                         t.failover_after_s)  # fmt: skip
            for t in good + last_resort
        ]

    # -- the event pump ---------------------------------------------------------------
    def handle_event(self, event: object, now: float) -> None:
        if isinstance(event, txl.RequestReceived):
            self.counters[f"request.{event.request.method}"] += 1
            self._on_request(event.request, event.transaction, event.addr, event.transport, now)
        elif isinstance(event, txl.ResponseReceived):
            owner = event.transaction.owner
            if isinstance(owner, _Probe):
                if event.response.status >= 200:
                    self.trunks.answered(owner.trunk, owner.id, event.response.status, now)
                    self._routing_events(now)
                return
            if isinstance(owner, _Registering):
                if event.response.status >= 200:
                    self._registered(owner, event.response, now)
                return
            self.b2bua.on_response(event.response, event.transaction, now)
        elif isinstance(event, txl.TransactionTimedOut):
            self.counters["transaction.timeout"] += 1
            owner = event.transaction.owner
            if isinstance(owner, _Probe):
                return  # the monitor's own, shorter, probe timeout has judged it already
            if isinstance(owner, _Registering):
                self.registrations.timed_out(owner.trunk, owner.attempt, now)
                log.warning("trunk %s registration failed: timeout", owner.trunk)
                return
            self.b2bua.on_timeout(event.transaction, now)
        elif isinstance(event, txl.CancelReceived):
            self.b2bua.on_cancel(event.invite_transaction, now)
        elif isinstance(event, txl.AckReceived):
            self.b2bua.on_ack(event.request, now)
        elif isinstance(event, txl.AckTimedOut):
            self.counters["ack.timeout"] += 1
            self.b2bua.on_ack_timeout(event.response, now)
        elif isinstance(event, txl.TransactionTerminated):
            # break tx.owner <-> call.*_tx: the call is then freed by reference counting,
            # not left for the cyclic GC, whose pauses grow with what lives
            event.transaction.owner = None
        elif isinstance(event, txl.StrayResponse):
            self.b2bua.on_stray_response(event.response)

    def get_timer(self) -> float | None:
        timers = (self.b2bua.get_timer(), self.hosted.get_timer(), self.trunks.get_timer(), self.wan.get_timer(),
                  self.registrations.get_timer())  # fmt: skip
        deadlines = [t for t in timers if t is not None]
        return min(deadlines) if deadlines else None

    def handle_timer(self, now: float) -> None:
        self.b2bua.handle_timer(now)
        self.hosted.handle_timer(now)
        for name in self.trunks.handle_timer(now):
            self._probe(name, now)
        self.wan.handle_timer(now)
        for name in self.registrations.handle_timer(now):
            self._register(name, now)
        self._routing_events(now)

    # -- requests ---------------------------------------------------------------------
    def _on_request(self, req: Request, tx: Any, addr: tuple[str, int], transport: str, now: float) -> None:
        if req.to_tag is not None:
            found = self.b2bua.find_dialog(req)
            if found is None:
                self._reply(tx, 481, now)
            else:
                self.b2bua.on_in_dialog(found[0], found[1], req, tx, now)
            return
        method = req.method
        if method == "INVITE":
            self._on_invite(req, tx, addr, transport, now)
        elif method == "REGISTER":
            self._on_register(req, tx, addr, transport, now)
        elif method == "OPTIONS":
            resp = Response.for_request(req, 200, to_tag=new_tag())
            resp.add_header("Allow", ALLOW)
            resp.add_header("Accept", "application/sdp")
            self.layer.send_response(tx, resp, now)
        elif method in ("BYE", "CANCEL"):
            self._reply(tx, 481, now)
        else:
            resp = Response.for_request(req, 405, to_tag=new_tag())
            resp.add_header("Allow", ALLOW)
            self.layer.send_response(tx, resp, now)

    def _reply(self, tx: Any, status: int, now: float, reason: str | None = None) -> None:
        resp = Response.for_request(tx.request, status, reason, to_tag=new_tag())
        self.layer.send_response(tx, resp, now)

    def _transfer_binding(self, number: str) -> Any:
        """The registered phone a REFER's target number reaches, or None."""
        target = self.dialplan.route(number)
        if not isinstance(target, ExtensionTarget):
            return None
        bindings = self.registrar.lookup(target.number, self.wall())
        return bindings[0] if bindings else None

    def _refuse_call(self, req: Request, tx: Any, caller: str, dialled: str, status: int, reason: str, now: float) -> None:
        self._reply(tx, status, now, reason)
        self.b2bua.record_refused(req, caller, dialled, status, reason)

    def _authenticate(self, req: Request, tx: Any, now: float, *, proxy: bool) -> str | None:
        """The authenticated extension number, or None after sending 401/407/403."""
        header = "Proxy-Authorization" if proxy else "Authorization"
        credentials = req.header(header)
        wall = self.wall()
        stale = False
        if credentials is not None:
            result = self.challenger.verify(credentials, req.method, self.passwords.get, wall)
            if result.ok and result.username is not None:
                return result.username
            self.counters["auth.failed"] += 1
            if not result.stale:
                log.info("auth failed for %s from %s: %s", req.method, tx.addr, result.reason)
                self._reply(tx, 403, now, "Forbidden")
                return None
            stale = True
        status = 407 if proxy else 401
        resp = Response.for_request(req, status, to_tag=new_tag())
        name = "Proxy-Authenticate" if proxy else "WWW-Authenticate"
        for value in self.challenger.challenge(wall, stale=stale):
            resp.add_header(name, value)
        self.layer.send_response(tx, resp, now)
        return None

    def _on_register(self, req: Request, tx: Any, addr: tuple[str, int], transport: str, now: float) -> None:
        try:
            aor = SipUri.parse(NameAddr.parse(req.header("To") or "").uri)
        except SipParseError as exc:
            self._reply(tx, 400, now, f"Bad To: {exc}"[:60])
            return
        extension = aor.user or ""
        if extension not in self.passwords:
            self._reply(tx, 404, now)
            return
        username = self._authenticate(req, tx, now, proxy=False)
        if username is None:
            return
        if username != extension:
            self._reply(tx, 403, now, "Wrong Identity For AOR")
            return
        resp = self.registrar.handle_register(req, extension, addr, transport, self.wall(), new_tag())
        self.layer.send_response(tx, resp, now)

    def _on_invite(self, req: Request, tx: Any, addr: tuple[str, int], transport: str, now: float) -> None:
        max_forwards = req.header("Max-Forwards")
        if max_forwards is not None and max_forwards.strip() == "0":
            self._reply(tx, 483, now)
            return
        try:
            ruri = SipUri.parse(req.uri)
            caller = SipUri.parse(NameAddr.parse(req.header("From") or "").uri)
        except SipParseError as exc:
            self._reply(tx, 400, now, f"Bad URI: {exc}"[:60])
            return
        if self.overloaded and not self.dialplan.is_emergency(ruri.user or ""):
            self.counters["overload.refused"] += 1
            resp = Response.for_request(req, 503, "Overloaded", to_tag=new_tag())
            resp.add_header("Retry-After", "5")
            self.layer.send_response(tx, resp, now)
            return
        trunk = self.dialplan.trunk_for_source(*addr)
        caller_number = caller.user or "anonymous"
        if trunk is None and self.config.sip.auth_required:
            username = self._authenticate(req, tx, now, proxy=True)
            if username is None:
                return
            caller_number = username
        dialled = ruri.user or ""
        offer = None
        if req.body:
            try:
                offer = SessionDescription.parse(req.body)
            except SdpError as exc:
                self._reply(tx, 400, now, f"Bad SDP: {exc}"[:80])
                return
        if dialled == self.config.feature_codes.echo:
            call = self.b2bua.answer_hosted(
                req, tx, addr, transport, offer, caller_number=caller_number, dialled=dialled,
                destination="echo", now=now,
            )  # fmt: skip
            if call is not None:
                self.b2bua.start_echo(call)
            return
        feature = self.hosted.feature_code(caller_number, dialled, now)
        if feature is not None:
            call = self.b2bua.answer_hosted(
                req, tx, addr, transport, offer, caller_number=caller_number, dialled=dialled,
                destination="feature-code", now=now,
            )  # fmt: skip
            if call is not None:
                self.hosted.start_feature(call, feature, now)
            return
        target = self.dialplan.route(dialled)
        if target is None or (isinstance(target, ExtensionTarget) and target.number not in self.passwords):
            self._refuse_call(req, tx, caller_number, dialled, 404, "Not Found", now)
            return
        if isinstance(target, FlowTarget):
            call = self.b2bua.answer_hosted(
                req, tx, addr, transport, offer, caller_number=caller_number, dialled=dialled,
                destination=f"flow:{target.flow}", now=now,
            )  # fmt: skip
            if call is not None:
                self.hosted.start_flow(call, target.flow, now)
            return
        if isinstance(target, ExtensionTarget):
            bindings = self.registrar.lookup(target.number, self.wall())
            if not bindings:
                self._refuse_call(req, tx, caller_number, dialled, 480, "Temporarily Unavailable", now)
                return
            binding = bindings[0]
            target_uri, target_addr, target_transport = binding.contact, binding.source, binding.transport
            destination = f"extension:{target.number}"
        else:
            assert isinstance(target, TrunkTarget)
            attempts = self.trunk_attempts(target)
            if not attempts:
                why = "survivable mode" if self.wan.mode is Mode.SURVIVABLE else "trunks down or full"
                log.info("call from %s to %s: no trunk can take it (%s)", caller_number, dialled, why)
                self._refuse_call(req, tx, caller_number, dialled, 503, "No Trunk Available", now)
                return
            first, *alternatives = attempts
            if target.emergency:
                log.warning("emergency call from %s to %s via %s", caller_number, dialled, first.trunk)
            self.b2bua.start_call(
                req, tx, addr, transport, offer, caller_number=caller_number, dialled=dialled,
                destination=f"trunk:{first.trunk}", target_uri=first.uri, target_addr=first.addr,
                target_transport=first.transport, now=now, trunk=first.trunk, alternatives=alternatives,
                silence_s=first.silence_s,
            )  # fmt: skip
            return
        self.b2bua.start_call(
            req,
            tx,
            addr,
            transport,
            offer,
            caller_number=caller_number,
            dialled=dialled,
            destination=destination,
            target_uri=target_uri,
            target_addr=target_addr,
            target_transport=target_transport,
            now=now,
        )
