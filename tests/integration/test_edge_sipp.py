"""Real SIPp peers through the real edge daemon.

Every test starts its own ``branchline edge run`` (``edge_factory``) on free ports
with a config cut for the case, and SIPp callers/callees on free ports. The
callee is either an extension that REGISTERed with the edge (the register
scenario runs on the callee's own port first, so the binding's source address,
where the edge sends the INVITE, is the callee's) or a trunk pointing at the
callee's port. Call records are read from the edge's SQLite store after the
daemon has stopped. Raw-socket cases send hand-made datagrams and wait for the
answer on the socket, with a timeout.
"""

from __future__ import annotations

import ast
import re
import socket
import sqlite3
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.sipp import EdgeProcess, Sipp, SippResult, free_udp_port, wait_for, write_users_csv

LOCAL = "127.0.0.1"
DOMAIN = "test.local"  # tests/sipp.py default_edge_config
CALL_TIMEOUT_S = 15.0
FAST = {"sip": {"t1_ms": 100}}  # a lost datagram costs 100 ms, and shutdown drains quickly

pytestmark = pytest.mark.timeout(60)

EdgeFactory = Callable[..., EdgeProcess]
SippFactory = Callable[..., Sipp]


# --------------------------------------------------------------------------- helpers


def merged(*parts: Mapping[str, Any]) -> dict[str, Any]:
    from tests.sipp import deep_merge

    out: dict[str, Any] = {}
    for part in parts:
        out = deep_merge(out, part)
    return out


def trunk_to(port: int, *, trusted: bool = False) -> dict[str, Any]:
    """Overrides making the ``pstn`` trunk point at ``LOCAL:port``.

    Untrusted by default: a trusted trunk's address skips digest auth, and the
    callers here come from other ports anyway.
    """
    return {
        "trunks": [
            {"name": "pstn", "host": LOCAL, "port": port, "transport": "udp", "trusted": trusted,
             "options_interval_s": 0}  # SIPp scenarios answer only what they script
        ]
    }


def assert_ok(*results: SippResult, calls: int | None = None) -> None:
    for result in results:
        assert result.ok, result.describe()
        assert result.failed == 0, result.describe()
        if calls is not None:
            assert result.successful == calls, result.describe()


def users_csv(tmp_path: Path, user: str = "1001", password: str = "pw1001") -> Path:
    return write_users_csv(tmp_path / f"users-{user}-{password}.csv", [(user, password)], DOMAIN)


def register(
    sipp_factory: SippFactory,
    edge: EdgeProcess,
    tmp_path: Path,
    port: int,
    user: str = "2001",
    password: str = "pw2001",
    scenario: str = "register",
) -> SippResult:
    """Run a register scenario from ``LOCAL:port`` against the edge and return its result."""
    ua = sipp_factory(
        scenario,
        remote=edge.sip_udp,
        local_port=port,
        calls=1,
        inf=users_csv(tmp_path, user, password),
        timeout_s=10,
        trace_msg=True,
        name=f"{scenario}-{user}",
    )
    return ua.start().wait()


def cdrs(edge: EdgeProcess) -> list[dict[str, Any]]:
    """Every CDR in the stopped edge's store, oldest first."""
    assert not edge.running(), "read the store after the edge has stopped"
    con = sqlite3.connect(edge.config["store"]["path"])
    con.row_factory = sqlite3.Row
    try:
        return [dict(r) for r in con.execute("SELECT * FROM cdrs ORDER BY id")]
    finally:
        con.close()


def bindings(edge: EdgeProcess) -> list[dict[str, Any]]:
    assert not edge.running()
    con = sqlite3.connect(edge.config["store"]["path"])
    con.row_factory = sqlite3.Row
    try:
        return [dict(r) for r in con.execute("SELECT * FROM bindings")]
    finally:
        con.close()


def stop_counters(edge: EdgeProcess) -> dict[str, int]:
    """The ``stopped; {counters}`` line the daemon logs at INFO (its default level) on exit."""
    m = re.search(r"stopped; (\{.*\})", edge.stderr_text())
    assert m, f"no counters line in the edge's stderr:\n{edge.stderr_text()[-3000:]}"
    return dict(ast.literal_eval(m.group(1)))


