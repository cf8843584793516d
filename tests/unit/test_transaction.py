"""RFC 3261 §17 / RFC 6026 transactions: two layers piped together, time injected."""

from __future__ import annotations

import heapq

import pytest
from hypothesis import event, given, settings
from hypothesis import strategies as st

from edge_core.sip.message import Request, Response, SipParseError, new_branch, parse
from edge_core.sip.transaction import (
    AckReceived,
    AckTimedOut,
    CancelReceived,
    ClientTransaction,
    LocalProtocolError,
    RequestReceived,
    ResponseReceived,
    ServerTransaction,
    State,
    StrayResponse,
    TimerSettings,
    TransactionLayer,
    TransactionTerminated,
    TransactionTimedOut,
)

UAC = ("192.0.2.10", 5060)
UAS = ("192.0.2.20", 5060)
T = TimerSettings()


def make_request(
    method: str = "INVITE",
    *,
    branch: str | None = None,
    cseq: int = 1,
    call_id: str = "call-1@192.0.2.10",
    routes: tuple[str, ...] = (),
) -> Request:
    headers = [["Via", f"SIP/2.0/UDP 192.0.2.10:5060;branch={branch or new_branch()}"]]
    headers += [["Route", r] for r in routes]
    headers += [
        ["Max-Forwards", "70"],
        ["From", "Alice <sip:alice@example.com>;tag=a1"],
        ["To", "<sip:bob@example.com>"],
        ["Call-ID", call_id],
        ["CSeq", f"{cseq} {method}"],
        ["Contact", "<sip:alice@192.0.2.10:5060>"],
    ]
    return Request(method, "sip:bob@example.com", headers)


def cancel_for(invite: Request) -> Request:
    """§9.1: same Request-URI, Call-ID, From, To, CSeq number and the top Via."""
    headers = [[n, v] for n, v in invite.headers if n in ("Via", "Max-Forwards", "From", "To", "Call-ID")]
    headers.append(["CSeq", f"{invite.cseq[0]} CANCEL"])
    return Request("CANCEL", invite.uri, headers)


def ack_for_2xx(invite: Request, ok: Response) -> Request:
    headers = [
        ["Via", f"SIP/2.0/UDP 192.0.2.10:5060;branch={new_branch()}"],
        ["Max-Forwards", "70"],
        ["From", invite.header("From") or ""],
        ["To", ok.header("To") or ""],
        ["Call-ID", invite.call_id],
        ["CSeq", f"{invite.cseq[0]} ACK"],
    ]
    return Request("ACK", "sip:bob@192.0.2.20:5060", headers)


def events(layer: TransactionLayer) -> list[object]:
    out = []
    while (ev := layer.next_event()) is not None:
        out.append(ev)
    return out


def first_lines(datagrams: list[tuple[bytes, tuple[str, int], str]]) -> list[str]:
    return [d.split(b"\r\n", 1)[0].decode() for d, _, _ in datagrams]


def run_timers(layer: TransactionLayer, until: float) -> list[tuple[float, str]]:
    """Fire the layer's timers one deadline at a time; what it sent (lost), with times."""
    sent: list[tuple[float, str]] = []
    while (t := layer.get_timer()) is not None and t <= until:
        layer.handle_timer(t)
        sent += [(t, line) for line in first_lines(layer.datagrams_to_send())]
    return sent


