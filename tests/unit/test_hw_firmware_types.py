"""mypy on appliance/firmware against MicroPython's stubs (micropython-rp2-stubs 1.27,
with micropython-stdlib-stubs as the typeshed), through appliance/firmware/mypy.ini.

The stubs go to .venv/micropython-stubs (``pip install --target``) when missing; the
test skips with the reason when pip cannot reach the index.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
STUBS = ROOT / ".venv" / "micropython-stubs"
CONFIG = ROOT / "appliance" / "firmware" / "mypy.ini"
STUBS_REQUIREMENT = "micropython-rp2-stubs==1.27.0.post1"  # MicroPython 1.27, as in the node tests

pytestmark = pytest.mark.timeout(300)


def _ensure_stubs() -> None:
    if (STUBS / "machine.pyi").exists() and (STUBS / "stdlib" / "VERSIONS").exists():
        return
    proc = subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "--target", str(STUBS), STUBS_REQUIREMENT],
        capture_output=True, text=True, timeout=240,
    )  # fmt: skip
    if proc.returncode != 0:
        pytest.skip(f"cannot install {STUBS_REQUIREMENT} (no network?): {proc.stderr[-300:]}")


def _mypy(*targets: str) -> subprocess.CompletedProcess[str]:
    _ensure_stubs()
    return subprocess.run(
        [sys.executable, "-m", "mypy", "--config-file", str(CONFIG), *targets],
        cwd=ROOT, capture_output=True, text=True, timeout=240,
    )  # fmt: skip


def test_firmware_is_clean_against_micropython_stubs() -> None:
    proc = _mypy("-p", "appliance.firmware")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "Success" in proc.stdout


def test_the_check_really_uses_micropython_stubs(tmp_path: Path) -> None:
    """CPython-only calls fail and MicroPython-only ones pass: the stubs are in force."""
    probe = tmp_path / "probe.py"
    probe.write_text(
        "import time\nimport machine\n"
        "a: int = time.ticks_diff(time.ticks_ms(), 0)\n"  # MicroPython only: fine
        "machine.WDT(timeout=2000).feed()\n"
        "time.monotonic()\n"  # CPython only: an error here
        "machine.Pin(2, machine.Pin.OUT).value('x', 1)\n"  # wrong signature
    )
    proc = _mypy(str(probe))
    assert proc.returncode == 1
    assert 'Module has no attribute "monotonic"' in proc.stdout
    assert '"value" of "Pin"' in proc.stdout
    assert "ticks_ms" not in proc.stdout
