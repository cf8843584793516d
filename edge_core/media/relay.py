"""RTP relay v0: one UDP socket per call leg, packets copied between connected legs.

A packet received on leg A is sent from leg B's socket to ``B.remote`` — each peer
sends to and receives from the same edge port (symmetric RTP, RFC 4961). With
``latch`` on, the first packet a leg receives after allocation or ``set_remote`` fixes
``leg.remote`` to its source address (NAT traversal); afterwards packets from other
sources are dropped, so a stray sender cannot steal the stream ("RTP bleed").

Why ``loop.add_reader`` on raw non-blocking sockets and not
``create_datagram_endpoint``: ``allocate_leg`` must be synchronous, and a reader is
registered immediately, whereas endpoint creation is a coroutine that would leave a
window where the port is bound but unserved. The reader also drains the socket with
``recvfrom_into`` into one reused buffer and ``sendto`` without a Transport/Protocol
pair per leg, which is less work per packet, and it is the same shape (readiness ->
drain -> forward) the Cython engine has with epoll. A full send buffer drops the
packet: late RTP is useless, so nothing is queued. Works with uvloop and the default
selector loop (Linux; the Windows proactor loop has no ``add_reader``).
"""

from __future__ import annotations

import asyncio
import errno
import ipaddress
import itertools
import logging
import socket
import time
from dataclasses import dataclass

__all__ = ["MediaError", "MediaLeg", "MediaRelay"]

log = logging.getLogger(__name__)

# Bound the work done per readiness callback so one busy leg cannot starve the loop.
_MAX_PACKETS_PER_WAKEUP = 64
_RECV_BUFFER_BYTES = 65535


class MediaError(Exception):
    """The relay cannot do what was asked (port range exhausted, unknown leg...)."""


@dataclass(eq=False)
class MediaLeg:
    """One side of a call as the edge sees it (identity, not value, equality)."""

    id: int
    """Relay-unique leg number."""
    local_host: str
    """Address the leg's socket is bound to."""
    local_port: int
    """Even RTP port of the leg; ``local_port + 1`` is reserved for RTCP."""
    remote: tuple[str, int] | None = None
    """Where the leg sends media: from SDP, then latched to the peer's real source."""
    packets_in: int = 0
    """Datagrams received on this leg (forwarded or not)."""
    packets_out: int = 0
    """Datagrams sent from this leg to ``remote``."""
    bytes_in: int = 0
    bytes_out: int = 0
    last_rx: float = 0.0
    """``time.monotonic()`` of the last received datagram, 0 if none yet."""
    lost: int = 0
    """RTP packets lost on the way in (sequence gaps; the engine counts them)."""
    jitter_ms: float | None = None
    """RFC 3550 interarrival jitter of the incoming stream, None when not measured."""

    @property
    def rtcp_port(self) -> int:
        return self.local_port + 1


