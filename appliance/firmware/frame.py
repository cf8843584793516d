"""The framed serial protocol between the host and the front-panel MCU (sans-I/O).

One source file, run by both interpreters: CPython on the host (``appliance.host``)
and MicroPython on the RP2040. So it uses only what both have: no ``typing``, no
``dataclasses``, no ``from __future__`` (MicroPython ignores annotations, CPython 3.11
evaluates them, so they stay simple). Time comes in as ``now_ms`` ticks, compared with
:func:`ticks_diff`, which has MicroPython's wrap-around semantics on both sides.

Wire format, one frame::

    COBS( kind:u8 | seq:u8 | len:u8 | body:bytes | crc:u16be ) 0x00

``crc`` is CRC-16/CCITT-FALSE (poly 0x1021, init 0xFFFF) over kind, seq, len and body.
COBS removes every zero from the frame so 0x00 only ever delimits: after garbage
the decoder resynchronises at the next zero. A frame is taken only in its one
canonical COBS encoding and with ``len`` equal to its body's length: a bit flip that
turns a byte into 0x00 cuts the frame short, and without ``len`` a frame whose CRC
ends in 0x00 would still check out (the cut drops exactly that zero).

Reliability (:class:`Link`): stop-and-wait. A reliable frame carries a sequence
number 1..255, is acknowledged by an ``ACK`` frame with the same number and
re-sent every ``retry_ms`` until acked, ``max_attempts`` times; then the link is
down and the handshake starts again. Unreliable frames (heartbeats) carry seq 0.
A repeated sequence number is re-acked but not delivered twice.

Handshake: while down, each side sends ``HELLO`` (protocol version, role, boot id)
every ``hello_ms``; a side that reads a ``HELLO`` of the same major version answers
``HELLO_ACK`` and is up; reading a ``HELLO_ACK`` also brings it up. A ``HELLO`` with
a new boot id while up means the peer restarted: receive state is reset and
:class:`LinkUp` is reported again (so the host re-sends the panel state).

Events are plain classes named for what happened (MicroPython has no dataclasses).
"""

PROTOCOL_VERSION = 1
"""Major version; a peer with another major version is refused (VersionMismatch)."""

MAX_BODY = 240
"""Largest body in bytes; the encoded frame then fits 256 bytes with its overhead."""

MAX_ENCODED = MAX_BODY + 9
"""Longest run of non-zero bytes the decoder buffers before it drops the frame."""

# frame kinds: link control
ACK = 0x01
HELLO = 0x02
HELLO_ACK = 0x03

TICKS_PERIOD = 1 << 30
"""MicroPython's ``time.ticks_ms`` wraps at 2**30 on the rp2 port."""
_TICKS_MAX = TICKS_PERIOD - 1
_TICKS_HALF = TICKS_PERIOD // 2


def ticks_add(ticks: int, delta: int) -> int:
    """``time.ticks_add``: ``ticks + delta`` on the wrapping tick circle."""
    return (ticks + delta) & _TICKS_MAX


def ticks_diff(a: int, b: int) -> int:
    """``time.ticks_diff``: signed ``a - b`` on the wrapping tick circle."""
    return ((a - b + _TICKS_HALF) & _TICKS_MAX) - _TICKS_HALF


def _crc_table() -> list[int]:
    table = []
    for byte in range(256):
        crc = byte << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x1021) if crc & 0x8000 else (crc << 1)
        table.append(crc & 0xFFFF)
    return table


_CRC_TABLE = _crc_table()


def crc16(data: bytes, crc: int = 0xFFFF) -> int:
    """CRC-16/CCITT-FALSE of ``data`` (``crc16(b"123456789") == 0x29B1``)."""
    table = _CRC_TABLE
    for byte in data:
        crc = ((crc << 8) & 0xFFFF) ^ table[((crc >> 8) ^ byte) & 0xFF]
    return crc


