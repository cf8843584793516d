"""Packet captures for the media tests: SIPp's pcap files, and live UDP on loopback.

* ``read_rtp`` reads the classic pcap files SIPp plays (``play_pcap_audio``):
  libpcap format (not pcapng), either byte order, micro- or nanosecond timestamps,
  Ethernet / Linux cooked / raw-IP link types, IPv4 or IPv6, UDP, and the RTP header
  (RFC 3550 §5.1) inside. Enough to learn what a test will send: payload types,
  timestamps, durations, the G.711 payload bytes, and the RFC 4733 events
  (RFC 4733 §2.3: event, E bit, duration).
* ``LoopbackCapture`` records the UDP datagrams sent to chosen ports on ``lo``
  (an ``AF_PACKET`` socket with a kernel BPF filter on the ports: root or
  CAP_NET_RAW), so a test sees what really arrived at a peer, independent of the
  peer and of the edge.
"""

from __future__ import annotations

import ctypes
import socket
import struct
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

_MAGIC = {
    b"\xd4\xc3\xb2\xa1": ("<", 1e-6),
    b"\xa1\xb2\xc3\xd4": (">", 1e-6),
    b"\x4d\x3c\xb2\xa1": ("<", 1e-9),
    b"\xa1\xb2\x3c\x4d": (">", 1e-9),
}
LINKTYPE_ETHERNET = 1
LINKTYPE_RAW = 101
LINKTYPE_LINUX_SLL = 113
_ETHERTYPE_VLAN = 0x8100
_IPPROTO_UDP = 17
RFC4733_KEYS = "0123456789*#ABCD"


class PcapError(ValueError):
    """The file is not a pcap this reader understands."""


@dataclass(frozen=True)
class RtpPacket:
    """One RTP packet of a capture."""

    time_s: float
    """Capture time, seconds since the epoch."""
    src_port: int
    """UDP source port."""
    dst_port: int
    """UDP destination port."""
    payload_type: int
    """RTP payload type (7 bits)."""
    marker: bool
    """RTP marker bit."""
    seq: int
    """RTP sequence number."""
    timestamp: int
    """RTP timestamp."""
    ssrc: int
    """RTP synchronisation source."""
    payload: bytes
    """Payload after the header, CSRCs, extension and padding."""


@dataclass(frozen=True)
class TelephoneEvent:
    """An RFC 4733 event as its end packet reports it."""

    key: str
    """The DTMF key (events 0-15)."""
    timestamp: int
    """RTP timestamp shared by every packet of the event."""
    duration_samples: int
    """Duration field of the end packet (8 kHz units)."""


def _udp_payloads(data: bytes) -> list[tuple[float, int, int, bytes]]:
    if len(data) < 24 or data[:4] not in _MAGIC:
        raise PcapError("not a libpcap file (bad magic)")
    order, tick = _MAGIC[data[:4]]
    (linktype,) = struct.unpack_from(order + "I", data, 20)
    out = []
    offset = 24
    while offset + 16 <= len(data):
        sec, frac, incl, _orig = struct.unpack_from(order + "IIII", data, offset)
        offset += 16
        frame = data[offset : offset + incl]
        offset += incl
        if len(frame) < incl:
            raise PcapError("truncated record")
        datagram = udp_datagram(frame, linktype)
        if datagram is not None:
            out.append((sec + frac * tick, *datagram))
    return out


def udp_datagram(frame: bytes, linktype: int = LINKTYPE_ETHERNET) -> tuple[int, int, bytes] | None:
    """(source port, destination port, payload) of a UDP frame; None for anything else."""
    if linktype == LINKTYPE_ETHERNET:
        if len(frame) < 14:
            return None
        ethertype, ip = struct.unpack_from("!H", frame, 12)[0], 14
        while ethertype == _ETHERTYPE_VLAN and len(frame) >= ip + 4:
            ethertype, ip = struct.unpack_from("!H", frame, ip + 2)[0], ip + 4
    elif linktype == LINKTYPE_LINUX_SLL:
        ip = 16
    elif linktype == LINKTYPE_RAW:
        ip = 0
    else:
        raise PcapError(f"link type {linktype} not supported")
    if len(frame) <= ip:
        return None
    version = frame[ip] >> 4
    if version == 4:
        proto, udp = frame[ip + 9], ip + (frame[ip] & 0x0F) * 4
    elif version == 6:
        proto, udp = frame[ip + 6], ip + 40  # no extension headers in these captures
    else:
        return None
    if proto != _IPPROTO_UDP or len(frame) < udp + 8:
        return None
    sport, dport, length = struct.unpack_from("!HHH", frame, udp)
    return sport, dport, frame[udp + 8 : udp + length]


