"""``MediaLeg`` and ``MediaError``: what the B2BUA holds for each side of a call.

``EngineRelay`` (``edge_core.media.engine``) hands out a ``MediaLeg`` per allocated
port and keeps its counters up to date; signalling code reads them (CDR, SDP) and
catches ``MediaError``.  Plain data: no I/O, no engine import.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["MediaError", "MediaLeg"]


class MediaError(Exception):
    """The relay cannot do what was asked (port range exhausted, unknown leg...)."""


@dataclass(eq=False)
class MediaLeg:
    """One side of a call as the edge sees it (identity, not value, equality)."""

    id: int
    """Relay-unique leg number."""
    local_host: str
    """Address the leg's socket is bound to."""
    local_port: int
    """Even RTP port of the leg; ``local_port + 1`` is reserved for RTCP."""
    remote: tuple[str, int] | None = None
    """Where the leg sends media: from SDP, then latched to the peer's real source."""
    packets_in: int = 0
    """Datagrams received on this leg (forwarded or not)."""
    packets_out: int = 0
    """Datagrams sent from this leg to ``remote``."""
    bytes_in: int = 0
    bytes_out: int = 0
    last_rx: float = 0.0
    """``time.monotonic()`` of the last received datagram, 0 if none yet."""
    lost: int = 0
    """RTP packets lost on the way in (sequence gaps; the engine counts them)."""
    jitter_ms: float | None = None
    """RFC 3550 interarrival jitter of the incoming stream, None when not measured."""

    @property
    def rtcp_port(self) -> int:
        return self.local_port + 1
