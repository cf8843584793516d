"""SIP message scanner: RFC 4475 torture messages, header rules, stream framing, fuzzing.

Every test runs once per implementation (ids ``c-extension`` and ``pure-python``); the
compiled one is skipped when it is not built, unless ``BRANCHLINE_REQUIRE_COMPILED=1``.
"""

from __future__ import annotations

from types import ModuleType

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cython_ext.sipparse import sipparse_py
from cython_ext.sipparse.errors import SipParseError
from tests.kernels import compiled_or_none, require_compiled
from tests.unit.sipparse_vectors import RFC4475, sdp

COMPILED = compiled_or_none("sipparse")


def _require_compiled() -> ModuleType:
    return require_compiled("sipparse")


@pytest.fixture(scope="module")
def compiled() -> ModuleType:
    """The compiled implementation, for the tests that compare it with the twin."""
    return _require_compiled()


@pytest.fixture(scope="module", params=["c-extension", "pure-python"])
def sip(request: pytest.FixtureRequest) -> ModuleType:
    """The implementation under test."""
    if request.param == "pure-python":
        return sipparse_py
    return _require_compiled()


def values(msg, name: str) -> list[str]:
    return [value for header, value in msg.headers if header == name]


def fields(msg) -> tuple:
    return (
        msg.is_request, msg.method, msg.uri, msg.status, msg.reason, msg.version,
        msg.headers, msg.body,
    )  # fmt: skip


def raises(sip, data: bytes, fragment: str, status: int = 400, max_size: int = 65535):
    with pytest.raises(SipParseError) as caught:
        sip.parse_message(data, max_size)
    assert fragment in caught.value.reason
    assert caught.value.status == status
    return caught.value


def request(*headers: str, body: str = "", start: str = "OPTIONS sip:bob@example.com SIP/2.0",
            cseq: str = "1 OPTIONS", eol: str = "\r\n") -> bytes:  # fmt: skip
    """A minimal valid request with extra header lines (Content-Length added for a body)."""
    lines = [
        start,
        "Via: SIP/2.0/UDP pc.example.com;branch=z9hG4bK74bf9",
        "To: <sip:bob@example.com>",
        "From: Alice <sip:alice@example.com>;tag=9fxced76sl",
        "Call-ID: 3848276298220188511@example.com",
        f"CSeq: {cseq}",
        *headers,
    ]
    if body:
        lines.append(f"Content-Length: {len(body.encode())}")
    return (eol.join(lines) + eol + eol + body).encode()


SDP = sdp("192.0.2.4").replace("\n", "\r\n")
INVITE = request(
    "Max-Forwards: 70",
    "Contact: <sip:alice@192.0.2.4:5060;transport=udp>",
    "Content-Type: application/sdp",
    start="INVITE sip:bob@example.com SIP/2.0",
    cseq="314159 INVITE",
    body=SDP,
)

# --------------------------------------------------------------------------------------
# API
# --------------------------------------------------------------------------------------


def test_module_exports_the_kernel_api(sip):
    for name in ("IMPLEMENTATION", "ParsedMessage", "SipParseError", "parse_message", "message_length"):
        assert hasattr(sip, name)
    assert sip.IMPLEMENTATION == ("python" if sip is sipparse_py else "cython")
    assert sip.SipParseError is SipParseError
    assert issubclass(SipParseError, ValueError)


def test_typical_invite_fields(sip):
    msg = sip.parse_message(INVITE)
    assert isinstance(msg, sip.ParsedMessage)
    assert (msg.is_request, msg.method, msg.uri) == (True, "INVITE", "sip:bob@example.com")
    assert (msg.status, msg.reason, msg.version) == (0, "", "SIP/2.0")
    assert values(msg, "CSeq") == ["314159 INVITE"]
    assert msg.body == SDP.encode() and len(msg.body) == 150


def test_parse_accepts_bytearray_and_memoryview(sip):
    assert fields(sip.parse_message(bytearray(INVITE))) == fields(sip.parse_message(INVITE))
    assert fields(sip.parse_message(memoryview(INVITE))) == fields(sip.parse_message(INVITE))


def test_parsed_message_can_be_built_directly(sip):
    msg = sip.ParsedMessage(False, "", "", 180, "Ringing", "SIP/2.0", [("To", "x")], b"")
    assert (msg.status, msg.reason, msg.headers) == (180, "Ringing", [("To", "x")])
    assert "180" in repr(msg)


# --------------------------------------------------------------------------------------
# RFC 4475 §3.1.1: valid messages must parse
# --------------------------------------------------------------------------------------

