"""Stub of the compiled SIP message scanner; ``sipparse_py`` implements the same API."""

from cython_ext.sipparse.errors import SipParseError as SipParseError

IMPLEMENTATION: str  # "cython" here, "python" in the twin

class ParsedMessage:
    """One SIP message: start line, header fields in message order, body."""

    is_request: bool
    method: str  # "" for responses
    uri: str  # Request-URI as sent; "" for responses
    status: int  # 0 for requests
    reason: str  # reason phrase; "" for requests
    version: str  # always "SIP/2.0"
    headers: list[tuple[str, str]]  # canonical names, list headers split per element
    body: bytes
    def __init__(
        self,
        is_request: bool,
        method: str,
        uri: str,
        status: int,
        reason: str,
        version: str,
        headers: list[tuple[str, str]],
        body: bytes,
    ) -> None: ...

def parse_message(data: bytes | bytearray | memoryview, max_size: int = 65535) -> ParsedMessage:
    """Parse one complete message; raise SipParseError (status 400/413/505) if malformed."""

def message_length(buf: bytes | bytearray, max_size: int = 65535) -> int:
    """Total length of the first message in a stream buffer (leading keep-alive CR/LF
    included), or -1 while its header section is incomplete; SipParseError when
    Content-Length is missing or invalid or the message exceeds max_size."""