# --------------------------------------------------------------------------- raw UDP


class RawPeer:
    """A plain UDP socket talking to the edge; replies are read with a timeout."""

    def __init__(self, edge: EdgeProcess) -> None:
        self.edge = edge.sip_udp
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((LOCAL, 0))
        self.port = self.sock.getsockname()[1]

    def close(self) -> None:
        self.sock.close()

    def send(self, data: bytes) -> None:
        self.sock.sendto(data, self.edge)

    def request(
        self,
        method: str = "OPTIONS",
        *,
        call_id: str | None = None,
        start_line: str | None = None,
        cseq: str | None = None,
        extra: list[str] | None = None,
        body: bytes = b"",
    ) -> tuple[bytes, str]:
        """A request (bytes) and its Call-ID; parts can be made wrong on purpose."""
        call_id = call_id or f"{uuid.uuid4().hex}@raw"
        lines = [
            start_line or f"{method} sip:{DOMAIN} SIP/2.0",
            f"Via: SIP/2.0/UDP {LOCAL}:{self.port};branch=z9hG4bK{uuid.uuid4().hex[:16]};rport",
            f"From: <sip:raw@{LOCAL}>;tag={uuid.uuid4().hex[:8]}",
            f"To: <sip:{DOMAIN}>",
            f"Call-ID: {call_id}",
            f"CSeq: {cseq or f'1 {method}'}",
            "Max-Forwards: 70",
            *(extra or []),
            f"Content-Length: {len(body)}",
        ]
        return ("\r\n".join(lines) + "\r\n\r\n").encode() + body, call_id

    def reply_for(self, call_id: str, timeout_s: float = 3.0) -> tuple[int, bytes]:
        """The status and bytes of the next reply carrying ``call_id`` (others are skipped)."""
        deadline = time.monotonic() + timeout_s
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"no reply for Call-ID {call_id} within {timeout_s}s")
            self.sock.settimeout(remaining)
            try:
                data, _ = self.sock.recvfrom(65535)
            except TimeoutError:
                continue
            head = data.split(b"\r\n\r\n", 1)[0].decode("utf-8", "replace")
            if re.search(rf"^(Call-ID|i)\s*:\s*{re.escape(call_id)}\s*$", head, re.M | re.I):
                return int(head.split(" ", 2)[1]), data

    def options_ok(self, timeout_s: float = 3.0) -> bool:
        data, call_id = self.request("OPTIONS")
        self.send(data)
        status, _ = self.reply_for(call_id, timeout_s)
        return status == 200


@pytest.fixture
def raw_peer_factory() -> Iterator[Callable[[EdgeProcess], RawPeer]]:
    made: list[RawPeer] = []

    def make(edge: EdgeProcess) -> RawPeer:
        peer = RawPeer(edge)
        made.append(peer)
        return peer

    yield make
    for peer in made:
        peer.close()


# --------------------------------------------------------------------------- 1. extension


@pytest.mark.sipp
def test_call_to_a_registered_extension(
    edge_factory: EdgeFactory, sipp_factory: SippFactory, tmp_path: Path
) -> None:
    calls = 3
    edge = edge_factory(FAST)
    callee_port = free_udp_port()
    assert_ok(register(sipp_factory, edge, tmp_path, callee_port))
    # the registering sipp has exited; the callee now listens on the port the REGISTER came from
    uas = sipp_factory(
        "uas_answer", local_port=callee_port, calls=calls, timeout_s=CALL_TIMEOUT_S
    ).start()
    uac = sipp_factory(
        "uac_auth",
        remote=edge.sip_udp,
        service="2001",
        calls=calls,
        rate=10,
        hold_ms=100,
        inf=users_csv(tmp_path),
        timeout_s=CALL_TIMEOUT_S,
    )
    caller = uac.start().wait()
    callee = uas.wait(timeout=10)
    assert_ok(caller, callee, calls=calls)
    assert any(k.endswith("_407_Recv") and v == calls for k, v in caller.counts.items()), (
        caller.counts
    )

    edge.stop()
    records = cdrs(edge)
    assert len(records) == calls, records
    for cdr in records:
        assert cdr["disposition"] == "answered", cdr
        assert cdr["destination"] == "extension:2001", cdr
        assert cdr["hangup_side"] == "caller", cdr
        assert (cdr["from_number"], cdr["to_number"], cdr["sip_status"]) == ("1001", "2001", 200)
        assert cdr["answer_time"] is not None and cdr["end_time"] >= cdr["answer_time"]
    (binding,) = bindings(edge)
    assert binding["aor"] == f"sip:2001@{DOMAIN}"
    assert binding["source"] == f"udp:{LOCAL}:{callee_port}"


