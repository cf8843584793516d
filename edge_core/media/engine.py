"""``EngineRelay``: the media engine (``cython_ext.mediaengine``) on the asyncio loop.

A thin asyncio adapter, nothing else: every call goes straight to the engine, which
runs its own native thread and owns the sockets; the engine's event fd is watched with
``loop.add_reader`` and its events are put on :attr:`EngineRelay.events` (and given to
the registered listeners).  ``latched`` events also update ``MediaLeg.remote``.

The B2BUA's interface: synchronous ``allocate_leg`` (a :class:`~edge_core.media.legs.MediaLeg`),
``set_remote``, ``connect``, ``release``; async ``start``/``stop``; ``implementation``
and ``stats()``; every failure is a :class:`~edge_core.media.legs.MediaError`.  A leg's
counters are refreshed from the engine by :meth:`refresh` and on ``release`` (the B2BUA
reads them for the CDR after releasing).  IPv4 only; relayed packets carry the edge
leg's own SSRC, sequence numbers and timestamps (the engine keeps one RTP stream per
leg, so prompts can be played into it).  ``engine_cls`` picks the compiled engine or
its twin (default: whatever ``cython_ext.mediaengine`` loaded).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any

from edge_core.media.legs import MediaError, MediaLeg

__all__ = ["EngineRelay", "MediaEvent"]

log = logging.getLogger(__name__)

MediaEvent = tuple[Any, ...]
"""``("dtmf", leg_id, digit, duration_ms, source)``, ``("timeout", leg_id)``,
``("play_done", leg_id, play_id)`` or ``("latched", leg_id, host, port)``."""

_MAX_QUEUED_EVENTS = 10_000


def _default_engine_cls() -> Any:
    from cython_ext.mediaengine import MediaEngine

    return MediaEngine


class EngineRelay:
    """Relays RTP between pairs of legs in the media engine's thread."""

    def __init__(
        self,
        host: str,
        port_min: int,
        port_max: int,
        *,
        latch: bool = True,
        rtp_timeout_s: float = 30.0,
        engine_cls: Any = None,
    ) -> None:
        cls = engine_cls if engine_cls is not None else _default_engine_cls()
        try:
            self._engine = cls(host, port_min, port_max, rtp_timeout_s=rtp_timeout_s, latch=latch)
        except Exception as exc:
            if isinstance(exc, ValueError):
                raise
            raise MediaError(str(exc)) from exc
        self._impl = (
            "python-engine" if type(self._engine).__module__.endswith("_py") else "cython-engine"
        )
        self.host = host
        self.port_min = port_min
        self.port_max = port_max
        self.latch = latch
        self._loop: asyncio.AbstractEventLoop | None = None
        self._legs: dict[int, MediaLeg] = {}
        self._released_relayed = 0
        self.events: asyncio.Queue[MediaEvent] = asyncio.Queue(_MAX_QUEUED_EVENTS)
        """Every engine event, oldest first; when full, new events are dropped (counted)."""
        self.events_dropped = 0
        self._listeners: list[Callable[[MediaEvent], None]] = []

    @property
    def implementation(self) -> str:
        return self._impl

    def add_listener(self, callback: Callable[[MediaEvent], None]) -> None:
        """Call ``callback(event)`` for every event, on the loop. With a listener the
        events are not queued on :attr:`events` as well."""
        self._listeners.append(callback)

    async def start(self) -> None:
        """Start the engine thread and watch its event fd on the running loop."""
        self._loop = asyncio.get_running_loop()
        self._engine.start()
        self._loop.add_reader(self._engine.fileno(), self._on_events)

    async def stop(self) -> None:
        """Release every leg, stop watching, and stop the engine (closing its sockets)."""
        for leg in list(self._legs.values()):
            self.release(leg)
        if self._loop is not None and not self._loop.is_closed():
            self._loop.remove_reader(self._engine.fileno())
            self._on_events()  # what came before the stop
        self._engine.stop()
        self._loop = None

    def allocate_leg(self) -> MediaLeg:
        """Bind a UDP socket on a free even port; the engine serves it from now on."""
        if self._loop is None:
            raise MediaError("media relay is not started")
        leg_id, port = self._call(self._engine.allocate_leg)
        leg = MediaLeg(leg_id, self.host, port)
        self._legs[leg_id] = leg
        return leg

    def set_remote(self, leg: MediaLeg, host: str, port: int) -> None:
        """Send this leg's media to host:port (from SDP); latching may refine it."""
        self._call(self._engine.set_remote, self._active(leg), host, port)
        leg.remote = (host, port)

    def connect(self, a: MediaLeg, b: MediaLeg) -> None:
        """Relay a->b and b->a; either leg's previous pairing is undone."""
        self._call(self._engine.connect, self._active(a), self._active(b))

    def disconnect(self, leg: MediaLeg) -> None:
        self._call(self._engine.disconnect, self._active(leg))

    def release(self, leg: MediaLeg) -> None:
        """Close the leg's socket, leaving its final counters on ``leg``; idempotent."""
        if self._legs.get(leg.id) is not leg:
            return
        final = self._call(self._engine.release, leg.id)
        del self._legs[leg.id]
        self._update(leg, final)

    def refresh(self, leg: MediaLeg) -> dict[str, Any]:
        """Copy the engine's counters onto ``leg``; the full engine stats of the leg."""
        stats = self._call(self._engine.stats, self._active(leg))
        self._update(leg, stats)
        return stats

    def stats(self) -> dict[str, int | str]:
        counters = self._engine.counters() if self._loop is not None else {}
        return {
            "implementation": self.implementation,
            "legs_active": len(self._legs),
            "packets_relayed": counters.get("packets_relayed", 0),
            "bytes_relayed": counters.get("bytes_relayed", 0),
            "packets_dropped": counters.get("packets_dropped", 0),
            "events_dropped": self.events_dropped + counters.get("events_dropped", 0),
        }

    def engine_counters(self) -> dict[str, int]:
        return self._engine.counters()

    # --- playback, codecs, recording, DTMF ---------------------------------------------

    def play(self, leg: MediaLeg, pcm16: bytes, *, loop: bool = False, play_id: int = 0) -> None:
        """Play 8 kHz int16 LE PCM into the leg (its peer's audio paused meanwhile)."""
        self._call(self._engine.play, self._active(leg), pcm16, loop=loop, play_id=play_id)

    def stop_play(self, leg: MediaLeg) -> None:
        self._call(self._engine.stop_play, self._active(leg))

    def set_codec(
        self, leg: MediaLeg, payload_type: int, telephone_event_pt: int | None = 101
    ) -> None:
        self._call(self._engine.set_codec, self._active(leg), payload_type, telephone_event_pt)

    def record(self, leg: MediaLeg, on: bool) -> None:
        self._call(self._engine.record, self._active(leg), on)

    def take_recording(self, leg: MediaLeg) -> bytes:
        return self._call(self._engine.take_recording, self._active(leg))

    def detect_dtmf(self, leg: MediaLeg, inband: bool) -> None:
        self._call(self._engine.detect_dtmf, self._active(leg), inband)

    # --- internals ---------------------------------------------------------------------

    def _active(self, leg: MediaLeg) -> int:
        if self._legs.get(leg.id) is not leg:
            raise MediaError(f"leg {leg.id} is not active on this relay")
        return leg.id

    @staticmethod
    def _call(method: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        try:
            return method(*args, **kwargs)
        except (MediaError, ValueError, TypeError):
            raise
        except Exception as exc:  # the engine's MediaError: one error type for callers
            raise MediaError(str(exc)) from exc

    @staticmethod
    def _update(leg: MediaLeg, stats: dict[str, Any]) -> None:
        leg.packets_in = stats["packets_in"]
        leg.packets_out = stats["packets_out"]
        leg.bytes_in = stats["bytes_in"]
        leg.bytes_out = stats["bytes_out"]
        leg.lost = max(0, stats.get("lost", 0))
        leg.jitter_ms = stats.get("jitter_ms")
        if stats["remote"] is not None:
            leg.remote = tuple(stats["remote"])  # type: ignore[assignment]
        age = stats["last_rx_age_s"]
        if age is not None:
            leg.last_rx = time.monotonic() - age

    def _on_events(self) -> None:
        for event in self._engine.read_events():
            if event[0] == "latched":
                leg = self._legs.get(event[1])
                if leg is not None:
                    leg.remote = (event[2], event[3])
            for callback in self._listeners:
                try:
                    callback(event)
                except Exception:  # a listener's bug must not stop event delivery
                    log.exception("media event listener failed on %r", event)
            if self._listeners:
                continue  # the listeners are the consumers; nobody drains the queue
            try:
                self.events.put_nowait(event)
            except asyncio.QueueFull:
                self.events_dropped += 1
