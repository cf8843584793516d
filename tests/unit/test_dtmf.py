"""DTMF kernel: in-band Goertzel detection (Q.24 practice) and RFC 4733 telephone-events.

Every test runs once per implementation (ids ``c-extension`` and ``pure-python``); the
compiled one is skipped when it is not built, unless ``BRANCHLINE_REQUIRE_COMPILED=1``.
Signals are synthesised here: 8 kHz 16-bit PCM, levels in dBm0 (0 dBm0 = 22787 peak).
"""

from __future__ import annotations

import functools
import math
import random
import struct
from types import ModuleType

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cython_ext.dtmf import dtmf_py
from tests.kernels import compiled_or_none, require_compiled

DBM0_PEAK = 22787.0
ROW_HZ = (697.0, 770.0, 852.0, 941.0)
COL_HZ = (1209.0, 1336.0, 1477.0, 1633.0)
KEYS = "123A456B789C*0#D"


COMPILED = compiled_or_none("dtmf")


def _require_compiled() -> ModuleType:
    return require_compiled("dtmf")


@pytest.fixture(scope="module", params=["c-extension", "pure-python"])
def dtmf(request: pytest.FixtureRequest) -> ModuleType:
    """The implementation under test."""
    if request.param == "pure-python":
        return dtmf_py
    return _require_compiled()


# -- signals -------------------------------------------------------------------------