class Pair:
    """A UAC-side and a UAS-side layer joined by a perfect wire (h11's ConnectionPair):
    every datagram is serialised, parsed by ``parse`` and fed to the other side."""

    def __init__(self, *, reliable: bool = False) -> None:
        self.uac = TransactionLayer()
        self.uas = TransactionLayer()
        self.reliable = reliable
        self.now = 0.0
        self.wire: list[str] = []

    def flush(self) -> None:
        moved = True
        while moved:
            moved = False
            for src, dst, src_addr, dst_addr, arrow in (
                (self.uac, self.uas, UAC, UAS, "->"),
                (self.uas, self.uac, UAS, UAC, "<-"),
            ):
                for data, addr, _ in src.datagrams_to_send():
                    assert addr == dst_addr
                    moved = True
                    self.wire.append(f"{arrow} {first_lines([(data, addr, '')])[0]}")
                    dst.receive(parse(data), src_addr, self.now, reliable=self.reliable)

    def advance(self, t: float) -> None:
        """Run both sides' timers up to ``t``, delivering as it goes."""
        while True:
            deadlines = [d for d in (self.uac.get_timer(), self.uas.get_timer()) if d is not None]
            if not deadlines or min(deadlines) > t:
                break
            self.now = min(deadlines)
            self.uac.handle_timer(self.now)
            self.uas.handle_timer(self.now)
            self.flush()
        self.now = t

    def invite_to_uas(self, request: Request | None = None) -> tuple[Request, ClientTransaction, ServerTransaction]:
        request = request or make_request()
        ctx = self.uac.send_request(request, UAS, self.now, reliable=self.reliable)
        self.flush()
        (ev,) = events(self.uas)
        assert isinstance(ev, RequestReceived)
        assert ev.addr == UAC and ev.transport == "udp"
        return request, ctx, ev.transaction


# -- happy paths ---------------------------------------------------------------------


def test_invite_180_200_ack_happy_path() -> None:
    pair = Pair()
    invite, ctx, stx = pair.invite_to_uas()
    assert ctx.state is State.CALLING and stx.state is State.PROCEEDING
    pair.uas.send_trying(stx, pair.now)
    pair.uas.send_response(stx, Response.for_request(stx.request, 180, to_tag="b1"), pair.now)
    ok = Response.for_request(stx.request, 200, to_tag="b1")
    pair.uas.send_2xx_reliably(stx, ok, pair.now)
    pair.flush()
    got = events(pair.uac)
    assert [e.response.status for e in got if isinstance(e, ResponseReceived)] == [100, 180, 200]
    assert all(e.transaction is ctx for e in got if isinstance(e, ResponseReceived))
    assert ctx.state is State.ACCEPTED and stx.state is State.ACCEPTED
    pair.uac.send_stateless(ack_for_2xx(invite, got[-1].response), UAS)
    pair.flush()
    (ack,) = events(pair.uas)
    assert isinstance(ack, AckReceived) and ack.transaction is stx and ack.addr == UAC
    assert pair.wire == [
        "-> INVITE sip:bob@example.com SIP/2.0",
        "<- SIP/2.0 100 Trying",
        "<- SIP/2.0 180 Ringing",
        "<- SIP/2.0 200 OK",
        "-> ACK sip:bob@192.0.2.20:5060 SIP/2.0",
    ]
    pair.advance(64 * T.t1_s)  # Timers L and M (RFC 6026)
    assert [type(e) for e in events(pair.uac)] == [TransactionTerminated]
    assert [type(e) for e in events(pair.uas)] == [TransactionTerminated]
    assert pair.wire[5:] == []  # the ACK stopped the 2xx retransmission
    assert pair.uac.transaction_count() == pair.uas.transaction_count() == 0
    assert pair.uac.get_timer() is None and pair.uas.get_timer() is None
    assert pair.uas.pending_count() == 0


def test_non_invite_round_trip_and_timers_k_j() -> None:
    pair = Pair()
    _, ctx, stx = pair.invite_to_uas(make_request("OPTIONS"))
    assert ctx.state is State.TRYING and stx.state is State.TRYING
    pair.uas.send_response(stx, Response.for_request(stx.request, 200, to_tag="b"), pair.now)
    pair.flush()
    (ev,) = events(pair.uac)
    assert isinstance(ev, ResponseReceived) and ev.response.status == 200
    assert ctx.state is State.COMPLETED and stx.state is State.COMPLETED
    pair.advance(T.t4_s)  # Timer K
    assert ctx.state is State.TERMINATED and events(pair.uac) == [TransactionTerminated(ctx)]
    pair.advance(64 * T.t1_s)  # Timer J
    assert stx.state is State.TERMINATED and events(pair.uas) == [TransactionTerminated(stx)]


# -- client retransmission timers -----------------------------------------------------