# --------------------------------------------------------------------------- 2. trunk


@pytest.mark.sipp
def test_call_out_of_a_trunk_strips_the_prefix(
    edge_factory: EdgeFactory, sipp_factory: SippFactory, tmp_path: Path
) -> None:
    uas = sipp_factory("uas_answer", calls=1, timeout_s=CALL_TIMEOUT_S, trace_msg=True).start()
    edge = edge_factory(merged(FAST, trunk_to(uas.port)))
    uac = sipp_factory(
        "uac_auth",
        remote=edge.sip_udp,
        service="95551234",
        calls=1,
        hold_ms=100,
        inf=users_csv(tmp_path),
        timeout_s=CALL_TIMEOUT_S,
    )
    caller = uac.start().wait()
    callee = uas.wait(timeout=10)
    assert_ok(caller, callee, calls=1)
    received = uas.message_file.read_text(errors="replace")
    request_lines = re.findall(r"^INVITE (\S+) SIP/2\.0", received, re.M)
    assert request_lines == [f"sip:5551234@{LOCAL}:{uas.port}"], received[:2000]

    edge.stop()
    (cdr,) = cdrs(edge)
    assert (cdr["disposition"], cdr["destination"], cdr["to_number"]) == (
        "answered",
        "trunk:pstn",
        "95551234",
    )


# --------------------------------------------------------------------------- 3. CANCEL


@pytest.mark.sipp
def test_cancel_while_ringing(
    edge_factory: EdgeFactory, sipp_factory: SippFactory, tmp_path: Path
) -> None:
    edge = edge_factory(FAST)
    callee_port = free_udp_port()
    assert_ok(register(sipp_factory, edge, tmp_path, callee_port))
    uas = sipp_factory(
        "uas_noanswer", local_port=callee_port, calls=1, timeout_s=CALL_TIMEOUT_S
    ).start()
    uac = sipp_factory(
        "uac_cancel",
        remote=edge.sip_udp,
        service="2001",
        calls=1,
        auth_user="1001",
        auth_password="pw1001",
        timeout_s=CALL_TIMEOUT_S,
    )
    caller = uac.start().wait()
    callee = uas.wait(timeout=10)
    assert_ok(caller, callee, calls=1)
    assert any(k.endswith("_487_Recv") and v == 1 for k, v in caller.counts.items()), caller.counts
    assert any(k.endswith("_CANCEL_Recv") and v == 1 for k, v in callee.counts.items()), (
        callee.counts
    )

    edge.stop()
    (cdr,) = cdrs(edge)
    assert (cdr["disposition"], cdr["hangup_side"], cdr["sip_status"]) == (
        "cancelled",
        "caller",
        487,
    )
    assert cdr["destination"] == "extension:2001"


# --------------------------------------------------------------------------- 4. busy


@pytest.mark.sipp
def test_busy_callee(edge_factory: EdgeFactory, sipp_factory: SippFactory) -> None:
    uas = sipp_factory("uas_busy", calls=1, timeout_s=CALL_TIMEOUT_S).start()
    edge = edge_factory(merged(FAST, trunk_to(uas.port)))
    uac = sipp_factory(
        "uac_expect_486",
        remote=edge.sip_udp,
        service="95550000",
        calls=1,
        auth_user="1001",
        auth_password="pw1001",
        timeout_s=CALL_TIMEOUT_S,
    )
    caller = uac.start().wait()
    callee = uas.wait(timeout=10)
    assert_ok(caller, callee, calls=1)

    edge.stop()
    (cdr,) = cdrs(edge)
    assert (cdr["disposition"], cdr["sip_status"], cdr["hangup_side"]) == ("busy", 486, "callee")


