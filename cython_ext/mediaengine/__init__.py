"""RTP media engine: one native thread owns every RTP socket of the edge (relay, G.711
playback, recording, RFC 4733 and in-band DTMF, RFC 3550 receive statistics).

The algorithms are the kernels', not copies: RTP headers and receive statistics from
``cython_ext.rtp``, DTMF from ``cython_ext.dtmf``, G.711 from ``cython_ext.g711``.

The compiled ``_mediaengine`` and the twin ``mediaengine_py`` have one API; see
``_mediaengine.pyi``.  Neither knows about asyncio: ``edge_core.media.engine`` is the
adapter.  Must not import anything outside the standard library and ``cython_ext``.
"""

from cython_ext import load_kernel

_impl = load_kernel("mediaengine")

IMPLEMENTATION: str = _impl.IMPLEMENTATION
MediaEngine = _impl.MediaEngine
MediaError = _impl.MediaError

__all__ = ["IMPLEMENTATION", "MediaEngine", "MediaError"]
