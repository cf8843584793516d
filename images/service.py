"""The one small interface to the box's process manager, and its two implementations.

* :class:`Supervisor` -- supervisord over its XML-RPC API on a unix socket (what the
  tests run: Debian package ``supervisor``).
* :class:`Systemd` -- ``systemctl`` (production; units in ``packaging/systemd``).

Both report a :class:`ServiceStatus` whose ``started_at`` changes on every (re)spawn,
which is what the crash-loop detector counts.
"""

from __future__ import annotations

import http.client
import socket
import subprocess
import xmlrpc.client
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Protocol

State = Literal["running", "starting", "stopped", "backoff", "exited", "fatal", "unknown"]

EDGE_SERVICE = "branchline-edge"


@dataclass(frozen=True)
class ServiceStatus:
    state: State
    pid: int | None
    started_at: float | None
    """When the current or last process was spawned (changes on every spawn)."""
    detail: str = ""
    """Exit status or spawn error, for the rollback reason."""


class ServiceManager(Protocol):
    def start(self, name: str) -> None: ...
    def stop(self, name: str) -> None: ...
    def restart(self, name: str) -> None: ...
    def status(self, name: str) -> ServiceStatus: ...


class ServiceError(RuntimeError):
    pass


# -------------------------------------------------------------------- supervisord


class _UnixHTTPConnection(http.client.HTTPConnection):
    def __init__(self, path: str, timeout: float) -> None:
        super().__init__("localhost", timeout=timeout)
        self._path = path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.settimeout(self.timeout)
            sock.connect(self._path)
        except OSError:
            sock.close()
            raise
        self.sock = sock


_SUPERVISOR_STATES: dict[str, State] = {
    "RUNNING": "running", "STARTING": "starting", "STOPPED": "stopped", "STOPPING": "stopped",
    "BACKOFF": "backoff", "EXITED": "exited", "FATAL": "fatal", "UNKNOWN": "unknown",
}


class Supervisor:
    """supervisord's XML-RPC interface on ``socket_path``."""

    def __init__(self, socket_path: Path, timeout_s: float = 10.0) -> None:
        self.socket_path = Path(socket_path)
        self._timeout = timeout_s

    def _call(self, method: str, *args: Any) -> Any:
        """One XML-RPC call on a fresh connection (raises xmlrpc.client.Fault, OSError)."""
        body = xmlrpc.client.dumps(args, method).encode()
        conn = _UnixHTTPConnection(str(self.socket_path), self._timeout)
        try:
            conn.request("POST", "/RPC2", body, {"Content-Type": "text/xml"})
            with conn.getresponse() as resp:
                data, status = resp.read(), resp.status
        finally:
            conn.close()
        if status != 200:
            raise ServiceError(f"supervisord answered HTTP {status} to {method}")
        (result,), _ = xmlrpc.client.loads(data)
        return result

    def start(self, name: str) -> None:
        try:
            self._call("supervisor.startProcess", name, False)
        except xmlrpc.client.Fault as exc:
            if "ALREADY_STARTED" not in exc.faultString:
                raise ServiceError(f"start {name}: {exc.faultString}") from None

    def stop(self, name: str) -> None:
        try:
            self._call("supervisor.stopProcess", name, True)
        except xmlrpc.client.Fault as exc:
            if "NOT_RUNNING" not in exc.faultString:
                raise ServiceError(f"stop {name}: {exc.faultString}") from None

    def restart(self, name: str) -> None:
        self.stop(name)
        self.start(name)

    def status(self, name: str) -> ServiceStatus:
        try:
            info = self._call("supervisor.getProcessInfo", name)
        except xmlrpc.client.Fault as exc:
            raise ServiceError(f"status {name}: {exc.faultString}") from None
        assert isinstance(info, dict)
        state = _SUPERVISOR_STATES.get(str(info["statename"]), "unknown")
        detail = str(info.get("spawnerr") or "")
        if state in ("exited", "backoff", "fatal") and not detail:
            detail = f"exit status {info.get('exitstatus')}"
        return ServiceStatus(state, int(info["pid"]) or None, float(info["start"]) or None, detail)

    def ping(self) -> bool:
        try:
            state = self._call("supervisor.getState")
        except (OSError, xmlrpc.client.Error):
            return False
        return isinstance(state, dict) and state.get("statename") == "RUNNING"


def supervisor_program(root: Path, *, name: str = EDGE_SERVICE, start_retries: int = 3,
                       start_s: int = 2, autostart: bool = True, user: str = "") -> str:
    """The ``[program:...]`` section that runs the edge from ``ROOT/current``.

    ``startsecs``/``startretries`` are supervisord's own crash-loop limit; the
    installer also counts spawns itself (the same rule for systemd). ``user``: the
    service user the edge runs as (supervisord itself runs as root); empty: as
    supervisord."""
    run_as = f"user={user}\n" if user else ""
    return f"""[program:{name}]
command={root}/current/venv/bin/branchline edge run --config {root}/current/etc/site.yaml --ready-file {root}/data/edge.ready
{run_as}directory={root}/data
autostart={'true' if autostart else 'false'}
autorestart=true
startsecs={start_s}
startretries={start_retries}
stopsignal=TERM
stopwaitsecs=15
stopasgroup=true
stdout_logfile={root}/log/edge.out.log
stderr_logfile={root}/log/edge.err.log
stdout_logfile_maxbytes=10MB
stderr_logfile_maxbytes=10MB
"""


