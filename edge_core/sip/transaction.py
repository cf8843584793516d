"""SIP transactions (RFC 3261 §17, amended by RFC 6026): the four state machines and the
layer that matches messages to them, sans-I/O.

Messages and an injected ``now`` go in; events (:meth:`TransactionLayer.next_event`),
datagrams (:meth:`TransactionLayer.datagrams_to_send`) and one timer deadline
(:meth:`TransactionLayer.get_timer`) come out, the shape of aioquic's
``QuicConnection``. No asyncio, no sockets, no clock. Hand-written: no maintained
sans-I/O SIP transaction library exists for Python.

Everything that moves a transaction from one state to another lives in the four tables
below (``CLIENT_INVITE``, ``CLIENT_NON_INVITE``, ``SERVER_INVITE``,
``SERVER_NON_INVITE``): ``(state, input) -> (new state, actions)``. A pair missing
from a table means the input is absorbed (a late provisional, a stale timer, ...).
Leaving a state cancels the timers the new state does not list in its machine's
``timers``. The layer adds what §17 leaves to the "transaction user" but every SIP
element needs: CANCEL answering (§9.2), ACK-for-2xx routing and the UAS 2xx
retransmission (§13.3.1.4).

Responses from a server transaction go to the address the request came from (rport
behaviour, RFC 3581), which is what works behind NAT.
"""

from __future__ import annotations

import enum
from collections import deque
from dataclasses import dataclass

from edge_core.sip.message import BRANCH_MAGIC, Request, Response, SipParseError, new_tag
from edge_core.sip.timers import TimerQueue, TimerSettings

__all__ = [
    "Addr",
    "TimerSettings",
    "State",
    "Input",
    "Action",
    "Machine",
    "CLIENT_INVITE",
    "CLIENT_NON_INVITE",
    "SERVER_INVITE",
    "SERVER_NON_INVITE",
    "LocalProtocolError",
    "Transaction",
    "ClientTransaction",
    "ServerTransaction",
    "RequestReceived",
    "AckReceived",
    "CancelReceived",
    "ResponseReceived",
    "StrayResponse",
    "TransactionTimedOut",
    "TransactionTerminated",
    "AckTimedOut",
    "Event",
    "TransactionLayer",
    "build_ack",
]

Addr = tuple[str, int]


class LocalProtocolError(Exception):
    """The transaction user asked for something §17 forbids: a bug in the caller."""


class State(enum.Enum):
    CALLING = "Calling"
    TRYING = "Trying"
    PROCEEDING = "Proceeding"
    COMPLETED = "Completed"
    CONFIRMED = "Confirmed"
    ACCEPTED = "Accepted"  # RFC 6026 §7.1 (server) / §8.4 (client)
    TERMINATED = "Terminated"


class Input(enum.Enum):
    START = "start"  # the TU hands a request to a new client transaction
    PROVISIONAL = "1xx"  # received (client) or sent by the TU (server)
    SUCCESS = "2xx"
    FAILURE = "300-699"
    REQUEST = "request retransmission"
    ACK = "ACK"
    TIMER_A = "A"
    TIMER_B = "B"
    TIMER_D = "D"
    TIMER_E = "E"
    TIMER_F = "F"
    TIMER_G = "G"
    TIMER_H = "H"
    TIMER_I = "I"
    TIMER_J = "J"
    TIMER_K = "K"
    TIMER_L = "L"
    TIMER_M = "M"


class Action(enum.Enum):
    SEND_REQUEST = "send request"
    RESEND_REQUEST = "retransmit request"
    PASS_RESPONSE = "pass response to TU"
    SEND_ACK = "send ACK for non-2xx"
    SEND_RESPONSE = "send TU response"
    RESEND_RESPONSE = "retransmit last response"
    PASS_ACK = "pass ACK to TU"
    TIMED_OUT = "inform TU of timeout"
    ARM_A = "A"
    ARM_B = "B"
    ARM_D = "D"
    ARM_E = "E"
    ARM_F = "F"
    ARM_G = "G"
    ARM_H = "H"
    ARM_I = "I"
    ARM_J = "J"
    ARM_K = "K"
    ARM_L = "L"
    ARM_M = "M"