WSINV_HEADERS = [
    ("To", "sip:vivekg@chair-dnrc.example.com ;   tag    = 1918181833n"),
    ("From", '"J Rosenberg \\\\\\""       <sip:jdrosen@example.com> ; tag = 98asjd8'),
    ("Max-Forwards", "0068"),
    ("Call-ID", "wsinv.ndaksdj@192.0.2.1"),
    ("Content-Length", "150"),
    ("CSeq", "0009 INVITE"),
    ("Via", "SIP  /   2.0 /UDP 192.0.2.2;branch=390skdjuw"),
    ("Subject", ""),
    ("NewFangledHeader", "newfangled value continued newfangled value"),
    ("UnknownHeaderWithUnusualValue", ";;,,;;,;"),
    ("Content-Type", "application/sdp"),
    ("Route", "<sip:services.example.com;lr;unknownwith=value;unknown-no-value>"),
    ("Via", "SIP  / 2.0  / TCP     spindle.example.com   ; branch  =   z9hG4bK9ikj8"),
    ("Via", "SIP  /    2.0   / UDP  192.168.255.111   ; branch= z9hG4bK30239"),
    ("Contact", '"Quoted string \\"\\"" <sip:jdrosen@example.com> ; newparam = newvalue ; secondparam ; q = 0.33'),
]


def test_rfc4475_wsinv_unfolds_normalises_and_splits_every_header(sip):
    msg = sip.parse_message(RFC4475["wsinv"])
    assert (msg.method, msg.uri) == ("INVITE", "sip:vivekg@chair-dnrc.example.com;unknownparam")
    assert msg.headers == WSINV_HEADERS
    assert len(msg.body) == 150 and msg.body.startswith(b"v=0\r\n")  # trailing CRLF ignored


INTMETH_METHOD = "!interesting-Method0123456789_*+`.%indeed'~"

# name -> (method or status, Request-URI or reason, {header: all its values}, body length)
VALID = {
    "intmeth": (
        INTMETH_METHOD,
        "sip:1_unusual.URI~(to-be!sure)&isn't+it$/crazy?,/;;*:&it+has=1,weird!*pas$wo~d_too."
        "(doesn't-it)@example.com",
        {
            "To": ['"BEL:\\\x07 NUL:\\\x00 DEL:\\\x7f" <sip:1_unusual.URI~(to-be!sure)&isn\'t+it$/crazy?,/;;*@example.com>'],
            "Call-ID": ["intmeth.word%ZK-!.*_+'@word`~)(><:\\/\"][?}{"],
            "CSeq": [f"139122385 {INTMETH_METHOD}"],
            "extensionHeader-!.%*+_`'~": ["\ufeff大停電"],
            "Via": ["SIP/2.0/TCP host1.example.com;branch=z9hG4bK-.!%66*_+`'~"],
        },
        0,
    ),
    "esc01": (
        "INVITE", "sip:sips%3Auser%40example.com@example.net",
        {
            "Call-ID": ["esc01.239409asdfakjkn23onasd0-3234"],
            "Content-Type": ["application/sdp"],
            "Contact": ["<sip:cal%6Cer@host5.example.net;%6C%72;n%61me=v%61lue%25%34%31>"],
        },
        150,
    ),
    "escnull": (
        "REGISTER", "sip:example.com",
        {
            "To": ["sip:null-%00-null@example.com"],
            "Contact": ["<sip:%00@host5.example.com>", "<sip:%00%00@host5.example.com>"],
            "Content-Length": ["0"],
        },
        0,
    ),
    "esc02": (
        "RE%47IST%45R", "sip:registrar.example.com",
        {
            "Contact": ["<sip:alias1@host1.example.com>", "<sip:alias3@host3.example.com>"],
            "C%6Fntact": ["<sip:alias2@host2.example.com>"],  # unknown name, kept as sent
            "To": ['"%Z%45" <sip:resource@example.com>'],
        },
        0,
    ),
    "lwsdisp": ("OPTIONS", "sip:user@example.com", {"From": ["caller<sip:caller@example.com>;tag=323"]}, 0),
    "longreq": (
        "INVITE", "sip:user@example.com",
        {
            "Via": [f"SIP/2.0/TCP sip{i}.example.com" for i in range(33, 0, -1)]
            + ["SIP/2.0/TCP host.example.com;received=192.0.2.5;branch=very" + "long" * 50 + "branchvalue"],
            "Call-ID": ["longreq.one" + "really" * 20 + "longcallid"],
        },
        150,
    ),
    # The INVITE after the REGISTER's empty body is extra octets in the datagram: ignored.
    "dblreq": ("REGISTER", "sip:example.com", {"Call-ID": ["dblreq.0ha0isndaksdj99sdfafnl3lk233412"]}, 0),
    "semiuri": (
        "OPTIONS", "sip:user;par=u%40example.net@example.com",
        {
            "Accept": [
                "application/sdp", "application/pkcs7-mime", "multipart/mixed",
                "multipart/signed", "message/sip", "message/sipfrag",
            ],
        },
        0,
    ),
    "transports": (
        "OPTIONS", "sip:user@example.com",
        {
            "Via": [
                "SIP/2.0/UDP t1.example.com;branch=z9hG4bKkdjuw",
                "SIP/2.0/SCTP t2.example.com;branch=z9hG4bKklasjdhf",
                "SIP/2.0/TLS t3.example.com;branch=z9hG4bK2980unddj",
                "SIP/2.0/UNKNOWN t4.example.com;branch=z9hG4bKasd0f3en",
                "SIP/2.0/TCP t5.example.com;branch=z9hG4bK0a9idfnee",
            ],
            "Call-ID": ["transports.kijh4akdnaqjkwendsasfdj"],
        },
        0,
    ),
    "mpart01": (
        "MESSAGE", "sip:kumiko@example.org",
        {
            "Content-Type": ["multipart/mixed;boundary=7a9cbec02ceef655"],
            "Content-Transfer-Encoding": ["binary"],
            "Date": ["Sat, 15 Oct 2005 04:44:56 GMT"],
        },
        553,
    ),
    "unreason": (200, "= 2**3 * 5**2 но сто девяносто девять - простое", {"CSeq": ["35 INVITE"]}, 154),
    "noreason": (100, "", {"To": ["<sip:user@example.edu>;tag=902jndnke3"]}, 0),
}


