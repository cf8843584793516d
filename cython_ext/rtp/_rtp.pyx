# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""RTP packets, jitter buffer, receive statistics and MOS, compiled: twin of ``rtp_py``.

Parsing and the RFC 3550 statistics are the nogil ``cdef inline`` functions of
``_rtp.pxd`` (which the media engine cimports); this module wraps them in the Python
API of ``rtp_py`` and keeps the same rules, reasons and numbers -- read that module's
docstring for them.  Hand-written because no maintained Python library offers RTP
parsing and RFC 3550 statistics with a nogil C API.
"""

cimport cython
import math
from cpython.buffer cimport PyBUF_SIMPLE, PyBuffer_Release, PyObject_GetBuffer
from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize
from libc.stdint cimport int64_t, uint16_t, uint32_t
from libc.string cimport memcpy, memset

from cython_ext.rtp.errors import RtpError
from cython_ext.rtp.rtp_py import CODEC_IMPAIRMENT, SKIP_HISTORY

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

IMPLEMENTATION = "cython"

cdef int64_t C_SKIP_HISTORY = SKIP_HISTORY


@cython.final
cdef class RtpPacket:
    """One RTP packet (RFC 3550 §5.1)."""

    cdef readonly int version
    cdef readonly int padding
    cdef readonly bint extension
    cdef readonly bint marker
    cdef readonly int payload_type
    cdef readonly int sequence
    cdef readonly object timestamp
    cdef readonly object ssrc
    cdef readonly tuple csrcs
    cdef readonly object extension_profile
    cdef readonly bytes extension_data
    cdef readonly bytes payload
    cdef uint32_t _ts

    def __init__(self, version, padding, extension, marker, payload_type, sequence,
                 timestamp, ssrc, csrcs, extension_profile, extension_data, payload):
        self.version = version
        self.padding = padding
        self.extension = extension
        self.marker = marker
        self.payload_type = payload_type
        self.sequence = sequence
        self.timestamp = timestamp
        self._ts = timestamp
        self.ssrc = ssrc
        self.csrcs = tuple(csrcs)
        self.extension_profile = extension_profile
        self.extension_data = bytes(extension_data)
        self.payload = bytes(payload)

    def _fields(self):
        return (self.version, self.padding, self.extension, self.marker, self.payload_type,
                self.sequence, self.timestamp, self.ssrc, self.csrcs, self.extension_profile,
                self.extension_data, self.payload)

    def __eq__(self, other):
        if not isinstance(other, RtpPacket):
            return NotImplemented
        return self._fields() == (<RtpPacket>other)._fields()

    def __hash__(self):
        return hash(self._fields())

    def __repr__(self):
        names = ("version", "padding", "extension", "marker", "payload_type", "sequence",
                 "timestamp", "ssrc", "csrcs", "extension_profile", "extension_data", "payload")
        inner = ", ".join(f"{n}={v!r}" for n, v in zip(names, self._fields()))
        return f"RtpPacket({inner})"


cdef str _reason(int code, const RtpHeaderC* h, Py_ssize_t n):
    cdef Py_ssize_t offset = h.header_len
    if code == RTP_ERR_SHORT:
        return f"too short: {n} bytes, the fixed header needs 12"
    if code == RTP_ERR_VERSION:
        return f"version {h.version}, expected 2"
    if code == RTP_ERR_CSRC:
        return f"CSRC count {h.csrc_count} needs {offset} header bytes, packet has {n}"
    if code == RTP_ERR_EXTENSION_HEADER:
        return f"extension header beyond length: needs {offset + 4} bytes, packet has {n}"
    if code == RTP_ERR_EXTENSION_LENGTH:
        return (f"extension of {h.extension_len // 4} words beyond length: "
                f"ends at {offset + 4 + h.extension_len}, packet has {n}")
    return f"padding count {h.padding_len} invalid: {n - offset} bytes follow the header"


def parse_rtp(data) -> RtpPacket:
    """Parse one RTP datagram; :class:`RtpError` says what is wrong with a bad one."""
    cdef Py_buffer view
    cdef RtpHeaderC h
    cdef int code
    cdef const unsigned char* p
    cdef Py_ssize_t n, i, offset
    cdef RtpPacket packet
    PyObject_GetBuffer(data, &view, PyBUF_SIMPLE)
    try:
        p = <const unsigned char*>view.buf
        n = view.len
        code = rtp_parse_header(p, n, &h)
        if code != RTP_OK:
            raise RtpError(_reason(code, &h, n))
        packet = RtpPacket.__new__(RtpPacket)
        packet.version = h.version
        packet.padding = h.padding_len
        packet.extension = h.has_extension
        packet.marker = h.marker
        packet.payload_type = h.pt
        packet.sequence = h.seq
        packet._ts = h.ts
        packet.timestamp = h.ts
        packet.ssrc = h.ssrc
        if h.csrc_count:
            packet.csrcs = tuple([_be32(p + 12 + 4 * i) for i in range(h.csrc_count)])
        else:
            packet.csrcs = ()
        offset = 12 + 4 * h.csrc_count
        if h.has_extension:
            packet.extension_profile = h.extension_profile
            packet.extension_data = PyBytes_FromStringAndSize(<const char*>p + offset + 4, h.extension_len)
        else:
            packet.extension_profile = None
            packet.extension_data = b""
        packet.payload = PyBytes_FromStringAndSize(<const char*>p + h.header_len, h.payload_len)
        return packet
    finally:
        PyBuffer_Release(&view)


cdef inline void _put16(unsigned char* p, unsigned int v) noexcept nogil:
    p[0] = (v >> 8) & 0xFF
    p[1] = v & 0xFF


cdef inline void _put32(unsigned char* p, uint32_t v) noexcept nogil:
    p[0] = v >> 24
    p[1] = (v >> 16) & 0xFF
    p[2] = (v >> 8) & 0xFF
    p[3] = v & 0xFF


cdef void _check(str name, object value, object bits) except *:
    if not 0 <= value < (1 << bits):
        raise ValueError(f"{name} {value} does not fit in {bits} bits")


def build_rtp(*, payload_type, sequence, timestamp, ssrc, payload, marker=False,
              csrcs=(), extension=None, padding=0) -> bytes:
    """One RTP packet.  ``extension`` is ``(profile, data)`` with ``len(data) % 4 == 0``;
    ``padding`` appends that many bytes (the last holds the count) and sets P."""
    cdef Py_ssize_t n_csrc = len(csrcs)
    cdef bytes ext_data = b""
    cdef unsigned int profile = 0
    cdef Py_buffer view
    cdef Py_ssize_t size, offset, i
    cdef unsigned char* out
    cdef bytes result
    _check("payload_type", payload_type, 7)
    _check("sequence", sequence, 16)
    _check("timestamp", timestamp, 32)
    _check("ssrc", ssrc, 32)
    _check("padding", padding, 8)
    if n_csrc > 15:
        raise ValueError(f"{n_csrc} CSRCs, at most 15 fit")
    for csrc in csrcs:
        _check("csrc", csrc, 32)
    if extension is not None:
        ext_profile, ext_bytes = extension
        _check("extension profile", ext_profile, 16)
        ext_data = bytes(ext_bytes)
        if len(ext_data) % 4:
            raise ValueError(f"extension data is {len(ext_data)} bytes, not a multiple of 4")
        _check("extension length in words", len(ext_data) // 4, 16)
        profile = ext_profile
    cdef int pad = padding
    PyObject_GetBuffer(payload, &view, PyBUF_SIMPLE)
    try:
        size = 12 + 4 * n_csrc + (4 + len(ext_data) if extension is not None else 0) + view.len + pad
        result = PyBytes_FromStringAndSize(NULL, size)
        out = <unsigned char*>PyBytes_AS_STRING(result)
        out[0] = 0x80 | (0x20 if pad else 0) | (0x10 if extension is not None else 0) | n_csrc
        out[1] = (0x80 if marker else 0) | <unsigned int>payload_type
        _put16(out + 2, sequence)
        _put32(out + 4, timestamp)
        _put32(out + 8, ssrc)
        offset = 12
        for i in range(n_csrc):
            _put32(out + offset, csrcs[i])
            offset += 4
        if extension is not None:
            _put16(out + offset, profile)
            _put16(out + offset + 2, len(ext_data) // 4)
            memcpy(out + offset + 4, PyBytes_AS_STRING(ext_data), len(ext_data))
            offset += 4 + len(ext_data)
        memcpy(out + offset, view.buf, view.len)
        offset += view.len
        if pad:
            memset(out + offset, 0, pad - 1)
            out[offset + pad - 1] = pad
        return result
    finally:
        PyBuffer_Release(&view)


cdef inline int64_t _delta16(int64_t seq, int64_t ref) noexcept nogil:
    return ((seq - ref + 0x8000) & 0xFFFF) - 0x8000


cdef class JitterBuffer:
    """Puts RTP packets back in sequence order for playout, one ``pop()`` per ptime.

    Same rules as ``rtp_py.JitterBuffer`` (see there).
    """

    cdef readonly double depth_ms
    cdef readonly int clock_rate
    cdef readonly double ptime_ms
    cdef readonly int64_t received, duplicates, late, reordered, lost, played, underruns
    cdef readonly double last_arrival_s
    cdef int64_t _slots, _next, _highest, _first_played
    cdef bint _playing
    cdef dict _packets
    cdef set _skipped

    def __init__(self, depth_ms=60, clock_rate=8000, ptime_ms=20):
        if not ptime_ms > 0 or not depth_ms >= 0 or not clock_rate > 0:
            raise ValueError("need ptime_ms > 0, depth_ms >= 0 and clock_rate > 0")
        self.depth_ms = float(depth_ms)
        self.clock_rate = int(clock_rate)
        self.ptime_ms = float(ptime_ms)
        self._slots = max(1, math.ceil(self.depth_ms / self.ptime_ms - 1e-9))
        self.reset()

    def reset(self):
        """Forget every packet and counter (a new SSRC)."""
        self._packets = {}
        self._next = -1
        self._highest = -1
        self._first_played = -1
        self._playing = False
        self._skipped = set()
        self.received = self.duplicates = self.late = self.reordered = 0
        self.lost = self.played = self.underruns = 0
        self.last_arrival_s = 0.0

    @property
    def samples_per_packet(self):
        """Timestamp units per packet at this clock rate and ptime."""
        return round(self.clock_rate * self.ptime_ms / 1000)

    @property
    def current_depth_ms(self):
        """Span from the next slot to play to the newest packet held, in ms."""
        if not self._packets:
            return 0.0
        return (self._highest - self._next + 1) * self.ptime_ms

    def __len__(self):
        return len(self._packets)

    def push(self, RtpPacket packet not None, double arrival_s):
        """Hand over one received packet."""
        cdef int64_t ext
        self.received += 1
        self.last_arrival_s = arrival_s
        if self._next < 0:
            ext = 65536 + packet.sequence
            self._next = self._highest = ext
            self._packets[ext] = packet
            return
        ext = self._highest + _delta16(packet.sequence, self._highest & 0xFFFF)
        if ext < self._next:
            if self._first_played < 0:
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

    def pop(self):
        """The next packet in sequence order, or None (not yet, or a gap to conceal)."""
        cdef int64_t span, first, floor, e
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
            for e in range(max(self._next, first - C_SKIP_HISTORY), first):
                self._skipped.add(e)
            self._next = first
            floor = first - C_SKIP_HISTORY
            self._skipped = {e for e in self._skipped if e >= floor}
            packet = self._packets.pop(first)
        if self._first_played < 0:
            self._first_played = self._next
        self._next += 1
        self.played += 1
        return packet


cdef class ReceiveStats:
    """RFC 3550 receive statistics for one SSRC: a wrapper over ``RxStatsC``.

    Same rules as ``rtp_py.ReceiveStats`` (see there).
    """

    cdef RxStatsC _s

    def __init__(self, clock_rate=8000, min_sequential=2):
        if not clock_rate > 0 or not min_sequential >= 1:
            raise ValueError("need clock_rate > 0 and min_sequential >= 1")
        rxstats_init(&self._s, int(clock_rate), min_sequential)

    def reset(self):
        """Forget the source: the next packet starts a new one."""
        rxstats_init(&self._s, self._s.clock_rate, self._s.min_sequential)

    def update(self, int sequence, timestamp, double arrival_s):
        """Account one packet; True when A.1 counts it."""
        if not 0 <= sequence <= 0xFFFF:
            raise ValueError(f"sequence {sequence} does not fit in 16 bits")
        if not 0 <= timestamp <= 0xFFFFFFFF:
            raise ValueError(f"timestamp {timestamp} does not fit in 32 bits")
        return rxstats_update(&self._s, <uint16_t>sequence, <uint32_t>timestamp, arrival_s)

    def interval_fraction_lost(self):
        """RFC 3550 A.3 fraction lost since the previous call, 8-bit fixed point."""
        return rxstats_interval_fraction_lost(&self._s)

    @property
    def clock_rate(self):
        return int(self._s.clock_rate)

    @property
    def min_sequential(self):
        return self._s.min_sequential

    @property
    def probation(self):
        return self._s.probation

    @property
    def valid(self):
        """The source passed probation."""
        return rxstats_valid(&self._s)

    @property
    def base_seq(self):
        return self._s.base_seq

    @property
    def max_seq(self):
        return self._s.max_seq

    @property
    def cycles(self):
        return self._s.cycles

    @property
    def extended_max_seq(self):
        return self._s.cycles + self._s.max_seq

    @property
    def received(self):
        return self._s.received

    @property
    def expected(self):
        return rxstats_expected(&self._s)

    @property
    def lost(self):
        """Cumulative packets lost: negative when duplicates outnumber losses (RFC 3550)."""
        return rxstats_lost(&self._s)

    @property
    def fraction_lost(self):
        """Cumulative lost / expected, with ``lost`` clamped at 0."""
        cdef int64_t expected = rxstats_expected(&self._s)
        cdef int64_t lost = rxstats_lost(&self._s)
        return (lost if lost > 0 else 0) / <double>expected if expected > 0 else 0.0

    @property
    def out_of_order(self):
        return self._s.out_of_order

    @property
    def rejected(self):
        return self._s.rejected

    @property
    def restarts(self):
        return self._s.restarts

    @property
    def jitter(self):
        """RFC 3550 interarrival jitter J, in timestamp units."""
        return self._s.jitter

    @property
    def jitter_ms(self):
        return rxstats_jitter_ms(&self._s)


def r_to_mos(double r) -> float:
    """G.107 Annex B: rating factor R -> MOS (1.0 .. 4.5)."""
    return emodel_r_to_mos(r)


def r_factor(double loss_fraction, double delay_ms, double ie=0.0, double bpl=25.1) -> float:
    """Simplified G.107 R = 93.2 - Id - Ie,eff (A = 0, random loss: BurstR = 1)."""
    return emodel_r_factor(loss_fraction, delay_ms, ie, bpl)


def mos_estimate(*, codec="PCMU", double loss_fraction, double jitter_ms, double rtt_ms=0.0,
                 double jitter_buffer_ms=60.0) -> float:
    """Estimated MOS-CQE of a G.711 call (with PLC: Bpl 25.1); see ``rtp_py.mos_estimate``."""
    if codec not in CODEC_IMPAIRMENT:
        raise ValueError(f"codec {codec!r} unknown; known: {sorted(CODEC_IMPAIRMENT)}")
    if not 0.0 <= loss_fraction <= 1.0:
        raise ValueError(f"loss_fraction {loss_fraction} is outside 0..1")
    if not (jitter_ms >= 0.0 and rtt_ms >= 0.0 and jitter_buffer_ms >= 0.0):
        raise ValueError("jitter_ms, rtt_ms and jitter_buffer_ms must be >= 0")
    return emodel_mos_g711(loss_fraction, jitter_ms, rtt_ms, jitter_buffer_ms)