def cobs_encode(data: bytes) -> bytes:
    """Consistent Overhead Byte Stuffing: ``data`` with no zero byte left in it."""
    out = bytearray(b"\x00")
    code_at = 0
    code = 1
    n = len(data)
    for i in range(n):
        byte = data[i]
        if byte:
            out.append(byte)
            code += 1
            if code < 0xFF or i == n - 1:
                continue  # a full block at the very end needs no empty block after it
        out[code_at] = code
        code_at = len(out)
        out.append(0)
        code = 1
    out[code_at] = code
    return bytes(out)


def cobs_decode(data: bytes) -> bytes:
    """Inverse of :func:`cobs_encode`; ``ValueError`` on a zero or a short block."""
    out = bytearray()
    i = 0
    n = len(data)
    while i < n:
        code = data[i]
        if code == 0:
            raise ValueError("zero byte inside a COBS frame")
        end = i + code
        if end > n:
            raise ValueError("COBS block runs past the frame")
        for j in range(i + 1, end):
            if data[j] == 0:
                raise ValueError("zero byte inside a COBS frame")
        out.extend(data[i + 1 : end])
        i = end
        if code < 0xFF and i < n:
            out.append(0)
    return bytes(out)


def encode_frame(kind: int, seq: int, body: bytes = b"") -> bytes:
    """One frame on the wire, delimiter included."""
    if len(body) > MAX_BODY:
        raise ValueError("frame body longer than MAX_BODY")
    raw = bytes((kind & 0xFF, seq & 0xFF, len(body))) + bytes(body)
    crc = crc16(raw)
    return cobs_encode(raw + bytes((crc >> 8, crc & 0xFF))) + b"\x00"


class Frame:
    """A frame that passed COBS and CRC checks."""

    def __init__(self, kind: int, seq: int, body: bytes) -> None:
        self.kind = kind
        """Frame kind: ACK, HELLO, HELLO_ACK or an application message kind."""
        self.seq = seq
        """Sequence number, 0 for unreliable frames."""
        self.body = body
        """The payload bytes."""

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Frame) and (self.kind, self.seq, self.body) == (
            other.kind,
            other.seq,
            other.body,
        )

    def __repr__(self) -> str:
        return f"Frame(kind={self.kind}, seq={self.seq}, body={self.body!r})"


class FrameError:
    """A frame was dropped; ``reason`` says why (bad COBS, length, CRC, too short or too long)."""

    def __init__(self, reason: str) -> None:
        self.reason = reason
        """Short machine-readable reason: cobs, length, crc, short, long."""

    def __repr__(self) -> str:
        return f"FrameError({self.reason!r})"


def decode_frame(encoded: bytes) -> "Frame | FrameError":
    """One frame's bytes between delimiters (without the 0x00) -> Frame or FrameError."""
    try:
        raw = cobs_decode(encoded)
    except ValueError:
        return FrameError("cobs")
    if cobs_encode(raw) != encoded:
        # not the one encoding of this data: e.g. the final code byte 0x01 turned into a
        # delimiter decodes to the same bytes, CRC and all; only the canonical form counts
        return FrameError("cobs")
    if len(raw) < 5:
        return FrameError("short")
    if raw[2] != len(raw) - 5:
        return FrameError("length")
    if crc16(raw[:-2]) != (raw[-2] << 8) | raw[-1]:
        return FrameError("crc")
    return Frame(raw[0], raw[1], bytes(raw[3:-2]))


class FrameDecoder:
    """Splits a byte stream into frames; garbage yields FrameError, never an exception."""

    def __init__(self) -> None:
        self._buf = bytearray()
        self._overflow = False
        self.errors = 0
        """Frames dropped so far."""

    def feed(self, data: bytes) -> list:
        """Bytes in; the frames and errors they complete, in order."""
        out: list = []
        for byte in data:
            if byte == 0:
                if self._overflow:
                    out.append(FrameError("long"))
                elif self._buf:  # empty runs (0x00 0x00) are idle fill, not frames
                    out.append(decode_frame(bytes(self._buf)))
                self._buf = bytearray()
                self._overflow = False
            elif not self._overflow:
                self._buf.append(byte)
                if len(self._buf) > MAX_ENCODED:
                    self._overflow = True
                    self._buf = bytearray()
        for item in out:
            if isinstance(item, FrameError):
                self.errors += 1
        return out
