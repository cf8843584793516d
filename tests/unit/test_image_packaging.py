"""The shipped service definitions: systemd units pass ``systemd-analyze verify``; the
supervisord program is the one the installer's tests run."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from images.service import supervisor_program, systemd_unit, updater_program, updater_units

PACKAGING = Path(__file__).resolve().parents[2] / "packaging"


def test_supervisor_program_is_generated() -> None:
    text = (PACKAGING / "supervisor" / "branchline-edge.conf").read_text()
    body = "".join(line + "\n" for line in text.splitlines() if not line.startswith(";"))
    assert body == supervisor_program(Path("/opt/branchline"), user="branchline")


def _body(path: Path, comment: str) -> str:
    return "".join(line + "\n" for line in path.read_text().splitlines() if not line.startswith(comment))


def test_updater_definitions_are_generated() -> None:
    assert _body(PACKAGING / "supervisor" / "branchline-updater.conf", ";") == updater_program(Path("/opt/branchline"))
    for name, text in updater_units(Path("/opt/branchline")).items():
        assert _body(PACKAGING / "systemd" / name, "#") == text, name


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
    ("branchline-update.service", "current/venv/bin/python"),
])
def test_units_verify(tmp_path: Path, unit: str, exe: str | None) -> None:
    # the unit's absolute paths point into a temp root holding a stub executable, so
    # verify can check ExecStart without an installed box
    root = tmp_path / "root"
    text = (PACKAGING / "systemd" / unit).read_text()
    text = text.replace("/opt/branchline-fleet", f"{root}-fleet").replace("/opt/branchline", str(root))
    for stub in [root / (exe or ""), Path(f"{root}-fleet/venv/bin/branchline")]:
        if stub.name in ("branchline", "python"):
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


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze not installed")
def test_updater_path_unit_verifies(tmp_path: Path) -> None:
    """The path unit and the oneshot it starts, verified together."""
    root = tmp_path / "root"
    python = root / "current" / "venv" / "bin" / "python"
    python.parent.mkdir(parents=True)
    python.write_text("#!/bin/sh\n")
    python.chmod(0o755)
    (root / "data").mkdir()
    names = []
    for name, text in updater_units(root).items():
        (tmp_path / name).write_text(text)
        names.append(str(tmp_path / name))
    out = subprocess.run(["systemd-analyze", "verify", "--man=no", *names], capture_output=True, text=True,
                         env={**os.environ, "SYSTEMD_LOG_LEVEL": "warning"})
    assert out.returncode == 0 and not (out.stdout + out.stderr).strip(), out.stdout + out.stderr
