"""DTMF, pure-Python twin of ``_dtmf`` (the readable reference): in-band and RFC 4733.

In-band detection (:class:`DtmfDetector`) runs the Goertzel algorithm for the eight DTMF
frequencies over blocks of :data:`BLOCK_SIZE` samples and classifies each block as one
key or nothing.  Hand-written because the edge must hear DTMF from PSTN legs that do not
send telephone-events, per leg, in the media thread, without numpy or a DSP library.

Block size: 102 samples (12.75 ms at 8 kHz).  The Goertzel bin is then ~78 Hz wide, about
the 73-89 Hz spacing of the row frequencies, so one bin separates neighbours; and a
40 ms tone (Q.24's shortest tone to accept) always covers two whole blocks wherever it
falls (320 >= 2 x 102 + 101), which is what the duration rule below needs.

A block is a key when (ITU-T Q.24 practice; thresholds are the constants below):

* energy: the strongest row and column tones each reach :data:`MIN_TONE_DBM0`;
* twist: high group at most :data:`NORMAL_TWIST_DB` below the low group and at most
  :data:`REVERSE_TWIST_DB` above it;
* dominance: the strongest row beats every other row, and the strongest column every
  other column, by :data:`RELATIVE_PEAK_DB`;
* purity: the two tones hold :data:`MIN_TONE_FRACTION` of the block's energy, and the
  column tone's second harmonic is :data:`HARMONIC_REJECT_DB` below it (speech, music
  and single tones fail here).  Row tones' second harmonics (1394-1882 Hz) lie within
  one bin of the column tones (2 x 697 = 1394 vs 1336 Hz), so checking them would
  reject real keys; the energy share covers what they would catch.

A key press starts after :data:`HIT_BLOCKS` consecutive blocks of the same key (so tones
>= 40 ms are always accepted and tones < 25.5 ms never are) and ends after
:data:`GAP_BLOCKS` blocks without it (a 40 ms pause always separates two presses; a
single dropped block does not split one).  Presses are reported when they end.

RFC 4733 (:func:`parse_event`, :class:`TelephoneEventReceiver`,
:func:`telephone_event_payloads`) is packet-rate work and lives in :mod:`.rfc4733`; both
implementations export it.
"""

from __future__ import annotations

import math
import sys
from array import array

from cython_ext.dtmf.events import DtmfEvent, DtmfTone, TelephoneEvent
from cython_ext.dtmf.rfc4733 import (
    TelephoneEventReceiver,
    digit_to_event,
    event_to_digit,
    parse_event,
    telephone_event_payloads,
)

__all__ = [
    "IMPLEMENTATION", "DtmfDetector", "DtmfEvent", "DtmfTone", "TelephoneEvent",
    "TelephoneEventReceiver", "digit_to_event", "event_to_digit", "parse_event",
    "telephone_event_payloads",
]  # fmt: skip

IMPLEMENTATION = "python"

BLOCK_SIZE = 102  # samples at 8 kHz; scaled with the sample rate
ROW_HZ = (697.0, 770.0, 852.0, 941.0)
COL_HZ = (1209.0, 1336.0, 1477.0, 1633.0)
KEYS = "123A456B789C*0#D"  # KEYS[4 * row + col]

DBM0_PEAK = 22787.0  # peak of a 0 dBm0 sine in 16-bit PCM (G.711: full scale is +3.14 dBm0)
MIN_TONE_DBM0 = -33.0
NORMAL_TWIST_DB = 8.0
REVERSE_TWIST_DB = 4.0
RELATIVE_PEAK_DB = 8.0
MIN_TONE_FRACTION = 0.8
HARMONIC_REJECT_DB = 15.0
HIT_BLOCKS = 2
GAP_BLOCKS = 2
MAX_PENDING = 32  # completed tones kept until take(); more are counted in ``dropped``


def block_size(sample_rate: int) -> int:
    """Samples per analysis block at ``sample_rate`` (102 at 8 kHz)."""
    if not 8000 <= sample_rate <= 48000:
        raise ValueError(f"sample_rate must be 8000..48000 Hz, not {sample_rate}")
    return BLOCK_SIZE * sample_rate // 8000


def detector_constants(sample_rate: int) -> tuple[list[float], list[float], list[float]]:
    """Goertzel coefficients (8 fundamentals, 8 second harmonics; only the columns'
    harmonics are used) and the thresholds
    ``[min_power, normal_twist, reverse_twist, relative_peak, fraction, harmonic]``."""
    n = block_size(sample_rate)
    freqs = ROW_HZ + COL_HZ
    coefs = [2.0 * math.cos(2.0 * math.pi * f / sample_rate) for f in freqs]
    harmonics = [2.0 * math.cos(4.0 * math.pi * f / sample_rate) for f in freqs]
    amplitude = DBM0_PEAK * 10.0 ** (MIN_TONE_DBM0 / 20.0)
    thresholds = [
        amplitude * amplitude * n / 2.0,
        10.0 ** (NORMAL_TWIST_DB / 10.0),
        10.0 ** (REVERSE_TWIST_DB / 10.0),
        10.0 ** (RELATIVE_PEAK_DB / 10.0),
        MIN_TONE_FRACTION,
        10.0 ** (HARMONIC_REJECT_DB / 10.0),
    ]
    return coefs, harmonics, thresholds