# --------------------------------------------------------------------------- 5. no answer


@pytest.mark.sipp
def test_ring_timeout(edge_factory: EdgeFactory, sipp_factory: SippFactory) -> None:
    ring_timeout_s = 2.0
    uas = sipp_factory("uas_noanswer", calls=1, timeout_s=CALL_TIMEOUT_S).start()
    edge = edge_factory(
        merged(FAST, trunk_to(uas.port), {"sip": {"ring_timeout_s": ring_timeout_s}})
    )
    uac = sipp_factory(
        "uac_expect_noanswer",
        remote=edge.sip_udp,
        service="95550000",
        calls=1,
        auth_user="1001",
        auth_password="pw1001",
        timeout_s=CALL_TIMEOUT_S,
    )
    started = time.monotonic()
    caller = uac.start().wait()
    elapsed = time.monotonic() - started
    callee = uas.wait(timeout=10)
    assert_ok(caller, callee, calls=1)  # the callee's success means it got the CANCEL
    assert ring_timeout_s - 0.2 <= elapsed <= ring_timeout_s + 2.0, elapsed

    edge.stop()
    (cdr,) = cdrs(edge)
    assert cdr["disposition"] == "no-answer", cdr
    assert cdr["sip_status"] in (408, 480), cdr


# --------------------------------------------------------------------------- 6. callee BYE


@pytest.mark.sipp
def test_callee_hangs_up(edge_factory: EdgeFactory, sipp_factory: SippFactory) -> None:
    uas = sipp_factory("uas_bye", calls=2, hold_ms=200, timeout_s=CALL_TIMEOUT_S).start()
    edge = edge_factory(merged(FAST, trunk_to(uas.port), {"sip": {"auth_required": False}}))
    uac = sipp_factory(
        "uac_wait_bye", remote=edge.sip_udp, service="95550000", calls=2, timeout_s=CALL_TIMEOUT_S
    )
    caller = uac.start().wait()
    callee = uas.wait(timeout=10)
    assert_ok(caller, callee, calls=2)

    edge.stop()
    records = cdrs(edge)
    assert [(c["disposition"], c["hangup_side"]) for c in records] == [("answered", "callee")] * 2


# --------------------------------------------------------------------------- 7. bad password


@pytest.mark.sipp
def test_register_with_a_wrong_password_binds_nothing(
    edge_factory: EdgeFactory, sipp_factory: SippFactory, tmp_path: Path
) -> None:
    edge = edge_factory(FAST)
    port = free_udp_port()
    result = register(
        sipp_factory, edge, tmp_path, port, password="wrong", scenario="register_badpw"
    )
    assert_ok(result, calls=1)
    assert any(k.endswith("_401_Recv") and v == 1 for k, v in result.counts.items()), result.counts

    uac = sipp_factory(
        "uac_expect_480",
        remote=edge.sip_udp,
        service="2001",
        calls=1,
        auth_user="1001",
        auth_password="pw1001",
        timeout_s=CALL_TIMEOUT_S,
    )
    assert_ok(uac.start().wait(), calls=1)

    edge.stop()
    assert bindings(edge) == []
    (cdr,) = cdrs(edge)
    assert (cdr["disposition"], cdr["sip_status"], cdr["to_number"]) == ("rejected", 480, "2001")


# --------------------------------------------------------------------------- 8. 404 / 480


@pytest.mark.sipp
@pytest.mark.parametrize(
    ("scenario", "dialled", "status"),
    [
        ("uac_expect_404", "12345", 404),
        ("uac_expect_404", "3999", 404),
        ("uac_expect_480", "2001", 480),
    ],
    ids=["no-route", "no-such-extension", "unregistered"],
)
def test_refused_calls(
    edge_factory: EdgeFactory, sipp_factory: SippFactory, scenario: str, dialled: str, status: int
) -> None:
    edge = edge_factory(FAST)
    uac = sipp_factory(
        scenario,
        remote=edge.sip_udp,
        service=dialled,
        calls=1,
        auth_user="1001",
        auth_password="pw1001",
        timeout_s=CALL_TIMEOUT_S,
    )
    assert_ok(uac.start().wait(), calls=1)
    edge.stop()
    (cdr,) = cdrs(edge)
    assert (cdr["disposition"], cdr["sip_status"], cdr["from_number"]) == (
        "rejected",
        status,
        "1001",
    )


