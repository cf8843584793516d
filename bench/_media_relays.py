"""The relays bench/media.py measures, each a child process stopped by its own pid.

``start(calls, generator_ports)`` returns, for each generator leg in order, the relay
port that leg sends to; leg 2i and leg 2i+1 are the two sides of call i.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import select
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from _bencode import decode, encode
from _common import SIGNALLING_PORTS, pick_udp_ports, udp_bindable

BENCH_DIR = Path(__file__).resolve().parent
RELAY_PORTS = (20000, 29999)  # the C relay and the edge
RTPENGINE_PORTS = (30000, 50000)  # as the anchors README ran it


class Relay:
    name = "relay"

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_path = workdir / f"{self.name}.log"

    def start(self, calls: int, generator_ports: list[int]) -> list[int]:
        raise NotImplementedError

    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def _spawn(self, command: list[str], stdin: int | None = subprocess.DEVNULL) -> None:
        with open(self.log_path, "ab") as log_file:
            self.proc = subprocess.Popen(command, stdin=stdin, stdout=subprocess.PIPE,
                                         stderr=log_file, cwd=self.workdir)

    def _read_line(self, timeout_s: float) -> bytes:
        assert self.proc is not None and self.proc.stdout is not None
        poller = select.poll()  # select() cannot watch fds >= 1024 (we hold thousands)
        poller.register(self.proc.stdout, select.POLLIN)
        ready = poller.poll(timeout_s * 1000)
        line = self.proc.stdout.readline() if ready else b""
        if not line:
            raise RuntimeError(f"{self.name} gave no start line within {timeout_s:g} s "
                               f"(exit code {self.proc.poll()})")
        return line

    def stop(self) -> dict[str, Any] | None:
        """Stop the child by its pid (TERM, then KILL); idempotent."""
        proc, self.proc = self.proc, None
        if proc is None:
            return None
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=10.0)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(proc.pid, signal.SIGKILL)
                proc.wait(timeout=5.0)
        if proc.stdout is not None:
            proc.stdout.close()
        return None

    def diagnostics(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-1500:]
        except OSError:
            return ""


def free_port_block(count: int, port_range: tuple[int, int]) -> int:
    """A base port with ``count`` consecutive free UDP ports inside ``port_range``."""
    low, high = port_range
    for _ in range(50):
        base = random.randrange(low, high - count + 1)
        if all(udp_bindable(p) for p in range(base, base + count)):
            return base
    raise RuntimeError(f"no {count} consecutive free UDP ports in {port_range}")


class CRelay(Relay):
    name = "c"

    def __init__(self, workdir: Path, binary: Path) -> None:
        super().__init__(workdir)
        self.binary = binary

    def start(self, calls: int, generator_ports: list[int]) -> list[int]:
        base = free_port_block(2 * calls, RELAY_PORTS)
        self._spawn([str(self.binary), "127.0.0.1", str(base), str(calls)])
        if self._read_line(10.0).strip() != b"ready":
            raise RuntimeError("c_relay did not say ready")
        return list(range(base, base + 2 * calls))


class EdgeRelay(Relay):
    """bench/engine_host.py: the compiled media engine, or its pure-Python twin.

    ``impl``: "engine" (compiled, fails when not built), "python" (the twin) or "auto"
    (what ``cython_ext.mediaengine`` loads)."""

    name = "edge"

    def __init__(self, workdir: Path, impl: str = "auto") -> None:
        super().__init__(workdir)
        self.impl_choice = impl
        self.impl: str | None = None

    def start(self, calls: int, generator_ports: list[int]) -> list[int]:
        remotes = self.workdir / "edge-remotes.json"
        remotes.write_text(json.dumps(generator_ports))
        self._spawn([sys.executable, str(BENCH_DIR / "engine_host.py"), "--calls", str(calls),
                     "--port-min", str(RELAY_PORTS[0]), "--port-max", str(RELAY_PORTS[1]),
                     "--remote-ports", str(remotes), "--impl", self.impl_choice],
                    stdin=subprocess.PIPE)
        started = json.loads(self._read_line(60.0))
        self.impl = started["impl"]
        return [int(p) for p in started["ports"]]

    def stop(self) -> dict[str, Any] | None:
        """Close the host's stdin (it prints its counters and exits), then reap by pid."""
        proc = self.proc
        counters = None
        if proc is not None and proc.poll() is None and proc.stdin is not None:
            with contextlib.suppress(OSError):
                proc.stdin.close()
            with contextlib.suppress(RuntimeError, ValueError):
                counters = json.loads(self._read_line(10.0)).get("counters")
        super().stop()
        return counters