S, In, A = State, Input, Action
Table = dict[tuple[State, Input], tuple[State, tuple[Action, ...]]]


@dataclass(frozen=True, slots=True)
class Machine:
    """One of the four §17 machines: its table, first state and per-state live timers."""

    name: str
    initial: State
    table: Table
    timers: dict[State, frozenset[str]]


# INVITE client transaction: RFC 3261 §17.1.1.2 (Figure 5) with RFC 6026 §8.4 (Accepted).
CLIENT_INVITE = Machine("INVITE client", S.CALLING, {
    (S.CALLING, In.START): (S.CALLING, (A.SEND_REQUEST, A.ARM_A, A.ARM_B)),  # §17.1.1.2
    (S.CALLING, In.TIMER_A): (S.CALLING, (A.RESEND_REQUEST, A.ARM_A)),  # doubles, no cap
    (S.CALLING, In.TIMER_B): (S.TERMINATED, (A.TIMED_OUT,)),  # TU treats as 408
    (S.CALLING, In.PROVISIONAL): (S.PROCEEDING, (A.PASS_RESPONSE,)),
    (S.CALLING, In.SUCCESS): (S.ACCEPTED, (A.PASS_RESPONSE, A.ARM_M)),  # RFC 6026 §8.4
    (S.CALLING, In.FAILURE): (S.COMPLETED, (A.SEND_ACK, A.PASS_RESPONSE, A.ARM_D)),
    (S.PROCEEDING, In.PROVISIONAL): (S.PROCEEDING, (A.PASS_RESPONSE,)),
    (S.PROCEEDING, In.SUCCESS): (S.ACCEPTED, (A.PASS_RESPONSE, A.ARM_M)),
    (S.PROCEEDING, In.FAILURE): (S.COMPLETED, (A.SEND_ACK, A.PASS_RESPONSE, A.ARM_D)),
    (S.COMPLETED, In.FAILURE): (S.COMPLETED, (A.SEND_ACK,)),  # §17.1.1.2: re-ACK, absorb
    (S.COMPLETED, In.TIMER_D): (S.TERMINATED, ()),
    (S.ACCEPTED, In.SUCCESS): (S.ACCEPTED, (A.PASS_RESPONSE,)),  # RFC 6026 §8.4: TU re-ACKs
    (S.ACCEPTED, In.TIMER_M): (S.TERMINATED, ()),
}, {
    S.CALLING: frozenset("AB"), S.COMPLETED: frozenset("D"), S.ACCEPTED: frozenset("M"),
})  # fmt: skip

# Non-INVITE client transaction: RFC 3261 §17.1.2.2 (Figure 6).
CLIENT_NON_INVITE = Machine("non-INVITE client", S.TRYING, {
    (S.TRYING, In.START): (S.TRYING, (A.SEND_REQUEST, A.ARM_E, A.ARM_F)),
    (S.TRYING, In.TIMER_E): (S.TRYING, (A.RESEND_REQUEST, A.ARM_E)),  # min(2E, T2)
    (S.TRYING, In.TIMER_F): (S.TERMINATED, (A.TIMED_OUT,)),
    (S.TRYING, In.PROVISIONAL): (S.PROCEEDING, (A.PASS_RESPONSE,)),
    (S.TRYING, In.SUCCESS): (S.COMPLETED, (A.PASS_RESPONSE, A.ARM_K)),
    (S.TRYING, In.FAILURE): (S.COMPLETED, (A.PASS_RESPONSE, A.ARM_K)),
    (S.PROCEEDING, In.TIMER_E): (S.PROCEEDING, (A.RESEND_REQUEST, A.ARM_E)),  # E = T2
    (S.PROCEEDING, In.TIMER_F): (S.TERMINATED, (A.TIMED_OUT,)),
    (S.PROCEEDING, In.PROVISIONAL): (S.PROCEEDING, (A.PASS_RESPONSE,)),
    (S.PROCEEDING, In.SUCCESS): (S.COMPLETED, (A.PASS_RESPONSE, A.ARM_K)),
    (S.PROCEEDING, In.FAILURE): (S.COMPLETED, (A.PASS_RESPONSE, A.ARM_K)),
    (S.COMPLETED, In.TIMER_K): (S.TERMINATED, ()),  # final retransmissions absorbed until K
}, {
    S.TRYING: frozenset("EF"), S.PROCEEDING: frozenset("EF"), S.COMPLETED: frozenset("K"),
})  # fmt: skip

