"""Looking after provisioned boxes over SSH (Fabric): ``provision status``,
``provision collect-logs`` and ``provision rotate-credentials``.

* **status** -- per box: its site, the release in each slot and which one runs, the
  service manager's view of the edge, the application's own health check, and the
  last install event with its reason (so a rollback's cause is one command away).
* **collect-logs** -- a support bundle (``.tar.gz``) written here: system facts, slot
  state, health, service status, the box's settings and its logs. Secrets are
  redacted before anything is written: every value under a key that names a secret
  (password, secret, token, private key, psk) in YAML/JSON, and ``key=value`` /
  ``"key": "value"`` pairs of those names in log lines. The identity key directory is
  never read.
* **rotate-credentials** -- the fleet issues the site a new MQTT password
  (``POST /api/v1/devices/{site}/credentials``, an admin token); the box's site
  config gets it and the edge restarts on it through ``branchline image
  apply-config`` (health-checked). The old password stops working at the broker when
  the fleet reloads its authentication, so the box is offline for the few seconds in
  between; its outbox keeps every record meanwhile.
"""

from __future__ import annotations

import io
import json
import re
import shlex
import tarfile
import time
from dataclasses import dataclass, field
from io import BytesIO
from pathlib import Path
from typing import Any

import yaml
from fabric import Connection

from images.service import EDGE_SERVICE
from provisioning.remote import Remote, as_root
from provisioning.tasks import StepResult, _exists, _read, _run, fleet_request, remote_json

SECRET_KEY = re.compile(r"pass(word)?|secret|token|private|psk|credential", re.IGNORECASE)
SECRET_PAIR = re.compile(
    r"""(?P<key>["']?[\w.-]*(?:password|passwd|secret|token|psk)[\w.-]*["']?\s*[:=]\s*["']?)(?P<value>[^\s"',}&]+)""",
    re.IGNORECASE)
REDACTED = "***redacted***"
LOG_TAIL_BYTES = 2 << 20


def redact(value: Any) -> Any:
    """A copy of a parsed YAML/JSON document with every secret-named value replaced."""
    if isinstance(value, dict):
        return {k: REDACTED if isinstance(k, str) and SECRET_KEY.search(k) and v not in (None, "")
                else redact(v) for k, v in value.items()}
    if isinstance(value, list):
        return [redact(v) for v in value]
    return value


def redact_text(text: str) -> str:
    """Secret ``key=value`` / ``"key": "value"`` pairs in free text (log lines)."""
    return SECRET_PAIR.sub(lambda m: m.group("key") + REDACTED, text)


def _host(c: Remote) -> str:
    return c.host if c.port == 22 else f"{c.host}:{c.port}"


def _service_line(c: Remote, root: str) -> str:
    settings = yaml.safe_load(_read(c, f"{root}/etc/updater.yaml") or b"") or {}
    if settings.get("service") == "supervisor":
        cmd = f"supervisorctl -c {shlex.quote(root)}/etc/supervisord.conf status {EDGE_SERVICE}"
    else:
        cmd = f"systemctl status --no-pager --lines=0 {EDGE_SERVICE}"
    return str(c.run(cmd, hide=True, warn=True, in_stream=False).stdout).strip() or "unknown"


def _health(c: Remote, root: str) -> dict[str, Any]:
    exe = f"{root}/current/venv/bin/branchline"
    if not _exists(c, exe):
        return {"ok": False, "checks": [{"name": "slot", "ok": False, "detail": "nothing installed"}]}
    try:
        return remote_json(c, f"{shlex.quote(exe)} image health --root {shlex.quote(root)}", "the health check")
    except RuntimeError as exc:
        return {"ok": False, "checks": [{"name": "health", "ok": False, "detail": str(exc)}]}


@dataclass
class BoxStatus:
    host: str
    ok: bool = True
    error: str = ""
    site: str = ""
    current: str | None = None
    slots: dict[str, dict[str, Any]] = field(default_factory=dict)
    service: str = ""
    health: dict[str, Any] = field(default_factory=dict)
    last_event: dict[str, Any] = field(default_factory=dict)

    def lines(self) -> list[str]:
        if not self.ok:
            return [f"{self.host}: FAILED {self.error}"]
        slot = self.slots.get(self.current or "", {})
        release = f"{slot.get('version') or '-'} in slot {self.current} ({slot.get('status')})" if self.current \
            else "nothing installed"
        failing = "; ".join(f"{k['name']}: {k['detail']}" for k in self.health.get("checks", []) if not k["ok"])
        out = [f"{self.host}: site {self.site or '(not enrolled)'}, {release}, "
               f"health {'ok' if self.health.get('ok') else 'FAILING ' + failing}",
               f"  service: {self.service}"]
        for name, rec in sorted(self.slots.items()):
            if rec.get("status") == "failed":
                out.append(f"  slot {name} failed {rec.get('version')}: {rec.get('reason')}")
        if self.last_event:
            e = self.last_event
            out.append(f"  last: {e.get('event')} {e.get('version')} slot {e.get('slot')} at "
                       f"{time.strftime('%Y-%m-%d %H:%M:%S %Z', time.localtime(e.get('at', 0)))}"
                       + (f": {e.get('reason')}" if e.get("reason") else ""))
        return out


