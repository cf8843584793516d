"""Simulated SIP phones on the edge's own sans-I/O stack, and ``branchline sim``.

A :class:`Phone` is one UDP socket for SIP (a :class:`SipEndpoint` with the phone as
its "core") plus one :class:`RtpStream` per call. It registers with digest auth,
places calls (answering a 407 with Proxy-Authorization), auto-answers calls sent to it
(180, then 200 after ``ring_delay_s``), streams 20 ms PCMU both ways and hangs up.

The B2BUA gives the callee a new Call-ID, so a call is recognised on the far side by
its SDP session name (``s=``), which the edge's anchoring keeps: the caller puts a
random token there and the callee files the call under it. That lets one process
report both sides of every call.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import uvloop

from appliance.sim.rtp import RtpStream
from edge_core.config.schema import SiteConfig
from edge_core.media.sdp import SdpError, SessionDescription, media_target
from edge_core.sip import transaction as txl
from edge_core.sip.auth import build_authorization
from edge_core.sip.message import (
    NameAddr,
    Request,
    Response,
    SipParseError,
    SipUri,
    new_branch,
    new_call_id,
    new_tag,
)
from edge_core.sip.transport import SipEndpoint, UdpProtocol

__all__ = ["CallResult", "IncomingCall", "Phone", "SimError", "main", "run_sim", "summary"]

Addr = tuple[str, int]
USER_AGENT = "Branchline-sim"
REQUEST_TIMEOUT_S = 40.0  # above Timer B/F (64*T1 = 32 s): the layer's 408 comes first


CALLER_TONE_HZ = 400.0
CALLEE_TONE_HZ = 1000.0


class SimError(Exception):
    """A phone could not do what it was asked (registration refused, no answer ...)."""


@dataclass(slots=True)
class CallResult:
    """What one simulated call did, seen from both phones."""

    caller: str
    callee: str
    status: int = 0
    """Final SIP status of the INVITE (0: none arrived)."""
    reason: str = ""
    ringing_s: float | None = None
    """INVITE sent -> first 180/183."""
    answered_s: float | None = None
    """INVITE sent -> 200."""
    caller_sent: int = 0
    caller_received: int = 0
    callee_sent: int | None = None
    """None when the callee phone is not in this process (or never saw the call)."""
    callee_received: int | None = None
    hangup_side: str | None = None
    """"caller", "callee" or None (never answered)."""
    digits: str = ""
    """DTMF the caller sent as RFC 4733 telephone-events."""
    error: str = ""

    @property
    def answered(self) -> bool:
        return self.status == 200

    @property
    def rtp_both_ways(self) -> bool:
        return self.caller_received > 0 and bool(self.callee_received)

    @property
    def ok(self) -> bool:
        return self.answered and self.rtp_both_ways and self.hangup_side is not None and not self.error

    def line(self, index: int) -> str:
        ms = lambda s: "-" if s is None else f"{s * 1000:.0f} ms"  # noqa: E731
        callee = "?" if self.callee_sent is None else f"{self.callee_sent}/{self.callee_received}"
        text = (
            f"call {index:>3}: {self.caller} -> {self.callee}  {self.status} {self.reason:<24} "
            f"ringing {ms(self.ringing_s):>7}  answered {ms(self.answered_s):>7}  "
            f"rtp sent/recv caller {self.caller_sent}/{self.caller_received} callee {callee}  "
            f"hangup {self.hangup_side or '-'}"
        )
        return f"{text}  ERROR {self.error}" if self.error else text


@dataclass(eq=False)
class _Dialog:
    """One call leg as a phone sees it (RFC 3261 §12): enough to ACK, BYE and be found."""

    call_id: str
    local_tag: str
    local_party: str  # From (ours) as a header value, tag included
    remote_party: str  # To (theirs), tag included once known
    remote_target: str
    cseq: int
    addr: Addr  # where in-dialog requests go
    rtp: RtpStream | None = None
    ack: Request | None = None  # our ACK for their 2xx, re-sent if the 2xx repeats
    token: str = ""  # set on calls we answer: the key of Phone.incoming
    ended: asyncio.Event = field(default_factory=asyncio.Event)


@dataclass(eq=False)
class IncomingCall:
    """A call the phone was offered and (normally) answered."""

    token: str
    """The caller's SDP session name: how the simulator pairs both sides."""
    caller: str
    invite_tx: Any
    dialog: _Dialog
    answered: bool = False
    cancelled: bool = False
    task: asyncio.Task[None] | None = None

    @property
    def packets_sent(self) -> int:
        return self.dialog.rtp.packets_sent if self.dialog.rtp else 0

    @property
    def packets_received(self) -> int:
        return self.dialog.rtp.packets_received if self.dialog.rtp else 0


class _ClientRequest:
    """Owner of a client transaction: provisional responses to a callback, the final one
    to a future."""

    def __init__(self, on_provisional: Callable[[Response], None] | None) -> None:
        self.on_provisional = on_provisional
        self.final: asyncio.Future[Response] = asyncio.get_running_loop().create_future()


class Phone:
    """A SIP phone for extension ``number`` registered at the edge ``edge_addr``."""

    def __init__(self, number: str, password: str, edge_addr: Addr, domain: str, *,
                 host: str = "127.0.0.1", ring_delay_s: float = 0.1, echo: bool = False,
                 auto_answer: bool = True) -> None:  # fmt: skip
        self.number = number
        self.password = password
        self.edge_addr = edge_addr
        self.domain = domain
        self.host = host
        self.ring_delay_s = ring_delay_s
        self.echo = echo
        self.hangup_after_s: float | None = None  # answered calls: hang up after this long
        self.notifications: list[bytes] = []  # NOTIFY bodies received (REFER progress, sipfrag)
        self.auto_answer = auto_answer
        self.layer = txl.TransactionLayer(txl.TimerSettings())
        self.endpoint: SipEndpoint | None = None
        self.local: Addr = (host, 0)
        self.incoming: dict[str, IncomingCall] = {}
        self._dialogs: dict[tuple[str, str], _Dialog] = {}
        self._incoming_done: dict[str, asyncio.Future[IncomingCall]] = {}
        self._register_call_id = ""
        self._register_cseq = 0
        self.aor = f"sip:{number}@{domain}"

    # -- life cycle ------------------------------------------------------------------
    async def start(self) -> Phone:
        loop = asyncio.get_running_loop()
        self.endpoint = endpoint = SipEndpoint(self.layer, self, 65535)
        transport, _ = await loop.create_datagram_endpoint(lambda: UdpProtocol(endpoint), local_addr=(self.host, 0))
        self.local = transport.get_extra_info("sockname")[:2]
        return self

    async def close(self) -> None:
        for dialog in self._dialogs.values():
            if dialog.rtp is not None:
                dialog.rtp.close()
        tasks = [inc.task for inc in self.incoming.values() if inc.task is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if self.endpoint is not None:
            self.endpoint.close()

    async def __aenter__(self) -> Phone:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # -- requests we send ----------------------------------------------------------------
    @property
    def contact(self) -> str:
        return f"<sip:{self.number}@{self.local[0]}:{self.local[1]}>"

    def _via(self) -> str:
        return f"SIP/2.0/UDP {self.local[0]}:{self.local[1]};branch={new_branch()};rport"

    def _request(self, method: str, uri: str, from_: str, to: str, call_id: str, cseq: int,
                 body: bytes = b"") -> Request:  # fmt: skip
        headers = [
            ["Via", self._via()], ["Max-Forwards", "70"], ["From", from_], ["To", to],
            ["Call-ID", call_id], ["CSeq", f"{cseq} {method}"], ["User-Agent", USER_AGENT],
        ]  # fmt: skip
        if method in ("INVITE", "REGISTER"):
            headers.append(["Contact", self.contact])
        if body:
            headers.append(["Content-Type", "application/sdp"])
        return Request(method, uri, headers, body)

    def _flush(self) -> None:
        assert self.endpoint is not None, "phone not started"
        self.endpoint.step()

    async def _transact(self, req: Request, addr: Addr,
                        on_provisional: Callable[[Response], None] | None = None) -> Response:  # fmt: skip
        """Send ``req`` in a client transaction; the final response (408 on timeout)."""
        owner = _ClientRequest(on_provisional)
        tx = self.layer.send_request(req, addr, asyncio.get_running_loop().time())
        tx.owner = owner
        self._flush()
        try:
            return await asyncio.wait_for(owner.final, REQUEST_TIMEOUT_S)
        except TimeoutError:
            return Response.for_request(req, 408, "Request Timeout (simulator)")

    def _authorize(self, req: Request, resp: Response, cseq: int) -> Request:
        """``req`` again with credentials for the 401/407 ``resp``: new branch, CSeq+1."""
        proxy = resp.status == 407
        challenges = resp.header_values("Proxy-Authenticate" if proxy else "WWW-Authenticate")
        credentials, problems = None, []
        for challenge in challenges:  # the server lists its preferred algorithm first
            try:
                credentials = build_authorization(
                    challenge, method=req.method, uri=req.uri, username=self.number,
                    password=self.password, cnonce=os.urandom(8).hex(),
                )  # fmt: skip
                break
            except ValueError as exc:
                problems.append(str(exc))
        if credentials is None:
            raise SimError(f"{self.number}: cannot answer the {resp.status} challenge: "
                           f"{'; '.join(problems) or 'none offered'}")  # fmt: skip
        again = Request(req.method, req.uri, [list(h) for h in req.headers], req.body)
        again.set_header("Via", self._via())
        again.set_header("CSeq", f"{cseq} {req.method}")
        again.remove_header("Authorization")
        again.remove_header("Proxy-Authorization")
        again.add_header("Proxy-Authorization" if proxy else "Authorization", credentials)
        return again

    async def register(self, expires: int = 300) -> Response:
        """REGISTER (answering one digest challenge); raises :class:`SimError` unless 200."""
        if not self._register_call_id:
            self._register_call_id = new_call_id(self.local[0])
        self._register_cseq += 1
        aor = f"<{self.aor}>"
        req = self._request("REGISTER", f"sip:{self.domain}", f"{aor};tag={new_tag()}", aor,
                            self._register_call_id, self._register_cseq)  # fmt: skip
        req.add_header("Expires", str(expires))
        resp = await self._transact(req, self.edge_addr)
        for _ in range(2):  # a challenge, then at most one stale-nonce retry
            if resp.status not in (401, 407):
                break
            self._register_cseq += 1
            req = self._authorize(req, resp, self._register_cseq)
            resp = await self._transact(req, self.edge_addr)
        if resp.status != 200:
            raise SimError(f"{self.number}: REGISTER to {self.edge_addr[0]}:{self.edge_addr[1]} "
                           f"answered {resp.status} {resp.reason}")  # fmt: skip
        return resp

    # -- placing a call --------------------------------------------------------------------
    def _sdp(self, port: int, token: str) -> bytes:
        session = int(time.time())
        lines = [
            "v=0", f"o=- {session} {session} IN IP4 {self.host}", f"s={token}",
            f"c=IN IP4 {self.host}", "t=0 0", f"m=audio {port} RTP/AVP 0 101",
            "a=rtpmap:0 PCMU/8000", "a=rtpmap:101 telephone-event/8000", "a=fmtp:101 0-15",
            "a=ptime:20", "a=sendrecv",
        ]  # fmt: skip
        return ("\r\n".join(lines) + "\r\n").encode()

    async def call(self, number: str, talk_s: float, *, callee: Phone | None = None,
                   answer_timeout_s: float = 60.0, digits: str = "",
                   silent_after_s: float | None = None) -> CallResult:  # fmt: skip
        """Call ``number``, talk for ``talk_s`` and hang up; never raises for call failures.

        With ``callee`` (the phone that should ring, in this process) the result also
        carries the far side's RTP counters.
        """
        loop = asyncio.get_running_loop()
        result = CallResult(self.number, number)
        rtp = await RtpStream.open(self.host, echo=self.echo, tone_hz=CALLER_TONE_HZ, digits=digits)
        result.digits = digits
        token = f"sim-{os.urandom(6).hex()}"
        tag = new_tag()
        dialog = _Dialog(new_call_id(self.local[0]), tag, f'"{self.number}" <{self.aor}>;tag={tag}',
                         f"<sip:{number}@{self.domain}>", f"sip:{number}@{self.domain}", 1,
                         self.edge_addr, rtp)  # fmt: skip
        req = self._request("INVITE", dialog.remote_target, dialog.local_party, dialog.remote_party,
                            dialog.call_id, dialog.cseq, self._sdp(rtp.local[1], token))  # fmt: skip
        self._dialogs[(dialog.call_id, tag)] = dialog
        start = loop.time()

        def on_provisional(resp: Response) -> None:
            if resp.status in (180, 183) and result.ringing_s is None:
                result.ringing_s = loop.time() - start

        try:
            resp = await asyncio.wait_for(self._transact(req, self.edge_addr, on_provisional), answer_timeout_s)
            if resp.status in (401, 407):
                dialog.cseq += 1
                req = self._authorize(req, resp, dialog.cseq)
                resp = await asyncio.wait_for(self._transact(req, self.edge_addr, on_provisional), answer_timeout_s)
        except (TimeoutError, SimError) as exc:
            result.error = str(exc) or "no final response"
            rtp.close()
            return result
        result.status, result.reason = resp.status, resp.reason
        if resp.status != 200:
            rtp.close()
            return result
        result.answered_s = loop.time() - start
        self._confirm(dialog, resp)
        try:
            answer = SessionDescription.parse(resp.body)
            rtp.remote = media_target(answer)
        except SdpError as exc:
            result.error = f"bad answer SDP: {exc}"
        talk = asyncio.create_task(rtp.talk(talk_s if rtp.remote else 0.0, silent_after_s=silent_after_s))
        ended = asyncio.create_task(dialog.ended.wait())
        await asyncio.wait({talk, ended}, return_when=asyncio.FIRST_COMPLETED)
        rtp.stop()
        await talk
        if dialog.ended.is_set():
            result.hangup_side = "callee"
        else:
            ended.cancel()
            result.hangup_side = "caller"
            dialog.cseq += 1
            bye = self._request("BYE", dialog.remote_target, dialog.local_party, dialog.remote_party,
                                dialog.call_id, dialog.cseq)  # fmt: skip
            bye_resp = await self._transact(bye, dialog.addr)
            dialog.ended.set()
            if bye_resp.status != 200:
                result.error = f"BYE answered {bye_resp.status} {bye_resp.reason}"
        rtp.close()
        result.caller_sent, result.caller_received = rtp.packets_sent, rtp.packets_received
        if callee is not None:
            try:
                inc = await callee.incoming_call_ended(token, timeout_s=5.0)
                result.callee_sent, result.callee_received = inc.packets_sent, inc.packets_received
            except TimeoutError:
                result.error = result.error or f"{callee.number} never saw the call end"
        return result

    def _confirm(self, dialog: _Dialog, resp: Response) -> None:
        """The 2xx arrived: learn the dialog (§12.1.2) and ACK it (§13.2.2.4)."""
        dialog.remote_party = resp.header("To") or dialog.remote_party
        contact = resp.header("Contact")
        if contact:
            dialog.remote_target = NameAddr.parse(contact).uri
            dialog.addr = _uri_addr(dialog.remote_target, self.edge_addr)
        ack = self._request("ACK", dialog.remote_target, dialog.local_party, dialog.remote_party,
                            dialog.call_id, dialog.cseq)  # fmt: skip
        ack.remove_header("Contact")
        dialog.ack = ack
        self.layer.send_stateless(ack, dialog.addr)
        self._flush()

    # -- answering -------------------------------------------------------------------------
    async def incoming_call_ended(self, token: str, timeout_s: float) -> IncomingCall:
        """Wait until the incoming call filed under ``token`` has ended."""
        waiter = self._incoming_done.setdefault(token, asyncio.get_running_loop().create_future())
        return await asyncio.wait_for(asyncio.shield(waiter), timeout_s)

    def _incoming_finished(self, inc: IncomingCall) -> None:
        waiter = self._incoming_done.setdefault(inc.token, asyncio.get_running_loop().create_future())
        if not waiter.done():
            waiter.set_result(inc)

    def _on_invite(self, req: Request, tx: Any, addr: Addr, now: float) -> None:
        try:
            offer = SessionDescription.parse(req.body)
            caller = NameAddr.parse(req.header("From") or "")
            target = NameAddr.parse(req.header("Contact") or caller.uri).uri
        except (SdpError, SipParseError):
            self.layer.send_response(tx, Response.for_request(req, 488, to_tag=new_tag()), now)
            return
        tag = new_tag()
        dialog = _Dialog(req.call_id, tag, f"{req.header('To')};tag={tag}", req.header("From") or "",
                         target, 0, addr, token=offer.session_name)  # fmt: skip
        inc = IncomingCall(offer.session_name, caller.uri, tx, dialog)
        tx.owner = inc
        self.incoming[inc.token] = inc
        self._dialogs[(dialog.call_id, tag)] = dialog
        self.layer.send_trying(tx, now)
        if not self.auto_answer:
            return
        self.layer.send_response(tx, self._response(req, 180, dialog), now)
        inc.task = asyncio.get_running_loop().create_task(self._answer(inc, media_target(offer)))

    def _response(self, req: Request, status: int, dialog: _Dialog, body: bytes = b"") -> Response:
        resp = Response.for_request(req, status, to_tag=dialog.local_tag)
        resp.add_header("Contact", self.contact)
        if body:
            resp.add_header("Content-Type", "application/sdp")
            resp.body = body
        return resp

    async def _answer(self, inc: IncomingCall, target: Addr | None) -> None:
        await asyncio.sleep(self.ring_delay_s)  # the simulated user picking up
        if inc.cancelled:
            return
        dialog = inc.dialog
        dialog.rtp = rtp = await RtpStream.open(self.host, echo=self.echo, tone_hz=CALLEE_TONE_HZ)
        rtp.remote = target
        sdp = self._sdp(rtp.local[1], inc.token)
        loop = asyncio.get_running_loop()
        inc.answered = True
        self.layer.send_2xx_reliably(inc.invite_tx, self._response(inc.invite_tx.request, 200, dialog, sdp), loop.time())
        self._flush()
        await rtp.talk(self.hangup_after_s)  # None: until the BYE stops it
        if self.hangup_after_s is not None and not dialog.ended.is_set():
            # the simulated user hangs up first (an agent finishing a call)
            dialog.cseq += 1
            bye = self._request("BYE", dialog.remote_target, dialog.local_party, dialog.remote_party,
                                dialog.call_id, dialog.cseq)  # fmt: skip
            await self._transact(bye, dialog.addr)
            self._end_incoming(inc)

    async def transfer(self, token: str, number: str, *, consult: str | None = None) -> Response:
        """Transfer an answered incoming call to ``number`` (REFER, RFC 3515): blind, or
        attended when ``consult`` names the number of this phone's answered outgoing
        consultation call, which the REFER's Replaces (RFC 3891) then points at. The
        final response to the REFER (202 when accepted); progress arrives by NOTIFY."""
        dialog = self.incoming[token].dialog
        refer_to = f"sip:{number}@{self.domain}"
        if consult is not None:
            other = self.outgoing_dialog(consult)
            if other is None:
                raise SimError(f"no answered call to {consult} to replace")
            remote_tag = NameAddr.parse(other.remote_party).tag or ""
            replaces = f"{other.call_id};to-tag={remote_tag};from-tag={other.local_tag}"
            refer_to += "?Replaces=" + urllib.parse.quote(replaces, safe="")
        dialog.cseq += 1
        refer = self._request("REFER", dialog.remote_target, dialog.local_party, dialog.remote_party,
                              dialog.call_id, dialog.cseq)  # fmt: skip
        refer.add_header("Refer-To", f"<{refer_to}>")
        refer.add_header("Contact", self.contact)
        return await self._transact(refer, dialog.addr)

    def outgoing_dialog(self, number: str) -> _Dialog | None:
        """The answered, not ended call this phone placed to ``number``, if any."""
        for dialog in self._dialogs.values():
            if (not dialog.token and dialog.ack is not None and not dialog.ended.is_set()
                    and f"sip:{number}@" in dialog.remote_party):  # fmt: skip
                return dialog
        return None

    def _end_incoming(self, inc: IncomingCall) -> None:
        if inc.dialog.rtp is not None:
            inc.dialog.rtp.close()
        inc.dialog.ended.set()
        self._incoming_finished(inc)

    # -- the SipEndpoint "core" interface -----------------------------------------------
    def handle_event(self, event: object, now: float) -> None:
        if isinstance(event, txl.ResponseReceived):
            self._on_response(event.response, event.transaction)
        elif isinstance(event, txl.TransactionTimedOut):
            owner = event.transaction.owner
            if isinstance(owner, _ClientRequest) and not owner.final.done():
                owner.final.set_result(Response.for_request(event.transaction.request, 408))
        elif isinstance(event, txl.RequestReceived):
            self._on_request(event.request, event.transaction, event.addr, now)
        elif isinstance(event, txl.CancelReceived):
            inc = event.invite_transaction.owner
            if isinstance(inc, IncomingCall) and not inc.answered:
                inc.cancelled = True
                self.layer.send_response(event.invite_transaction,
                                         self._response(event.invite_transaction.request, 487, inc.dialog), now)  # fmt: skip
                self._end_incoming(inc)
        elif isinstance(event, txl.StrayResponse):
            self._resend_ack(event.response)
        elif isinstance(event, txl.AckTimedOut):
            inc = event.transaction.owner
            if isinstance(inc, IncomingCall):
                self._end_incoming(inc)

    def get_timer(self) -> float | None:
        return None

    def handle_timer(self, now: float) -> None:
        pass

    def _on_response(self, resp: Response, tx: Any) -> None:
        owner = tx.owner
        if not isinstance(owner, _ClientRequest):
            return
        if resp.status < 200:
            if owner.on_provisional is not None:
                owner.on_provisional(resp)
        elif not owner.final.done():
            owner.final.set_result(resp)
        else:
            self._resend_ack(resp)  # RFC 6026: a repeated 2xx means our ACK was lost

    def _resend_ack(self, resp: Response) -> None:
        if resp.status >= 300 or resp.cseq[1] != "INVITE":
            return
        dialog = self._dialogs.get((resp.call_id, resp.from_tag or ""))
        if dialog is not None and dialog.ack is not None:
            self.layer.send_stateless(dialog.ack, dialog.addr)

    def _on_request(self, req: Request, tx: Any, addr: Addr, now: float) -> None:
        if req.to_tag is None:
            if req.method == "INVITE":
                self._on_invite(req, tx, addr, now)
            elif req.method == "OPTIONS":
                self.layer.send_response(tx, Response.for_request(req, 200, to_tag=new_tag()), now)
            elif req.method == "NOTIFY" and req.header("Event") == "message-summary":
                self.layer.send_response(tx, Response.for_request(req, 200, to_tag=new_tag()), now)
                self.notifications.append(req.body)  # the message lamp (RFC 3842)
            else:
                self.layer.send_response(tx, Response.for_request(req, 405, to_tag=new_tag()), now)
            return
        dialog = self._dialogs.get((req.call_id, req.to_tag))
        if dialog is None:
            self.layer.send_response(tx, Response.for_request(req, 481), now)
            return
        if req.method == "INVITE":  # re-INVITE: the simulator keeps its one stream as is
            self.layer.send_response(tx, Response.for_request(req, 488), now)
            return
        self.layer.send_response(tx, Response.for_request(req, 200), now)
        if req.method == "NOTIFY":
            self.notifications.append(req.body)
        if req.method == "BYE":
            if dialog.rtp is not None:
                dialog.rtp.stop()
            dialog.ended.set()
            inc = self.incoming.get(dialog.token) if dialog.token else None
            if inc is not None:
                self._end_incoming(inc)


def _uri_addr(uri: str, default: Addr) -> Addr:
    """Where a SIP URI resolves: its host and port when the host is an address."""
    try:
        parsed = SipUri.parse(uri)
    except SipParseError:
        return default
    host = parsed.host.strip("[]")
    if not host.replace(".", "").isdigit() and ":" not in host:
        return default  # a name: the simulator does no DNS; the edge it talks to is the answer
    return host, parsed.port or 5060


# -- branchline sim -----------------------------------------------------------------------


async def run_sim(config: SiteConfig, edge_addr: Addr, *, phones: int = 4, calls: int = 4,
                  talk_s: float = 2.0, concurrency: int | None = None, digits: str = "",
                  out: Callable[[str], None] = print) -> list[CallResult]:  # fmt: skip
    """Register the first ``phones`` extensions of ``config`` at ``edge_addr`` and place
    ``calls`` calls round-robin between them, a few at a time; one line per call to
    ``out``. Callers send a 400 Hz tone and ``digits`` as RFC 4733 events, callees a
    1 kHz tone, so a recording shows who is who. Raises :class:`SimError` when a phone cannot register."""
    extensions = config.extensions[:phones]
    if len(extensions) < 2:
        raise SimError(f"need at least 2 phones to call between (asked for {phones}, "
                       f"the config has {len(config.extensions)} extensions)")  # fmt: skip
    if phones > len(extensions):
        out(f"only {len(extensions)} extensions in the config: using {len(extensions)} phones")
    domain = config.sip.domain
    fleet = [Phone(e.number, e.password, edge_addr, domain) for e in extensions]
    for phone in fleet:
        await phone.start()
    try:
        await asyncio.gather(*(phone.register() for phone in fleet))
        out(f"registered {', '.join(p.number for p in fleet)} at {edge_addr[0]}:{edge_addr[1]}")
        gate = asyncio.Semaphore(concurrency or max(2, min(len(fleet) // 2, 4)))
        results: list[CallResult | None] = [None] * calls

        async def one(i: int) -> None:
            caller, callee = fleet[i % len(fleet)], fleet[(i + 1) % len(fleet)]
            async with gate:
                result = await caller.call(callee.number, talk_s, callee=callee, digits=digits)
            results[i] = result
            out(result.line(i + 1))

        await asyncio.gather(*(one(i) for i in range(calls)))
        return [r for r in results if r is not None]
    finally:
        for phone in fleet:
            await phone.close()


def summary(results: list[CallResult]) -> str:
    answered = [r for r in results if r.answered]
    both = [r for r in results if r.rtp_both_ways]
    text = f"{len(results)} calls: {len(answered)} answered, {len(both)} with RTP both ways"
    if answered:
        setup = sorted(r.answered_s or 0.0 for r in answered)
        text += f", answer time median {setup[len(setup) // 2] * 1000:.0f} ms"
    failed = [r for r in results if not r.ok]
    return text + (f", {len(failed)} FAILED" if failed else ", all OK")


def parse_hostport(text: str) -> Addr:
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit() or not host:
        raise ValueError(f"expected host:port, got {text!r}")
    return host.strip("[]"), int(port)


def main(args: argparse.Namespace) -> int:
    """``branchline sim --edge host:port --config site.yaml --phones N --calls M --talk-s S``."""
    from edge_core.config import ConfigError, load_config

    try:
        edge = parse_hostport(args.edge)
        config = load_config(args.config)
    except (ValueError, ConfigError) as exc:
        print(f"branchline sim: {exc}", file=sys.stderr)
        return 2

    async def run() -> int:
        try:
            results = await run_sim(config, edge, phones=args.phones, calls=args.calls, talk_s=args.talk_s)
        except SimError as exc:
            print(f"branchline sim: {exc}", file=sys.stderr)
            return 1
        print(summary(results))
        return 0 if len(results) == args.calls and all(r.ok for r in results) else 1

    return uvloop.run(run())
