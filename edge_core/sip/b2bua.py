"""The B2BUA call core: every call is two legs, each its own dialog, joined by the edge.

The caller's leg (A) is answered by the edge as a UAS; the callee's leg (B) is a fresh
INVITE the edge sends as a UAC, with its own Call-ID and tags. SDP on both legs is
rewritten to the edge's media ports (media anchored), so the media engine sees every
packet. Sans-I/O like the rest of ``sip/``: it sends through the transaction layer,
keeps its own timers (ring timeout) behind :meth:`get_timer`/:meth:`handle_timer`, and
leaves finished call records in :attr:`B2BUA.records` for the daemon to store.

What RFC 3261 asks of the B2BUA here: 100 Trying at once (§8.2.6.1); provisional
responses relayed; a final response relayed with its code (3xx is not followed and
becomes 480, 401/407 from a callee become 403: the caller cannot answer a challenge
meant for the edge); CANCEL while ringing -> 487 to the caller and CANCEL to the callee
once it has sent a provisional response (§9.1); BYE from either side ends both
(§15.1); re-INVITE (hold/unhold) passed through with SDP anchored, 491 on glare
(§14.1). Forking to several bindings of one extension is not done: the newest
binding rings.
"""

from __future__ import annotations

import heapq
import itertools
import logging
from collections.abc import Callable
from typing import Any

from edge_core.media.sdp import SdpError, SessionDescription, anchor, media_target, payload_types
from edge_core.sip.call import Call, CallState, PendingReinvite, TrunkAttempt
from edge_core.sip.dialog import Leg
from edge_core.sip.hosted_legs import HostedLegs
from edge_core.sip.message import (
    NameAddr,
    Request,
    Response,
    new_call_id,
    new_tag,
)
from edge_core.sip.records import call_record, refused_record

log = logging.getLogger("edge.b2bua")

SDP = "application/sdp"
DIALOG_LINGER_S = 32.0  # 64*T1: late retransmissions still find their dialog


