"""RFC 4733 telephone-events: payload codec, a once-per-press receiver, a sender's payloads.

Pure Python, shared by the compiled ``_dtmf`` and the twin ``dtmf_py`` (both re-export
it): this is packet-rate work (one 4-byte payload per 20-50 ms, only while a key is
held), so compiling it would buy nothing and a second copy would only drift.
Hand-written because it is 4 bytes and a small state machine; no library does it sans-I/O.
"""

from __future__ import annotations

import struct

from cython_ext.dtmf.events import DtmfEvent, TelephoneEvent

__all__ = [
    "TelephoneEventReceiver", "digit_to_event", "event_to_digit", "parse_event",
    "telephone_event_payloads",
]  # fmt: skip

_DIGITS = "0123456789*#ABCD"  # RFC 4733 §3.2, Table 3: events 0-15
_HEADER = struct.Struct("!BBH")
_HALF_RANGE = 1 << 31  # RTP timestamps are compared modulo 2**32 (RFC 3550 §5.1)


def parse_event(payload: bytes | bytearray | memoryview) -> TelephoneEvent:
    """Decode the first event block of a telephone-event payload (RFC 4733 §2.3)."""
    if len(payload) < 4:
        raise ValueError(f"telephone-event payload needs 4 bytes, got {len(payload)}")
    event, flags, duration = _HEADER.unpack_from(payload)
    return TelephoneEvent(event, bool(flags & 0x80), flags & 0x3F, duration)


def event_to_digit(event: int) -> str:
    """``0``-``9``, ``*``, ``#``, ``A``-``D`` for events 0-15; ValueError otherwise."""
    if not 0 <= event < 16:
        raise ValueError(f"telephone-event {event} is not a DTMF key")
    return _DIGITS[event]


def digit_to_event(digit: str) -> int:
    """The event code of a DTMF key (case-insensitive for ``A``-``D``)."""
    index = _DIGITS.find(digit.upper()) if len(digit) == 1 else -1
    if index < 0:
        raise ValueError(f"{digit!r} is not a DTMF key")
    return index


class TelephoneEventReceiver:
    """Turns one RTP stream's telephone-event packets into one :class:`DtmfEvent` per press.

    Packets of a press share its RTP timestamp (RFC 4733 §2.5.1.1).  The press is reported
    on its first end packet; the redundant end packets and retransmitted start packets
    (same timestamp) are ignored.  A packet with a newer timestamp starts a new press; if
    the previous press never showed an end packet it is reported then (or on
    :meth:`flush`).  Packets older than the current press are late and ignored.  Events
    that are not DTMF keys (flash, tones) are ignored.
    """

    def __init__(self, clock_rate: int = 8000) -> None:
        self.clock_rate = clock_rate
        self._timestamp: int | None = None
        self._event = 0
        self._duration = 0
        self._ended = False
        self._reported = True

    def feed(self, rtp_timestamp: int, payload: bytes, marker: bool) -> DtmfEvent | None:
        """One received packet; returns a press when one is complete.  ``marker`` is
        informative only: the timestamp alone tells a new press from a retransmission."""
        parsed = parse_event(payload)
        if parsed.event >= 16:
            return None
        timestamp = rtp_timestamp & 0xFFFFFFFF
        if self._timestamp is not None and timestamp != self._timestamp:
            if (timestamp - self._timestamp) & 0xFFFFFFFF >= _HALF_RANGE:
                return None  # late packet of an earlier press
        if timestamp == self._timestamp:
            self._duration = max(self._duration, parsed.duration)
            self._ended = self._ended or parsed.end
            if self._ended and not self._reported:
                self._reported = True
                return self._press()
            return None
        unfinished = None if self._reported else self._press()
        self._timestamp = timestamp
        self._event = parsed.event
        self._duration = parsed.duration
        self._ended = parsed.end
        self._reported = False
        if unfinished is not None:
            return unfinished  # this press is reported by its next (redundant) end packet
        if self._ended:
            self._reported = True
            return self._press()
        return None

    def flush(self) -> list[DtmfEvent]:
        """End of stream: the press whose end packets were lost, if any."""
        if self._reported:
            return []
        self._reported = True
        return [self._press()]

    def _press(self) -> DtmfEvent:
        return DtmfEvent(_DIGITS[self._event], self._duration * 1000 // self.clock_rate)


def telephone_event_payloads(
    digit: str, duration_ms: int = 100, volume: int = 10, ptime_ms: int = 20
) -> list[tuple[bytes, bool, bool]]:
    """``(payload, marker, is_end)`` for every packet of one press, in order (RFC 4733 §2.5).

    All share one RTP timestamp (the caller's).  The first has the marker bit; durations
    grow by one packet time; the end is sent three times with the same final duration
    (§2.5.1.4).  Durations are in 8 kHz timestamp units.
    """
    event = digit_to_event(digit)
    if not 0 <= volume <= 63:
        raise ValueError(f"volume must be 0..63 (-dBm0), not {volume}")
    if ptime_ms <= 0 or duration_ms <= 0:
        raise ValueError("duration_ms and ptime_ms must be positive")
    total = duration_ms * 8
    if total > 0xFFFF:
        raise ValueError(f"duration_ms {duration_ms} exceeds one event's 16-bit duration")
    step = ptime_ms * 8
    packets: list[tuple[bytes, bool, bool]] = []
    elapsed = step
    while elapsed < total:
        packets.append((_HEADER.pack(event, volume, elapsed), not packets, False))
        elapsed += step
    end = _HEADER.pack(event, 0x80 | volume, total)
    packets.append((end, not packets, True))
    packets += [(end, False, True), (end, False, True)]
    return packets
