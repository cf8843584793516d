"""What the DTMF kernel reports, shared by the compiled ``_dtmf`` and the twin ``dtmf_py``.

One set of frozen dataclasses, so callers (and the tests) compare the two implementations'
results with ``==`` and catch nothing implementation-specific.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["DtmfEvent", "DtmfTone", "TelephoneEvent"]


@dataclass(frozen=True, slots=True)
class DtmfTone:
    """One in-band key press, reported once when it has ended."""

    digit: str
    """``0``-``9``, ``*``, ``#`` or ``A``-``D``."""
    start_sample: int
    """Index (from the detector's first sample) of the first block the tone was heard in."""
    duration_samples: int
    """From that block's start to the end of the last block the tone was heard in."""


@dataclass(frozen=True, slots=True)
class TelephoneEvent:
    """One RFC 4733 §2.3 telephone-event payload."""

    event: int
    """Event code (0-255); 0-15 are the DTMF keys (RFC 4733 §3.2)."""
    end: bool
    """The E bit: this packet ends the event."""
    volume: int
    """Power level in -dBm0 (0-63)."""
    duration: int
    """Duration so far, in RTP timestamp units (0-65535)."""


@dataclass(frozen=True, slots=True)
class DtmfEvent:
    """One key press received as RFC 4733 telephone-events, reported exactly once."""

    digit: str
    """``0``-``9``, ``*``, ``#`` or ``A``-``D``."""
    duration_ms: int
    """The press's last known duration, in milliseconds."""
