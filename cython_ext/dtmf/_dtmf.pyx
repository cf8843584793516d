# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
# distutils: extra_compile_args = -ffp-contract=off
"""DTMF, compiled: the hot-path twin of ``dtmf_py`` (read that module for the rules).

Same blocks, same Goertzel arithmetic in the same order (so the same decisions), but one
pass over each block runs all eight filters on C doubles, and the detector is a
``cdef class`` the media engine can feed from its nogil thread (see ``_dtmf.pxd``).
Hand-written because per-leg in-band DTMF at thousands of channels needs C speed and no
maintained library offers a sans-I/O Goertzel detector.  RFC 4733 is shared with the
twin (module ``rfc4733``): it runs at packet rate, not sample rate.
"""

import sys

from libc.stdint cimport int16_t, int64_t
from libc.stdlib cimport free, malloc

from cython_ext.dtmf.dtmf_py import KEYS, block_size, detector_constants
from cython_ext.dtmf.events import DtmfEvent, DtmfTone, TelephoneEvent
from cython_ext.dtmf.rfc4733 import (
    TelephoneEventReceiver,
    digit_to_event,
    event_to_digit,
    parse_event,
    telephone_event_payloads,
)

if sys.byteorder != "little":  # feed() reads the PCM in place; the twin byte-swaps
    raise ImportError("cython_ext.dtmf._dtmf assumes a little-endian host")

__all__ = [
    "IMPLEMENTATION", "DtmfDetector", "DtmfEvent", "DtmfTone", "TelephoneEvent",
    "TelephoneEventReceiver", "digit_to_event", "event_to_digit", "parse_event",
    "telephone_event_payloads",
]

IMPLEMENTATION = "cython"

cdef enum:
    GAP_BLOCKS = 2

cdef char KEY_CHARS[16]
for _i, _c in enumerate(KEYS.encode("ascii")):
    KEY_CHARS[_i] = _c


cdef class DtmfDetector:
    """In-band DTMF detector for one audio stream (see ``dtmf_py`` for the rules)."""

    def __cinit__(self, int sample_rate=8000):
        self.n = block_size(sample_rate)
        self.sample_rate = sample_rate
        coefs, harmonics, thresholds = detector_constants(sample_rate)
        for i in range(8):
            self.coef[i] = coefs[i]
            self.harmonic[i] = harmonics[i]
        (self.min_power, self.normal_twist, self.reverse_twist, self.relative_peak,
         self.fraction, self.harmonic_reject) = thresholds
        self.filled = 0
        self.block_start = 0
        self.n_pending = 0
        self.dropped = 0
        self._reset_tracking()

    cdef void _reset_tracking(self) noexcept nogil:
        self.current = 0
        self.previous = 0
        self.misses = 0
        self.start = 0
        self.end = 0
        self.previous_start = 0

    def feed(self, pcm):
        """Analyse more audio (16-bit LE PCM); returns the key presses that have ended."""
        cdef const unsigned char[::1] view = pcm
        if view.shape[0] % 2:
            raise ValueError(f"16-bit PCM needs an even number of bytes, got {view.shape[0]}")
        if view.shape[0]:
            with nogil:
                self.feed_samples(<const int16_t*>&view[0], <int>(view.shape[0] // 2))
        return self.take()

    def flush(self):
        """End of stream: report the key still held, drop the partial block, start afresh."""
        if self.current:
            self.emit()
        self.block_start += self.filled
        self.filled = 0
        self._reset_tracking()
        return self.take()

    def take(self):
        """The completed key presses not yet returned, oldest first."""
        tones = []
        for i in range(self.n_pending):
            p = &self.pending[i]
            tones.append(DtmfTone(chr(p.digit), p.start_sample, p.duration_samples))
        self.n_pending = 0
        return tones

    def classify(self, block):
        """The key one full block (a sequence of ``n`` samples) holds, or ""."""
        if len(block) != self.n:
            raise ValueError(f"a block has {self.n} samples, got {len(block)}")
        cdef double* buf = <double*>malloc(self.n * sizeof(double))
        if buf == NULL:
            raise MemoryError()
        try:
            for i in range(self.n):
                buf[i] = block[i]
            key = self.classify_block(buf)
        finally:
            free(buf)
        return chr(key) if key else ""

    cdef int feed_samples(self, const int16_t* samples, int n) noexcept nogil:
        cdef int i = 0, j, take
        while i < n:
            take = self.n - self.filled
            if take > n - i:
                take = n - i
            for j in range(take):
                self.block[self.filled + j] = samples[i + j]
            self.filled += take
            i += take
            if self.filled == self.n:
                self.end_block(self.classify_block(self.block))
                self.filled = 0
        return self.n_pending

    cdef char classify_block(self, const double* block) noexcept nogil:
        cdef double s1[8]
        cdef double s2[8]
        cdef double powers[8]
        cdef double x, t, energy = 0.0, p_row, p_col
        cdef double c, h1, h2
        cdef int i, j, row = 0, col = 0
        cdef int n = self.n
        for j in range(8):
            s1[j] = 0.0
            s2[j] = 0.0
        for i in range(n):
            x = block[i]
            energy += x * x
            for j in range(8):
                t = x + self.coef[j] * s1[j] - s2[j]
                s2[j] = s1[j]
                s1[j] = t
        for j in range(8):
            c = self.coef[j]
            powers[j] = (s1[j] * s1[j] + s2[j] * s2[j] - c * s1[j] * s2[j]) * 2.0 / n
        for i in range(1, 4):
            if powers[i] > powers[row]:
                row = i
            if powers[4 + i] > powers[4 + col]:
                col = i
        p_row = powers[row]
        p_col = powers[4 + col]
        if p_row < self.min_power or p_col < self.min_power:
            return 0
        if p_row > p_col * self.normal_twist or p_col > p_row * self.reverse_twist:
            return 0
        for i in range(4):
            if i != row and powers[i] * self.relative_peak > p_row:
                return 0
            if i != col and powers[4 + i] * self.relative_peak > p_col:
                return 0
        if p_row + p_col < self.fraction * energy:
            return 0
        c = self.harmonic[4 + col]  # rows' harmonics sit next to columns: see dtmf_py
        h1 = 0.0
        h2 = 0.0
        for i in range(n):
            t = block[i] + c * h1 - h2
            h2 = h1
            h1 = t
        if (h1 * h1 + h2 * h2 - c * h1 * h2) * 2.0 / n * self.harmonic_reject > p_col:
            return 0
        return KEY_CHARS[4 * row + col]

    cdef void end_block(self, char key) noexcept nogil:
        cdef int64_t start = self.block_start
        self.block_start = start + self.n
        if self.current:
            if key == self.current:
                self.misses = 0
                self.end = start + self.n
            else:
                self.misses += 1
                if self.misses >= GAP_BLOCKS:
                    self.emit()
        if not self.current and key and key == self.previous:  # HIT_BLOCKS == 2
            self.current = key
            self.start = self.previous_start
            self.end = start + self.n
            self.misses = 0
        self.previous = key
        self.previous_start = start

    cdef void emit(self) noexcept nogil:
        cdef PendingTone* p
        if self.n_pending < DTMF_MAX_PENDING:
            p = &self.pending[self.n_pending]
            p.digit = self.current
            p.start_sample = self.start
            p.duration_samples = self.end - self.start
            self.n_pending += 1
        else:
            self.dropped += 1
        self.current = 0