def test_invite_timer_a_doubles_and_timer_b_times_out_at_64_t1() -> None:
    layer = TransactionLayer()
    tx = layer.send_request(make_request(), UAS, 0.0)
    assert first_lines(layer.datagrams_to_send()) == ["INVITE sip:bob@example.com SIP/2.0"]
    sent = run_timers(layer, 100.0)
    assert [t for t, _ in sent] == [0.5, 1.5, 3.5, 7.5, 15.5, 31.5]
    assert {line for _, line in sent} == {"INVITE sip:bob@example.com SIP/2.0"}
    assert events(layer) == [TransactionTimedOut(tx, "B"), TransactionTerminated(tx)]
    assert tx.state is State.TERMINATED and layer.transaction_count() == 0


def test_timer_b_fires_exactly_at_32s() -> None:
    layer = TransactionLayer()
    layer.send_request(make_request(), UAS, 10.0)
    run_timers(layer, 41.99)
    assert layer.transaction_count() == 1
    layer.handle_timer(42.0)
    assert isinstance(layer.next_event(), TransactionTimedOut)


def test_non_invite_timer_e_capped_at_t2_and_timer_f() -> None:
    layer = TransactionLayer()
    tx = layer.send_request(make_request("OPTIONS"), UAS, 0.0)
    layer.datagrams_to_send()
    sent = run_timers(layer, 100.0)
    times = [t for t, _ in sent]
    assert times == [0.5, 1.5, 3.5, 7.5, 11.5, 15.5, 19.5, 23.5, 27.5, 31.5]
    intervals = [b - a for a, b in zip([0.0, *times[:-1]], times, strict=True)]
    assert intervals == [0.5, 1, 2, 4, 4, 4, 4, 4, 4, 4]
    assert events(layer) == [TransactionTimedOut(tx, "F"), TransactionTerminated(tx)]


def test_non_invite_timer_e_is_t2_once_proceeding() -> None:
    layer = TransactionLayer()
    req = make_request("BYE")
    tx = layer.send_request(req, UAS, 0.0)
    layer.datagrams_to_send()
    layer.receive(Response.for_request(req, 100), UAS, 0.2)
    assert tx.state is State.PROCEEDING
    sent = run_timers(layer, 13.0)
    assert [t for t, _ in sent] == [0.5, 4.5, 8.5, 12.5]


def test_invite_provisional_stops_retransmission_and_timer_b() -> None:
    layer = TransactionLayer()
    req = make_request()
    tx = layer.send_request(req, UAS, 0.0)
    layer.datagrams_to_send()
    layer.receive(Response.for_request(req, 180, to_tag="x"), UAS, 0.1)
    assert tx.state is State.PROCEEDING
    assert layer.get_timer() is None  # no A, no B: the TU decides how long it rings
    assert [type(e) for e in events(layer)] == [ResponseReceived]


# -- server side ----------------------------------------------------------------------


def test_server_absorbs_retransmitted_invite_and_resends_last_provisional() -> None:
    pair = Pair()
    invite, _, stx = pair.invite_to_uas()
    again = parse(invite.to_bytes())
    pair.uas.receive(again, UAC, 0.5)
    assert events(pair.uas) == [] and pair.uas.datagrams_to_send() == []  # nothing sent yet
    ringing = Response.for_request(stx.request, 180, to_tag="b1")
    pair.uas.send_response(stx, ringing, 0.6)
    first = pair.uas.datagrams_to_send()
    pair.uas.receive(again, UAC, 1.5)
    assert events(pair.uas) == []
    assert pair.uas.datagrams_to_send() == first == [(ringing.to_bytes(), UAC, "udp")]
    assert pair.uas.transaction_count() == 1


def test_non_invite_server_resends_final_on_retransmission() -> None:
    layer = TransactionLayer()
    req = make_request("REGISTER")
    layer.receive(req, UAC, 0.0)
    (ev,) = events(layer)
    layer.receive(req, UAC, 0.3)  # Trying: absorbed, nothing to re-send
    assert layer.datagrams_to_send() == [] and events(layer) == []
    layer.send_response(ev.transaction, Response.for_request(req, 401, to_tag="t"), 0.4)
    (first,) = layer.datagrams_to_send()
    layer.receive(req, UAC, 0.9)
    assert layer.datagrams_to_send() == [first]
    with pytest.raises(LocalProtocolError):
        layer.send_response(ev.transaction, Response.for_request(req, 200, to_tag="t"), 1.0)


