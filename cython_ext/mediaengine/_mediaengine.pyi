"""Stub of the compiled media engine; ``mediaengine_py`` implements the same API.

Events from :meth:`MediaEngine.read_events`:

* ``("dtmf", leg, digit, duration_ms, source)`` -- source ``"rfc4733"`` or ``"inband"``
* ``("timeout", leg)`` -- no RTP for ``rtp_timeout_s`` (once, re-armed by a packet)
* ``("play_done", leg, play_id)`` -- a non-looping prompt ended
* ``("latched", leg, host, port)`` -- the leg's remote was set to a packet's source
"""

from typing import Any

IMPLEMENTATION: str  # "cython" here, "python" in the twin

class MediaError(Exception):
    """The engine cannot do what was asked (port range exhausted, unknown leg...)."""

class MediaEngine:
    def __init__(
        self,
        host: str,
        port_min: int,
        port_max: int,
        *,
        rtp_timeout_s: float = 30.0,
        latch: bool = True,
        record_buffer_s: float = 60.0,
    ) -> None: ...
    def start(self) -> None:
        """Start the engine thread."""
    def stop(self) -> None:
        """Join the engine thread, close every socket and the event fd; idempotent."""
    def fileno(self) -> int:
        """An eventfd, readable while events are queued."""
    def read_events(self) -> list[tuple[Any, ...]]:
        """Drain the queued events (oldest first)."""
    def allocate_leg(self) -> tuple[int, int]:
        """Bind a free even port (rotating through the range): ``(leg_id, port)``."""
    def set_remote(self, leg: int, host: str, port: int) -> None:
        """Send the leg's media to an IPv4 literal; re-arms latching."""
    def connect(self, a: int, b: int) -> None:
        """Relay a<->b; either leg's previous pairing is undone."""
    def disconnect(self, leg: int) -> None: ...
    def release(self, leg: int) -> dict[str, Any]:
        """Close the leg's socket; its final :meth:`stats`."""
    def stats(self, leg: int) -> dict[str, Any]:
        """packets_in, packets_out, bytes_in, bytes_out, lost, late, jitter_ms,
        last_rx_age_s (None before the first packet), dropped, remote."""
    def play(self, leg: int, pcm16: bytes, *, loop: bool = False, play_id: int = 0) -> None:
        """Send 8 kHz int16 LE PCM to the leg's remote, 20 ms per packet, in its codec."""
    def stop_play(self, leg: int) -> None: ...
    def set_codec(self, leg: int, payload_type: int, telephone_event_pt: int | None = 101) -> None:
        """0 (PCMU) or 8 (PCMA); the RFC 4733 payload type or None."""
    def record(self, leg: int, on: bool) -> None: ...
    def take_recording(self, leg: int) -> bytes:
        """The recorded audio since the last take, int16 LE, gaps filled with silence."""
    def detect_dtmf(self, leg: int, inband: bool) -> None:
        """Switch in-band detection (a fresh ``cython_ext.dtmf.DtmfDetector``) on or off;
        RFC 4733 detection is always on."""
    def counters(self) -> dict[str, int]:
        """legs, packets_relayed, bytes_relayed, packets_dropped, syscalls_recv,
        syscalls_send, loop_iterations,
        commands, events_dropped."""