def rtp_packet(when: float, sport: int, dport: int, data: bytes) -> RtpPacket | None:
    """``data`` as an RTP packet (None when it is not RTP version 2)."""
    if len(data) < 12 or data[0] >> 6 != 2:
        return None
    start = 12 + 4 * (data[0] & 0x0F)
    if data[0] & 0x10 and len(data) >= start + 4:
        start += 4 + 4 * struct.unpack_from("!H", data, start + 2)[0]
    end = len(data) - (data[-1] if data[0] & 0x20 else 0)
    seq, ts, ssrc = struct.unpack_from("!HII", data, 2)
    return RtpPacket(
        when, sport, dport, data[1] & 0x7F, bool(data[1] & 0x80), seq, ts, ssrc, data[start:end]
    )


def read_rtp(path: str | Path) -> list[RtpPacket]:
    """Every RTP (version 2) packet over UDP in the capture, in file order."""
    packets = []
    for datagram in _udp_payloads(Path(path).read_bytes()):
        packet = rtp_packet(*datagram)
        if packet is not None:
            packets.append(packet)
    return packets


def telephone_events(packets: list[RtpPacket], payload_type: int) -> list[TelephoneEvent]:
    """The RFC 4733 DTMF events among ``packets``, once each (the end packet is
    usually sent three times), in order."""
    events: list[TelephoneEvent] = []
    seen: set[int] = set()
    for p in packets:
        if p.payload_type != payload_type or len(p.payload) < 4 or not p.payload[1] & 0x80:
            continue
        if p.timestamp in seen or p.payload[0] >= len(RFC4733_KEYS):
            continue
        seen.add(p.timestamp)
        duration = struct.unpack_from("!H", p.payload, 2)[0]
        events.append(TelephoneEvent(RFC4733_KEYS[p.payload[0]], p.timestamp, duration))
    return events


def duration_s(packets: list[RtpPacket]) -> float:
    """Capture time from the first packet to the last."""
    return packets[-1].time_s - packets[0].time_s if packets else 0.0


# --------------------------------------------------------------------------- live


_ETH_P_ALL = 0x0003
_PACKET_OUTGOING = 4
_SOL_PACKET = 263  # linux/socket.h
_PACKET_STATISTICS = 6  # linux/if_packet.h: struct tpacket_stats {packets, drops}


_SO_ATTACH_FILTER = 26  # asm-generic/socket.h
_SKF_AD_PKTTYPE = 0xFFFFF000 + 4  # linux/filter.h: ancillary load of the packet type


def _udp_port_filter(ports: Iterable[int]) -> list[tuple[int, int, int, int]]:
    """Classic BPF: arriving (not outgoing) IPv4 UDP, unfragmented, from or to ``ports``.

    Filtering in the kernel keeps a busy loopback (other tests' traffic) out of the
    socket's queue, so a Python reader never falls behind on the frames it wants.
    """
    ports = sorted(set(ports))
    # (code, true label, false label, k); a label is "next", "drop" or "accept"
    program: list[tuple[int, str, str, int]] = [
        (0x20, "next", "next", _SKF_AD_PKTTYPE),  # ld pkttype
        (0x15, "drop", "next", _PACKET_OUTGOING),  # jeq outgoing
        (0x28, "next", "next", 12),  # ldh [12]: ethertype
        (0x15, "next", "drop", 0x0800),  # IPv4
        (0x30, "next", "next", 23),  # ldb [23]: protocol
        (0x15, "next", "drop", _IPPROTO_UDP),
        (0x28, "next", "next", 20),  # ldh [20]: fragment offset
        (0x45, "drop", "next", 0x1FFF),  # jset: not the first fragment
        (0xB1, "next", "next", 14),  # ldxb 4*([14]&0xf): IP header length
    ]
    for offset in (14, 16):  # source port, destination port
        program.append((0x48, "next", "next", offset))  # ldh [x + offset]
        program += [(0x15, "accept", "next", port) for port in ports]
    program.append((0x06, "next", "next", 0))  # drop: ret #0
    program.append((0x06, "next", "next", 0x40000))  # accept: ret #262144
    drop, accept = len(program) - 2, len(program) - 1

    def jump(pc: int, label: str) -> int:
        return {"next": 0, "drop": drop - pc - 1, "accept": accept - pc - 1}[label]

    return [(code, jump(pc, jt), jump(pc, jf), k) for pc, (code, jt, jf, k) in enumerate(program)]