def box_status(connection: Connection, root: str) -> BoxStatus:
    c = as_root(connection)
    report = BoxStatus(_host(c))
    try:
        enrollment = json.loads(_read(c, f"{root}/etc/enrollment.json") or b"{}")
        state = json.loads(_read(c, f"{root}/state.json") or b"{}")
        report.site = str(enrollment.get("site_id") or "")
        current = _run(c, f"readlink {shlex.quote(root)}/current || true").strip()
        report.current = current.rsplit("/", 1)[-1] or None
        report.slots = dict(state.get("slots") or {})
        report.last_event = (state.get("history") or [{}])[-1]
        report.service = _service_line(c, root)
        report.health = _health(c, root)
    except Exception as exc:  # one box's failure is reported, the others go on
        report.ok, report.error = False, f"{type(exc).__name__}: {exc}"
    finally:
        c.close()
    return report


def _add(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size, info.mtime, info.mode = len(data), int(time.time()), 0o600
    tar.addfile(info, io.BytesIO(data))


def _redacted_file(raw: bytes, name: str) -> bytes:
    try:
        doc = json.loads(raw) if name.endswith(".json") else yaml.safe_load(raw)
    except (ValueError, yaml.YAMLError):
        return redact_text(raw.decode(errors="replace")).encode()
    if name.endswith(".json"):
        return json.dumps(redact(doc), indent=1, sort_keys=True).encode()
    return yaml.safe_dump(redact(doc), sort_keys=False).encode()


def collect_logs(connection: Connection, root: str, out_dir: Path) -> Path:
    """A support bundle of this box in ``out_dir``; returns its path."""
    c = as_root(connection)
    host = _host(c)
    stamp = time.strftime("%Y%m%dT%H%M%S")
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"support-{host.replace(':', '-')}-{stamp}.tar.gz"
    prefix = f"support-{host.replace(':', '-')}-{stamp}"
    try:
        with tarfile.open(path, "w:gz") as tar:
            facts = []
            for cmd in ("date -Is", "uname -a", "uptime", f"df -h {shlex.quote(root)}", "free -m",
                        f"ls -la {shlex.quote(root)} {shlex.quote(root)}/slots/a {shlex.quote(root)}/slots/b"):
                out = c.run(cmd, hide=True, warn=True, in_stream=False)
                facts.append(f"$ {cmd}\n{out.stdout}{out.stderr}")
            _add(tar, f"{prefix}/system.txt", "\n".join(facts).encode())
            _add(tar, f"{prefix}/service.txt", _service_line(c, root).encode() + b"\n")
            _add(tar, f"{prefix}/health.json", json.dumps(_health(c, root), indent=1).encode())
            for name in ("state.json", "etc/site.yaml", "etc/updater.yaml", "etc/enrollment.json",
                         "current/release.json", "data/update-last.json"):
                raw = _read(c, f"{root}/{name}")
                if raw is not None:
                    _add(tar, f"{prefix}/{name}", _redacted_file(raw, name))
            logs = _run(c, f"find {shlex.quote(root)}/log -maxdepth 1 -type f -printf '%f\\n' 2>/dev/null || true")
            for name in sorted(logs.split()):
                tail = _run(c, f"tail -c {LOG_TAIL_BYTES} {shlex.quote(root)}/log/{shlex.quote(name)}")
                _add(tar, f"{prefix}/log/{name}", redact_text(tail).encode())
    finally:
        c.close()
    return path


def rotate_credentials(connection: Connection, root: str, fleet_url: str, admin_token: str) -> list[StepResult]:
    """New MQTT credentials for the box's site from the fleet, into its site config,
    applied (restart, health check)."""
    c = as_root(connection)
    try:
        enrollment = json.loads(_read(c, f"{root}/etc/enrollment.json") or b"{}")
        site = enrollment.get("site_id")
        if not site:
            raise RuntimeError(f"not enrolled ({root}/etc/enrollment.json missing): bootstrap it first")
        answer = fleet_request(fleet_url, f"/api/v1/devices/{site}/credentials", {}, what="credential rotation",
                               bearer=admin_token)
        config_path = f"{root}/etc/site.yaml"
        config = yaml.safe_load(_read(c, config_path) or b"") or {}
        telemetry = dict(config.get("telemetry") or {})
        telemetry.update(username=answer["mqtt_username"], password=answer["mqtt_password"])
        config["telemetry"] = telemetry
        owner = _run(c, f"stat -c %U {shlex.quote(config_path)}").strip()
        tmp = f"{config_path}.new"
        c.put(BytesIO(yaml.safe_dump(config, sort_keys=True).encode()), tmp)
        _run(c, f"chmod 600 {shlex.quote(tmp)} && chown {shlex.quote(owner)}: {shlex.quote(tmp)} && "
                f"mv {shlex.quote(tmp)} {shlex.quote(config_path)}")
        steps = [StepResult("credentials", True, f"new MQTT password for {answer['mqtt_username']} written")]
        result = remote_json(c, f"{shlex.quote(root)}/current/venv/bin/branchline image apply-config --root "
                                f"{shlex.quote(root)}", "apply-config")
        if not result.get("ok"):
            raise RuntimeError(f"the edge is not healthy on the new credentials: {result.get('detail')}")
        steps.append(StepResult("apply-config", True, str(result.get("detail"))))
        return steps
    finally:
        c.close()
