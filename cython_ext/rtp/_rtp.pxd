# cython: language_level=3
"""RTP header parsing and RFC 3550 receive statistics as nogil C, for ``cimport``.

``from cython_ext.rtp._rtp cimport RtpHeaderC, rtp_parse_header, RxStatsC,
rxstats_init, rxstats_update`` -- every function is ``cdef inline`` here, so a
cimporting kernel compiles its own copy: no link step and no runtime import of
``_rtp``.  Semantics are exactly those of ``rtp_py.parse_rtp`` / ``ReceiveStats``
(the compiled ``ReceiveStats`` is a thin wrapper over ``RxStatsC``).
"""

from libc.math cimport fabs
from libc.stdint cimport int32_t, int64_t, uint8_t, uint16_t, uint32_t

cdef enum:
    RTP_OK = 0
    RTP_ERR_SHORT = 1  # fewer than 12 bytes
    RTP_ERR_VERSION = 2  # version != 2
    RTP_ERR_CSRC = 3  # CSRC list runs past the end
    RTP_ERR_EXTENSION_HEADER = 4  # X set, no room for the 4-byte extension header
    RTP_ERR_EXTENSION_LENGTH = 5  # extension words run past the end
    RTP_ERR_PADDING = 6  # P set, count 0 or larger than what follows the header

cdef enum:
    RTP_SEQ_MOD_C = 65536
    MAX_DROPOUT_C = 3000
    MAX_MISORDER_C = 100

cdef struct RtpHeaderC:
    uint8_t pt
    bint marker
    uint16_t seq
    uint32_t ts
    uint32_t ssrc
    int header_len  # fixed header + CSRCs + extension: the payload starts here
    int payload_len  # padding excluded
    # beyond the fixed header:
    uint8_t version
    uint8_t csrc_count
    bint has_extension
    uint16_t extension_profile
    int extension_len  # bytes of extension data (after its 4-byte header)
    int padding_len  # 0 when P is clear


cdef inline uint32_t _be32(const unsigned char* p) noexcept nogil:
    return (<uint32_t>p[0] << 24) | (<uint32_t>p[1] << 16) | (<uint32_t>p[2] << 8) | p[3]


cdef inline int rtp_parse_header(
    const unsigned char* data, Py_ssize_t length, RtpHeaderC* out
) noexcept nogil:
    """Fill ``out`` from one datagram; RTP_OK or the RTP_ERR_* of the first broken rule.

    On error the fields read so far are set (version, csrc_count, header_len ...)."""
    cdef Py_ssize_t offset, end
    cdef int words
    out.header_len = 0
    out.payload_len = 0
    out.padding_len = 0
    out.extension_len = 0
    out.extension_profile = 0
    if length < 12:
        return RTP_ERR_SHORT
    out.version = data[0] >> 6
    out.csrc_count = data[0] & 0x0F
    out.has_extension = (data[0] & 0x10) != 0
    out.marker = (data[1] & 0x80) != 0
    out.pt = data[1] & 0x7F
    out.seq = (<uint16_t>data[2] << 8) | data[3]
    out.ts = _be32(data + 4)
    out.ssrc = _be32(data + 8)
    if out.version != 2:
        return RTP_ERR_VERSION
    offset = 12 + 4 * out.csrc_count
    out.header_len = <int>offset
    if offset > length:
        return RTP_ERR_CSRC
    if out.has_extension:
        if offset + 4 > length:
            return RTP_ERR_EXTENSION_HEADER
        out.extension_profile = (<uint16_t>data[offset] << 8) | data[offset + 1]
        words = (<int>data[offset + 2] << 8) | data[offset + 3]
        out.extension_len = 4 * words
        end = offset + 4 + 4 * words
        if end > length:
            return RTP_ERR_EXTENSION_LENGTH
        offset = end
        out.header_len = <int>offset
    if data[0] & 0x20:
        out.padding_len = data[length - 1]
        if out.padding_len == 0 or out.padding_len > length - offset:
            return RTP_ERR_PADDING
    out.payload_len = <int>(length - offset - out.padding_len)
    return RTP_OK


cdef struct RxStatsC:
    double clock_rate
    int min_sequential
    bint started
    int probation
    uint16_t base_seq
    uint16_t max_seq
    uint32_t bad_seq  # RTP_SEQ_MOD + 1 means "none"
    int64_t cycles  # count of wraps << 16
    int64_t received
    int64_t received_prior
    int64_t expected_prior
    int64_t out_of_order  # duplicate or reordered (behind max_seq)
    int64_t rejected  # jumps beyond MAX_DROPOUT not (yet) confirmed
    int64_t restarts  # confirmed sequence restarts
    double jitter  # RFC 3550 J, timestamp units
    bint have_transit
    double last_arrival_s
    uint32_t last_ts


cdef inline void rxstats_init(RxStatsC* s, double clock_rate, int min_sequential) noexcept nogil:
    """Set ``s`` to a fresh source (also how to reset it on an SSRC change)."""
    s.clock_rate = clock_rate
    s.min_sequential = min_sequential
    s.started = False
    s.probation = 0
    s.base_seq = 0
    s.max_seq = 0
    s.bad_seq = RTP_SEQ_MOD_C + 1
    s.cycles = 0
    s.received = 0
    s.received_prior = 0
    s.expected_prior = 0
    s.out_of_order = 0
    s.rejected = 0
    s.restarts = 0
    s.jitter = 0.0
    s.have_transit = False
    s.last_arrival_s = 0.0
    s.last_ts = 0