class LoopbackCapture:
    """UDP datagrams from or to ``ports`` on the loopback interface, while in ``with``.

    Each datagram on ``lo`` passes the packet socket twice (leaving, arriving); only
    the arrival is kept. A thread drains the socket into ``datagrams`` as
    ``(time.time(), source port, destination port, payload)``.
    """

    def __init__(self, ports: Iterable[int], interface: str = "lo") -> None:
        self.ports = set(ports)
        self.interface = interface
        self.datagrams: list[tuple[float, int, int, bytes]] = []
        self.drops = 0
        """Frames the kernel dropped because the socket was full (known after ``with``)."""
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._sock: socket.socket | None = None
        self._thread: threading.Thread | None = None

    @staticmethod
    def available() -> bool:
        """Whether this process may open a packet socket (root or CAP_NET_RAW)."""
        try:
            socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(_ETH_P_ALL)).close()
        except (PermissionError, AttributeError, OSError):
            return False
        return True

    def __enter__(self) -> LoopbackCapture:
        # protocol 0 receives nothing until bind: the filter is in place before any frame
        sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0)
        code = b"".join(struct.pack("=HBBI", *ins) for ins in _udp_port_filter(self.ports))
        buffer = ctypes.create_string_buffer(code)
        fprog = struct.pack("=HxxxxxxQ", len(code) // 8, ctypes.addressof(buffer))
        sock.setsockopt(socket.SOL_SOCKET, _SO_ATTACH_FILTER, fprog)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 * 1024 * 1024)
        sock.bind((self.interface, _ETH_P_ALL))
        sock.getsockopt(_SOL_PACKET, _PACKET_STATISTICS, 8)  # reading resets the counters
        sock.settimeout(0.05)
        self._sock = sock
        self._thread = threading.Thread(target=self._run, name="loopback-capture", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5.0)
        if self._sock is not None:
            stats = self._sock.getsockopt(_SOL_PACKET, _PACKET_STATISTICS, 8)
            self.drops = struct.unpack("II", stats)[1]
            self._sock.close()

    def _run(self) -> None:
        assert self._sock is not None
        while not self._stop.is_set():
            try:
                frame, address = self._sock.recvfrom(65535)
            except TimeoutError:
                continue
            except OSError:
                return
            if address[2] == _PACKET_OUTGOING:
                continue
            datagram = udp_datagram(frame)
            if datagram is not None and (datagram[0] in self.ports or datagram[1] in self.ports):
                with self._lock:
                    self.datagrams.append((time.time(), *datagram))

    def to_port(self, port: int) -> list[tuple[float, int, int, bytes]]:
        """The datagrams captured so far that were sent to ``port``, in arrival order."""
        with self._lock:
            return [d for d in self.datagrams if d[2] == port]

    def from_port(self, port: int) -> list[tuple[float, int, int, bytes]]:
        """The datagrams captured so far that were sent from ``port``, in arrival order."""
        with self._lock:
            return [d for d in self.datagrams if d[1] == port]

    def rtp_to(self, port: int) -> list[RtpPacket]:
        """The RTP packets captured so far that were sent to ``port``."""
        packets = (rtp_packet(*d) for d in self.to_port(port))
        return [p for p in packets if p is not None]