@pytest.mark.parametrize("name", sorted(VALID))
def test_rfc4475_valid_message_parses(sip, name):
    first, second, expected_headers, body_length = VALID[name]
    msg = sip.parse_message(RFC4475[name])
    if isinstance(first, int):
        assert (msg.is_request, msg.status, msg.reason) == (False, first, second)
    else:
        assert (msg.is_request, msg.method, msg.uri) == (True, first, second)
    for header, expected in expected_headers.items():
        assert values(msg, header) == expected
    assert len(msg.body) == body_length


def test_rfc4475_mpart01_body_is_the_exact_binary_multipart(sip):
    body = sip.parse_message(RFC4475["mpart01"]).body
    assert body.startswith(b"--7a9cbec02ceef655\r\n") and body.endswith(b"--7a9cbec02ceef655--\r\n")
    assert b"\x30\x82\x01\x52" in body


# --------------------------------------------------------------------------------------
# RFC 4475 §3.1.2 (and §3.3) messages rejected at the message level
# --------------------------------------------------------------------------------------

INVALID = {
    "badinv01": (400, "empty element in Via header field value"),
    "clerr": (400, "Content-Length 9999 exceeds the 154 bytes of body received"),
    "ncl": (400, "Content-Length '-999' is not a decimal number"),
    "scalar02": (400, "CSeq number '36893488147419103232' is not below 2**31"),
    "scalarlg": (400, "CSeq number '9292394834772304023312' is not below 2**31"),
    "quotbal": (400, "unterminated quoted string in To header field value"),
    "ltgtruri": (400, "Request-URI must not be enclosed in <>"),
    "lwsruri": (400, "request line has 4 elements"),
    "lwsstart": (400, "request line elements must be separated by exactly one SP"),
    "trws": (400, "request line ends with whitespace"),
    "regbadct": (400, "'?' outside <...> in Contact header field value"),
    "badaspec": (400, "whitespace inside <...> in To header field value"),
    "baddn": (400, "unquoted ',' in From header field value"),
    "badvers": (505, "unsupported SIP version 'SIP/7.0'"),
    "mismatch01": (400, "CSeq method 'INVITE' does not match request method 'OPTIONS'"),
    "mismatch02": (400, "CSeq method 'INVITE' does not match request method 'NEWMETHOD'"),
    "bigcode": (400, "status code '4294967301' is not 3 digits"),
    # §3.3 messages whose defect is visible at the message level
    "insuf": (400, "missing required header field(s): To, From, Call-ID"),
    "multi01": (400, "duplicate CSeq header fields with different values ('5 INVITE' and '59 INVITE')"),
    "mcl01": (400, "Content-Length appears twice with different values (13 and 5)"),
}


@pytest.mark.parametrize("name", sorted(INVALID))
def test_rfc4475_invalid_message_is_rejected_with_a_precise_reason(sip, name):
    status, reason = INVALID[name]
    raises(sip, RFC4475[name], reason, status)