cdef inline void _rxstats_init_seq(RxStatsC* s, uint16_t seq) noexcept nogil:
    s.base_seq = seq
    s.max_seq = seq
    s.bad_seq = RTP_SEQ_MOD_C + 1
    s.cycles = 0
    s.received = 0
    s.received_prior = 0
    s.expected_prior = 0


cdef inline bint _rxstats_update_seq(RxStatsC* s, uint16_t seq) noexcept nogil:
    cdef uint16_t udelta = <uint16_t>(seq - s.max_seq)
    if s.probation:
        if seq == <uint16_t>(s.max_seq + 1):
            s.probation -= 1
            s.max_seq = seq
            if s.probation == 0:
                _rxstats_init_seq(s, seq)
                s.received += 1
                return True
        else:
            s.probation = s.min_sequential - 1
            s.max_seq = seq
        return False
    if udelta < MAX_DROPOUT_C:
        if seq < s.max_seq:
            s.cycles += RTP_SEQ_MOD_C
        s.max_seq = seq
    elif udelta <= RTP_SEQ_MOD_C - MAX_MISORDER_C:
        if seq != s.bad_seq:
            s.bad_seq = (seq + 1) & 0xFFFF
            s.rejected += 1
            return False
        _rxstats_init_seq(s, seq)
        s.restarts += 1
        s.have_transit = False
    else:
        s.out_of_order += 1
    s.received += 1
    return True


cdef inline bint rxstats_update(RxStatsC* s, uint16_t seq, uint32_t ts, double arrival_s) noexcept nogil:
    """Account one packet (RFC 3550 A.1 + A.8); True when A.1 counts it."""
    cdef double d
    if not s.started:
        s.started = True
        _rxstats_init_seq(s, seq)
        s.max_seq = <uint16_t>(seq - 1)
        s.probation = s.min_sequential
    if not _rxstats_update_seq(s, seq):
        return False
    if s.have_transit:
        d = (arrival_s - s.last_arrival_s) * s.clock_rate - <double><int32_t>(ts - s.last_ts)
        s.jitter += (fabs(d) - s.jitter) / 16.0
    s.have_transit = True
    s.last_arrival_s = arrival_s
    s.last_ts = ts
    return True


cdef inline bint rxstats_valid(const RxStatsC* s) noexcept nogil:
    return s.started and s.probation == 0


cdef inline int64_t rxstats_expected(const RxStatsC* s) noexcept nogil:
    if not rxstats_valid(s):
        return 0
    return s.cycles + s.max_seq - s.base_seq + 1


cdef inline int64_t rxstats_lost(const RxStatsC* s) noexcept nogil:
    """Cumulative lost (RFC 3550 A.3); negative when duplicates outnumber losses."""
    return rxstats_expected(s) - s.received


cdef inline double rxstats_jitter_ms(const RxStatsC* s) noexcept nogil:
    return s.jitter * 1000.0 / s.clock_rate


cdef inline int rxstats_interval_fraction_lost(RxStatsC* s) noexcept nogil:
    """RFC 3550 A.3 fraction lost since the previous call, 0..255."""
    cdef int64_t expected = rxstats_expected(s)
    cdef int64_t expected_interval = expected - s.expected_prior
    cdef int64_t received_interval = s.received - s.received_prior
    cdef int64_t lost_interval
    s.expected_prior = expected
    s.received_prior = s.received
    lost_interval = expected_interval - received_interval
    if expected_interval == 0 or lost_interval <= 0:
        return 0
    return <int>((lost_interval << 8) // expected_interval)


cdef inline double emodel_r_to_mos(double r) noexcept nogil:
    """G.107 Annex B: rating factor R -> MOS, clamped to 1.0 .. 4.5."""
    cdef double mos
    if r <= 0.0:
        return 1.0
    if r >= 100.0:
        return 4.5
    mos = 1.0 + 0.035 * r + r * (r - 60.0) * (100.0 - r) * 7e-6
    return mos if mos > 1.0 else 1.0  # the cubic dips just below 1 for 0 < R < 6.5


cdef inline double emodel_r_factor(double loss_fraction, double delay_ms, double ie, double bpl) noexcept nogil:
    """Simplified G.107 R = 93.2 - Id - Ie,eff (A = 0, BurstR = 1)."""
    cdef double idd = 0.024 * delay_ms
    cdef double ppl = 100.0 * loss_fraction
    if delay_ms > 177.3:
        idd += 0.11 * (delay_ms - 177.3)
    return 93.2 - idd - (ie + (95.0 - ie) * ppl / (ppl + bpl))


cdef inline double emodel_mos_g711(
    double loss_fraction, double jitter_ms, double rtt_ms, double jitter_buffer_ms
) noexcept nogil:
    """``mos_estimate`` for G.711 with PLC (Ie 0, Bpl 25.1); inputs already validated."""
    cdef double buffer_ms = jitter_buffer_ms if jitter_buffer_ms >= 2.0 * jitter_ms else 2.0 * jitter_ms
    return emodel_r_to_mos(emodel_r_factor(loss_fraction, rtt_ms / 2.0 + buffer_ms + 25.0, 0.0, 25.1))
