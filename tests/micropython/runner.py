"""Run scripts under real MicroPython (the WebAssembly port, in Node.js) from pytest.

:func:`micropython_runner` returns a callable, or skips the test with the reason:
no ``node``, or the npm package missing and ``npm install`` impossible (no network).
The package is installed into ``tests/micropython/node_modules`` from the
``package.json`` beside this file (pinned to MicroPython 1.27.0).
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Callable, Iterable
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
PACKAGE = HERE / "node_modules" / "@micropython" / "micropython-webassembly-pyscript"
FIRMWARE = ROOT / "appliance" / "firmware"


def ensure_package() -> str | None:
    """Install the npm package when missing; the reason it cannot be had, or None."""
    if shutil.which("node") is None:
        return "node is not installed (MicroPython runs in Node.js)"
    if (PACKAGE / "micropython.mjs").exists():
        return None
    npm = shutil.which("npm")
    if npm is None:
        return "npm is not installed and node_modules has no MicroPython"
    proc = subprocess.run(
        [npm, "install", "--no-audit", "--no-fund", "--loglevel=error"],
        cwd=HERE, capture_output=True, text=True, timeout=240,
    )  # fmt: skip
    if proc.returncode != 0 or not (PACKAGE / "micropython.mjs").exists():
        return f"npm install of the MicroPython package failed (no network?): {proc.stderr[-400:]}"
    return None


def firmware_files(extra: Iterable[tuple[str, Path]] = ()) -> list[str]:
    """``DEST=SRC`` arguments: the appliance.firmware package under /lib, plus ``extra``."""
    pairs = [(f"/lib/appliance/{p.name}", p) for p in [ROOT / "appliance" / "__init__.py"]]
    pairs += [(f"/lib/appliance/firmware/{p.name}", p) for p in sorted(FIRMWARE.glob("*.py"))]
    pairs += list(extra)
    return [f"{dest}={src}" for dest, src in pairs]


def micropython_runner() -> Callable[..., subprocess.CompletedProcess[str]]:
    """A function ``run(script_text, files=[(dest, src)])`` -> the finished process."""
    reason = ensure_package()
    if reason:
        pytest.skip(reason)

    def run(script: str, tmp: Path, files: Iterable[tuple[str, Path]] = (),
            timeout_s: float = 120) -> subprocess.CompletedProcess[str]:  # fmt: skip
        entry = tmp / "entry.py"
        entry.write_text(script)
        return subprocess.run(
            ["node", str(HERE / "run.mjs"), str(entry), *firmware_files(files)],
            cwd=HERE, capture_output=True, text=True, timeout=timeout_s,
        )  # fmt: skip

    return run