# Well-formed at the message level; the named layer must reject or handle them.
HIGHER_LAYER = {
    "escruri": "URI parser: a SIP Request-URI must not carry headers (?Route=...); "
    "'?' is legal in other schemes and in the user part, so the scanner cannot tell",
    "baddate": "Date header parser: the time zone must be GMT",
    "badbranch": "transaction layer: a branch of only the magic cookie identifies no transaction",
    "unkscm": "proxy/UA core: unknown Request-URI scheme -> 416",
    "novelsc": "proxy/UA core: known but atypical scheme (soap.beep) -> 416 or forward",
    "unksm2": "registrar: unknown URI schemes in To/From/Contact",
    "bext01": "UA/proxy core: Require/Proxy-Require with unknown options -> 420",
    "invut": "UA core: unknown Content-Type -> 415",
    "regaut01": "registrar: unknown Authorization scheme -> 401",
    "bcast": "transaction layer: a response Via with a broadcast address is not answered there",
    "zeromf": "proxy: Max-Forwards 0 -> 483 (OPTIONS may be answered by the UA)",
    "cparam01": "registrar: the unknownparam is a Contact header parameter",
    "cparam02": "registrar: the unknownparam is a URI parameter",
    "regescrt": "registrar: escaped headers in a bound Contact URI",
    "sdp01": "UA core: Accept without application/sdp for an INVITE with SDP -> 415",
    "inv2543": "UA core: RFC 2543 INVITE without Max-Forwards or branch must be accepted",
}


@pytest.mark.parametrize("name", sorted(HIGHER_LAYER))
def test_rfc4475_message_left_to_a_higher_layer_parses(sip, name):
    msg = sip.parse_message(RFC4475[name])
    assert len(values(msg, "Call-ID")) == 1 and len(values(msg, "CSeq")) == 1


def test_rfc4475_every_vector_is_classified():
    assert set(RFC4475) == {"wsinv", *VALID, *INVALID, *HIGHER_LAYER}


def test_rfc2543_request_without_content_length_takes_the_rest_as_body(sip):
    msg = sip.parse_message(RFC4475["inv2543"])
    assert values(msg, "Max-Forwards") == [] and msg.body.endswith(b"RTP/AVP 0\r\n")


# --------------------------------------------------------------------------------------
# Header names and values
# --------------------------------------------------------------------------------------

COMPACT = {
    "i": "Call-ID", "m": "Contact", "e": "Content-Encoding", "l": "Content-Length",
    "c": "Content-Type", "f": "From", "s": "Subject", "k": "Supported", "t": "To",
    "v": "Via", "o": "Event", "r": "Refer-To", "b": "Referred-By", "u": "Allow-Events",
    "a": "Accept-Contact", "j": "Reject-Contact", "d": "Request-Disposition",
    "x": "Session-Expires", "y": "Identity", "n": "Identity-Info",
}  # fmt: skip


REQUIRED_LONG = {"t": "To", "f": "From", "i": "Call-ID", "v": "Via"}


@pytest.mark.parametrize("short", sorted(COMPACT))
def test_compact_header_name_expands_in_either_case(sip, short):
    for sent in (short, short.upper()):
        if short in REQUIRED_LONG:  # send the request's own required header in compact form
            long_form = REQUIRED_LONG[short]
            data = request().replace(f"\r\n{long_form}:".encode(), f"\r\n{sent}:".encode())
            assert [name for name, _ in sip.parse_message(data).headers].count(long_form) == 1
        else:
            value = "0" if short == "l" else "<sip:x@example.com>" if short == "m" else "token"
            assert (COMPACT[short], value) in sip.parse_message(request(f"{sent}: {value}")).headers


@pytest.mark.parametrize(
    ("sent", "canonical"),
    [("call-id", "Call-ID"), ("CSEQ", "CSeq"), ("www-authenticate", "WWW-Authenticate"),
     ("max-FORWARDS", "Max-Forwards"), ("record-route", "Record-Route"),
     ("content-length", "Content-Length"), ("MIME-version", "MIME-Version"),
     ("rack", "RAck"), ("min-se", "Min-SE"), ("sip-etag", "SIP-ETag")],
)  # fmt: skip
def test_known_header_name_gets_its_canonical_spelling(sip, sent, canonical):
    if canonical in ("Call-ID", "CSeq"):  # already in the request: rename it
        data = request().replace(f"\r\n{canonical}:".encode(), f"\r\n{sent}:".encode())
    else:
        value = "<sip:p@example.com;lr>" if canonical == "Record-Route" else "0"
        data = request(f"{sent}: {value}")
    assert [name for name, _ in sip.parse_message(data).headers].count(canonical) == 1


def test_unknown_header_name_is_kept_as_sent(sip):
    msg = sip.parse_message(request("X-CaSe-KePt: yes", "p-custom : spaced"))
    assert ("X-CaSe-KePt", "yes") in msg.headers and ("p-custom", "spaced") in msg.headers


def test_folded_value_is_unfolded_into_one_space(sip):
    data = request("Subject: first\r\n \t second  \r\n\tthird", "X-Empty-Start:\r\n   value")
    msg = sip.parse_message(data)
    assert values(msg, "Subject") == ["first second third"]
    assert values(msg, "X-Empty-Start") == ["value"]