def test_non_2xx_final_client_acks_itself_server_confirmed_then_timer_i() -> None:
    pair = Pair()
    _, ctx, stx = pair.invite_to_uas()
    pair.uas.send_response(stx, Response.for_request(stx.request, 486, to_tag="b1"), 0.0)
    pair.flush()
    (ev,) = events(pair.uac)
    assert isinstance(ev, ResponseReceived) and ev.response.status == 486
    assert pair.wire[-2:] == ["<- SIP/2.0 486 Busy Here", "-> ACK sip:bob@example.com SIP/2.0"]
    assert ctx.state is State.COMPLETED and stx.state is State.CONFIRMED
    assert events(pair.uas) == []  # the ACK of a non-2xx stays in the transaction
    pair.advance(T.t4_s)  # Timer I
    assert stx.state is State.TERMINATED and events(pair.uas) == [TransactionTerminated(stx)]
    assert ctx.state is State.COMPLETED
    pair.advance(32.0)  # Timer D
    assert ctx.state is State.TERMINATED and events(pair.uac) == [TransactionTerminated(ctx)]


def test_server_retransmits_non_2xx_at_timer_g_until_timer_h() -> None:
    layer = TransactionLayer()
    req = make_request()
    layer.receive(req, UAC, 0.0)
    (ev,) = events(layer)
    stx = ev.transaction
    layer.send_response(stx, Response.for_request(req, 603, to_tag="d"), 0.0)
    layer.datagrams_to_send()
    sent = run_timers(layer, 100.0)
    assert [t for t, _ in sent] == [0.5, 1.5, 3.5, 7.5, 11.5, 15.5, 19.5, 23.5, 27.5, 31.5]
    assert {line for _, line in sent} == {"SIP/2.0 603 Decline"}
    assert events(layer) == [TransactionTimedOut(stx, "H"), TransactionTerminated(stx)]


def test_client_absorbs_retransmitted_final_and_re_acks() -> None:
    layer = TransactionLayer()
    req = make_request()
    layer.send_request(req, UAS, 0.0)
    layer.datagrams_to_send()
    busy = Response.for_request(req, 486, to_tag="b")
    layer.receive(busy, UAS, 0.1)
    (ack,) = layer.datagrams_to_send()
    assert len(events(layer)) == 1
    layer.receive(parse(busy.to_bytes()), UAS, 0.6)
    assert layer.datagrams_to_send() == [ack] and events(layer) == []


def test_ack_for_487_bytes_follow_rfc3261_17_1_1_3() -> None:
    """One Via (the INVITE's top), the INVITE's Route set, From/Call-ID/Request-URI of
    the INVITE, To of the response (with its tag), CSeq number with method ACK."""
    layer = TransactionLayer()
    invite = make_request(
        branch="z9hG4bKinv1", routes=("<sip:p1.example.com;lr>", "<sip:p2.example.com;lr>")
    )
    layer.send_request(invite, UAS, 0.0)
    layer.datagrams_to_send()
    layer.receive(parse(Response.for_request(invite, 487, to_tag="b2").to_bytes()), UAS, 0.2)
    (datagram,) = layer.datagrams_to_send()
    assert datagram == (
        b"ACK sip:bob@example.com SIP/2.0\r\n"
        b"Via: SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bKinv1\r\n"
        b"Route: <sip:p1.example.com;lr>\r\n"
        b"Route: <sip:p2.example.com;lr>\r\n"
        b"Max-Forwards: 70\r\n"
        b"From: Alice <sip:alice@example.com>;tag=a1\r\n"
        b"To: <sip:bob@example.com>;tag=b2\r\n"
        b"Call-ID: call-1@192.0.2.10\r\n"
        b"CSeq: 1 ACK\r\n"
        b"Content-Length: 0\r\n"
        b"\r\n",
        UAS,
        "udp",
    )


# -- 2xx: UAS core retransmission (§13.3.1.4) and RFC 6026 Accepted -----------------------


