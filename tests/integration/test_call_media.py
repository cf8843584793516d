"""Media through the real edge daemon: audio, RFC 4733 digits, recording, quality, timeout.

The simulated caller sends a 400 Hz tone and keys digits as RFC 4733 telephone-events;
the callee sends 1 kHz. After the call the CDR must carry the digits the edge heard and
a MOS, and the stereo recording must hold the caller on the left and the callee on the
right -- checked by Goertzel power on each channel, as a person with headphones would.
"""

from __future__ import annotations

import asyncio
import math
import sqlite3
import wave
from array import array
from collections.abc import Callable
from pathlib import Path

import pytest

from appliance.sim.phones import CALLEE_TONE_HZ, CALLER_TONE_HZ, Phone
from appliance.sim.rtp import build_packet, tone_frame
from tests.sipp import EdgeProcess

pytestmark = pytest.mark.timeout(90)

DOMAIN = "test.local"
USERS = {"1001": "pw1001", "2001": "pw2001"}


def goertzel_power(samples: array, freq: float, rate: int = 8000) -> float:
    coeff = 2 * math.cos(2 * math.pi * freq / rate)
    s1 = s2 = 0.0
    for x in samples:
        s1, s2 = x + coeff * s1 - s2, s1
    return s1 * s1 + s2 * s2 - coeff * s1 * s2


def cdr_rows(db: str) -> list[sqlite3.Row]:
    with sqlite3.connect(db) as conn:
        conn.row_factory = sqlite3.Row
        return conn.execute("SELECT * FROM cdrs ORDER BY id").fetchall()


def recording_rows(db: str) -> list[sqlite3.Row]:
    with sqlite3.connect(db) as conn:
        conn.row_factory = sqlite3.Row
        return conn.execute("SELECT * FROM recordings").fetchall()


async def test_call_carries_audio_digits_and_a_stereo_recording(
    edge_factory: Callable[..., EdgeProcess], tmp_path: Path
) -> None:
    edge = edge_factory({
        "extensions": [{"number": n, "password": p} for n, p in USERS.items()],
        "sip": {"t1_ms": 100},
        "media": {"recordings_dir": str(tmp_path / "rec")},
    })  # fmt: skip
    alice = Phone("1001", USERS["1001"], edge.sip_udp, DOMAIN)
    bob = Phone("2001", USERS["2001"], edge.sip_udp, DOMAIN)
    async with alice, bob:
        await asyncio.gather(alice.register(), bob.register())
        result = await alice.call("2001", talk_s=1.5, callee=bob, digits="42#")
    assert result.ok, result.line(1)
    edge.stop()

    (cdr,) = cdr_rows(edge.config["store"]["path"])
    assert cdr["disposition"] == "answered"
    assert cdr["dtmf"] == "42#"  # each press reported once despite the redundant end packets
    assert cdr["cause"] == "normal"
    assert cdr["mos"] is not None and cdr["mos"] > 4.0  # loopback: no loss, little jitter
    assert cdr["a_lost"] == 0 and cdr["b_lost"] == 0

    (rec,) = recording_rows(edge.config["store"]["path"])
    assert rec["path"] == cdr["recording"]
    assert Path(rec["path"]).name == f"{cdr['call_id']}.wav"
    with wave.open(rec["path"]) as wav:
        assert (wav.getnchannels(), wav.getsampwidth(), wav.getframerate()) == (2, 2, 8000)
        frames = wav.readframes(wav.getnframes())
    assert 1.0 <= rec["duration_s"] <= 2.5
    stereo = array("h", frames)
    left, right = stereo[0::2], stereo[1::2]
    middle = slice(len(left) // 2, len(left) // 2 + 1600)  # 200 ms well inside the call
    assert goertzel_power(left[middle], CALLER_TONE_HZ) > 100 * goertzel_power(left[middle], CALLEE_TONE_HZ)
    assert goertzel_power(right[middle], CALLEE_TONE_HZ) > 100 * goertzel_power(right[middle], CALLER_TONE_HZ)


async def test_call_whose_rtp_stops_is_ended_with_rtp_timeout(
    edge_factory: Callable[..., EdgeProcess],
) -> None:
    """The callee answers, then its RTP stops: after media.rtp_timeout_s the edge sends
    BYE on both legs and writes a CDR with cause rtp-timeout."""
    edge = edge_factory({
        "extensions": [{"number": n, "password": p} for n, p in USERS.items()],
        "sip": {"t1_ms": 100},
        "media": {"rtp_timeout_s": 0.6, "record_calls": False},
    })  # fmt: skip
    alice = Phone("1001", USERS["1001"], edge.sip_udp, DOMAIN)
    bob = Phone("2001", USERS["2001"], edge.sip_udp, DOMAIN)
    bob.echo = True  # bob only echoes what arrives: when alice's media stops, both legs go quiet
    async with alice, bob:
        await asyncio.gather(alice.register(), bob.register())
        # alice sends 0.3 s of audio and then stays on the line silent for up to 10 s
        result = await alice.call("2001", talk_s=10.0, callee=bob, silent_after_s=0.3)
    assert result.status == 200
    assert result.hangup_side == "callee"  # the edge's BYE reached alice first
    edge.stop()
    (cdr,) = cdr_rows(edge.config["store"]["path"])
    assert (cdr["cause"], cdr["hangup_side"], cdr["sip_reason"]) == ("rtp-timeout", "edge", "RTP Timeout")
    assert cdr["end_time"] - cdr["answer_time"] < 5.0


def test_tone_frame_is_what_the_recording_check_expects() -> None:
    """The phones' frames decode to their nominal tones (guards the check above)."""
    from cython_ext.g711 import ulaw_decode

    for freq in (CALLER_TONE_HZ, CALLEE_TONE_HZ):
        pcm = array("h", ulaw_decode(tone_frame(freq) * 10))
        other = CALLEE_TONE_HZ if freq == CALLER_TONE_HZ else CALLER_TONE_HZ
        assert goertzel_power(pcm, freq) > 100 * goertzel_power(pcm, other)
    assert len(build_packet(0, 1, 160, 7, tone_frame(400.0))) == 172
