# cython: language_level=3
"""G.711 sample conversions as C inline functions, for kernels that ``cimport`` them.

``from cython_ext.g711._g711 cimport ulaw_to_linear, linear_to_ulaw, alaw_to_linear,
linear_to_alaw`` -- the bodies live here (``cdef inline``), so a cimporting kernel gets
its own copy at compile time: no link step, no runtime import of ``_g711``, callable
without the GIL.  Same algorithm as ``g711_py`` (ITU-T G.711, the Sun/CCITT
reference formulation also used by CPython's ``audioop``); linear samples are int16.
"""

from libc.stdint cimport int16_t, uint8_t

cdef extern from *:
    """
    #if defined(__GNUC__) || defined(__clang__)
    #define BL_G711_BITLEN(v) ((v) ? 32 - __builtin_clz((unsigned int)(v)) : 0)
    #else
    static int BL_G711_BITLEN(unsigned int v) { int n = 0; while (v) { n++; v >>= 1; } return n; }
    #endif
    """
    int BL_G711_BITLEN(unsigned int v) noexcept nogil


cdef inline int16_t ulaw_to_linear(uint8_t code) noexcept nogil:
    """µ-law code -> linear sample (-32124 .. 32124; codes 0x7F and 0xFF both give 0)."""
    cdef int u = (~code) & 0xFF
    cdef int t = (((u & 0x0F) << 3) + 0x84) << ((u & 0x70) >> 4)
    return <int16_t>((0x84 - t) if (u & 0x80) else (t - 0x84))


cdef inline uint8_t linear_to_ulaw(int16_t sample) noexcept nogil:
    """Linear sample -> µ-law code (14-bit magnitude, bias 33, clipped at 8159)."""
    cdef int v = sample >> 2  # arithmetic shift: floors, as the reference does
    cdef int mask = 0xFF
    cdef int seg
    if v < 0:
        v = -v
        mask = 0x7F
    if v > 8159:
        v = 8159
    v += 33
    seg = BL_G711_BITLEN(v) - 6  # v >= 33: segment 0 holds 33..63
    if seg >= 8:
        return <uint8_t>(0x7F ^ mask)
    return <uint8_t>(((seg << 4) | ((v >> (seg + 1)) & 0x0F)) ^ mask)


cdef inline int16_t alaw_to_linear(uint8_t code) noexcept nogil:
    """A-law code -> linear sample (-32256 .. 32256; never 0)."""
    cdef int a = code ^ 0x55
    cdef int t = (a & 0x0F) << 4
    cdef int seg = (a & 0x70) >> 4
    if seg == 0:
        t += 8
    elif seg == 1:
        t += 0x108
    else:
        t = (t + 0x108) << (seg - 1)
    return <int16_t>(t if (a & 0x80) else -t)


cdef inline uint8_t linear_to_alaw(int16_t sample) noexcept nogil:
    """Linear sample -> A-law code (13-bit magnitude; even bits inverted, 0x55)."""
    cdef int v = sample >> 3
    cdef int mask
    cdef int seg
    cdef int aval
    if v >= 0:
        mask = 0xD5
    else:
        mask = 0x55
        v = -v - 1
    seg = BL_G711_BITLEN(v) - 5  # segment 0 holds 0..31
    if seg < 0:
        seg = 0
    if seg >= 8:
        return <uint8_t>(0x7F ^ mask)
    aval = seg << 4
    if seg < 2:
        aval |= (v >> 1) & 0x0F
    else:
        aval |= (v >> seg) & 0x0F
    return <uint8_t>(aval ^ mask)