# --------------------------------------------------------------------------- 9. malformed


@pytest.mark.sipp
def test_malformed_and_oversize_input(
    edge_factory: EdgeFactory, sipp_factory: SippFactory, raw_peer_factory, tmp_path: Path
) -> None:
    uas = sipp_factory("uas_answer", calls=1, timeout_s=CALL_TIMEOUT_S).start()
    edge = edge_factory(merged(FAST, trunk_to(uas.port), {"sip": {"max_message_bytes": 2000}}))
    peer = raw_peer_factory(edge)

    # (a) a broken start line, but the headers a response needs are there: 400, same Call-ID
    data, call_id = peer.request(start_line="INVITE  sip:2001@test.local SIP/2.0")
    peer.send(data)
    status, reply = peer.reply_for(call_id)
    assert status == 400, reply
    assert f"Call-ID: {call_id}".encode() in reply

    # (b) an unknown SIP version: 505
    data, call_id = peer.request(start_line=f"OPTIONS sip:{DOMAIN} SIP/3.0")
    peer.send(data)
    assert peer.reply_for(call_id)[0] == 505

    # (c) larger than sip.max_message_bytes over UDP: 513 (RFC 3261 §18.1.1 / §21.5.14)
    data, call_id = peer.request("OPTIONS", extra=[f"X-Padding: {'x' * 3000}"])
    assert len(data) > 2000
    peer.send(data)
    assert peer.reply_for(call_id)[0] in (413, 513)

    # (d) garbage: dropped. The next reply on the socket must belong to the OPTIONS sent after it
    peer.send(b"\x00\xff garbage \x80\x81 not sip at all\r\n\r\n")
    peer.send(b"\r\n\r\n")  # a keepalive-sized nothing
    data, call_id = peer.request("OPTIONS")
    peer.send(data)
    peer.sock.settimeout(3.0)
    first, _ = peer.sock.recvfrom(65535)
    assert call_id.encode() in first, first

    # (e) CSeq method differs from the request method: 400
    data, call_id = peer.request("OPTIONS", cseq="1 INVITE")
    peer.send(data)
    assert peer.reply_for(call_id)[0] == 400

    # still serving: OPTIONS and a real call
    assert peer.options_ok()
    uac = sipp_factory(
        "uac_auth",
        remote=edge.sip_udp,
        service="95551234",
        calls=1,
        hold_ms=50,
        inf=users_csv(tmp_path),
        timeout_s=CALL_TIMEOUT_S,
    )
    assert_ok(uac.start().wait(), uas.wait(timeout=10), calls=1)

    edge.stop()
    counters = stop_counters(edge)
    assert counters.get("oversize") == 1, counters
    assert counters.get("malformed", 0) >= 3, counters  # (a), (b), (e)
    assert counters.get("dropped", 0) >= 1, counters  # (d)
    assert counters.get("refused.400", 0) >= 2 and counters.get("refused.505") == 1, counters


# --------------------------------------------------------------------------- 10. TCP


@pytest.mark.sipp
def test_tcp_caller_to_udp_trunk(
    edge_factory: EdgeFactory, sipp_factory: SippFactory, tmp_path: Path
) -> None:
    uas = sipp_factory("uas_answer", calls=1, timeout_s=CALL_TIMEOUT_S).start()
    edge = edge_factory(merged(FAST, trunk_to(uas.port)))
    uac = sipp_factory(
        "uac_auth",
        remote=edge.sip_tcp,
        transport="t1",
        service="95551234",
        calls=1,
        hold_ms=100,
        inf=users_csv(tmp_path),
        timeout_s=CALL_TIMEOUT_S,
    )
    caller = uac.start().wait()
    callee = uas.wait(timeout=10)
    assert_ok(caller, callee, calls=1)
    edge.stop()
    (cdr,) = cdrs(edge)
    assert (cdr["disposition"], cdr["hangup_side"]) == ("answered", "caller")


