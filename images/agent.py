"""The update agent: download a bundle from the fleet (resumable), install it, report.

It runs as ``python -m images.agent`` with the interpreter of the running slot, apart
from the edge (the installer restarts the edge; the agent must outlive that): on a
provisioned box the edge's ``update`` command writes a request that the box's updater
service (:mod:`images.updater`, root) turns into an agent run; an edge that runs as root
(``launch: spawn``) starts it detached, in its own session. The agent:

1. downloads ``args.url`` into ``ROOT/incoming/`` with ``Range`` resume (a ``.part``
   file that survives a cut connection or a restart of the agent), then checks the
   whole file's size and SHA-256 against the command;
2. runs :class:`images.install.Installer` (verify signature and hashes with the box's
   bundle key, install into the inactive slot, switch, health check, commit or roll back);
3. keeps the outcome, a :class:`~edge_core.telemetry.protocol.CommandResult` under
   ``args.report_id``, in ``ROOT/data/update-last.json`` marked ``"sent": false``, then
   publishes it on ``cmd/result`` (MQTT with the site's telemetry settings, QoS 1) and
   marks it ``"sent": true`` once the broker acknowledged it (PUBACK).

A result that could not be sent (broker down, WAN cut for longer than ``give_up_s``)
is not lost: the edge's telemetry client publishes it when it next connects
(:func:`pending_result`, :func:`mark_sent`) and marks it sent in turn. A crash between
the PUBACK and the mark sends it twice; the fleet stores command results by
``(site, id)`` (an upsert) and a campaign takes one result per site, so a second copy
changes nothing.

One agent at a time: it holds ``ROOT/data/update.lock`` (``flock``) while it runs.

The box's settings live in ``ROOT/etc/updater.yaml`` (written by provisioning)::

    service: supervisor            # or systemd
    supervisor_socket: /run/branchline/supervisor.sock
    launch: service                # the edge asks images.updater (or: spawn, edge as root)
    bundle_public_key_file: etc/bundle.pub   # relative to ROOT
    python: /usr/bin/python3       # has pip >= 22.3 (pip --python); makes the slot venvs
    health: {window_s: 60, crash_loop_starts: 3, crash_loop_window_s: 60}
    quiet_max_wait_s: 300
    host_site_packages: ""         # development and tests only (see Installer)
"""

from __future__ import annotations

import argparse
import fcntl
import json
import logging
import os
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from images.bundle import sha256_file
from images.health import HealthPolicy
from images.install import InstallResult, QuietPolicy
from images.slots import BoxLayout

log = logging.getLogger("images.agent")

UPDATER_CONFIG = "etc/updater.yaml"
LOCK = "data/update.lock"
LAST_RESULT = "data/update-last.json"
_CHUNK = 1 << 16


class DownloadError(RuntimeError):
    pass


def download(url: str, dest: Path, *, sha256: str, size: int, attempts: int = 5,
             timeout_s: float = 30.0, on_progress: Callable[[int], None] | None = None) -> Path:
    """``url`` -> ``dest``, resuming ``dest.part`` with ``Range``; size and SHA-256 checked.

    A server that ignores ``Range`` (200 instead of 206) restarts the file from zero.
    Raises DownloadError after ``attempts`` failed connections or on a hash mismatch."""
    if dest.exists() and dest.stat().st_size == size and sha256_file(dest) == sha256:
        return dest
    part = dest.with_name(dest.name + ".part")
    dest.parent.mkdir(parents=True, exist_ok=True)
    last_error = ""
    for attempt in range(attempts):
        have = part.stat().st_size if part.exists() else 0
        if have > size:
            part.unlink()
            have = 0
        if have < size:
            request = urllib.request.Request(url, headers={"Range": f"bytes={have}-"} if have else {})
            try:
                with urllib.request.urlopen(request, timeout=timeout_s) as resp:
                    mode = "ab" if resp.status == 206 and have else "wb"
                    with open(part, mode) as out:
                        while chunk := resp.read(_CHUNK):
                            out.write(chunk)
                            if on_progress is not None:
                                on_progress(out.tell())
            except (OSError, urllib.error.URLError) as exc:
                last_error = f"{url}: {exc}"
                log.info("download attempt %d: %s", attempt + 1, last_error)
                time.sleep(min(2.0 ** attempt, 10.0))  # backoff between attempts
                continue
        got = part.stat().st_size
        if got != size:
            last_error = f"{url}: {got} bytes, expected {size}"
            continue
        digest = sha256_file(part)
        if digest != sha256:
            part.unlink()
            raise DownloadError(f"{url}: sha256 {digest} != {sha256}")
        os.replace(part, dest)
        return dest
    raise DownloadError(last_error or f"{url}: gave up after {attempts} attempts")


