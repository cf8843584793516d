"""The media engine with real UDP "phones" on loopback, once per implementation.

Every engine test runs on the compiled engine (id ``c-extension``) and the twin
(``pure-python``).  Nothing sleeps to wait: a test waits for a datagram, an event on
``fileno()`` or a counter, always under a deadline; sleeps only pace what a phone sends.
The last tests drive ``EngineRelay`` (the asyncio adapter) the way the B2BUA does.
"""

from __future__ import annotations

import asyncio
import importlib
import math
import os
import random
import select
import socket
import struct
import time
from array import array
from collections.abc import Callable, Iterator
from types import ModuleType
from typing import Any

import pytest

from cython_ext.dtmf.dtmf_py import DtmfDetector
from cython_ext.mediaengine import mediaengine_py
from cython_ext.mediaengine.mediaengine_py import _linear_to_ulaw, _ulaw_to_linear

HOST = "127.0.0.1"
TIMEOUT_S = 3.0


def _compiled() -> ModuleType:
    try:
        return importlib.import_module("cython_ext.mediaengine._mediaengine")
    except ImportError:
        if os.environ.get("BRANCHLINE_REQUIRE_COMPILED") == "1":
            pytest.fail(
                "cython_ext.mediaengine._mediaengine is not built and BRANCHLINE_REQUIRE_COMPILED=1"
            )
        pytest.skip("cython_ext.mediaengine._mediaengine is not built")


@pytest.fixture(params=["c-extension", "pure-python"])
def impl(request: pytest.FixtureRequest) -> ModuleType:
    return mediaengine_py if request.param == "pure-python" else _compiled()


@pytest.fixture
def make_engine(impl: ModuleType) -> Iterator[Callable[..., Any]]:
    """``make_engine(pairs, **kwargs)`` -> a started engine on a free port range."""
    made: list[Any] = []

    def make(pairs: int = 4, **kwargs: Any) -> Any:
        engine = impl.MediaEngine(HOST, *free_port_range(pairs), **kwargs)
        engine.start()
        made.append(engine)
        return engine

    yield make
    for engine in made:
        engine.stop()


@pytest.fixture
def phones() -> Iterator[Callable[[], Phone]]:
    made: list[Phone] = []

    def make() -> Phone:
        phone = Phone()
        made.append(phone)
        return phone

    yield make
    for phone in made:
        phone.close()


def free_port_range(pairs: int) -> tuple[int, int]:
    """An even-aligned range of ``pairs`` RTP/RTCP port pairs that is free right now."""
    for _ in range(200):
        base = random.randrange(20000, 60000, 2)
        probes = []
        try:
            for port in range(base, base + 2 * pairs):
                s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                probes.append(s)
                s.bind((HOST, port))
        except OSError:
            continue
        finally:
            for s in probes:
                s.close()
        return base, base + 2 * pairs - 1
    raise RuntimeError("no free port range on loopback")


def rtp(
    seq: int,
    ts: int,
    payload: bytes = b"\xff" * 160,
    *,
    ssrc: int = 0x1234,
    pt: int = 0,
    marker: bool = False,
) -> bytes:
    return (
        struct.pack(
            "!BBHII", 0x80, (0x80 if marker else 0) | pt, seq & 0xFFFF, ts & 0xFFFFFFFF, ssrc
        )
        + payload
    )


def header(data: bytes) -> tuple[int, bool, int, int, int]:
    """(pt, marker, seq, ts, ssrc) of an RTP packet."""
    seq, ts, ssrc = struct.unpack_from("!HII", data, 2)
    return data[1] & 0x7F, bool(data[1] & 0x80), seq, ts, ssrc


def tone(freq: float, samples: int, amplitude: float = 8000.0, start: int = 0) -> list[int]:
    return [
        round(amplitude * math.sin(2 * math.pi * freq * (start + i) / 8000)) for i in range(samples)
    ]


def ulaw(samples: list[int]) -> bytes:
    return bytes(_linear_to_ulaw(s) for s in samples)


