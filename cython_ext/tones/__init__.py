"""Call-progress tones (ITU-T E.180: US, UK, CN) and a two-input PCM mixer.

The compiled ``_tones`` and the twin ``tones_py`` have one API; see ``_tones.pyi``.  The
media engine cimports ``ToneGenerator.render_into`` and ``mix_into`` from ``_tones.pxd``.
Must not import anything outside ``cython_ext`` and the standard library.
"""

from cython_ext import load_kernel

_impl = load_kernel("tones")

IMPLEMENTATION: str = _impl.IMPLEMENTATION
TONES = _impl.TONES
ToneSpec = _impl.ToneSpec
ToneGenerator = _impl.ToneGenerator
mix = _impl.mix

__all__ = ["IMPLEMENTATION", "TONES", "ToneGenerator", "ToneSpec", "mix"]
