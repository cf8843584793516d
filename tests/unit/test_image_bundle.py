"""Bundles: reproducible bytes, signature and hash checks, refusal before writing."""

from __future__ import annotations

import hashlib
import tarfile
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from images.build import make_bundle
from images.bundle import BundleError, extract_payload, verify_bundle
from images.signing import generate_key, load_private_key, load_public_key, public_raw_b64


def _inputs(tmp: Path) -> tuple[list[Path], Path]:
    wheels = tmp / "w"
    wheels.mkdir()
    (wheels / "branchline-0.1.0-py3-none-any.whl").write_bytes(b"PK fake wheel" * 100)
    (wheels / "dep-1.0-py3-none-any.whl").write_bytes(b"dependency" * 50)
    files = tmp / "f"
    (files / "prompts").mkdir(parents=True)
    (files / "prompts" / "welcome.wav").write_bytes(b"RIFF" + bytes(300))
    return sorted(wheels.glob("*.whl")), files


def _build(tmp: Path, key: Ed25519PrivateKey, name: str = "b.bundle", **kw: object) -> Path:
    wheels, files = _inputs(tmp) if not (tmp / "w").exists() else (sorted((tmp / "w").glob("*.whl")), tmp / "f")
    out = tmp / name
    make_bundle(out, version=str(kw.get("version", "1.0.0")), key=key, wheels=wheels, files_dir=files,
                build_time=1_700_000_000)
    return out


def test_build_is_reproducible_and_verifies(tmp_path: Path) -> None:
    key = Ed25519PrivateKey.generate()
    a = _build(tmp_path, key, "a.bundle")
    b = _build(tmp_path, key, "b.bundle")
    assert hashlib.sha256(a.read_bytes()).digest() == hashlib.sha256(b.read_bytes()).digest()
    verified = verify_bundle(a, key.public_key())
    assert [f.path for f in verified.manifest.files] == [
        "files/prompts/welcome.wav", "wheels/branchline-0.1.0-py3-none-any.whl",
        "wheels/dep-1.0-py3-none-any.whl",
    ]
    with tarfile.open(a) as tar:
        members = tar.getmembers()
    assert [m.name for m in members[:2]] == ["manifest.json", "manifest.sig"]
    assert {(m.mtime, m.uid, m.gid, m.uname, m.mode) for m in members} == {(1_700_000_000, 0, 0, "", 0o644)}
    dest = tmp_path / "out"
    extract_payload(verified, key.public_key(), dest)
    assert (dest / "files/prompts/welcome.wav").read_bytes() == b"RIFF" + bytes(300)


def test_every_flipped_byte_is_refused(tmp_path: Path) -> None:
    key = Ed25519PrivateKey.generate()
    good = _build(tmp_path, key).read_bytes()
    # one flipped byte in the manifest, the signature, and each payload file's data
    with tarfile.open(tmp_path / "b.bundle") as tar:
        offsets = [m.offset_data + m.size // 2 for m in tar.getmembers()]
    for offset in offsets:
        bad = bytearray(good)
        bad[offset] ^= 0x01
        path = tmp_path / "bad.bundle"
        path.write_bytes(bytes(bad))
        with pytest.raises(BundleError) as info:
            verify_bundle(path, key.public_key())
        assert info.value.check in ("signature", "hash", "manifest", "format")


def test_wrong_key_truncation_and_extra_member(tmp_path: Path) -> None:
    key = Ed25519PrivateKey.generate()
    path = _build(tmp_path, key)
    with pytest.raises(BundleError, match="signature"):
        verify_bundle(path, Ed25519PrivateKey.generate().public_key())
    cut = tmp_path / "cut.bundle"
    cut.write_bytes(path.read_bytes()[:-4000])
    with pytest.raises(BundleError):
        verify_bundle(cut, key.public_key())
    extra = tmp_path / "extra.bundle"
    extra.write_bytes(path.read_bytes())
    with tarfile.open(extra, "a") as tar:
        tar.add(tmp_path / "f" / "prompts" / "welcome.wav", arcname="files/evil.sh")
    with pytest.raises(BundleError, match="not listed"):
        verify_bundle(extra, key.public_key())
    junk = tmp_path / "junk.bundle"
    junk.write_bytes(b"not a tar at all" * 100)
    with pytest.raises(BundleError, match="format"):
        verify_bundle(junk, key.public_key())


def test_key_files(tmp_path: Path) -> None:
    public = generate_key(tmp_path / "k")
    assert (tmp_path / "k").stat().st_mode & 0o777 == 0o600
    private = load_private_key(tmp_path / "k")
    assert public_raw_b64(private.public_key()) == public_raw_b64(public)
    assert public_raw_b64(load_public_key((tmp_path / "k.pub").read_bytes())) == public_raw_b64(public)
    assert public_raw_b64(load_public_key(public_raw_b64(public).encode())) == public_raw_b64(public)
