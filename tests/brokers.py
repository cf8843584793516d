"""Real peers for the fleet tests: a private mosquitto and a throwaway PostgreSQL database.

* :class:`Mosquitto` — a mosquitto process of the test's own, on a free loopback port,
  with its own config file, so a test can stop it and start it again on the same port
  (a broker restart mid-stream). Stopped by its own pid, never by name. With
  ``password_file``/``acl_file`` it refuses anonymous clients, writes ``pid_file`` and
  ``reload()`` (SIGHUP to its own pid) makes it re-read both files.
* :func:`postgres_url` — a fresh database on the machine's PostgreSQL server (trust
  auth on 127.0.0.1:5432, or ``$BRANCHLINE_PG_DSN`` pointing elsewhere), dropped when the
  context ends; None when no server answers (the PostgreSQL variants are then skipped).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

from tests.sipp import free_tcp_port, wait_for


def mosquitto_binary() -> str | None:
    return shutil.which("mosquitto") or (
        "/usr/sbin/mosquitto" if os.path.exists("/usr/sbin/mosquitto") else None
    )


def _accepting(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket() as s:
        s.settimeout(0.2)
        return s.connect_ex((host, port)) == 0


class Mosquitto:
    """``start()`` / ``stop()`` / ``restart()`` a private broker on ``self.port``."""

    def __init__(self, workdir: Path, port: int | None = None, *, persistence: bool = True,
                 password_file: Path | None = None, acl_file: Path | None = None, host: str = "127.0.0.1") -> None:
        """``host``: the address it listens on (loopback, or an address of a network
        namespace the test made)."""
        binary = mosquitto_binary()
        if binary is None:
            raise RuntimeError("mosquitto is not installed (Debian package mosquitto)")
        self.binary = binary
        self.port = port or free_tcp_port()
        self.host = host
        self.workdir = workdir
        workdir.mkdir(parents=True, exist_ok=True)
        self.conf = workdir / "mosquitto.conf"
        lines = [
            f"listener {self.port} {host}",
            "allow_anonymous true",
            f"persistence {'true' if persistence else 'false'}",
            f"persistence_location {workdir}/",
            "autosave_interval 1",
            f"log_dest file {workdir}/mosquitto.log",
            "log_type error",
            "log_type warning",
            "log_type notice",
            "max_queued_messages 100000",
        ]
        self.pid_file: Path | None = None
        if password_file is not None or acl_file is not None:
            self.pid_file = workdir / "mosquitto.pid"
            lines = ["allow_anonymous false" if line == "allow_anonymous true" else line for line in lines]
            lines += [f"pid_file {self.pid_file}"]
            lines += [f"password_file {password_file}"] if password_file is not None else []
            lines += [f"acl_file {acl_file}"] if acl_file is not None else []
        if os.geteuid() == 0:
            # started as root, mosquitto drops to its own user before touching its files: it
            # could neither read a root-owned 0600/0640 auth file (again on every SIGHUP) nor
            # write its persistence file under a 0700 pytest directory -- sessions would not
            # survive a restart
            lines += ["user root"]
        self.conf.write_text("\n".join(lines) + "\n")
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"mqtt://{self.host}:{self.port}"

    def start(self, timeout_s: float = 10.0) -> None:
        assert self.proc is None, "already running"
        self.proc = subprocess.Popen(
            [self.binary, "-c", str(self.conf)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_for(lambda: _accepting(self.port, self.host), timeout_s, what=f"mosquitto on {self.host}:{self.port}")

    def stop(self, timeout_s: float = 10.0) -> None:
        """SIGTERM (mosquitto saves its persistence file), then wait for the exit."""
        proc, self.proc = self.proc, None
        if proc is None:
            return
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()

    def reload(self) -> None:
        """SIGHUP: mosquitto re-reads its password and ACL files."""
        assert self.proc is not None, "not running"
        self.proc.send_signal(signal.SIGHUP)

    def restart(self) -> None:
        self.stop()
        self.start()

    def log(self) -> str:
        path = self.workdir / "mosquitto.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def __enter__(self) -> Mosquitto:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _pg_server_dsn() -> str:
    return os.environ.get("BRANCHLINE_PG_DSN", "postgresql://postgres@127.0.0.1:5432/postgres")


@contextlib.contextmanager
def postgres_url(prefix: str = "bl_test") -> Iterator[str | None]:
    """Yield ``postgresql+asyncpg://…/<fresh db>``, or None if no server answers."""
    dsn = _pg_server_dsn()
    host_port = dsn.split("@", 1)[1].split("/", 1)[0]
    host, _, port = host_port.partition(":")
    try:
        with socket.create_connection((host, int(port or 5432)), timeout=1):
            pass
    except OSError:
        yield None
        return
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    psql = shutil.which("psql")
    if psql is None:
        yield None
        return
    base = dsn.rsplit("/", 1)[0]
    subprocess.run([psql, dsn, "-qc", f'CREATE DATABASE "{name}"'], check=True, capture_output=True)
    try:
        yield base.replace("postgresql://", "postgresql+asyncpg://", 1) + "/" + name
    finally:
        for _ in range(50):  # connections of a just-stopped worker may linger a moment
            done = subprocess.run(
                [psql, dsn, "-qc", f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'],
                capture_output=True,
            )
            if done.returncode == 0:
                break
            time.sleep(0.1)
