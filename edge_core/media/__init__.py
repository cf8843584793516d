"""Media on the edge: SDP handling and the RTP relay between the two legs of a call.

* ``sdp`` — the sans-I/O SDP model (RFC 4566) and ``anchor``/``media_target``, which
  the B2BUA uses to put the edge in the media path of every call.
* ``relay`` — ``MediaRelay`` and ``MediaLeg``: one UDP socket per call leg, packets
  relayed between connected legs with symmetric-RTP latching. v0 is pure asyncio; the
  Cython engine replaces it behind the same small interface:

  ``allocate_leg() -> MediaLeg`` (sync), ``set_remote(leg, host, port)``,
  ``connect(a, b)``, ``release(leg)``, ``start()``/``stop()``, ``implementation``
  and ``stats()``. Anything else the B2BUA needs goes through that interface too.

This package must not import ``edge_core.sip``: signalling drives media, never the
other way round.
"""