# INVITE server transaction: RFC 3261 §17.2.1 (Figure 7) with RFC 6026 §7.1 (Accepted).
# No automatic 100 Trying: the TU sends it (send_trying) when it wants to.
SERVER_INVITE = Machine("INVITE server", S.PROCEEDING, {
    (S.PROCEEDING, In.REQUEST): (S.PROCEEDING, (A.RESEND_RESPONSE,)),  # last provisional
    (S.PROCEEDING, In.PROVISIONAL): (S.PROCEEDING, (A.SEND_RESPONSE,)),
    (S.PROCEEDING, In.SUCCESS): (S.ACCEPTED, (A.SEND_RESPONSE, A.ARM_L)),  # RFC 6026 §7.1
    (S.PROCEEDING, In.FAILURE): (S.COMPLETED, (A.SEND_RESPONSE, A.ARM_G, A.ARM_H)),
    (S.COMPLETED, In.REQUEST): (S.COMPLETED, (A.RESEND_RESPONSE,)),
    (S.COMPLETED, In.TIMER_G): (S.COMPLETED, (A.RESEND_RESPONSE, A.ARM_G)),  # min(2G, T2)
    (S.COMPLETED, In.TIMER_H): (S.TERMINATED, (A.TIMED_OUT,)),  # ACK never came
    (S.COMPLETED, In.ACK): (S.CONFIRMED, (A.ARM_I,)),  # ACK for non-2xx: absorbed
    (S.CONFIRMED, In.TIMER_I): (S.TERMINATED, ()),  # ACK/INVITE retransmissions absorbed
    (S.ACCEPTED, In.SUCCESS): (S.ACCEPTED, (A.SEND_RESPONSE,)),  # RFC 6026 §7.1
    (S.ACCEPTED, In.ACK): (S.ACCEPTED, (A.PASS_ACK,)),  # RFC 6026 §7.1: ACK to TU
    (S.ACCEPTED, In.TIMER_L): (S.TERMINATED, ()),  # INVITE retransmissions absorbed
}, {
    S.COMPLETED: frozenset("GH"), S.CONFIRMED: frozenset("I"), S.ACCEPTED: frozenset("L"),
})  # fmt: skip

# Non-INVITE server transaction: RFC 3261 §17.2.2 (Figure 8).
SERVER_NON_INVITE = Machine("non-INVITE server", S.TRYING, {
    (S.TRYING, In.PROVISIONAL): (S.PROCEEDING, (A.SEND_RESPONSE,)),
    (S.TRYING, In.SUCCESS): (S.COMPLETED, (A.SEND_RESPONSE, A.ARM_J)),
    (S.TRYING, In.FAILURE): (S.COMPLETED, (A.SEND_RESPONSE, A.ARM_J)),
    (S.PROCEEDING, In.REQUEST): (S.PROCEEDING, (A.RESEND_RESPONSE,)),
    (S.PROCEEDING, In.PROVISIONAL): (S.PROCEEDING, (A.SEND_RESPONSE,)),
    (S.PROCEEDING, In.SUCCESS): (S.COMPLETED, (A.SEND_RESPONSE, A.ARM_J)),
    (S.PROCEEDING, In.FAILURE): (S.COMPLETED, (A.SEND_RESPONSE, A.ARM_J)),
    (S.COMPLETED, In.REQUEST): (S.COMPLETED, (A.RESEND_RESPONSE,)),
    (S.COMPLETED, In.TIMER_J): (S.TERMINATED, ()),
}, {
    S.COMPLETED: frozenset("J"),
})  # fmt: skip

