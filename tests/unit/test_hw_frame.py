"""The shared frame codec and link on CPython: the fixed vectors (the same ones run on
MicroPython in tests/integration/test_hw_micropython.py), CRC against an independent
implementation, hypothesis round trips and fuzzing, and a lossy channel."""

from __future__ import annotations

import binascii
import random

from hypothesis import given, settings
from hypothesis import strategies as st

from appliance.firmware import frame, link
from tests.micropython import hw_vectors

bodies = st.binary(max_size=frame.MAX_BODY)


def test_fixed_vectors_on_cpython() -> None:
    assert hw_vectors.run() == 10


@given(st.binary(max_size=600))
def test_crc_matches_binascii_crc_hqx(data: bytes) -> None:
    assert frame.crc16(data) == binascii.crc_hqx(data, 0xFFFF)


@given(st.binary(max_size=1200))
def test_cobs_round_trip_and_no_zero(data: bytes) -> None:
    encoded = frame.cobs_encode(data)
    assert 0 not in encoded
    assert len(encoded) <= len(data) + len(data) // 254 + 1
    assert frame.cobs_decode(encoded) == data


@given(st.integers(0, 255), st.integers(0, 255), bodies)
def test_frame_round_trip(kind: int, seq: int, body: bytes) -> None:
    wire = frame.encode_frame(kind, seq, body)
    assert wire.count(0) == 1 and wire.endswith(b"\x00")
    assert frame.FrameDecoder().feed(wire) == [frame.Frame(kind, seq, body)]


@settings(max_examples=60)
@given(st.integers(0, 255), st.integers(0, 255), st.binary(max_size=40))
def test_every_single_bit_corruption_is_detected(kind: int, seq: int, body: bytes) -> None:
    wire = frame.encode_frame(kind, seq, body)
    for bit in range((len(wire) - 1) * 8):
        bad = bytearray(wire)
        bad[bit // 8] ^= 1 << (bit % 8)
        out = frame.FrameDecoder().feed(bytes(bad) + b"\x00")
        assert not any(isinstance(x, frame.Frame) for x in out), bit


@settings(max_examples=300)
@given(st.binary(max_size=2000))
def test_garbage_never_raises(data: bytes) -> None:
    decoder = frame.FrameDecoder()
    out = decoder.feed(data)
    assert all(isinstance(x, frame.Frame | frame.FrameError) for x in out)
    # after any garbage, a delimiter and a good frame come through
    wire = frame.encode_frame(0x11, 5, b"ok")
    assert decoder.feed(b"\x00" + wire)[-1] == frame.Frame(0x11, 5, b"ok")


@settings(max_examples=200)
@given(st.binary(max_size=600))
def test_link_never_raises_on_garbage(data: bytes) -> None:
    end = link.Link(link.ROLE_MCU, 1, 0)
    for item in end.receive(data, 0):
        assert isinstance(
            item, link.Message | link.LinkUp | link.VersionMismatch | frame.FrameError
        )


@settings(max_examples=30, deadline=None)
@given(st.integers(0, 2**32 - 1), st.lists(bodies, min_size=1, max_size=12))
def test_lossy_channel_delivers_each_message_once_in_order(
    seed: int, payloads: list[bytes]
) -> None:
    """Both directions drop and corrupt frames at random; with enough attempts every
    message arrives exactly once and in order."""
    rng = random.Random(seed)
    host = link.Link(link.ROLE_HOST, 1, 0, retry_ms=50, max_attempts=1000, hello_ms=50)
    mcu = link.Link(link.ROLE_MCU, 2, 0, retry_ms=50, max_attempts=1000, hello_ms=50)
    got: list[bytes] = []

    def channel(data: bytes) -> bytes:
        frames = [f + b"\x00" for f in data.split(b"\x00") if f]
        out = bytearray()
        for f in frames:
            roll = rng.random()
            if roll < 0.25:
                continue  # lost
            if roll < 0.35:
                f = bytearray(f)
                f[rng.randrange(len(f) - 1)] ^= 1 << rng.randrange(8)
                f = bytes(f)
            out.extend(f)
        return bytes(out)

    for p in payloads:
        host.send(0x11, p, 0)
    now = 0
    while len(got) < len(payloads) and now < 600_000:
        now += 10
        host.poll(now)
        mcu.poll(now)
        for e in mcu.receive(channel(host.data_to_send()), now):
            if isinstance(e, link.Message):
                got.append(e.body)
        host.receive(channel(mcu.data_to_send()), now)
    assert got == payloads