def test_inner_whitespace_of_a_value_is_preserved(sip):
    msg = sip.parse_message(request("Subject:  \t lunch \t at  noon \t "))
    assert values(msg, "Subject") == ["lunch \t at  noon"]


def test_bare_lf_line_ends_are_accepted(sip):
    crlf = sip.parse_message(request("Subject: a\r\n b", body="hello\r\n"))
    lf = sip.parse_message(request("Subject: a\n b", body="hello\r\n", eol="\n"))
    assert (lf.headers, lf.body) == (crlf.headers, crlf.body)


def test_leading_crlf_before_the_start_line_is_skipped(sip):
    assert fields(sip.parse_message(b"\r\n\r\n" + INVITE)) == fields(sip.parse_message(INVITE))


def test_list_header_is_split_outside_quotes_and_angle_brackets(sip):
    data = request(
        'Contact: "Doe, John \\"JD\\"" <sip:jd@example.com;x=a,b>;q=0.5 ,<sip:b@example.com>',
        "Allow: INVITE,ACK , CANCEL",
        'Warning: 399 example.com "busy, really", 307 isi.edu "Session parameter \'foo\'"',
        "Supported:",
    )
    msg = sip.parse_message(data)
    assert values(msg, "Contact") == [
        '"Doe, John \\"JD\\"" <sip:jd@example.com;x=a,b>;q=0.5',
        "<sip:b@example.com>",
    ]
    assert values(msg, "Allow") == ["INVITE", "ACK", "CANCEL"]
    assert values(msg, "Warning") == [
        '399 example.com "busy, really"',
        "307 isi.edu \"Session parameter 'foo'\"",
    ]
    assert values(msg, "Supported") == [""]


def test_single_value_headers_are_never_split(sip):
    data = request(
        'Authorization: Digest username="alice", realm="example.com", nonce="a,b"',
        'WWW-Authenticate: Digest realm="x", qop="auth,auth-int"',
        "Date: Sat, 13 Nov 2010 23:29:00 GMT",
        "Subject: one, two",
    ).replace(b"From: Alice", b'From: "Smith, Alice"')
    msg = sip.parse_message(data)
    assert len(values(msg, "Authorization")) == 1 and values(msg, "Subject") == ["one, two"]
    assert values(msg, "Date") == ["Sat, 13 Nov 2010 23:29:00 GMT"]
    assert values(msg, "From") == ['"Smith, Alice" <sip:alice@example.com>;tag=9fxced76sl']
    assert values(msg, "WWW-Authenticate") == ['Digest realm="x", qop="auth,auth-int"']


def test_contact_star_is_one_value(sip):
    msg = sip.parse_message(request("Contact: *", "Expires: 0"))
    assert values(msg, "Contact") == ["*"]


def test_empty_element_in_a_list_is_rejected(sip):
    raises(sip, request("Allow: INVITE, ACK,"), "empty element in Allow header field value")


@pytest.mark.parametrize(
    ("header", "reason"),
    [("Route: <sip:p1@example.com;lr", "unterminated '<' in Route"),
     ("Record-Route: sip:p1@example.com>", "unbalanced '>' in Record-Route"),
     ('Contact: "Bob <sip:bob@example.com>', "unterminated quoted string in Contact"),
     ("Contact: <sip:a@example.com<sip:b@example.com>>", "unexpected '<' inside <...> in Contact")],
)  # fmt: skip
def test_unbalanced_address_header_is_rejected(sip, header, reason):
    raises(sip, request(header), reason)


def test_header_line_errors_are_reported(sip):
    raises(sip, request("Foobar roobar"), "header line without ':' ('Foobar roobar')")
    raises(sip, request(": value"), "header field with an empty name")
    raises(sip, request("Bad Name: value"), "header field name 'Bad Name' is not a token")
    raises(sip, b"OPTIONS sip:a@b SIP/2.0\r\n continued\r\n\r\n", "continuation line before the first")


def test_missing_empty_line_after_the_headers_is_rejected(sip):
    raises(sip, request()[:-2], "header section is not terminated by an empty line")


def test_identical_duplicates_are_accepted_but_differing_ones_rejected(sip):
    msg = sip.parse_message(request("Content-Length: 0", "l: 00", "Max-Forwards: 70", "Max-Forwards: 70"))
    assert values(msg, "Content-Length") == ["0", "00"]
    raises(sip, request("Call-ID: other@example.com"), "duplicate Call-ID header fields")
    raises(sip, request("Max-Forwards: 70", "Max-Forwards: 69"), "duplicate Max-Forwards")


