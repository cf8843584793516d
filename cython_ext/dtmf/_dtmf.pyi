"""Stub of the compiled DTMF kernel; ``dtmf_py`` implements the same API."""

from cython_ext.dtmf.events import DtmfEvent as DtmfEvent
from cython_ext.dtmf.events import DtmfTone as DtmfTone
from cython_ext.dtmf.events import TelephoneEvent as TelephoneEvent
from cython_ext.dtmf.rfc4733 import TelephoneEventReceiver as TelephoneEventReceiver
from cython_ext.dtmf.rfc4733 import digit_to_event as digit_to_event
from cython_ext.dtmf.rfc4733 import event_to_digit as event_to_digit
from cython_ext.dtmf.rfc4733 import parse_event as parse_event
from cython_ext.dtmf.rfc4733 import telephone_event_payloads as telephone_event_payloads

IMPLEMENTATION: str  # "cython" here, "python" in the twin

class DtmfDetector:
    """In-band DTMF detector for one stream: Goertzel over 102-sample blocks (at 8 kHz)."""

    sample_rate: int
    dropped: int  # completed presses lost because take() was not called in time
    def __init__(self, sample_rate: int = 8000) -> None: ...
    def feed(self, pcm: bytes | bytearray | memoryview) -> list[DtmfTone]:
        """Analyse 16-bit LE PCM; returns the key presses that have ended (as take())."""
    def flush(self) -> list[DtmfTone]:
        """End of stream: report the key still held, drop the partial block, start afresh."""
    def take(self) -> list[DtmfTone]:
        """The completed key presses not yet returned, oldest first."""
    def classify(self, block: list[float]) -> str:
        """The key one full block holds, or ""."""