_NO_TIMERS: frozenset[str] = frozenset()
_TIMER_INPUT = {i.value: i for i in Input if i.name.startswith("TIMER_")}


def _cseq(msg: Request | Response) -> tuple[int, str]:
    try:
        return msg.cseq
    except ValueError:  # int() of the number; SipParseError is a ValueError too
        raise SipParseError(f"malformed CSeq {msg.header('CSeq')!r}") from None


def _classify(status: int) -> Input:
    if status < 200:
        return Input.PROVISIONAL
    return Input.SUCCESS if status < 300 else Input.FAILURE


# -- transactions ------------------------------------------------------------------------


class Transaction:
    """What client and server transactions share. ``owner`` is the TU's free slot."""

    __slots__ = (
        "key", "request", "state", "addr", "transport", "reliable", "last_response",
        "is_invite", "owner", "machine", "_timers", "_interval", "_last_bytes",
    )  # fmt: skip

    def __init__(
        self, key: tuple, request: Request, machine: Machine, addr: Addr, transport: str,
        reliable: bool,
    ) -> None:  # fmt: skip
        self.key = key
        self.request = request
        self.machine = machine
        self.state = machine.initial
        self.addr = addr
        self.transport = transport
        self.reliable = reliable
        self.last_response: Response | None = None
        self.is_invite = request.method == "INVITE"
        self.owner: object | None = None
        self._timers: dict[str, int] = {}
        self._interval = 0.0  # current A/E/G retransmission interval
        self._last_bytes: bytes | None = None  # the last response, serialised once

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.request.method} {self.state.value} {self.key[0]}>"


class ClientTransaction(Transaction):
    __slots__ = ("_request_bytes", "_ack_bytes")

    def __init__(
        self, key: tuple, request: Request, machine: Machine, addr: Addr, transport: str,
        reliable: bool,
    ) -> None:  # fmt: skip
        super().__init__(key, request, machine, addr, transport, reliable)
        self._request_bytes = request.to_bytes()  # serialised once, retransmitted as is
        self._ack_bytes: bytes | None = None


class ServerTransaction(Transaction):
    __slots__ = ()


def build_ack(request: Request, response: Response) -> Request:
    """The ACK an INVITE client transaction sends for a non-2xx final (§17.1.1.3):
    Request-URI, From, Call-ID and the single top Via of the original INVITE, the To of
    the response, CSeq number with method ACK, the INVITE's Route headers."""
    headers = [["Via", request.header("Via") or ""]]
    headers += [["Route", route] for route in request.header_values("Route")]
    headers.append(["Max-Forwards", request.header("Max-Forwards") or "70"])
    headers.append(["From", request.header("From") or ""])
    headers.append(["To", response.header("To") or ""])
    headers.append(["Call-ID", request.call_id])
    headers.append(["CSeq", f"{request.cseq[0]} ACK"])
    return Request("ACK", request.uri, headers)


# -- events ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RequestReceived:
    """A new request (never a retransmission) created a server transaction."""

    request: Request
    """The request as received."""
    addr: Addr
    """Where it came from; responses go back there."""
    transport: str
    """"udp", "tcp", ... as given to :meth:`TransactionLayer.receive`."""
    transaction: ServerTransaction
    """The server transaction to answer through."""


@dataclass(frozen=True, slots=True)
class AckReceived:
    """An ACK for a 2xx: it matched no INVITE server transaction in Completed (§17.2.3)."""

    request: Request
    """The ACK."""
    addr: Addr
    """Where it came from."""
    transaction: ServerTransaction | None = None
    """The INVITE server transaction whose 2xx it acknowledges, when still known."""


@dataclass(frozen=True, slots=True)
class CancelReceived:
    """A CANCEL matched a pending INVITE; the layer already answered it 200 (§9.2)."""

    cancel: Request
    """The CANCEL."""
    invite_transaction: ServerTransaction
    """The INVITE server transaction to answer 487 on."""


@dataclass(frozen=True, slots=True)
class ResponseReceived:
    """A response for a client transaction: provisional, first final, or (RFC 6026) any 2xx."""

    response: Response
    """The response."""
    transaction: ClientTransaction
    """The client transaction it belongs to."""


