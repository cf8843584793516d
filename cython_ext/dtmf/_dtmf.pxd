# cython: language_level=3
"""C-level API of the compiled DTMF detector, for the media engine (one detector per leg).

    from cython_ext.dtmf._dtmf cimport DtmfDetector

    cdef DtmfDetector det = DtmfDetector(8000)    # with the GIL, once per leg
    if det.feed_samples(samples, n) > 0:          # nogil, per received frame
        ...                                       # later, with the GIL: det.take()

``feed_samples`` never allocates or raises; completed presses wait in a fixed queue of
DTMF_MAX_PENDING (more are counted in ``dropped``) until ``take()``.
"""

from libc.stdint cimport int16_t, int64_t

cdef enum:
    DTMF_MAX_BLOCK = 612  # 102 samples at 8 kHz .. 612 at 48 kHz
    DTMF_MAX_PENDING = 32

cdef struct PendingTone:
    char digit
    int64_t start_sample
    int64_t duration_samples

cdef class DtmfDetector:
    cdef readonly int sample_rate
    cdef readonly long long dropped
    cdef int n  # samples per block
    cdef int filled  # samples in ``block``
    cdef double coef[8]  # Goertzel 2cos(w): 4 rows, 4 columns
    cdef double harmonic[8]  # the same at twice each frequency
    cdef double min_power, normal_twist, reverse_twist, relative_peak, fraction, harmonic_reject
    cdef double block[DTMF_MAX_BLOCK]
    cdef int64_t block_start
    cdef char current  # key being pressed, 0 = none
    cdef char previous  # previous block's key, 0 = none
    cdef int misses
    cdef int64_t start, end, previous_start
    cdef PendingTone pending[DTMF_MAX_PENDING]
    cdef int n_pending

    cdef int feed_samples(self, const int16_t* samples, int n) noexcept nogil
    """Analyse ``n`` samples; returns how many completed presses wait for ``take()``."""
    cdef char classify_block(self, const double* block) noexcept nogil
    cdef void end_block(self, char key) noexcept nogil
    cdef void emit(self) noexcept nogil
    cdef void _reset_tracking(self) noexcept nogil
