"""Smoke test of the real binary: ``branchline tui`` in a tmux pane at 80x24 against a
real edge, the screen read with ``capture-pane``; NO_COLOR set, so what is read is what
a monochrome terminal shows."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.integration.test_contact_center import site
from tests.sipp import EdgeProcess, wait_for

pytestmark = [pytest.mark.timeout(90), pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux not installed")]

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def tmux(tmp_path: Path) -> Iterator[Callable[..., str]]:
    """``tmux(*args)`` on a private server (its own socket); the server is killed at teardown."""
    sock = str(tmp_path / f"tmux-{uuid.uuid4().hex[:8]}")

    def run(*args: str) -> str:
        done = subprocess.run(["tmux", "-S", sock, *args], capture_output=True, text=True, timeout=10, check=True)
        return done.stdout

    yield run
    subprocess.run(["tmux", "-S", sock, "kill-server"], capture_output=True, timeout=10, check=False)


def test_branchline_tui_in_tmux_shows_the_site_and_switches_tabs(
    edge_factory: Callable[..., EdgeProcess], tmp_path: Path, tmux: Callable[..., str]
) -> None:
    edge = edge_factory(site(tmp_path))
    socket = str(edge.workdir / edge.ready["api_socket"])
    command = (f"cd {REPO} && NO_COLOR=1 TERM=xterm-256color PYTHONPATH={REPO} "
               f"{sys.executable} -m edge_core.cli tui --socket {socket} --bundle-dir {tmp_path}")  # fmt: skip
    tmux("new-session", "-d", "-s", "console", "-x", "80", "-y", "24", command)

    def screen() -> str:
        return tmux("capture-pane", "-p", "-t", "console")

    wait_for(lambda: "● connected" in screen() and "Test (test-site)" in screen(), 30.0, what="the console connected")
    first = screen()
    assert "NORMAL for" in first and "Alarms        not reported" in first, first
    assert len(first.splitlines()) <= 24 and max(len(line) for line in first.splitlines()) <= 80
    tmux("send-keys", "-t", "console", "2")
    wait_for(lambda: "Agents" in screen() and "dana" in screen(), 10.0, what="the calls tab")
    tmux("send-keys", "-t", "console", "q")
    wait_for(lambda: not _console_running(tmux), 10.0, what="the console to quit")
    assert os.path.exists(socket)  # the edge is untouched


def _console_running(tmux: Callable[..., str]) -> bool:
    try:
        return "console" in tmux("list-sessions", "-F", "#{session_name}")
    except subprocess.CalledProcessError:  # the server went with its last session
        return False