@dataclass(frozen=True, slots=True)
class StrayResponse:
    """A response that matched no client transaction (e.g. a 2xx after Timer M)."""

    response: Response
    """The response."""
    addr: Addr
    """Where it came from."""


@dataclass(frozen=True, slots=True)
class TransactionTimedOut:
    """Timer B, F (no final response: a 408 for the TU) or H (no ACK) fired."""

    transaction: Transaction
    """The transaction that timed out; a TransactionTerminated follows."""
    timer: str
    """"B", "F" or "H"."""


@dataclass(frozen=True, slots=True)
class TransactionTerminated:
    """A transaction ended and left the layer; the TU can drop its references."""

    transaction: Transaction
    """The terminated transaction."""


@dataclass(frozen=True, slots=True)
class AckTimedOut:
    """A 2xx sent with send_2xx_reliably got no ACK within 64*T1 (§13.3.1.4)."""

    response: Response
    """The unacknowledged 2xx."""
    transaction: ServerTransaction
    """The INVITE server transaction it answered (possibly terminated by now)."""


Event = (
    RequestReceived | AckReceived | CancelReceived | ResponseReceived | StrayResponse
    | TransactionTimedOut | TransactionTerminated | AckTimedOut
)  # fmt: skip


class _Pending2xx:
    """A 2xx the UAS core retransmits until its ACK arrives (§13.3.1.4)."""

    __slots__ = ("tx", "response", "data", "interval", "_timers")

    def __init__(self, tx: ServerTransaction, response: Response, data: bytes) -> None:
        self.tx = tx
        self.response = response
        self.data = data
        self.interval = 0.0
        self._timers: dict[str, int] = {}


_RETRANSMIT_2XX = "2xx retransmit"
_GIVE_UP_2XX = "2xx ACK wait"


# -- the layer ---------------------------------------------------------------------------


