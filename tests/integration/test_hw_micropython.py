"""The firmware under real MicroPython 1.27 (WebAssembly port in Node.js), not CPython.

The same fixed vectors as tests/unit/test_hw_vectors.py (tests/micropython/hw_vectors.py)
run on MicroPython, then the real entry point (``board.Board`` with its asyncio tasks)
runs on a ``machine`` shim written in MicroPython, talking the protocol with a host
``Link`` over the shim's UART. Skipped with the reason when Node.js or the npm package
(and the network to install it) is missing.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.micropython.runner import HERE, micropython_runner

pytestmark = pytest.mark.timeout(300)


def test_vectors_on_micropython(tmp_path: Path) -> None:
    run = micropython_runner()
    script = "import sys\nprint(sys.implementation.name, sys.implementation.version)\n"
    script += "import hw_vectors\nhw_vectors.run()\n"
    proc = run(script, tmp_path, [("/lib/hw_vectors.py", HERE / "hw_vectors.py")])
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "micropython (1, 27" in proc.stdout
    assert "hw_vectors ok 10" in proc.stdout


def test_board_runs_on_micropython_with_machine_shim(tmp_path: Path) -> None:
    run = micropython_runner()
    files = [
        ("/lib/machine.py", HERE / "machine.py"),
        ("/lib/board_check.py", HERE / "board_check.py"),
    ]
    proc = run("import board_check\nawait board_check.scenario()\n", tmp_path, files)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "board ok" in proc.stdout


def test_micropython_failure_is_reported(tmp_path: Path) -> None:
    """A failing check must fail the test (the runner's exit status is not swallowed)."""
    run = micropython_runner()
    proc = run("from appliance.firmware import frame\nassert frame.crc16(b'1') == 0\n", tmp_path)
    assert proc.returncode == 1
    assert "AssertionError" in proc.stderr
