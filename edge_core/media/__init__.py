"""Media on the edge: SDP, the legs of a call, the media engine's asyncio adapter, recording.

* ``sdp`` — the sans-IO SDP model (RFC 4566) and ``anchor``/``media_target``, which
  the B2BUA uses to put the edge in the media path of every call.
* ``legs`` — ``MediaLeg`` (one side of a call: local port, remote, counters) and
  ``MediaError``, what signalling holds and catches.
* ``engine`` — ``EngineRelay``: ``cython_ext.mediaengine`` (native thread, one UDP
  socket per leg, relay with symmetric-RTP latching, playback, DTMF, statistics)
  driven from the asyncio loop: ``allocate_leg() -> MediaLeg`` (sync),
  ``set_remote``, ``connect``, ``release``, ``start()``/``stop()``,
  ``implementation`` and ``stats()``.
* ``recorder`` — ``CallRecorder``: a call's two legs as one stereo WAV, with its index.

This package must not import ``edge_core.sip``: signalling drives media, never the
other way round.
"""
