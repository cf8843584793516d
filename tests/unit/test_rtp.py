"""RTP kernel: packets (RFC 3550 §5.1), jitter buffer, receive statistics, MOS.

Every test runs once per implementation (ids ``c-extension`` and ``pure-python``); the
compiled one is skipped when it is not built, unless ``BRANCHLINE_REQUIRE_COMPILED=1``.
The compiled ``ReceiveStats`` is a wrapper over the C struct ``RxStatsC`` of
``_rtp.pxd``, so comparing it with the twin checks the engine's nogil path.
"""

from __future__ import annotations

from pathlib import Path
from types import ModuleType

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cython_ext.rtp import rtp_py
from cython_ext.rtp.errors import RtpError
from tests.kernels import compiled_or_none, require_compiled
from tests.unit.test_g711 import build_probe

COMPILED = compiled_or_none("rtp")


def _require_compiled() -> ModuleType:
    return require_compiled("rtp")


@pytest.fixture(scope="module", params=["c-extension", "pure-python"])
def rtp(request: pytest.FixtureRequest) -> ModuleType:
    """The implementation under test."""
    if request.param == "pure-python":
        return rtp_py
    return _require_compiled()


def fields(packet) -> tuple:
    return (
        packet.version, packet.padding, packet.extension, packet.marker, packet.payload_type,
        packet.sequence, packet.timestamp, packet.ssrc, packet.csrcs, packet.extension_profile,
        packet.extension_data, packet.payload,
    )  # fmt: skip


# --- packets ---------------------------------------------------------------------------


def test_minimal_packet_wire_bytes(rtp: ModuleType) -> None:
    data = rtp.build_rtp(payload_type=0, sequence=0x1234, timestamp=0xDEADBEEF,
                         ssrc=0x01020304, payload=b"\xff" * 4)  # fmt: skip
    assert data == bytes.fromhex("80001234deadbeef01020304ffffffff")
    packet = rtp.parse_rtp(data)
    assert fields(packet) == (2, 0, False, False, 0, 0x1234, 0xDEADBEEF, 0x01020304, (), None,
                              b"", b"\xff" * 4)  # fmt: skip


def test_everything_set_wire_bytes(rtp: ModuleType) -> None:
    data = rtp.build_rtp(payload_type=101, sequence=65535, timestamp=160, ssrc=7,
                         payload=b"ab", marker=True, csrcs=(1, 0xFFFFFFFF),
                         extension=(0xBEDE, b"\x10\x20\x30\x40"), padding=3)  # fmt: skip
    assert data == bytes.fromhex(
        "b2e5ffff000000a000000007"  # V=2 P X CC=2 | M PT=101 | seq | ts | ssrc
        "00000001ffffffff"  # CSRCs
        "bede000110203040"  # extension: profile, 1 word, data
        "6162"  # payload
        "000003"  # padding, last byte = count
    )
    packet = rtp.parse_rtp(data)
    assert fields(packet) == (2, 3, True, True, 101, 65535, 160, 7, (1, 0xFFFFFFFF), 0xBEDE,
                              b"\x10\x20\x30\x40", b"ab")  # fmt: skip


@pytest.mark.parametrize(
    "kwargs",
    [
        {},
        {"marker": True},
        {"csrcs": tuple(range(15))},
        {"extension": (0x1000, b"")},
        {"extension": (0xFFFF, bytes(range(64)))},
        {"padding": 1},
        {"padding": 255},
        {"csrcs": (9,), "extension": (1, b"abcd"), "padding": 4, "marker": True},
    ],
    ids=["plain", "marker", "15-csrcs", "empty-ext", "long-ext", "pad1", "pad255", "all"],
)
def test_round_trip(rtp: ModuleType, kwargs: dict) -> None:
    data = rtp.build_rtp(
        payload_type=8, sequence=1, timestamp=2, ssrc=3, payload=b"x" * 160, **kwargs
    )
    packet = rtp.parse_rtp(data)
    assert packet.payload == b"x" * 160
    assert packet.marker == kwargs.get("marker", False)
    assert packet.csrcs == kwargs.get("csrcs", ())
    assert packet.padding == kwargs.get("padding", 0)
    ext = kwargs.get("extension")
    assert (packet.extension_profile, packet.extension_data) == (ext if ext else (None, b""))
    assert packet.extension == bool(ext)


