"""G.711 codec: every linear input and every code, against an independent reference.

The reference below is the CCITT/Sun ``g711.c`` formulation (segment search over
end-point tables), written here separately from the kernel's bit-length version.
CPython's ``audioop`` uses the same algorithm; the tests show all three agree on all
65 536 samples and all 256 codes (no differences found, including µ-law's "negative
zero" code 0x7F, which every one of them decodes to 0).

Every test runs once per implementation (ids ``c-extension`` and ``pure-python``); the
compiled one is skipped when it is not built, unless ``BRANCHLINE_REQUIRE_COMPILED=1``.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import shutil
import struct
import sys
import warnings
from pathlib import Path
from types import ModuleType

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cython_ext.g711 import g711_py
from tests.kernels import compiled_or_none, require_compiled

REPO_ROOT = Path(__file__).resolve().parents[2]


COMPILED = compiled_or_none("g711")


def _require_compiled() -> ModuleType:
    return require_compiled("g711")


@pytest.fixture(scope="module", params=["c-extension", "pure-python"])
def g711(request: pytest.FixtureRequest) -> ModuleType:
    """The implementation under test."""
    if request.param == "pure-python":
        return g711_py
    return _require_compiled()


# --- independent reference: CCITT / Sun Microsystems g711.c ---------------------------

SEG_UEND = (0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF, 0x1FFF)
SEG_AEND = (0x1F, 0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF)


def _search(value: int, table: tuple[int, ...]) -> int:
    for i, end in enumerate(table):
        if value <= end:
            return i
    return len(table)


def ref_linear2ulaw(pcm: int) -> int:
    pcm >>= 2
    if pcm < 0:
        pcm, mask = -pcm, 0x7F
    else:
        mask = 0xFF
    if pcm > 8159:  # CLIP
        pcm = 8159
    pcm += 0x84 >> 2  # BIAS
    seg = _search(pcm, SEG_UEND)
    if seg >= 8:
        return 0x7F ^ mask
    return ((seg << 4) | ((pcm >> (seg + 1)) & 0xF)) ^ mask


def ref_ulaw2linear(code: int) -> int:
    code = ~code & 0xFF
    t = ((code & 0xF) << 3) + 0x84
    t <<= (code & 0x70) >> 4
    return 0x84 - t if code & 0x80 else t - 0x84


def ref_linear2alaw(pcm: int) -> int:
    pcm >>= 3
    if pcm >= 0:
        mask = 0xD5
    else:
        mask = 0x55
        pcm = -pcm - 1
    seg = _search(pcm, SEG_AEND)
    if seg >= 8:
        return 0x7F ^ mask
    aval = seg << 4
    aval |= (pcm >> 1) & 0xF if seg < 2 else (pcm >> seg) & 0xF
    return aval ^ mask


def ref_alaw2linear(code: int) -> int:
    code ^= 0x55
    t = (code & 0xF) << 4
    seg = (code & 0x70) >> 4
    if seg == 0:
        t += 8
    elif seg == 1:
        t += 0x108
    else:
        t = (t + 0x108) << (seg - 1)
    return t if code & 0x80 else -t


ALL_SAMPLES = range(-32768, 32768)
ALL_PCM = struct.pack("<65536h", *ALL_SAMPLES)
ALL_CODES = bytes(range(256))
REF_ULAW = bytes(ref_linear2ulaw(s) for s in ALL_SAMPLES)
REF_ALAW = bytes(ref_linear2alaw(s) for s in ALL_SAMPLES)
REF_ULAW_PCM = struct.pack("<256h", *(ref_ulaw2linear(c) for c in ALL_CODES))
REF_ALAW_PCM = struct.pack("<256h", *(ref_alaw2linear(c) for c in ALL_CODES))


def pcm(*samples: int) -> bytes:
    return struct.pack(f"<{len(samples)}h", *samples)


def samples(data: bytes) -> list[int]:
    return list(struct.unpack(f"<{len(data) // 2}h", data))


def audioop_module() -> ModuleType:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        try:
            return importlib.import_module("audioop")
        except ImportError:  # removed in Python 3.13
            pytest.skip("audioop is not available on this Python")


# --- bit-exactness ---------------------------------------------------------------------


def test_ulaw_encode_every_sample(g711: ModuleType) -> None:
    assert g711.ulaw_encode(ALL_PCM) == REF_ULAW


def test_alaw_encode_every_sample(g711: ModuleType) -> None:
    assert g711.alaw_encode(ALL_PCM) == REF_ALAW


def test_ulaw_decode_every_code(g711: ModuleType) -> None:
    assert g711.ulaw_decode(ALL_CODES) == REF_ULAW_PCM


def test_alaw_decode_every_code(g711: ModuleType) -> None:
    assert g711.alaw_decode(ALL_CODES) == REF_ALAW_PCM


def test_known_values(g711: ModuleType) -> None:
    # Silence, the extremes, pinned literally.  -1 is not "negative zero": the
    # 14-bit shift floors it to -1, magnitude 1, so it lands on code 0x7E.
    assert g711.ulaw_encode(pcm(0, 32767, -32768, -1)) == bytes([0xFF, 0x80, 0x00, 0x7E])
    assert samples(g711.ulaw_decode(bytes([0xFF, 0x7F, 0x80, 0x00]))) == [0, 0, 32124, -32124]
    assert g711.alaw_encode(pcm(0, 32767, -32768, -1)) == bytes([0xD5, 0xAA, 0x2A, 0x55])
    assert samples(g711.alaw_decode(bytes([0xD5, 0x55, 0xAA, 0x2A]))) == [8, -8, 32256, -32256]


def test_agrees_with_audioop(g711: ModuleType) -> None:
    audioop = audioop_module()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        assert g711.ulaw_encode(ALL_PCM) == audioop.lin2ulaw(ALL_PCM, 2)
        assert g711.alaw_encode(ALL_PCM) == audioop.lin2alaw(ALL_PCM, 2)
        assert g711.ulaw_decode(ALL_CODES) == audioop.ulaw2lin(ALL_CODES, 2)
        assert g711.alaw_decode(ALL_CODES) == audioop.alaw2lin(ALL_CODES, 2)


def test_reference_and_audioop_are_the_same_algorithm() -> None:
    # audioop's µ-law is the Sun algorithm too: no sample or code differs.
    audioop = audioop_module()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        assert audioop.lin2ulaw(ALL_PCM, 2) == REF_ULAW
        assert audioop.ulaw2lin(ALL_CODES, 2) == REF_ULAW_PCM
        assert audioop.lin2alaw(ALL_PCM, 2) == REF_ALAW
        assert audioop.alaw2lin(ALL_CODES, 2) == REF_ALAW_PCM


def test_twin_per_sample_rules_match_reference() -> None:
    # The twin's per-sample functions mirror the C API in _g711.pxd.
    assert [g711_py.linear_to_ulaw(s) for s in ALL_SAMPLES] == list(REF_ULAW)
    assert [g711_py.linear_to_alaw(s) for s in ALL_SAMPLES] == list(REF_ALAW)
    assert [g711_py.ulaw_to_linear(c) for c in ALL_CODES] == samples(REF_ULAW_PCM)
    assert [g711_py.alaw_to_linear(c) for c in ALL_CODES] == samples(REF_ALAW_PCM)


# --- round trips and transcoding -------------------------------------------------------


def test_ulaw_encode_of_decode_is_identity_except_negative_zero(g711: ModuleType) -> None:
    again = g711.ulaw_encode(g711.ulaw_decode(ALL_CODES))
    expected = bytearray(ALL_CODES)
    expected[0x7F] = 0xFF  # -0 and +0 both decode to 0, which encodes as +0
    assert again == bytes(expected)
    # ... so decode is a fixed point after one round for every code.
    assert g711.ulaw_decode(again) == g711.ulaw_decode(ALL_CODES)


def test_alaw_encode_of_decode_is_identity(g711: ModuleType) -> None:
    assert g711.alaw_encode(g711.alaw_decode(ALL_CODES)) == ALL_CODES


def test_encode_is_idempotent_after_one_round(g711: ModuleType) -> None:
    for encode, decode in (
        (g711.ulaw_encode, g711.ulaw_decode),
        (g711.alaw_encode, g711.alaw_decode),
    ):
        once = encode(ALL_PCM)
        assert encode(decode(once)) == once


def test_transcoding_goes_through_linear(g711: ModuleType) -> None:
    u2a = bytes(ref_linear2alaw(ref_ulaw2linear(c)) for c in ALL_CODES)
    a2u = bytes(ref_linear2ulaw(ref_alaw2linear(c)) for c in ALL_CODES)
    assert g711.ulaw_to_alaw(ALL_CODES) == u2a
    assert g711.alaw_to_ulaw(ALL_CODES) == a2u


# --- input handling --------------------------------------------------------------------


def test_empty_input(g711: ModuleType) -> None:
    for fn in (g711.ulaw_encode, g711.ulaw_decode, g711.alaw_encode, g711.alaw_decode,
               g711.ulaw_to_alaw, g711.alaw_to_ulaw):  # fmt: skip
        assert fn(b"") == b""


def test_odd_pcm_length_is_refused(g711: ModuleType) -> None:
    with pytest.raises(ValueError, match="odd"):
        g711.ulaw_encode(b"\x00\x01\x02")
    with pytest.raises(ValueError, match="odd"):
        g711.alaw_encode(b"\x00")


def test_bytes_like_inputs(g711: ModuleType) -> None:
    data = pcm(1000, -1000, 12345)
    expected = g711.ulaw_encode(data)
    assert g711.ulaw_encode(bytearray(data)) == expected
    assert g711.ulaw_encode(memoryview(data)) == expected
    assert g711.ulaw_decode(bytearray(expected)) == g711.ulaw_decode(expected)
    assert g711.alaw_to_ulaw(memoryview(b"\xd5")) == g711.alaw_to_ulaw(b"\xd5")


def test_wrong_type_is_a_type_error(g711: ModuleType) -> None:
    with pytest.raises(TypeError):
        g711.ulaw_encode("text")


@given(st.binary(max_size=2000))
def test_implementations_agree_on_arbitrary_bytes(data: bytes) -> None:
    compiled = _require_compiled()
    even = data[: len(data) // 2 * 2]
    for name in ("ulaw_encode", "alaw_encode"):
        assert getattr(compiled, name)(even) == getattr(g711_py, name)(even)
    for name in ("ulaw_decode", "alaw_decode", "ulaw_to_alaw", "alaw_to_ulaw"):
        assert getattr(compiled, name)(data) == getattr(g711_py, name)(data)


def test_package_reports_implementation() -> None:
    import cython_ext.g711 as package

    assert package.IMPLEMENTATION in ("cython", "python")
    assert (
        package.IMPLEMENTATION == ("cython" if COMPILED else "python")
        or os.environ.get("BRANCHLINE_PURE_PYTHON") == "1"
    )


# --- the C API, from another kernel ----------------------------------------------------


def build_probe(tmp_path: Path, name: str, source: str) -> ModuleType:
    """Compile ``source`` as extension ``name`` (repo root on the cimport path) and import it.

    Uses setuptools' ``build_ext`` directly (not ``setup()``), so nothing reads the
    project's pyproject.toml.
    """
    if COMPILED is None or shutil.which(os.environ.get("CC", "cc")) is None:
        if os.environ.get("BRANCHLINE_REQUIRE_COMPILED") == "1":
            pytest.fail("cannot build a cimport probe: kernel or C compiler missing")
        pytest.skip("needs the compiled kernel and a C compiler")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from Cython.Build import cythonize
        from setuptools import Extension
        from setuptools.dist import Distribution

        pyx = tmp_path / f"{name}.pyx"
        pyx.write_text(source)
        modules = cythonize(
            [Extension(name, [str(pyx)])],
            include_path=[str(REPO_ROOT)],
            language_level=3,
            quiet=True,
            build_dir=str(tmp_path / "c"),
        )
        dist = Distribution({"ext_modules": modules})
        command = dist.get_command_obj("build_ext")
        command.build_lib = str(tmp_path / "lib")
        command.build_temp = str(tmp_path / "tmp")
        command.ensure_finalized()
        command.run()
    [built] = (tmp_path / "lib").glob(f"{name}*.so") or (tmp_path / "lib").glob(f"{name}*.pyd")
    spec = importlib.util.spec_from_file_location(name, built)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


PROBE = """
# cython: language_level=3
from cython_ext.g711._g711 cimport alaw_to_linear, linear_to_alaw, linear_to_ulaw, ulaw_to_linear
from libc.stdint cimport int16_t, uint8_t

def tables():
    cdef int i
    cdef unsigned char ulaw[65536]
    cdef unsigned char alaw[65536]
    cdef short ulin[256]
    cdef short alin[256]
    with nogil:
        for i in range(65536):
            ulaw[i] = linear_to_ulaw(<int16_t>(i - 32768))
            alaw[i] = linear_to_alaw(<int16_t>(i - 32768))
        for i in range(256):
            ulin[i] = ulaw_to_linear(<uint8_t>i)
            alin[i] = alaw_to_linear(<uint8_t>i)
    return (bytes(ulaw[:65536]), bytes(alaw[:65536]),
            [ulin[i] for i in range(256)], [alin[i] for i in range(256)])
"""


@pytest.mark.slow
def test_pxd_cimport_from_another_kernel(tmp_path: Path) -> None:
    probe = build_probe(tmp_path, "g711_cimport_probe", PROBE)
    ulaw, alaw, ulin, alin = probe.tables()
    assert ulaw == REF_ULAW
    assert alaw == REF_ALAW
    assert ulin == samples(REF_ULAW_PCM)
    assert alin == samples(REF_ALAW_PCM)
