"""Tones and mixing, pure-Python twin of ``_tones`` (the readable reference).

:class:`ToneGenerator` renders a call-progress tone (:data:`TONES`, see ``specs``) as
8 kHz 16-bit PCM, one frame at a time, continuous across calls; :func:`mix` adds two
streams with gains for whisper and barge-in.  Hand-written because the media thread
needs both per leg, allocation-free and nogil (the compiled twin), and the arithmetic is
pinned so that both implementations give the same bytes:

* Oscillators are 32-bit phase accumulators (step = round(f / rate * 2**32)): free
  running, so phase is continuous across calls and cadence edges and never drifts;
  sample = floor(gain * sum(amplitude * sin(phase * 2pi / 2**32)) + 0.5), clamped.
* Cadence edges are linear ramps :data:`RAMP_MS` wide centred on the edge (half the
  amplitude exactly at the nominal edge), so there are no clicks and the on/off times
  measured at half amplitude are the spec's.
* Mixing is fixed point: each gain becomes a float32 (the C API takes ``float``) and
  then Q16, out = (a*qa + b*qb + 32768) >> 16, saturated to int16.
"""

from __future__ import annotations

import math
import struct
import sys
from array import array

from cython_ext.tones.specs import TONES, ToneSpec

__all__ = ["IMPLEMENTATION", "TONES", "ToneGenerator", "ToneSpec", "mix"]

IMPLEMENTATION = "python"

DBM0_PEAK = 22787.0  # peak of a 0 dBm0 sine in 16-bit PCM (G.711: full scale is +3.14 dBm0)
RAMP_MS = 3.0
MAX_FREQUENCIES = 4
MAX_SEGMENTS = 8
MAX_GAIN_DB = 40.0
PHASE_SCALE = 2.0 * math.pi / 4294967296.0
_MASK = 0xFFFFFFFF


def generator_plan(spec: ToneSpec, sample_rate: int) -> tuple[list[int], float, list[int], float]:
    """Phase steps, amplitude per component, segment end positions (samples, cumulative;
    empty when continuous) and ramp width in samples -- validated."""
    if not 8000 <= sample_rate <= 48000:
        raise ValueError(f"sample_rate must be 8000..48000 Hz, not {sample_rate}")
    if not 1 <= len(spec.frequencies) <= MAX_FREQUENCIES:
        raise ValueError(f"a tone has 1..{MAX_FREQUENCIES} frequencies")
    if any(not 0.0 < f < sample_rate / 2 for f in spec.frequencies):
        raise ValueError(f"frequencies must be within 0..{sample_rate // 2} Hz")
    if len(spec.cadence_ms) % 2 or len(spec.cadence_ms) > MAX_SEGMENTS:
        raise ValueError(f"a cadence is on/off pairs, at most {MAX_SEGMENTS} durations")
    if not -60.0 <= spec.level_dbm0 <= 3.0:
        raise ValueError("level_dbm0 must be -60..+3")
    ramp = RAMP_MS * sample_rate / 1000.0
    edges: list[int] = []
    for ms in spec.cadence_ms:
        samples = ms * sample_rate // 1000
        if samples < ramp:
            raise ValueError(f"cadence durations must be at least {RAMP_MS} ms")
        edges.append((edges[-1] if edges else 0) + samples)
    steps = [round(f / sample_rate * 4294967296.0) & _MASK for f in spec.frequencies]
    amplitude = DBM0_PEAK * 10.0 ** (spec.level_dbm0 / 20.0)
    return steps, amplitude, edges, ramp


class ToneGenerator:
    """Renders one tone, continuous across :meth:`render` calls (see the module docstring)."""

    def __init__(self, spec: ToneSpec, sample_rate: int = 8000) -> None:
        self.spec = spec
        self.sample_rate = sample_rate
        self._steps, self._amplitude, self._edges, self._ramp = generator_plan(spec, sample_rate)
        self._phases = [0] * len(self._steps)
        self._segment = 0  # index into _edges
        self._position = 0  # sample position within the cadence cycle

    def render(self, n_samples: int) -> bytes:
        """The next ``n_samples`` samples as 16-bit little-endian PCM."""
        if n_samples < 0:
            raise ValueError("n_samples must be >= 0")
        out = array("h", bytes(2 * n_samples))
        phases, steps, amplitude = self._phases, self._steps, self._amplitude
        edges, ramp = self._edges, self._ramp
        count = len(steps)
        for i in range(n_samples):
            gain = 1.0
            if edges:
                segment, position = self._segment, self._position
                start = edges[segment - 1] if segment else 0
                end = edges[segment]
                r = (min(position - start, end - 1 - position) + 0.5) / ramp
                if segment % 2 == 0:
                    gain = 0.5 + r if r < 0.5 else 1.0
                else:
                    gain = 0.5 - r if r < 0.5 else 0.0
                position += 1
                if position == end:
                    segment += 1
                    if segment == len(edges):
                        segment = position = 0
                self._segment, self._position = segment, position
            if gain == 0.0:
                for j in range(count):
                    phases[j] = (phases[j] + steps[j]) & _MASK
                continue  # out[i] is already 0
            s = 0.0
            for j in range(count):
                s += amplitude * math.sin(phases[j] * PHASE_SCALE)
                phases[j] = (phases[j] + steps[j]) & _MASK
            out[i] = max(-32768, min(32767, math.floor(gain * s + 0.5)))
        if sys.byteorder == "big":
            out.byteswap()
        return out.tobytes()


def gain_q16(gain_db: float) -> int:
    """A mixer gain in dB (-inf mutes) as the Q16 integer both implementations use."""
    if math.isnan(gain_db) or gain_db > MAX_GAIN_DB:
        raise ValueError(f"gain must be at most {MAX_GAIN_DB} dB, not {gain_db}")
    linear = struct.unpack("f", struct.pack("f", gain_linear(gain_db)))[0]  # float32
    return round(linear * 65536.0)


def gain_linear(gain_db: float) -> float:
    """10 ** (gain_db / 20); 0.0 for -inf."""
    return 10.0 ** (gain_db / 20.0)


def _samples(pcm: bytes | bytearray | memoryview) -> array:
    if len(pcm) % 2:
        raise ValueError(f"16-bit PCM needs an even number of bytes, got {len(pcm)}")
    samples = array("h", bytes(pcm))
    if sys.byteorder == "big":
        samples.byteswap()
    return samples


def mix(
    a: bytes | bytearray | memoryview,
    b: bytes | bytearray | memoryview,
    gain_a_db: float = 0.0,
    gain_b_db: float = 0.0,
) -> bytes:
    """a * gain_a + b * gain_b, saturated to int16; the shorter input is padded with silence."""
    qa, qb = gain_q16(gain_a_db), gain_q16(gain_b_db)
    xa, xb = _samples(a), _samples(b)
    if len(xa) < len(xb):
        xa, xb, qa, qb = xb, xa, qb, qa
    out = array("h", bytes(2 * len(xa)))
    common = len(xb)
    for i, x in enumerate(xa):
        acc = x * qa + (xb[i] * qb if i < common else 0) + 32768
        out[i] = max(-32768, min(32767, acc >> 16))
    if sys.byteorder == "big":
        out.byteswap()
    return out.tobytes()
