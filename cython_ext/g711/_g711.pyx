# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""ITU-T G.711 µ-law and A-law, compiled: the hot-path twin of ``g711_py``.

The per-sample rules are the ``cdef inline`` functions of ``_g711.pxd`` (which other
kernels cimport); this module builds 64 KiB encode tables and 256-entry decode tables
from them at import and converts whole payloads in one GIL-free loop.  Results are
bit-identical to the twin and to ``audioop`` (see tests/unit/test_g711.py).

Hand-written because no maintained Python library offers G.711 with a nogil C API.
"""

from cpython.buffer cimport PyBUF_SIMPLE, PyBuffer_Release, PyObject_GetBuffer
from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize, PyBytes_GET_SIZE
from libc.stdint cimport int16_t, uint8_t, uint16_t
from libc.string cimport memcpy

__all__ = [
    "IMPLEMENTATION",
    "alaw_decode",
    "alaw_encode",
    "alaw_to_ulaw",
    "ulaw_decode",
    "ulaw_encode",
    "ulaw_to_alaw",
]

IMPLEMENTATION = "cython"

cdef uint8_t ULAW_ENCODE[65536]
cdef uint8_t ALAW_ENCODE[65536]
cdef int16_t ULAW_DECODE[256]
cdef int16_t ALAW_DECODE[256]
cdef uint8_t ULAW_TO_ALAW[256]
cdef uint8_t ALAW_TO_ULAW[256]


cdef void _init_tables() noexcept nogil:
    cdef int i
    for i in range(65536):
        ULAW_ENCODE[i] = linear_to_ulaw(<int16_t><uint16_t>i)
        ALAW_ENCODE[i] = linear_to_alaw(<int16_t><uint16_t>i)
    for i in range(256):
        ULAW_DECODE[i] = ulaw_to_linear(<uint8_t>i)
        ALAW_DECODE[i] = alaw_to_linear(<uint8_t>i)
    for i in range(256):
        ULAW_TO_ALAW[i] = ALAW_ENCODE[<uint16_t>ULAW_DECODE[i]]
        ALAW_TO_ULAW[i] = ULAW_ENCODE[<uint16_t>ALAW_DECODE[i]]


_init_tables()


cdef bint _little_endian_host() noexcept:
    cdef uint16_t probe = 1
    return (<uint8_t*>&probe)[0] == 1


cdef bint LITTLE_ENDIAN_HOST = _little_endian_host()


cdef bytes _encode(object pcm16le, const uint8_t* table):
    cdef Py_buffer view
    cdef bint exact = type(pcm16le) is bytes
    cdef const uint8_t* src
    cdef Py_ssize_t n, i
    cdef bytes out
    cdef uint8_t* dst
    if exact:  # the common case: skip the buffer protocol (~100 ns on a 20 ms packet)
        src = <const uint8_t*>PyBytes_AS_STRING(pcm16le)
        n = PyBytes_GET_SIZE(pcm16le)
    else:
        PyObject_GetBuffer(pcm16le, &view, PyBUF_SIMPLE)
        src = <const uint8_t*>view.buf
        n = view.len
    try:
        if n % 2:
            raise ValueError(f"PCM length {n} is odd: 16-bit samples need 2 bytes each")
        out = PyBytes_FromStringAndSize(NULL, n // 2)
        dst = <uint8_t*>PyBytes_AS_STRING(out)
        with nogil:
            for i in range(n // 2):
                dst[i] = table[src[2 * i] | (<uint16_t>src[2 * i + 1] << 8)]
    finally:
        if not exact:
            PyBuffer_Release(&view)
    return out


cdef bytes _decode(object codes, const int16_t* table):
    cdef Py_buffer view
    cdef bint exact = type(codes) is bytes
    cdef const uint8_t* src
    cdef Py_ssize_t n, i
    cdef uint16_t s
    cdef bytes out
    cdef uint8_t* dst
    if exact:
        src = <const uint8_t*>PyBytes_AS_STRING(codes)
        n = PyBytes_GET_SIZE(codes)
    else:
        PyObject_GetBuffer(codes, &view, PyBUF_SIMPLE)
        src = <const uint8_t*>view.buf
        n = view.len
    try:
        out = PyBytes_FromStringAndSize(NULL, 2 * n)
        dst = <uint8_t*>PyBytes_AS_STRING(out)
        with nogil:
            if LITTLE_ENDIAN_HOST:  # store whole samples; memcpy keeps it alignment-safe
                for i in range(n):
                    memcpy(dst + 2 * i, &table[src[i]], 2)
            else:
                for i in range(n):
                    s = <uint16_t>table[src[i]]
                    dst[2 * i] = s & 0xFF
                    dst[2 * i + 1] = s >> 8
    finally:
        if not exact:
            PyBuffer_Release(&view)
    return out


cdef bytes _translate(object codes, const uint8_t* table):
    cdef Py_buffer view
    cdef bint exact = type(codes) is bytes
    cdef const uint8_t* src
    cdef Py_ssize_t n, i
    cdef bytes out
    cdef uint8_t* dst
    if exact:
        src = <const uint8_t*>PyBytes_AS_STRING(codes)
        n = PyBytes_GET_SIZE(codes)
    else:
        PyObject_GetBuffer(codes, &view, PyBUF_SIMPLE)
        src = <const uint8_t*>view.buf
        n = view.len
    try:
        out = PyBytes_FromStringAndSize(NULL, n)
        dst = <uint8_t*>PyBytes_AS_STRING(out)
        with nogil:
            for i in range(n):
                dst[i] = table[src[i]]
    finally:
        if not exact:
            PyBuffer_Release(&view)
    return out


def ulaw_encode(pcm16le) -> bytes:
    """Little-endian int16 PCM -> µ-law, one byte per sample."""
    return _encode(pcm16le, ULAW_ENCODE)


def ulaw_decode(codes) -> bytes:
    """µ-law bytes -> little-endian int16 PCM (twice as long)."""
    return _decode(codes, ULAW_DECODE)


def alaw_encode(pcm16le) -> bytes:
    """Little-endian int16 PCM -> A-law, one byte per sample."""
    return _encode(pcm16le, ALAW_ENCODE)


def alaw_decode(codes) -> bytes:
    """A-law bytes -> little-endian int16 PCM (twice as long)."""
    return _decode(codes, ALAW_DECODE)


def ulaw_to_alaw(codes) -> bytes:
    """µ-law -> A-law through linear (decode, then encode), byte for byte."""
    return _translate(codes, ULAW_TO_ALAW)


def alaw_to_ulaw(codes) -> bytes:
    """A-law -> µ-law through linear (decode, then encode), byte for byte."""
    return _translate(codes, ALAW_TO_ULAW)

