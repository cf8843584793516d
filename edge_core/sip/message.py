"""SIP message model (RFC 3261 §7, §20): requests, responses, and the header values
the stack reads (Via, name-addr, URI, CSeq).

Bytes come in through ``cython_ext.sipparse`` (compiled scanner or its twin); this
module turns a scan into :class:`Request` / :class:`Response` objects and serialises
them back. Hand-written: the maintained Python SIP libraries are tied to their own
I/O and event loops; this stack is sans-I/O (see shared/STYLE.md).

Headers are kept as an ordered list of ``[name, value]`` pairs with canonical names
(the scanner expands compact forms), one entry per value for list headers. Look-ups
are linear: a SIP message has 10-20 headers, and a dict would cost more to build than
the scans it saves.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field

from cython_ext.sipparse import SipParseError, parse_message

__all__ = [
    "SipParseError",
    "SipMessage",
    "Request",
    "Response",
    "Via",
    "NameAddr",
    "SipUri",
    "parse",
    "new_tag",
    "new_branch",
    "new_call_id",
    "BRANCH_MAGIC",
    "REASONS",
]

BRANCH_MAGIC = "z9hG4bK"  # RFC 3261 §8.1.1.7: branch ids of compliant UAs start with it

REASONS = {
    100: "Trying",
    180: "Ringing",
    181: "Call Is Being Forwarded",
    182: "Queued",
    183: "Session Progress",
    200: "OK",
    202: "Accepted",
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    407: "Proxy Authentication Required",
    408: "Request Timeout",
    413: "Request Entity Too Large",
    415: "Unsupported Media Type",
    420: "Bad Extension",
    423: "Interval Too Brief",
    480: "Temporarily Unavailable",
    481: "Call/Transaction Does Not Exist",
    482: "Loop Detected",
    483: "Too Many Hops",
    484: "Address Incomplete",
    486: "Busy Here",
    487: "Request Terminated",
    488: "Not Acceptable Here",
    491: "Request Pending",
    500: "Server Internal Error",
    501: "Not Implemented",
    503: "Service Unavailable",
    504: "Server Time-out",
    505: "Version Not Supported",
    513: "Message Too Large",
    603: "Decline",
}


def new_tag() -> str:
    """A From/To tag: 32 random bits are what RFC 3261 §19.3 asks at least."""
    return os.urandom(6).hex()


def new_branch() -> str:
    """A Via branch, unique per transaction (RFC 3261 §8.1.1.7)."""
    return BRANCH_MAGIC + os.urandom(8).hex()


def new_call_id(host: str) -> str:
    return f"{os.urandom(10).hex()}@{host}"


class SipMessage:
    """What requests and responses share: the header list and the body."""

    __slots__ = ("headers", "body")

    def __init__(self, headers: list[list[str]] | None = None, body: bytes = b"") -> None:
        self.headers: list[list[str]] = headers if headers is not None else []
        self.body = body

    # -- header access ---------------------------------------------------------------
    def header(self, name: str) -> str | None:
        """The first value of header ``name`` (canonical spelling), or None."""
        for h in self.headers:
            if h[0] == name:
                return h[1]
        return None

    def header_values(self, name: str) -> list[str]:
        return [h[1] for h in self.headers if h[0] == name]

    def set_header(self, name: str, value: str) -> None:
        """Replace every ``name`` header by one with ``value`` (appended if absent)."""
        for i, h in enumerate(self.headers):
            if h[0] == name:
                h[1] = value
                self.headers[i + 1 :] = [x for x in self.headers[i + 1 :] if x[0] != name]
                return
        self.headers.append([name, value])

    def add_header(self, name: str, value: str, *, first: bool = False) -> None:
        """Add a value; ``first`` puts it before the existing ones (a new top Via)."""
        if first:
            for i, h in enumerate(self.headers):
                if h[0] == name:
                    self.headers.insert(i, [name, value])
                    return
            self.headers.insert(0, [name, value])
        else:
            self.headers.append([name, value])

    def remove_header(self, name: str) -> None:
        self.headers = [h for h in self.headers if h[0] != name]

    # -- the headers every message has (RFC 3261 §8.1.1) -------------------------------
    @property
    def call_id(self) -> str:
        return self.header("Call-ID") or ""

    @property
    def cseq(self) -> tuple[int, str]:
        """(sequence number, method) of the CSeq header."""
        value = self.header("CSeq") or "0 "
        number, _, method = value.partition(" ")
        return int(number), method.strip()

    @property
    def from_tag(self) -> str | None:
        return _tag_of(self.header("From"))

    @property
    def to_tag(self) -> str | None:
        return _tag_of(self.header("To"))

    @property
    def top_via(self) -> Via:
        value = self.header("Via")
        if value is None:
            raise SipParseError("message has no Via header")
        return Via.parse(value)

    @property
    def branch(self) -> str:
        return self.top_via.params.get("branch") or ""

    def _head(self) -> str:
        raise NotImplementedError

    def to_bytes(self) -> bytes:
        """Serialise, with Content-Length set from the body (RFC 3261 §20.14)."""
        lines = [self._head()]
        for name, value in self.headers:
            if name != "Content-Length":
                lines.append(f"{name}: {value}")
        lines.append(f"Content-Length: {len(self.body)}")
        lines.append("")
        lines.append("")
        # surrogateescape: the scanner keeps non-UTF-8 octets (a Latin-1 display name from
        # an old gateway) as surrogates; they go back on the wire byte for byte
        return "\r\n".join(lines).encode("utf-8", "surrogateescape") + self.body


class Request(SipMessage):
    __slots__ = ("method", "uri")

    def __init__(
        self,
        method: str,
        uri: str,
        headers: list[list[str]] | None = None,
        body: bytes = b"",
    ) -> None:
        super().__init__(headers, body)
        self.method = method
        self.uri = uri

    def _head(self) -> str:
        return f"{self.method} {self.uri} SIP/2.0"

    def __repr__(self) -> str:
        return f"<Request {self.method} {self.uri} call-id={self.call_id}>"


class Response(SipMessage):
    __slots__ = ("status", "reason")

    def __init__(
        self,
        status: int,
        reason: str | None = None,
        headers: list[list[str]] | None = None,
        body: bytes = b"",
    ) -> None:
        super().__init__(headers, body)
        self.status = status
        self.reason = reason if reason is not None else REASONS.get(status, "Unknown")

    def _head(self) -> str:
        return f"SIP/2.0 {self.status} {self.reason}"

    def __repr__(self) -> str:
        return f"<Response {self.status} {self.reason} call-id={self.call_id}>"

    @classmethod
    def for_request(
        cls,
        request: Request,
        status: int,
        reason: str | None = None,
        *,
        to_tag: str | None = None,
    ) -> Response:
        """A response to ``request`` (RFC 3261 §8.2.6.2): Via, From, To, Call-ID and
        CSeq copied; ``to_tag`` added to To when it has none yet (not for 100)."""
        headers: list[list[str]] = []
        for name, value in request.headers:
            if name in _COPIED_TO_RESPONSE:
                if name == "To" and to_tag and status != 100 and _tag_of(value) is None:
                    value = f"{value};tag={to_tag}"
                headers.append([name, value])
        return cls(status, reason, headers)


_COPIED_TO_RESPONSE = frozenset(("Via", "From", "To", "Call-ID", "CSeq", "Record-Route"))


def parse(data: bytes, max_size: int = 65535) -> Request | Response:
    """Bytes -> message; raises :class:`SipParseError` (with ``status``) when malformed."""
    scan = parse_message(data, max_size)
    headers = [[n, v] for n, v in scan.headers]
    if scan.is_request:
        return Request(scan.method, scan.uri, headers, scan.body)
    return Response(scan.status, scan.reason, headers, scan.body)


# -- header values --------------------------------------------------------------------

_TAG_RE = re.compile(r";\s*tag=([^;>,\s]+)", re.IGNORECASE)


def _tag_of(value: str | None) -> str | None:
    if not value:
        return None
    # the tag is a header parameter, so it lives after the closing '>' when there is one
    tail = value[value.rfind(">") + 1 :] if ">" in value else value
    m = _TAG_RE.search(tail)
    return m.group(1) if m else None


def _split_params(text: str) -> dict[str, str]:
    params: dict[str, str] = {}
    for part in text.split(";"):
        part = part.strip()
        if not part:
            continue
        key, _, val = part.partition("=")
        params[key.strip().lower()] = val.strip()
    return params


@dataclass(slots=True)
class Via:
    """One Via value: ``SIP/2.0/UDP host:port;branch=...;received=...;rport``."""

    transport: str
    host: str
    port: int | None
    params: dict[str, str] = field(default_factory=dict)

    @classmethod
    def parse(cls, value: str) -> Via:
        proto, _, rest = value.strip().partition(" ")
        parts = proto.split("/")
        if len(parts) != 3 or parts[0].upper() != "SIP":
            raise SipParseError(f"malformed Via {value!r}")
        sent_by, _, param_text = rest.strip().partition(";")
        host, port = _split_hostport(sent_by.strip())
        return cls(parts[2].strip().upper(), host, port, _split_params(param_text))

    def __str__(self) -> str:
        hostport = self.host if self.port is None else f"{self.host}:{self.port}"
        params = "".join(f";{k}={v}" if v else f";{k}" for k, v in self.params.items())
        return f"SIP/2.0/{self.transport} {hostport}{params}"


def _split_hostport(text: str) -> tuple[str, int | None]:
    if text.startswith("["):  # IPv6 reference
        end = text.find("]")
        host, rest = text[: end + 1], text[end + 1 :]
        return host, int(rest[1:]) if rest.startswith(":") and rest[1:].isdigit() else None
    host, _, port = text.partition(":")
    if port and not port.isdigit():
        raise SipParseError(f"malformed port in {text!r}")
    return host, int(port) if port else None


@dataclass(slots=True)
class SipUri:
    """``sip:user@host:port;params`` (RFC 3261 §19.1), enough for routing."""

    scheme: str
    user: str | None
    host: str
    port: int | None = None
    params: dict[str, str] = field(default_factory=dict)

    @classmethod
    def parse(cls, text: str) -> SipUri:
        text = text.strip()
        scheme, sep, rest = text.partition(":")
        if not sep or scheme.lower() not in ("sip", "sips", "tel"):
            raise SipParseError(f"unsupported URI {text!r}")
        if scheme.lower() == "tel":
            number, _, params = rest.partition(";")
            return cls("tel", number, "", None, _split_params(params))
        rest, _, headers = rest.partition("?")
        userinfo, at, hostpart = rest.rpartition("@")
        hostport, _, params = (hostpart if at else rest).partition(";")
        user = userinfo.partition(":")[0] if at else None
        host, port = _split_hostport(hostport)
        if not host:
            raise SipParseError(f"URI without host {text!r}")
        return cls(scheme.lower(), user, host, port, _split_params(params))

    @property
    def hostport(self) -> str:
        return self.host if self.port is None else f"{self.host}:{self.port}"

    def __str__(self) -> str:
        user = f"{self.user}@" if self.user else ""
        params = "".join(f";{k}={v}" if v else f";{k}" for k, v in self.params.items())
        return f"{self.scheme}:{user}{self.hostport}{params}"


@dataclass(slots=True)
class NameAddr:
    """From/To/Contact value: ``"Display" <uri>;tag=x`` or a bare ``uri;tag=x``."""

    display: str
    uri: str
    params: dict[str, str] = field(default_factory=dict)

    @classmethod
    def parse(cls, value: str) -> NameAddr:
        value = value.strip()
        lt = value.find("<")
        if lt >= 0:
            gt = value.find(">", lt)
            if gt < 0:
                raise SipParseError(f"unbalanced <> in {value!r}")
            display = value[:lt].strip().strip('"')
            return cls(display, value[lt + 1 : gt].strip(), _split_params(value[gt + 1 :]))
        # addr-spec form: header parameters follow the URI after ';' (RFC 3261 §20.10)
        uri, _, params = value.partition(";")
        return cls("", uri.strip(), _split_params(params))

    @property
    def tag(self) -> str | None:
        return self.params.get("tag")

    def __str__(self) -> str:
        display = f'"{self.display}" ' if self.display else ""
        params = "".join(f";{k}={v}" if v else f";{k}" for k, v in self.params.items())
        return f"{display}<{self.uri}>{params}"
