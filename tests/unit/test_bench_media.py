"""bench/media.py's parts: bencode for rtpengine's ng protocol, percentiles, the C relay."""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench"
sys.path.insert(0, str(BENCH))

import _bencode  # noqa: E402
import media  # noqa: E402
from _media_relays import free_port_block, sdp_audio_port  # noqa: E402

# ------------------------------------------------------------------ bencode


def test_bencode_round_trip() -> None:
    message = {"command": "offer", "call-id": "c1", "flags": ["trust-address", b"x"],
               "n": -42, "sdp": b"v=0\r\nm=audio 4000 RTP/AVP 0\r\n"}
    wire = _bencode.encode(message)
    assert wire.startswith(b"d7:call-id2:c17:command5:offer")  # keys sorted, as specified
    decoded = _bencode.decode(wire)
    assert decoded == {"command": b"offer", "call-id": b"c1", "flags": [b"trust-address", b"x"],
                       "n": -42, "sdp": b"v=0\r\nm=audio 4000 RTP/AVP 0\r\n"}


def test_bencode_decodes_unsorted_keys_as_rtpengine_sends_them() -> None:
    assert _bencode.decode(b"d6:result2:ok3:sdp3:v=0e") == {"result": b"ok", "sdp": b"v=0"}


@pytest.mark.parametrize("wire", [b"i12", b"5:abc", b"d3:key", b"x", b"i1ei2e", b"d1:ai1e"])
def test_bencode_rejects_malformed(wire: bytes) -> None:
    with pytest.raises(_bencode.BencodeError):
        _bencode.decode(wire)


def test_sdp_audio_port() -> None:
    assert sdp_audio_port(b"v=0\r\nc=IN IP4 127.0.0.1\r\nm=audio 30018 RTP/AVP 0\r\n") == 30018


# ------------------------------------------------------------------ percentiles


def test_percentile_of_empty_histogram_is_none() -> None:
    assert media.histogram_percentile([0, 0, 0], 0.99) is None


def test_percentiles_report_the_upper_edge_of_the_bin() -> None:
    histogram = [0] * 10
    histogram[2] = 50  # 50 samples in [2, 3)
    histogram[7] = 50  # 50 samples in [7, 8)
    assert media.histogram_percentile(histogram, 0.50) == 3.0
    assert media.histogram_percentile(histogram, 0.51) == 8.0
    assert media.histogram_percentile(histogram, 0.99) == 8.0


def test_p99_is_the_99th_of_100_samples() -> None:
    histogram = [1] * 100  # one sample per bin 0..99
    assert media.histogram_percentile(histogram, 0.99) == 99.0
    assert media.histogram_percentile(histogram, 1.0) == 100.0
    assert media.histogram_percentile(histogram, 0.0) == 1.0


# ------------------------------------------------------------------ C relay


@pytest.mark.skipif(shutil.which("gcc") is None, reason="gcc not installed")
def test_c_relay_latches_and_relays_both_ways(tmp_path: Path) -> None:
    binary = media.build_c_relay(tmp_path)
    base = free_port_block(2, (20000, 29999))
    relay = subprocess.Popen([str(binary), "127.0.0.1", str(base), "1"], stdout=subprocess.PIPE)
    a = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    b = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        assert relay.stdout is not None
        assert relay.stdout.readline().strip() == b"ready"
        for sock in (a, b):
            sock.bind(("127.0.0.1", 0))
            sock.settimeout(5.0)
        b.sendto(b"latch-b", ("127.0.0.1", base + 1))  # A unknown yet: dropped
        a.sendto(b"a-to-b", ("127.0.0.1", base))  # latches A, forwarded to B
        data, source = b.recvfrom(2048)
        assert (data, source) == (b"a-to-b", ("127.0.0.1", base + 1))
        for i in range(5):
            b.sendto(b"b-to-a %d" % i, ("127.0.0.1", base + 1))
            data, source = a.recvfrom(2048)
            assert (data, source) == (b"b-to-a %d" % i, ("127.0.0.1", base))
    finally:
        a.close()
        b.close()
        relay.terminate()
        relay.wait(timeout=5)
        if relay.stdout is not None:
            relay.stdout.close()