def pcm16(samples: list[int]) -> bytes:
    return struct.pack(f"<{len(samples)}h", *samples)


def dominant_frequency(samples: list[int] | array) -> float:
    """Zero crossings of a clean tone -> its frequency (8 kHz)."""
    crossings = sum(1 for x, y in zip(samples, samples[1:], strict=False) if (x < 0) != (y < 0))
    return crossings / 2 / (len(samples) / 8000)


class Phone:
    """A blocking UDP endpoint on loopback."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((HOST, 0))

    @property
    def addr(self) -> tuple[str, int]:
        return self.sock.getsockname()[:2]

    def send(self, port: int, data: bytes) -> None:
        self.sock.sendto(data, (HOST, port))

    def next(self, timeout: float = TIMEOUT_S) -> tuple[bytes, tuple[str, int]]:
        self.sock.settimeout(timeout)
        data, addr = self.sock.recvfrom(4096)
        return data, addr[:2]

    def nothing_within(self, seconds: float) -> bool:
        ready, _, _ = select.select([self.sock], [], [], seconds)
        return not ready

    def drain(self, quiet_s: float = 0.1) -> int:
        """Read until nothing arrives for ``quiet_s``: how many datagrams were read."""
        count = 0
        while not self.nothing_within(quiet_s):
            self.sock.recv(4096)
            count += 1
            if count > 1000:
                raise AssertionError("the stream does not stop")
        return count

    def close(self) -> None:
        self.sock.close()


def wait_event(
    engine: Any, match: Callable[[tuple], bool], seen: list[tuple] | None = None
) -> tuple:
    """Wait (select on ``fileno()``) for an event ``match`` accepts; others go to ``seen``."""
    deadline = time.monotonic() + TIMEOUT_S
    while True:
        for event in engine.read_events():
            if match(event):
                return event
            if seen is not None:
                seen.append(event)
        left = deadline - time.monotonic()
        if left <= 0:
            raise AssertionError("no matching media event in time")
        select.select([engine.fileno()], [], [], left)


def wait_until(condition: Callable[[], bool]) -> None:
    deadline = time.monotonic() + TIMEOUT_S
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        time.sleep(0.001)


def call(engine: Any, alice: Phone, bob: Phone) -> tuple[int, int, int, int]:
    """Two connected legs a (alice) and b (bob): (a, a_port, b, b_port)."""
    a, a_port = engine.allocate_leg()
    b, b_port = engine.allocate_leg()
    engine.set_remote(a, *alice.addr)
    engine.set_remote(b, *bob.addr)
    engine.connect(a, b)
    return a, a_port, b, b_port


# --- relay --------------------------------------------------------------------------


def test_implementation_is_named(impl: ModuleType) -> None:
    assert impl.IMPLEMENTATION == ("python" if impl is mediaengine_py else "cython")


def test_two_phones_exchange_rtp_with_rewritten_ssrc_seq_ts(make_engine, phones) -> None:
    engine = make_engine()
    alice, bob = phones(), phones()
    a, a_port, b, b_port = call(engine, alice, bob)
    assert a_port % 2 == 0 and b_port % 2 == 0 and a_port != b_port

    got = []
    for i in range(5):
        payload = bytes([i]) * 160
        alice.send(a_port, rtp(1000 + i, 5000 + 160 * i, payload, ssrc=0xA11CE))
        data, source = bob.next()
        assert source == (HOST, b_port), "symmetric RTP: sent from B's own port"
        assert data[12:] == payload
        got.append(header(data))
    pts = {g[0] for g in got}
    ssrcs = {g[4] for g in got}
    assert pts == {0} and len(ssrcs) == 1
    assert [g[1] for g in got] == [True, False, False, False, False], "marker on a new source"
    assert [(g[2] - got[0][2]) & 0xFFFF for g in got] == [0, 1, 2, 3, 4]
    assert [(g[3] - got[0][3]) & 0xFFFFFFFF for g in got] == [0, 160, 320, 480, 640]

    bob.send(b_port, rtp(7, 9, b"hello", ssrc=0xB0B))
    data, source = alice.next()
    assert source == (HOST, a_port) and data[12:] == b"hello"
    assert header(data)[4] not in ssrcs, "each leg sends its own stream"

    sa, sb = engine.stats(a), engine.stats(b)
    assert (sa["packets_in"], sb["packets_out"], sb["packets_in"], sa["packets_out"]) == (
        5,
        5,
        1,
        1,
    )
    assert sa["bytes_in"] == sb["bytes_out"] == 5 * 172
    assert sb["bytes_in"] == sa["bytes_out"] == 17
    assert sa["lost"] == sa["late"] == sa["dropped"] == 0
    assert 0 <= sa["last_rx_age_s"] < TIMEOUT_S
    counters = engine.counters()
    assert counters["legs"] == 2 and counters["packets_relayed"] == 6
    assert counters["syscalls_recv"] >= 2 and counters["syscalls_send"] >= 6
    assert counters["loop_iterations"] >= 1 and counters["commands"] >= 5

    final = engine.release(a)
    assert final["packets_in"] == 5 and final["remote"] == alice.addr
    with pytest.raises(Exception, match=f"leg {a} is not active"):
        engine.stats(a)
    bob.send(b_port, rtp(8, 169))
    wait_until(lambda: engine.stats(b)["packets_in"] == 2)
    assert engine.stats(b)["dropped"] == 1, "the peer is gone: dropped"


def test_new_source_ssrc_continues_the_outgoing_stream(make_engine, phones) -> None:
    engine = make_engine()
    alice, bob = phones(), phones()
    a, a_port, b, b_port = call(engine, alice, bob)
    alice.send(a_port, rtp(10, 100, ssrc=1))
    first = header(bob.next()[0])
    alice.send(a_port, rtp(60000, 7_000_000, ssrc=2))  # the phone restarted its stream
    second = header(bob.next()[0])
    assert second[4] == first[4]
    assert second[2] == (first[2] + 1) & 0xFFFF and second[1]
    assert 0 < (second[3] - first[3]) & 0xFFFFFFFF < 8000 * TIMEOUT_S


def test_latching_moves_the_destination_to_the_real_source(make_engine, phones) -> None:
    engine = make_engine()
    alice, bob, stray = phones(), phones(), phones()
    a, a_port, b, b_port = call(engine, alice, bob)
    engine.set_remote(a, HOST, 9)  # SDP said one thing, alice sends from elsewhere
    alice.send(a_port, rtp(1, 160))
    bob.next()
    event = wait_event(engine, lambda e: e[0] == "latched" and e[1] == a)
    assert event == ("latched", a, *alice.addr)
    assert engine.stats(a)["remote"] == alice.addr
    bob.send(b_port, rtp(2, 320))
    assert alice.next()[0][12:] == b"\xff" * 160

    stray.send(a_port, rtp(666, 0))  # cannot steal a latched stream
    alice.send(a_port, rtp(3, 480))
    assert header(bob.next()[0])[0] == 0
    assert engine.stats(a)["dropped"] == 1 and engine.stats(a)["packets_in"] == 3

    engine.set_remote(a, HOST, 9)  # a new offer/answer re-arms latching
    stray.send(a_port, rtp(4, 640))
    bob.next()
    assert wait_event(engine, lambda e: e[0] == "latched" and e[1] == a) == (
        "latched",
        a,
        *stray.addr,
    )


def test_without_latch_any_source_is_relayed_and_the_remote_kept(make_engine, phones) -> None:
    engine = make_engine(latch=False)
    alice, bob, other = phones(), phones(), phones()
    a, a_port, b, b_port = call(engine, alice, bob)
    other.send(a_port, rtp(1, 160))
    bob.next()
    assert engine.stats(a)["remote"] == alice.addr
    assert engine.read_events() == []


def test_packets_before_connect_or_remote_are_counted_and_dropped(make_engine, phones) -> None:
    engine = make_engine()
    alice, bob = phones(), phones()
    a, a_port = engine.allocate_leg()
    b, b_port = engine.allocate_leg()
    alice.send(a_port, rtp(1, 0))
    wait_until(lambda: engine.stats(a)["packets_in"] == 1)
    engine.connect(a, b)
    alice.send(a_port, rtp(2, 160))
    alice.send(a_port, b"not rtp")
    wait_until(lambda: engine.stats(a)["packets_in"] == 3)
    engine.set_remote(b, *bob.addr)
    alice.send(a_port, rtp(3, 320))
    assert bob.next()[0][12:] == b"\xff" * 160
    assert engine.stats(a)["dropped"] == 3 and engine.stats(b)["packets_out"] == 1
    assert bob.nothing_within(0.05)
    engine.disconnect(a)
    alice.send(a_port, rtp(4, 480))
    wait_until(lambda: engine.stats(a)["packets_in"] == 5)
    assert engine.stats(a)["dropped"] == 4


# --- statistics and timeouts ----------------------------------------------------------


def test_malformed_rtp_is_dropped_not_relayed(make_engine, phones) -> None:
    engine = make_engine()
    alice, bob = phones(), phones()
    a, a_port, b, _ = call(engine, alice, bob)
    bad_padding = bytes([0xA0]) + rtp(1, 160)[1:-1] + b"\xff"  # P set, count beyond the packet
    csrc_overrun = bytes([0x8F]) + rtp(2, 320)[1:20]  # 15 CSRCs announced, 2 present
    for data in (bad_padding, csrc_overrun, b"\x80\x00"):
        alice.send(a_port, data)
    alice.send(a_port, rtp(3, 480))
    data, _ = bob.next()
    assert header(data)[0] == 0 and data[12:] == b"\xff" * 160, "only the valid packet"
    stats = engine.stats(a)
    assert stats["packets_in"] == 4 and stats["dropped"] == 3
    assert engine.stats(b)["packets_out"] == 1


def test_loss_late_and_jitter_from_a_crafted_stream(make_engine, phones) -> None:
    engine = make_engine()
    alice = phones()
    a, a_port = engine.allocate_leg()
    # Sent back to back (arrival ~ constant) with ts advancing 160 per packet: each
    # transit difference is 160 samples, so RFC 3550 jitter follows J += (160 - J)/16.
    seqs = [s for s in range(50) if s not in (10, 11, 30)]
    for s in seqs:
        alice.send(a_port, rtp(s, 160 * s))
    wait_until(lambda: engine.stats(a)["packets_in"] == len(seqs))
    stats = engine.stats(a)
    assert stats["lost"] == 3 and stats["late"] == 0
    # Gaps (seq 12 after 9, 31 after 29) are larger transit steps than 160.
    expected = 0.0
    for prev, cur in zip(seqs, seqs[1:], strict=False):
        expected += (160 * (cur - prev) - expected) / 16
    assert abs(stats["jitter_ms"] - expected / 8) < 1.0, (stats["jitter_ms"], expected / 8)

    alice.send(a_port, rtp(30, 160 * 30))  # arrives late: no longer lost, counted late
    wait_until(lambda: engine.stats(a)["packets_in"] == len(seqs) + 1)
    stats = engine.stats(a)
    assert stats["lost"] == 2 and stats["late"] == 1


def test_rtp_timeout_is_reported_once_and_rearmed_by_a_packet(make_engine, phones) -> None:
    engine = make_engine(rtp_timeout_s=0.3)
    alice = phones()
    a, a_port = engine.allocate_leg()
    alice.send(a_port, rtp(1, 160))
    started = time.monotonic()
    seen: list[tuple] = []
    assert wait_event(engine, lambda e: e == ("timeout", a), seen) == ("timeout", a)
    assert time.monotonic() - started >= 0.25
    alice.send(a_port, rtp(2, 320))
    assert wait_event(engine, lambda e: e == ("timeout", a), seen) == ("timeout", a)
    assert ("timeout", a) not in seen, "once per silence"
    assert time.monotonic() - started >= 0.5


# --- playback -------------------------------------------------------------------------


def test_play_a_tone_then_the_relay_resumes_the_same_stream(make_engine, phones) -> None:
    engine = make_engine()
    alice, bob = phones(), phones()
    a, a_port, b, b_port = call(engine, alice, bob)
    before = []
    for i in range(3):
        alice.send(a_port, rtp(i, 160 * i, ssrc=0xA))
        before.append(header(bob.next()[0]))

    engine.play(b, pcm16(tone(1000, 8000)), play_id=42)
    packets = []
    while True:
        data, source = bob.next()
        assert source == (HOST, b_port)
        packets.append(data)
        if len(packets) == 50:
            break
        if len(packets) == 10:
            alice.send(a_port, rtp(3, 480, ssrc=0xA))  # paused while b plays
    assert wait_event(engine, lambda e: e[0] == "play_done") == ("play_done", b, 42)
    heads = [header(p) for p in packets]
    assert all(len(p) == 172 for p in packets)
    assert {h[0] for h in heads} == {0} and {h[4] for h in heads} == {before[0][4]}
    assert heads[0][1] and not any(h[1] for h in heads[1:])
    assert [(h[2] - before[-1][2]) & 0xFFFF for h in heads] == list(range(1, 51))
    assert [(h[3] - heads[0][3]) & 0xFFFFFFFF for h in heads] == [160 * i for i in range(50)]
    assert 0 < (heads[0][3] - before[-1][3]) & 0xFFFFFFFF < 8000 * TIMEOUT_S
    audio = [_ulaw_to_linear(c) for p in packets for c in p[12:]]
    assert 990 <= dominant_frequency(audio) <= 1010
    assert engine.stats(a)["dropped"] == 1

    alice.send(a_port, rtp(4, 640, ssrc=0xA))
    after = header(bob.next()[0])
    assert after[4] == before[0][4] and after[1]
    assert after[2] == (heads[-1][2] + 1) & 0xFFFF
    assert 0 < (after[3] - heads[-1][3]) & 0xFFFFFFFF < 8000 * TIMEOUT_S
    alice.send(a_port, rtp(5, 800, ssrc=0xA))
    nxt = header(bob.next()[0])
    assert (nxt[2] - after[2]) & 0xFFFF == 1 and (nxt[3] - after[3]) & 0xFFFFFFFF == 160


def test_play_in_pcma_loops_until_stopped(make_engine, phones) -> None:
    engine = make_engine()
    bob = phones()
    b, b_port = engine.allocate_leg()
    engine.set_remote(b, *bob.addr)
    engine.set_codec(b, 8)
    engine.play(b, pcm16(tone(500, 300)), loop=True, play_id=7)  # 2 frames, the last padded
    payloads = [bob.next()[0] for _ in range(5)]
    assert {header(p)[0] for p in payloads} == {8}
    assert payloads[0][12:] == payloads[2][12:] == payloads[4][12:]
    assert payloads[1][172 - 20 :] == b"\xd5" * 20, "A-law silence pads the last frame"
    engine.stop_play(b)
    assert bob.drain() <= 2
    assert all(e[0] != "play_done" for e in engine.read_events())
    with pytest.raises(Exception, match="payload type"):
        engine.set_codec(b, 18)


# --- recording ------------------------------------------------------------------------


def test_recording_both_legs_is_time_aligned(make_engine, phones) -> None:
    engine = make_engine()
    alice, bob = phones(), phones()
    a, a_port, b, b_port = call(engine, alice, bob)
    engine.record(a, True)
    engine.record(b, True)
    frames = 30
    for i in range(frames):
        if not 10 <= i < 15:  # alice goes silent for 100 ms (no packets, ts moves on)
            alice.send(a_port, rtp(i, 160 * i, ulaw(tone(500, 160, start=160 * i)), ssrc=1))
        bob.send(b_port, rtp(i, 160 * i, ulaw(tone(1200, 160, start=160 * i)), ssrc=2))
        time.sleep(0.02)  # pacing, as a phone does
    wait_until(
        lambda: (
            engine.stats(a)["packets_in"] == frames - 5 and engine.stats(b)["packets_in"] == frames
        )
    )
    rec_a, rec_b = array("h"), array("h")
    rec_a.frombytes(engine.take_recording(a))
    rec_b.frombytes(engine.take_recording(b))
    assert abs(len(rec_a) - len(rec_b)) <= 2 * 160, (len(rec_a), len(rec_b))
    assert frames * 160 <= len(rec_b) <= frames * 160 + 8000 * 0.1
    start = len(rec_a) - frames * 160  # wall-clock offset of the first packet
    assert 0 <= start <= 800
    assert set(rec_a[start + 10 * 160 : start + 15 * 160]) == {0}, "the gap is silence"
    assert 490 <= dominant_frequency(rec_a[start : start + 10 * 160]) <= 510
    assert 490 <= dominant_frequency(rec_a[start + 15 * 160 :]) <= 510
    assert 1180 <= dominant_frequency(rec_b[len(rec_b) - frames * 160 :]) <= 1220
    assert engine.take_recording(a) == b""
    engine.record(a, False)
    alice.send(a_port, rtp(frames, 160 * frames, ulaw(tone(500, 160)), ssrc=1))
    wait_until(lambda: engine.stats(a)["packets_in"] == frames - 4)
    assert engine.take_recording(a) == b""


# --- DTMF -----------------------------------------------------------------------------


def rfc4733(event: int, end: bool, duration: int) -> bytes:
    return struct.pack("!BBH", event, (0x80 if end else 0) | 10, duration)


def press(phone: Phone, port: int, digit: int, seq: int, ts: int) -> int:
    """One key press as a phone sends it: start, updates, three redundant end packets."""
    for i, (end, duration) in enumerate(
        [(False, 400), (False, 800), (False, 1200), (True, 1600), (True, 1600), (True, 1600)]
    ):
        phone.send(port, rtp(seq + i, ts, rfc4733(digit, end, duration), pt=101, marker=i == 0))
    return seq + 6


def test_rfc4733_digit_is_reported_once_per_press(make_engine, phones) -> None:
    engine = make_engine()
    alice, bob = phones(), phones()
    a, a_port, b, b_port = call(engine, alice, bob)
    seq = press(alice, a_port, 5, 100, 8000)
    seen: list[tuple] = []
    assert wait_event(engine, lambda e: e[0] == "dtmf", seen) == ("dtmf", a, "5", 200, "rfc4733")
    seq = press(alice, a_port, 11, seq, 16000)
    assert wait_event(engine, lambda e: e[0] == "dtmf", seen) == ("dtmf", a, "#", 200, "rfc4733")
    alice.send(a_port, rtp(seq, 24000))
    wait_until(lambda: engine.stats(a)["packets_in"] == 13)
    assert [e for e in seen + engine.read_events() if e[0] == "dtmf"] == []
    assert header(bob.next()[0])[0] == 101, "telephone-events are relayed too"
    assert engine.stats(a)["jitter_ms"] == 0.0, "event packets do not count for jitter"


def test_inband_dtmf_where_asked(make_engine, phones) -> None:
    engine = make_engine()
    alice = phones()
    a, a_port = engine.allocate_leg()
    engine.detect_dtmf(a, True)
    seven = [
        x + y for x, y in zip(tone(852, 1600, 6000), tone(1209, 1600, 6000), strict=False)
    ]  # 200 ms "7"
    audio = [0] * 800 + seven + [0] * 1600
    for i in range(len(audio) // 160):
        alice.send(a_port, rtp(i, 160 * i, ulaw(audio[160 * i : 160 * i + 160])))
    event = wait_event(engine, lambda e: e[0] == "dtmf")
    assert event[:3] == ("dtmf", a, "7") and event[4] == "inband"
    # The engine runs cython_ext.dtmf's detector (102-sample blocks): what that detector
    # finds in the same G.711-decoded audio, to the sample.
    (heard,) = DtmfDetector().feed(pcm16([_ulaw_to_linear(c) for c in ulaw(audio)]))
    assert heard.digit == "7" and event[3] == heard.duration_samples * 1000 // 8000
    assert 190 <= event[3] <= 205, "a 200 ms tone, to one 12.75 ms block"
    wait_until(lambda: engine.stats(a)["packets_in"] == len(audio) // 160)
    assert engine.read_events() == []


def test_inband_dtmf_off_again_and_per_leg(make_engine, phones) -> None:
    engine = make_engine()
    alice, bob = phones(), phones()
    a, a_port = engine.allocate_leg()
    b, b_port = engine.allocate_leg()
    engine.detect_dtmf(a, True)
    engine.detect_dtmf(b, True)
    engine.detect_dtmf(a, False)
    one = [x + y for x, y in zip(tone(697, 800, 6000), tone(1209, 800, 6000), strict=False)]
    audio = one + [0] * 800
    for i in range(len(audio) // 160):
        frame = ulaw(audio[160 * i : 160 * i + 160])
        alice.send(a_port, rtp(i, 160 * i, frame))
        bob.send(b_port, rtp(i, 160 * i, frame))
    event = wait_event(engine, lambda e: e[0] == "dtmf")
    assert event[:3] == ("dtmf", b, "1") and event[4] == "inband"
    wait_until(lambda: engine.stats(a)["packets_in"] == engine.stats(b)["packets_in"] == 10)
    assert engine.read_events() == [], "detection was switched off on leg a"


def test_rfc4733_lost_end_packets_and_late_packets(make_engine, phones) -> None:
    """TelephoneEventReceiver's rules (cython_ext.dtmf.rfc4733) in both engines."""
    engine = make_engine()
    alice = phones()
    a, a_port = engine.allocate_leg()
    for i, duration in enumerate((400, 800)):  # "2" whose end packets were all lost
        alice.send(a_port, rtp(i, 8000, rfc4733(2, False, duration), pt=101, marker=i == 0))
    seq = press(alice, a_port, 9, 2, 16000)
    wait_until(lambda: engine.stats(a)["packets_in"] == seq)  # events precede the count
    assert [e for e in engine.read_events() if e[0] == "dtmf"] == [
        ("dtmf", a, "2", 100, "rfc4733"),  # reported when the next press starts
        ("dtmf", a, "9", 200, "rfc4733"),
    ]
    alice.send(a_port, rtp(seq, 8000, rfc4733(2, True, 800), pt=101))  # late end of "2"
    alice.send(a_port, rtp(seq + 1, 24000, rfc4733(17, True, 800), pt=101))  # not a key
    wait_until(lambda: engine.stats(a)["packets_in"] == seq + 2)
    assert [e for e in engine.read_events() if e[0] == "dtmf"] == []
    stats = engine.stats(a)
    assert stats["lost"] == 0 and stats["late"] == 0, "event packets count for the sequence"