@dataclass(frozen=True)
class UpdaterSettings:
    service: str = "systemd"
    supervisor_socket: str = ""
    launch: str = "spawn"
    """How the edge has the agent run: ``service`` -- it writes a request for the box's
    updater service (:mod:`images.updater`; what provisioning sets up); ``spawn`` -- it
    starts the agent itself (an edge running as root; development and tests)."""
    bundle_public_key_file: str = "etc/bundle.pub"
    python: str = "/usr/bin/python3"
    health: dict[str, Any] | None = None
    quiet_max_wait_s: float = 300.0
    host_site_packages: str = ""

    @classmethod
    def load(cls, root: Path) -> UpdaterSettings:
        path = root / UPDATER_CONFIG
        raw = yaml.safe_load(path.read_text()) if path.exists() else {}
        known = {k: v for k, v in (raw or {}).items() if k in cls.__dataclass_fields__}
        return cls(**known)


def make_installer(root: Path, settings: UpdaterSettings) -> Any:
    from images.install import Installer
    from images.service import Supervisor, Systemd
    from images.signing import load_public_key_file

    service = Supervisor(Path(settings.supervisor_socket)) if settings.service == "supervisor" else Systemd()
    return Installer(
        BoxLayout(root), service, load_public_key_file(root / settings.bundle_public_key_file),
        policy=HealthPolicy(**(settings.health or {})), quiet=QuietPolicy(max_wait_s=settings.quiet_max_wait_s),
        python=settings.python,
        host_site_packages=Path(settings.host_site_packages) if settings.host_site_packages else None,
    )


@contextmanager
def agent_lock(root: Path) -> Iterator[None]:
    """Held while an agent runs; BlockingIOError if another one holds it. The file is
    opened read-only (``flock`` needs no more), so the edge, running as the service
    user, can take it too when an agent running as root created it."""
    path = root / LOCK
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDONLY | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        yield
    finally:
        os.close(fd)


def update_running(root: Path) -> bool:
    """Whether an agent holds the lock now."""
    try:
        with agent_lock(root):
            return False
    except BlockingIOError:
        return True


def telemetry_target(root: Path) -> tuple[str, dict[str, Any]]:
    """(site id, telemetry settings) from the box's site config."""
    raw = yaml.safe_load((root / "etc" / "site.yaml").read_text()) or {}
    telemetry = raw.get("telemetry") or {}
    site = telemetry.get("site_id") or (raw.get("site") or {}).get("id") or ""
    return str(site), dict(telemetry)


def publish_result(root: Path, payload: bytes, *, give_up_s: float = 300.0) -> bool:
    """Publish on the site's ``cmd/result`` (QoS 1, PUBACK awaited), retrying with
    backoff until ``give_up_s``; False if it never got through."""
    import paho.mqtt.client as paho
    from paho.mqtt.enums import CallbackAPIVersion

    from edge_core.config.schema import broker_address
    from edge_core.telemetry import protocol

    site, telemetry = telemetry_target(root)
    if not telemetry.get("enabled") or not site:
        log.warning("telemetry is off: the result stays in %s", root / LAST_RESULT)
        return False
    host, port = broker_address(str(telemetry.get("broker_url", "mqtt://127.0.0.1:1883")))
    deadline = time.monotonic() + give_up_s
    delay = 0.5
    while True:
        client = paho.Client(CallbackAPIVersion.VERSION2, client_id=f"update-{site}-{os.getpid()}",
                             protocol=paho.MQTTv311)
        if telemetry.get("username"):
            client.username_pw_set(telemetry["username"], telemetry.get("password"))
        try:
            client.connect(host, port, keepalive=30)
            client.loop_start()
            info = client.publish(protocol.topic(site, "cmd/result"), payload, qos=1)
            info.wait_for_publish(timeout=10)
            if info.is_published():
                client.disconnect()
                return True
        except (OSError, RuntimeError, ValueError) as exc:
            log.info("publishing the result: %s", exc)
        finally:
            client.loop_stop()
        if time.monotonic() > deadline:
            return False
        time.sleep(delay)  # backoff before the next connection attempt
        delay = min(delay * 2, 15.0)


def write_result(root: Path, record: dict[str, Any]) -> None:
    """``record`` into ``ROOT/data/update-last.json`` atomically (a temporary file in the
    same folder, then a rename): a reader never sees half a file."""
    path = root / LAST_RESULT
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(record, indent=1))
    os.replace(tmp, path)