def key_tone(
    digit: str, ms: float, level_dbm0: float = -10.0, twist_db: float = 0.0,
    rng: random.Random | None = None,
) -> list[float]:  # fmt: skip
    """A key at a total level; ``twist_db`` > 0: the column tone that much below the row."""
    index = KEYS.index(digit)
    f_row, f_col = ROW_HZ[index // 4], COL_HZ[index % 4]
    total = 10.0 ** (level_dbm0 / 10.0)
    p_row = total / (1.0 + 10.0 ** (-twist_db / 10.0))
    a_row = DBM0_PEAK * math.sqrt(p_row)
    a_col = DBM0_PEAK * math.sqrt(total - p_row)
    ph_row, ph_col = (rng.uniform(0, 2 * math.pi), rng.uniform(0, 2 * math.pi)) if rng else (0, 0)
    w_row, w_col = 2 * math.pi * f_row / 8000, 2 * math.pi * f_col / 8000
    return [
        a_row * math.sin(w_row * i + ph_row) + a_col * math.sin(w_col * i + ph_col)
        for i in range(round(ms * 8))
    ]


def tones(freqs: list[float], ms: int, level_dbm0: float) -> list[float]:
    a = DBM0_PEAK * math.sqrt(10.0 ** (level_dbm0 / 10.0) / len(freqs))
    return [sum(a * math.sin(2 * math.pi * f * i / 8000) for f in freqs) for i in range(ms * 8)]


def silence(ms: float) -> list[float]:
    return [0.0] * round(ms * 8)


def add_noise(xs: list[float], snr_db: float, level_dbm0: float, rng: random.Random) -> list[float]:
    """White noise ``snr_db`` below a signal of ``level_dbm0`` (total power)."""
    sigma = DBM0_PEAK * math.sqrt(10.0 ** (level_dbm0 / 10.0) / 2) * 10.0 ** (-snr_db / 20.0)
    return [x + rng.gauss(0.0, sigma) for x in xs]


@functools.cache
def speech_like(ms: int, level_dbm0: float) -> list[float]:
    """Harmonics of a 90-150 Hz gliding fundamental under three moving formant peaks."""
    out: list[float] = []
    phases = [0.0] * 40
    formants = ((500.0, 80.0), (1500.0, 120.0), (2500.0, 150.0))
    for i in range(ms * 8):
        t = i / 8000
        f0 = 120 + 30 * math.sin(2 * math.pi * 3 * t)
        shift = 1 + 0.4 * math.sin(2 * math.pi * 2 * t)
        sample = 0.0
        for k in range(1, 40):
            fk = k * f0
            if fk > 3800:
                break
            phases[k] += 2 * math.pi * fk / 8000
            amp = 0.02 + sum(math.exp(-(((fk - f * shift) / bw) ** 2) / 2) for f, bw in formants)
            sample += amp * math.sin(phases[k])
        out.append(sample)
    rms = math.sqrt(sum(x * x for x in out) / len(out))
    gain = DBM0_PEAK * math.sqrt(10.0 ** (level_dbm0 / 10.0) / 2) / rms
    return [x * gain for x in out]


def pcm(xs: list[float]) -> bytes:
    return struct.pack(f"<{len(xs)}h", *(max(-32768, min(32767, round(x))) for x in xs))


def detect(dtmf: ModuleType, xs: list[float]) -> list:
    detector = dtmf.DtmfDetector()
    return detector.feed(pcm(xs)) + detector.flush()


def digits(dtmf: ModuleType, xs: list[float]) -> str:
    return "".join(tone.digit for tone in detect(dtmf, xs))


# -- in-band detection ---------------------------------------------------------------


def test_implementation_is_exposed(dtmf: ModuleType) -> None:
    expected = "python" if dtmf is dtmf_py else "cython"
    assert dtmf.IMPLEMENTATION == expected


@pytest.mark.parametrize("level", [0.0, -10.0, -20.0])
@pytest.mark.parametrize("ms", [40, 100])
def test_every_key_at_every_level_in_noise(dtmf: ModuleType, level: float, ms: int) -> None:
    rng = random.Random(f"{level}/{ms}")
    for digit in KEYS:
        lead = silence(30 + rng.randrange(13))
        xs = add_noise(lead + key_tone(digit, ms, level, rng=rng) + silence(60), 20, level, rng)
        found = detect(dtmf, xs)
        assert [t.digit for t in found] == [digit], (digit, level, ms)
        assert abs(found[0].start_sample - len(lead)) <= 102
        assert ms * 8 - 204 <= found[0].duration_samples <= ms * 8 + 204


def test_sequence_with_50ms_gaps(dtmf: ModuleType) -> None:
    rng = random.Random(7)
    xs: list[float] = []
    for digit in "1234567890*#":
        xs += key_tone(digit, 50, -10, rng=rng) + silence(50)
    assert digits(dtmf, add_noise(xs, 20, -10, rng)) == "1234567890*#"


@pytest.mark.parametrize(
    ("name", "signal"),
    [
        ("1 kHz", lambda level: tones([1000.0], 2000, level)),
        ("ringback 440+480", lambda level: tones([440.0, 480.0], 2000, level)),
        ("dial 350+440", lambda level: tones([350.0, 440.0], 2000, level)),
        ("white noise", lambda level: add_noise(silence(2000), 0, level, random.Random(3))),
        ("speech-like", lambda level: speech_like(2000, level)),
    ],
)
@pytest.mark.parametrize("level", [0.0, -10.0, -20.0])
def test_no_key_in_non_dtmf_signals(dtmf: ModuleType, name: str, signal, level: float) -> None:
    assert digits(dtmf, signal(level)) == ""


@pytest.mark.parametrize(("twist_db", "heard"), [(-6.0, False), (-3.0, True), (6.0, True),
                                                 (10.0, False), (-10.0, False)])  # fmt: skip
def test_twist_limits(dtmf: ModuleType, twist_db: float, heard: bool) -> None:
    """Normal twist (column weaker) up to 8 dB, reverse up to 4 dB."""
    xs = silence(20) + key_tone("5", 100, -6, twist_db) + silence(60)
    assert digits(dtmf, xs) == ("5" if heard else "")


def test_too_quiet_and_too_short_are_rejected(dtmf: ModuleType) -> None:
    assert digits(dtmf, key_tone("8", 100, -40) + silence(60)) == ""
    for offset in range(0, 102, 17):
        assert digits(dtmf, silence(offset / 8) + key_tone("8", 20) + silence(60)) == ""


def test_short_dropout_does_not_split_a_press(dtmf: ModuleType) -> None:
    """A dropout within one block is bridged (4 ms: at most one block misses)."""
    for offset in range(0, 102, 7):
        xs = silence(offset / 8) + key_tone("9", 60) + silence(4) + key_tone("9", 60)
        assert digits(dtmf, xs + silence(60)) == "9", offset


def test_repeated_key_after_40ms_pause_is_two_presses(dtmf: ModuleType) -> None:
    rng = random.Random(11)
    for _ in range(5):
        xs = silence(rng.randrange(13)) + key_tone("5", 45, rng=rng) + silence(40)
        xs += key_tone("5", 45, rng=rng) + silence(60)
        assert digits(dtmf, xs) == "55"


def test_tone_held_at_end_of_stream_is_reported_on_flush(dtmf: ModuleType) -> None:
    detector = dtmf.DtmfDetector()
    assert detector.feed(pcm(key_tone("#", 200))) == []
    assert [t.digit for t in detector.flush()] == ["#"]
    assert detector.flush() == []


def test_odd_length_pcm_is_refused(dtmf: ModuleType) -> None:
    with pytest.raises(ValueError):
        dtmf.DtmfDetector().feed(b"\x00\x01\x02")


def test_classify_one_block(dtmf: ModuleType) -> None:
    detector = dtmf.DtmfDetector()
    assert detector.classify(key_tone("D", 102 / 8)) == "D"
    assert detector.classify(silence(102 / 8)) == ""
    with pytest.raises(ValueError):
        detector.classify([0.0] * 50)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    keys=st.lists(
        st.tuples(
            st.sampled_from(KEYS),
            st.floats(-20.0, 0.0),  # level, dBm0
            st.integers(40, 120),  # tone, ms
            st.integers(40, 100),  # following pause, ms
            st.floats(-3.0, 6.0),  # twist, dB
        ),
        min_size=1, max_size=6,
    ),
    lead=st.integers(0, 200),
    seed=st.integers(0, 2**32 - 1),
)  # fmt: skip
def test_random_key_strings_are_heard_exactly(dtmf: ModuleType, keys, lead: int, seed: int) -> None:
    rng = random.Random(seed)  # phases and noise
    xs = silence(lead / 8)
    for digit, level, ms, pause, twist in keys:
        tone = add_noise(key_tone(digit, ms, level, twist, rng), 20, level, rng)
        xs += tone + silence(pause)
    assert digits(dtmf, xs) == "".join(k[0] for k in keys)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.large_base_example])