# --- ports and lifecycle --------------------------------------------------------------


def test_exhaustion_skipping_busy_ports_and_rotation(make_engine, impl) -> None:
    engine = make_engine(3)
    low = engine.port_min
    busy = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    busy.bind((HOST, low + 2))  # another process holds the middle port
    try:
        l1, p1 = engine.allocate_leg()
        assert p1 == low
        engine.release(l1)
        _, p2 = engine.allocate_leg()
        assert p2 == low + 4, "rotation: not the port just freed, and the busy one skipped"
        _, p3 = engine.allocate_leg()
        assert p3 == low
        with pytest.raises(impl.MediaError, match="no free RTP port"):
            engine.allocate_leg()
        busy.close()
        _, p4 = engine.allocate_leg()
        assert p4 == low + 2
        assert engine.counters()["legs"] == 3
    finally:
        busy.close()


def test_stop_closes_every_socket(impl, phones) -> None:
    low, high = free_port_range(3)
    engine = impl.MediaEngine(HOST, low, high)
    engine.start()
    alice = phones()
    legs = [engine.allocate_leg() for _ in range(3)]
    engine.set_remote(legs[0][0], *alice.addr)
    engine.play(legs[0][0], pcm16(tone(440, 8000)))
    alice.next()
    engine.stop()
    engine.stop()
    for _, port in legs:
        probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        probe.bind((HOST, port))
        probe.close()
    with pytest.raises(impl.MediaError, match="stopped"):
        engine.allocate_leg()