def test_bytes_like_input(rtp: ModuleType) -> None:
    data = rtp.build_rtp(payload_type=0, sequence=5, timestamp=6, ssrc=7, payload=b"abc")
    expected = fields(rtp.parse_rtp(data))
    assert fields(rtp.parse_rtp(bytearray(data))) == expected
    assert fields(rtp.parse_rtp(memoryview(data))) == expected
    assert rtp.build_rtp(payload_type=0, sequence=5, timestamp=6, ssrc=7,
                         payload=memoryview(b"abc")) == data  # fmt: skip


def test_packet_equality_and_repr(rtp: ModuleType) -> None:
    data = rtp.build_rtp(payload_type=0, sequence=5, timestamp=6, ssrc=7, payload=b"abc")
    assert rtp.parse_rtp(data) == rtp.parse_rtp(data)
    assert rtp.parse_rtp(data) != rtp.parse_rtp(data[:-1])
    assert "sequence=5" in repr(rtp.parse_rtp(data))


MALFORMED = [
    (b"", "too short: 0 bytes"),
    (b"\x80" * 11, "too short: 11 bytes"),
    (b"\x40" + bytes(11), "version 1, expected 2"),
    (b"\xc0" + bytes(11), "version 3, expected 2"),
    (b"\x00" + bytes(11), "version 0, expected 2"),
    (b"\x81" + bytes(11), "CSRC count 1 needs 16 header bytes, packet has 12"),
    (b"\x8f" + bytes(67), "CSRC count 15 needs 72 header bytes, packet has 68"),
    (b"\x90" + bytes(13), "extension header beyond length: needs 16 bytes, packet has 14"),
    (b"\x90" + bytes(13) + b"\x00\x01", "extension of 1 words beyond length: ends at 20"),
    (b"\x91" + bytes(17) + b"\x00\x02" + bytes(7), "extension of 2 words beyond length"),
    (b"\xa0" + bytes(11), "padding count 0 invalid: 0 bytes follow the header"),
    (b"\xa0" + bytes(12), "padding count 0 invalid: 1 bytes follow the header"),
    (b"\xa0" + bytes(12) + b"\x03", "padding count 3 invalid: 2 bytes follow the header"),
    (b"\xb0" + bytes(11) + b"\x00\x00\x00\x00\x05", "padding count 5 invalid: 1 bytes follow"),
]


@pytest.mark.parametrize("data, reason", MALFORMED, ids=[r for _, r in MALFORMED])
def test_malformed(rtp: ModuleType, data: bytes, reason: str) -> None:
    with pytest.raises(RtpError) as caught:
        rtp.parse_rtp(data)
    assert reason in caught.value.reason
    assert isinstance(caught.value, ValueError)


def test_padding_may_fill_everything_after_the_header(rtp: ModuleType) -> None:
    packet = rtp.parse_rtp(b"\xa0" + bytes(11) + b"\x00\x00\x03")
    assert (packet.payload, packet.padding) == (b"", 3)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"payload_type": 128}, "payload_type 128"),
        ({"sequence": 65536}, "sequence 65536"),
        ({"sequence": -1}, "sequence -1"),
        ({"timestamp": 1 << 32}, "timestamp"),
        ({"ssrc": -5}, "ssrc"),
        ({"padding": 256}, "padding"),
        ({"csrcs": tuple(range(16))}, "16 CSRCs"),
        ({"csrcs": (1 << 32,)}, "csrc"),
        ({"extension": (1, b"abc")}, "not a multiple of 4"),
        ({"extension": (1 << 16, b"")}, "extension profile"),
    ],
)
def test_build_refuses_what_does_not_fit(rtp: ModuleType, kwargs: dict, message: str) -> None:
    args = {"payload_type": 0, "sequence": 0, "timestamp": 0, "ssrc": 0, "payload": b""}
    args.update(kwargs)
    with pytest.raises(ValueError, match=message):
        rtp.build_rtp(**args)


