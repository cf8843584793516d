"""The bundle manifest: what a bundle is, what it may upgrade, what it holds.

The manifest travels as ``manifest.json`` (canonical JSON: sorted keys, no spaces,
UTF-8) with an ed25519 signature over exactly those bytes in ``manifest.sig``. The
parser is strict: unknown keys, wrong types, unsafe paths, duplicate files or a
malformed hash are a :class:`ManifestError` naming the field, never a crash.
"""

from __future__ import annotations

import json
import re
import sys
import sysconfig
from dataclasses import dataclass, field
from typing import Any

from packaging.version import InvalidVersion, Version

FORMAT = 1
PRODUCT = "branchline"
CONFIG_SCHEMA = 1
"""The site-config schema this code writes; a bundle says which one it expects."""

_SHA256 = re.compile(r"[0-9a-f]{64}")
_PATH_PART = re.compile(r"[A-Za-z0-9_.+-]{1,200}")
_TOP = ("wheels", "files")


class ManifestError(ValueError):
    """The manifest is malformed: ``field`` is the path of the offending value."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"manifest {field}: {message}")
        self.field = field


def current_platform() -> str:
    """``linux_x86_64`` style: what a compiled wheel for this box is tagged with."""
    return sysconfig.get_platform().replace("-", "_").replace(".", "_")


def current_python() -> str:
    """``cp311`` style."""
    return f"cp{sys.version_info.major}{sys.version_info.minor}"


@dataclass(frozen=True)
class FileEntry:
    path: str
    """Relative path inside the bundle's payload, e.g. ``wheels/x.whl``, ``files/prompts/a.wav``."""
    sha256: str
    """Lower-case hex SHA-256 of the file's bytes."""
    size: int
    """Bytes."""


@dataclass(frozen=True)
class Manifest:
    version: str
    """The release, PEP 440 (``0.2.0``, ``1.0.0rc1``)."""
    build_time: int
    """Unix seconds; ``SOURCE_DATE_EPOCH`` when building reproducibly."""
    platform: str
    """``linux_x86_64``: the box must match (the wheels hold compiled kernels)."""
    python: str
    """``cp311``: the interpreter the wheels were built for."""
    config_schema: int
    """The site-config schema version the release expects."""
    min_upgrade_from: str
    """The oldest running version that may install this bundle."""
    files: tuple[FileEntry, ...] = field(default_factory=tuple)
    """Every payload file, sorted by path."""
    format: int = FORMAT
    product: str = PRODUCT

    @property
    def parsed_version(self) -> Version:
        return Version(self.version)

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": self.format,
            "product": self.product,
            "version": self.version,
            "build_time": self.build_time,
            "platform": self.platform,
            "python": self.python,
            "config_schema": self.config_schema,
            "min_upgrade_from": self.min_upgrade_from,
            "files": [{"path": f.path, "sha256": f.sha256, "size": f.size} for f in self.files],
        }

    def to_bytes(self) -> bytes:
        """The canonical encoding: what is signed and stored."""
        return json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def check_path(path: str, where: str = "files") -> str:
    """A safe relative payload path (``wheels/...`` or ``files/...``), or ManifestError."""
    if not isinstance(path, str) or not path:
        raise ManifestError(where, "path must be a non-empty string")
    parts = path.split("/")
    if parts[0] not in _TOP or len(parts) < 2:
        raise ManifestError(where, f"{path!r} is not under wheels/ or files/")
    for part in parts:
        if part in (".", "..") or not _PATH_PART.fullmatch(part):
            raise ManifestError(where, f"{path!r} has an unsafe component {part!r}")
    return path


def _version(value: Any, where: str) -> str:
    if not isinstance(value, str):
        raise ManifestError(where, "must be a string")
    try:
        Version(value)
    except InvalidVersion:
        raise ManifestError(where, f"{value!r} is not a PEP 440 version") from None
    return value


def _int(value: Any, where: str, low: int = 0) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < low:
        raise ManifestError(where, f"must be an integer >= {low}")
    return value