@given(data=st.data())
def test_chunking_does_not_matter_and_implementations_agree(data) -> None:
    compiled = _require_compiled()
    rng = random.Random(data.draw(st.integers(0, 2**32)))
    xs: list[float] = []
    for _ in range(data.draw(st.integers(1, 4))):
        xs += silence(rng.randrange(0, 80)) + key_tone(
            rng.choice(KEYS), rng.randrange(20, 90), rng.uniform(-25, 0), rng.uniform(-5, 9), rng
        )
    raw = pcm(add_noise(xs, rng.uniform(5, 30), -10, rng))
    whole = detect(dtmf_py, [float(x) for x in struct.unpack(f"<{len(raw) // 2}h", raw)])
    detector = compiled.DtmfDetector()
    chunked = []
    pos = 0
    while pos < len(raw):
        size = 2 * data.draw(st.integers(0, 400))
        chunked += detector.feed(raw[pos : pos + size])
        pos += size
    assert chunked + detector.flush() == whole


# -- RFC 4733 ------------------------------------------------------------------------


def test_parse_event(dtmf: ModuleType) -> None:
    assert dtmf.parse_event(bytes([5, 0x8A, 0x03, 0x20])) == dtmf.TelephoneEvent(5, True, 10, 800)
    assert dtmf.parse_event(bytes([11, 0x3F, 0, 160, 99])) == dtmf.TelephoneEvent(
        11, False, 63, 160
    )
    with pytest.raises(ValueError):
        dtmf.parse_event(b"\x01\x02\x03")


def test_digit_event_mapping(dtmf: ModuleType) -> None:
    assert [dtmf.event_to_digit(e) for e in range(16)] == list("0123456789*#ABCD")
    assert [dtmf.digit_to_event(d) for d in "0123456789*#ABCDabcd"] == [*range(16), 12, 13, 14, 15]
    for bad in (16, -1, 255):
        with pytest.raises(ValueError):
            dtmf.event_to_digit(bad)
    for bad_digit in ("E", "", "12"):
        with pytest.raises(ValueError):
            dtmf.digit_to_event(bad_digit)


def test_payloads_follow_rfc4733_2_5(dtmf: ModuleType) -> None:
    packets = dtmf.telephone_event_payloads("7", duration_ms=100, volume=10, ptime_ms=20)
    parsed = [dtmf.parse_event(p) for p, _, _ in packets]
    assert [m for _, m, _ in packets] == [True] + [False] * (len(packets) - 1)
    assert [e for _, _, e in packets] == [False] * 4 + [True] * 3
    assert [p.duration for p in parsed] == [160, 320, 480, 640, 800, 800, 800]
    assert {(p.event, p.volume) for p in parsed} == {(7, 10)}
    assert [p.end for p in parsed] == [e for _, _, e in packets]
    short = dtmf.telephone_event_payloads("#", duration_ms=20)
    assert [(m, e) for _, m, e in short] == [(True, True), (False, True), (False, True)]
    with pytest.raises(ValueError):
        dtmf.telephone_event_payloads("1", volume=64)
    with pytest.raises(ValueError):
        dtmf.telephone_event_payloads("1", duration_ms=9000)


