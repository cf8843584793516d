# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""SIP message scanner, compiled: the hot-path twin of ``sipparse_py``.

Same rules, same reasons, same results as the pure-Python reference (read that module's
docstring for the rules); the tests hold the two to identical output on every input.
This version scans the bytes with C pointers and ``memchr``, builds no intermediate
line or field objects (only folded values are copied), and decodes each value straight
from the receive buffer.  Hand-written because no maintained Python library parses SIP
at this speed without doing I/O.  The header-name table is shared with the twin.
"""

from cpython.bytearray cimport PyByteArray_AS_STRING, PyByteArray_GET_SIZE
from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize, PyBytes_GET_SIZE
from cpython.list cimport PyList_Append
from cpython.unicode cimport PyUnicode_DecodeASCII, PyUnicode_DecodeUTF8
from libc.string cimport memchr, memcmp

from cython_ext.sipparse.errors import SipParseError, describe
from cython_ext.sipparse.sipparse_py import _HEADER_TABLE, _REQUIRED

__all__ = ["IMPLEMENTATION", "ParsedMessage", "SipParseError", "message_length", "parse_message"]

IMPLEMENTATION = "cython"

# Header flags: the twin's (low byte) plus this module's slot and required bits.
cdef enum:
    F_LIST = 1
    F_ADDRESS = 2
    F_SINGLE_ADDRESS = 4
    F_SINGLE = 8
    SLOT_SHIFT = 8  # 3 bits: 1 + index into the single-value slots below
    REQUIRED_SHIFT = 12  # 5 bits: one per required header, in _REQUIRED order

cdef enum:
    SLOT_CONTENT_LENGTH = 0
    SLOT_CSEQ = 1
    N_SLOTS = 8
    MAX_NAME = 32  # longer names are never in the table

cdef enum:
    C_TOKEN = 1
    C_DIGIT = 2
    C_ALPHA = 4
    C_SCHEME = 8

cdef unsigned char CLASS[256]
cdef unsigned char LOWER[256]


cdef void _init_classes():
    cdef int c
    for c in range(256):
        CLASS[c] = 0
        LOWER[c] = c + 32 if 65 <= c <= 90 else c
    for c in b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz":
        CLASS[c] |= C_TOKEN | C_ALPHA | C_SCHEME
    for c in b"0123456789":
        CLASS[c] |= C_TOKEN | C_DIGIT | C_SCHEME
    for c in b"-.!%*_+`'~":
        CLASS[c] |= C_TOKEN
    for c in b"+-.":
        CLASS[c] |= C_SCHEME


_init_classes()


def _build_table():
    slots = {"Content-Length": SLOT_CONTENT_LENGTH, "CSeq": SLOT_CSEQ}
    for name in ("Call-ID", "From", "To", "Max-Forwards", "Content-Type"):
        slots[name] = len(slots)
    table = {}
    for key, (name, flags) in _HEADER_TABLE.items():
        if flags & F_SINGLE:
            flags |= (slots[name] + 1) << SLOT_SHIFT
        if name in _REQUIRED:
            flags |= 1 << (REQUIRED_SHIFT + _REQUIRED.index(name))
        table[key] = (name, flags)
    assert len(slots) <= N_SLOTS
    return table


cdef dict TABLE = _build_table()
cdef int ALL_REQUIRED = ((1 << len(_REQUIRED)) - 1) << REQUIRED_SHIFT
cdef tuple REQUIRED = tuple(_REQUIRED)
cdef str SIP_2_0 = "SIP/2.0"
cdef str EMPTY = ""


cdef class ParsedMessage:
    """One SIP message: start line, header fields in message order, body."""

    cdef readonly bint is_request
    cdef readonly str method
    cdef readonly str uri
    cdef readonly int status
    cdef readonly str reason
    cdef readonly str version
    cdef readonly list headers
    cdef readonly bytes body

    def __init__(self, bint is_request, str method, str uri, int status, str reason,
                 str version, list headers, bytes body):
        self.is_request = is_request
        self.method = method
        self.uri = uri
        self.status = status
        self.reason = reason
        self.version = version
        self.headers = headers
        self.body = body

    def __repr__(self):
        first = f"{self.method} {self.uri}" if self.is_request else f"{self.status} {self.reason}"
        return f"<ParsedMessage {first!r}, {len(self.headers)} headers, {len(self.body)} body bytes>"


# -- small scanners ----------------------------------------------------------------------

cdef inline bint is_wsp(unsigned char c) noexcept:
    return c == 32 or c == 9


cdef inline bytes span(const unsigned char* p, Py_ssize_t start, Py_ssize_t end):
    return PyBytes_FromStringAndSize(<const char*>p + start, end - start)


cdef inline str decode_utf8(const unsigned char* p, Py_ssize_t start, Py_ssize_t end):
    return PyUnicode_DecodeUTF8(<const char*>p + start, end - start, "surrogateescape")


cdef inline str decode_ascii(const unsigned char* p, Py_ssize_t start, Py_ssize_t end):
    return PyUnicode_DecodeASCII(<const char*>p + start, end - start, NULL)


cdef inline Py_ssize_t find(const unsigned char* p, unsigned char c, Py_ssize_t start,
                            Py_ssize_t end) noexcept:
    if start >= end:
        return -1
    cdef const void* hit = memchr(p + start, c, end - start)
    return -1 if hit == NULL else <const unsigned char*>hit - p


cdef inline bint is_token(const unsigned char* p, Py_ssize_t start, Py_ssize_t end) noexcept:
    cdef Py_ssize_t i
    if start >= end:
        return False
    for i in range(start, end):
        if not CLASS[p[i]] & C_TOKEN:
            return False
    return True


cdef inline bint lower_equals(const unsigned char* p, Py_ssize_t start, Py_ssize_t end,
                              const char* word, Py_ssize_t length) noexcept:
    """Whether p[start:end], lower-cased, is ``word`` (given in lower case)."""
    cdef Py_ssize_t i
    if end - start != length:
        return False
    for i in range(length):
        if LOWER[p[start + i]] != <unsigned char>word[i]:
            return False
    return True


cdef inline bint all_digits(const unsigned char* p, Py_ssize_t start, Py_ssize_t end) noexcept:
    cdef Py_ssize_t i
    for i in range(start, end):
        if not CLASS[p[i]] & C_DIGIT:
            return False
    return True


cdef inline Py_ssize_t skip_keepalives(const unsigned char* p, Py_ssize_t n) noexcept:
    cdef Py_ssize_t start = 0
    while start < n and (p[start] == 13 or p[start] == 10):
        start += 1
    return start


cdef Py_ssize_t find_header_end(const unsigned char* p, Py_ssize_t start, Py_ssize_t n,
                                Py_ssize_t* body_start) noexcept:
    """Index of the LF ending the last header line (body start in *body_start), or -1."""
    cdef Py_ssize_t lf = find(p, 10, start, n)
    while lf >= 0:
        if lf + 1 < n and p[lf + 1] == 10:
            body_start[0] = lf + 2
            return lf
        if lf + 2 < n and p[lf + 1] == 13 and p[lf + 2] == 10:
            body_start[0] = lf + 3
            return lf
        lf = find(p, 10, lf + 1, n)
    return -1


cdef Py_ssize_t parse_digits(const unsigned char* p, Py_ssize_t start, Py_ssize_t end,
                             Py_ssize_t* digits_start) noexcept:
    """Value of a digit run without its leading zeros; -1 if it has more than 10 digits."""
    while start < end - 1 and p[start] == 48:
        start += 1
    digits_start[0] = start
    if end - start > 10:
        return -1
    cdef long long value = 0
    cdef Py_ssize_t i
    for i in range(start, end):
        value = value * 10 + (p[i] - 48)
    return <Py_ssize_t>value


# -- start line --------------------------------------------------------------------------

cdef int check_version(const unsigned char* p, Py_ssize_t start, Py_ssize_t end) except -1:
    if end - start == 7 and memcmp(p + start, b"SIP/2.0", 7) == 0:
        return 0
    cdef Py_ssize_t dot = find(p, 46, start + 4, end)  # '.'
    if (end - start >= 4 and memcmp(p + start, b"SIP/", 4) == 0 and dot > start + 4
            and dot + 1 < end and all_digits(p, start + 4, dot) and all_digits(p, dot + 1, end)):
        raise SipParseError(f"unsupported SIP version {describe(span(p, start, end))}", 505)
    raise SipParseError(f"malformed SIP version {describe(span(p, start, end))}")


cdef int parse_request_line(ParsedMessage msg, const unsigned char* p, Py_ssize_t start,
                            Py_ssize_t end) except -1:
    """``Method SP Request-URI SP SIP-Version`` with single spaces (RFC 3261 §7.1)."""
    cdef Py_ssize_t i, spaces = 0, sp1 = -1, sp2 = -1, colon
    if is_wsp(p[start]):
        raise SipParseError("start line begins with whitespace")
    if is_wsp(p[end - 1]):
        raise SipParseError("request line ends with whitespace")
    for i in range(start, end):
        if p[i] == 9 or (p[i] == 32 and p[i + 1] == 32):  # no SP ends the line: p[i+1] is safe
            raise SipParseError("request line elements must be separated by exactly one SP")
    for i in range(start, end):
        if p[i] == 32:
            spaces += 1
            if spaces == 1:
                sp1 = i
            elif spaces == 2:
                sp2 = i
    if spaces == 0:
        raise SipParseError(
            f"start line {describe(span(p, start, end))} is neither a request nor a status line")
    if spaces != 2:
        raise SipParseError(
            f"request line has {spaces + 1} elements, expected Method SP Request-URI SP "
            "SIP-Version (whitespace inside the Request-URI?)")
    if not is_token(p, start, sp1):
        raise SipParseError(f"method {describe(span(p, start, sp1))} is not a token")
    check_version(p, sp2 + 1, end)
    if p[sp1 + 1] == 60:  # '<'
        raise SipParseError("Request-URI must not be enclosed in <>")
    for i in range(sp1 + 1, sp2):
        if p[i] < 0x21 or p[i] > 0x7E:
            raise SipParseError("Request-URI contains a control or non-ASCII octet")
    colon = find(p, 58, sp1 + 1, sp2)
    if colon < sp1 + 2 or not CLASS[p[sp1 + 1]] & C_ALPHA:
        raise SipParseError(f"Request-URI {describe(span(p, sp1 + 1, sp2))} has no scheme")
    for i in range(sp1 + 1, colon):
        if not CLASS[p[i]] & C_SCHEME:
            raise SipParseError(f"Request-URI {describe(span(p, sp1 + 1, sp2))} has no scheme")
    msg.is_request = True
    msg.method = decode_ascii(p, start, sp1)
    msg.uri = decode_ascii(p, sp1 + 1, sp2)
    msg.status = 0
    msg.reason = EMPTY
    return 0


cdef int parse_status_line(ParsedMessage msg, const unsigned char* p, Py_ssize_t start,
                           Py_ssize_t end) except -1:
    """``SIP-Version SP Status-Code SP Reason-Phrase`` (RFC 3261 §7.2); reason may be absent."""
    cdef Py_ssize_t sp1 = find(p, 32, start, end), sp2, code_end, status
    check_version(p, start, sp1 if sp1 >= 0 else end)
    if sp1 < 0:
        raise SipParseError("status line has no status code")
    sp2 = find(p, 32, sp1 + 1, end)
    code_end = sp2 if sp2 >= 0 else end
    if code_end - sp1 - 1 != 3 or not all_digits(p, sp1 + 1, code_end):
        raise SipParseError(f"status code {describe(span(p, sp1 + 1, code_end))} is not 3 digits")
    status = (p[sp1 + 1] - 48) * 100 + (p[sp1 + 2] - 48) * 10 + (p[sp1 + 3] - 48)
    if not 100 <= status <= 699:
        raise SipParseError(f"status code {status} is outside 100-699")
    msg.is_request = False
    msg.method = EMPTY
    msg.uri = EMPTY
    msg.status = status
    msg.reason = decode_utf8(p, sp2 + 1, end) if sp2 >= 0 else EMPTY
    return 0


# -- header fields -----------------------------------------------------------------------

cdef struct Line:
    Py_ssize_t start   # first octet of the line
    Py_ssize_t end     # end of its text (before CR LF)
    Py_ssize_t next    # first octet of the following line


cdef inline void read_line(const unsigned char* p, Py_ssize_t pos, Py_ssize_t head_end,
                           Line* line) noexcept:
    cdef Py_ssize_t lf = find(p, 10, pos, head_end)
    if lf < 0:
        lf = head_end
    line.start = pos
    line.next = lf + 1
    line.end = lf - 1 if lf > pos and p[lf - 1] == 13 else lf


cdef bytes unfold(const unsigned char* p, Py_ssize_t vstart, Py_ssize_t vend,
                  Py_ssize_t head_end, Line* line):
    """Join the continuation lines after ``line`` onto its value (rare path)."""
    cdef bytes value = span(p, vstart, vend)
    cdef Py_ssize_t cs, ce
    while line.next < head_end and is_wsp(p[line.next]):
        read_line(p, line.next, head_end, line)
        cs, ce = line.start, line.end
        while cs < ce and is_wsp(p[cs]):
            cs += 1
        while ce > cs and is_wsp(p[ce - 1]):
            ce -= 1
        value = value.rstrip(b" \t") + b" " + span(p, cs, ce)
    return value.strip(b" \t")


cdef class HeaderScan:
    """The per-message state of the header checks."""

    cdef list headers
    cdef const unsigned char* method
    cdef Py_ssize_t method_len
    cdef bint is_request
    cdef Py_ssize_t max_size
    cdef Py_ssize_t content_length
    cdef int seen
    cdef const unsigned char* slot_ptr[N_SLOTS]
    cdef Py_ssize_t slot_len[N_SLOTS]
    cdef list keep  # folded values referenced by slot_ptr

    cdef int field(self, const unsigned char* np, Py_ssize_t nlen,
                   const unsigned char* v, Py_ssize_t vlen) except -1:
        cdef unsigned char lower[MAX_NAME]
        cdef Py_ssize_t i
        cdef int flags = 0, slot
        cdef object entry = None
        cdef str name
        if nlen <= MAX_NAME:
            for i in range(nlen):
                lower[i] = LOWER[np[i]]
            entry = TABLE.get(PyBytes_FromStringAndSize(<char*>lower, nlen))
        if entry is None:
            name = decode_ascii(np, 0, nlen)
        else:
            name = <str>(<tuple>entry)[0]
            flags = (<tuple>entry)[1]
        if flags & F_SINGLE:
            slot = ((flags >> SLOT_SHIFT) & 7) - 1
            if slot == SLOT_CONTENT_LENGTH:
                self.content_length = merge_content_length(
                    self.content_length, v, vlen, self.max_size)
            elif self.slot_ptr[slot] != NULL and (
                    self.slot_len[slot] != vlen or memcmp(self.slot_ptr[slot], v, vlen) != 0):
                raise SipParseError(
                    f"duplicate {name} header fields with different values "
                    f"({describe(span(self.slot_ptr[slot], 0, self.slot_len[slot]))} and "
                    f"{describe(span(v, 0, vlen))})")
            if slot == SLOT_CSEQ:
                self.check_cseq(v, vlen)
            self.slot_ptr[slot] = v
            self.slot_len[slot] = vlen
        self.seen |= flags
        if flags & F_LIST and not (vlen == 1 and v[0] == 42):  # not "*"
            return self.list_elements(name, flags, v, vlen)
        if flags & F_ADDRESS and not (vlen == 1 and v[0] == 42):
            check_address(name, v, 0, vlen, flags & F_SINGLE_ADDRESS)
        PyList_Append(self.headers, (name, decode_utf8(v, 0, vlen)))
        return 0

    cdef int list_elements(self, str name, int flags, const unsigned char* v,
                           Py_ssize_t vlen) except -1:
        cdef Py_ssize_t pos = 0, start, end, count = 0
        cdef bint empty = False
        while pos <= vlen:  # pass 1: count the elements, look for empty ones
            pos = next_element(v, pos, vlen, &start, &end)
            count += 1
            empty = empty or start == end
        if count > 1 and empty:
            raise SipParseError(f"empty element in {name} header field value")
        pos = 0
        while pos <= vlen:
            pos = next_element(v, pos, vlen, &start, &end)
            if flags & F_ADDRESS and not (end - start == 1 and v[start] == 42):
                check_address(name, v, start, end, flags & F_SINGLE_ADDRESS)
            PyList_Append(self.headers, (name, decode_utf8(v, start, end)))
        return 0

    cdef int check_cseq(self, const unsigned char* v, Py_ssize_t vlen) except -1:
        """CSeq = 1*DIGIT LWS Method, number < 2**31, method = request method (§8.1.1.5)."""
        cdef Py_ssize_t digits_end = 0, method_start, number, digits_start
        while digits_end < vlen and CLASS[v[digits_end]] & C_DIGIT:
            digits_end += 1
        method_start = digits_end
        while method_start < vlen and is_wsp(v[method_start]):
            method_start += 1
        if digits_end == 0 or method_start == digits_end or method_start == vlen:
            raise SipParseError(f"CSeq {describe(span(v, 0, vlen))} is not 'number method'")
        if not is_token(v, method_start, vlen):
            raise SipParseError(
                f"CSeq method {describe(span(v, method_start, vlen))} is not a token")
        number = parse_digits(v, 0, digits_end, &digits_start)
        if number < 0 or number >= 2147483648:
            raise SipParseError(
                f"CSeq number {describe(span(v, digits_start, digits_end))} is not below 2**31")
        if self.is_request and (vlen - method_start != self.method_len or memcmp(
                v + method_start, self.method, self.method_len) != 0):
            raise SipParseError(
                f"CSeq method {describe(span(v, method_start, vlen))} does not match request "
                f"method {describe(span(self.method, 0, self.method_len))}")
        return 0


cdef Py_ssize_t merge_content_length(Py_ssize_t previous, const unsigned char* v,
                                     Py_ssize_t vlen, Py_ssize_t max_size) except -2:
    """Content-Length = 1*DIGIT; a second one must agree with the first (RFC 4475 mcl01)."""
    cdef Py_ssize_t digits_start, length
    if vlen == 0 or not all_digits(v, 0, vlen):
        raise SipParseError(f"Content-Length {describe(span(v, 0, vlen))} is not a decimal number")
    length = parse_digits(v, 0, vlen, &digits_start)
    if length < 0 or length > max_size:
        raise SipParseError(
            f"Content-Length {describe(span(v, digits_start, vlen))} exceeds max_size {max_size}",
            413)
    if previous >= 0 and previous != length:
        raise SipParseError(
            f"Content-Length appears twice with different values ({previous} and {length})")
    return length


cdef inline Py_ssize_t next_element(const unsigned char* v, Py_ssize_t pos, Py_ssize_t vlen,
                                    Py_ssize_t* start, Py_ssize_t* end) noexcept:
    """Span of the list element at ``pos`` (stripped) and where the next one starts.

    Commas split only outside quoted strings (with backslash escapes) and outside <...>.
    """
    cdef bint in_quotes = False, in_angle = False
    cdef Py_ssize_t i = pos, s = pos, e
    cdef unsigned char c
    while i < vlen:
        c = v[i]
        if in_quotes:
            if c == 92:
                i += 1
            elif c == 34:
                in_quotes = False
        elif c == 34:
            in_quotes = True
        elif c == 60:
            in_angle = True
        elif c == 62:
            in_angle = False
        elif c == 44 and not in_angle:
            break
        i += 1
    e = i if i < vlen else vlen
    while s < e and is_wsp(v[s]):
        s += 1
    while e > s and is_wsp(v[e - 1]):
        e -= 1
    start[0] = s
    end[0] = e
    return i + 1


cdef int check_address(str name, const unsigned char* v, Py_ssize_t start, Py_ssize_t end,
                       int single) except -1:
    """Message-level checks of a name-addr / addr-spec (see the twin's _check_address)."""
    cdef bint in_quotes = False, in_angle = False
    cdef Py_ssize_t i = start
    cdef unsigned char c
    while i < end:
        c = v[i]
        if in_quotes:
            if c == 92:
                i += 1
            elif c == 34:
                in_quotes = False
        elif in_angle:
            if c == 62:
                in_angle = False
            elif c == 60:
                raise SipParseError(f"unexpected '<' inside <...> in {name} header field value")
            elif is_wsp(c):
                raise SipParseError(f"whitespace inside <...> in {name} header field value")
        elif c == 34:
            in_quotes = True
        elif c == 60:
            in_angle = True
        elif c == 62:
            raise SipParseError(f"unbalanced '>' in {name} header field value")
        elif c == 63:
            raise SipParseError(
                f"'?' outside <...> in {name} header field value "
                "(a URI with headers must be enclosed in <>)")
        elif c == 44 and single:
            raise SipParseError(
                f"unquoted ',' in {name} header field value "
                "(a display name with a comma must be quoted)")
        i += 1
    if in_quotes:
        raise SipParseError(f"unterminated quoted string in {name} header field value")
    if in_angle:
        raise SipParseError(f"unterminated '<' in {name} header field value")
    return 0


cdef int scan_headers(HeaderScan scan, const unsigned char* p, Py_ssize_t pos,
                      Py_ssize_t head_end, bint strict) except -1:
    """Walk the header lines; hand each unfolded field to ``scan.field`` (strict) or, for
    framing, merge Content-Length only.  Same order of checks as the twin."""
    cdef Line line
    cdef Py_ssize_t colon, name_start, name_end, vs, ve
    cdef bytes folded
    cdef const unsigned char* v
    while pos < head_end:
        read_line(p, pos, head_end, &line)
        if line.end > line.start and is_wsp(p[line.start]):
            if strict:  # folded lines of a field are consumed below with it
                raise SipParseError("continuation line before the first header field")
            pos = line.next
            continue
        colon = find(p, 58, line.start, line.end)
        name_end = colon
        while name_end > line.start and is_wsp(p[name_end - 1]):
            name_end -= 1
        if colon < 0 or not is_token(p, line.start, name_end):
            if not strict:
                pos = line.next
                continue
            if colon < 0:
                raise SipParseError(
                    f"header line without ':' ({describe(span(p, line.start, line.end))})")
            if name_end == line.start:
                raise SipParseError("header field with an empty name")
            raise SipParseError(
                f"header field name {describe(span(p, line.start, name_end))} is not a token")
        name_start, vs, ve = line.start, colon + 1, line.end  # unfold() moves `line` on
        while vs < ve and is_wsp(p[vs]):
            vs += 1
        while ve > vs and is_wsp(p[ve - 1]):
            ve -= 1
        v = p + vs
        if line.next < head_end and is_wsp(p[line.next]):
            folded = unfold(p, vs, ve, head_end, &line)
            scan.keep.append(folded)
            v = <const unsigned char*>PyBytes_AS_STRING(folded)
            ve = vs + PyBytes_GET_SIZE(folded)
        if strict:
            scan.field(p + name_start, name_end - name_start, v, ve - vs)
        else:
            if (lower_equals(p, name_start, name_end, b"l", 1)
                    or lower_equals(p, name_start, name_end, b"content-length", 14)):
                scan.content_length = merge_content_length(
                    scan.content_length, v, ve - vs, scan.max_size)
        pos = line.next
    return 0


cdef HeaderScan new_scan(Py_ssize_t max_size):
    cdef HeaderScan scan = HeaderScan.__new__(HeaderScan)
    scan.headers = []
    scan.keep = []
    scan.max_size = max_size
    scan.content_length = -1
    scan.seen = 0
    cdef int i
    for i in range(N_SLOTS):
        scan.slot_ptr[i] = NULL
        scan.slot_len[i] = 0
    return scan


# -- API ---------------------------------------------------------------------------------

def parse_message(data, Py_ssize_t max_size=65535):
    """Parse one complete SIP message; raise :class:`SipParseError` if it is malformed."""
    cdef bytes buf = <bytes>data if type(data) is bytes else bytes(data)
    cdef const unsigned char* p = <const unsigned char*>PyBytes_AS_STRING(buf)
    cdef Py_ssize_t n = PyBytes_GET_SIZE(buf)
    cdef Py_ssize_t start, first_lf, line_end, head_end, body_start = 0, available
    cdef ParsedMessage msg
    cdef HeaderScan scan
    if n > max_size:
        raise SipParseError(f"message of {n} bytes exceeds max_size {max_size}", 413)
    start = skip_keepalives(p, n)
    if start == n:
        raise SipParseError("empty message")
    first_lf = find(p, 10, start, n)
    line_end = first_lf if first_lf >= 0 else n
    if p[line_end - 1] == 13:  # the line holds at least one octet that is not CR/LF
        line_end -= 1
    msg = ParsedMessage.__new__(ParsedMessage)
    msg.version = SIP_2_0
    if line_end - start >= 4 and memcmp(p + start, b"SIP/", 4) == 0:
        parse_status_line(msg, p, start, line_end)
    else:
        parse_request_line(msg, p, start, line_end)

    head_end = find_header_end(p, start, n, &body_start)
    if head_end < 0:
        raise SipParseError("header section is not terminated by an empty line")
    scan = new_scan(max_size)
    scan.is_request = msg.is_request
    if msg.is_request:
        scan.method = p + start
        scan.method_len = find(p, 32, start, line_end) - start
    scan_headers(scan, p, first_lf + 1, head_end, True)
    if scan.seen & ALL_REQUIRED != ALL_REQUIRED:
        missing = [REQUIRED[i] for i in range(len(REQUIRED))
                   if not scan.seen & (1 << (REQUIRED_SHIFT + i))]
        raise SipParseError(f"missing required header field(s): {', '.join(missing)}")
    msg.headers = scan.headers

    available = n - body_start
    if scan.content_length < 0:
        msg.body = buf[body_start:]
    elif scan.content_length > available:
        raise SipParseError(
            f"Content-Length {scan.content_length} exceeds the {available} bytes of body received")
    else:
        msg.body = buf[body_start:body_start + scan.content_length]
    return msg


def message_length(buf, Py_ssize_t max_size=65535):
    """Length of the first message in a stream buffer, or -1 while its header is incomplete.

    Leading CR/LF keep-alives are counted only when a message follows them; see the
    twin's docstring for the whole contract.
    """
    cdef object keep = buf
    cdef const unsigned char* p
    cdef Py_ssize_t n, start, head_end, body_start = 0, first_lf, total
    cdef HeaderScan scan
    if type(buf) is bytes:
        p = <const unsigned char*>PyBytes_AS_STRING(buf)
        n = PyBytes_GET_SIZE(buf)
    elif type(buf) is bytearray:
        p = <const unsigned char*>PyByteArray_AS_STRING(buf)
        n = PyByteArray_GET_SIZE(buf)
    else:
        keep = bytes(buf)
        p = <const unsigned char*>PyBytes_AS_STRING(keep)
        n = PyBytes_GET_SIZE(keep)
    start = skip_keepalives(p, n)
    if start == n:
        return -1
    head_end = find_header_end(p, start, n, &body_start)
    if head_end < 0:
        if n > max_size:
            raise SipParseError(
                f"header section of more than {max_size} bytes exceeds max_size {max_size}", 413)
        return -1
    first_lf = find(p, 10, start, n)
    scan = new_scan(max_size)
    scan_headers(scan, p, first_lf + 1, head_end, False)
    if scan.content_length < 0:
        raise SipParseError("Content-Length is mandatory on stream transports")
    total = body_start + scan.content_length
    if total > max_size:
        raise SipParseError(f"message of {total} bytes exceeds max_size {max_size}", 413)
    return total