def test_bad_arguments(make_engine, impl) -> None:
    engine = make_engine()
    leg, _ = engine.allocate_leg()
    with pytest.raises(impl.MediaError, match="IPv4 literal"):
        engine.set_remote(leg, "example.com", 4000)
    with pytest.raises(impl.MediaError, match="itself"):
        engine.connect(leg, leg)
    with pytest.raises(impl.MediaError, match="not active"):
        engine.connect(leg, 999)
    with pytest.raises(ValueError):
        impl.MediaEngine(HOST, 5000, 5000)


# --- the asyncio adapter --------------------------------------------------------------


@pytest.fixture
def relay_factory(impl: ModuleType):
    from edge_core.media.engine import EngineRelay

    def make(pairs: int = 4, **kwargs: Any) -> EngineRelay:
        return EngineRelay(HOST, *free_port_range(pairs), engine_cls=impl.MediaEngine, **kwargs)

    return make


async def test_engine_relay_drives_the_engine_as_the_b2bua_does(relay_factory, impl, phones) -> None:
    from edge_core.media.legs import MediaError

    relay = relay_factory()
    await relay.start()
    try:
        assert relay.implementation == (
            "python-engine" if impl is mediaengine_py else "cython-engine"
        )
        alice, bob = phones(), phones()
        a, b = relay.allocate_leg(), relay.allocate_leg()
        assert a.local_host == HOST and a.local_port % 2 == 0 and a.rtcp_port == a.local_port + 1
        relay.set_remote(a, "127.0.0.1", 9)
        relay.set_remote(b, *bob.addr)
        relay.connect(a, b)
        loop = asyncio.get_running_loop()
        alice.send(a.local_port, rtp(1, 160))
        data, _ = await loop.run_in_executor(None, bob.next)
        assert data[12:] == b"\xff" * 160
        event = await asyncio.wait_for(relay.events.get(), TIMEOUT_S)
        assert event == ("latched", a.id, *alice.addr) and a.remote == alice.addr
        press(alice, a.local_port, 3, 2, 320)
        event = await asyncio.wait_for(relay.events.get(), TIMEOUT_S)
        assert event == ("dtmf", a.id, "3", 200, "rfc4733")
        assert relay.stats()["legs_active"] == 2

        async def redundant_end_packets_read() -> None:
            while relay.refresh(a)["packets_in"] < 7:
                await asyncio.sleep(0.001)

        await asyncio.wait_for(redundant_end_packets_read(), TIMEOUT_S)
        relay.release(a)
        relay.release(a)  # idempotent
        assert a.packets_in == 7 and a.last_rx > 0
        assert relay.refresh(b)["packets_out"] == b.packets_out >= 1
        with pytest.raises(MediaError, match="not active"):
            relay.set_remote(a, HOST, 4000)
    finally:
        await relay.stop()
    assert relay.stats()["legs_active"] == 0


async def test_engine_relay_play_done_and_exhaustion(relay_factory, phones) -> None:
    from edge_core.media.legs import MediaError

    relay = relay_factory(1)
    await relay.start()
    try:
        bob = phones()
        leg = relay.allocate_leg()
        with pytest.raises(MediaError, match="no free RTP port"):
            relay.allocate_leg()
        relay.set_remote(leg, *bob.addr)
        relay.play(leg, pcm16(tone(1000, 800)), play_id=3)
        event = await asyncio.wait_for(relay.events.get(), TIMEOUT_S)
        assert event == ("play_done", leg.id, 3)
        relay.release(leg)
        assert leg.packets_out == 5
    finally:
        await relay.stop()