class B2BUA(HostedLegs):
    def __init__(
        self,
        layer: Any,
        media: Any,
        local: dict[str, tuple[str, int]],
        wall: Callable[[], float],
        *,
        domain: str,
        ring_timeout_s: float,
        user_agent: str,
        media_host: str,
        recorder: Any = None,
    ) -> None:
        self.layer = layer
        self.media = media
        self.local = local  # transport -> (host, port) the edge listens on
        self.wall = wall
        self.domain = domain
        self.ring_timeout_s = ring_timeout_s
        self.user_agent = user_agent
        self.media_host = media_host
        self.recorder = recorder  # CallRecorder, or None when calls are not recorded
        self.hosted: Any = None  # HostedCalls: the IVR/queue side of calls the edge answers
        # number -> a registered binding, for REFER targets (set by the SIP core)
        self.resolve_transfer: Callable[[str], Any] | None = None
        self.calls: dict[str, Call] = {}
        self._by_media: dict[int, Call] = {}  # media leg id -> its call (RTP timeouts)
        self._echo: dict[str, Any] = {}  # call id -> the hairpin leg of an echo test
        self._dialogs: dict[tuple[str, str], tuple[Call, Leg]] = {}  # (Call-ID, our tag)
        # (deadline, seq, call id, what): "ring" timeouts and "forget" of ended dialogs
        self._timers: list[tuple[float, int, str, str]] = []
        self._ended: dict[str, Call] = {}
        self._seq = itertools.count()
        self.records: list[Any] = []  # CdrRow, TaskRow, VoicemailMessage: for the store, in order

    # -- helpers ----------------------------------------------------------------------
    def _via(self, transport: str) -> str:
        host, port = self.local[transport]
        return f"SIP/2.0/{transport.upper()} {host}:{port}"

    def _contact(self, transport: str) -> str:
        host, port = self.local[transport]
        suffix = ";transport=tcp" if transport == "tcp" else ""
        return f"<sip:edge@{host}:{port}{suffix}>"

    def _respond(self, call: Call, status: int, now: float, reason: str | None = None, sdp: bytes = b"") -> None:
        """A response on the caller's INVITE transaction."""
        assert call.a_tx is not None
        resp = Response.for_request(call.a_tx.request, status, reason, to_tag=call.a.local_tag)
        if 100 < status < 300:
            resp.add_header("Contact", self._contact(call.a.transport))
        if sdp:
            resp.add_header("Content-Type", SDP)
            resp.body = sdp
        if 200 <= status < 300:
            self.layer.send_2xx_reliably(call.a_tx, resp, now)
        else:
            self.layer.send_response(call.a_tx, resp, now)

    def _anchored(self, leg: Leg, offer: SessionDescription) -> bytes:
        """``offer`` rewritten so the peer of ``leg`` sends its media to the edge."""
        sdp = anchor(
            offer,
            self.media_host,
            leg.media.local_port,
            session_id=self._session_id(leg),
            version=leg.next_sdp_version(),
        )
        return sdp.to_bytes()

    def _session_id(self, leg: Leg) -> int:
        # one o= session id per leg, kept across re-offers (RFC 4566 §5.2)
        return hash((leg.call_id, leg.local_tag)) & 0x7FFFFFFF

    @staticmethod
    def _caller_leg(invite: Request, addr: tuple[str, int], transport: str) -> tuple[Leg, NameAddr]:
        """The caller's leg of a new call, as the UAS side of its dialog (§12.1.1)."""
        caller = NameAddr.parse(invite.header("From") or "")
        a = Leg(
            call_id=invite.call_id,
            local_tag=new_tag(),
            local_party="",
            remote_party=invite.header("From") or "",
            remote_target=NameAddr.parse(invite.header("Contact") or caller.uri).uri,
            addr=addr,
            transport=transport,
        )
        a.local_party = f"{invite.header('To')};tag={a.local_tag}"
        a.remote_tag = caller.tag
        a.remote_cseq = invite.cseq[0]
        a.route_set = invite.header_values("Record-Route")
        return a, caller

    # -- a new call -------------------------------------------------------------------
    def start_call(
        self,
        invite: Request,
        tx: Any,
        addr: tuple[str, int],
        transport: str,
        offer: SessionDescription | None,
        *,
        caller_number: str,
        dialled: str,
        destination: str,
        target_uri: str,
        target_addr: tuple[str, int],
        target_transport: str,
        now: float,
        trunk: str | None = None,
        alternatives: list[TrunkAttempt] | None = None,
        silence_s: float | None = None,
    ) -> Call:
        """Answer for the caller with 100, then send the callee's INVITE. ``alternatives``:
        trunks to try next, in order, when this one answers 408 or 5xx or times out."""
        a, caller = self._caller_leg(invite, addr, transport)
        call = Call(a, caller.uri, caller_number, dialled, destination, self.wall())
        call.offer = offer
        call.a_tx = tx
        call.trunk = trunk
        call.alternatives = list(alternatives or ())
        tx.owner = call
        self.calls[call.id] = call
        self._dialogs[(a.call_id, a.local_tag)] = (call, a)
        self.layer.send_trying(tx, now)

        if offer is None:
            # late offer (INVITE without SDP) is not supported yet
            self._fail(call, 488, "SDP Offer Required", now, disposition="rejected")
            return call
        try:
            a.media = self.media.allocate_leg()
        except Exception as exc:  # the media engine's "no port left"
            log.warning("call %s: no media port: %s", call.id, exc)
            self._fail(call, 503, "No Media Ports", now, disposition="failed")
            return call
        b_call_id = new_call_id(self.local[target_transport][0])
        b = Leg(
            call_id=b_call_id,
            local_tag=new_tag(),
            local_party="",
            remote_party=f"<{target_uri}>",
            remote_target=target_uri,
            addr=target_addr,
            transport=target_transport,
        )
        display = f'"{caller.display}" ' if caller.display else ""
        b.local_party = f"{display}<sip:{caller_number}@{self.domain}>;tag={b.local_tag}"
        call.b = b
        try:
            b.media = self.media.allocate_leg()
        except Exception as exc:
            log.warning("call %s: no media port: %s", call.id, exc)
            self._fail(call, 503, "No Media Ports", now, disposition="failed")
            return call
        target = media_target(offer)
        if target is not None:
            self.media.set_remote(a.media, *target)
        self.media.connect(a.media, b.media)
        self._by_media[a.media.id] = call
        self._by_media[b.media.id] = call
        self._dialogs[(b.call_id, b.local_tag)] = (call, b)

        max_forwards = invite.header("Max-Forwards")
        hops = int(max_forwards) - 1 if max_forwards and max_forwards.isdigit() else 69
        body = self._anchored(b, offer)
        req = b.request("INVITE", self._via(target_transport), self._contact(target_transport), body=body, content_type=SDP)
        req.set_header("Max-Forwards", str(hops))
        req.add_header("User-Agent", self.user_agent)
        call.b_invite = req
        call.b_tx = self.layer.send_request(req, target_addr, now, reliable=target_transport == "tcp", transport=target_transport)
        call.b_tx.owner = call
        heapq.heappush(self._timers, (now + self.ring_timeout_s, next(self._seq), call.id, "ring"))
        if call.alternatives and silence_s is not None:
            self._arm_failover(call, silence_s, now)
        return call

    def _arm_failover(self, call: Call, silence_s: float, now: float) -> None:
        """If this callee leg hears nothing at all for ``silence_s``, the next trunk."""
        assert call.b is not None
        heapq.heappush(self._timers, (now + silence_s, next(self._seq), call.id, f"silence:{call.b.call_id}"))

    def record_refused(self, invite: Request, caller_number: str, dialled: str, status: int, reason: str) -> None:
        """A CDR for a call refused before any callee was tried (404, 480, 483 ...)."""
        self.records.append(refused_record(invite, caller_number, dialled, status, reason, self.wall()))

    # -- events from the transaction layer ----------------------------------------------
    def on_response(self, resp: Response, tx: Any, now: float) -> None:
        call = tx.owner
        if not isinstance(call, Call):
            return
        if tx is call.b_tx:
            self._on_b_invite_response(call, resp, now)
        elif tx in call.rings:
            self._on_ring_response(call, call.rings[tx], resp, now)
        elif call.reinvite is not None and tx is call.reinvite.client_tx:
            self._on_reinvite_response(call, resp, now)
        # responses to our BYE / CANCEL need nothing more

    def _on_b_invite_response(self, call: Call, resp: Response, now: float) -> None:
        b = call.b
        assert b is not None
        status = resp.status
        if status < 200:
            if status == 100:
                return
            call.b_provisional = True
            if call.state is CallState.ENDED:
                if call.cancel_b:
                    self._send_cancel(call, now)
                return
            call.state = CallState.EARLY
            sdp = b""
            if resp.body:
                sdp = self._answer_for_a(call, resp) or b""
            self._respond(call, status if status in (180, 183) else 180, now, None, sdp)
            return
        if 200 <= status < 300:
            if call.b_ack is not None:  # a retransmitted 2xx: our ACK was lost (§13.2.2.4)
                self.layer.send_stateless(call.b_ack, b.addr, b.transport)
                return
            b.learn_remote(resp.header("To") or "", resp.header("Contact"), resp.header_values("Record-Route"))
            b.confirmed = True
            call.b_ack = b.request("ACK", self._via(b.transport), self._contact(b.transport), cseq=call.b_invite.cseq[0] if call.b_invite else 1)
            self.layer.send_stateless(call.b_ack, b.addr, b.transport)
            if call.state is CallState.ENDED:
                # the caller went away while the callee answered: hang the callee up
                self._send_bye(call, b, now)
                return
            answer = self._answer_for_a(call, resp)
            if answer is None:
                self._send_bye(call, b, now)
                self._fail(call, 488, "Not Acceptable Here", now, disposition="failed")
                return
            call.state = CallState.ANSWERED
            call.answer_time = self.wall()
            self._configure_codecs(call, resp)
            if self.recorder is not None:
                self.recorder.start(call.id, call.a.media, b.media)
                call.recording = ""  # being recorded; the path is known when it ends
            self._respond(call, 200, now, None, answer)
            return
        # a final failure from the callee
        if call.state is CallState.ENDED:
            return
        if (status == 408 or 500 <= status < 600) and call.alternatives:
            self._next_trunk(call, f"{status} {resp.reason}", now)
            return
        relayed = status
        if 300 <= status < 400:
            relayed = 480
        elif status in (401, 407):
            relayed = 403
        disposition = "busy" if status in (486, 600) else "rejected"
        if status == 487:
            disposition = "cancelled"
        self._fail(call, relayed, resp.reason if relayed == status else None, now, disposition=disposition, sip_status=status)

    @staticmethod
    def _heard_from(call: Call) -> bool:
        """Whether the callee's INVITE transaction got any response (100 included)."""
        from edge_core.sip.transaction import State

        return call.b_tx is not None and call.b_tx.state is not State.CALLING

    def _next_trunk(self, call: Call, why: str, now: float) -> None:
        """Failover within the same call attempt: the callee leg starts again on the next
        trunk (a fresh dialog: new Call-ID and tag; the same media port)."""
        old = call.b
        assert old is not None
        if call.b_provisional:  # it rang and then failed: nothing left to cancel
            call.b_provisional = False
        nxt = call.alternatives.pop(0)
        if call.b_tx is not None:
            self.layer.abandon(call.b_tx)  # silent: no retransmissions into the void
        log.info("call %s: trunk %s failed (%s): trying %s", call.id, call.trunk, why, nxt.trunk)
        self._dialogs.pop((old.call_id, old.local_tag), None)
        b = Leg(
            call_id=new_call_id(self.local[nxt.transport][0]), local_tag=new_tag(), local_party="",
            remote_party=f"<{nxt.uri}>", remote_target=nxt.uri, addr=nxt.addr, transport=nxt.transport,
        )  # fmt: skip
        b.local_party = old.local_party.rsplit(";tag=", 1)[0] + f";tag={b.local_tag}"
        b.media = old.media
        call.b, call.trunk, call.destination = b, nxt.trunk, f"trunk:{nxt.trunk}"
        self._dialogs[(b.call_id, b.local_tag)] = (call, b)
        assert call.b_invite is not None and call.offer is not None
        req = b.request("INVITE", self._via(nxt.transport), self._contact(nxt.transport),
                        body=self._anchored(b, call.offer), content_type=SDP)  # fmt: skip
        req.set_header("Max-Forwards", call.b_invite.header("Max-Forwards") or "70")
        req.add_header("User-Agent", self.user_agent)
        call.b_invite = req
        call.b_tx = self.layer.send_request(req, nxt.addr, now, reliable=nxt.transport == "tcp", transport=nxt.transport)
        call.b_tx.owner = call
        if call.alternatives:
            self._arm_failover(call, nxt.silence_s, now)

    def _configure_codecs(self, call: Call, resp: Response) -> None:
        """Tell the engine what each leg carries: the answer's G.711 type for both, and
        each side's own telephone-event type (so RFC 4733 digits are read on it)."""
        b = call.b
        assert b is not None
        try:
            answer = SessionDescription.parse(resp.body)
        except SdpError:
            return
        voice, b_events = payload_types(answer)
        a_events = payload_types(call.offer)[1] if call.offer is not None else None
        if voice is None or not hasattr(self.media, "set_codec"):
            return
        self.media.set_codec(call.a.media, voice, a_events)
        self.media.set_codec(b.media, voice, b_events)

    def _answer_for_a(self, call: Call, resp: Response) -> bytes | None:
        """The callee's SDP, anchored for the caller; None when it is unusable."""
        b = call.b
        assert b is not None
        try:
            answer = SessionDescription.parse(resp.body)
            target = media_target(answer)
            if target is not None:
                self.media.set_remote(b.media, *target)
            return self._anchored(call.a, answer)
        except SdpError as exc:
            log.info("call %s: callee SDP refused: %s", call.id, exc)
            return None

    def on_timeout(self, tx: Any, now: float) -> None:
        call = tx.owner
        if isinstance(call, Call) and tx in call.rings:
            self._on_ring_response(call, call.rings[tx], Response(408), now)
            return
        if isinstance(call, Call) and tx is call.b_tx and call.state in (CallState.ROUTING, CallState.EARLY):
            if call.alternatives:
                self._next_trunk(call, "timeout", now)
                return
            self._fail(call, 408, "Request Timeout", now, disposition="no-answer", sip_status=408)
        elif isinstance(call, Call) and call.reinvite is not None and tx is call.reinvite.client_tx:
            self._reply(call.reinvite.server_tx, 408, now)
            call.reinvite = None

    def on_cancel(self, invite_tx: Any, now: float) -> None:
        """The caller cancelled (§9.2): 487 for the caller, CANCEL for the callee."""
        call = invite_tx.owner
        if not isinstance(call, Call) or call.state in (CallState.ANSWERED, CallState.ENDED):
            return
        self._respond(call, 487, now)
        self._end(call, now, disposition="cancelled", hangup_side="caller", status=487, reason="Request Terminated")
        if call.b_provisional:
            self._send_cancel(call, now)
        else:
            call.cancel_b = True  # sent when the first provisional response arrives

    def on_ack(self, ack: Request, now: float) -> None:
        entry = self._dialogs.get((ack.call_id, ack.to_tag or ""))
        if entry is not None:
            entry[1].confirmed = True

    def on_ack_timeout(self, resp: Response, now: float) -> None:
        """The caller never ACKed our 2xx (§13.3.1.4): end the call on both sides."""
        entry = self._dialogs.get((resp.call_id, resp.to_tag or ""))
        if entry is None:
            return
        call, leg = entry
        if call.state is CallState.ANSWERED and leg is call.a and not leg.confirmed:
            self._send_bye(call, call.a, now)
            if call.b is not None:
                self._send_bye(call, call.b, now)
            self._end(call, now, disposition="failed", hangup_side="edge", status=408, reason="No ACK", cause="no-ack")

    def on_stray_response(self, resp: Response) -> None:
        """A 2xx retransmitted after its transaction ended: our ACK was lost, send it again."""
        if resp.status >= 300 or resp.cseq[1] != "INVITE":
            return
        entry = self._dialogs.get((resp.call_id, resp.from_tag or ""))
        if entry is not None and entry[0].b_ack is not None and entry[1] is entry[0].b:
            self.layer.send_stateless(entry[0].b_ack, entry[1].addr, entry[1].transport)

    def hang_up_all(self, now: float) -> None:
        """Shutdown: BYE both legs of every answered call, end the others. One call
        that cannot be hung up cleanly must not keep the others (or the exit) waiting."""
        for call in list(self.calls.values()):
            try:
                if call.state is CallState.ANSWERED:
                    for leg in (call.a, call.b):
                        if leg is not None:
                            self._send_bye(call, leg, now)
                    self._end(call, now, disposition="answered", hangup_side="edge", status=200, reason="Shutdown", cause="shutdown")
                else:
                    self._fail(call, 503, "Shutting Down", now, disposition="failed")
            except Exception:
                log.exception("call %s: could not hang up at shutdown", call.id)
                self._end(call, now, disposition="failed", hangup_side="edge", status=500, reason="Shutdown Error", cause="shutdown")

    def find_dialog(self, request: Request) -> tuple[Call, Leg] | None:
        return self._dialogs.get((request.call_id, request.to_tag or ""))

    def on_in_dialog(self, call: Call, leg: Leg, request: Request, tx: Any, now: float) -> None:
        method = request.method
        cseq = request.cseq[0]
        if method != "ACK":
            if cseq < leg.remote_cseq:
                # §12.2.2: lower CSeq than already seen is out of order
                self._reply(tx, 500, now, "CSeq Out Of Order")
                return
            leg.remote_cseq = cseq
        if method == "BYE":
            self._reply(tx, 200, now)
            if (
                call.hosted and leg is call.b and call.state is CallState.ANSWERED
                and self.hosted is not None and self.hosted.keeps_caller(call)
            ):  # fmt: skip
                self._agent_left(call, now)
                return
            if call.state is not CallState.ENDED:
                other = call.b if leg is call.a else call.a
                if other is not None and (other.confirmed or other is call.a):
                    self._send_bye(call, other, now)
                side = "caller" if leg is call.a else "callee"
                self._end(call, now, disposition="answered", hangup_side=side, status=200, reason="OK")
        elif method == "INVITE":
            self._on_reinvite(call, leg, request, tx, now)
        elif method == "REFER":
            self._on_refer(call, leg, request, tx, now)
        elif method in ("OPTIONS", "INFO"):  # answered, not relayed (DTMF by INFO: later)
            self._reply(tx, 200, now)
        else:
            self._reply(tx, 501, now)

    # -- re-INVITE (hold / unhold) -----------------------------------------------------
    def _on_reinvite(self, call: Call, leg: Leg, request: Request, tx: Any, now: float) -> None:
        other = call.b if leg is call.a else call.a
        if call.state is not CallState.ANSWERED or other is None:
            self._reply(tx, 491 if call.state is not CallState.ENDED else 481, now)
            return
        if call.reinvite is not None:
            self._reply(tx, 491, now)  # §14.2 glare: one re-INVITE at a time
            return
        body = b""
        if request.body:
            try:
                offer = SessionDescription.parse(request.body)
                body = self._anchored(other, offer)
            except SdpError as exc:
                self._reply(tx, 488, now, f"Not Acceptable Here ({exc})"[:80])
                return
            target = media_target(offer)
            if target is not None:
                self.media.set_remote(leg.media, *target)
            audio = offer.audio()
            call.on_hold = audio is not None and offer.is_hold(audio)
        self.layer.send_trying(tx, now)
        req = other.request("INVITE", self._via(other.transport), self._contact(other.transport), body=body, content_type=SDP if body else None)
        client_tx = self.layer.send_request(req, other.addr, now, reliable=other.transport == "tcp", transport=other.transport)
        client_tx.owner = call
        call.reinvite = PendingReinvite(leg, tx, client_tx)

    def _on_reinvite_response(self, call: Call, resp: Response, now: float) -> None:
        pending = call.reinvite
        assert pending is not None
        if resp.status < 200:
            return
        from_leg = pending.from_leg
        other = call.b if from_leg is call.a else call.a
        assert other is not None
        call.reinvite = None
        if resp.status >= 300:
            self._reply(pending.server_tx, resp.status, now, resp.reason)
            return
        ack = other.request("ACK", self._via(other.transport), self._contact(other.transport), cseq=resp.cseq[0])
        self.layer.send_stateless(ack, other.addr, other.transport)
        out = Response.for_request(pending.server_tx.request, 200, to_tag=from_leg.local_tag)
        out.add_header("Contact", self._contact(from_leg.transport))
        if resp.body:
            try:
                answer = SessionDescription.parse(resp.body)
                target = media_target(answer)
                if target is not None:
                    self.media.set_remote(other.media, *target)
                out.body = self._anchored(from_leg, answer)
                out.add_header("Content-Type", SDP)
            except SdpError as exc:
                log.info("call %s: re-INVITE answer refused: %s", call.id, exc)
        self.layer.send_2xx_reliably(pending.server_tx, out, now)

    # -- sending --------------------------------------------------------------------
    def _reply(self, tx: Any, status: int, now: float, reason: str | None = None) -> None:
        self.layer.send_response(tx, Response.for_request(tx.request, status, reason), now)

    def _send_bye(self, call: Call, leg: Leg, now: float) -> None:
        bye = leg.request("BYE", self._via(leg.transport), self._contact(leg.transport))
        bye.add_header("User-Agent", self.user_agent)
        tx = self.layer.send_request(bye, leg.addr, now, reliable=leg.transport == "tcp", transport=leg.transport)
        tx.owner = call

    def _send_cancel(self, call: Call, now: float) -> None:
        """CANCEL the callee's INVITE."""
        if call.b_invite is None or call.b is None:
            return
        call.cancel_b = False
        self._cancel_invite(call.b_invite, call.b, now)

    def _cancel_invite(self, invite: Request, b: Leg, now: float) -> None:
        """CANCEL an INVITE we sent (§9.1): same Request-URI, Via branch, From, To."""
        headers = [[n, v] for n, v in invite.headers if n in ("Via", "From", "To", "Call-ID", "Route")]
        headers.append(["Max-Forwards", "70"])
        headers.append(["CSeq", f"{invite.cseq[0]} CANCEL"])
        cancel = Request("CANCEL", invite.uri, headers)
        self.layer.send_request(cancel, b.addr, now, reliable=b.transport == "tcp", transport=b.transport)

    # -- ending ------------------------------------------------------------------------
    def _fail(self, call: Call, status: int, reason: str | None, now: float, *, disposition: str, sip_status: int | None = None) -> None:
        if call.a_tx is not None and call.state is not CallState.ANSWERED:
            self._respond(call, status, now, reason)
        self._end(call, now, disposition=disposition, hangup_side="callee" if sip_status else "edge", status=status, reason=reason or "")

    def _end(
        self,
        call: Call,
        now: float,
        *,
        disposition: str,
        hangup_side: str,
        status: int,
        reason: str,
        cause: str | None = None,
    ) -> None:
        if call.state is CallState.ENDED:
            return
        call.state = CallState.ENDED
        if call.hosted and self.hosted is not None:
            self.hosted.on_call_end(call, now)  # cancels rings, tells the queue
        if call.recording == "" and self.recorder is not None:
            # drains the legs, so before they are released; None when no audio came
            call.recording = self.recorder.stop(call.id)
        for leg in (call.a, call.b):
            if leg is not None and leg.media is not None:
                self.media.release(leg.media)
                self._by_media.pop(leg.media.id, None)
        hairpin = self._echo.pop(call.id, None)  # an echo test's second leg
        if hairpin is not None:
            self.media.release(hairpin)
            self._by_media.pop(hairpin.id, None)
        self.calls.pop(call.id, None)
        if call.hosted and self.hosted is not None:
            self.hosted.drain(now)  # the queue's next moves, with this call's ports free again
        # keep the dialogs findable while retransmissions may still arrive (64*T1)
        heapq.heappush(self._timers, (now + DIALOG_LINGER_S, next(self._seq), call.id, "forget"))
        self._ended[call.id] = call
        self.records.append(
            call_record(
                call, self.wall(), disposition=disposition, hangup_side=hangup_side,
                status=status, reason=reason or "", cause=cause,
            )
        )

    def on_media_event(self, event: tuple[Any, ...], now: float) -> None:
        """An event from the media engine: a digit is noted on its call (the IVR will
        consume them); an RTP timeout ends an answered call."""
        call = self._by_media.get(event[1])
        if call is None:
            return
        if event[0] == "dtmf" and event[1] == call.a.media.id:
            call.digits.append(event[2])
            if call.hosted and self.hosted is not None:
                self.hosted.on_digit(call, event[2], now)
            return
        if event[0] == "play_done" and call.hosted and self.hosted is not None:
            self.hosted.on_play_done(call, event[2], now)
            return
        if event[0] != "timeout" or call.state is not CallState.ANSWERED or call.on_hold:
            return  # silence is expected on hold (RFC 3264 §8.4 sendonly/inactive)
        joined = (call.a.media.id, call.b.media.id if call.b is not None else None)
        if event[1] not in joined:
            return  # an agent leg still ringing carries no media yet
        log.info("call %s: no RTP on leg %s: hanging up", call.id, event[1])
        for leg in (call.a, call.b):
            if leg is not None:
                self._send_bye(call, leg, now)
        self._end(call, now, disposition="answered", hangup_side="edge", status=200,
                  reason="RTP Timeout", cause="rtp-timeout")

    # -- timers ------------------------------------------------------------------------
    def get_timer(self) -> float | None:
        return self._timers[0][0] if self._timers else None

    def handle_timer(self, now: float) -> None:
        while self._timers and self._timers[0][0] <= now:
            _, _, call_id, what = heapq.heappop(self._timers)
            if what == "forget":
                ended = self._ended.pop(call_id, None)
                if ended is not None:
                    self._dialogs.pop((ended.a.call_id, ended.a.local_tag), None)
                    if ended.b is not None:
                        self._dialogs.pop((ended.b.call_id, ended.b.local_tag), None)
                    ended.a_tx = ended.b_tx = ended.reinvite = None  # no cycles left behind
                continue
            call = self.calls.get(call_id)
            if call is None or call.state not in (CallState.ROUTING, CallState.EARLY):
                continue
            if what.startswith("silence:"):  # a trunk that said nothing at all, not even 100
                b = call.b
                if (b is not None and what == f"silence:{b.call_id}" and call.state is CallState.ROUTING
                        and not call.b_provisional and call.alternatives and not self._heard_from(call)):  # fmt: skip
                    self._next_trunk(call, "no answer at all", now)
                continue
            # ring timeout: nobody answered
            self._respond(call, 480, now, "No Answer")
            self._end(call, now, disposition="no-answer", hangup_side="edge", status=480, reason="No Answer")
            if call.b_provisional:
                self._send_cancel(call, now)
            else:
                call.cancel_b = True
