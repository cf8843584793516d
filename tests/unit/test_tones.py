"""Tones kernel: E.180 call-progress tones (spectrum, cadence, continuity) and the mixer.

Every test runs once per implementation (ids ``c-extension`` and ``pure-python``); the
compiled one is skipped when it is not built, unless ``BRANCHLINE_REQUIRE_COMPILED=1``.
The two implementations must give identical bytes (tested with hypothesis).
"""

from __future__ import annotations

import math
import struct
from types import ModuleType

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cython_ext.tones import tones_py
from cython_ext.tones.specs import TONES, ToneSpec
from tests.kernels import compiled_or_none, require_compiled

DBM0_PEAK = 22787.0


COMPILED = compiled_or_none("tones")


def _require_compiled() -> ModuleType:
    return require_compiled("tones")


@pytest.fixture(scope="module", params=["c-extension", "pure-python"])
def tones(request: pytest.FixtureRequest) -> ModuleType:
    """The implementation under test."""
    if request.param == "pure-python":
        return tones_py
    return _require_compiled()


def samples(pcm: bytes) -> list[int]:
    return list(struct.unpack(f"<{len(pcm) // 2}h", pcm))


def pcm(xs: list[int]) -> bytes:
    return struct.pack(f"<{len(xs)}h", *xs)


def goertzel_power(xs: list[int], freq: float) -> float:
    """Power at ``freq``, scaled so a sine of energy E there gives about E."""
    coef = 2.0 * math.cos(2.0 * math.pi * freq / 8000)
    s1 = s2 = 0.0
    for x in xs:
        s1, s2 = x + coef * s1 - s2, s1
    return (s1 * s1 + s2 * s2 - coef * s1 * s2) * 2.0 / len(xs)


def cycle_samples(spec: ToneSpec) -> int:
    return sum(spec.cadence_ms) * 8


# -- specs ---------------------------------------------------------------------------


def test_implementation_is_exposed(tones: ModuleType) -> None:
    assert tones.IMPLEMENTATION == ("python" if tones is tones_py else "cython")


def test_table_has_the_e180_tones(tones: ModuleType) -> None:
    assert {(c, n) for c in ("US", "UK", "CN") for n in ("dial", "ringback", "busy", "congestion")} <= set(tones.TONES)  # fmt: skip
    assert tones.TONES[("US", "ringback")].frequencies == (440.0, 480.0)
    assert tones.TONES[("US", "ringback")].cadence_ms == (2000, 4000)
    assert tones.TONES[("UK", "ringback")].cadence_ms == (400, 200, 400, 2000)
    assert tones.TONES[("UK", "congestion")].cadence_ms == (400, 350, 225, 525)
    assert tones.TONES[("CN", "busy")] == ToneSpec((450.0,), (350, 350), -10.0)
    assert tones.TONES[("US", "congestion")].cadence_ms == (250, 250)


@pytest.mark.parametrize(
    "spec",
    [
        ToneSpec((), (), -10.0),
        ToneSpec((400.0, 500.0, 600.0, 700.0, 800.0), (), -10.0),
        ToneSpec((4000.0,), (), -10.0),
        ToneSpec((400.0,), (100,), -10.0),
        ToneSpec((400.0,), (100, 2), -10.0),
        ToneSpec((400.0,), (), 10.0),
        ToneSpec((400.0,), (100, 100) * 5, -10.0),
    ],
)
def test_invalid_specs_are_refused(tones: ModuleType, spec: ToneSpec) -> None:
    with pytest.raises(ValueError):
        tones.ToneGenerator(spec)


# -- generator -----------------------------------------------------------------------


@pytest.mark.parametrize("key", sorted(TONES))
def test_spectrum_and_level(tones: ModuleType, key: tuple[str, str]) -> None:
    spec = TONES[key]
    xs = samples(tones.ToneGenerator(spec).render(1600))
    window = xs[40:840]  # 100 ms inside the first "on" (>= 250 ms); whole beat periods
    energy = sum(x * x for x in window)
    powers = [goertzel_power(window, f) for f in spec.frequencies]
    assert sum(powers) >= 0.95 * energy
    expected = (DBM0_PEAK * 10 ** (spec.level_dbm0 / 20)) ** 2 * len(window) / 2
    for p in powers:
        assert abs(10 * math.log10(p / expected)) < 0.5
    for other in (300.0, 700.0, 1000.0, 1400.0, 2000.0):
        if all(abs(other - f) > 150 for f in spec.frequencies):
            assert goertzel_power(window, other) < 0.01 * max(powers)


@pytest.mark.parametrize("key", [k for k in sorted(TONES) if TONES[k].cadence_ms])
def test_cadence_edges_within_1ms(tones: ModuleType, key: tuple[str, str]) -> None:
    """Edges measured at half amplitude (output / the same tone uncadenced) are the spec's."""
    spec = TONES[key]
    total = 2 * cycle_samples(spec)
    out = samples(tones.ToneGenerator(spec).render(total))
    steady = samples(tones.ToneGenerator(ToneSpec(spec.frequencies, (), spec.level_dbm0)).render(total))  # fmt: skip
    threshold = 0.3 * max(abs(x) for x in steady)
    measured: list[float] = []
    state, last = True, 0
    for i, (y, x) in enumerate(zip(out, steady, strict=True)):
        if abs(x) < threshold:
            continue  # near a zero or a beat null: the ratio says nothing
        on = y / x > 0.5
        if on != state:
            measured.append((last + i) / 2)
            state = on
        last = i
    nominal = []
    position = 0
    for _ in range(2):
        for ms in spec.cadence_ms:
            position += ms * 8
            nominal.append(position)
    nominal.pop()  # the end of the second cycle is not inside the rendering
    assert len(measured) == len(nominal)
    for got, want in zip(measured, nominal, strict=True):
        assert abs(got - want) <= 8, (got, want)


