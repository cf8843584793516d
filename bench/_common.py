"""Helpers shared by the benchmarks: paths, port picks, child processes, output.

Benchmarks reuse the real-peer harness from tests/sipp.py (Sipp, EdgeProcess,
wait_for) rather than a second copy of it. Child processes are stopped by their
own pid only.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from tests.sipp import wait_for  # noqa: E402  (needs REPO_ROOT on sys.path)

SHARED_ANCHORS = REPO_ROOT.parent / "shared" / "anchors"
ANCHORS_VENV = REPO_ROOT / ".venv-anchors"

# Fixed picks stay below the kernel's ephemeral range (32768+), and apart:
SIGNALLING_PORTS = (16000, 19999)  # SIP listeners: targets, sipp uac/uas
SIPP_MEDIA_PORTS = (10000, 15999)  # sipp -mp blocks
EDGE_RTP_PORTS = (20000, 29999)  # the edge's media range in bench configs


def log(message: str) -> None:
    """A progress line (stdout, flushed, so a pipe sees it as it happens)."""
    print(message, flush=True)


def emit_json(result: Mapping[str, Any]) -> None:
    """The benchmark's last line: one JSON object."""
    print(json.dumps(dict(result), sort_keys=False), flush=True)


def udp_bindable(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


def pick_udp_ports(
    count: int, port_range: tuple[int, int] = SIGNALLING_PORTS, *, stride: int = 1
) -> list[int]:
    """``count`` distinct free UDP ports in ``port_range``, each ``stride`` apart-free.

    With ``stride`` > 1 every port p has p..p+stride-1 free too (sipp's -mp uses p, p+2).
    """
    low, high = port_range
    chosen: list[int] = []
    for _ in range(2000):
        base = random.randrange(low, high - stride) & ~1
        block = range(base, base + stride)
        if any(p in chosen or abs(p - c) < stride for p in block for c in chosen):
            continue
        if all(udp_bindable(p) for p in block):
            chosen.append(base)
            if len(chosen) == count:
                return chosen
    raise RuntimeError(f"could not find {count} free UDP ports in {port_range}")


def wait_udp_bound(port: int, proc: subprocess.Popen[bytes], timeout_s: float) -> None:
    """Wait until something holds UDP ``port`` (or ``proc`` dies)."""

    def bound_or_dead() -> bool:
        return proc.poll() is not None or not udp_bindable(port)

    wait_for(bound_or_dead, timeout_s, what=f"a listener on UDP {port}")
    if proc.poll() is not None:
        raise RuntimeError(f"process exited with {proc.returncode} before binding UDP {port}")


class ChildProcess:
    """A long-running reference server, its output in a log file, stopped by pid."""

    def __init__(self, name: str, command: Sequence[str], workdir: Path,
                 env: Mapping[str, str] | None = None) -> None:
        self.name = name
        self.command = list(command)
        self.workdir = workdir
        self.log_path = workdir / f"{name}.log"
        self.env = {**os.environ, **(env or {})}
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> ChildProcess:
        with open(self.log_path, "ab") as out:
            self.proc = subprocess.Popen(
                self.command, cwd=self.workdir, stdin=subprocess.DEVNULL,
                stdout=out, stderr=subprocess.STDOUT, env=self.env,
            )
        return self

    def log_tail(self, chars: int = 2000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except OSError:
            return ""

    def stop(self, timeout_s: float = 10.0) -> int | None:
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=5.0)
        return self.proc.returncode


class Stopwatch:
    def __init__(self) -> None:
        self.start = time.monotonic()

    def elapsed(self) -> float:
        return time.monotonic() - self.start