# --------------------------------------------------------------------------- 11. SIGTERM


@pytest.mark.sipp
def test_sigterm_hangs_up_a_call_in_progress(
    edge_factory: EdgeFactory, sipp_factory: SippFactory, tmp_path: Path
) -> None:
    uas = sipp_factory("uas_answer", calls=1, timeout_s=CALL_TIMEOUT_S, trace_msg=True).start()
    edge = edge_factory(merged(FAST, trunk_to(uas.port)))
    uac = sipp_factory(
        "edge_uac_auth_wait_bye",
        remote=edge.sip_udp,
        service="95551234",
        calls=1,
        inf=users_csv(tmp_path),
        timeout_s=CALL_TIMEOUT_S,
    )
    uac.start()

    def callee_got_ack() -> bool:
        return uas.message_file.is_file() and "ACK sip:" in uas.message_file.read_text(
            errors="replace"
        )

    wait_for(callee_got_ack, 10, what="the callee's ACK (the call is up)")
    assert edge.stop() == 0
    caller = uac.wait(timeout=10)
    callee = uas.wait(timeout=10)
    assert_ok(caller, callee, calls=1)  # both legs ended by the edge's BYE, answered 200
    (cdr,) = cdrs(edge)
    assert (cdr["disposition"], cdr["hangup_side"]) == ("answered", "edge"), cdr
    assert cdr["answer_time"] is not None


# --------------------------------------------------------------------------- 12. fuzz


def _base_messages(port: int) -> list[bytes]:
    def msg(method: str, uri: str, body: bytes = b"", extra: tuple[str, ...] = ()) -> bytes:
        lines = [
            f"{method} {uri} SIP/2.0",
            f"Via: SIP/2.0/UDP {LOCAL}:{port};branch=z9hG4bKfuzz{uuid.uuid4().hex[:12]}",
            f'From: "Fuzz" <sip:1001@{DOMAIN}>;tag=fz{uuid.uuid4().hex[:6]}',
            f"To: <{uri}>",
            f"Call-ID: fuzz-{uuid.uuid4().hex}@{LOCAL}",
            f"CSeq: 1 {method}",
            f"Contact: <sip:1001@{LOCAL}:{port}>",
            "Max-Forwards: 70",
            *extra,
            f"Content-Length: {len(body)}",
        ]
        return ("\r\n".join(lines) + "\r\n\r\n").encode() + body

    sdp = (
        b"v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
        b"m=audio 4000 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n"
    )
    return [
        msg("INVITE", f"sip:2001@{DOMAIN}", sdp, ("Content-Type: application/sdp",)),
        msg("OPTIONS", f"sip:{DOMAIN}"),
        msg("REGISTER", f"sip:{DOMAIN}", extra=("Expires: 60",)),
    ]


class Datagram(bytes):
    """Bytes whose repr stays short in a falsifying-example report (huge headers)."""

    def __repr__(self) -> str:
        head = bytes(self[:300])
        return f"Datagram({len(self)} bytes: {head!r}{'...' if len(self) > 300 else ''})"


