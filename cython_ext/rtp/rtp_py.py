"""RTP packets, jitter buffer, receive statistics and MOS, pure Python: twin of ``_rtp``.

* :func:`parse_rtp` / :func:`build_rtp`: the RFC 3550 §5.1 fixed header, CSRC list,
  §5.3.1 header extension and padding.  A malformed packet raises :class:`RtpError`
  naming the first rule it breaks.
* :class:`JitterBuffer`: reorders by sequence number (extended over wrap-around),
  starts and restarts playout once ``depth_ms`` of packets is buffered, and skips a
  missing packet only when waiting longer would exceed ``depth_ms``.
* :class:`ReceiveStats`: RFC 3550 A.1 (sequence validation, probation, cycles),
  A.3 (expected, lost, fraction lost) and A.8 (interarrival jitter).
* :func:`mos_estimate`: a simplified ITU-T G.107 E-model for G.711.

Sans-I/O: bytes and arrival times in, objects and numbers out.  The compiled module
has the same API and the tests hold both to the same results.  Hand-written because no
maintained Python library offers RTP parsing and RFC 3550 statistics with a nogil C
API the media engine's native thread can call (see ``_rtp.pxd``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from cython_ext.rtp.errors import RtpError

__all__ = [
    "IMPLEMENTATION",
    "JitterBuffer",
    "ReceiveStats",
    "RtpError",
    "RtpPacket",
    "build_rtp",
    "mos_estimate",
    "parse_rtp",
    "r_factor",
    "r_to_mos",
]

IMPLEMENTATION = "python"

RTP_VERSION = 2
FIXED_HEADER_LEN = 12
RTP_SEQ_MOD = 1 << 16
MAX_DROPOUT = 3000  # RFC 3550 A.1
MAX_MISORDER = 100
SKIP_HISTORY = 1024  # skipped sequence numbers remembered to recognise late packets

# E-model (ITU-T G.107) for G.711 with packet loss concealment (G.113 Appendix I).
CODEC_IMPAIRMENT = {"PCMU": (0.0, 25.1), "PCMA": (0.0, 25.1)}  # Ie, Bpl
CODEC_DELAY_MS = 25.0  # 20 ms packetization + 5 ms codec, playout and processing


@dataclass(frozen=True, slots=True)
class RtpPacket:
    """One RTP packet (RFC 3550 §5.1)."""

    version: int
    padding: int  # padding bytes removed from the end (0: P bit clear)
    extension: bool  # X bit
    marker: bool
    payload_type: int
    sequence: int
    timestamp: int
    ssrc: int
    csrcs: tuple[int, ...]
    extension_profile: int | None  # the 16-bit "defined by profile" field
    extension_data: bytes  # the extension words, without their 4-byte header
    payload: bytes  # padding removed


def parse_rtp(data: bytes | bytearray | memoryview) -> RtpPacket:
    """Parse one RTP datagram; :class:`RtpError` says what is wrong with a bad one."""
    data = bytes(data)
    n = len(data)
    if n < FIXED_HEADER_LEN:
        raise RtpError(f"too short: {n} bytes, the fixed header needs {FIXED_HEADER_LEN}")
    b0, b1 = data[0], data[1]
    version = b0 >> 6
    if version != RTP_VERSION:
        raise RtpError(f"version {version}, expected {RTP_VERSION}")
    cc = b0 & 0x0F
    offset = FIXED_HEADER_LEN + 4 * cc
    if offset > n:
        raise RtpError(f"CSRC count {cc} needs {offset} header bytes, packet has {n}")
    csrcs = tuple(int.from_bytes(data[i : i + 4], "big") for i in range(12, offset, 4))
    profile = None
    ext_data = b""
    if b0 & 0x10:
        if offset + 4 > n:
            raise RtpError(
                f"extension header beyond length: needs {offset + 4} bytes, packet has {n}"
            )
        profile = int.from_bytes(data[offset : offset + 2], "big")
        words = int.from_bytes(data[offset + 2 : offset + 4], "big")
        end = offset + 4 + 4 * words
        if end > n:
            raise RtpError(
                f"extension of {words} words beyond length: ends at {end}, packet has {n}"
            )
        ext_data = data[offset + 4 : end]
        offset = end
    pad = 0
    if b0 & 0x20:
        pad = data[-1]
        if pad == 0 or pad > n - offset:
            raise RtpError(f"padding count {pad} invalid: {n - offset} bytes follow the header")
    return RtpPacket(
        version=version,
        padding=pad,
        extension=bool(b0 & 0x10),
        marker=bool(b1 & 0x80),
        payload_type=b1 & 0x7F,
        sequence=int.from_bytes(data[2:4], "big"),
        timestamp=int.from_bytes(data[4:8], "big"),
        ssrc=int.from_bytes(data[8:12], "big"),
        csrcs=csrcs,
        extension_profile=profile,
        extension_data=ext_data,
        payload=data[offset : n - pad],
    )


def _check(name: str, value: int, bits: int) -> None:
    if not 0 <= value < 1 << bits:
        raise ValueError(f"{name} {value} does not fit in {bits} bits")


def build_rtp(
    *,
    payload_type: int,
    sequence: int,
    timestamp: int,
    ssrc: int,
    payload: bytes | bytearray | memoryview,
    marker: bool = False,
    csrcs: tuple[int, ...] | list[int] = (),
    extension: tuple[int, bytes] | None = None,
    padding: int = 0,
) -> bytes:
    """One RTP packet.  ``extension`` is ``(profile, data)`` with ``len(data) % 4 == 0``;
    ``padding`` appends that many bytes (the last holds the count) and sets P."""
    _check("payload_type", payload_type, 7)
    _check("sequence", sequence, 16)
    _check("timestamp", timestamp, 32)
    _check("ssrc", ssrc, 32)
    _check("padding", padding, 8)
    if len(csrcs) > 15:
        raise ValueError(f"{len(csrcs)} CSRCs, at most 15 fit")
    for csrc in csrcs:
        _check("csrc", csrc, 32)
    b0 = (RTP_VERSION << 6) | (0x20 if padding else 0) | (0x10 if extension else 0) | len(csrcs)
    parts = [
        bytes([b0, (0x80 if marker else 0) | payload_type]),
        sequence.to_bytes(2, "big"),
        timestamp.to_bytes(4, "big"),
        ssrc.to_bytes(4, "big"),
    ]
    parts.extend(csrc.to_bytes(4, "big") for csrc in csrcs)
    if extension is not None:
        profile, data = extension
        _check("extension profile", profile, 16)
        if len(data) % 4:
            raise ValueError(f"extension data is {len(data)} bytes, not a multiple of 4")
        _check("extension length in words", len(data) // 4, 16)
        parts += [profile.to_bytes(2, "big"), (len(data) // 4).to_bytes(2, "big"), bytes(data)]
    parts.append(bytes(payload))
    if padding:
        parts.append(bytes(padding - 1) + bytes([padding]))
    return b"".join(parts)


def _delta16(seq: int, ref: int) -> int:
    """``seq - ref`` as the nearest signed distance modulo 2**16."""
    return ((seq - ref + 0x8000) & 0xFFFF) - 0x8000


class JitterBuffer:
    """Puts RTP packets back in sequence order for playout, one ``pop()`` per ptime.

    Playout starts (and restarts after the buffer runs dry) once the buffered span
    reaches ``depth_ms``.  A missing packet is waited for until the span would exceed
    ``depth_ms``; then it is counted lost and skipped.  A packet arriving after its
    slot was played or skipped is dropped and counted late (and no longer lost).
    ``received`` counts every push.  Call ``reset()`` when the SSRC changes.
    """

    def __init__(self, depth_ms: float = 60, clock_rate: int = 8000, ptime_ms: float = 20) -> None:
        if not ptime_ms > 0 or not depth_ms >= 0 or not clock_rate > 0:
            raise ValueError("need ptime_ms > 0, depth_ms >= 0 and clock_rate > 0")
        self.depth_ms = float(depth_ms)
        self.clock_rate = int(clock_rate)
        self.ptime_ms = float(ptime_ms)
        self._slots = max(1, math.ceil(self.depth_ms / self.ptime_ms - 1e-9))
        self.reset()

    def reset(self) -> None:
        """Forget every packet and counter (a new SSRC)."""
        self._packets: dict[int, RtpPacket] = {}
        self._next = -1  # extended sequence number to play next; -1: nothing seen
        self._highest = -1
        self._first_played = -1
        self._playing = False
        self._skipped: set[int] = set()
        self.received = self.duplicates = self.late = self.reordered = 0
        self.lost = self.played = self.underruns = 0
        self.last_arrival_s = 0.0

    @property
    def samples_per_packet(self) -> int:
        """Timestamp units per packet at this clock rate and ptime."""
        return round(self.clock_rate * self.ptime_ms / 1000)

    @property
    def current_depth_ms(self) -> float:
        """Span from the next slot to play to the newest packet held, in ms."""
        if not self._packets:
            return 0.0
        return (self._highest - self._next + 1) * self.ptime_ms

    def __len__(self) -> int:
        return len(self._packets)

    def push(self, packet: RtpPacket, arrival_s: float) -> None:
        """Hand over one received packet."""
        self.received += 1
        self.last_arrival_s = arrival_s
        if self._next < 0:
            ext = RTP_SEQ_MOD + packet.sequence  # room below for reordered packets
            self._next = self._highest = ext
            self._packets[ext] = packet
            return
        ext = self._highest + _delta16(packet.sequence, self._highest & 0xFFFF)
        if ext < self._next:
            if self._first_played < 0:  # nothing played yet: start earlier instead
                self._next = ext
                self.reordered += 1
                self._packets[ext] = packet
            elif ext in self._skipped:
                self._skipped.discard(ext)
                self.late += 1
                self.lost -= 1
            elif ext < self._first_played:
                self.late += 1
            else:
                self.duplicates += 1
            return
        if ext in self._packets:
            self.duplicates += 1
            return
        if ext < self._highest:
            self.reordered += 1
        else:
            self._highest = ext
        self._packets[ext] = packet

    def pop(self) -> RtpPacket | None:
        """The next packet in sequence order, or None (not yet, or a gap to conceal)."""
        if not self._packets:
            if self._playing:
                self._playing = False
                self.underruns += 1
            return None
        span = self._highest - self._next + 1
        if not self._playing:
            if span < self._slots:
                return None
            self._playing = True
        packet = self._packets.pop(self._next, None)
        if packet is None:
            if span <= self._slots:
                return None
            first = min(self._packets)
            self.lost += first - self._next
            self._skipped.update(range(max(self._next, first - SKIP_HISTORY), first))
            self._next = first
            floor = first - SKIP_HISTORY
            self._skipped = {e for e in self._skipped if e >= floor}
            packet = self._packets.pop(first)
        if self._first_played < 0:
            self._first_played = self._next
        self._next += 1
        self.played += 1
        return packet


def _int32(value: int) -> int:
    value &= 0xFFFFFFFF
    return value - (1 << 32) if value & 0x80000000 else value


class ReceiveStats:
    """RFC 3550 receive statistics for one SSRC; call ``reset()`` when it changes.

    ``min_sequential`` is A.1's MIN_SEQUENTIAL: a source counts once that many
    packets arrived in sequence (the RFC's 2 by default; 1 counts from the first).
    ``update`` returns False for a packet the A.1 rules do not count (probation, a
    jump beyond MAX_DROPOUT awaiting confirmation).  Jitter (A.8) uses counted packets
    only; after a confirmed sequence restart it takes a fresh transit baseline.
    """

    def __init__(self, clock_rate: int = 8000, min_sequential: int = 2) -> None:
        if not clock_rate > 0 or not min_sequential >= 1:
            raise ValueError("need clock_rate > 0 and min_sequential >= 1")
        self.clock_rate = int(clock_rate)
        self.min_sequential = int(min_sequential)
        self.reset()

    def reset(self) -> None:
        """Forget the source: the next packet starts a new one."""
        self._started = False
        self.probation = 0
        self.base_seq = self.max_seq = self.cycles = 0
        self._bad_seq = RTP_SEQ_MOD + 1
        self.received = self._received_prior = self._expected_prior = 0
        self.out_of_order = self.rejected = self.restarts = 0
        self.jitter = 0.0  # RFC 3550 J, in timestamp units
        self._have_transit = False
        self._last_arrival_s = 0.0
        self._last_ts = 0

    def _init_seq(self, seq: int) -> None:
        self.base_seq = self.max_seq = seq
        self._bad_seq = RTP_SEQ_MOD + 1
        self.cycles = self.received = self._received_prior = self._expected_prior = 0

    def _update_seq(self, seq: int) -> bool:
        udelta = (seq - self.max_seq) & 0xFFFF
        if self.probation:
            if seq == (self.max_seq + 1) & 0xFFFF:
                self.probation -= 1
                self.max_seq = seq
                if self.probation == 0:
                    self._init_seq(seq)
                    self.received += 1
                    return True
            else:
                self.probation = self.min_sequential - 1
                self.max_seq = seq
            return False
        if udelta < MAX_DROPOUT:
            if seq < self.max_seq:
                self.cycles += RTP_SEQ_MOD
            self.max_seq = seq
        elif udelta <= RTP_SEQ_MOD - MAX_MISORDER:
            if seq != self._bad_seq:
                self._bad_seq = (seq + 1) & 0xFFFF
                self.rejected += 1
                return False
            self._init_seq(seq)  # two packets in sequence after a jump: a restart
            self.restarts += 1
            self._have_transit = False
        else:
            self.out_of_order += 1  # duplicate or reordered
        self.received += 1
        return True

    def update(self, sequence: int, timestamp: int, arrival_s: float) -> bool:
        """Account one packet; True when A.1 counts it."""
        if not self._started:
            self._started = True
            self._init_seq(sequence)
            self.max_seq = (sequence - 1) & 0xFFFF
            self.probation = self.min_sequential
        if not self._update_seq(sequence):
            return False
        if self._have_transit:
            d = (arrival_s - self._last_arrival_s) * self.clock_rate - _int32(
                timestamp - self._last_ts
            )
            self.jitter += (abs(d) - self.jitter) / 16.0
        self._have_transit = True
        self._last_arrival_s = arrival_s
        self._last_ts = timestamp
        return True

    @property
    def valid(self) -> bool:
        """The source passed probation."""
        return self._started and self.probation == 0

    @property
    def extended_max_seq(self) -> int:
        return self.cycles + self.max_seq

    @property
    def expected(self) -> int:
        return self.extended_max_seq - self.base_seq + 1 if self.valid else 0

    @property
    def lost(self) -> int:
        """Cumulative packets lost: negative when duplicates outnumber losses (RFC 3550)."""
        return self.expected - self.received

    @property
    def fraction_lost(self) -> float:
        """Cumulative lost / expected, with ``lost`` clamped at 0."""
        expected = self.expected
        return max(self.lost, 0) / expected if expected > 0 else 0.0

    @property
    def jitter_ms(self) -> float:
        return self.jitter * 1000.0 / self.clock_rate

    def interval_fraction_lost(self) -> int:
        """RFC 3550 A.3 fraction lost since the previous call, 8-bit fixed point."""
        expected = self.expected
        expected_interval = expected - self._expected_prior
        self._expected_prior = expected
        received_interval = self.received - self._received_prior
        self._received_prior = self.received
        lost_interval = expected_interval - received_interval
        if expected_interval == 0 or lost_interval <= 0:
            return 0
        return (lost_interval << 8) // expected_interval


def r_to_mos(r: float) -> float:
    """G.107 Annex B: rating factor R -> MOS (1.0 .. 4.5)."""
    if r <= 0.0:
        return 1.0
    if r >= 100.0:
        return 4.5
    mos = 1.0 + 0.035 * r + r * (r - 60.0) * (100.0 - r) * 7e-6
    return mos if mos > 1.0 else 1.0  # the cubic dips just below 1 for 0 < R < 6.5


def r_factor(loss_fraction: float, delay_ms: float, ie: float = 0.0, bpl: float = 25.1) -> float:
    """Simplified G.107 R = 93.2 - Id - Ie,eff (A = 0, random loss: BurstR = 1)."""
    idd = 0.024 * delay_ms
    if delay_ms > 177.3:
        idd += 0.11 * (delay_ms - 177.3)
    ppl = 100.0 * loss_fraction
    ie_eff = ie + (95.0 - ie) * ppl / (ppl + bpl)
    return 93.2 - idd - ie_eff


def mos_estimate(
    *,
    codec: str = "PCMU",
    loss_fraction: float,
    jitter_ms: float,
    rtt_ms: float = 0.0,
    jitter_buffer_ms: float = 60.0,
) -> float:
    """Estimated MOS-CQE of a G.711 call (with PLC: Bpl 25.1).

    One-way delay = rtt/2 + jitter buffer + 25 ms (packetization and codec); the buffer
    counts as ``max(jitter_buffer_ms, 2 * jitter_ms)``, since it must grow to cover
    the jitter to avoid discards.
    """
    try:
        ie, bpl = CODEC_IMPAIRMENT[codec]
    except KeyError:
        raise ValueError(f"codec {codec!r} unknown; known: {sorted(CODEC_IMPAIRMENT)}") from None
    if not 0.0 <= loss_fraction <= 1.0:
        raise ValueError(f"loss_fraction {loss_fraction} is outside 0..1")
    if not (jitter_ms >= 0.0 and rtt_ms >= 0.0 and jitter_buffer_ms >= 0.0):
        raise ValueError("jitter_ms, rtt_ms and jitter_buffer_ms must be >= 0")
    delay = rtt_ms / 2.0 + max(jitter_buffer_ms, 2.0 * jitter_ms) + CODEC_DELAY_MS
    return r_to_mos(r_factor(loss_fraction, delay, ie, bpl))
