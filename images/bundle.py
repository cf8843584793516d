"""Build a bundle file and verify one without writing anything.

A bundle is an uncompressed POSIX.1-2001 (pax) tar -- ustar cannot hold the long names
of manylinux dependency wheels -- (the wheels inside are compressed already) whose first
two members are ``manifest.json`` and ``manifest.sig``, then every payload file in path
order. Members carry fixed metadata (mtime = the manifest's ``build_time``, uid/gid 0,
no owner names, mode 0644), so the same inputs give the same bytes.

:func:`verify_bundle` reads the file once: the signature over the manifest bytes first,
then every member's size and SHA-256 against the manifest; any member not listed, any
listed file missing, any non-regular member is refused. :func:`extract_payload` hashes
again while writing, so a file swapped between verify and install is caught too.
"""

from __future__ import annotations

import hashlib
import io
import os
import tarfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from images.manifest import FileEntry, Manifest, ManifestError, check_path, parse_manifest
from images.signing import sign, verify

MANIFEST = "manifest.json"
SIGNATURE = "manifest.sig"
MAX_MANIFEST_BYTES = 1 << 20
_CHUNK = 1 << 20


class BundleError(Exception):
    """The bundle is not acceptable; ``check`` names what failed (``signature``, ``hash`` ...)."""

    def __init__(self, check: str, message: str) -> None:
        super().__init__(f"{check}: {message}")
        self.check = check


@dataclass(frozen=True)
class VerifiedBundle:
    path: Path
    manifest: Manifest
    manifest_sha256: str
    """SHA-256 of the signed manifest bytes: the bundle's identity."""


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(_CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def payload_entries(sources: Iterable[tuple[str, Path]]) -> list[FileEntry]:
    """``(bundle path, local file)`` pairs -> manifest entries, sorted by path."""
    entries = []
    for name, local in sources:
        check_path(name)
        entries.append(FileEntry(name, sha256_file(local), local.stat().st_size))
    return sorted(entries, key=lambda e: e.path)


def _info(name: str, size: int, mtime: int) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.size = size
    info.mtime = mtime
    info.mode = 0o644
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    info.type = tarfile.REGTYPE
    return info


def write_bundle(out: Path, manifest: Manifest, key: Ed25519PrivateKey, sources: dict[str, Path]) -> Path:
    """Write the bundle to ``out`` (atomically: a temp file renamed into place)."""
    body = manifest.to_bytes()
    signature = sign(key, body)
    listed = {f.path for f in manifest.files}
    if listed != set(sources):
        raise ValueError(f"sources do not match the manifest: {sorted(listed ^ set(sources))}")
    tmp = out.with_name(out.name + ".part")
    with tarfile.open(tmp, "w", format=tarfile.PAX_FORMAT) as tar:
        for name, data in ((MANIFEST, body), (SIGNATURE, signature)):
            tar.addfile(_info(name, len(data), manifest.build_time), io.BytesIO(data))
        for entry in manifest.files:
            with open(sources[entry.path], "rb") as f:
                tar.addfile(_info(entry.path, entry.size, manifest.build_time), f)
    os.replace(tmp, out)
    return out


def _read_member(tar: tarfile.TarFile, member: tarfile.TarInfo | None, name: str, limit: int) -> bytes:
    if member is None or member.name != name or not member.isreg():
        raise BundleError("format", f"expected {name} here, found {member.name if member else 'end of file'}")
    if member.size > limit:
        raise BundleError("format", f"{name} is {member.size} bytes (limit {limit})")
    f = tar.extractfile(member)
    assert f is not None
    return f.read()


def _open(path: Path) -> tarfile.TarFile:
    try:
        return tarfile.open(path, "r:")
    except (OSError, tarfile.TarError) as exc:
        raise BundleError("format", f"{path}: not a bundle ({exc})") from None


def _read_manifest(tar: tarfile.TarFile, key: Ed25519PublicKey) -> tuple[Manifest, str]:
    body = _read_member(tar, tar.next(), MANIFEST, MAX_MANIFEST_BYTES)
    signature = _read_member(tar, tar.next(), SIGNATURE, 1024)
    if not verify(key, signature, body):
        raise BundleError("signature", "the manifest signature does not match this key")
    try:
        manifest = parse_manifest(body)
    except ManifestError as exc:
        raise BundleError("manifest", str(exc)) from None
    return manifest, hashlib.sha256(body).hexdigest()


def _members(tar: tarfile.TarFile, manifest: Manifest) -> Iterator[tuple[FileEntry, IO[bytes]]]:
    expected = {f.path: f for f in manifest.files}
    seen: set[str] = set()
    while (member := tar.next()) is not None:
        entry = expected.get(member.name)
        if entry is None or member.name in seen:
            raise BundleError("contents", f"{member.name!r} is not listed in the manifest (or repeated)")
        if not member.isreg():
            raise BundleError("contents", f"{member.name!r} is not a regular file")
        if member.size != entry.size:
            raise BundleError("hash", f"{member.name}: {member.size} bytes, manifest says {entry.size}")
        seen.add(member.name)
        f = tar.extractfile(member)
        assert f is not None
        yield entry, f
    missing = sorted(set(expected) - seen)
    if missing:
        raise BundleError("contents", f"missing from the bundle: {', '.join(missing)}")


def _copy_hashed(src: IO[bytes], entry: FileEntry, dst: IO[bytes] | None) -> None:
    digest = hashlib.sha256()
    for chunk in iter(lambda: src.read(_CHUNK), b""):
        digest.update(chunk)
        if dst is not None:
            dst.write(chunk)
    if digest.hexdigest() != entry.sha256:
        raise BundleError("hash", f"{entry.path}: sha256 {digest.hexdigest()} != manifest {entry.sha256}")


def verify_bundle(path: Path, key: Ed25519PublicKey) -> VerifiedBundle:
    """Check the signature and every file's hash; write nothing. Raises BundleError."""
    with _open(path) as tar:
        try:
            manifest, ident = _read_manifest(tar, key)
            for entry, f in _members(tar, manifest):
                _copy_hashed(f, entry, None)
        except (tarfile.TarError, EOFError, OSError) as exc:
            raise BundleError("format", f"{path}: unreadable ({exc})") from None
    return VerifiedBundle(Path(path), manifest, ident)


def read_manifest(path: Path, key: Ed25519PublicKey) -> Manifest:
    """Only the signed manifest (cheap): for a quick look before the full verify."""
    with _open(path) as tar:
        return _read_manifest(tar, key)[0]


def extract_payload(bundle: VerifiedBundle, key: Ed25519PublicKey, dest: Path) -> None:
    """Write the payload under ``dest``, re-checking the signature and every hash as it
    goes (BundleError on any difference from what was verified; the caller removes ``dest``)."""
    with _open(bundle.path) as tar:
        manifest, ident = _read_manifest(tar, key)
        if ident != bundle.manifest_sha256:
            raise BundleError("signature", "the bundle changed since it was verified")
        for entry, f in _members(tar, manifest):
            target = dest / entry.path
            target.parent.mkdir(parents=True, exist_ok=True)
            with open(target, "wb") as out:
                _copy_hashed(f, entry, out)