def ensure_rtpengine(install: bool) -> str | None:
    found = shutil.which("rtpengine") or (
        "/usr/bin/rtpengine" if Path("/usr/bin/rtpengine").exists() else None)
    if found or not install:
        return found
    if os.geteuid() != 0:
        print("[rtpengine] not root: cannot apt-get install rtpengine-daemon", flush=True)
        return None
    print("[rtpengine] installing rtpengine-daemon (apt)...", flush=True)
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    try:
        subprocess.run(["apt-get", "install", "-y", "--no-install-recommends", "rtpengine-daemon"],
                       check=True, capture_output=True, env=env, timeout=900)
    except (subprocess.SubprocessError, OSError) as exc:
        print(f"[rtpengine] install failed: {exc}", flush=True)
        return None
    return shutil.which("rtpengine")


def call_sdp(port: int) -> str:
    return ("v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
            f"m=audio {port} RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\na=ptime:20\r\na=sendrecv\r\n")


def sdp_audio_port(sdp: bytes) -> int:
    for line in sdp.decode(errors="replace").splitlines():
        if line.startswith("m=audio "):
            return int(line.split()[1])
    raise RuntimeError("rtpengine's SDP has no m=audio line")


class NgClient:
    """rtpengine's ng control protocol: ``COOKIE SP bencoded-dict`` over UDP."""

    def __init__(self, port: int) -> None:
        self.address = ("127.0.0.1", port)
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.settimeout(2.0)
        self.serial = 0

    def request(self, message: dict[str, Any]) -> dict[str, Any]:
        self.serial += 1
        cookie = b"%d_%d" % (os.getpid(), self.serial)
        self.sock.sendto(cookie + b" " + encode(message), self.address)
        while True:
            reply = self.sock.recv(65535)
            got, _, body = reply.partition(b" ")
            if got == cookie:
                answer = decode(body)
                if answer.get("result") not in (b"ok", b"pong"):
                    raise RuntimeError(f"rtpengine {message['command']}: {answer}")
                return answer

    def close(self) -> None:
        self.sock.close()


class RtpengineRelay(Relay):
    name = "rtpengine"

    def __init__(self, workdir: Path, binary: str) -> None:
        super().__init__(workdir)
        self.binary = binary

    def start(self, calls: int, generator_ports: list[int]) -> list[int]:
        (ng_port,) = pick_udp_ports(1, SIGNALLING_PORTS)
        self._spawn([self.binary, "--config-file=none", "--interface=127.0.0.1",
                     f"--listen-ng=127.0.0.1:{ng_port}", "--table=-1", "--foreground",
                     "--num-threads=2", f"--port-min={RTPENGINE_PORTS[0]}",
                     f"--port-max={RTPENGINE_PORTS[1]}", "--log-stderr", "--log-level=4",
                     "--delete-delay=0"])
        ng = NgClient(ng_port)
        try:
            deadline = time.monotonic() + 10.0
            while True:
                try:
                    ng.request({"command": "ping"})
                    break
                except (TimeoutError, ConnectionRefusedError):
                    if time.monotonic() > deadline or (self.proc and self.proc.poll() is not None):
                        raise RuntimeError("rtpengine did not answer ng ping") from None
                    time.sleep(0.1)
            ports: list[int] = []
            for i in range(calls):
                a, b = generator_ports[2 * i], generator_ports[2 * i + 1]
                call = {"call-id": f"bench-{i}", "from-tag": f"a{i}"}
                offer = ng.request({"command": "offer", **call, "sdp": call_sdp(a)})
                answer = ng.request({"command": "answer", **call, "to-tag": f"b{i}",
                                     "sdp": call_sdp(b)})
                # Leg A sends where the answer (given to A) points; leg B where the offer does.
                ports += [sdp_audio_port(answer["sdp"]), sdp_audio_port(offer["sdp"])]
        finally:
            ng.close()
        return ports
