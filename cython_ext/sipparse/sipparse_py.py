"""SIP message scanner, pure-Python twin of ``_sipparse`` (the readable reference).

Turns one SIP message (RFC 3261 §7) into its start line, its header fields and its body,
and frames messages on stream transports (:func:`message_length`).  It does no I/O and
interprets nothing beyond what framing and the message-level grammar need: URIs, header
parameters, dates and bodies are left to the layers above.  Hand-written because no
maintained Python library parses SIP at this speed without doing I/O; the compiled
``_sipparse`` implements exactly these rules, and the tests hold the two to it.

Rules (the stub ``_sipparse.pyi`` is the API):

* Line ends are CRLF; a bare LF is accepted too (be liberal).  CR/LF octets before the
  start line -- RFC 5626 keep-alive pings on a stream, stray CRLFs in a datagram -- are
  skipped (RFC 3261 §7.5).  The header section must end with an empty line.
* Header names: compact forms are expanded and known names get their canonical spelling
  (``_CANONICAL``), matched case-insensitively; unknown names are kept as sent.
* Values: folded lines are joined with one SP, leading/trailing SP/HTAB stripped, other
  LWS kept.  List headers (``_LIST``) give one entry per element, split at commas outside
  quoted strings and outside ``<...>``.  Bytes are decoded as UTF-8 with
  ``surrogateescape``, so nothing is lost.
* Body: exactly Content-Length octets; without Content-Length (UDP only) the rest of the
  datagram.  Octets after the declared body are ignored (RFC 3261 §18.3).
* Max-Forwards is not required: RFC 4475 §3.4.1 (inv2543) asks elements to accept
  RFC 2543 requests that lack it.  Its value, URIs, Date and branch are checked above.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from cython_ext.sipparse.errors import SipParseError, describe

__all__ = ["IMPLEMENTATION", "ParsedMessage", "SipParseError", "message_length", "parse_message"]

IMPLEMENTATION = "python"

_WSP = b" \t"
_DIGITS = frozenset(b"0123456789")
_ALPHA = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz")
_TOKEN = _ALPHA | _DIGITS | frozenset(b"-.!%*_+`'~")
_SCHEME = _ALPHA | _DIGITS | frozenset(b"+-.")
_CSEQ_LIMIT = 2**31

# Flags of a known header.
_LIST = 1  # comma-separated list: one entry per element
_ADDRESS = 2  # name-addr / addr-spec: quotes and <> must balance, no LWS inside <>
_SINGLE_ADDRESS = 4  # From/To: no unquoted comma (it is not a list)
_SINGLE = 8  # at most one value (duplicates must be identical)

_CANONICAL_NAMES = (
    "Accept Accept-Contact Accept-Encoding Accept-Language Accept-Resource-Priority "
    "Alert-Info Allow Allow-Events Authentication-Info Authorization Call-ID Call-Info "
    "Contact Content-Disposition Content-Encoding Content-ID Content-Language "
    "Content-Length Content-Transfer-Encoding Content-Type CSeq Date Diversion Error-Info "
    "Event Expires From History-Info Identity Identity-Info In-Reply-To Join Max-Forwards "
    "MIME-Version Min-Expires Min-SE Organization P-Asserted-Identity P-Preferred-Identity "
    "Path Priority Privacy Proxy-Authenticate Proxy-Authorization Proxy-Require RAck Reason "
    "Record-Route Refer-To Referred-By Reject-Contact Replaces Reply-To Request-Disposition "
    "Require Retry-After Route RSeq Security-Client Security-Server Security-Verify Server "
    "Service-Route Session-Expires SIP-ETag SIP-If-Match Subject Subscription-State "
    "Supported Target-Dialog Timestamp To Unsupported User-Agent Via Warning WWW-Authenticate"
).split()

# RFC 3261 §7.3.3 and the extensions that registered a compact form.
_COMPACT = {
    "i": "Call-ID", "m": "Contact", "e": "Content-Encoding", "l": "Content-Length",
    "c": "Content-Type", "f": "From", "s": "Subject", "k": "Supported", "t": "To",
    "v": "Via", "o": "Event", "r": "Refer-To", "b": "Referred-By", "u": "Allow-Events",
    "a": "Accept-Contact", "j": "Reject-Contact", "d": "Request-Disposition",
    "x": "Session-Expires", "y": "Identity", "n": "Identity-Info",
}  # fmt: skip

_FLAGS = {
    "Via": _LIST, "Route": _LIST | _ADDRESS, "Record-Route": _LIST | _ADDRESS,
    "Contact": _LIST | _ADDRESS, "Allow": _LIST, "Supported": _LIST, "Require": _LIST,
    "Proxy-Require": _LIST, "Unsupported": _LIST, "Accept": _LIST,
    "Accept-Encoding": _LIST, "Accept-Language": _LIST, "Content-Encoding": _LIST,
    "Allow-Events": _LIST, "Path": _LIST | _ADDRESS, "Service-Route": _LIST | _ADDRESS,
    "Alert-Info": _LIST, "Call-Info": _LIST, "Error-Info": _LIST, "Warning": _LIST,
    "In-Reply-To": _LIST,
    "From": _ADDRESS | _SINGLE_ADDRESS | _SINGLE, "To": _ADDRESS | _SINGLE_ADDRESS | _SINGLE,
    "Call-ID": _SINGLE, "CSeq": _SINGLE, "Max-Forwards": _SINGLE,
    "Content-Length": _SINGLE, "Content-Type": _SINGLE,
}  # fmt: skip

#: lower-case name as bytes -> (canonical name, flags)
_HEADER_TABLE: dict[bytes, tuple[str, int]] = {
    name.lower().encode(): (name, _FLAGS.get(name, 0)) for name in _CANONICAL_NAMES
}
_HEADER_TABLE.update(
    (short.encode(), (name, _FLAGS.get(name, 0))) for short, name in _COMPACT.items()
)

_REQUIRED = ("To", "From", "Call-ID", "CSeq", "Via")


class ParsedMessage:
    """One SIP message: start line, header fields in message order, body."""

    __slots__ = ("is_request", "method", "uri", "status", "reason", "version", "headers", "body")

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
    ) -> None:
        self.is_request = is_request
        self.method = method
        self.uri = uri
        self.status = status
        self.reason = reason
        self.version = version
        self.headers = headers
        self.body = body

    def __repr__(self) -> str:
        first = f"{self.method} {self.uri}" if self.is_request else f"{self.status} {self.reason}"
        return f"<ParsedMessage {first!r}, {len(self.headers)} headers, {len(self.body)} body bytes>"


def parse_message(data: bytes, max_size: int = 65535) -> ParsedMessage:
    """Parse one complete SIP message; raise :class:`SipParseError` if it is malformed."""
    if not isinstance(data, bytes):
        data = bytes(data)  # bytearray, memoryview; a str raises TypeError here
    size = len(data)
    if size > max_size:
        raise SipParseError(f"message of {size} bytes exceeds max_size {max_size}", 413)
    start = _skip_keepalives(data)
    if start == size:
        raise SipParseError("empty message")
    first_lf = data.find(b"\n", start)
    start_line = data[start : first_lf if first_lf >= 0 else size]
    if start_line.endswith(b"\r"):
        start_line = start_line[:-1]
    if start_line.startswith(b"SIP/"):
        is_request, method, uri = False, "", ""
        status, reason = _parse_status_line(start_line)
    else:
        is_request, status, reason = True, 0, ""
        method, uri = _parse_request_line(start_line)

    head_end, body_start = _find_header_end(data, start)
    if head_end < 0:
        raise SipParseError("header section is not terminated by an empty line")
    headers, content_length = _parse_headers(
        _header_fields(data[first_lf + 1 : head_end]), method, max_size
    )

    available = size - body_start
    if content_length < 0:
        body = data[body_start:]
    elif content_length > available:
        raise SipParseError(
            f"Content-Length {content_length} exceeds the {available} bytes of body received"
        )
    else:
        body = data[body_start : body_start + content_length]
    return ParsedMessage(is_request, method, uri, status, reason, "SIP/2.0", headers, body)


def message_length(buf: bytes | bytearray, max_size: int = 65535) -> int:
    """Length of the first message in a stream buffer, or -1 while its header is incomplete.

    CR/LF octets before the start line (RFC 5626 keep-alive pings) are counted in the
    result only when a message follows them: a buffer holding nothing but pings gives
    -1, so the transport recognises and answers pings before calling this.  The result
    may exceed ``len(buf)`` while the body is still arriving.  Content-Length is
    mandatory on streams (RFC 3261 §18.3).  Sizes are measured from the buffer start.
    """
    data = bytes(buf)
    start = _skip_keepalives(data)
    if start == len(data):
        return -1
    head_end, body_start = _find_header_end(data, start)
    if head_end < 0:
        if len(data) > max_size:
            raise SipParseError(
                f"header section of more than {max_size} bytes exceeds max_size {max_size}", 413
            )
        return -1
    content_length = -1
    first_lf = data.find(b"\n", start)
    for name, value in _header_fields(data[first_lf + 1 : head_end], strict=False):
        if name.lower() in (b"content-length", b"l"):
            content_length = _merge_content_length(content_length, value, max_size)
    if content_length < 0:
        raise SipParseError("Content-Length is mandatory on stream transports")
    total = body_start + content_length
    if total > max_size:
        raise SipParseError(f"message of {total} bytes exceeds max_size {max_size}", 413)
    return total


def _skip_keepalives(data: bytes) -> int:
    start = 0
    while start < len(data) and data[start] in b"\r\n":
        start += 1
    return start


def _find_header_end(data: bytes, start: int) -> tuple[int, int]:
    """(index of the LF that ends the last header line, index of the body) or (-1, -1)."""
    lf = data.find(b"\n", start)
    while lf >= 0:
        if data[lf + 1 : lf + 2] == b"\n":
            return lf, lf + 2
        if data[lf + 1 : lf + 3] == b"\r\n":
            return lf, lf + 3
        lf = data.find(b"\n", lf + 1)
    return -1, -1


def _is_token(raw: bytes) -> bool:
    return bool(raw) and all(octet in _TOKEN for octet in raw)


def _is_sip_version(raw: bytes) -> bool:
    major, dot, minor = raw[4:].partition(b".")
    return (
        raw.startswith(b"SIP/")
        and dot == b"."
        and bool(major)
        and bool(minor)
        and all(octet in _DIGITS for octet in major + minor)
    )


def _check_version(version: bytes) -> None:
    if version == b"SIP/2.0":
        return
    if _is_sip_version(version):
        raise SipParseError(f"unsupported SIP version {describe(version)}", 505)
    raise SipParseError(f"malformed SIP version {describe(version)}")


def _parse_request_line(line: bytes) -> tuple[str, str]:
    """``Method SP Request-URI SP SIP-Version`` with single spaces (RFC 3261 §7.1)."""
    if line[:1] in (b" ", b"\t"):
        raise SipParseError("start line begins with whitespace")
    if line[-1:] in (b" ", b"\t"):
        raise SipParseError("request line ends with whitespace")
    if b"\t" in line or b"  " in line:
        raise SipParseError("request line elements must be separated by exactly one SP")
    parts = line.split(b" ")
    if len(parts) == 1:
        raise SipParseError(f"start line {describe(line)} is neither a request nor a status line")
    if len(parts) != 3:
        raise SipParseError(
            f"request line has {len(parts)} elements, expected Method SP Request-URI SP "
            "SIP-Version (whitespace inside the Request-URI?)"
        )
    method, uri, version = parts
    if not _is_token(method):
        raise SipParseError(f"method {describe(method)} is not a token")
    _check_version(version)
    if uri[:1] == b"<":
        raise SipParseError("Request-URI must not be enclosed in <>")
    if any(octet < 0x21 or octet > 0x7E for octet in uri):
        raise SipParseError("Request-URI contains a control or non-ASCII octet")
    colon = uri.find(b":")
    if colon < 1 or uri[0] not in _ALPHA or any(octet not in _SCHEME for octet in uri[:colon]):
        raise SipParseError(f"Request-URI {describe(uri)} has no scheme")
    return method.decode("ascii"), uri.decode("ascii")


def _parse_status_line(line: bytes) -> tuple[int, str]:
    """``SIP-Version SP Status-Code SP Reason-Phrase`` (RFC 3261 §7.2).

    A missing SP after the code is tolerated: the reason phrase is then empty.
    """
    parts = line.split(b" ", 2)
    _check_version(parts[0])
    if len(parts) == 1:
        raise SipParseError("status line has no status code")
    code = parts[1]
    if len(code) != 3 or any(octet not in _DIGITS for octet in code):
        raise SipParseError(f"status code {describe(code)} is not 3 digits")
    status = int(code)
    if not 100 <= status <= 699:
        raise SipParseError(f"status code {status} is outside 100-699")
    reason = parts[2] if len(parts) == 3 else b""
    return status, reason.decode("utf-8", "surrogateescape")


def _header_fields(head: bytes, strict: bool = True) -> Iterator[tuple[bytes, bytes]]:
    """Yield (name, unfolded value) for each header field, in message order.

    A field is yielded as soon as its last continuation line has been read, before the
    next line is looked at, so errors are reported in message order.  With
    ``strict=False`` (framing only) malformed lines are skipped instead of rejected.
    """
    if not head:
        return
    name: bytes | None = None
    value = b""
    for line in head.split(b"\n"):
        if line.endswith(b"\r"):
            line = line[:-1]
        if line[:1] in (b" ", b"\t"):  # continuation of a folded value (RFC 3261 §7.3.1)
            if name is None:
                if strict:
                    raise SipParseError("continuation line before the first header field")
                continue
            value = value.rstrip(_WSP) + b" " + line.strip(_WSP)
            continue
        if name is not None:
            yield name, value.strip(_WSP)
            name = None
        colon = line.find(b":")
        field_name = line[:colon].rstrip(_WSP)
        if colon < 0 or not _is_token(field_name):
            if not strict:
                continue
            if colon < 0:
                raise SipParseError(f"header line without ':' ({describe(line)})")
            if not field_name:
                raise SipParseError("header field with an empty name")
            raise SipParseError(f"header field name {describe(field_name)} is not a token")
        name, value = field_name, line[colon + 1 :].strip(_WSP)
    if name is not None:
        yield name, value.strip(_WSP)


def _parse_headers(
    fields: Iterable[tuple[bytes, bytes]], method: str, max_size: int
) -> tuple[list[tuple[str, str]], int]:
    """Normalise, split and check the header fields; return (headers, Content-Length)."""
    headers: list[tuple[str, str]] = []
    singles: dict[str, bytes] = {}
    content_length = -1
    for raw_name, value in fields:
        name, flags = _HEADER_TABLE.get(raw_name.lower(), (None, 0))
        if name is None:
            name = raw_name.decode("ascii")
        if flags & _SINGLE:
            if name == "Content-Length":
                content_length = _merge_content_length(content_length, value, max_size)
            elif name in singles and singles[name] != value:
                raise SipParseError(
                    f"duplicate {name} header fields with different values "
                    f"({describe(singles[name])} and {describe(value)})"
                )
            if name == "CSeq":
                _check_cseq(value, method)
            singles[name] = value
        if flags & _LIST and value != b"*":
            elements = _split_list(value)
            if len(elements) > 1 and b"" in elements:
                raise SipParseError(f"empty element in {name} header field value")
        else:
            elements = [value]
        for element in elements:
            if flags & _ADDRESS and element != b"*":
                _check_address(name, element, flags & _SINGLE_ADDRESS)
            headers.append((name, element.decode("utf-8", "surrogateescape")))
    present = {name for name, _ in headers}
    missing = [name for name in _REQUIRED if name not in present]
    if missing:
        raise SipParseError(f"missing required header field(s): {', '.join(missing)}")
    return headers, content_length


def _merge_content_length(previous: int, value: bytes, max_size: int) -> int:
    """Content-Length = 1*DIGIT; a second one must agree with the first (RFC 4475 mcl01)."""
    if not value or any(octet not in _DIGITS for octet in value):
        raise SipParseError(f"Content-Length {describe(value)} is not a decimal number")
    digits = value.lstrip(b"0") or b"0"
    if len(digits) > 10 or int(digits) > max_size:
        raise SipParseError(f"Content-Length {describe(digits)} exceeds max_size {max_size}", 413)
    length = int(digits)
    if previous >= 0 and previous != length:
        raise SipParseError(f"Content-Length appears twice with different values ({previous} and {length})")
    return length


def _check_cseq(value: bytes, method: str) -> None:
    """CSeq = 1*DIGIT LWS Method, number < 2**31, method = request method (RFC 3261 §8.1.1.5)."""
    digits_end = 0
    while digits_end < len(value) and value[digits_end] in _DIGITS:
        digits_end += 1
    method_start = digits_end
    while method_start < len(value) and value[method_start] in _WSP:
        method_start += 1
    if digits_end == 0 or method_start == digits_end or method_start == len(value):
        raise SipParseError(f"CSeq {describe(value)} is not 'number method'")
    cseq_method = value[method_start:]
    if not _is_token(cseq_method):
        raise SipParseError(f"CSeq method {describe(cseq_method)} is not a token")
    number = value[:digits_end].lstrip(b"0") or b"0"
    if len(number) > 10 or int(number) >= _CSEQ_LIMIT:
        raise SipParseError(f"CSeq number {describe(number)} is not below 2**31")
    if method and cseq_method.decode("ascii") != method:
        raise SipParseError(
            f"CSeq method {describe(cseq_method)} does not match request method {describe(method)}"
        )


def _split_list(value: bytes) -> list[bytes]:
    """Split at commas outside quoted strings (with backslash escapes) and outside <...>."""
    elements: list[bytes] = []
    in_quotes = in_angle = False
    start = i = 0
    while i < len(value):
        octet = value[i]
        if in_quotes:
            if octet == 0x5C:  # backslash: the next octet is quoted
                i += 1
            elif octet == 0x22:
                in_quotes = False
        elif octet == 0x22:
            in_quotes = True
        elif octet == 0x3C:
            in_angle = True
        elif octet == 0x3E:
            in_angle = False
        elif octet == 0x2C and not in_angle:
            elements.append(value[start:i].strip(_WSP))
            start = i + 1
        i += 1
    elements.append(value[start:].strip(_WSP))
    return elements


def _check_address(name: str, value: bytes, single: int) -> None:
    """Message-level checks of a name-addr / addr-spec value (RFC 3261 §20.10, §25.1).

    Quotes and angle brackets balance; no LWS inside <...> (RFC 4475 badaspec); outside
    quotes and <...> no '?' (a URI with headers needs <>, regbadct) and, in From/To, no
    comma (an unquoted display name cannot hold one, baddn).
    """
    in_quotes = in_angle = False
    i = 0
    while i < len(value):
        octet = value[i]
        if in_quotes:
            if octet == 0x5C:
                i += 1
            elif octet == 0x22:
                in_quotes = False
        elif in_angle:
            if octet == 0x3E:
                in_angle = False
            elif octet == 0x3C:
                raise SipParseError(f"unexpected '<' inside <...> in {name} header field value")
            elif octet in _WSP:
                raise SipParseError(f"whitespace inside <...> in {name} header field value")
        elif octet == 0x22:
            in_quotes = True
        elif octet == 0x3C:
            in_angle = True
        elif octet == 0x3E:
            raise SipParseError(f"unbalanced '>' in {name} header field value")
        elif octet == 0x3F:
            raise SipParseError(
                f"'?' outside <...> in {name} header field value "
                "(a URI with headers must be enclosed in <>)"
            )
        elif octet == 0x2C and single:
            raise SipParseError(
                f"unquoted ',' in {name} header field value "
                "(a display name with a comma must be quoted)"
            )
        i += 1
    if in_quotes:
        raise SipParseError(f"unterminated quoted string in {name} header field value")
    if in_angle:
        raise SipParseError(f"unterminated '<' in {name} header field value")
