"""Stub of the compiled tones kernel; ``tones_py`` implements the same API."""

from cython_ext.tones.specs import TONES as TONES
from cython_ext.tones.specs import ToneSpec as ToneSpec

IMPLEMENTATION: str  # "cython" here, "python" in the twin

class ToneGenerator:
    """Renders one tone as 16-bit LE PCM, phase- and cadence-continuous across calls."""

    spec: ToneSpec
    sample_rate: int
    def __init__(self, spec: ToneSpec, sample_rate: int = 8000) -> None: ...
    def render(self, n_samples: int) -> bytes:
        """The next ``n_samples`` samples as 16-bit little-endian PCM."""

def mix(
    a: bytes | bytearray | memoryview,
    b: bytes | bytearray | memoryview,
    gain_a_db: float = 0.0,
    gain_b_db: float = 0.0,
) -> bytes:
    """a * gain_a + b * gain_b (dB, -inf mutes, at most +40), saturated to int16; the
    shorter input is padded with silence."""