def supervisord_conf(run_dir: Path, programs: str, *, daemon: bool = False) -> str:
    """A complete supervisord.conf with its own socket, pid file and log under ``run_dir``.

    ``daemon``: supervisord forks into the background (a box's own supervisord started
    over SSH by provisioning); otherwise it stays in the foreground (``-n``, tests)."""
    return f"""[unix_http_server]
file={run_dir}/supervisor.sock
chmod=0700

[supervisord]
logfile={run_dir}/supervisord.log
pidfile={run_dir}/supervisord.pid
childlogdir={run_dir}
nodaemon={'false' if daemon else 'true'}

[rpcinterface:supervisor]
supervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface

[supervisorctl]
serverurl=unix://{run_dir}/supervisor.sock

{programs}"""


def systemd_unit(root: Path, *, user: str = "branchline", name: str = EDGE_SERVICE) -> str:
    """The systemd unit that runs the edge from ``ROOT/current`` as ``user``
    (``packaging/systemd/branchline-edge.service`` is this for /opt/branchline)."""
    return f"""[Unit]
Description=Branchline edge (SIP, media, IVR, ACD)
Documentation=file://{root}/current/files/README
After=network-online.target
Wants=network-online.target
StartLimitIntervalSec=60
StartLimitBurst=3

[Service]
Type=simple
User={user}
Group={user}
WorkingDirectory={root}/data
ExecStart={root}/current/venv/bin/branchline edge run --config {root}/current/etc/site.yaml --ready-file {root}/data/edge.ready
Restart=on-failure
RestartSec=1
KillSignal=SIGTERM
TimeoutStopSec=15
LimitNOFILE=65536
NoNewPrivileges=yes
ProtectSystem=strict
ReadWritePaths={root}/data {root}/log
ProtectHome=yes
PrivateTmp=yes

[Install]
WantedBy=multi-user.target
"""


def updater_program(root: Path, *, name: str = "branchline-updater") -> str:
    """The ``[program:...]`` for the updater (:mod:`images.updater`), as root: it runs the
    update agent when the edge asks for it."""
    return f"""[program:{name}]
command={root}/current/venv/bin/python -m images.updater --root {root}
directory={root}
autostart=true
autorestart=true
startsecs=1
stopsignal=TERM
stopwaitsecs=5
stdout_logfile={root}/log/updater.log
redirect_stderr=true
stdout_logfile_maxbytes=10MB
"""


def updater_units(root: Path) -> dict[str, str]:
    """The systemd path unit that starts the updater's oneshot when the edge writes its
    request, and that oneshot (as root, outside the edge's cgroup)."""
    return {
        "branchline-update.path": f"""[Unit]
Description=Branchline: an update request from the edge

[Path]
PathExists={root}/data/update-request.json
Unit=branchline-update.service

[Install]
WantedBy=multi-user.target
""",
        "branchline-update.service": f"""[Unit]
Description=Branchline update agent (download, A/B install, health check, report)

[Service]
Type=oneshot
ExecStart={root}/current/venv/bin/python -m images.updater --root {root} --once
TimeoutStartSec=2h
""",
    }


# -------------------------------------------------------------------- systemd

_SYSTEMD_STATES: dict[str, State] = {
    "active": "running", "activating": "starting", "inactive": "stopped", "failed": "fatal",
    "deactivating": "stopped",
}


class Systemd:
    """``systemctl`` for the units in ``packaging/systemd`` (``StartLimitBurst`` is the
    crash-loop limit there)."""

    def __init__(self, systemctl: str = "systemctl") -> None:
        self.systemctl = systemctl

    def _run(self, *args: str) -> str:
        out = subprocess.run([self.systemctl, *args], capture_output=True, text=True)
        if out.returncode != 0:
            raise ServiceError(f"systemctl {' '.join(args)}: {out.stderr.strip()}")
        return out.stdout

    def start(self, name: str) -> None:
        self._run("start", "--no-block", name)

    def stop(self, name: str) -> None:
        self._run("stop", name)

    def restart(self, name: str) -> None:
        self._run("reset-failed", name)
        self._run("restart", "--no-block", name)

    def status(self, name: str) -> ServiceStatus:
        props = dict(
            line.split("=", 1)
            for line in self._run("show", name, "-p", "ActiveState,MainPID,ExecMainStartTimestampMonotonic,"
                                  "ExecMainStatus,Result").splitlines()
            if "=" in line
        )
        started = int(props.get("ExecMainStartTimestampMonotonic") or 0) / 1e6
        return ServiceStatus(
            _SYSTEMD_STATES.get(props.get("ActiveState", ""), "unknown"),
            int(props.get("MainPID") or 0) or None, started or None,
            f"result {props.get('Result', '')}, exit status {props.get('ExecMainStatus', '')}",
        )
