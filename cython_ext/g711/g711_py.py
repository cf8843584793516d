"""ITU-T G.711 µ-law and A-law, pure Python: the readable twin of ``_g711``.

Per-sample rules (:func:`linear_to_ulaw` and friends) follow the CCITT/Sun reference
formulation that CPython's ``audioop`` also uses, so the three agree bit for bit:

* µ-law: the 16-bit sample is shifted to 14 bits (arithmetic shift), its magnitude
  clipped at 8159, biased by 33; the segment is the position of the top bit, the
  4-bit step the next bits; the code is the bitwise complement.  Linear 0 encodes
  to 0xFF; 0x7F ("negative zero") also decodes to 0.
* A-law: the sample is shifted to 13 bits; negatives are one's-complemented; segment
  0 and 1 share one step size; even bits are inverted (XOR 0x55).

The per-sample functions mirror the C API of ``_g711.pxd`` (there they are ``cdef
inline`` and reach kernels only through ``cimport``); the shared Python API is the bulk
functions in ``__all__``.  They convert whole payloads (little-endian int16 <-> one code per
byte) through tables built once from the per-sample rules.  ``ulaw_to_alaw`` and
``alaw_to_ulaw`` transcode through linear (decode, then encode), which is what a
decode/re-encode relay produces; they are not G.711's separate direct tables.

Hand-written because no maintained Python library offers G.711 with a nogil C API
(``audioop`` is deprecated and removed in Python 3.13; this twin needs no C at all).
"""

from __future__ import annotations

import sys
from array import array

__all__ = [
    "IMPLEMENTATION",
    "alaw_decode",
    "alaw_encode",
    "alaw_to_ulaw",
    "ulaw_decode",
    "ulaw_encode",
    "ulaw_to_alaw",
]

IMPLEMENTATION = "python"

_BIG_ENDIAN_HOST = sys.byteorder == "big"


def ulaw_to_linear(code: int) -> int:
    """µ-law code (0..255) -> linear sample (-32124..32124)."""
    u = ~code & 0xFF
    t = (((u & 0x0F) << 3) + 0x84) << ((u & 0x70) >> 4)
    return 0x84 - t if u & 0x80 else t - 0x84


def linear_to_ulaw(sample: int) -> int:
    """Linear sample (-32768..32767) -> µ-law code."""
    v = sample >> 2
    mask = 0xFF
    if v < 0:
        v = -v
        mask = 0x7F
    v = min(v, 8159) + 33
    seg = v.bit_length() - 6
    if seg >= 8:
        return 0x7F ^ mask
    return ((seg << 4) | ((v >> (seg + 1)) & 0x0F)) ^ mask


def alaw_to_linear(code: int) -> int:
    """A-law code (0..255) -> linear sample (-32256..32256)."""
    a = code ^ 0x55
    t = (a & 0x0F) << 4
    seg = (a & 0x70) >> 4
    if seg == 0:
        t += 8
    elif seg == 1:
        t += 0x108
    else:
        t = (t + 0x108) << (seg - 1)
    return t if a & 0x80 else -t


def linear_to_alaw(sample: int) -> int:
    """Linear sample (-32768..32767) -> A-law code."""
    v = sample >> 3
    if v >= 0:
        mask = 0xD5
    else:
        mask = 0x55
        v = -v - 1
    seg = max(v.bit_length() - 5, 0)
    if seg >= 8:
        return 0x7F ^ mask
    step = (v >> 1) if seg < 2 else (v >> seg)
    return ((seg << 4) | (step & 0x0F)) ^ mask


def _decode_table(rule) -> bytes:
    """256 little-endian int16 samples, one per code, concatenated (512 bytes)."""
    samples = array("h", [rule(code) for code in range(256)])
    if _BIG_ENDIAN_HOST:
        samples.byteswap()
    return samples.tobytes()


def _encode_table(rule) -> bytes:
    """65536 codes indexed by the sample's unsigned 16-bit pattern."""
    return bytes(rule(u - 0x10000 if u & 0x8000 else u) for u in range(0x10000))


_ULAW_DECODE = _decode_table(ulaw_to_linear)
_ALAW_DECODE = _decode_table(alaw_to_linear)
_ULAW_ENCODE = _encode_table(linear_to_ulaw)
_ALAW_ENCODE = _encode_table(linear_to_alaw)
_ULAW_TO_ALAW = bytes(_ALAW_ENCODE[ulaw_to_linear(c) & 0xFFFF] for c in range(256))
_ALAW_TO_ULAW = bytes(_ULAW_ENCODE[alaw_to_linear(c) & 0xFFFF] for c in range(256))


def _unsigned_samples(pcm16le: bytes | bytearray | memoryview) -> array:
    if len(pcm16le) % 2:
        raise ValueError(f"PCM length {len(pcm16le)} is odd: 16-bit samples need 2 bytes each")
    samples = array("H")
    samples.frombytes(pcm16le)
    if _BIG_ENDIAN_HOST:
        samples.byteswap()
    return samples


def _encode(pcm16le: bytes | bytearray | memoryview, table: bytes) -> bytes:
    return bytes(map(table.__getitem__, _unsigned_samples(pcm16le)))


def _decode(codes: bytes | bytearray | memoryview, table: bytes) -> bytes:
    pairs = [table[2 * c : 2 * c + 2] for c in range(256)]
    return b"".join(map(pairs.__getitem__, bytes(codes)))


def ulaw_encode(pcm16le: bytes | bytearray | memoryview) -> bytes:
    """Little-endian int16 PCM -> µ-law, one byte per sample."""
    return _encode(pcm16le, _ULAW_ENCODE)


def ulaw_decode(codes: bytes | bytearray | memoryview) -> bytes:
    """µ-law bytes -> little-endian int16 PCM (twice as long)."""
    return _decode(codes, _ULAW_DECODE)


def alaw_encode(pcm16le: bytes | bytearray | memoryview) -> bytes:
    """Little-endian int16 PCM -> A-law, one byte per sample."""
    return _encode(pcm16le, _ALAW_ENCODE)


def alaw_decode(codes: bytes | bytearray | memoryview) -> bytes:
    """A-law bytes -> little-endian int16 PCM (twice as long)."""
    return _decode(codes, _ALAW_DECODE)


def ulaw_to_alaw(codes: bytes | bytearray | memoryview) -> bytes:
    """µ-law -> A-law through linear (decode, then encode), byte for byte."""
    return bytes(codes).translate(_ULAW_TO_ALAW)


def alaw_to_ulaw(codes: bytes | bytearray | memoryview) -> bytes:
    """A-law -> µ-law through linear (decode, then encode), byte for byte."""
    return bytes(codes).translate(_ALAW_TO_ULAW)