def _str(value: Any, where: str, pattern: str = r"[A-Za-z0-9_.-]{1,64}") -> str:
    if not isinstance(value, str) or not re.fullmatch(pattern, value):
        raise ManifestError(where, f"must match {pattern}")
    return value


_KEYS = {"format", "product", "version", "build_time", "platform", "python", "config_schema",
         "min_upgrade_from", "files"}


def parse_manifest(data: bytes) -> Manifest:
    """Parse ``manifest.json`` bytes (the signature is checked elsewhere, first)."""
    try:
        raw = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise ManifestError("$", f"not JSON: {exc}") from None
    if not isinstance(raw, dict):
        raise ManifestError("$", "must be an object")
    unknown = sorted(set(raw) - _KEYS)
    if unknown:
        raise ManifestError(unknown[0], "unknown key")
    missing = sorted(_KEYS - set(raw))
    if missing:
        raise ManifestError(missing[0], "missing")
    if raw["format"] != FORMAT or isinstance(raw["format"], bool):
        raise ManifestError("format", f"unsupported format {raw['format']!r} (this installer reads {FORMAT})")
    if raw["product"] != PRODUCT:
        raise ManifestError("product", f"{raw['product']!r} is not {PRODUCT!r}")
    files_raw = raw["files"]
    if not isinstance(files_raw, list):
        raise ManifestError("files", "must be a list")
    files: list[FileEntry] = []
    seen: set[str] = set()
    for i, item in enumerate(files_raw):
        where = f"files[{i}]"
        if not isinstance(item, dict) or set(item) != {"path", "sha256", "size"}:
            raise ManifestError(where, "must be {path, sha256, size}")
        path = check_path(item["path"], f"{where}.path")
        if path in seen:
            raise ManifestError(f"{where}.path", f"duplicate {path!r}")
        seen.add(path)
        digest = item["sha256"]
        if not isinstance(digest, str) or not _SHA256.fullmatch(digest):
            raise ManifestError(f"{where}.sha256", "must be 64 lower-case hex digits")
        files.append(FileEntry(path, digest, _int(item["size"], f"{where}.size")))
    return Manifest(
        version=_version(raw["version"], "version"),
        build_time=_int(raw["build_time"], "build_time"),
        platform=_str(raw["platform"], "platform"),
        python=_str(raw["python"], "python", r"cp[0-9]{2,4}"),
        config_schema=_int(raw["config_schema"], "config_schema", 1),
        min_upgrade_from=_version(raw["min_upgrade_from"], "min_upgrade_from"),
        files=tuple(sorted(files, key=lambda f: f.path)),
    )


class Refused(Exception):
    """The bundle is valid but must not be installed on this box; ``check`` says why."""

    def __init__(self, check: str, message: str) -> None:
        super().__init__(f"{check}: {message}")
        self.check = check


def check_compatible(
    manifest: Manifest,
    *,
    running: str | None,
    platform: str | None = None,
    python: str | None = None,
    config_schema: int = CONFIG_SCHEMA,
    allow_downgrade: bool = False,
) -> None:
    """Raise :class:`Refused` unless ``manifest`` may replace ``running`` on this box.

    ``running`` is the version in the good slot (None: a blank box accepts anything
    built for it). A downgrade below ``min_upgrade_from`` is always refused; a plain
    downgrade (older than running) only with ``allow_downgrade``.
    """
    platform = platform or current_platform()
    python = python or current_python()
    if manifest.platform != platform:
        raise Refused("platform", f"bundle is for {manifest.platform}, this box is {platform}")
    if manifest.python != python:
        raise Refused("python", f"bundle is for {manifest.python}, this box runs {python}")
    if manifest.config_schema > config_schema + 1:
        raise Refused("config_schema", f"bundle expects config schema {manifest.config_schema}, "
                                       f"this box has {config_schema} (upgrade one step at a time)")
    if running is None:
        return
    current = Version(running)
    if current < Version(manifest.min_upgrade_from):
        raise Refused("min_upgrade_from", f"running {running} is below the bundle's minimum "
                                          f"{manifest.min_upgrade_from}")
    if manifest.parsed_version < current and not allow_downgrade:
        raise Refused("downgrade", f"bundle {manifest.version} is older than running {running}")
