"""The B2BUA's legs for calls the edge answers itself, and blind transfer.

A mixin of :class:`edge_core.sip.b2bua.B2BUA` (kept apart so each file stays readable):
answering a caller with the edge's own media leg, ringing agents with fresh INVITE legs
and joining the one who answers, cancelling rings, the edge hanging up, and REFER
(RFC 3515) from the answering party. The IVR and queue decisions are in ``hosted.py``.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from edge_core.media.sdp import SdpError, SessionDescription, anchor, media_target, payload_types
from edge_core.sip.call import Call, CallState, RingLeg
from edge_core.sip.dialog import Leg
from edge_core.sip.message import (
    NameAddr,
    Request,
    Response,
    SipParseError,
    SipUri,
    new_call_id,
    new_tag,
)

log = logging.getLogger("edge.b2bua")

SDP = "application/sdp"

# What the edge offers when it places a call itself (a callback's first leg, to the
# agent): both G.711 laws and RFC 4733 events; ``anchor`` fills in address and port
# (not 0.0.0.0 here: anchor keeps that, it means hold).
_EDGE_OFFER = (
    b"v=0\r\no=- 0 0 IN IP4 127.0.0.1\r\ns=branchline\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
    b"m=audio 9 RTP/AVP 0 8 101\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:8 PCMA/8000\r\n"
    b"a=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-16\r\na=sendrecv\r\n"
)


class HostedLegs:
    """Mixed into B2BUA; uses its helpers (``_respond``, ``_send_bye``, ``_end`` ...)."""

    # provided by B2BUA
    layer: Any
    media: Any
    hosted: Any
    recorder: Any
    resolve_transfer: Any
    calls: dict[str, Call]
    media_host: str
    domain: str
    user_agent: str
    local: dict[str, tuple[str, int]]
    _by_media: dict[int, Call]
    _echo: dict[str, Any]
    _dialogs: dict[tuple[str, str], tuple[Call, Leg]]
    wall: Any

    if TYPE_CHECKING:  # B2BUA's helpers this mixin calls
        def _caller_leg(self, invite: Request, addr: tuple[str, int], transport: str) -> tuple[Leg, NameAddr]: ...
        def _fail(self, call: Call, status: int, reason: str | None, now: float, *, disposition: str,
                  sip_status: int | None = None) -> None: ...  # fmt: skip
        def _session_id(self, leg: Leg) -> int: ...
        def _respond(self, call: Call, status: int, now: float, reason: str | None = None, sdp: bytes = b"") -> None: ...
        def _via(self, transport: str) -> str: ...
        def _contact(self, transport: str) -> str: ...
        def _cancel_invite(self, invite: Request, b: Leg, now: float) -> None: ...
        def _send_bye(self, call: Call, leg: Leg, now: float) -> None: ...
        def _reply(self, tx: Any, status: int, now: float, reason: str | None = None) -> None: ...
        def _end(self, call: Call, now: float, *, disposition: str, hangup_side: str, status: int,
                 reason: str, cause: str | None = None) -> None: ...  # fmt: skip

    # -- calls the edge answers itself (IVR, queues) ----------------------------------------
    def answer_hosted(
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
        now: float,
    ) -> Call | None:
        """Answer the caller at once with the edge's own media leg (prompts, hold
        music and digits go through it); None when the call could not be answered."""
        a, caller = self._caller_leg(invite, addr, transport)
        call = Call(a, caller.uri, caller_number, dialled, destination, self.wall())
        call.hosted = True
        call.offer = offer
        call.a_tx = tx
        tx.owner = call
        self.calls[call.id] = call
        self._dialogs[(a.call_id, a.local_tag)] = (call, a)
        voice, events = payload_types(offer) if offer is not None else (None, None)
        if offer is None or voice is None:
            self._fail(call, 488, "Not Acceptable Here", now, disposition="rejected")
            return None
        try:
            a.media = self.media.allocate_leg()
        except Exception as exc:
            log.warning("call %s: no media port: %s", call.id, exc)
            self._fail(call, 503, "No Media Ports", now, disposition="failed")
            return None
        self._by_media[a.media.id] = call
        call.codec = "PCMA" if voice == 8 else "PCMU"
        target = media_target(offer)
        if target is not None:
            self.media.set_remote(a.media, *target)
        self.media.set_codec(a.media, voice, events)
        answer = anchor(
            offer, self.media_host, a.media.local_port, session_id=self._session_id(a),
            version=a.next_sdp_version(), allowed=(call.codec, "telephone-event"),
        )
        call.state = CallState.ANSWERED
        call.answer_time = self.wall()
        self._respond(call, 200, now, None, answer.to_bytes())
        return call

    def start_echo(self, call: Call) -> None:
        """The echo test: the caller's leg is paired with a hairpin leg of the edge's own
        whose remote is itself, so every packet the caller sends comes back to them
        through the relay (the engine refuses to pair a leg with itself)."""
        hairpin = self.media.allocate_leg()
        self.media.set_remote(hairpin, self.media_host, hairpin.local_port)
        voice = 8 if call.codec == "PCMA" else 0
        self.media.set_codec(hairpin, voice, None)
        self.media.connect(call.a.media, hairpin)
        self._by_media[hairpin.id] = call
        self._echo[call.id] = hairpin

    def originate(
        self, target: Any, *, from_number: str, to_number: str, destination: str, agent_id: str, now: float
    ) -> Call:
        """A call the edge places itself (a callback): its first leg rings ``target``
        (a registered binding, or anything with ``contact``, ``source``, ``transport``)
        with the edge's own offer. The leg is the call's ``a`` leg and also its one ring:
        when it answers, :meth:`HostedCalls.on_ring_answered` decides what comes next."""
        transport = target.transport
        leg = Leg(
            call_id=new_call_id(self.local[transport][0]), local_tag=new_tag(), local_party="",
            remote_party=f"<{target.contact}>", remote_target=target.contact, addr=target.source,
            transport=transport,
        )  # fmt: skip
        leg.local_party = f"<sip:{from_number}@{self.domain}>;tag={leg.local_tag}"
        call = Call(leg, f"sip:{from_number}@{self.domain}", from_number, to_number, destination, self.wall())
        call.hosted = call.originated = True
        leg.media = self.media.allocate_leg()
        self.calls[call.id] = call
        self._by_media[leg.media.id] = call
        self._dialogs[(leg.call_id, leg.local_tag)] = (call, leg)
        body = anchor(
            SessionDescription.parse(_EDGE_OFFER), self.media_host, leg.media.local_port,
            session_id=self._session_id(leg), version=leg.next_sdp_version(),
        ).to_bytes()
        req = leg.request("INVITE", self._via(transport), self._contact(transport), body=body, content_type=SDP)
        req.add_header("User-Agent", self.user_agent)
        tx = self.layer.send_request(req, leg.addr, now, reliable=transport == "tcp", transport=transport)
        tx.owner = call
        call.rings[tx] = RingLeg(leg, agent_id, req, tx)
        return call

    def end_unanswered(self, call: Call, status: int, now: float, *, cause: str) -> None:
        """An originated call whose first leg never answered (busy, no answer, cancelled)."""
        disposition = {486: "busy", 600: "busy", 487: "cancelled"}.get(status, "no-answer")
        self._end(call, now, disposition=disposition, hangup_side="callee", status=status,
                  reason="Not Answered", cause=cause)  # fmt: skip

    def offer_leg(self, call: Call, binding: Any, agent_id: str, now: float) -> RingLeg:
        """Ring one agent (a registered binding) for a hosted call."""
        transport = binding.transport
        leg = Leg(
            call_id=new_call_id(self.local[transport][0]),
            local_tag=new_tag(),
            local_party="",
            remote_party=f"<{binding.contact}>",
            remote_target=binding.contact,
            addr=binding.source,
            transport=transport,
        )
        leg.local_party = f"<sip:{call.from_number}@{self.domain}>;tag={leg.local_tag}"
        leg.media = self.media.allocate_leg()
        self._by_media[leg.media.id] = call
        assert call.offer is not None
        body = anchor(
            call.offer, self.media_host, leg.media.local_port, session_id=self._session_id(leg),
            version=leg.next_sdp_version(), allowed=(call.codec, "telephone-event"),
        ).to_bytes()
        req = leg.request("INVITE", self._via(transport), self._contact(transport), body=body, content_type=SDP)
        req.add_header("User-Agent", self.user_agent)
        tx = self.layer.send_request(req, leg.addr, now, reliable=transport == "tcp", transport=transport)
        tx.owner = call
        ring = RingLeg(leg, agent_id, req, tx)
        call.rings[tx] = ring
        self._dialogs[(leg.call_id, leg.local_tag)] = (call, leg)
        return ring

    def cancel_ring(self, call: Call, ring: RingLeg, now: float) -> None:
        """Stop ringing an agent: CANCEL once it has sent a provisional (§9.1)."""
        if ring.tx not in call.rings:
            return
        if ring.provisional:
            self._cancel_invite(ring.invite, ring.leg, now)
        else:
            ring.cancel_pending = True

    def hang_up(self, call: Call, now: float, *, cause: str, reason: str) -> None:
        """The edge ends an answered call: BYE to whoever is on it."""
        if call.state is CallState.ENDED:
            return
        for leg in (call.a, call.b):
            if leg is not None:
                self._send_bye(call, leg, now)
        self._end(call, now, disposition="answered", hangup_side="edge", status=200, reason=reason, cause=cause)

    def _on_ring_response(self, call: Call, ring: RingLeg, resp: Response, now: float) -> None:
        leg = ring.leg
        if resp.status < 200:
            if resp.status >= 100:  # 100 Trying too: the callee's server has the INVITE (§9.1)
                ring.provisional = True
                if ring.cancel_pending:
                    self._cancel_invite(ring.invite, leg, now)
            return
        del call.rings[ring.tx]
        if resp.status >= 300:
            if leg is call.a:  # an originated call's first leg: the media goes with the call
                if self.hosted is not None and call.state is not CallState.ENDED:
                    self.hosted.on_ring_failed(call, ring, resp.status, now)
                return
            self._drop_ring_media(leg)
            if ring.transferor is not None:  # the caller stays with the transferor
                if call.state is not CallState.ENDED:
                    self._notify_refer(call, ring.transferor, f"{resp.status} {resp.reason}", now)
            elif self.hosted is not None and call.state is not CallState.ENDED:
                self.hosted.on_ring_failed(call, ring, resp.status, now)
            return
        leg.learn_remote(resp.header("To") or "", resp.header("Contact"), resp.header_values("Record-Route"))
        leg.confirmed = True
        ack = leg.request("ACK", self._via(leg.transport), self._contact(leg.transport), cseq=ring.invite.cseq[0])
        self.layer.send_stateless(ack, leg.addr, leg.transport)
        if leg is call.a:
            self._originated_answered(call, ring, resp, ack, now)
            return
        if ring.transferor is not None and call.state is CallState.ANSWERED:
            self._transfer_answered(call, ring, ack, now)
            wanted = True
        else:
            wanted = (
                call.state is CallState.ANSWERED
                and call.b is None
                and self.hosted is not None
                and self.hosted.on_ring_answered(call, ring, now)
            )
        if not wanted:  # answered too late: the caller left or another agent answered
            self._send_bye(call, leg, now)
            self._drop_ring_media(leg)
            return
        if ring.transferor is None:
            call.b, call.b_invite, call.b_ack, call.b_tx = leg, ring.invite, ack, ring.tx
        try:
            answer = SessionDescription.parse(resp.body)
            target = media_target(answer)
            if target is not None:
                self.media.set_remote(leg.media, *target)
            voice, events = payload_types(answer)
            self.media.set_codec(leg.media, voice if voice is not None else (8 if call.codec == "PCMA" else 0), events)
        except SdpError as exc:
            log.info("call %s: agent SDP refused: %s", call.id, exc)
        self.media.connect(call.a.media, leg.media)
        if self.recorder is not None and call.recording is None:
            self.recorder.start(call.id, call.a.media, leg.media)
            call.recording = ""

    def _originated_answered(self, call: Call, ring: RingLeg, resp: Response, ack: Request, now: float) -> None:
        """The first leg of a call the edge placed answered: its SDP becomes the offer
        the next leg is anchored from."""
        if call.state is CallState.ENDED:
            self._send_bye(call, call.a, now)
            return
        try:
            answer = SessionDescription.parse(resp.body)
            voice, events = payload_types(answer)
            target = media_target(answer)
        except SdpError as exc:
            log.info("call %s: answer SDP refused: %s", call.id, exc)
            voice = None
        if voice is None:
            self._send_bye(call, call.a, now)
            self._end(call, now, disposition="failed", hangup_side="edge", status=488,
                      reason="Not Acceptable Here", cause="bad-sdp")  # fmt: skip
            return
        if target is not None:
            self.media.set_remote(call.a.media, *target)
        self.media.set_codec(call.a.media, voice, events)
        call.codec = "PCMA" if voice == 8 else "PCMU"
        call.offer = answer
        call.state = CallState.ANSWERED
        call.answer_time = self.wall()
        if self.hosted is None or not self.hosted.on_ring_answered(call, ring, now):
            self._send_bye(call, call.a, now)
            self._end(call, now, disposition="cancelled", hangup_side="edge", status=200,
                      reason="Answered Too Late", cause="answered-late")  # fmt: skip

    # -- blind transfer (RFC 3515) ---------------------------------------------------------
    def _on_refer(self, call: Call, leg: Leg, request: Request, tx: Any, now: float) -> None:
        """The callee (an agent) hands the caller on to another number."""
        if call.state is not CallState.ANSWERED or leg is not call.b or call.rings:
            self._reply(tx, 403, now, "Only The Answering Party May Transfer")
            return
        try:
            refer_to = NameAddr.parse(request.header("Refer-To") or "").uri
            target_uri, _, uri_headers = refer_to.partition("?")
            number = SipUri.parse(target_uri).user or ""
            replaces = _replaces(uri_headers)
        except (SipParseError, ValueError):
            self._reply(tx, 400, now, "Bad Refer-To")
            return
        if replaces is not None:
            self._attended_transfer(call, leg, replaces, tx, now)
            return
        binding = self.resolve_transfer(number) if self.resolve_transfer is not None else None
        self._reply(tx, 202, now)
        if binding is None:
            self._notify_refer(call, leg, "404 Not Found", now)
            return
        self._notify_refer(call, leg, "100 Trying", now, final=False)
        ring = self.offer_leg(call, binding, "", now)
        ring.transferor = leg

    def _attended_transfer(self, call: Call, leg: Leg, replaces: tuple[str, str, str], tx: Any, now: float) -> None:
        """REFER with Replaces (RFC 3891 in a Refer-To, RFC 5589 §7): the transferor
        talks to the caller here and to the target in a consultation call through this
        edge; the caller and the target are joined and the transferor's two legs let go.
        The edge anchors both legs' media, so no re-INVITE is needed: the relay is
        re-paired. Both legs must carry the same G.711 law (no transcoding)."""
        call_id, to_tag, from_tag = replaces
        found = self._dialogs.get((call_id, to_tag))
        consult = found[0] if found is not None else None
        if (
            consult is None or consult is call or found is None or found[1] is not consult.a
            or consult.state is not CallState.ANSWERED or consult.b is None
            or consult.a.remote_tag not in (None, "", from_tag)
        ):  # fmt: skip
            self._reply(tx, 481, now, "Consultation Call Not Found")
            return
        self._reply(tx, 202, now)
        target = consult.b
        self._notify_refer(call, leg, "200 OK", now)
        if call.recording == "" and self.recorder is not None:
            call.recording = self.recorder.stop(call.id)  # the recording covers the first party
        if consult.recording == "" and self.recorder is not None:
            consult.recording = self.recorder.stop(consult.id)
        self.media.connect(call.a.media, target.media)
        # the transferor's legs go: its leg of this call now, its consultation leg with
        # the consultation call's record (which ends here, its far end moving over)
        self._send_bye(call, leg, now)
        self._drop_ring_media(leg)
        self._send_bye(consult, consult.a, now)
        consult.b = None
        self._end(consult, now, disposition="answered", hangup_side="caller", status=200,
                  reason="Transferred", cause="transferred")  # fmt: skip
        if call.hosted and self.hosted is not None:
            self.hosted.on_transferred(call, now)
        call.b, call.b_invite, call.b_ack, call.b_tx = target, consult.b_invite, consult.b_ack, consult.b_tx
        self._dialogs[(target.call_id, target.local_tag)] = (call, target)
        assert target.media is not None
        self._by_media[target.media.id] = call
        call.transfers += 1

    def _notify_refer(self, call: Call, leg: Leg, status: str, now: float, *, final: bool = True) -> None:
        """The implicit subscription of a REFER: progress as a message/sipfrag (§2.4.5)."""
        body = f"SIP/2.0 {status}\r\n".encode()
        notify = leg.request("NOTIFY", self._via(leg.transport), self._contact(leg.transport), body=body,
                             content_type="message/sipfrag;version=2.0")  # fmt: skip
        notify.add_header("Event", "refer")
        notify.add_header("Subscription-State", "terminated;reason=noresource" if final else "active;expires=60")
        sent = self.layer.send_request(notify, leg.addr, now, reliable=leg.transport == "tcp", transport=leg.transport)
        sent.owner = call

    def _transfer_answered(self, call: Call, ring: RingLeg, ack: Request, now: float) -> None:
        """The transfer target answered: the caller talks to it; the transferor goes."""
        transferor = ring.transferor
        assert transferor is not None
        self._notify_refer(call, transferor, "200 OK", now)
        if call.recording == "" and self.recorder is not None:
            call.recording = self.recorder.stop(call.id)  # the recording covers the first party
        self._send_bye(call, transferor, now)
        if transferor.media is not None:
            self._drop_ring_media(transferor)
        if call.hosted and self.hosted is not None:
            self.hosted.on_transferred(call, now)
        call.b, call.b_invite, call.b_ack, call.b_tx = ring.leg, ring.invite, ack, ring.tx
        call.transfers += 1

    def _agent_left(self, call: Call, now: float) -> None:
        """The agent hung up and the flow keeps the caller (a survey): drop the agent's
        leg, end its recording, and hand the caller back to the flow."""
        b = call.b
        assert b is not None
        if call.recording == "" and self.recorder is not None:
            call.recording = self.recorder.stop(call.id)
        if b.media is not None:
            self.media.disconnect(call.a.media)
        self._drop_ring_media(b)
        call.b = None
        assert self.hosted is not None
        self.hosted.on_agent_left(call, now)

    # -- message waiting (RFC 3842) --------------------------------------------------------
    def message_waiting(self, binding: Any, mailbox: str, new: int, now: float) -> None:
        """Tell a registered phone that ``mailbox`` holds ``new`` unheard messages: an
        unsolicited NOTIFY of the message-summary package (what PBXs send to light the
        phone's message lamp without a SUBSCRIBE)."""
        account = f"sip:{mailbox}@{self.domain}"
        body = f"Messages-Waiting: {'yes' if new else 'no'}\r\nMessage-Account: {account}\r\nVoice-Message: {new}/0\r\n"
        self.send_out_of_dialog(
            "NOTIFY", binding.contact, binding.source, binding.transport, mailbox, now,
            body=body.encode(), content_type="application/simple-message-summary",
            headers=[("Event", "message-summary"), ("Subscription-State", "active")],
        )  # fmt: skip

    def send_out_of_dialog(
        self, method: str, uri: str, addr: tuple[str, int], transport: str, from_user: str, now: float, *,
        body: bytes = b"", content_type: str | None = None, headers: list[tuple[str, str]] | None = None,
    ) -> Any:
        """A request outside any dialog (OPTIONS keepalive, message-waiting NOTIFY):
        its client transaction, whose ``owner`` the caller may set."""
        leg = Leg(
            call_id=new_call_id(self.local[transport][0]), local_tag=new_tag(),
            local_party="", remote_party=f"<{uri}>", remote_target=uri, addr=addr, transport=transport,
        )  # fmt: skip
        leg.local_party = f"<sip:{from_user}@{self.domain}>;tag={leg.local_tag}"
        req = leg.request(method, self._via(transport), self._contact(transport), body=body, content_type=content_type)
        for name, value in headers or ():
            req.add_header(name, value)
        req.add_header("User-Agent", self.user_agent)
        return self.layer.send_request(req, addr, now, reliable=transport == "tcp", transport=transport)

    def _drop_ring_media(self, leg: Leg) -> None:
        if leg.media is not None:
            self._by_media.pop(leg.media.id, None)
            self.media.release(leg.media)
            leg.media = None
        self._dialogs.pop((leg.call_id, leg.local_tag), None)


def _replaces(uri_headers: str) -> tuple[str, str, str] | None:
    """``(call-id, to-tag, from-tag)`` of a ``Replaces`` header carried in a Refer-To
    URI's headers (``?Replaces=id%3Bto-tag%3Dx%3Bfrom-tag%3Dy``), or None if absent."""
    from urllib.parse import unquote

    for header in uri_headers.split("&") if uri_headers else ():
        name, _, value = header.partition("=")
        if name.lower() != "replaces":
            continue
        call_id, *params = unquote(value).split(";")
        tags = dict(p.strip().partition("=")[::2] for p in params)
        if not call_id.strip() or "to-tag" not in tags or "from-tag" not in tags:
            raise ValueError(f"incomplete Replaces: {unquote(value)!r}")
        return call_id.strip(), tags["to-tag"], tags["from-tag"]
    return None