# --------------------------------------------------------------------------------------
# Start line and CSeq
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("start", "reason", "status"),
    [("garbage", "start line 'garbage' is neither a request nor a status line", 400),
     (" OPTIONS sip:a@b SIP/2.0", "start line begins with whitespace", 400),
     ("OPTIONS\tsip:bob@example.com SIP/2.0", "separated by exactly one SP", 400),
     ("OPT(IONS sip:bob@example.com SIP/2.0", "method 'OPT(IONS' is not a token", 400),
     ("OPTIONS bob@example.com SIP/2.0", "Request-URI 'bob@example.com' has no scheme", 400),
     ("OPTIONS 1sip:bob@example.com SIP/2.0", "has no scheme", 400),
     ("OPTIONS sip:bob@exa\x01mple.com SIP/2.0", "control or non-ASCII octet", 400),
     ("OPTIONS sip:bob@example.com SIP/3.0", "unsupported SIP version 'SIP/3.0'", 505),
     ("OPTIONS sip:bob@example.com HTTP/1.1", "malformed SIP version 'HTTP/1.1'", 400),
     ("OPTIONS sip:bob@example.com", "request line has 2 elements", 400)],
)  # fmt: skip
def test_bad_request_line_is_rejected(sip, start, reason, status):
    raises(sip, request(start=start), reason, status)


@pytest.mark.parametrize(
    ("start", "reason", "status"),
    [("SIP/2.0 99 Too Low", "status code '99' is not 3 digits", 400),
     ("SIP/2.0 099 Too Low", "status code 99 is outside 100-699", 400),
     ("SIP/2.0 700 Too High", "status code 700 is outside 100-699", 400),
     ("SIP/2.0 2x0 OK", "status code '2x0' is not 3 digits", 400),
     ("SIP/2.0", "status line has no status code", 400),
     ("SIP/2.1 200 OK", "unsupported SIP version 'SIP/2.1'", 505),
     ("SIP/two 200 OK", "malformed SIP version 'SIP/two'", 400)],
)  # fmt: skip
def test_bad_status_line_is_rejected(sip, start, reason, status):
    raises(sip, request(start=start), reason, status)


def test_status_line_fields(sip):
    msg = sip.parse_message(request(start="SIP/2.0 183 Session  Progress ", cseq="1 INVITE"))
    assert (msg.is_request, msg.method, msg.uri, msg.status) == (False, "", "", 183)
    assert msg.reason == "Session  Progress "
    no_reason = sip.parse_message(request(start="SIP/2.0 200", cseq="1 INVITE"))
    assert (no_reason.status, no_reason.reason) == (200, "")


@pytest.mark.parametrize(
    ("cseq", "reason"),
    [("INVITE", "CSeq 'INVITE' is not 'number method'"),
     ("1", "CSeq '1' is not 'number method'"),
     ("1INVITE", "CSeq '1INVITE' is not 'number method'"),
     ("1 INV/ITE", "CSeq method 'INV/ITE' is not a token"),
     ("2147483648 OPTIONS", "CSeq number '2147483648' is not below 2**31"),
     ("1 options", "CSeq method 'options' does not match request method 'OPTIONS'")],
)  # fmt: skip
def test_bad_cseq_is_rejected(sip, cseq, reason):
    raises(sip, request(cseq=cseq), reason)


def test_cseq_accepts_leading_zeros_lws_and_the_largest_number(sip):
    for cseq in ("0002147483647 OPTIONS", "7 \t OPTIONS", "0 OPTIONS"):
        assert values(sip.parse_message(request(cseq=cseq)), "CSeq") == [cseq]


def test_response_cseq_may_name_any_method(sip):
    msg = sip.parse_message(request(start="SIP/2.0 200 OK", cseq="5 BYE"))
    assert values(msg, "CSeq") == ["5 BYE"]


def test_empty_message_is_rejected(sip):
    raises(sip, b"", "empty message")
    raises(sip, b"\r\n\r\n", "empty message")


# --------------------------------------------------------------------------------------
# Body and sizes
# --------------------------------------------------------------------------------------


def test_body_is_exactly_content_length_and_extra_datagram_octets_are_ignored(sip):
    msg = sip.parse_message(request("Content-Length: 5") + b"hello, trailing junk")
    assert msg.body == b"hello"


def test_body_without_content_length_is_the_rest_of_the_datagram(sip):
    assert sip.parse_message(request() + b"\x00binary\r\n").body == b"\x00binary\r\n"


def test_content_length_larger_than_the_body_is_rejected(sip):
    raises(sip, request("Content-Length: 6") + b"hello", "Content-Length 6 exceeds the 5 bytes of body received")


def test_content_length_must_be_digits(sip):
    for bad in ("+5", "5 5", "0x10", "٣"):
        raises(sip, request(f"Content-Length: {bad}"), "is not a decimal number")