class MediaRelay:
    """Relays RTP between pairs of legs on the running asyncio loop."""

    def __init__(self, host: str, port_min: int, port_max: int, *, latch: bool = True) -> None:
        if not 0 < port_min <= port_max <= 65535:
            raise ValueError(f"bad RTP port range {port_min}-{port_max}")
        first_even = port_min + (port_min % 2)
        if first_even + 1 > port_max:
            raise ValueError(f"RTP port range {port_min}-{port_max} has no even/odd port pair")
        self.host = host
        self.port_min = port_min
        self.port_max = port_max
        self.latch = latch
        self._family = socket.AF_INET6 if ":" in host else socket.AF_INET
        # Even ports whose RTCP companion is still inside the range.
        self._ports = list(range(first_even, port_max, 2))
        self._next_port_index = 0
        self._ids = itertools.count(1)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._legs: dict[int, MediaLeg] = {}
        self._sockets: dict[int, socket.socket] = {}
        self._peers: dict[int, MediaLeg] = {}
        self._latched: set[int] = set()
        self._ports_in_use: set[int] = set()
        self._buffer = bytearray(_RECV_BUFFER_BYTES)
        self._view = memoryview(self._buffer)
        self._packets_relayed = 0
        self._bytes_relayed = 0
        self._packets_dropped = 0

    @property
    def implementation(self) -> str:
        return "asyncio-v0"

    async def start(self) -> None:
        """Attach to the running loop; legs can be allocated from now on."""
        self._loop = asyncio.get_running_loop()

    async def stop(self) -> None:
        """Release every leg (closing its socket) and detach from the loop."""
        for leg in list(self._legs.values()):
            self.release(leg)
        self._loop = None

    def allocate_leg(self) -> MediaLeg:
        """Bind a UDP socket on a free even port and start reading it."""
        if self._loop is None:
            raise MediaError("media relay is not started")
        # Rotate through the range rather than reuse the lowest free port: late packets
        # for a call that just ended must not land on (and latch) the next call.
        for _ in range(len(self._ports)):
            port = self._ports[self._next_port_index]
            self._next_port_index = (self._next_port_index + 1) % len(self._ports)
            if port in self._ports_in_use:
                continue
            sock = self._bind(port)
            if sock is None:
                continue
            leg = MediaLeg(next(self._ids), self.host, port)
            self._legs[leg.id] = leg
            self._sockets[leg.id] = sock
            self._ports_in_use.add(port)
            self._loop.add_reader(sock.fileno(), self._on_readable, leg, sock)
            return leg
        raise MediaError(
            f"no free RTP port in {self.port_min}-{self.port_max} on {self.host}: "
            f"{len(self._legs)} legs active here, the other even ports are in use by "
            f"other processes"
        )

    def _bind(self, port: int) -> socket.socket | None:
        sock = socket.socket(self._family, socket.SOCK_DGRAM)
        try:
            sock.setblocking(False)
            sock.bind((self.host, port))
        except OSError as exc:
            sock.close()
            if exc.errno in (errno.EADDRINUSE, errno.EACCES):
                return None
            raise MediaError(f"cannot bind RTP socket {self.host}:{port}: {exc}") from exc
        return sock

    def set_remote(self, leg: MediaLeg, host: str, port: int) -> None:
        """Send this leg's media to host:port (from SDP); latching may refine it."""
        self._active(leg)
        try:
            ipaddress.ip_address(host)
        except ValueError:
            # sendto() with a name would resolve DNS synchronously on the hot path.
            raise MediaError(f"media address must be an IP literal, got {host!r}") from None
        if not 0 < port <= 65535:
            raise MediaError(f"bad media port {port}")
        leg.remote = (host, port)
        self._latched.discard(leg.id)  # a new offer/answer may move the peer: re-latch

    def connect(self, a: MediaLeg, b: MediaLeg) -> None:
        """Relay a->b and b->a; either leg's previous pairing is undone."""
        self._active(a)
        self._active(b)
        if a is b:
            raise MediaError(f"cannot connect leg {a.id} to itself")
        for leg in (a, b):
            old = self._peers.pop(leg.id, None)
            if old is not None:
                self._peers.pop(old.id, None)
        self._peers[a.id] = b
        self._peers[b.id] = a

    def release(self, leg: MediaLeg) -> None:
        """Stop reading, close the socket and free the port; idempotent."""
        sock = self._sockets.pop(leg.id, None)
        if sock is None:
            return
        if self._loop is not None and not self._loop.is_closed():
            self._loop.remove_reader(sock.fileno())
        sock.close()
        del self._legs[leg.id]
        self._ports_in_use.discard(leg.local_port)
        self._latched.discard(leg.id)
        peer = self._peers.pop(leg.id, None)
        if peer is not None:
            self._peers.pop(peer.id, None)

    def stats(self) -> dict[str, int | str]:
        return {
            "implementation": self.implementation,
            "legs_active": len(self._legs),
            "packets_relayed": self._packets_relayed,
            "bytes_relayed": self._bytes_relayed,
            "packets_dropped": self._packets_dropped,
        }

    def _active(self, leg: MediaLeg) -> None:
        if self._legs.get(leg.id) is not leg:
            raise MediaError(f"leg {leg.id} is not active on this relay")

    def _on_readable(self, leg: MediaLeg, sock: socket.socket) -> None:
        view = self._view
        for _ in range(_MAX_PACKETS_PER_WAKEUP):
            try:
                size, source = sock.recvfrom_into(self._buffer)
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:  # e.g. a queued ICMP error; the socket stays usable
                log.debug("leg %d: receive error %s", leg.id, exc)
                return
            leg.packets_in += 1
            leg.bytes_in += size
            leg.last_rx = time.monotonic()
            source = (source[0], source[1])
            if self.latch:
                if leg.id not in self._latched:
                    self._latched.add(leg.id)
                    if leg.remote != source:
                        log.info("leg %d: latched media %s -> %s", leg.id, leg.remote, source)
                        leg.remote = source
                elif source != leg.remote:
                    self._packets_dropped += 1
                    continue
            peer = self._peers.get(leg.id)
            if peer is None or peer.remote is None:
                self._packets_dropped += 1
                continue
            try:
                self._sockets[peer.id].sendto(view[:size], peer.remote)
            except OSError as exc:  # full buffer or unreachable: late RTP is worthless
                log.debug("leg %d: send to %s failed: %s", peer.id, peer.remote, exc)
                self._packets_dropped += 1
                continue
            peer.packets_out += 1
            peer.bytes_out += size
            self._packets_relayed += 1
            self._bytes_relayed += size
