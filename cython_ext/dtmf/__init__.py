"""DTMF: in-band detection (Goertzel, ITU-T Q.24 practice) and RFC 4733 telephone-events.

The compiled ``_dtmf`` and the twin ``dtmf_py`` have one API; see ``_dtmf.pyi``.  The media
engine cimports the detector's C-level API from ``_dtmf.pxd``.  Must not import anything
outside ``cython_ext`` and the standard library.
"""

from cython_ext import load_kernel

_impl = load_kernel("dtmf")

IMPLEMENTATION: str = _impl.IMPLEMENTATION
DtmfDetector = _impl.DtmfDetector
DtmfTone = _impl.DtmfTone
DtmfEvent = _impl.DtmfEvent
TelephoneEvent = _impl.TelephoneEvent
TelephoneEventReceiver = _impl.TelephoneEventReceiver
parse_event = _impl.parse_event
event_to_digit = _impl.event_to_digit
digit_to_event = _impl.digit_to_event
telephone_event_payloads = _impl.telephone_event_payloads

__all__ = [
    "IMPLEMENTATION", "DtmfDetector", "DtmfEvent", "DtmfTone", "TelephoneEvent",
    "TelephoneEventReceiver", "digit_to_event", "event_to_digit", "parse_event",
    "telephone_event_payloads",
]  # fmt: skip
