"""G.711 µ-law / A-law codec (ITU-T G.711) for the media engine.

The compiled ``_g711`` and the twin ``g711_py`` have one API; see ``_g711.pyi``.
Other kernels use the per-sample C functions without the GIL through
``from cython_ext.g711._g711 cimport ulaw_to_linear, linear_to_ulaw, alaw_to_linear,
linear_to_alaw``.  Must not import anything outside ``cython_ext`` and the standard
library.
"""

from cython_ext import load_kernel

_impl = load_kernel("g711")

IMPLEMENTATION: str = _impl.IMPLEMENTATION
ulaw_encode = _impl.ulaw_encode
ulaw_decode = _impl.ulaw_decode
alaw_encode = _impl.alaw_encode
alaw_decode = _impl.alaw_decode
ulaw_to_alaw = _impl.ulaw_to_alaw
alaw_to_ulaw = _impl.alaw_to_ulaw

__all__ = [
    "IMPLEMENTATION",
    "alaw_decode",
    "alaw_encode",
    "alaw_to_ulaw",
    "ulaw_decode",
    "ulaw_encode",
    "ulaw_to_alaw",
]
