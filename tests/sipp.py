"""Real-peer harness: SIPp as a child process, the edge daemon as a child process.

Everything here talks to real processes over real sockets; nothing is mocked.
Processes are only ever signalled by their own pid.

* ``Sipp`` runs one sipp in the foreground (``-nostdin``) with its statistics,
  screen, error and per-message count files written into its own work dir, and
  ``wait()`` turns them into a ``SippResult``.
* ``EdgeProcess`` writes a site config, starts ``edge run`` with a ready file,
  waits for the file (or for the process to die, with its stderr in the error),
  and stops it with SIGTERM, expecting exit 0.
* ``wait_for`` / ``wait_for_async`` poll a condition until a deadline.

Scenarios in tests/scenarios (each file's header comment has the details):

====================  ==========================================================
register              REGISTER -> 401/407 -> REGISTER with digest -> 200
register_badpw        same with a wrong password -> 403 or a second 401
uac_auth              INVITE -> 401/407 -> INVITE with digest -> 200, ACK, BYE
uac_cancel            INVITE -> 180/183 -> CANCEL -> 200 + 487 (any order) -> ACK
uac_expect_404/480/   INVITE -> that final status -> ACK
  486/noanswer        (noanswer: 408 or 480)
uac_wait_bye          INVITE -> 200 -> ACK -> the callee's BYE -> 200
uas_answer            INVITE -> 180 -> 200 (SDP) -> ACK -> BYE -> 200
uas_bye               INVITE -> 180 -> 200 -> ACK -> pause (-d) -> BYE -> 200
uas_busy              INVITE -> 486 -> ACK
uas_noanswer          INVITE -> 180 -> CANCEL -> 200, 487 -> ACK
fake_registrar,       test doubles (SIPp as registrar / challenging callee) that
fake_challenger       validate the scenarios above without the edge
====================  ==========================================================

Parameters: ``register*.xml`` and ``uac_auth.xml`` take the caller from an
``-inf`` CSV written by ``write_users_csv`` (SIPp 3.6 cannot nest ``[fieldN]``
inside ``[authentication]`` in a scenario, but expands one injected by a field).
``uac_*`` scenarios dial ``-s SERVICE``; ``uac_expect_*`` and ``uac_cancel``
answer a 401/407 once with ``-au/-ap``. SIPp's digest ``uri`` is
``sip:REMOTE_IP:REMOTE_PORT`` unless ``auth_uri`` (``-auth_uri``) is given,
which is the REGISTER Request-URI here but not an INVITE's.
"""

from __future__ import annotations

import asyncio
import contextlib
import csv
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

REPO_ROOT = Path(__file__).resolve().parents[1]
SCENARIO_DIR = Path(__file__).resolve().parent / "scenarios"
BUILTIN_SCENARIOS = frozenset(
    {"uac", "uas", "regexp", "3pcc-C-A", "3pcc-C-B", "3pcc-A", "3pcc-B", "branchc", "branchs",
     "uac_pcap"}
)

# SIPp's documented exit codes (man sipp, "Exit codes"); -1/-2 arrive as 255/254.
SIPP_EXIT_MEANING = {
    0: "all calls successful",
    1: "at least one call failed",
    97: "exit on internal command",
    99: "normal exit without calls processed",
    255: "fatal error (or -timeout reached with -timeout_error)",
    254: "fatal error binding a socket",
}

# Ports below the Linux ephemeral range (32768+) so that fixed picks never collide
# with sockets the kernel hands out; the edge's default RTP range is 20000-29999.
SIPP_MEDIA_PORT_RANGE = (10000, 19990)


# --------------------------------------------------------------------------- ports


