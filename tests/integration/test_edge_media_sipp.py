"""Real SIPp RTP through the real edge daemon: audio, RFC 4733 digits, recording, timeout.

The caller is SIPp playing the captures SIPp ships (``play_pcap_audio``): A-law
speech (g711a.pcap), then the RFC 4733 keys 1 and 9 (dtmf_2833_1/9.pcap). The callee
is SIPp answering PCMA/101 with ``-rtp_echo``, reached through the ``pstn`` trunk
(``^9(\\d+)$``); it sends every packet back, so the edge's callee leg carries the
caller's media again, a little later. What the captures hold (payload type, keys,
length) is read from the files themselves (tests/pcap.py), and what the edge made of
it is read from its store after it stopped: the CDR's digits and cause, the
recordings index, and the stereo WAV (caller left, callee right), compared with the
capture's own decoded audio: by its 20 ms energy envelope (the capture is speech, not
a tone, so loudness over time is what a listener would recognise), and sample for
sample (A-law decodes exactly and the recorder places samples by RTP timestamp).

What arrived at each SIPp is seen on the wire: a packet socket on ``lo``
(``LoopbackCapture``) keeps the datagrams to and from the SIPp ports, since SIPp
itself counts neither the packets ``-rtp_echo`` echoed nor those that came back to
the caller. SIPp sends a capture through a raw socket, and the capture needs one too
(root or CAP_NET_RAW): without it these tests skip.
"""

from __future__ import annotations

import math
import os
import re
import sqlite3
import wave
from array import array
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest

from cython_ext.g711 import alaw_decode
from tests.pcap import (
    LoopbackCapture,
    RtpPacket,
    duration_s,
    read_rtp,
    rtp_packet,
    telephone_events,
)
from tests.sipp import EdgeProcess, Sipp, SippResult, deep_merge

LOCAL = "127.0.0.1"
PCAP_DIR = Path("/usr/share/sip-tester")  # the paths edge_media_uac_*.xml name
SPEECH_PCAP = PCAP_DIR / "g711a.pcap"
DIGIT_PCAPS = (PCAP_DIR / "dtmf_2833_1.pcap", PCAP_DIR / "dtmf_2833_9.pcap")
PCMA, TELEPHONE_EVENT = 8, 101  # what the scenarios offer and answer
RATE = 8000
ENVELOPE_MS = 20
CALL_TIMEOUT_S = 30.0

pytestmark = pytest.mark.timeout(90)

EdgeFactory = Callable[..., EdgeProcess]
SippFactory = Callable[..., Sipp]


# --------------------------------------------------------------------------- helpers


@pytest.fixture(autouse=True)
def _pcaps_present() -> None:
    missing = [p for p in (SPEECH_PCAP, *DIGIT_PCAPS) if not p.is_file()]
    if missing:
        pytest.skip(f"SIPp's pcaps are missing: {missing}")


@pytest.fixture
def raw_sockets() -> None:
    if not LoopbackCapture.available():
        pytest.skip("play_pcap_audio and the capture need raw sockets (root or CAP_NET_RAW)")


def edge_config(uas_port: int, recordings: Path, **media: Any) -> dict[str, Any]:
    """Trunk ``pstn`` to the SIPp callee, no digest auth for the SIPp caller, fast T1."""
    return deep_merge(
        {
            "sip": {"t1_ms": 100, "auth_required": False},
            "trunks": [{"name": "pstn", "host": LOCAL, "port": uas_port, "transport": "udp", "options_interval_s": 0}],
            "routes": [{"match": r"^9(\d+)$", "trunk": "pstn", "number": r"\1"}],
            "media": {"recordings_dir": str(recordings)},
        },
        {"media": media},
    )


def assert_ok(*results: SippResult) -> None:
    for result in results:
        assert result.ok and result.successful == 1 and result.failed == 0, result.describe()


def rows(edge: EdgeProcess, table: str) -> list[dict[str, Any]]:
    assert not edge.running(), "read the store after the edge has stopped"
    con = sqlite3.connect(edge.config["store"]["path"])
    con.row_factory = sqlite3.Row
    try:
        return [dict(r) for r in con.execute(f"SELECT * FROM {table}")]
    finally:
        con.close()


