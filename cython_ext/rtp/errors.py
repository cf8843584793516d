"""The one error type of the RTP kernel, shared by the compiled module and its twin."""

from __future__ import annotations


class RtpError(ValueError):
    """A datagram is not a valid RTP packet (RFC 3550 §5.1); ``reason`` says why."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason
