"""The application's own health check, run after a switch before a slot is marked good.

Each check is one probe with a named result and its output, so a rollback can say
exactly what failed. The probes:

* ``api`` -- ``GET /v1/status`` on the control API's unix socket answers 200 JSON;
* ``media`` -- the media engine reports its implementation (it is running);
* ``sip`` -- a SIP OPTIONS to the edge's UDP port gets a response (any status: an
  edge that asks for credentials is alive);
* ``registrations`` -- at least as many phones registered as before the update;
* ``outbox`` -- the backlog is at most what it was before plus ``outbox_slack``
  (it drains, or at least does not pile up).

:func:`judge` is pure; :class:`EdgeProbe` does the I/O.
"""

from __future__ import annotations

import json
import os
import socket
import sqlite3
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str


@dataclass(frozen=True)
class HealthReport:
    checks: tuple[Check, ...]

    @property
    def ok(self) -> bool:
        return all(c.ok for c in self.checks)

    def failures(self) -> str:
        return "; ".join(f"{c.name}: {c.detail}" for c in self.checks if not c.ok)


@dataclass(frozen=True)
class Baseline:
    """What the old release showed before the switch."""

    registrations: int = 0
    outbox_backlog: int = 0


@dataclass(frozen=True)
class Observation:
    status: dict[str, Any] | None
    status_error: str
    sip_response: str | None
    sip_error: str
    outbox_backlog: int | None
    outbox_error: str = ""


@dataclass(frozen=True)
class HealthPolicy:
    window_s: float = 60.0
    """The new release must pass every check within this window."""
    outbox_slack: int = 100
    check_registrations: bool = True
    require_compiled_media: bool = False
    crash_loop_starts: int = 3
    """This many failed starts ..."""
    crash_loop_window_s: float = 60.0
    """... within this window is a crash loop: roll back at once."""
    poll_s: float = 0.2
    extra: dict[str, Any] = field(default_factory=dict)


def judge(obs: Observation, baseline: Baseline, policy: HealthPolicy) -> HealthReport:
    checks: list[Check] = []
    status = obs.status
    checks.append(Check("api", status is not None, "GET /v1/status 200" if status is not None else obs.status_error))
    media = (status or {}).get("media") or {}
    impl = media.get("implementation")
    if status is None:
        checks.append(Check("media", False, "no status"))
    elif not impl:
        checks.append(Check("media", False, f"media engine not reporting: {media}"))
    elif policy.require_compiled_media and impl != "cython":
        checks.append(Check("media", False, f"media engine on {impl}, compiled required"))
    else:
        checks.append(Check("media", True, f"implementation {impl}"))
    sip = obs.sip_response
    checks.append(Check("sip", sip is not None, sip if sip is not None else obs.sip_error))
    if policy.check_registrations:
        have = ((status or {}).get("counts") or {}).get("registrations")
        ok = isinstance(have, int) and have >= baseline.registrations
        checks.append(Check("registrations", ok, f"{have} registered, {baseline.registrations} before"))
    backlog = obs.outbox_backlog
    limit = baseline.outbox_backlog + policy.outbox_slack
    checks.append(Check("outbox", backlog is not None and backlog <= limit,
                        f"backlog {backlog} (limit {limit})" if backlog is not None else obs.outbox_error))
    return HealthReport(tuple(checks))


# -------------------------------------------------------------------- probes


