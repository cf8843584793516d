# cython: language_level=3
"""C-level API of the compiled tones kernel, for the media engine:

    from cython_ext.tones._tones cimport ToneGenerator, mix_into

    cdef ToneGenerator gen = ToneGenerator(spec)   # with the GIL, once per playout
    gen.render_into(frame, 160)                    # nogil, per 20 ms frame
    mix_into(out, a, b, 160, ga, gb)               # nogil; a or b may be NULL (silence)

Both never allocate or raise.  Gains are linear (use ``tones_py.gain_linear``), 0..100.
"""

from libc.stdint cimport int16_t, uint32_t

cdef enum:
    TONE_MAX_FREQUENCIES = 4
    TONE_MAX_SEGMENTS = 8

cdef void mix_into(int16_t* out, const int16_t* a, const int16_t* b, int n,
                   float ga, float gb) noexcept nogil

cdef class ToneGenerator:
    cdef readonly object spec
    cdef readonly int sample_rate
    cdef int n_frequencies
    cdef uint32_t phase[TONE_MAX_FREQUENCIES]
    cdef uint32_t step[TONE_MAX_FREQUENCIES]
    cdef double amplitude
    cdef double ramp  # samples
    cdef int n_segments  # 0: continuous
    cdef int edge[TONE_MAX_SEGMENTS]  # cumulative segment ends, samples
    cdef int segment
    cdef int position

    cdef void render_into(self, int16_t* out, int n) noexcept nogil