def test_2xx_retransmitted_until_ack() -> None:
    layer = TransactionLayer()
    req = make_request()
    layer.receive(req, UAC, 0.0)
    (ev,) = events(layer)
    ok = Response.for_request(req, 200, to_tag="b")
    layer.send_2xx_reliably(ev.transaction, ok, 0.0)
    assert layer.datagrams_to_send() == [(ok.to_bytes(), UAC, "udp")]
    assert [t for t, _ in run_timers(layer, 4.0)] == [0.5, 1.5, 3.5]
    layer.receive(ack_for_2xx(req, ok), UAC, 4.0)
    (got,) = events(layer)
    assert isinstance(got, AckReceived) and got.transaction is ev.transaction
    assert run_timers(layer, 31.9) == []  # no more 2xx
    layer.handle_timer(32.0)
    assert events(layer) == [TransactionTerminated(ev.transaction)]  # Timer L, no AckTimedOut


def test_2xx_ack_received_event_carries_the_ack() -> None:
    layer = TransactionLayer()
    req = make_request()
    layer.receive(req, UAC, 0.0)
    (ev,) = events(layer)
    ok = Response.for_request(req, 200, to_tag="b")
    layer.send_2xx_reliably(ev.transaction, ok, 0.0)
    ack = ack_for_2xx(req, ok)
    layer.receive(ack, UAC, 0.2)
    (got,) = events(layer)
    assert isinstance(got, AckReceived)
    assert got.request is ack and got.addr == UAC and got.transaction is ev.transaction
    # a retransmitted ACK is passed up again; the TU decides
    layer.receive(ack, UAC, 0.3)
    assert [type(e) for e in events(layer)] == [AckReceived]


def test_2xx_without_ack_times_out_after_64_t1() -> None:
    layer = TransactionLayer()
    req = make_request()
    layer.receive(req, UAC, 0.0)
    (ev,) = events(layer)
    ok = Response.for_request(req, 200, to_tag="b")
    layer.send_2xx_reliably(ev.transaction, ok, 0.0)
    layer.datagrams_to_send()
    sent = run_timers(layer, 100.0)
    assert [t for t, _ in sent] == [0.5, 1.5, 3.5, 7.5, 11.5, 15.5, 19.5, 23.5, 27.5, 31.5]
    got = events(layer)
    assert AckTimedOut(ok, ev.transaction) in got
    assert TransactionTerminated(ev.transaction) in got
    assert layer.get_timer() is None and layer.pending_count() == 0


def test_2xx_not_retransmitted_when_reliable_but_ack_still_awaited() -> None:
    layer = TransactionLayer()
    req = make_request()
    layer.receive(req, UAC, 0.0, reliable=True, transport="tcp")
    (ev,) = events(layer)
    ok = Response.for_request(req, 200, to_tag="b")
    layer.send_2xx_reliably(ev.transaction, ok, 0.0)
    assert layer.datagrams_to_send() == [(ok.to_bytes(), UAC, "tcp")]
    assert run_timers(layer, 100.0) == []
    assert AckTimedOut(ok, ev.transaction) in events(layer)


def test_accepted_passes_retransmitted_2xx_up_then_stray_after_timer_m() -> None:
    layer = TransactionLayer()
    req = make_request()
    tx = layer.send_request(req, UAS, 0.0)
    layer.datagrams_to_send()
    ok = Response.for_request(req, 200, to_tag="b")
    layer.receive(ok, UAS, 0.1)
    layer.receive(parse(ok.to_bytes()), UAS, 0.6)  # our ACK was lost: the 2xx comes again
    got = events(layer)
    assert [type(e) for e in got] == [ResponseReceived, ResponseReceived]
    assert tx.state is State.ACCEPTED and layer.datagrams_to_send() == []  # TU ACKs, not us
    layer.handle_timer(0.1 + 64 * T.t1_s)  # Timer M
    assert events(layer) == [TransactionTerminated(tx)]
    layer.receive(ok, UAS, 40.0)
    (stray,) = events(layer)
    assert isinstance(stray, StrayResponse) and stray.response is ok and stray.addr == UAS


def test_server_accepted_absorbs_invite_retransmission() -> None:
    layer = TransactionLayer()
    req = make_request()
    layer.receive(req, UAC, 0.0)
    (ev,) = events(layer)
    layer.send_response(ev.transaction, Response.for_request(req, 200, to_tag="b"), 0.0)
    layer.datagrams_to_send()
    layer.receive(req, UAC, 0.4)
    assert events(layer) == [] and layer.datagrams_to_send() == []  # RFC 6026 §7.1


# -- CANCEL (§9.2) --------------------------------------------------------------------