def _bindable(kind: int, port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket(socket.AF_INET, kind) as s:
        if kind == socket.SOCK_STREAM:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


def _free_port(kind: int, host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def free_udp_port(host: str = "127.0.0.1") -> int:
    """A UDP port that was free a moment ago (bind port 0, read it, close)."""
    return _free_port(socket.SOCK_DGRAM, host)


def free_tcp_port(host: str = "127.0.0.1") -> int:
    """A TCP port that was free a moment ago (bind port 0, read it, close)."""
    return _free_port(socket.SOCK_STREAM, host)


def free_udp_tcp_port(host: str = "127.0.0.1", attempts: int = 50) -> int:
    """A port number free on both UDP and TCP (for a SIP listener on both)."""
    for _ in range(attempts):
        port = free_udp_port(host)
        if _bindable(socket.SOCK_STREAM, port, host):
            return port
    raise RuntimeError(f"no port free on both UDP and TCP after {attempts} attempts")


def free_udp_port_block(
    count: int,
    port_range: tuple[int, int] = SIPP_MEDIA_PORT_RANGE,
    host: str = "127.0.0.1",
    attempts: int = 200,
) -> int:
    """First port of ``count`` consecutive free UDP ports inside ``port_range``.

    SIPp's ``-mp`` media port uses the port and port+2 (video), so a sipp needs
    a block, and a fixed pick, unlike port 0, can be kept below the ephemeral range.
    """
    low, high = port_range
    for _ in range(attempts):
        base = random.randrange(low, high - count) & ~1
        if all(_bindable(socket.SOCK_DGRAM, base + i, host) for i in range(count)):
            return base
    raise RuntimeError(f"no block of {count} free UDP ports in {port_range}")


# --------------------------------------------------------------------------- waiting


def wait_for(
    condition: Callable[[], Any],
    timeout_s: float,
    *,
    interval_s: float = 0.02,
    what: str = "condition",
) -> Any:
    """Poll ``condition`` until it returns something truthy; return that value.

    Raises ``TimeoutError`` naming ``what`` once ``timeout_s`` has passed.
    """
    deadline = time.monotonic() + timeout_s
    while True:
        value = condition()
        if value:
            return value
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError(f"timed out after {timeout_s:.1f}s waiting for {what}")
        time.sleep(min(interval_s, remaining))


async def wait_for_async(
    condition: Callable[[], Any],
    timeout_s: float,
    *,
    interval_s: float = 0.02,
    what: str = "condition",
) -> Any:
    """``wait_for`` for coroutines: yields to the loop between polls."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = condition()
        if value:
            return value
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError(f"timed out after {timeout_s:.1f}s waiting for {what}")
        await asyncio.sleep(min(interval_s, remaining))


async def wait_for_coro(
    condition: Callable[[], Any],
    timeout_s: float,
    *,
    interval_s: float = 0.05,
    what: str = "condition",
) -> Any:
    """``wait_for_async`` for a condition that is itself a coroutine function (an HTTP
    request to an API, a store query): await it until it returns something truthy."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = await condition()
        if value:
            return value
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError(f"timed out after {timeout_s:.1f}s waiting for {what}")
        await asyncio.sleep(min(interval_s, remaining))


# --------------------------------------------------------------------------- sipp


def sipp_binary() -> str | None:
    """Path of the sipp binary, or None (``$SIPP`` overrides the PATH lookup)."""
    explicit = os.environ.get("SIPP")
    if explicit:
        return explicit if os.access(explicit, os.X_OK) else None
    return shutil.which("sipp")


def scenario_path(name: str) -> Path:
    """``tests/scenarios/NAME.xml`` (``name`` may carry the ``.xml`` suffix)."""
    path = SCENARIO_DIR / (name if name.endswith(".xml") else f"{name}.xml")
    if not path.is_file():
        raise FileNotFoundError(path)
    return path


def write_users_csv(
    path: Path,
    users: Iterable[tuple[str, str]],
    domain: str,
    order: str = "SEQUENTIAL",
) -> Path:
    """Write an ``-inf`` file for register*.xml / uac_auth.xml.

    One line per (user, password): ``user;domain;[authentication username=.. password=..]``.
    """
    lines = [order]
    for user, password in users:
        for value in (user, password, domain):
            if any(c in value for c in ";[] \r\n"):
                raise ValueError(f"unusable in a SIPp CSV field: {value!r}")
        lines.append(f"{user};{domain};[authentication username={user} password={password}]")
    path.write_text("\n".join(lines) + "\n")
    return path


def write_reject_uas(
    path: Path, status: int, reason: str, *, challenge_realm: str | None = None
) -> Path:
    """Write a UAS scenario answering INVITE with ``status reason`` (then ACK).

    SIPp fixes response codes when it loads a scenario, so each code is its own
    file. With ``challenge_realm`` the first INVITE gets a 401 (SIPp's verifyauth
    reads only Authorization, not Proxy-Authorization) and only the
    INVITE that carries a digest valid for ``-key user``/``-key password`` gets
    the final status (a wrong digest fails the call).
    """
    def response(status_line: str, extra: str = "") -> str:
        return (
            "  <send retrans=\"500\">\n    <![CDATA[\n\n"
            f"      SIP/2.0 {status_line}\n"
            "      [last_Via:]\n      [last_From:]\n"
            "      [last_To:];tag=[pid]SIPpTag01[call_number]\n"
            "      [last_Call-ID:]\n      [last_CSeq:]\n"
            f"{extra}"
            "      Content-Length: 0\n\n    ]]>\n  </send>\n"
        )

    parts = ['<?xml version="1.0" encoding="ISO-8859-1" ?>\n',
             f'<scenario name="reject_{status}">\n',
             '  <recv request="INVITE"/>\n']
    if challenge_realm is not None:
        parts.append(response(
            "401 Unauthorized",
            f'      WWW-Authenticate: Digest realm="{challenge_realm}", '
            'nonce="[pid]n[call_number]x", algorithm=MD5\n',
        ))
        parts.append('  <recv request="ACK"/>\n')
        parts.append(
            '  <recv request="INVITE">\n    <action>\n'
            '      <verifyauth assign_to="auth_ok" username="[user]" password="[password]"/>\n'
            '    </action>\n  </recv>\n'
            '  <nop test="auth_ok" next="authorised"/>\n'
            '  <recv request="OPTIONS" timeout="50"/>\n'
            '  <label id="authorised"/>\n'
        )
    parts.append(response(f"{status} {reason}"))
    parts.append('  <recv request="ACK"/>\n</scenario>\n')
    path.write_text("".join(parts))
    return path


@dataclass
class SippResult:
    """What one sipp run did, read from its exit code and its trace files."""

    returncode: int
    """sipp's exit code (see ``SIPP_EXIT_MEANING``); -N when killed by signal N."""
    stats: dict[str, str]
    """Last row of the ``-trace_stat`` file, column name -> raw value."""
    counts: dict[str, int]
    """Last row of the ``-trace_counts`` file: per scenario message, e.g. ``4_200_Recv``."""
    errors: str
    """Contents of the ``-trace_err`` file (unexpected messages, timeouts)."""
    screen: str
    """The final statistics screen (``-trace_screen``)."""
    command: list[str] = field(default_factory=list)
    workdir: Path | None = None

    def _stat(self, name: str) -> int:
        raw = self.stats.get(name, "")
        try:
            return int(float(raw))
        except ValueError:
            return 0

    @property
    def ok(self) -> bool:
        return self.returncode == 0

    @property
    def successful(self) -> int:
        return self._stat("SuccessfulCall(C)")

    @property
    def failed(self) -> int:
        return self._stat("FailedCall(C)")

    @property
    def created(self) -> int:
        return self._stat("TotalCallCreated")

    @property
    def retransmissions(self) -> int:
        return self._stat("Retransmissions(C)")

    @property
    def call_length_s(self) -> float:
        """Mean call length (first message to last) over the run, in seconds."""
        raw = self.stats.get("CallLength(C)", "")
        try:
            h, m, s, us = (int(x) for x in raw.split(":"))
        except ValueError:
            return 0.0
        return h * 3600 + m * 60 + s + us / 1e6

    @property
    def failure_reasons(self) -> dict[str, int]:
        """Non-zero cumulative ``Failed*`` counters other than the total."""
        out = {}
        for key in self.stats:
            if key.startswith("Failed") and key.endswith("(C)") and key != "FailedCall(C)":
                value = self._stat(key)
                if value:
                    out[key[: -len("(C)")]] = value
        return out

    def describe(self) -> str:
        """A short report for assertion messages."""
        meaning = SIPP_EXIT_MEANING.get(self.returncode, "unknown")
        lines = [
            f"sipp exit {self.returncode} ({meaning}): {self.successful} ok, "
            f"{self.failed} failed, {self.retransmissions} retransmissions",
            f"failure reasons: {self.failure_reasons or '-'}",
            f"command: {' '.join(self.command)}",
            f"workdir: {self.workdir}",
        ]
        if self.errors.strip():
            lines.append("errors (tail):\n" + self.errors[-3000:])
        return "\n".join(lines)


class SippTimeout(TimeoutError):
    """sipp did not exit in time; it has been killed, ``result`` is what it left."""

    def __init__(self, message: str, result: SippResult) -> None:
        super().__init__(message)
        self.result = result


def _read_last_row(path: Path) -> dict[str, str]:
    if not path.is_file():
        return {}
    text = path.read_text(errors="replace").splitlines()
    rows = [line for line in text if line.strip()]
    if len(rows) < 2:
        return {}
    header = next(csv.reader([rows[0]], delimiter=";"))
    values = next(csv.reader([rows[-1]], delimiter=";"))
    return {k: v for k, v in zip(header, values, strict=False) if k}


class Sipp:
    """One sipp process in the foreground, its trace files in ``workdir``.

    ``scenario`` is a built-in name (``uac``, ``uas``), a name in
    tests/scenarios (``uas_busy``) or a path to an XML file. ``remote`` is the
    target (omit it for a pure UAS). ``local_port`` defaults to a free UDP port,
    so a UAS's address is known before it starts (``.port``).
    """

    def __init__(
        self,
        workdir: Path,
        scenario: str | Path,
        *,
        remote: tuple[str, int] | None = None,
        local_host: str = "127.0.0.1",
        local_port: int | None = None,
        transport: str = "u1",
        service: str | None = None,
        calls: int | None = None,
        rate: float | None = None,
        rate_period_ms: int | None = None,
        limit: int | None = None,
        hold_ms: int | None = None,
        timeout_s: float | None = 30.0,
        timeout_error: bool = True,
        recv_timeout_ms: int | None = None,
        inf: Path | None = None,
        keys: Mapping[str, str] | None = None,
        variables: Mapping[str, str] | None = None,
        auth_user: str | None = None,
        auth_password: str | None = None,
        auth_uri: str | None = None,
        media_port: int | None = None,
        trace_msg: bool = False,
        extra_args: Sequence[str] = (),
        sipp_bin: str | None = None,
        name: str | None = None,
    ) -> None:
        binary = sipp_bin or sipp_binary()
        if binary is None:
            raise FileNotFoundError("sipp not found (Debian package sip-tester)")
        self.binary = binary
        self.name = name or Path(str(scenario)).stem
        self.workdir = Path(workdir) / f"sipp-{self.name}-{os.getpid()}-{id(self):x}"
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.host = local_host
        self.port = local_port if local_port is not None else free_udp_port(local_host)
        self.media_port = media_port if media_port is not None else free_udp_port_block(4)
        self.control_port = free_udp_port(local_host)
        self.timeout_s = timeout_s
        self.stat_file = self.workdir / "stat.csv"
        self.screen_file = self.workdir / "screen.log"
        self.error_file = self.workdir / "errors.log"
        self.message_file = self.workdir / "messages.log"
        self.stdout_file = self.workdir / "stdout.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self._result: SippResult | None = None

        args = [binary]
        scenario_str = str(scenario)
        if scenario_str in BUILTIN_SCENARIOS:
            args += ["-sn", scenario_str]
        elif scenario_str.endswith(".xml") and Path(scenario_str).is_file():
            args += ["-sf", str(Path(scenario_str).resolve())]
        else:
            args += ["-sf", str(scenario_path(scenario_str))]
        if remote is not None:
            args.append(f"{remote[0]}:{remote[1]}")
        args += ["-i", local_host, "-p", str(self.port), "-t", transport]
        args += ["-mp", str(self.media_port), "-cp", str(self.control_port)]
        args += ["-nostdin", "-trace_stat", "-stf", str(self.stat_file), "-fd", "1"]
        args += ["-trace_screen", "-screen_file", str(self.screen_file)]
        args += ["-trace_err", "-error_file", str(self.error_file), "-trace_counts"]
        if trace_msg:
            args += ["-trace_msg", "-message_file", str(self.message_file)]
        if service is not None:
            args += ["-s", service]
        if calls is not None:
            args += ["-m", str(calls)]
        if rate is not None:
            args += ["-r", f"{rate:g}"]
        if rate_period_ms is not None:
            args += ["-rp", f"{rate_period_ms}ms"]
        if limit is not None:
            args += ["-l", str(limit)]
        if hold_ms is not None:
            args += ["-d", str(hold_ms)]
        if timeout_s is not None:
            args += ["-timeout", f"{timeout_s:g}s"]
            if timeout_error:
                args.append("-timeout_error")
        if recv_timeout_ms is not None:
            args += ["-recv_timeout", f"{recv_timeout_ms}ms"]
        if inf is not None:
            args += ["-inf", str(inf)]
        for key, value in (keys or {}).items():
            args += ["-key", key, str(value)]
        for var, value in (variables or {}).items():
            args += ["-set", var, str(value)]
        if auth_user is not None:
            args += ["-au", auth_user]
        if auth_password is not None:
            args += ["-ap", auth_password]
        if auth_uri is not None:
            args += ["-auth_uri", auth_uri]
        args += list(extra_args)
        self.command = args

    # -- lifecycle

    @property
    def address(self) -> tuple[str, int]:
        return (self.host, self.port)

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    def start(self) -> Sipp:
        if self.proc is not None:
            raise RuntimeError("sipp already started")
        with open(self.stdout_file, "wb") as out:
            # cwd=workdir: the -trace_counts file has no name option and lands in cwd.
            self.proc = subprocess.Popen(
                self.command,
                cwd=self.workdir,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        return self

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def wait(self, timeout: float | None = None) -> SippResult:
        """Wait for sipp to exit and return its result.

        ``timeout`` defaults to sipp's own ``-timeout`` plus a margin. If sipp is
        still running then, it is killed and ``SippTimeout`` is raised.
        """
        if self.proc is None:
            raise RuntimeError("sipp not started")
        if timeout is None:
            timeout = (self.timeout_s or 60.0) + 10.0
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            result = self.stop()
            raise SippTimeout(
                f"sipp {self.name} still running after {timeout:.1f}s\n{result.describe()}", result
            ) from None
        return self._collect()

    async def wait_async(self, timeout: float | None = None) -> SippResult:
        """``wait`` without blocking the event loop (for async tests)."""
        return await asyncio.to_thread(self.wait, timeout)

    def stop(self, grace_s: float = 5.0) -> SippResult:
        """Soft-stop sipp (SIGUSR1: no new calls, finish ongoing ones), then kill.

        Signals only this sipp's own pid. Returns the result it left.
        """
        if self.proc is None:
            raise RuntimeError("sipp not started")
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.proc.pid, signal.SIGUSR1)
            try:
                self.proc.wait(timeout=grace_s)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=5.0)
        return self._collect()

    def _collect(self) -> SippResult:
        assert self.proc is not None and self.proc.returncode is not None
        if self._result is None:
            counts_files = sorted(self.workdir.glob("*_counts.csv"))
            counts = {}
            if counts_files:
                for key, value in _read_last_row(counts_files[-1]).items():
                    with contextlib.suppress(ValueError):
                        counts[key] = int(value)
            self._result = SippResult(
                returncode=self.proc.returncode,
                stats=_read_last_row(self.stat_file),
                counts=counts,
                errors=self.error_file.read_text(errors="replace")
                if self.error_file.is_file()
                else "",
                screen=self.screen_file.read_text(errors="replace")
                if self.screen_file.is_file()
                else "",
                command=self.command,
                workdir=self.workdir,
            )
        return self._result

    def __enter__(self) -> Sipp:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        if self.running():
            self.stop(grace_s=1.0)


# --------------------------------------------------------------------------- edge


class EdgeStartError(RuntimeError):
    """The edge daemon exited or did not get ready; carries its exit code and stderr."""

    def __init__(self, message: str, returncode: int | None, stderr: str) -> None:
        super().__init__(f"{message}\n--- edge stderr ---\n{stderr[-4000:]}")
        self.returncode = returncode
        self.stderr = stderr


def deep_merge(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    """``base`` with ``override`` merged in; nested dicts merge, everything else replaces."""
    out = dict(base)
    for key, value in override.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = value
    return out


def default_edge_config(workdir: Path, *, sip_port: int | None = None) -> dict[str, Any]:
    """A small valid site config: two extensions, a pstn trunk, the standard dial plan.

    ``sip_port`` (UDP and TCP) defaults to a port free on both.
    """
    port = sip_port if sip_port is not None else free_udp_tcp_port()
    return {
        "site": {"id": "test-site", "name": "Test", "timezone": "UTC"},
        "sip": {
            "listen_host": "127.0.0.1",
            "udp_port": port,
            "tcp_port": port,
            "domain": "test.local",
            "realm": "test.local",
            "auth_required": True,
        },
        "media": {"host": "127.0.0.1", "rtp_port_min": 20000, "rtp_port_max": 29999},
        "store": {"path": str(workdir / "edge.db")},
        "extensions": [
            {"number": "1001", "password": "pw1001", "name": "Alice"},
            {"number": "2001", "password": "pw2001", "name": "Agent Bob"},
        ],
        "trunks": [{"name": "pstn", "host": "127.0.0.1", "port": 5090, "transport": "udp", "options_interval_s": 0}],
        "routes": [
            {"match": r"^(\d{4})$", "extension": r"\1"},
            {"match": r"^9(\d+)$", "trunk": "pstn", "number": r"\1"},
            {"match": r"^0(\d+)$", "trunk": "pstn", "number": r"\1"},
        ],
    }


def edge_command(config: Path, ready_file: Path) -> list[str]:
    """``edge run`` through the current interpreter (works in any venv)."""
    return [
        sys.executable, "-m", "edge_core.cli", "edge", "run",
        "--config", str(config), "--ready-file", str(ready_file),
    ]


class EdgeProcess:
    """The edge daemon as a child process, configured from a dict."""

    def __init__(
        self,
        workdir: Path,
        config: Mapping[str, Any],
        *,
        command: Sequence[str] | None = None,
        env: Mapping[str, str] | None = None,
    ) -> None:
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.config = dict(config)
        self.config_path = self.workdir / "site.yaml"
        self.ready_path = self.workdir / "ready.json"
        self.stdout_path = self.workdir / "edge.stdout.log"
        self.stderr_path = self.workdir / "edge.stderr.log"
        self.command = list(command) if command else edge_command(self.config_path, self.ready_path)
        # The daemon runs with cwd=workdir: keep the repo importable without an install.
        pythonpath = os.pathsep.join(
            p for p in (str(REPO_ROOT), os.environ.get("PYTHONPATH", "")) if p
        )
        self.env = {**os.environ, "PYTHONPATH": pythonpath, **(env or {})}
        self.proc: subprocess.Popen[bytes] | None = None
        self.ready: dict[str, Any] = {}

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    @property
    def sip_udp(self) -> tuple[str, int]:
        host, port = self.ready["sip_udp"]
        return (str(host), int(port))

    @property
    def sip_tcp(self) -> tuple[str, int]:
        host, port = self.ready["sip_tcp"]
        return (str(host), int(port))

    def stderr_text(self) -> str:
        return self.stderr_path.read_text(errors="replace") if self.stderr_path.is_file() else ""

    def stdout_text(self) -> str:
        return self.stdout_path.read_text(errors="replace") if self.stdout_path.is_file() else ""

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def start(self, timeout_s: float = 15.0) -> dict[str, Any]:
        """Write the config, start the daemon, wait for its ready file; return it."""
        if self.proc is not None:
            raise RuntimeError("edge already started")
        self.config_path.write_text(yaml.safe_dump(self.config, sort_keys=False))
        self.ready_path.unlink(missing_ok=True)
        with open(self.stdout_path, "wb") as out, open(self.stderr_path, "wb") as err:
            self.proc = subprocess.Popen(
                self.command, cwd=self.workdir, stdin=subprocess.DEVNULL,
                stdout=out, stderr=err, env=self.env,
            )

        def ready_or_dead() -> dict[str, Any] | bool:
            assert self.proc is not None
            if self.ready_path.is_file():
                try:  # written atomically, but be tolerant of a reader race anyway
                    return dict(json.loads(self.ready_path.read_text()))
                except ValueError:
                    return False
            return self.proc.poll() is not None

        try:
            state = wait_for(ready_or_dead, timeout_s, what="the edge's ready file")
        except TimeoutError:
            self.kill()
            raise EdgeStartError(
                f"edge not ready after {timeout_s:.1f}s: {' '.join(self.command)}",
                None, self.stderr_text(),
            ) from None
        if not isinstance(state, dict):
            rc = self.proc.returncode
            raise EdgeStartError(
                f"edge exited with {rc} before it was ready: {' '.join(self.command)}",
                rc, self.stderr_text(),
            )
        self.ready = state
        return state

    async def start_async(self, timeout_s: float = 15.0) -> dict[str, Any]:
        return await asyncio.to_thread(self.start, timeout_s)

    def stop(self, timeout_s: float = 10.0, *, expect_returncode: int | None = 0) -> int:
        """SIGTERM the daemon and wait; assert its exit code (None: don't)."""
        if self.proc is None:
            raise RuntimeError("edge not started")
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                self.kill()
                raise AssertionError(
                    f"edge ignored SIGTERM for {timeout_s:.1f}s\n{self.stderr_text()[-4000:]}"
                ) from None
        rc = self.proc.returncode
        if expect_returncode is not None:
            assert rc == expect_returncode, (
                f"edge exited {rc}, expected {expect_returncode}\n{self.stderr_text()[-4000:]}"
            )
        return rc

    def kill(self) -> None:
        """SIGKILL by pid (cleanup path only)."""
        if self.proc is not None and self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=5.0)
