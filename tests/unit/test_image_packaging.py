"""The shipped service definitions: systemd units pass ``systemd-analyze verify``; the
supervisord program is the one the installer's tests run."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from images.service import supervisor_program, systemd_unit

PACKAGING = Path(__file__).resolve().parents[2] / "packaging"


def test_supervisor_program_is_generated() -> None:
    text = (PACKAGING / "supervisor" / "branchline-edge.conf").read_text()
    body = "".join(line + "\n" for line in text.splitlines() if not line.startswith(";"))
    assert body == supervisor_program(Path("/opt/branchline"), user="branchline")


def test_edge_unit_is_generated() -> None:
    """Provisioning writes :func:`systemd_unit` for the box's root; the shipped file is
    the same for /opt/branchline."""
    text = (PACKAGING / "systemd" / "branchline-edge.service").read_text()
    body = "".join(line + "\n" for line in text.splitlines() if not line.startswith("#"))
    assert body == systemd_unit(Path("/opt/branchline"))


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze not installed")
@pytest.mark.parametrize(("unit", "exe"), [
    ("branchline-edge.service", "current/venv/bin/branchline"),
    ("branchline-fleet.service", None),
])
def test_units_verify(tmp_path: Path, unit: str, exe: str | None) -> None:
    # the unit's absolute paths point into a temp root holding a stub executable, so
    # verify can check ExecStart without an installed box
    root = tmp_path / "root"
    text = (PACKAGING / "systemd" / unit).read_text()
    text = text.replace("/opt/branchline-fleet", f"{root}-fleet").replace("/opt/branchline", str(root))
    for stub in [root / (exe or ""), Path(f"{root}-fleet/venv/bin/branchline")]:
        if stub.name == "branchline":
            stub.parent.mkdir(parents=True, exist_ok=True)
            stub.write_text("#!/bin/sh\n")
            stub.chmod(0o755)
    target = tmp_path / unit
    target.write_text(text)
    env = {**os.environ, "SYSTEMD_LOG_LEVEL": "warning"}
    out = subprocess.run(["systemd-analyze", "verify", "--man=no", str(target)],
                         capture_output=True, text=True, env=env)
    problems = [line for line in (out.stdout + out.stderr).splitlines()
                if unit in line and "Failed to" not in line or "Unknown" in line]
    assert out.returncode == 0 and not problems, out.stdout + out.stderr