def read_result(root: Path) -> dict[str, Any] | None:
    """The last result as written (None: no file, or not a result)."""
    try:
        record = json.loads((root / LAST_RESULT).read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        log.warning("%s: unreadable: %s", root / LAST_RESULT, exc)
        return None
    if not isinstance(record, dict) or not isinstance(record.get("id"), str) or not record["id"]:
        log.warning("%s: not an update result", root / LAST_RESULT)
        return None
    return record


def result_payload(record: dict[str, Any]) -> bytes:
    """The ``cmd/result`` payload of a result record (its bookkeeping left out)."""
    from edge_core.telemetry import protocol

    return protocol.CommandResult(id=record["id"], ok=bool(record.get("ok")), result=record.get("result"),
                                  error=str(record.get("error") or "")).to_bytes()


def pending_result(root: Path) -> dict[str, Any] | None:
    """The last result if it was never sent, else None. A record without ``sent`` (written
    by an agent older than this flag) counts as unsent: a copy too many is harmless, a
    lost result is not. Raises BlockingIOError while an agent runs (it sends its own)."""
    with agent_lock(root):
        record = read_result(root)
    return record if record is not None and not record.get("sent") else None


def mark_sent(root: Path, record: dict[str, Any], *, locked: bool = False) -> bool:
    """Mark ``record`` sent, if it is still the last result (same id and time); False if
    the file changed meanwhile or an agent holds the lock (then it is sent again later,
    which the fleet ignores). ``locked``: the caller holds the agent lock already."""
    def mark() -> bool:
        current = read_result(root)
        if current is None or (current.get("id"), current.get("at")) != (record.get("id"), record.get("at")):
            return False
        write_result(root, {**current, "sent": True, "sent_at": time.time()})
        return True

    if locked:
        return mark()
    try:
        with agent_lock(root):
            return mark()
    except BlockingIOError:
        return False


def report_result(root: Path, answer: Any, *, give_up_s: float = 300.0) -> bool:
    """Keep ``answer`` (a CommandResult) as the last result, unsent; publish it; mark it
    sent once the broker acknowledged it. The caller holds the agent lock. False: not
    sent (yet) -- the edge sends it when its telemetry next connects."""
    record = {"at": time.time(), **answer.model_dump(), "sent": False, "sent_at": None}
    write_result(root, record)
    if not publish_result(root, answer.to_bytes(), give_up_s=give_up_s):
        log.warning("result %s not sent: it stays in %s for the edge to send", answer.id, root / LAST_RESULT)
        return False
    return mark_sent(root, record, locked=True)


def run_update(root: Path, args: dict[str, Any], *, installer: Any = None) -> tuple[bool, dict[str, Any], str]:
    """Download and install; (ok, UpdateResult as a dict, error) -- never raises for
    a failed download or install."""
    from edge_core.telemetry import protocol

    spec = protocol.UpdateArgs.model_validate(args)
    result: InstallResult | None = None
    t0 = time.monotonic()
    try:
        bundle = download(spec.url, root / "incoming" / f"{spec.sha256}.bundle", sha256=spec.sha256, size=spec.size)
    except DownloadError as exc:
        body = protocol.UpdateResult(stage="done", version=spec.version, outcome="failed", check="download",
                                     reason=str(exc))
        return False, body.model_dump(), str(exc)
    download_s = time.monotonic() - t0
    installer = installer or make_installer(root, UpdaterSettings.load(root))
    result = installer.install(bundle)
    assert result is not None
    body = protocol.UpdateResult(stage="done", version=result.version or spec.version, outcome=result.outcome,
                                 check=result.check, reason=result.reason,
                                 timings={"download_s": download_s, **result.timings})
    ok = result.outcome == "committed"
    return ok, body.model_dump(), "" if ok else f"{result.outcome}: {result.reason}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m images.agent")
    parser.add_argument("--root", required=True)
    parser.add_argument("--args", required=True, help="the update command's args (JSON)")
    opts = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    from edge_core.telemetry import protocol

    root = Path(opts.root)
    args = json.loads(opts.args)
    try:
        with agent_lock(root):
            ok, body, error = run_update(root, args)
            answer = protocol.CommandResult(id=args["report_id"], ok=ok, result=body, error=error)
            log.info("update %s: %s", body.get("version"), body.get("outcome"))
            report_result(root, answer)
    except BlockingIOError:
        log.error("another update agent is running")
        return 2
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