def test_oversized_message_and_content_length_give_413(sip):
    raises(sip, INVITE, f"message of {len(INVITE)} bytes exceeds max_size 100", 413, max_size=100)
    raises(sip, request("Content-Length: 70000"), "Content-Length '70000' exceeds max_size 65535", 413)
    raises(sip, request("Content-Length: " + "9" * 5000), "exceeds max_size", 413)


# --------------------------------------------------------------------------------------
# message_length (stream framing)
# --------------------------------------------------------------------------------------


def test_message_length_of_a_complete_message(sip):
    assert sip.message_length(INVITE) == len(INVITE)


def test_message_length_is_minus_one_until_the_header_section_is_complete(sip):
    head_end = INVITE.index(b"\r\n\r\n") + 4
    for cut in (0, 1, 10, head_end - 2, head_end - 1):
        assert sip.message_length(INVITE[:cut]) == -1
    assert sip.message_length(INVITE[:head_end]) == len(INVITE)  # body still to come


def test_message_length_finds_the_first_of_pipelined_messages(sip):
    bye = request(start="BYE sip:bob@example.com SIP/2.0", cseq="2 BYE", body="x")
    stream = bytearray(INVITE + bye + INVITE[:40])
    first = sip.message_length(stream)
    assert first == len(INVITE)
    del stream[:first]
    assert sip.message_length(stream) == len(bye)
    del stream[: len(bye)]
    assert sip.message_length(stream) == -1


def test_message_length_counts_keepalives_only_before_a_message(sip):
    assert sip.message_length(b"\r\n\r\n") == -1
    assert sip.message_length(b"\r\n\r\n\r\n") == -1
    assert sip.message_length(b"\r\n\r\n" + INVITE) == 4 + len(INVITE)
    assert sip.message_length(b"\r\n\r\n" + INVITE[:30]) == -1


def test_message_length_requires_content_length_on_streams(sip):
    with pytest.raises(SipParseError, match="Content-Length is mandatory on stream transports"):
        sip.message_length(request())


def test_message_length_accepts_compact_and_folded_content_length_and_bare_lf(sip):
    data = request("l:\r\n 3", eol="\r\n") + b"abc"
    assert sip.message_length(data) == len(data)
    data = request("content-length: 3", eol="\n") + b"abc"
    assert sip.message_length(data) == len(data)


def test_message_length_rejects_bad_and_conflicting_content_length(sip):
    with pytest.raises(SipParseError, match="is not a decimal number"):
        sip.message_length(request("Content-Length: -1"))
    with pytest.raises(SipParseError, match=r"appears twice with different values \(1 and 2\)"):
        sip.message_length(request("Content-Length: 1", "l: 2"))


def test_message_length_enforces_max_size_with_413(sip):
    with pytest.raises(SipParseError) as caught:
        sip.message_length(b"OPTIONS sip:a@b SIP/2.0\r\nX: " + b"a" * 200, max_size=100)
    assert caught.value.status == 413
    with pytest.raises(SipParseError) as caught:
        sip.message_length(request("Content-Length: 90"), max_size=200)
    assert caught.value.status == 413


# --------------------------------------------------------------------------------------
# Property tests
# --------------------------------------------------------------------------------------

SEEDS = [*RFC4475.values(), INVITE, request(start="SIP/2.0 200 OK", cseq="314159 INVITE", body="ok")]
PUNCTUATION = st.sampled_from([b"\r\n", b"\n", b" ", b"\t", b":", b";", b",", b"<", b">", b'"', b"\\", b"?", b"*", b"0", b"9", b"\r\n "])


@st.composite
def mutated_messages(draw) -> bytes:
    data = bytearray(draw(st.sampled_from(SEEDS)))
    for _ in range(draw(st.integers(1, 4))):
        pos = draw(st.integers(0, len(data)))
        chunk = draw(st.binary(max_size=4) | PUNCTUATION)
        op = draw(st.sampled_from(["insert", "delete", "replace", "truncate"]))
        if op == "insert":
            data[pos:pos] = chunk
        elif op == "delete":
            del data[pos : pos + draw(st.integers(1, 8))]
        elif op == "replace":
            data[pos : pos + len(chunk)] = chunk
        else:
            del data[pos:]
    return bytes(data)


ANY_INPUT = st.binary(max_size=300) | mutated_messages()


def outcome(parse, data: bytes):
    try:
        result = parse(data)
    except SipParseError as error:
        return ("error", error.status, error.reason)
    return ("ok", fields(result) if not isinstance(result, int) else result)


@settings(max_examples=300, deadline=None)
@given(data=ANY_INPUT)
def test_arbitrary_bytes_raise_nothing_but_sip_parse_error(sip, data):
    outcome(sip.parse_message, data)
    outcome(sip.message_length, data)


