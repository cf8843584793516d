"""RTP for the media engine: packets (RFC 3550), jitter buffer, receive stats, MOS.

The compiled ``_rtp`` and the twin ``rtp_py`` have one API; see ``_rtp.pyi``.  The
engine's native thread uses the nogil C API through
``from cython_ext.rtp._rtp cimport RtpHeaderC, rtp_parse_header, RxStatsC,
rxstats_init, rxstats_update``.  Must not import anything outside ``cython_ext`` and
the standard library.
"""

from cython_ext import load_kernel

_impl = load_kernel("rtp")

IMPLEMENTATION: str = _impl.IMPLEMENTATION
RtpError = _impl.RtpError
RtpPacket = _impl.RtpPacket
parse_rtp = _impl.parse_rtp
build_rtp = _impl.build_rtp
JitterBuffer = _impl.JitterBuffer
ReceiveStats = _impl.ReceiveStats
mos_estimate = _impl.mos_estimate
r_factor = _impl.r_factor
r_to_mos = _impl.r_to_mos

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
