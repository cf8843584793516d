"""The one exception both SIP scanners raise, and how its reasons quote message text.

Shared by the compiled ``_sipparse`` and the twin ``sipparse_py`` so that callers catch
a single type and both implementations word their reasons identically.
"""

from __future__ import annotations

__all__ = ["SipParseError", "describe"]

_QUOTE_LIMIT = 60


class SipParseError(ValueError):
    """The peer sent something that is not a well-formed SIP message (RFC 3261 §7, §25).

    ``reason`` is precise human text; ``status`` is the response a server should send
    when it can answer at all: 400 by default, 505 for an unsupported SIP version, 413
    when the message (or its declared body) is larger than the configured ``max_size``.
    """

    reason: str
    status: int

    def __init__(self, reason: str, status: int = 400) -> None:
        super().__init__(reason)
        self.reason = reason
        self.status = status

    def __reduce__(self) -> tuple[type[SipParseError], tuple[str, int]]:
        return (type(self), (self.reason, self.status))

    def __repr__(self) -> str:
        return f"SipParseError({self.reason!r}, status={self.status})"


def describe(raw: bytes | str) -> str:
    """Quote a piece of the message for a reason text: ``repr`` of at most 60 characters.

    Bytes are decoded as UTF-8 with ``surrogateescape``, like header values, so the two
    implementations quote the same input the same way.
    """
    text = raw.decode("utf-8", "surrogateescape") if isinstance(raw, bytes) else raw
    if len(text) > _QUOTE_LIMIT:
        text = text[: _QUOTE_LIMIT - 3] + "..."
    return repr(text)