def test_cancel_matching_pending_invite_gets_200_and_event_then_487() -> None:
    pair = Pair()
    invite, ctx, stx = pair.invite_to_uas()
    pair.uas.send_response(stx, Response.for_request(stx.request, 180, to_tag="b1"), 0.0)
    pair.flush()
    events(pair.uac)
    cancel_tx = pair.uac.send_request(cancel_for(invite), UAS, 0.1)
    pair.flush()
    (cancelled,) = events(pair.uas)
    assert isinstance(cancelled, CancelReceived) and cancelled.invite_transaction is stx
    assert cancelled.cancel.method == "CANCEL"
    (ok,) = events(pair.uac)
    assert ok.transaction is cancel_tx and ok.response.status == 200
    assert ok.response.to_tag == "b1"  # §9.2: same To tag as the INVITE's responses
    pair.uas.send_response(stx, Response.for_request(stx.request, 487, to_tag="b1"), 0.2)
    pair.flush()
    (terminated,) = events(pair.uac)
    assert terminated.response.status == 487 and terminated.transaction is ctx
    assert pair.wire[-2:] == ["<- SIP/2.0 487 Request Terminated", "-> ACK sip:bob@example.com SIP/2.0"]
    assert stx.state is State.CONFIRMED


def test_cancel_without_matching_invite_gets_481_and_no_event() -> None:
    pair = Pair()
    cancel = cancel_for(make_request())
    pair.uac.send_request(cancel, UAS, 0.0)
    pair.flush()
    assert events(pair.uas) == []
    (ev,) = events(pair.uac)
    assert ev.response.status == 481
    # a retransmitted CANCEL gets the same answer from the CANCEL's own transaction
    pair.uas.receive(cancel, UAC, 0.5)
    assert first_lines(pair.uas.datagrams_to_send()) == ["SIP/2.0 481 Call/Transaction Does Not Exist"]


def test_cancel_after_final_gets_200_but_no_event() -> None:
    pair = Pair()
    invite, _, stx = pair.invite_to_uas()
    pair.uas.send_response(stx, Response.for_request(stx.request, 486, to_tag="b"), 0.0)
    pair.flush()
    events(pair.uac)
    pair.uac.send_request(cancel_for(invite), UAS, 0.1)
    pair.flush()
    assert events(pair.uas) == []
    assert events(pair.uac)[0].response.status == 200


# -- reliable transports ---------------------------------------------------------------


def test_reliable_arms_no_retransmit_timers_and_zero_timers_end_at_once() -> None:
    pair = Pair(reliable=True)
    _, ctx, stx = pair.invite_to_uas()
    assert pair.uac.get_timer() == 64 * T.t1_s  # only Timer B, no Timer A
    pair.uas.send_response(stx, Response.for_request(stx.request, 486, to_tag="b"), 0.0)
    pair.flush()
    # client: Timer D = 0; server: ACK arrived, Timer I = 0; no Timer G ever armed
    assert ctx.state is State.TERMINATED and stx.state is State.TERMINATED
    assert [type(e) for e in events(pair.uac)] == [ResponseReceived, TransactionTerminated]
    assert events(pair.uas) == [TransactionTerminated(stx)]
    assert pair.uac.get_timer() is None and pair.uas.get_timer() is None

    _, ctx2, stx2 = pair.invite_to_uas(make_request("OPTIONS", call_id="c2"))
    assert pair.uac.get_timer() == 64 * T.t1_s  # Timer F only, no Timer E
    pair.uas.send_response(stx2, Response.for_request(stx2.request, 200, to_tag="b"), 0.0)
    pair.flush()
    assert ctx2.state is State.TERMINATED and stx2.state is State.TERMINATED  # K = J = 0
    assert pair.uac.transaction_count() == pair.uas.transaction_count() == 0


def test_reliable_server_invite_arms_only_timer_h() -> None:
    layer = TransactionLayer()
    req = make_request()
    layer.receive(req, UAC, 0.0, reliable=True, transport="tcp")
    (ev,) = events(layer)
    layer.send_response(ev.transaction, Response.for_request(req, 500, to_tag="x"), 0.0)
    assert first_lines(layer.datagrams_to_send()) == ["SIP/2.0 500 Server Internal Error"]
    assert layer.get_timer() == 64 * T.t1_s
    assert run_timers(layer, 100.0) == []
    assert events(layer)[0] == TransactionTimedOut(ev.transaction, "H")