@st.composite
def mutated(draw: st.DrawFn, bases: list[bytes]) -> Datagram:
    data = bytearray(draw(st.sampled_from(bases)))
    for _ in range(draw(st.integers(1, 3))):
        kind = draw(st.sampled_from(["flip", "truncate", "duplicate", "huge", "insert", "crlf"]))
        if kind == "flip" and data:
            for _ in range(draw(st.integers(1, 8))):
                i = draw(st.integers(0, len(data) - 1))
                data[i] = draw(st.integers(0, 255))
        elif kind == "truncate" and data:
            data = data[: draw(st.integers(0, len(data)))]
        elif kind == "duplicate":
            lines = bytes(data).split(b"\r\n")
            if len(lines) > 2:
                i = draw(st.integers(1, len(lines) - 2))
                lines[i:i] = [lines[i]] * draw(st.integers(1, 50))
                data = bytearray(b"\r\n".join(lines))
        elif kind == "huge":
            size = draw(st.sampled_from([1000, 1999, 2000, 4000, 20000, 60000]))
            name = draw(
                st.sampled_from([b"X-Big", b"Via", b"To", b"Call-ID", b"CSeq", b"Content-Length"])
            )
            head, sep, body = bytes(data).partition(b"\r\n")
            data = bytearray(head + sep + name + b": " + b"a" * size + b"\r\n" + body)[:65000]
        elif kind == "insert":
            i = draw(st.integers(0, len(data)))
            data[i:i] = draw(st.binary(min_size=1, max_size=40))
        elif kind == "crlf":
            data = bytearray(
                bytes(data).replace(b"\r\n", draw(st.sampled_from([b"\n", b"\r", b"\r\n\r\n"])), 1)
            )
    return Datagram(data[:65000])  # a UDP datagram cannot be larger (65507)


