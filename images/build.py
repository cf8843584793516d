"""Build a bundle from the source tree: wheels (project + dependencies), files, manifest.

Reproducibility: ``SOURCE_DATE_EPOCH`` (default: the commit time of ``HEAD``) fixes the
manifest's ``build_time``, every tar member's mtime and the wheels' zip timestamps
(setuptools/wheel honour it). What can still vary: the compiled extensions if the
compiler or its flags differ between build machines, and dependency wheels fetched
from an index that has published new files. ``tests/integration/test_image_build.py``
builds twice and compares payload hashes.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from images.bundle import payload_entries, write_bundle
from images.manifest import CONFIG_SCHEMA, Manifest, current_platform, current_python


def source_date_epoch(source: Path) -> int:
    """``$SOURCE_DATE_EPOCH``, else the commit time of HEAD, else now."""
    env = os.environ.get("SOURCE_DATE_EPOCH")
    if env:
        return int(env)
    try:
        out = subprocess.run(["git", "-C", str(source), "log", "-1", "--format=%ct"],
                             capture_output=True, text=True, check=True)
        return int(out.stdout.strip())
    except (OSError, subprocess.CalledProcessError, ValueError):
        return int(time.time())


def build_wheels(source: Path, out: Path, *, with_deps: bool, epoch: int, pip: list[str] | None = None) -> list[Path]:
    """``pip wheel`` the project (its Cython kernels compiled) and, with ``with_deps``,
    every dependency, into ``out``. ``--no-build-isolation``: the pinned Cython of the
    build venv compiles the kernels, as in development."""
    out.mkdir(parents=True, exist_ok=True)
    cmd = [*(pip or [sys.executable, "-m", "pip"]), "wheel", str(source), "-w", str(out),
           "--no-build-isolation", "-q", "--disable-pip-version-check"]
    if not with_deps:
        cmd.append("--no-deps")
    env = {**os.environ, "SOURCE_DATE_EPOCH": str(epoch), "PYTHONHASHSEED": "0"}
    subprocess.run(cmd, check=True, env=env)
    return sorted(out.glob("*.whl"))


def collect_sources(wheels: list[Path], files_dir: Path | None) -> dict[str, Path]:
    """Bundle path -> local file for the wheels and everything under ``files_dir``."""
    sources = {f"wheels/{w.name}": w for w in wheels}
    if files_dir is not None:
        for path in sorted(files_dir.rglob("*")):
            if path.is_file():
                sources[f"files/{path.relative_to(files_dir).as_posix()}"] = path
    return sources


def make_bundle(
    out: Path,
    *,
    version: str,
    key: Ed25519PrivateKey,
    wheels: list[Path],
    files_dir: Path | None = None,
    min_upgrade_from: str = "0",
    build_time: int,
    platform: str | None = None,
    python: str | None = None,
    config_schema: int = CONFIG_SCHEMA,
) -> Manifest:
    """Sign a manifest for the given wheels and files and write the bundle to ``out``."""
    sources = collect_sources(wheels, files_dir)
    manifest = Manifest(
        version=version, build_time=build_time, platform=platform or current_platform(),
        python=python or current_python(), config_schema=config_schema,
        min_upgrade_from=min_upgrade_from, files=tuple(payload_entries(sources.items())),
    )
    write_bundle(out, manifest, key, sources)
    return manifest


def build_from_source(
    source: Path,
    out: Path,
    *,
    version: str,
    key: Ed25519PrivateKey,
    with_deps: bool = True,
    files_dir: Path | None = None,
    min_upgrade_from: str = "0",
    wheel_cache: Path | None = None,
) -> Manifest:
    """Build the wheels from ``source`` and write a signed bundle to ``out``."""
    epoch = source_date_epoch(source)
    with tempfile.TemporaryDirectory(prefix="bl-build-") as tmp:
        wheel_dir = wheel_cache or Path(tmp) / "wheels"
        wheels = build_wheels(source, wheel_dir, with_deps=with_deps, epoch=epoch)
        manifest = make_bundle(out, version=version, key=key, wheels=wheels, files_dir=files_dir,
                               min_upgrade_from=min_upgrade_from, build_time=epoch)
        if wheel_cache is None:
            shutil.rmtree(wheel_dir, ignore_errors=True)
    return manifest