TOKEN_CHARS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-.!%*_+`'~"
TOKENS = st.text(TOKEN_CHARS, min_size=1, max_size=12)
SAFE_TEXT = st.text(
    st.characters(blacklist_categories=("Cc", "Cs"), blacklist_characters='"\\<>,?'), max_size=20
)
HOSTS = st.from_regex(r"[a-z][a-z0-9-]{0,10}(\.[a-z]{2,5}){1,2}", fullmatch=True)


@st.composite
def addresses(draw) -> str:
    uri = f"sip:{draw(TOKENS)}@{draw(HOSTS)}"
    display = draw(st.sampled_from(["", "plain", "quoted"]))
    if display == "quoted":
        name = draw(SAFE_TEXT) + draw(st.sampled_from(["", ", Jr.", ' \\"x\\"']))
        value = f'"{name}" <{uri}>'
    elif display == "plain":
        value = f"{draw(TOKENS)} <{uri}>"
    else:
        value = f"<{uri}>" if draw(st.booleans()) else uri
    if draw(st.booleans()):
        value += f";tag={draw(TOKENS)}"
    return value


@st.composite
def valid_messages(draw) -> bytes:
    """A valid message sent with random compact forms, case, folding and line ends."""
    method = draw(st.sampled_from(["INVITE", "ACK", "BYE", "REGISTER"]) | TOKENS)
    if draw(st.booleans()):
        start = f"{method} sip:{draw(TOKENS)}@{draw(HOSTS)} SIP/2.0"
    else:
        start = f"SIP/2.0 {draw(st.integers(100, 699))} {draw(SAFE_TEXT)}"
    headers = [
        ("Via", ", ".join(f"SIP/2.0/UDP {h};branch=z9hG4bK{b}" for h, b in draw(
            st.lists(st.tuples(HOSTS, TOKENS), min_size=1, max_size=3)))),
        ("To", draw(addresses())),
        ("From", draw(addresses())),
        ("Call-ID", draw(TOKENS) + "@" + draw(HOSTS)),
        ("CSeq", f"{draw(st.integers(0, 2**31 - 1))} {method}"),
    ]
    headers += draw(st.lists(
        st.tuples(st.sampled_from(["Contact", "Route"]), st.lists(addresses(), min_size=1, max_size=3).map(", ".join))
        | st.tuples(st.sampled_from(["Supported", "Allow", "Require"]), st.lists(TOKENS, min_size=1, max_size=4).map(",".join))
        | st.tuples(st.sampled_from(["Subject", "User-Agent", "X-Note", "P-Custom"]), SAFE_TEXT),
        max_size=5,
    ))  # fmt: skip
    headers = draw(st.permutations(headers))
    body = draw(st.binary(max_size=40))
    headers.append(("Content-Length", str(len(body))))
    short = {v: k for k, v in COMPACT.items()}
    eol = draw(st.sampled_from(["\r\n", "\n"]))
    lines = [start]
    for name, value in headers:
        sent = draw(st.sampled_from([name, name.lower(), name.upper(), short.get(name, name)]))
        if " " in value and draw(st.booleans()):
            value = value.replace(" ", eol + draw(st.sampled_from([" ", "\t", "   "])), 1)
        lines.append(f"{sent}{draw(st.sampled_from([':', ': ', ' :  ']))}{value}")
    return (eol.join(lines) + eol + eol).encode() + body


def serialise(msg) -> bytes:
    """The test's own canonical writer: one line per header entry, CRLF."""
    start = (
        f"{msg.method} {msg.uri} {msg.version}" if msg.is_request
        else f"{msg.version} {msg.status} {msg.reason}"
    )  # fmt: skip
    lines = [start, *(f"{name}: {value}" for name, value in msg.headers)]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("utf-8", "surrogateescape") + msg.body


@settings(max_examples=300, deadline=None)
@given(data=valid_messages())
def test_generated_valid_message_round_trips(sip, data):
    first = sip.parse_message(data)
    again = sip.parse_message(serialise(first))
    assert fields(again) == fields(first)
    assert sip.message_length(data + b"OPTIONS") == len(data)


@settings(max_examples=500, deadline=None)
@given(data=ANY_INPUT | valid_messages())
def test_both_implementations_agree_on_every_input(compiled, data):
    assert outcome(compiled.parse_message, data) == outcome(sipparse_py.parse_message, data)
    assert outcome(compiled.message_length, data) == outcome(sipparse_py.message_length, data)


@pytest.mark.parametrize("name", sorted(RFC4475))
def test_both_implementations_agree_on_rfc4475(compiled, name):
    data = RFC4475[name]
    assert outcome(compiled.parse_message, data) == outcome(sipparse_py.parse_message, data)