@pytest.mark.timeout(120)
def test_fuzzed_datagrams_never_stop_the_daemon(
    edge_factory: EdgeFactory, raw_peer_factory
) -> None:
    edge = edge_factory(merged(FAST, {"sip": {"max_message_bytes": 8000}}))
    peer = raw_peer_factory(edge)
    bases = _base_messages(peer.port)
    sent = 0

    @settings(
        max_examples=200,
        deadline=None,
        database=None,
        derandomize=True,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    @given(mutated(bases))
    def fuzz(datagram: Datagram) -> None:
        nonlocal sent
        peer.send(datagram)
        sent += 1
        # the answer to the mutation is optional; the answer to this OPTIONS is not
        assert peer.options_ok(timeout_s=3.0), "the edge stopped answering OPTIONS"
        assert edge.running()

    fuzz()
    assert sent >= 100
    assert peer.options_ok()
    assert edge.running()
    edge.stop()
    stop_counters(edge)  # it got to the end of a clean shutdown
    # Exceptions the stack caught ("error handling <event>") cost one message, not the
    # daemon; none is expected.
    unknown = [e for e in core_errors(edge.stderr_text()) if e not in KNOWN_CORE_ERRORS]
    assert unknown == [], unknown


KNOWN_CORE_ERRORS: set[str] = set()
_LOG_RECORD = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d+ ", re.M)


def core_errors(stderr: str) -> list[str]:
    """The exception type of every "error handling <event>" traceback in the log."""
    out = []
    starts = [m.start() for m in _LOG_RECORD.finditer(stderr)] + [len(stderr)]
    for begin, end in zip(starts, starts[1:], strict=False):
        record = stderr[begin:end]
        if " ERROR edge.transport: error handling " in record:
            last = record.rstrip().splitlines()[-1]
            out.append(last.split(":", 1)[0].strip())
    return out


# --------------------------------------------------------------------------- non-UTF-8


def test_non_utf8_header_octets_are_answered_and_shutdown_stays_clean(
    edge_factory: EdgeFactory, raw_peer_factory
) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as trunk:
        trunk.bind((LOCAL, 0))
        edge = edge_factory(
            merged(FAST, trunk_to(trunk.getsockname()[1]), {"sip": {"auth_required": False}})
        )
        peer = raw_peer_factory(edge)
        sdp = (
            b"v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
            b"m=audio 4000 RTP/AVP 0\r\n"
        )
        data, call_id = peer.request(
            "INVITE",
            start_line=f"INVITE sip:95551234@{DOMAIN} SIP/2.0",
            extra=["Content-Type: application/sdp"],
            body=sdp,
        )
        # a gateway sending its caller name in ISO-8859-1: "M\xfcller"
        data = data.replace(b"From: <sip:raw@", b'From: "M\xfcller" <sip:raw@')
        try:
            peer.send(data)
            status, _ = peer.reply_for(call_id, timeout_s=2.0)
            assert status in (100, 400), status
            if status == 100:  # relayed: the trunk says busy, the caller must hear it
                trunk.settimeout(2.0)
                invite, edge_addr = trunk.recvfrom(65535)
                trunk.sendto(response_to(invite, b"486 Busy Here"), edge_addr)
                assert peer.reply_for(call_id, timeout_s=2.0)[0] == 486
            edge.stop(timeout_s=5.0)
        finally:
            edge.kill()  # the daemon hangs when the bug bites; never leave it to the fixture
        assert cdrs(edge)


def response_to(request: bytes, status_line: bytes) -> bytes:
    """A minimal response to ``request``: its Via/From/To/Call-ID/CSeq, a To tag added."""
    head = request.split(b"\r\n\r\n", 1)[0].split(b"\r\n")
    out = [b"SIP/2.0 " + status_line]
    for line in head[1:]:
        name = line.split(b":", 1)[0].strip().lower()
        if name == b"to":
            out.append(line + b";tag=trunk1")
        elif name in (b"via", b"from", b"call-id", b"cseq"):
            out.append(line)
    out.append(b"Content-Length: 0")
    return b"\r\n".join(out) + b"\r\n\r\n"


# --------------------------------------------------------------------------- re-INVITE hold


@pytest.mark.sipp
def test_hold_and_resume_re_invites_pass_through(
    edge_factory: EdgeFactory, sipp_factory: SippFactory
) -> None:
    """The caller holds (a=sendonly) and resumes: each re-INVITE reaches the callee with
    the direction kept and the answer comes back (a=recvonly); RTP stops while on hold
    yet the RTP timeout, shorter than the hold, does not end the call (RFC 3264 §8.4)."""
    uas = sipp_factory("edge_hold_uas", calls=1, timeout_s=CALL_TIMEOUT_S).start()
    edge = edge_factory(
        merged(FAST, trunk_to(uas.port), {"sip": {"auth_required": False}, "media": {"rtp_timeout_s": 1.0}})
    )
    uac = sipp_factory(
        "edge_hold_uac", remote=edge.sip_udp, service="95550000", calls=1,
        timeout_s=CALL_TIMEOUT_S, hold_ms=2500,
    )  # fmt: skip
    caller = uac.start().wait()
    callee = uas.wait(timeout=10)
    assert_ok(caller, callee, calls=1)

    edge.stop()
    (record,) = cdrs(edge)
    assert (record["disposition"], record["hangup_side"], record["cause"]) == ("answered", "caller", "normal")
    assert record["end_time"] - record["answer_time"] >= 2.5  # the hold outlived the RTP timeout


# --------------------------------------------------------------------------- TCP keep-alive


def test_tcp_keepalive_pings_get_pongs_and_the_connection_keeps_serving(
    edge_factory: EdgeFactory,
) -> None:
    """RFC 5626 §3.5.1: a phone pings its TCP connection with CRLFCRLF; the edge answers
    each with CRLF and the connection keeps carrying SIP (pings never pile up)."""
    import socket as sockets

    edge = edge_factory(merged(FAST, {"sip": {"max_message_bytes": 2000}}))
    with sockets.create_connection(tuple(edge.sip_tcp), timeout=5) as conn:
        for _ in range(600):  # 2 400 bytes of pings: more than max_message_bytes
            conn.sendall(b"\r\n\r\n")
        pongs = b""
        while len(pongs) < 1200:
            chunk = conn.recv(4096)
            assert chunk, "the edge closed the connection"
            pongs += chunk
        assert pongs == b"\r\n" * 600
        local = conn.getsockname()
        options = (
            f"OPTIONS sip:{DOMAIN} SIP/2.0\r\n"
            f"Via: SIP/2.0/TCP {local[0]}:{local[1]};branch=z9hG4bK-ka-1\r\n"
            f"From: <sip:probe@{DOMAIN}>;tag=ka\r\nTo: <sip:{DOMAIN}>\r\n"
            f"Call-ID: keepalive-1\r\nCSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
        )
        conn.sendall(options.encode())
        reply = b""
        while b"\r\n\r\n" not in reply:
            chunk = conn.recv(4096)
            assert chunk, "the edge closed the connection"
            reply += chunk
        assert reply.startswith(b"SIP/2.0 200"), reply
    edge.stop()
