# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
# distutils: extra_compile_args = -ffp-contract=off
"""Tones and mixing, compiled: the hot-path twin of ``tones_py`` (read it for the rules).

Same phase accumulators, ramps and fixed-point mixing, in the same order, so both give
identical bytes; here they run on C types with no allocation, and ``_tones.pxd`` exports
``ToneGenerator.render_into`` and ``mix_into`` for the nogil media thread.  Hand-written
because per-leg tone playout and whisper/barge mixing run at frame rate for every call.
"""

import sys

from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize
from libc.math cimport floor, lrintf, sin
from libc.stdint cimport int16_t, int64_t, uint32_t
from libc.string cimport memset

from cython_ext.tones.specs import TONES, ToneSpec
from cython_ext.tones.tones_py import PHASE_SCALE as _PHASE_SCALE
from cython_ext.tones.tones_py import gain_linear, gain_q16, generator_plan

if sys.byteorder != "little":  # PCM is read and written in place; the twin byte-swaps
    raise ImportError("cython_ext.tones._tones assumes a little-endian host")

__all__ = ["IMPLEMENTATION", "TONES", "ToneGenerator", "ToneSpec", "mix"]

IMPLEMENTATION = "cython"

cdef double PHASE_SCALE = _PHASE_SCALE


cdef inline int16_t _saturate(int64_t v) noexcept nogil:
    if v > 32767:
        return 32767
    if v < -32768:
        return -32768
    return <int16_t>v


cdef void mix_into(int16_t* out, const int16_t* a, const int16_t* b, int n,
                   float ga, float gb) noexcept nogil:
    cdef int64_t qa = lrintf(ga * <float>65536.0)
    cdef int64_t qb = lrintf(gb * <float>65536.0)
    cdef int64_t acc
    cdef int i
    if a == NULL:
        qa = 0
    if b == NULL:
        qb = 0
    for i in range(n):
        acc = 32768
        if qa:
            acc += a[i] * qa
        if qb:
            acc += b[i] * qb
        out[i] = _saturate(acc >> 16)


def mix(a, b, double gain_a_db=0.0, double gain_b_db=0.0):
    """a * gain_a + b * gain_b, saturated to int16; the shorter input is padded with silence."""
    gain_q16(gain_a_db)  # validates
    gain_q16(gain_b_db)
    cdef float ga = gain_linear(gain_a_db)
    cdef float gb = gain_linear(gain_b_db)
    cdef const unsigned char[::1] va = a
    cdef const unsigned char[::1] vb = b
    if va.shape[0] % 2 or vb.shape[0] % 2:
        raise ValueError("16-bit PCM needs an even number of bytes")
    cdef int na = <int>(va.shape[0] // 2)
    cdef int nb = <int>(vb.shape[0] // 2)
    cdef int n = na if na > nb else nb
    result = PyBytes_FromStringAndSize(NULL, 2 * n)
    cdef int16_t* out = <int16_t*>PyBytes_AS_STRING(result)
    cdef const int16_t* pa = <const int16_t*>&va[0] if na else NULL
    cdef const int16_t* pb = <const int16_t*>&vb[0] if nb else NULL
    with nogil:
        if na < nb:
            mix_into(out, pa, pb, na, ga, gb)
            mix_into(out + na, NULL, pb + na, nb - na, ga, gb)
        else:
            mix_into(out, pa, pb, nb, ga, gb)
            mix_into(out + nb, pa + nb, NULL, na - nb, ga, gb)
    return result


cdef class ToneGenerator:
    """Renders one tone, continuous across ``render`` calls (see ``tones_py``)."""

    def __cinit__(self, spec, int sample_rate=8000):
        steps, amplitude, edges, ramp = generator_plan(spec, sample_rate)
        self.spec = spec
        self.sample_rate = sample_rate
        self.n_frequencies = len(steps)
        for i, step in enumerate(steps):
            self.step[i] = step
            self.phase[i] = 0
        self.amplitude = amplitude
        self.ramp = ramp
        self.n_segments = len(edges)
        for i, end in enumerate(edges):
            self.edge[i] = end
        self.segment = 0
        self.position = 0

    def render(self, Py_ssize_t n_samples):
        """The next ``n_samples`` samples as 16-bit little-endian PCM."""
        if n_samples < 0:
            raise ValueError("n_samples must be >= 0")
        result = PyBytes_FromStringAndSize(NULL, 2 * n_samples)
        cdef int16_t* out = <int16_t*>PyBytes_AS_STRING(result)
        with nogil:
            self.render_into(out, <int>n_samples)
        return result

    cdef void render_into(self, int16_t* out, int n) noexcept nogil:
        cdef int i, j, start, end
        cdef double gain, r, s, v
        cdef int count = self.n_frequencies
        for i in range(n):
            gain = 1.0
            if self.n_segments:
                start = self.edge[self.segment - 1] if self.segment else 0
                end = self.edge[self.segment]
                j = self.position - start
                if end - 1 - self.position < j:
                    j = end - 1 - self.position
                r = (j + 0.5) / self.ramp
                if self.segment % 2 == 0:
                    gain = 0.5 + r if r < 0.5 else 1.0
                else:
                    gain = 0.5 - r if r < 0.5 else 0.0
                self.position += 1
                if self.position == end:
                    self.segment += 1
                    if self.segment == self.n_segments:
                        self.segment = 0
                        self.position = 0
            if gain == 0.0:
                for j in range(count):
                    self.phase[j] += self.step[j]
                out[i] = 0
                continue
            s = 0.0
            for j in range(count):
                s += self.amplitude * sin(self.phase[j] * PHASE_SCALE)
                self.phase[j] += self.step[j]
            v = floor(gain * s + 0.5)
            out[i] = 32767 if v > 32767.0 else (-32768 if v < -32768.0 else <int16_t>v)