@pytest.mark.parametrize("key", sorted(TONES))
def test_no_clicks(tones: ModuleType, key: tuple[str, str]) -> None:
    """No step between samples larger than the tone's own slope plus the ramp's."""
    spec = TONES[key]
    xs = samples(tones.ToneGenerator(spec).render(max(cycle_samples(spec), 8000) + 400))
    amplitude = DBM0_PEAK * 10 ** (spec.level_dbm0 / 20)
    slope = sum(amplitude * 2 * math.pi * f / 8000 for f in spec.frequencies)
    ramp = len(spec.frequencies) * amplitude / 24
    assert max(abs(b - a) for a, b in zip(xs, xs[1:], strict=False)) <= slope + ramp + 2


@settings(max_examples=30, deadline=None)
@given(
    key=st.sampled_from(sorted(TONES)),
    chunks=st.lists(st.integers(0, 3000), min_size=1, max_size=12),
)
def test_phase_and_cadence_continue_across_calls(tones: ModuleType, key, chunks) -> None:
    spec = TONES[key]
    pieces = []
    generator = tones.ToneGenerator(spec)
    for n in chunks:
        pieces.append(generator.render(n))
    assert b"".join(pieces) == tones.ToneGenerator(spec).render(sum(chunks))
    amplitude = DBM0_PEAK * 10 ** (spec.level_dbm0 / 20)
    bound = sum(amplitude * 2 * math.pi * f / 8000 for f in spec.frequencies) + amplitude / 12 + 2
    for a, b in zip(pieces, pieces[1:], strict=False):
        if a and b:
            assert abs(samples(b)[0] - samples(a)[-1]) <= bound


specs = st.builds(
    ToneSpec,
    st.lists(st.floats(50.0, 3900.0), min_size=1, max_size=4).map(tuple),
    st.lists(st.integers(3, 900), max_size=8).map(lambda c: tuple(c[: len(c) // 2 * 2])),
    st.floats(-40.0, 3.0),
)


@settings(max_examples=60, deadline=None)
@given(spec=specs, chunks=st.lists(st.integers(0, 1500), min_size=1, max_size=6))
def test_implementations_render_identical_bytes(spec: ToneSpec, chunks) -> None:
    compiled = _require_compiled()
    c, p = compiled.ToneGenerator(spec), tones_py.ToneGenerator(spec)
    for n in chunks:
        assert c.render(n) == p.render(n)


def test_render_zero_and_negative(tones: ModuleType) -> None:
    generator = tones.ToneGenerator(TONES[("US", "busy")])
    assert generator.render(0) == b""
    with pytest.raises(ValueError):
        generator.render(-1)


# -- mixer ---------------------------------------------------------------------------


def test_mix_saturates(tones: ModuleType) -> None:
    a = pcm([32767, -32768, 20000, -20000, 100])
    b = pcm([32767, -32768, 20000, -20000, -100])
    assert samples(tones.mix(a, b)) == [32767, -32768, 32767, -32768, 0]
    assert samples(tones.mix(pcm([30000]), pcm([0]), 6.0)) == [32767]


def test_mix_gains(tones: ModuleType) -> None:
    xs = [10000, -10000, 1234, 1]
    a = pcm(xs)
    zero = pcm([0] * len(xs))
    assert samples(tones.mix(a, zero)) == xs
    half = samples(tones.mix(a, zero, -6.0206))
    assert all(abs(2 * h - x) <= 2 for h, x in zip(half, xs, strict=True))
    double = samples(tones.mix(zero, a, 0.0, 6.0206))
    assert all(abs(d - 2 * x) <= 2 for d, x in zip(double, xs, strict=True))
    assert samples(tones.mix(a, a, float("-inf"), -6.0206)) == half
    assert samples(tones.mix(a, a, -120.0, -120.0)) == [0, 0, 0, 0]
    assert samples(tones.mix(a, a, -6.0206, -6.0206)) == xs


def test_mix_unequal_lengths_pad_with_silence(tones: ModuleType) -> None:
    a = pcm([1000, 2000, 3000, 4000])
    b = pcm([10, 20])
    assert samples(tones.mix(a, b)) == [1010, 2020, 3000, 4000]
    assert samples(tones.mix(b, a)) == [1010, 2020, 3000, 4000]
    assert tones.mix(b"", b"") == b""
    assert samples(tones.mix(b"", a, 0.0, float("-inf"))) == [0, 0, 0, 0]


@pytest.mark.parametrize(("a", "b", "ga", "gb"), [
    (b"\x00", b"", 0.0, 0.0), (b"", b"\x00\x00\x00", 0.0, 0.0),
    (b"\x00\x00", b"", 41.0, 0.0), (b"\x00\x00", b"", 0.0, float("nan")),
])  # fmt: skip
def test_mix_refuses_bad_input(tones: ModuleType, a: bytes, b: bytes, ga: float, gb: float) -> None:
    with pytest.raises(ValueError):
        tones.mix(a, b, ga, gb)


gains = st.one_of(st.floats(-100.0, 40.0), st.just(float("-inf")), st.just(0.0))
pcm_bytes = st.lists(st.integers(-32768, 32767), max_size=300).map(pcm)


@settings(max_examples=300, deadline=None)
@given(a=pcm_bytes, b=pcm_bytes, ga=gains, gb=gains)
def test_mix_implementations_agree_exactly(a: bytes, b: bytes, ga: float, gb: float) -> None:
    compiled = _require_compiled()
    assert compiled.mix(a, b, ga, gb) == tones_py.mix(a, b, ga, gb)
    assert len(tones_py.mix(a, b, ga, gb)) == max(len(a), len(b))