class TransactionLayer:
    """Routes messages to transactions (§17.1.3, §17.2.3) and runs their timers."""

    def __init__(self, timers: TimerSettings = TimerSettings()) -> None:  # noqa: B008
        self.timers = timers
        self._client: dict[tuple, ClientTransaction] = {}
        self._server: dict[tuple, ServerTransaction] = {}
        self._pending_2xx: dict[tuple[str, int], _Pending2xx] = {}
        self._queue = TimerQueue()
        self._events: deque[Event] = deque()
        self._out: list[tuple[bytes, Addr, str]] = []
        self._immediate: list[tuple[Transaction, str]] = []  # zero-length timers
        self._actions = {
            A.SEND_REQUEST: self._send_request,
            A.RESEND_REQUEST: self._send_request,
            A.PASS_RESPONSE: self._pass_response,
            A.SEND_ACK: self._send_ack,
            A.SEND_RESPONSE: self._send_response,
            A.RESEND_RESPONSE: self._resend_response,
            A.PASS_ACK: self._pass_ack,
            A.TIMED_OUT: self._timed_out,
        }

    # -- public API ----------------------------------------------------------------------
    def receive(
        self, msg: Request | Response, addr: Addr, now: float, *, reliable: bool = False,
        transport: str = "udp",
    ) -> None:  # fmt: skip
        """Feed one received message. Raises :class:`SipParseError` when its top Via or
        CSeq is unusable (the transport answers 400 when it can, and counts it)."""
        if isinstance(msg, Response):
            self._receive_response(msg, addr, now)
        else:
            self._receive_request(msg, addr, now, reliable, transport)

    def send_request(
        self, request: Request, addr: Addr, now: float, *, reliable: bool = False,
        transport: str = "udp",
    ) -> ClientTransaction:  # fmt: skip
        """Start a client transaction; the request must carry its top Via and branch."""
        if request.method == "ACK":
            raise LocalProtocolError("ACK is not sent through a client transaction (§17.1.1.3)")
        try:
            branch = request.branch
        except SipParseError as exc:
            raise LocalProtocolError(f"request without a usable top Via: {exc}") from None
        if not branch:
            raise LocalProtocolError("top Via has no branch (§8.1.1.7)")
        key = (branch, request.method)
        if key in self._client:
            raise LocalProtocolError(f"branch {branch} already used for {request.method}")
        machine = CLIENT_INVITE if request.method == "INVITE" else CLIENT_NON_INVITE
        tx = ClientTransaction(key, request, machine, addr, transport, reliable)
        self._client[key] = tx
        self._dispatch(tx, In.START, None, addr, now)
        return tx

    def send_response(self, tx: ServerTransaction, response: Response, now: float) -> None:
        """Send a response through a server transaction (any 1xx-6xx the state allows)."""
        inp = _classify(response.status)
        if (tx.state, inp) not in tx.machine.table:
            raise LocalProtocolError(
                f"cannot send {response.status} on {tx.machine.name} in {tx.state.value}"
            )
        self._dispatch(tx, inp, response, tx.addr, now)

    def send_trying(self, tx: ServerTransaction, now: float) -> None:
        """Send 100 Trying (the B2BUA does so at once for INVITE)."""
        self.send_response(tx, Response.for_request(tx.request, 100), now)

    def send_stateless(self, msg: Request | Response, addr: Addr, transport: str = "udp") -> None:
        """Send outside any transaction: ACK for 2xx, 2xx re-sends, answers to strays."""
        self._out.append((msg.to_bytes(), addr, transport))

    def send_2xx_reliably(self, tx: ServerTransaction, response: Response, now: float) -> None:
        """Send a 2xx to an INVITE and retransmit it (T1, 2T1, ... capped at T2; not on
        reliable transports) until the ACK arrives (AckReceived) or 64*T1 passes
        (AckTimedOut), as the UAS core does (§13.3.1.4)."""
        if not tx.is_invite or not 200 <= response.status < 300:
            raise LocalProtocolError("send_2xx_reliably takes a 2xx to an INVITE")
        self.send_response(tx, response, now)
        key = (tx.request.call_id, tx.request.cseq[0])
        old = self._pending_2xx.get(key)
        if old is not None:
            TimerQueue.cancel_all(old)
        pending = _Pending2xx(tx, response, tx._last_bytes or response.to_bytes())
        self._pending_2xx[key] = pending
        if not tx.reliable:
            pending.interval = self.timers.t1_s
            self._queue.arm(pending, _RETRANSMIT_2XX, now + pending.interval)
        self._queue.arm(pending, _GIVE_UP_2XX, now + self.timers.t64_s)

    def next_event(self) -> Event | None:
        return self._events.popleft() if self._events else None

    def datagrams_to_send(self) -> list[tuple[bytes, Addr, str]]:
        """``(bytes, addr, transport)`` to send now; the queue is cleared."""
        out, self._out = self._out, []
        return out

    def get_timer(self) -> float | None:
        """The earliest deadline of any running timer, or None."""
        return self._queue.next_deadline()

    def handle_timer(self, now: float) -> None:
        """Fire every timer whose deadline is <= ``now``."""
        while (due := self._queue.pop_due(now)) is not None:
            target, name = due
            if isinstance(target, Transaction):
                self._dispatch(target, _TIMER_INPUT[name], None, None, now)
            else:
                self._pending_2xx_timer(target, name, now)  # type: ignore[arg-type]

    def abandon(self, tx: Transaction) -> None:
        """The TU gives up on a client transaction that has heard nothing yet (trunk
        failover after silence): no more retransmissions, forgotten at once. Not a state
        machine input: §17.1.1 has none for it; a response arriving later is a stray."""
        if isinstance(tx, ClientTransaction) and tx.state is State.CALLING:
            tx.state = State.TERMINATED
            self._terminate(tx)

    def transaction_count(self) -> int:
        return len(self._client) + len(self._server)

    def in_flight_count(self) -> int:
        """Transactions still waiting for a final response, plus 2xx waiting for their
        ACK: what a clean shutdown waits for (finished transactions only linger)."""
        waiting = (State.CALLING, State.TRYING, State.PROCEEDING)
        busy = sum(1 for tx in self._client.values() if tx.state in waiting)
        busy += sum(1 for tx in self._server.values() if tx.state in waiting)
        return busy + len(self._pending_2xx)

    def pending_count(self) -> int:
        """Transactions plus 2xx responses still waiting for their ACK (for draining)."""
        return len(self._client) + len(self._server) + len(self._pending_2xx)

    # -- receiving -----------------------------------------------------------------------
    def _receive_response(self, msg: Response, addr: Addr, now: float) -> None:
        key = (msg.top_via.params.get("branch", ""), _cseq(msg)[1])
        tx = self._client.get(key)
        if tx is None:
            self._events.append(StrayResponse(msg, addr))
        else:
            self._dispatch(tx, _classify(msg.status), msg, addr, now)

    def _receive_request(
        self, msg: Request, addr: Addr, now: float, reliable: bool, transport: str
    ) -> None:
        method = msg.method
        via = msg.top_via
        cseq_number, cseq_method = _cseq(msg)
        if cseq_method != method:
            raise SipParseError(f"CSeq method {cseq_method!r} is not the request's {method!r}")
        # ACK joins its INVITE's transaction; CANCEL is a transaction of its own (§17.2.3)
        match_method = "INVITE" if method == "ACK" else method
        branch = via.params.get("branch", "")
        if branch.startswith(BRANCH_MAGIC):
            key: tuple = (branch, via.host, via.port, match_method)
        else:  # RFC 2543 peer (§17.2.3): the To tag is left out, an INVITE has none yet
            key = ("", msg.uri, msg.call_id, cseq_number, msg.from_tag, str(via), match_method)
        tx = self._server.get(key)
        if method == "ACK":
            if tx is None:
                self._ack_for_2xx(msg, addr, None)
            else:
                self._dispatch(tx, In.ACK, msg, addr, now)
        elif tx is not None:
            self._dispatch(tx, In.REQUEST, msg, addr, now)
        else:
            is_invite = method == "INVITE"
            machine = SERVER_INVITE if is_invite else SERVER_NON_INVITE
            tx = ServerTransaction(key, msg, machine, addr, transport, reliable)
            self._server[key] = tx
            if method == "CANCEL":
                self._answer_cancel(tx, now)
            else:
                self._events.append(RequestReceived(msg, addr, transport, tx))

    def _answer_cancel(self, tx: ServerTransaction, now: float) -> None:
        """§9.2: 200 when the CANCEL matches an INVITE transaction, else 481; the TU hears
        of it only when that INVITE still awaits its final response."""
        invite = self._server.get(tx.key[:-1] + ("INVITE",))
        if invite is None:
            self.send_response(tx, Response.for_request(tx.request, 481, to_tag=new_tag()), now)
            return
        sent = invite.last_response
        to_tag = (sent.to_tag if sent is not None else None) or new_tag()
        self.send_response(tx, Response.for_request(tx.request, 200, to_tag=to_tag), now)
        if invite.state is S.PROCEEDING:
            self._events.append(CancelReceived(tx.request, invite))

    def _ack_for_2xx(self, ack: Request, addr: Addr, tx: ServerTransaction | None) -> None:
        pending = self._pending_2xx.pop((ack.call_id, ack.cseq[0]), None)
        if pending is not None:
            TimerQueue.cancel_all(pending)
            tx = tx or pending.tx
        self._events.append(AckReceived(ack, addr, tx))

    # -- the machine runner --------------------------------------------------------------
    def _dispatch(
        self, tx: Transaction, inp: Input, msg: Request | Response | None, addr: Addr | None,
        now: float,
    ) -> None:  # fmt: skip
        entry = tx.machine.table.get((tx.state, inp))
        if entry is None:
            return  # absorbed
        new_state, actions = entry
        if new_state is not tx.state:
            tx.state = new_state
            live = tx.machine.timers.get(new_state, _NO_TIMERS)
            for name in [n for n in tx._timers if n not in live]:
                del tx._timers[name]
        for action in actions:
            handler = self._actions.get(action)
            if handler is None:
                self._arm(tx, action.value, now)
            else:
                handler(tx, inp, msg, addr)
        if new_state is S.TERMINATED:
            self._terminate(tx)
        while self._immediate:
            target, name = self._immediate.pop()
            self._dispatch(target, _TIMER_INPUT[name], None, None, now)

    def _terminate(self, tx: Transaction) -> None:
        TimerQueue.cancel_all(tx)
        table = self._client if isinstance(tx, ClientTransaction) else self._server
        if table.get(tx.key) is tx:
            del table[tx.key]
        self._events.append(TransactionTerminated(tx))

    def _arm(self, tx: Transaction, name: str, now: float) -> None:
        t = self.timers
        if name in "AEG":  # retransmission timers: none on reliable transports
            if tx.reliable:
                return
            prev = tx._interval
            if not prev:
                interval = t.t1_s
            elif name == "A":
                interval = 2 * prev  # §17.1.1.2: doubles, capped only by Timer B
            elif name == "E" and tx.state is S.PROCEEDING:
                interval = t.t2_s  # §17.1.2.2
            else:
                interval = min(2 * prev, t.t2_s)  # §17.1.2.2 (E), §17.2.1 (G)
            tx._interval = interval
        elif name == "D":
            interval = 0.0 if tx.reliable else t.d_s
        elif name in "IK":
            interval = 0.0 if tx.reliable else t.t4_s
        elif name == "J":
            interval = 0.0 if tx.reliable else t.t64_s
        else:  # B, F, H, L, M
            interval = t.t64_s
        if interval <= 0.0:
            TimerQueue.cancel(tx, name)
            self._immediate.append((tx, name))
        else:
            self._queue.arm(tx, name, now + interval)

    def _pending_2xx_timer(self, pending: _Pending2xx, name: str, now: float) -> None:
        if name == _RETRANSMIT_2XX:
            self._out.append((pending.data, pending.tx.addr, pending.tx.transport))
            pending.interval = min(2 * pending.interval, self.timers.t2_s)
            self._queue.arm(pending, _RETRANSMIT_2XX, now + pending.interval)
            return
        TimerQueue.cancel_all(pending)
        req = pending.tx.request
        key = (req.call_id, req.cseq[0])
        if self._pending_2xx.get(key) is pending:
            del self._pending_2xx[key]
        self._events.append(AckTimedOut(pending.response, pending.tx))

    # -- actions (tx, input, message, address) -------------------------------------------
    def _send_request(self, tx: Transaction, inp: Input, msg: object, addr: object) -> None:
        assert isinstance(tx, ClientTransaction)
        self._out.append((tx._request_bytes, tx.addr, tx.transport))

    def _pass_response(self, tx: Transaction, inp: Input, msg: object, addr: object) -> None:
        assert isinstance(msg, Response) and isinstance(tx, ClientTransaction)
        tx.last_response = msg
        self._events.append(ResponseReceived(msg, tx))

    def _send_ack(self, tx: Transaction, inp: Input, msg: object, addr: object) -> None:
        assert isinstance(msg, Response) and isinstance(tx, ClientTransaction)
        if tx._ack_bytes is None:  # retransmitted finals carry the same To: build once
            tx._ack_bytes = build_ack(tx.request, msg).to_bytes()
        self._out.append((tx._ack_bytes, tx.addr, tx.transport))

    def _send_response(self, tx: Transaction, inp: Input, msg: object, addr: object) -> None:
        assert isinstance(msg, Response)
        tx.last_response = msg
        tx._last_bytes = msg.to_bytes()
        self._out.append((tx._last_bytes, tx.addr, tx.transport))

    def _resend_response(self, tx: Transaction, inp: Input, msg: object, addr: object) -> None:
        if tx._last_bytes is not None:
            self._out.append((tx._last_bytes, tx.addr, tx.transport))

    def _pass_ack(self, tx: Transaction, inp: Input, msg: object, addr: object) -> None:
        assert isinstance(msg, Request) and isinstance(tx, ServerTransaction)
        self._ack_for_2xx(msg, addr, tx)  # type: ignore[arg-type]

    def _timed_out(self, tx: Transaction, inp: Input, msg: object, addr: object) -> None:
        self._events.append(TransactionTimedOut(tx, inp.value))