# -- matching -------------------------------------------------------------------------


def test_rfc2543_request_without_magic_cookie_matches_by_dialog_fields() -> None:
    layer = TransactionLayer()
    req = make_request(branch="oldstyle1")
    layer.receive(req, UAC, 0.0)
    (ev,) = events(layer)
    layer.receive(parse(req.to_bytes()), UAC, 0.5)
    assert events(layer) == []  # a retransmission, not a new request
    busy = Response.for_request(req, 486, to_tag="b")
    layer.send_response(ev.transaction, busy, 0.6)
    ack = Request("ACK", req.uri, [list(h) for h in req.headers])
    ack.set_header("To", busy.header("To") or "")
    ack.set_header("CSeq", "1 ACK")
    layer.receive(ack, UAC, 0.7)
    assert ev.transaction.state is State.CONFIRMED and events(layer) == []


def test_same_branch_different_sent_by_is_a_different_transaction() -> None:
    layer = TransactionLayer()
    req = make_request(branch="z9hG4bKsame")
    other = make_request(branch="z9hG4bKsame")
    other.set_header("Via", "SIP/2.0/UDP 198.51.100.7:5060;branch=z9hG4bKsame")
    layer.receive(req, UAC, 0.0)
    layer.receive(other, ("198.51.100.7", 5060), 0.0)
    assert [type(e) for e in events(layer)] == [RequestReceived, RequestReceived]
    assert layer.transaction_count() == 2


def test_response_matched_by_branch_and_cseq_method() -> None:
    layer = TransactionLayer()
    invite = make_request(branch="z9hG4bKb1")
    layer.send_request(invite, UAS, 0.0)
    layer.send_request(cancel_for(invite), UAS, 0.0)
    layer.receive(Response.for_request(cancel_for(invite), 200, to_tag="t"), UAS, 0.1)
    (ev,) = events(layer)
    assert ev.transaction.request.method == "CANCEL"


def test_unusable_via_or_cseq_raises_parse_error_for_the_transport() -> None:
    layer = TransactionLayer()
    req = make_request()
    req.set_header("CSeq", "one INVITE")
    with pytest.raises(SipParseError):
        layer.receive(req, UAC, 0.0)
    req = make_request()
    req.set_header("CSeq", "1 BYE")
    with pytest.raises(SipParseError, match="CSeq method"):
        layer.receive(req, UAC, 0.0)
    req = make_request()
    req.set_header("Via", "garbage")
    with pytest.raises(SipParseError):
        layer.receive(req, UAC, 0.0)
    assert layer.transaction_count() == 0


def test_local_protocol_errors() -> None:
    layer = TransactionLayer()
    with pytest.raises(LocalProtocolError):
        layer.send_request(make_request("ACK"), UAS, 0.0)
    req = make_request(branch="z9hG4bKdup")
    layer.send_request(req, UAS, 0.0)
    with pytest.raises(LocalProtocolError):
        layer.send_request(req, UAS, 0.0)
    layer.receive(make_request("OPTIONS"), UAC, 0.0)
    (ev,) = events(layer)
    with pytest.raises(LocalProtocolError):
        layer.send_2xx_reliably(ev.transaction, Response.for_request(ev.transaction.request, 200), 0.0)


def test_owner_slot_and_transaction_attributes() -> None:
    layer = TransactionLayer()
    req = make_request()
    tx = layer.send_request(req, UAS, 0.0, transport="udp")
    assert tx.owner is None and tx.is_invite and tx.addr == UAS and tx.transport == "udp"
    assert tx.request is req and tx.last_response is None
    tx.owner = "call-42"
    layer.receive(Response.for_request(req, 183, to_tag="e"), UAS, 0.1)
    (ev,) = events(layer)
    assert ev.transaction.owner == "call-42" and tx.last_response is ev.response


# -- property: loss and duplication never wedge the pair ----------------------------------


