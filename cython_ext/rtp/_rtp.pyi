"""Stub of the compiled RTP kernel; ``rtp_py`` implements the same API.

The nogil C API (``RtpHeaderC``, ``rtp_parse_header``, ``RxStatsC``, ``rxstats_*``,
``emodel_*``) is in ``_rtp.pxd`` for ``cimport`` only.
"""

from typing_extensions import Buffer  # collections.abc.Buffer is 3.12+

from cython_ext.rtp.errors import RtpError as RtpError

IMPLEMENTATION: str  # "cython" here, "python" in the twin

class RtpPacket:
    """One RTP packet (RFC 3550 §5.1); immutable, compares by value."""

    version: int
    padding: int  # padding bytes removed (0: P bit clear)
    extension: bool
    marker: bool
    payload_type: int
    sequence: int
    timestamp: int
    ssrc: int
    csrcs: tuple[int, ...]
    extension_profile: int | None
    extension_data: bytes
    payload: bytes
    def __init__(
        self,
        version: int,
        padding: int,
        extension: bool,
        marker: bool,
        payload_type: int,
        sequence: int,
        timestamp: int,
        ssrc: int,
        csrcs: tuple[int, ...],
        extension_profile: int | None,
        extension_data: bytes,
        payload: bytes,
    ) -> None: ...

def parse_rtp(data: Buffer) -> RtpPacket: ...
def build_rtp(
    *,
    payload_type: int,
    sequence: int,
    timestamp: int,
    ssrc: int,
    payload: Buffer,
    marker: bool = False,
    csrcs: tuple[int, ...] | list[int] = (),
    extension: tuple[int, bytes] | None = None,
    padding: int = 0,
) -> bytes: ...

class JitterBuffer:
    depth_ms: float
    clock_rate: int
    ptime_ms: float
    received: int  # every push
    duplicates: int
    late: int  # arrived after its slot was played or skipped
    reordered: int
    lost: int  # skipped and never arrived
    played: int
    underruns: int  # times playout ran dry and re-buffered
    last_arrival_s: float
    def __init__(
        self, depth_ms: float = 60, clock_rate: int = 8000, ptime_ms: float = 20
    ) -> None: ...
    @property
    def samples_per_packet(self) -> int: ...
    @property
    def current_depth_ms(self) -> float: ...
    def __len__(self) -> int: ...
    def reset(self) -> None: ...
    def push(self, packet: RtpPacket, arrival_s: float) -> None: ...
    def pop(self) -> RtpPacket | None: ...

class ReceiveStats:
    clock_rate: int
    min_sequential: int
    probation: int
    base_seq: int
    max_seq: int
    cycles: int  # wraps << 16, as in RFC 3550 A.1
    received: int
    out_of_order: int  # late/out-of-order: behind max_seq (reordered or duplicate)
    rejected: int  # jumps beyond MAX_DROPOUT not confirmed
    restarts: int
    jitter: float  # timestamp units
    def __init__(self, clock_rate: int = 8000, min_sequential: int = 2) -> None: ...
    def reset(self) -> None: ...
    def update(self, sequence: int, timestamp: int, arrival_s: float) -> bool: ...
    def interval_fraction_lost(self) -> int: ...
    @property
    def valid(self) -> bool: ...
    @property
    def extended_max_seq(self) -> int: ...
    @property
    def expected(self) -> int: ...
    @property
    def lost(self) -> int: ...
    @property
    def fraction_lost(self) -> float: ...
    @property
    def jitter_ms(self) -> float: ...

def r_to_mos(r: float) -> float: ...
def r_factor(
    loss_fraction: float, delay_ms: float, ie: float = 0.0, bpl: float = 25.1
) -> float: ...
def mos_estimate(
    *,
    codec: str = "PCMU",
    loss_fraction: float,
    jitter_ms: float,
    rtt_ms: float = 0.0,
    jitter_buffer_ms: float = 60.0,
) -> float: ...