def sdp_payload_types(message_log: str, first_line: str) -> list[list[int]]:
    """The ``m=audio`` formats of each message in a SIPp ``-trace_msg`` log that
    starts with ``first_line`` (a regular expression)."""
    out = []
    for block in re.split(r"^-{10,}.*$", message_log.replace("\r", ""), flags=re.M):
        # each block: "UDP message sent (N bytes):", a blank line, then the message
        message = block.strip().partition("\n")[2].strip()
        if re.match(first_line, message):
            m = re.search(r"^m=audio \d+ RTP/AVP ([\d ]+)$", message, re.M)
            if m:
                out.append([int(x) for x in m.group(1).split()])
    return out


def speech_pcm(packets: Sequence[RtpPacket]) -> array:
    """The capture's A-law payloads decoded, in RTP timestamp order, gaps as silence."""
    voice = sorted((p for p in packets if p.payload_type == PCMA), key=lambda p: p.timestamp)
    base = voice[0].timestamp
    pcm = array("h", bytes(2 * (voice[-1].timestamp - base + len(voice[-1].payload))))
    for p in voice:
        at = p.timestamp - base
        pcm[at : at + len(p.payload)] = array("h", alaw_decode(p.payload))
    return pcm


def envelope(pcm: array, window: int = RATE * ENVELOPE_MS // 1000) -> list[float]:
    """RMS per ``window`` samples, in dB (floor 0 dB) -- loudness as a listener hears it."""
    out = []
    for i in range(0, len(pcm) - window + 1, window):
        power = sum(x * x for x in pcm[i : i + window]) / window
        out.append(10 * math.log10(max(power, 1.0)))
    return out


def pearson(a: Sequence[float], b: Sequence[float]) -> float:
    n = len(a)
    ma, mb = sum(a) / n, sum(b) / n
    cov = sum((x - ma) * (y - mb) for x, y in zip(a, b, strict=True))
    va = sum((x - ma) ** 2 for x in a)
    vb = sum((y - mb) ** 2 for y in b)
    return cov / math.sqrt(va * vb) if va and vb else 0.0


def best_alignment(reference: Sequence[float], signal: Sequence[float]) -> tuple[int, float]:
    """(offset into ``signal``, correlation) where ``reference`` fits best."""
    best = (0, -1.0)
    for lag in range(0, len(signal) - len(reference) + 1):
        r = pearson(reference, signal[lag : lag + len(reference)])
        if r > best[1]:
            best = (lag, r)
    return best


def rfc3550_lost(packets: Sequence[RtpPacket]) -> int:
    """Cumulative packets lost over a stream as it arrived (RFC 3550 §6.4.1, A.3):
    expected (highest extended sequence number - first + 1) minus received,
    duplicates included, summed over each run of one SSRC."""
    lost = 0
    run: list[RtpPacket] = []
    for p in [*packets, None]:
        if run and (p is None or p.ssrc != run[0].ssrc):
            extended, highest = run[0].seq, run[0].seq
            for q in run[1:]:
                delta = (q.seq - highest) & 0xFFFF
                if delta < 0x8000:
                    extended += delta
                    highest = q.seq
            lost += extended - run[0].seq + 1 - len(run)
            run = []
        if p is not None:
            run.append(p)
    return lost


def read_stereo(path: str) -> tuple[tuple[int, int, int], array, array]:
    with wave.open(path) as wav:
        shape = (wav.getnchannels(), wav.getsampwidth(), wav.getframerate())
        frames = array("h", wav.readframes(wav.getnframes()))
    return shape, frames[0::2], frames[1::2]


# --------------------------------------------------------------------------- the captures


def test_the_captures_hold_what_the_scenarios_assume() -> None:
    """PCMA speech of ~7 s in 30 ms packets, and one RFC 4733 key per digit capture."""
    speech = read_rtp(SPEECH_PCAP)
    assert {p.payload_type for p in speech} == {PCMA}
    assert {len(p.payload) for p in speech} == {240}
    assert 6.9 < duration_s(speech) < 7.2  # edge_media_uac_pcap.xml pauses 7.4 s
    assert max(envelope(speech_pcm(speech))) > 60  # speech, not silence
    for path, key in zip(DIGIT_PCAPS, "19", strict=True):
        packets = read_rtp(path)
        assert {p.payload_type for p in packets} == {TELEPHONE_EVENT}
        (event,) = telephone_events(packets, TELEPHONE_EVENT)
        assert event.key == key
        assert event.duration_samples >= 40 * RATE // 1000  # long enough to count
        assert duration_s(packets) < 0.4  # the scenario pauses 0.4 s after each


# --------------------------------------------------------------------------- the tests


@pytest.mark.sipp
@pytest.mark.slow
@pytest.mark.usefixtures("raw_sockets")
def test_pcap_speech_and_digits_through_the_edge(
    edge_factory: EdgeFactory, sipp_factory: SippFactory, tmp_path: Path
) -> None:
    """Speech then keys 1 and 9 from the caller; the callee echoes. What arrives at the
    callee, and back at the caller, is the capture's payloads in order; the CDR has the
    keys; the recording holds the speech on the left and its echo on the right."""
    speech = read_rtp(SPEECH_PCAP)
    speech_payloads = [p.payload for p in speech]
    keyed = "".join(
        e.key for p in DIGIT_PCAPS for e in telephone_events(read_rtp(p), TELEPHONE_EVENT)
    )
    uas = sipp_factory(
        "edge_media_uas_echo",
        calls=1,
        timeout_s=CALL_TIMEOUT_S,
        trace_msg=True,
        extra_args=["-rtp_echo"],
    )
    edge = edge_factory(edge_config(uas.port, tmp_path / "rec"))
    uac = sipp_factory(
        "edge_media_uac_pcap",
        remote=edge.sip_udp,
        service="95550100",
        calls=1,
        timeout_s=CALL_TIMEOUT_S,
        trace_msg=True,
    )
    with LoopbackCapture([uas.media_port, uac.media_port]) as wire:
        uas.start()
        caller = uac.start().wait()
        callee = uas.wait(timeout=10)
    assert_ok(caller, callee)
    assert wire.drops == 0, "the loopback capture could not keep up; nothing to judge"
    edge.stop()

    # offer/answer: PCMA and telephone-event survive on both legs
    assert sdp_payload_types(uas.message_file.read_text(errors="replace"), "INVITE ") == [
        [PCMA, TELEPHONE_EVENT]
    ]
    answers = sdp_payload_types(uac.message_file.read_text(errors="replace"), "SIP/2.0 200 ")
    assert answers and all(a == [PCMA, TELEPHONE_EVENT] for a in answers), answers

    (cdr,) = rows(edge, "cdrs")
    assert (cdr["disposition"], cdr["cause"], cdr["hangup_side"]) == (
        "answered",
        "normal",
        "caller",
    )
    assert cdr["dtmf"] == keyed == "19"

    # what arrived: at the callee from the edge's B port, and (echoed) back at the
    # caller from the edge's A port -- every speech payload in order, both keys
    for port, edge_port in (
        (uas.media_port, cdr["b_rtp_port"]),
        (uac.media_port, cdr["a_rtp_port"]),
    ):
        arrived = wire.rtp_to(port)
        assert arrived and {p.src_port for p in arrived} == {edge_port}, (port, edge_port)
        assert [p.payload for p in arrived if p.payload_type == PCMA] == speech_payloads, port
        assert "".join(e.key for e in telephone_events(arrived, TELEPHONE_EVENT)) == keyed, port

    # Quality: nothing is lost on loopback, but SIPp sends each capture's own RTP
    # header, and the two digit captures share an SSRC with sequence numbers 300
    # apart, so by RFC 3550's arithmetic (and the MOS drawn from it) that gap is loss.
    # The edge must count exactly that on each leg: what the caller sent, and what
    # the callee echoed of what the edge sent it.
    sent = speech + [p for path in DIGIT_PCAPS for p in read_rtp(path)]
    assert cdr["a_lost"] == rfc3550_lost(sent), cdr
    assert cdr["b_lost"] == rfc3550_lost(wire.rtp_to(uas.media_port)), cdr
    assert cdr["mos"] is not None and 1.0 <= cdr["mos"] <= 4.5, cdr

    (rec,) = rows(edge, "recordings")
    assert rec["path"] == cdr["recording"] and os.path.isfile(rec["path"])
    shape, left, right = read_stereo(rec["path"])
    assert shape == (2, 2, RATE)
    assert duration_s(speech) <= rec["duration_s"] <= duration_s(speech) + 4.0

    # Heard: the speech's loudness contour on the left, and a little later on the right.
    pcm = speech_pcm(speech)
    reference = envelope(pcm)
    lag_left, r_left = best_alignment(reference, envelope(left))
    lag_right, r_right = best_alignment(reference, envelope(right))
    assert r_left > 0.95 and r_right > 0.95, (r_left, r_right)
    assert 0 <= lag_right - lag_left <= 200 // ENVELOPE_MS, (lag_left, lag_right)
    # Exact: G.711 decoding is lossless to the recorder, which places samples by RTP
    # timestamp, so each channel holds the capture's decoded speech sample for sample.
    at_left = left.tobytes().find(pcm.tobytes())
    at_right = right.tobytes().find(pcm.tobytes())
    assert at_left >= 0 and at_right >= 0, (at_left, at_right)
    assert at_left % 2 == 0 and at_right % 2 == 0 and at_right >= at_left


@pytest.mark.sipp
@pytest.mark.slow
@pytest.mark.usefixtures("raw_sockets")
def test_call_whose_rtp_stops_is_ended_after_the_timeout(
    edge_factory: EdgeFactory, sipp_factory: SippFactory, tmp_path: Path
) -> None:
    """The caller talks for the capture's 7 s (over four times the timeout: talking
    keeps the call up), then sends nothing: media.rtp_timeout_s after its last packet
    the edge sends BYE to both sides and records cause rtp-timeout."""
    timeout_s = 1.5
    speech = read_rtp(SPEECH_PCAP)
    uas = sipp_factory(
        "edge_media_uas_echo", calls=1, timeout_s=CALL_TIMEOUT_S, extra_args=["-rtp_echo"]
    )
    edge = edge_factory(edge_config(uas.port, tmp_path / "rec", rtp_timeout_s=timeout_s))
    uac = sipp_factory(
        "edge_media_uac_rtp_stops",
        remote=edge.sip_udp,
        service="95550101",
        calls=1,
        timeout_s=CALL_TIMEOUT_S,
    )
    with LoopbackCapture([uac.port, uac.media_port, uas.port]) as wire:
        uas.start()
        caller = uac.start().wait()  # fails unless a BYE came (the scenario waits 20 s)
        callee = uas.wait(timeout=10)
    assert_ok(caller, callee)
    assert wire.drops == 0, "the loopback capture could not keep up; nothing to judge"
    edge.stop()

    (cdr,) = rows(edge, "cdrs")
    assert (cdr["disposition"], cdr["cause"], cdr["hangup_side"], cdr["sip_reason"]) == (
        "answered",
        "rtp-timeout",
        "edge",
        "RTP Timeout",
    )
    sent = [d for d in wire.from_port(uac.media_port) if rtp_packet(*d) is not None]
    assert len(sent) == len(speech)  # the whole capture went out before the call ended
    last_rtp = sent[-1][0]
    for port in (uac.port, uas.port):
        byes = [when for when, _, _, data in wire.to_port(port) if data.startswith(b"BYE ")]
        assert byes, f"no BYE reached port {port}"
        assert timeout_s - 0.1 <= byes[0] - last_rtp <= 4.0, (port, byes[0] - last_rtp)
    talked = cdr["end_time"] - cdr["answer_time"]
    assert duration_s(speech) + timeout_s - 0.2 <= talked <= duration_s(speech) + 4.0, talked
