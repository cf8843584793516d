"""The thin asyncio adapters that feed bytes to the sans-I/O SIP stack.

:class:`SipEndpoint` owns the transaction layer and the transaction user: bytes in
(``receive``), events drained, bytes out, one ``loop.call_at`` timer re-armed after
every step -- the shape of aioquic's asyncio protocol. UDP is one datagram socket;
TCP frames the stream with ``message_length`` and keeps one connection per peer,
opening one when the edge has a request for a peer it has no connection to.

Malformed input never stops the endpoint: it is counted, and answered with the
parser's status (400, 505, 413/513) when the message carries enough headers to build
a response (RFC 3261 §8.2 asks for one), or dropped otherwise.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import Callable
from typing import Any, cast

from cython_ext.sipparse import SipParseError, message_length
from edge_core.sip.message import REASONS, parse

log = logging.getLogger("edge.transport")

Addr = tuple[str, int]

_MIN_RESPONSE_HEADERS = {"via": "Via", "v": "Via", "from": "From", "f": "From", "to": "To", "t": "To",
                         "call-id": "Call-ID", "i": "Call-ID", "cseq": "CSeq"}


def error_response(data: bytes, status: int, reason: str) -> bytes | None:
    """A response to a request the parser refused, if it has the headers one needs."""
    head = data.split(b"\r\n\r\n", 1)[0].split(b"\n\n", 1)[0]
    lines = head.decode("utf-8", "replace").replace("\r\n", "\n").split("\n")
    if not lines or lines[0].startswith("SIP/"):  # never answer a response
        return None
    found: dict[str, list[str]] = {}
    for line in lines[1:]:
        name, sep, value = line.partition(":")
        canonical = _MIN_RESPONSE_HEADERS.get(name.strip().lower())
        if sep and canonical:
            found.setdefault(canonical, []).append(value.strip())
    if any(h not in found for h in ("Via", "From", "To", "Call-ID", "CSeq")):
        return None
    reason = " ".join(reason.split())[:100] or REASONS.get(status, "Bad Request")
    out = [f"SIP/2.0 {status} {reason}"]
    for name in ("Via", "From", "To", "Call-ID", "CSeq"):
        out.extend(f"{name}: {v}" for v in found[name])
    out.append("Content-Length: 0")
    return ("\r\n".join(out) + "\r\n\r\n").encode()


class SipEndpoint:
    """Bytes <-> the SIP stack, for every transport; one per daemon."""

    def __init__(self, layer: Any, core: Any, max_message_bytes: int) -> None:
        self.layer = layer
        self.core = core
        self.max_message_bytes = max_message_bytes
        self.loop = asyncio.get_running_loop()
        self.udp: asyncio.DatagramTransport | None = None
        self.tcp: dict[Addr, TcpConnection] = {}
        self.counters: Counter[str] = Counter()
        self.accepting_new = True
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at: float | None = None
        self.after_step: Callable[[], None] | None = None  # the daemon drains records here

    # -- input ---------------------------------------------------------------------------
    def receive(self, data: bytes, addr: Addr, transport: str) -> None:
        now = self.loop.time()
        self.counters[f"{transport}.in"] += 1
        if len(data) > self.max_message_bytes and transport == "udp":
            self.counters["oversize"] += 1
            self._refuse(data, addr, transport, 513, "Message Too Large")
            return
        try:
            msg = parse(data, self.max_message_bytes)
        except SipParseError as exc:
            self.counters["malformed"] += 1
            status = getattr(exc, "status", 400)
            if transport == "udp" and status == 413:
                status = 513
            log.info("malformed message from %s:%s: %s", addr[0], addr[1], exc)
            self._refuse(data, addr, transport, status, getattr(exc, "reason", str(exc)))
            return
        if not self.accepting_new and getattr(msg, "method", None) == "INVITE" and msg.to_tag is None:
            self._refuse(data, addr, transport, 503, "Shutting Down")
            return
        try:
            self.layer.receive(msg, addr, now, reliable=transport == "tcp", transport=transport)
        except SipParseError as exc:  # a header the layer needs is malformed (Via, CSeq)
            self.counters["malformed"] += 1
            self._refuse(data, addr, transport, 400, getattr(exc, "reason", str(exc)))
            return
        self.step(now)

    def _refuse(self, data: bytes, addr: Addr, transport: str, status: int, reason: str) -> None:
        resp = error_response(data, status, reason)
        if resp is None:
            self.counters["dropped"] += 1
            return
        self.counters[f"refused.{status}"] += 1
        self.send(resp, addr, transport)

    # -- the pump --------------------------------------------------------------------------
    def step(self, now: float | None = None) -> None:
        """Drain events into the core, send what is queued, re-arm the timer."""
        if now is None:
            now = self.loop.time()
        layer, core = self.layer, self.core
        while True:
            event = layer.next_event()
            if event is None:
                break
            try:
                core.handle_event(event, now)
            except Exception:  # a bug must cost one call, not the daemon
                self.counters["core.error"] += 1
                log.exception("error handling %r", event)
        for data, addr, transport in layer.datagrams_to_send():
            self.send(data, addr, transport)
        if self.after_step is not None:
            self.after_step()
        self._arm(now)

    def _arm(self, now: float) -> None:
        deadlines = [t for t in (self.layer.get_timer(), self.core.get_timer()) if t is not None]
        at = min(deadlines) if deadlines else None
        if at == self._timer_at:
            return
        if self._timer is not None:
            self._timer.cancel()
        self._timer_at = at
        self._timer = self.loop.call_at(at, self._on_timer) if at is not None else None

    def _on_timer(self) -> None:
        now = self.loop.time()
        self._timer = None
        self._timer_at = None
        self.layer.handle_timer(now)
        self.core.handle_timer(now)
        self.step(now)

    # -- output ----------------------------------------------------------------------------
    def send(self, data: bytes, addr: Addr, transport: str) -> None:
        self.counters[f"{transport}.out"] += 1
        if transport == "udp":
            if self.udp is not None:
                self.udp.sendto(data, addr)
            return
        conn = self.tcp.get(addr)
        if conn is None:
            conn = TcpConnection(self, addr, outbound=True)
            self.tcp[addr] = conn
            self.loop.create_task(conn.connect())
        conn.write(data)

    def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        if self.udp is not None:
            self.udp.close()
        for conn in list(self.tcp.values()):
            conn.close()


class UdpProtocol(asyncio.DatagramProtocol):
    def __init__(self, endpoint: SipEndpoint) -> None:
        self.endpoint = endpoint

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.endpoint.udp = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: Addr) -> None:
        self.endpoint.receive(data, (addr[0], addr[1]), "udp")

    def error_received(self, exc: Exception) -> None:
        # ICMP port unreachable from a peer that went away: the transaction times out
        self.endpoint.counters["udp.icmp_error"] += 1


class TcpConnection(asyncio.Protocol):
    """One TCP connection, framed by Content-Length (RFC 3261 §18.3)."""

    def __init__(self, endpoint: SipEndpoint, addr: Addr | None = None, *, outbound: bool = False) -> None:
        self.endpoint = endpoint
        self.addr = addr
        self.outbound = outbound
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        self.pending: list[bytes] = []

    async def connect(self) -> None:
        assert self.addr is not None
        try:
            await self.endpoint.loop.create_connection(lambda: self, *self.addr)
        except OSError as exc:
            log.info("tcp connect to %s:%s failed: %s", *self.addr, exc)
            self.endpoint.tcp.pop(self.addr, None)
            self.pending.clear()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's TCP transport is not an asyncio.Transport subclass: cast, don't check
        self.transport = tcp = cast(asyncio.Transport, transport)
        peer = tcp.get_extra_info("peername")
        self.addr = (peer[0], peer[1])
        self.endpoint.tcp[self.addr] = self
        for data in self.pending:
            tcp.write(data)
        self.pending.clear()

    def write(self, data: bytes) -> None:
        if self.transport is None:
            self.pending.append(data)
        else:
            self.transport.write(data)

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        limit = self.endpoint.max_message_bytes
        while self.buffer:
            # RFC 5626 §3.5.1 keep-alives: a CRLFCRLF ping gets a CRLF pong; a lone CRLF
            # (a pong, or half a ping still on its way) is consumed or waited for
            if self.buffer.startswith(b"\r\n\r\n"):
                del self.buffer[:4]
                self.endpoint.counters["tcp.keepalive"] += 1
                if self.transport is not None:
                    self.transport.write(b"\r\n")
                continue
            if self.buffer == b"\r\n":
                return
            if self.buffer.startswith(b"\r\n"):
                del self.buffer[:2]
                continue
            try:
                size = message_length(self.buffer, limit)
            except SipParseError as exc:
                # the stream cannot be re-synchronised: answer if possible, then close
                self.endpoint.counters["malformed"] += 1
                resp = error_response(bytes(self.buffer[:limit]), getattr(exc, "status", 400), getattr(exc, "reason", str(exc)))
                if resp is not None and self.transport is not None:
                    self.transport.write(resp)
                self.close()
                return
            if size < 0:
                if len(self.buffer) > limit:
                    self.endpoint.counters["oversize"] += 1
                    self.close()
                return
            message = bytes(self.buffer[:size])
            del self.buffer[:size]
            if message.strip():
                assert self.addr is not None
                self.endpoint.receive(message, self.addr, "tcp")

    def connection_lost(self, exc: Exception | None) -> None:
        if self.addr is not None and self.endpoint.tcp.get(self.addr) is self:
            del self.endpoint.tcp[self.addr]

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()
