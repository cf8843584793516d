"""images.updater: the edge's update request is taken once and runs the agent from the
current slot; a malformed request is moved aside. The "agent" here is a stand-in script
at ROOT/current/venv/bin/python that records its arguments (the real agent's install is
tests/integration/test_provision_enroll.py and test_rollout_update.py)."""

from __future__ import annotations

import json
import stat
from pathlib import Path

from images.updater import REJECTED, REQUEST, TAKEN, request_pending, run_once, take, write_request


def _box(tmp_path: Path, exit_status: int = 0) -> Path:
    root = tmp_path / "box"
    python = root / "slots" / "a" / "venv" / "bin" / "python"
    python.parent.mkdir(parents=True)
    python.write_text(f'#!/bin/sh\nprintf "%s\\n" "$@" > "{root}/agent-argv"\nexit {exit_status}\n')
    python.chmod(python.stat().st_mode | stat.S_IXUSR)
    (root / "current").symlink_to("slots/a")
    (root / "data").mkdir()
    return root


def test_a_request_runs_the_agent_once(tmp_path: Path) -> None:
    root = _box(tmp_path)
    assert run_once(root) is None and not (root / "agent-argv").exists()  # nothing asked
    args = {"version": "1.2.3", "url": "http://fleet/b", "sha256": "ab" * 32, "size": 10, "report_id": "r1"}
    write_request(root, args)
    assert request_pending(root)
    assert run_once(root) == 0
    argv = (root / "agent-argv").read_text().splitlines()
    assert argv[:4] == ["-m", "images.agent", "--root", str(root)] and json.loads(argv[5]) == args
    assert not request_pending(root)
    (root / "agent-argv").unlink()
    assert run_once(root) is None and not (root / "agent-argv").exists()  # once


def test_the_agents_exit_status_is_returned(tmp_path: Path) -> None:
    root = _box(tmp_path, exit_status=4)
    write_request(root, {"version": "1"})
    assert run_once(root) == 4 and not request_pending(root)


def test_a_request_taken_before_a_restart_still_runs(tmp_path: Path) -> None:
    root = _box(tmp_path)
    (root / TAKEN).write_text(json.dumps({"version": "2"}))
    assert run_once(root) == 0 and json.loads((root / "agent-argv").read_text().splitlines()[5]) == {"version": "2"}


def test_a_malformed_request_is_moved_aside(tmp_path: Path) -> None:
    root = _box(tmp_path)
    for body in ("{not json", "[1, 2]"):
        (root / REQUEST).write_text(body)
        assert take(root) is None
        assert (root / REJECTED).read_text() == body and not request_pending(root)
    assert not (root / "agent-argv").exists()