def pcm_samples(pcm: bytes | bytearray | memoryview) -> array:
    """Signed 16-bit little-endian PCM as an ``array('h')``; ValueError on an odd length."""
    if len(pcm) % 2:
        raise ValueError(f"16-bit PCM needs an even number of bytes, got {len(pcm)}")
    samples = array("h", bytes(pcm))
    if sys.byteorder == "big":
        samples.byteswap()
    return samples


def _goertzel(block: list[float], coef: float) -> float:
    """Power at one frequency, scaled so that a sine of energy E at it gives about E."""
    s1 = s2 = 0.0
    for x in block:
        s1, s2 = x + coef * s1 - s2, s1
    return (s1 * s1 + s2 * s2 - coef * s1 * s2) * 2.0 / len(block)


class DtmfDetector:
    """In-band DTMF detector for one audio stream (see the module docstring)."""

    def __init__(self, sample_rate: int = 8000) -> None:
        self.sample_rate = sample_rate
        self._n = block_size(sample_rate)
        self._coefs, self._harmonics, self._thresholds = detector_constants(sample_rate)
        self._block: list[float] = []
        self._block_start = 0  # sample index of the block being filled
        self._pending: list[DtmfTone] = []
        self.dropped = 0
        """Completed tones lost because ``take`` was not called for MAX_PENDING tones."""
        self._reset_tracking()

    def _reset_tracking(self) -> None:
        self._current = ""  # the key being pressed ("" = none)
        self._start = 0
        self._end = 0
        self._misses = 0
        self._previous = ""  # the previous block's key
        self._previous_start = 0

    def feed(self, pcm: bytes | bytearray | memoryview) -> list[DtmfTone]:
        """Analyse more audio; returns the key presses that have ended (see :meth:`take`)."""
        block = self._block
        n = self._n
        for x in pcm_samples(pcm):
            block.append(float(x))
            if len(block) == n:
                self._end_block(self.classify(block))
                block.clear()
        return self.take()

    def flush(self) -> list[DtmfTone]:
        """End of stream: report the key still held, drop the partial block, start afresh."""
        if self._current:
            self._emit()
        self._block_start += len(self._block)
        self._block.clear()
        self._reset_tracking()
        return self.take()

    def take(self) -> list[DtmfTone]:
        """The completed key presses not yet returned, oldest first."""
        pending, self._pending = self._pending, []
        return pending

    def classify(self, block: list[float]) -> str:
        """The key one full block (a sequence of ``n`` samples) holds, or ""."""
        if len(block) != self._n:
            raise ValueError(f"a block has {self._n} samples, got {len(block)}")
        min_power, normal, reverse, peak, fraction, harmonic = self._thresholds
        powers = [_goertzel(block, coef) for coef in self._coefs]
        energy = 0.0
        for x in block:
            energy += x * x
        row = col = 0
        for i in range(1, 4):
            if powers[i] > powers[row]:
                row = i
            if powers[4 + i] > powers[4 + col]:
                col = i
        p_row = powers[row]
        p_col = powers[4 + col]
        if p_row < min_power or p_col < min_power:
            return ""
        if p_row > p_col * normal or p_col > p_row * reverse:
            return ""
        for i in range(4):
            if i != row and powers[i] * peak > p_row:
                return ""
            if i != col and powers[4 + i] * peak > p_col:
                return ""
        if p_row + p_col < fraction * energy:
            return ""
        if _goertzel(block, self._harmonics[4 + col]) * harmonic > p_col:
            return ""
        return KEYS[4 * row + col]

    def _end_block(self, key: str) -> None:
        start = self._block_start
        self._block_start = start + self._n
        if self._current:
            if key == self._current:
                self._misses = 0
                self._end = start + self._n
            else:
                self._misses += 1
                if self._misses >= GAP_BLOCKS:
                    self._emit()
        if not self._current and key and key == self._previous:  # HIT_BLOCKS == 2
            self._current = key
            self._start = self._previous_start
            self._end = start + self._n
            self._misses = 0
        self._previous = key
        self._previous_start = start

    def _emit(self) -> None:
        if len(self._pending) < MAX_PENDING:
            self._pending.append(DtmfTone(self._current, self._start, self._end - self._start))
        else:
            self.dropped += 1
        self._current = ""