def feed_press(receiver, timestamp: int, digit: str, ms: int = 100, drop_end: bool = False,
               duplicate: bool = False) -> list:  # fmt: skip
    out = []
    for payload, marker, is_end in dtmf_py.telephone_event_payloads(digit, ms):
        if drop_end and is_end:
            continue
        for _ in range(2 if duplicate else 1):
            out.append(receiver.feed(timestamp, payload, marker))
    return [e for e in out if e is not None]


def test_receiver_reports_each_press_once(dtmf: ModuleType) -> None:
    rx = dtmf.TelephoneEventReceiver()
    assert feed_press(rx, 1000, "1") == [dtmf.DtmfEvent("1", 100)]
    assert feed_press(rx, 3000, "1", 60, duplicate=True) == [dtmf.DtmfEvent("1", 60)]
    assert feed_press(rx, 5000, "#", 40) == [dtmf.DtmfEvent("#", 40)]
    assert rx.flush() == []


def test_receiver_retransmitted_start_is_not_a_new_press(dtmf: ModuleType) -> None:
    rx = dtmf.TelephoneEventReceiver()
    start, _, _ = dtmf.telephone_event_payloads("4")[0]
    assert rx.feed(160, start, True) is None
    assert rx.feed(160, start, True) is None
    assert feed_press(rx, 160, "4") == [dtmf.DtmfEvent("4", 100)]
    assert rx.feed(160, start, True) is None  # a straggler after the end
    assert rx.flush() == []


def test_receiver_lost_end_is_reported_by_next_press_or_flush(dtmf: ModuleType) -> None:
    rx = dtmf.TelephoneEventReceiver()
    assert feed_press(rx, 8000, "2", drop_end=True) == []
    assert feed_press(rx, 9600, "3") == [dtmf.DtmfEvent("2", 80), dtmf.DtmfEvent("3", 100)]
    assert feed_press(rx, 11200, "5", drop_end=True) == []
    assert rx.flush() == [dtmf.DtmfEvent("5", 80)]
    assert rx.flush() == []


def test_receiver_lost_end_then_only_end_packets(dtmf: ModuleType) -> None:
    rx = dtmf.TelephoneEventReceiver()
    feed_press(rx, 100, "6", drop_end=True)
    end = [p for p, _, e in dtmf.telephone_event_payloads("7", 60) if e]
    got = [rx.feed(900, p, False) for p in end]
    assert got == [dtmf.DtmfEvent("6", 80), dtmf.DtmfEvent("7", 60), None]


def test_receiver_ignores_late_packets_and_wraps(dtmf: ModuleType) -> None:
    rx = dtmf.TelephoneEventReceiver()
    near_wrap = 2**32 - 400
    assert feed_press(rx, near_wrap, "8") == [dtmf.DtmfEvent("8", 100)]
    assert feed_press(rx, 1200, "9") == [dtmf.DtmfEvent("9", 100)]  # after the wrap
    assert feed_press(rx, near_wrap, "8") == []  # late duplicates of the earlier press
    flash = bytes([16, 0x80, 0, 160])
    assert rx.feed(5000, flash, True) is None  # not a DTMF key


@settings(max_examples=60, deadline=None)
@given(
    presses=st.lists(st.tuples(st.sampled_from(KEYS), st.integers(20, 500), st.booleans()),
                     min_size=1, max_size=8),
    start=st.integers(0, 2**32 - 1),
)  # fmt: skip
def test_receiver_random_presses(dtmf: ModuleType, presses, start: int) -> None:
    rx = dtmf.TelephoneEventReceiver()
    got = []
    timestamp = start
    for digit, ms, duplicate in presses:
        got += feed_press(rx, timestamp % 2**32, digit, ms, duplicate=duplicate)
        timestamp += ms * 8 + 400
    got += rx.flush()
    assert got == [dtmf.DtmfEvent(d, ms) for d, ms, _ in presses]