def unix_get_json(path: Path, url: str, timeout_s: float = 2.0) -> dict[str, Any]:
    """A minimal HTTP/1.1 GET over a unix socket (no dependency on the edge's client)."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(timeout_s)
        s.connect(str(path))
        s.sendall(f"GET {url} HTTP/1.1\r\nHost: edge\r\nConnection: close\r\n\r\n".encode())
        chunks = []
        while chunk := s.recv(65536):
            chunks.append(chunk)
    raw = b"".join(chunks)
    head, _, body = raw.partition(b"\r\n\r\n")
    status_line = head.split(b"\r\n", 1)[0].decode(errors="replace")
    if " 200 " not in status_line + " ":
        raise OSError(f"{url}: {status_line}")
    if b"transfer-encoding: chunked" in head.lower():
        body = _dechunk(body)
    return dict(json.loads(body))


def _dechunk(body: bytes) -> bytes:
    out, rest = [], body
    while rest:
        size_line, _, rest = rest.partition(b"\r\n")
        size = int(size_line.split(b";")[0], 16)
        if size == 0:
            break
        out.append(rest[:size])
        rest = rest[size + 2:]
    return b"".join(out)


def sip_options(host: str, port: int, timeout_s: float = 1.0) -> str:
    """Send one OPTIONS over UDP; return the response's status line (OSError if none)."""
    tag = uuid.uuid4().hex[:12]
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(timeout_s)
        s.bind((host, 0))
        lport = s.getsockname()[1]
        msg = (
            f"OPTIONS sip:{host}:{port} SIP/2.0\r\n"
            f"Via: SIP/2.0/UDP {host}:{lport};branch=z9hG4bK{tag}\r\n"
            "Max-Forwards: 70\r\n"
            f"From: <sip:health@{host}>;tag={tag}\r\n"
            f"To: <sip:{host}:{port}>\r\n"
            f"Call-ID: {tag}@health\r\n"
            "CSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n"
        )
        s.sendto(msg.encode(), (host, port))
        data, _ = s.recvfrom(65536)
    return data.split(b"\r\n", 1)[0].decode(errors="replace")


def outbox_backlog(db: Path) -> int:
    """Rows in the edge store's outbox (read-only; the edge keeps writing meanwhile)."""
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=2.0)
    try:
        return int(conn.execute("SELECT count(*) FROM outbox").fetchone()[0])
    finally:
        conn.close()


@dataclass(frozen=True)
class EdgeEndpoints:
    api_socket: Path | None
    sip_host: str
    sip_port: int
    store: Path

    @classmethod
    def from_config(cls, config_path: Path, workdir: Path) -> EdgeEndpoints:
        """Where to find the edge, read from the site config it runs with."""
        raw = yaml.safe_load(Path(config_path).read_text()) or {}
        sip = raw.get("sip") or {}
        api = raw.get("api") or {}
        store = raw.get("store") or {}
        sock = api.get("socket", "var/edge.sock")
        host = sip.get("listen_host", "0.0.0.0")
        return cls(
            api_socket=(workdir / sock) if sock else None,
            sip_host="127.0.0.1" if host in ("0.0.0.0", "") else host,
            sip_port=int(sip.get("udp_port", 5060)),
            store=workdir / store.get("path", "var/edge.db"),
        )


class EdgeProbe:
    def __init__(self, endpoints: EdgeEndpoints) -> None:
        self.endpoints = endpoints

    def observe(self) -> Observation:
        e = self.endpoints
        status: dict[str, Any] | None = None
        status_error = ""
        if e.api_socket is None:
            status_error = "the control API is turned off (api.socket is empty)"
        else:
            try:
                status = unix_get_json(e.api_socket, "/v1/status")
            except (OSError, ValueError) as exc:
                status_error = f"{e.api_socket}: {exc}"
        sip, sip_error = None, ""
        try:
            sip = sip_options(e.sip_host, e.sip_port)
        except OSError as exc:
            sip_error = f"OPTIONS to {e.sip_host}:{e.sip_port}: {exc or 'no answer'}"
        backlog, outbox_error = None, ""
        if os.path.exists(e.store):
            try:
                backlog = outbox_backlog(e.store)
            except sqlite3.Error as exc:
                outbox_error = f"{e.store}: {exc}"
        else:
            outbox_error = f"{e.store}: no store yet"
        return Observation(status, status_error, sip, sip_error, backlog, outbox_error)

    def baseline(self) -> Baseline:
        obs = self.observe()
        regs = ((obs.status or {}).get("counts") or {}).get("registrations", 0)
        return Baseline(registrations=int(regs or 0), outbox_backlog=obs.outbox_backlog or 0)

    def calls_active(self) -> int | None:
        """Calls in progress (None: the API does not answer)."""
        if self.endpoints.api_socket is None:
            return None
        try:
            status = unix_get_json(self.endpoints.api_socket, "/v1/status")
        except (OSError, ValueError):
            return None
        return int((status.get("counts") or {}).get("calls_active", 0))
