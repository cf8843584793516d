"""Bundles hold dependency wheels whose names are longer than ustar allows (manylinux
tags): they build, verify and extract, and the same inputs still give the same bytes."""

from __future__ import annotations

from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from images.build import make_bundle
from images.bundle import extract_payload, verify_bundle

LONG = "pydantic_core-2.27.2-cp311-cp311-manylinux_2_17_x86_64.manylinux2014_x86_64.manylinux_2_28_x86_64.whl"


def test_long_wheel_names(tmp_path: Path) -> None:
    assert len(LONG) > 100
    wheels = tmp_path / "w"
    wheels.mkdir()
    (wheels / LONG).write_bytes(b"wheel bytes" * 100)
    key = Ed25519PrivateKey.generate()
    a, b = tmp_path / "a.bundle", tmp_path / "b.bundle"
    for out in (a, b):
        make_bundle(out, version="1.0.0", key=key, wheels=sorted(wheels.glob("*.whl")), build_time=1_700_000_000)
    assert a.read_bytes() == b.read_bytes()
    verified = verify_bundle(a, key.public_key())
    assert [f.path for f in verified.manifest.files] == [f"wheels/{LONG}"]
    extract_payload(verified, key.public_key(), tmp_path / "out")
    assert (tmp_path / "out" / "wheels" / LONG).read_bytes() == b"wheel bytes" * 100
