"""SIP message scanner: bytes -> start line, headers, body (RFC 3261 §7, §20).

The compiled ``_sipparse`` and the twin ``sipparse_py`` have one API; see ``_sipparse.pyi``.
"""

from cython_ext import load_kernel

_impl = load_kernel("sipparse")

IMPLEMENTATION: str = _impl.IMPLEMENTATION
ParsedMessage = _impl.ParsedMessage
SipParseError = _impl.SipParseError
parse_message = _impl.parse_message
message_length = _impl.message_length

__all__ = ["IMPLEMENTATION", "ParsedMessage", "SipParseError", "parse_message", "message_length"]