def _outcome(module: ModuleType, data: bytes) -> tuple:
    try:
        return ("ok", fields(module.parse_rtp(data)))
    except RtpError as exc:
        return ("error", exc.reason)


@given(st.binary(max_size=200))
def test_fuzz_arbitrary_bytes(data: bytes) -> None:
    python = _outcome(rtp_py, data)  # only RtpPacket or RtpError, nothing else
    assert python == _outcome(_require_compiled(), data)


@given(
    st.binary(max_size=12).map(lambda head: b"\x80" + head),  # version 2 more often
    st.binary(max_size=80),
)
def test_fuzz_version_2_headers(head: bytes, tail: bytes) -> None:
    data = bytes([head[0] | (tail[:1] or b"\x00")[0] & 0x3F]) + head[1:] + tail
    assert _outcome(rtp_py, data) == _outcome(_require_compiled(), data)


@given(
    payload_type=st.integers(0, 127),
    sequence=st.integers(0, 0xFFFF),
    timestamp=st.integers(0, 0xFFFFFFFF),
    ssrc=st.integers(0, 0xFFFFFFFF),
    payload=st.binary(max_size=300),
    marker=st.booleans(),
    csrcs=st.lists(st.integers(0, 0xFFFFFFFF), max_size=15).map(tuple),
    extension=st.none()
    | st.tuples(
        st.integers(0, 0xFFFF), st.binary(max_size=40).map(lambda b: b[: len(b) // 4 * 4])
    ),  # fmt: skip
    padding=st.integers(0, 255),
)
def test_fuzz_round_trip(**kwargs) -> None:
    compiled = _require_compiled()
    data = rtp_py.build_rtp(**kwargs)
    assert compiled.build_rtp(**kwargs) == data
    for module in (rtp_py, compiled):
        packet = module.parse_rtp(data)
        assert packet.payload == kwargs["payload"]
        assert (packet.sequence, packet.timestamp, packet.ssrc) == (
            kwargs["sequence"], kwargs["timestamp"], kwargs["ssrc"])  # fmt: skip
        assert packet.csrcs == kwargs["csrcs"] and packet.padding == kwargs["padding"]
        ext = kwargs["extension"]
        assert (packet.extension_profile, packet.extension_data) == (ext or (None, b""))


# --- jitter buffer ---------------------------------------------------------------------


def pkt(rtp: ModuleType, seq: int):
    return rtp.parse_rtp(rtp.build_rtp(payload_type=0, sequence=seq & 0xFFFF,
                                       timestamp=(160 * seq) & 0xFFFFFFFF, ssrc=1,
                                       payload=bytes([seq & 0xFF])))  # fmt: skip


def feed(rtp: ModuleType, jb, seqs: list[int]) -> None:
    for i, seq in enumerate(seqs):
        jb.push(pkt(rtp, seq), 0.02 * i)


def drain(jb, n: int) -> list[int | None]:
    return [None if (p := jb.pop()) is None else p.sequence for _ in range(n)]


def counters(jb) -> dict[str, int]:
    names = ("received", "duplicates", "late", "reordered", "lost", "played", "underruns")
    return {name: getattr(jb, name) for name in names}


def test_jb_waits_for_its_depth_then_plays_in_order(rtp: ModuleType) -> None:
    jb = rtp.JitterBuffer(depth_ms=60, clock_rate=8000, ptime_ms=20)
    assert jb.samples_per_packet == 160
    feed(rtp, jb, [10, 11])
    assert jb.pop() is None  # 40 ms buffered, 60 wanted
    assert jb.current_depth_ms == 40.0
    feed(rtp, jb, [12])
    assert drain(jb, 3) == [10, 11, 12]
    assert jb.pop() is None
    assert counters(jb) == {"received": 3, "duplicates": 0, "late": 0, "reordered": 0,
                            "lost": 0, "played": 3, "underruns": 1}  # fmt: skip


def test_jb_reorders(rtp: ModuleType) -> None:
    jb = rtp.JitterBuffer()
    feed(rtp, jb, [1, 3, 2, 5, 4, 6])
    assert drain(jb, 6) == [1, 2, 3, 4, 5, 6]
    assert jb.reordered == 2 and jb.lost == 0


def test_jb_packet_before_the_first_one_still_plays(rtp: ModuleType) -> None:
    jb = rtp.JitterBuffer()
    feed(rtp, jb, [11, 10, 12])
    assert drain(jb, 3) == [10, 11, 12]
    assert jb.reordered == 1


def test_jb_duplicates(rtp: ModuleType) -> None:
    jb = rtp.JitterBuffer()
    feed(rtp, jb, [1, 2, 2, 3])
    assert drain(jb, 2) == [1, 2]
    feed(rtp, jb, [1, 3])  # a copy of a played packet, a copy of a buffered one
    assert drain(jb, 2) == [3, None]
    assert jb.duplicates == 3 and jb.played == 3 and jb.received == 6


def test_jb_skips_a_gap_once_depth_is_exceeded_and_counts_late(rtp: ModuleType) -> None:
    jb = rtp.JitterBuffer(depth_ms=60, ptime_ms=20)
    feed(rtp, jb, [1, 2, 4, 5])
    assert drain(jb, 2) == [1, 2]
    assert jb.pop() is None  # 3 missing; 3..5 is 60 ms: keep waiting
    assert jb.current_depth_ms == 60.0
    feed(rtp, jb, [6])  # now 80 ms > 60: give 3 up
    assert drain(jb, 3) == [4, 5, 6]
    assert jb.lost == 1
    feed(rtp, jb, [3])  # too late to play
    assert jb.late == 1 and jb.lost == 0
    assert len(jb) == 0


def test_jb_burst_loss(rtp: ModuleType) -> None:
    jb = rtp.JitterBuffer(depth_ms=40, ptime_ms=20)
    feed(rtp, jb, [0, 1, 7, 8])
    assert drain(jb, 4) == [0, 1, 7, 8]
    assert jb.lost == 5
    feed(rtp, jb, [2, 6, 1])
    assert (jb.late, jb.lost, jb.duplicates) == (2, 3, 1)


def test_jb_sequence_wrap(rtp: ModuleType) -> None:
    jb = rtp.JitterBuffer()
    feed(rtp, jb, [65533, 65534, 65535, 0, 1, 2])
    assert drain(jb, 7) == [65533, 65534, 65535, 0, 1, 2, None]
    assert jb.reordered == 0 and jb.lost == 0


def test_jb_reorder_and_loss_across_wrap(rtp: ModuleType) -> None:
    jb = rtp.JitterBuffer()
    feed(rtp, jb, [65534, 0, 65535, 2, 3, 4])
    assert drain(jb, 6) == [65534, 65535, 0, 2, 3, 4]
    assert (jb.reordered, jb.lost) == (1, 1)
    feed(rtp, jb, [1])
    assert jb.late == 1 and jb.lost == 0


def test_jb_rebuffers_after_underrun(rtp: ModuleType) -> None:
    jb = rtp.JitterBuffer()
    feed(rtp, jb, [1, 2, 3])
    assert drain(jb, 4) == [1, 2, 3, None]
    feed(rtp, jb, [4, 5])
    assert jb.pop() is None  # refilling to 60 ms
    feed(rtp, jb, [6])
    assert drain(jb, 3) == [4, 5, 6]
    assert jb.underruns == 1


def test_jb_reset(rtp: ModuleType) -> None:
    jb = rtp.JitterBuffer()
    feed(rtp, jb, [1, 2, 3])
    jb.reset()
    assert len(jb) == 0 and jb.received == 0 and jb.pop() is None
    feed(rtp, jb, [40000, 40001, 40002])
    assert drain(jb, 3) == [40000, 40001, 40002]


def test_jb_arguments(rtp: ModuleType) -> None:
    with pytest.raises(ValueError):
        rtp.JitterBuffer(ptime_ms=0)
    jb = rtp.JitterBuffer(depth_ms=50, clock_rate=16000, ptime_ms=20)  # 50 ms -> 3 slots
    assert (jb.depth_ms, jb.clock_rate, jb.ptime_ms, jb.samples_per_packet) == (50, 16000, 20, 320)
    feed(rtp, jb, [1, 2])
    assert jb.pop() is None


@given(st.lists(st.tuples(st.integers(-5, 40), st.booleans()), max_size=80), st.integers(0, 0xFFFF))
def test_jb_implementations_agree(events: list[tuple[int, bool]], base: int) -> None:
    compiled = _require_compiled()
    buffers = [(rtp_py, rtp_py.JitterBuffer()), (compiled, compiled.JitterBuffer())]
    trace: list[list] = [[], []]
    for offset, do_pop in events:
        for i, (module, jb) in enumerate(buffers):
            if do_pop:
                packet = jb.pop()
                trace[i].append(None if packet is None else packet.sequence)
            else:
                jb.push(pkt(module, base + offset), 0.0)
            trace[i].append((counters(jb), jb.current_depth_ms, len(jb)))
    assert trace[0] == trace[1]


# --- receive statistics ----------------------------------------------------------------


def test_stats_hand_computed_example(rtp: ModuleType) -> None:
    # 8 kHz, 20 ms packets (160 timestamp units).  MIN_SEQUENTIAL = 2: seq 1000 is
    # on probation and not counted; 1001 validates the source and becomes base_seq.
    rx = rtp.ReceiveStats(clock_rate=8000)
    arrivals = [
        (1000, 0, 0.0),
        (1001, 160, 0.020),
        (1002, 320, 0.040),
        (1004, 640, 0.080),  # 1003 lost so far
        (1005, 800, 0.110),  # 10 ms late: |D| = 80 units
        (1006, 960, 0.120),  # on time again: |D| = 80
        (1003, 480, 0.125),  # the late one: out of order, counted received
    ]
    results = [rx.update(*a) for a in arrivals]
    assert results == [False, True, True, True, True, True, True]
    assert (rx.base_seq, rx.max_seq, rx.cycles) == (1001, 1006, 0)
    assert rx.expected == 6 and rx.received == 6 and rx.lost == 0
    assert rx.out_of_order == 1
    # Jitter: D = 0, 0, 80, 80, then 1003: transit diff = 0.005*8000 - (480-960) = 520.
    j = 0.0
    for d in (0, 0, 80, 80, 520):
        j += (d - j) / 16
    assert rx.jitter == pytest.approx(j, rel=1e-9)
    assert rx.jitter_ms == pytest.approx(j / 8, rel=1e-9)


def test_stats_loss_and_interval_fraction(rtp: ModuleType) -> None:
    rx = rtp.ReceiveStats(min_sequential=1)
    for seq in (0, 1, 2, 4, 5, 6, 8):  # 3 and 7 lost
        rx.update(seq, 160 * seq, 0.02 * seq)
    assert (rx.expected, rx.received, rx.lost) == (9, 7, 2)
    assert rx.fraction_lost == pytest.approx(2 / 9)
    assert rx.interval_fraction_lost() == (2 << 8) // 9
    for seq in range(9, 13):
        rx.update(seq, 160 * seq, 0.02 * seq)
    assert rx.interval_fraction_lost() == 0  # nothing lost in 9..12
    rx.update(14, 160 * 14, 0.28)
    assert rx.interval_fraction_lost() == 128  # 1 of 2


def test_stats_duplicates_make_lost_negative(rtp: ModuleType) -> None:
    rx = rtp.ReceiveStats(min_sequential=1)
    for seq in (1, 2, 3, 3, 3):
        rx.update(seq, 0, 0.0)
    assert (rx.expected, rx.received, rx.lost) == (3, 5, -2)
    assert rx.fraction_lost == 0.0  # clamped
    assert rx.interval_fraction_lost() == 0
    # A copy of max_seq takes A.1's in-order branch (udelta 0); an older one does not.
    assert rx.out_of_order == 0
    rx.update(2, 0, 0.0)
    assert rx.out_of_order == 1 and rx.lost == -3


def test_stats_sequence_wrap(rtp: ModuleType) -> None:
    rx = rtp.ReceiveStats(min_sequential=1)
    for seq in (65533, 65534, 65535, 0, 2):
        rx.update(seq, 0, 0.0)
    assert (rx.cycles, rx.max_seq, rx.extended_max_seq) == (65536, 2, 65538)
    assert (rx.expected, rx.received, rx.lost) == (6, 5, 1)
    rx.update(65535, 0, 0.0)  # a duplicate from before the wrap
    assert rx.cycles == 65536 and rx.out_of_order == 1


def test_stats_probation_restarts_on_a_gap(rtp: ModuleType) -> None:
    rx = rtp.ReceiveStats()
    assert [rx.update(s, 0, 0.0) for s in (10, 20, 21, 22)] == [False, False, True, True]
    assert (rx.base_seq, rx.expected, rx.received) == (21, 2, 2)
    assert rx.valid


def test_stats_large_jump_needs_confirmation(rtp: ModuleType) -> None:
    rx = rtp.ReceiveStats(min_sequential=1)
    for seq in range(100, 105):
        rx.update(seq, 160 * seq, 0.02 * seq)
    assert rx.update(30000, 0, 1.0) is False  # beyond MAX_DROPOUT: not counted
    assert rx.rejected == 1 and rx.max_seq == 104
    assert rx.update(30001, 160, 1.02) is True  # confirmed: the source restarted
    assert (rx.restarts, rx.base_seq, rx.received, rx.expected) == (1, 30001, 1, 1)


def test_stats_timestamp_wrap_does_not_disturb_jitter(rtp: ModuleType) -> None:
    rx = rtp.ReceiveStats(min_sequential=1)
    start = 0xFFFFFFFF - 320
    for i in range(6):
        rx.update(i, (start + 160 * i) & 0xFFFFFFFF, i / 50)
    assert rx.jitter == pytest.approx(0.0, abs=1e-6)


def test_stats_reset_on_ssrc_change(rtp: ModuleType) -> None:
    rx = rtp.ReceiveStats(min_sequential=1)
    for seq in (1, 2, 5):
        rx.update(seq, 0, 0.0)
    rx.reset()
    assert (rx.received, rx.expected, rx.jitter, rx.valid) == (0, 0, 0.0, False)
    rx.update(7000, 0, 0.0)
    assert (rx.base_seq, rx.received) == (7000, 1)


def test_stats_arguments(rtp: ModuleType) -> None:
    with pytest.raises(ValueError):
        rtp.ReceiveStats(clock_rate=0)
    with pytest.raises(ValueError):
        rtp.ReceiveStats(min_sequential=0)
    assert rtp.ReceiveStats(clock_rate=48000).clock_rate == 48000


STATS_FIELDS = ("received", "expected", "lost", "fraction_lost", "jitter", "jitter_ms", "max_seq",
                "cycles", "base_seq", "out_of_order", "rejected", "restarts", "probation", "valid")  # fmt: skip


@given(
    st.lists(st.tuples(st.integers(-150, 4000), st.integers(-2000, 2000), st.floats(0, 0.5)),
             max_size=120),
    st.integers(0, 0xFFFF),
    st.integers(1, 3),
)  # fmt: skip
def test_stats_c_struct_matches_twin(steps: list, first: int, min_sequential: int) -> None:
    compiled = _require_compiled()
    twin, c = rtp_py.ReceiveStats(8000, min_sequential), compiled.ReceiveStats(8000, min_sequential)
    seq, ts, now = first, 12345, 0.0
    for i, (dseq, dts, dt) in enumerate(steps):
        seq, ts, now = (seq + dseq) & 0xFFFF, (ts + 160 + dts) & 0xFFFFFFFF, now + dt
        assert twin.update(seq, ts, now) == c.update(seq, ts, now)
        if i % 17 == 0:
            assert twin.interval_fraction_lost() == c.interval_fraction_lost()
        assert {f: getattr(twin, f) for f in STATS_FIELDS} == {
            f: getattr(c, f) for f in STATS_FIELDS
        }


# --- MOS -------------------------------------------------------------------------------


def test_r_to_mos_known_points(rtp: ModuleType) -> None:
    assert rtp.r_to_mos(93.2) == pytest.approx(4.41, abs=0.005)
    assert rtp.r_to_mos(0.0) == 1.0 and rtp.r_to_mos(-5) == 1.0
    assert rtp.r_to_mos(100.0) == 4.5 and rtp.r_to_mos(120.0) == 4.5
    assert rtp.r_to_mos(50.0) == pytest.approx(1 + 1.75 + 50 * -10 * 50 * 7e-6)


def emodel(loss: float, delay: float) -> float:
    """G.107 simplified, written out: G.711 with PLC (Ie 0, Bpl 25.1), BurstR 1."""
    idd = 0.024 * delay + (0.11 * (delay - 177.3) if delay > 177.3 else 0.0)
    r = 93.2 - idd - 95.0 * (100 * loss) / (100 * loss + 25.1)
    return 1 + 0.035 * r + r * (r - 60) * (100 - r) * 7e-6


@pytest.mark.parametrize(
    "loss, rtt, expected",
    [
        (0.0, 0.0, 4.37),  # 85 ms one way: 60 ms buffer + 25 ms packetization/codec
        (0.01, 0.0, 4.27),  # 1 % random loss: Ie,eff = 95 * 1 / 26.1 = 3.64
        (0.05, 0.0, 3.84),  # 5 %: Ie,eff = 15.8
        (0.0, 430.0, 3.71),  # 300 ms one way: Id = 7.2 + 13.5
    ],
)
def test_mos_known_points(rtp: ModuleType, loss: float, rtt: float, expected: float) -> None:
    mos = rtp.mos_estimate(loss_fraction=loss, jitter_ms=5.0, rtt_ms=rtt)
    assert mos == pytest.approx(expected, abs=0.005)
    assert mos == pytest.approx(emodel(loss, rtt / 2 + 60 + 25))


def test_mos_jitter_beyond_the_buffer_adds_delay(rtp: ModuleType) -> None:
    low = rtp.mos_estimate(loss_fraction=0.0, jitter_ms=30.0)  # 2 x 30 = buffer: no change
    high = rtp.mos_estimate(loss_fraction=0.0, jitter_ms=80.0)  # buffer grows to 160 ms
    assert low == rtp.mos_estimate(loss_fraction=0.0, jitter_ms=0.0)
    assert high == pytest.approx(emodel(0.0, 160 + 25))


def test_mos_arguments(rtp: ModuleType) -> None:
    assert rtp.mos_estimate(codec="PCMA", loss_fraction=0.0, jitter_ms=0.0) == rtp.mos_estimate(
        loss_fraction=0.0, jitter_ms=0.0
    )
    for kwargs in ({"codec": "G729"}, {"loss_fraction": 1.5}, {"loss_fraction": -0.1},
                   {"jitter_ms": -1.0}, {"rtt_ms": -1.0}):  # fmt: skip
        args = {"loss_fraction": 0.0, "jitter_ms": 0.0, **kwargs}
        with pytest.raises(ValueError):
            rtp.mos_estimate(**args)


@given(
    loss=st.floats(0, 1),
    more_loss=st.floats(0, 1),
    jitter=st.floats(0, 500),
    rtt=st.floats(0, 2000),
    more_rtt=st.floats(0, 2000),
)
def test_mos_monotonic_and_bounded(loss, more_loss, jitter, rtt, more_rtt) -> None:
    compiled = _require_compiled()
    for module in (rtp_py, compiled):
        base = module.mos_estimate(loss_fraction=loss, jitter_ms=jitter, rtt_ms=rtt)
        assert 1.0 <= base <= 4.5
        worse_loss = module.mos_estimate(
            loss_fraction=max(loss, more_loss), jitter_ms=jitter, rtt_ms=rtt
        )
        worse_delay = module.mos_estimate(
            loss_fraction=loss, jitter_ms=jitter, rtt_ms=rtt + more_rtt
        )
        assert worse_loss <= base + 1e-12 and worse_delay <= base + 1e-12
    assert compiled.mos_estimate(loss_fraction=loss, jitter_ms=jitter, rtt_ms=rtt) == base


def test_package_reports_implementation() -> None:
    import cython_ext.rtp as package

    assert package.IMPLEMENTATION in ("cython", "python")
    assert package.RtpError is RtpError


# --- the C API, from another kernel ----------------------------------------------------

PROBE = """
# cython: language_level=3
from cython_ext.rtp._rtp cimport (RtpHeaderC, RxStatsC, rtp_parse_header, rxstats_init,
                                  rxstats_update, rxstats_expected, rxstats_lost,
                                  rxstats_jitter_ms, emodel_mos_g711, RTP_OK)

def header(bytes data):
    cdef RtpHeaderC h
    cdef int code
    cdef const unsigned char* p = data
    cdef Py_ssize_t n = len(data)
    with nogil:
        code = rtp_parse_header(p, n, &h)
    return code, (h.pt, h.marker, h.seq, h.ts, h.ssrc, h.header_len, h.payload_len)

def stats(list packets):
    cdef RxStatsC s
    cdef unsigned short seq
    cdef unsigned int ts
    cdef double arrival
    rxstats_init(&s, 8000.0, 2)
    for packet in packets:
        seq, ts, arrival = packet
        with nogil:
            rxstats_update(&s, seq, ts, arrival)
    return s.received, rxstats_expected(&s), rxstats_lost(&s), rxstats_jitter_ms(&s)

def mos(double loss, double jitter):
    cdef double value
    with nogil:
        value = emodel_mos_g711(loss, jitter, 0.0, 60.0)
    return value
"""


@pytest.mark.slow
def test_pxd_cimport_from_another_kernel(tmp_path: Path) -> None:
    _require_compiled()
    probe = build_probe(tmp_path, "rtp_cimport_probe", PROBE)
    data = rtp_py.build_rtp(payload_type=8, sequence=77, timestamp=99, ssrc=5, payload=b"abcd",
                            marker=True, csrcs=(1,), extension=(2, b"wxyz"), padding=2)  # fmt: skip
    assert probe.header(data) == (0, (8, True, 77, 99, 5, 24, 4))
    assert probe.header(b"\x40" + bytes(11))[0] == 2  # RTP_ERR_VERSION
    packets = [(s, 160 * s, 0.02 * s + (0.003 if s % 3 else 0.0)) for s in range(10) if s != 4]
    twin = rtp_py.ReceiveStats()
    for p in packets:
        twin.update(*p)
    assert probe.stats(packets) == (twin.received, twin.expected, twin.lost, twin.jitter_ms)
    assert probe.mos(0.02, 10.0) == rtp_py.mos_estimate(loss_fraction=0.02, jitter_ms=10.0)