class LossyNetwork:
    """Delivers datagrams after a drawn delay; drawn drops (at most ``max_drops``) and
    duplicates. TUs on both sides answer like the B2BUA does."""

    def __init__(self, data: st.DataObject, final: int, method: str, max_drops: int) -> None:
        self.data = data
        self.final = final
        self.method = method
        self.drops_left = max_drops
        self.uac = TransactionLayer()
        self.uas = TransactionLayer()
        self.flight: list[tuple[float, int, str, bytes]] = []
        self.seq = 0
        self.now = 0.0
        self.last_delivery = 0.0
        self.client_finals: list[int] = []
        self.ack: Request | None = None
        self.problems: list[object] = []

    def ship(self, src: TransactionLayer, dst: str) -> None:
        for data, _, _ in src.datagrams_to_send():
            fate = self.data.draw(st.sampled_from(["deliver", "drop", "drop", "duplicate"]))
            if fate == "drop" and self.drops_left > 0:
                self.drops_left -= 1
                continue
            copies = 2 if fate == "duplicate" else 1
            for _ in range(copies):
                delay = self.data.draw(st.floats(0.0, 0.3))
                self.seq += 1
                heapq.heappush(self.flight, (self.now + delay, self.seq, dst, data))

    def tu(self) -> None:
        while (ev := self.uas.next_event()) is not None:
            if isinstance(ev, RequestReceived):
                stx = ev.transaction
                if stx.is_invite:
                    self.uas.send_trying(stx, self.now)
                    self.uas.send_response(stx, Response.for_request(stx.request, 180, to_tag="u"), self.now)
                resp = Response.for_request(stx.request, self.final, to_tag="u")
                if stx.is_invite and self.final < 300:
                    self.uas.send_2xx_reliably(stx, resp, self.now)
                else:
                    self.uas.send_response(stx, resp, self.now)
            elif isinstance(ev, TransactionTimedOut | AckTimedOut):
                self.problems.append(ev)
        while (ev := self.uac.next_event()) is not None:
            if isinstance(ev, ResponseReceived | StrayResponse) and ev.response.status >= 200:
                if isinstance(ev, ResponseReceived):
                    self.client_finals.append(ev.response.status)
                if self.method == "INVITE" and ev.response.status < 300:
                    self.ack = self.ack or ack_for_2xx(self.invite, ev.response)
                    self.uac.send_stateless(self.ack, UAS)
            elif isinstance(ev, TransactionTimedOut):
                self.problems.append(ev)

    def run(self) -> float:
        self.invite = make_request(self.method)
        self.uac.send_request(self.invite, UAS, 0.0)
        for _ in range(10_000):
            self.tu()
            self.ship(self.uac, "uas")
            self.ship(self.uas, "uac")
            candidates = [t for t in (self.uac.get_timer(), self.uas.get_timer()) if t is not None]
            if self.flight:
                candidates.append(self.flight[0][0])
            if not candidates:
                return self.now
            self.now = max(self.now, min(candidates))
            while self.flight and self.flight[0][0] <= self.now:
                _, _, dst, data = heapq.heappop(self.flight)
                self.last_delivery = self.now
                if dst == "uas":
                    self.uas.receive(parse(data), UAC, self.now)
                else:
                    self.uac.receive(parse(data), UAS, self.now)
            self.uac.handle_timer(self.now)
            self.uas.handle_timer(self.now)
        raise AssertionError("simulation did not settle")


@settings(max_examples=300, deadline=None)
@given(
    data=st.data(),
    scenario=st.sampled_from([("INVITE", 200), ("INVITE", 486), ("OPTIONS", 200), ("BYE", 481)]),
    max_drops=st.integers(0, 4),
)
def test_loss_and_duplication_always_settle(
    data: st.DataObject, scenario: tuple[str, int], max_drops: int
) -> None:
    method, final = scenario
    net = LossyNetwork(data, final, method, max_drops)
    end = net.run()
    event(f"{method} {final}: {max_drops - net.drops_left} datagram(s) lost")
    for layer in (net.uac, net.uas):
        assert layer.transaction_count() == 0 and layer.pending_count() == 0
        assert layer.get_timer() is None
    assert end <= net.last_delivery + 64 * T.t1_s + T.t4_s
    assert net.problems == []
    assert net.client_finals[:1] == [final]
    if method != "INVITE" or final >= 300:
        assert net.client_finals == [final]  # final retransmissions are absorbed
