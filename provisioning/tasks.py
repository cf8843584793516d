"""Bootstrap a box over SSH (Fabric): checks, layout, bundle upload, identity key,
enrollment, updater settings, site config.

Every step is idempotent: it looks first and only then changes, and says which. The
device's identity key is generated *on the box* (``openssl genpkey -algorithm ed25519``)
and only its public half is read back.

Enrollment: the public key and the site's one-time token (issued by an admin with
``POST /api/v1/enroll-tokens``) go to the fleet's ``POST /api/v1/enroll`` from where
this runs; the answer (site id, broker URL, the fleet's config-signing key, MQTT
credentials) becomes the ``telemetry:`` section of the box's site config (mode 0600: it
holds the MQTT password), and ``ROOT/etc/enrollment.json`` records which identity key
was enrolled. A box whose record matches its key is not enrolled again (a token works
once): its existing ``telemetry:`` section is kept as it is.
"""

from __future__ import annotations

import hashlib
import json
import shlex
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from io import BytesIO
from pathlib import Path
from typing import Any

import yaml
from fabric import Connection

SUPPORTED_ARCH = ("x86_64", "aarch64")
SUPPORTED_OS = ("debian",)


@dataclass
class StepResult:
    name: str
    changed: bool
    detail: str = ""


@dataclass
class HostReport:
    host: str
    ok: bool = True
    steps: list[StepResult] = field(default_factory=list)
    error: str = ""
    public_key: str = ""

    @property
    def changed(self) -> bool:
        return any(s.changed for s in self.steps)

    def lines(self) -> list[str]:
        out = [f"{self.host}: {'FAILED ' + self.error if not self.ok else 'changed' if self.changed else 'no changes'}"]
        out += [f"  {'*' if s.changed else '-'} {s.name}: {s.detail}" for s in self.steps]
        return out


@dataclass
class BootstrapOptions:
    site: str
    fleet_url: str
    bundle: Path
    root: str = "/opt/branchline"
    site_config: dict[str, Any] = field(default_factory=dict)
    enroll_token: str = ""
    """The site's one-time enrollment token; empty: skip enrollment (no telemetry)."""
    bundle_public_key: bytes = b""
    """PEM of the key bundles are signed with: written to ``ROOT/etc/bundle.pub``."""
    updater: dict[str, Any] = field(default_factory=dict)
    """``ROOT/etc/updater.yaml`` (see images.agent); written when given."""


def _run(c: Connection, cmd: str) -> str:
    return str(c.run(cmd, hide=True, in_stream=False).stdout)


def _exists(c: Connection, path: str) -> bool:
    return bool(c.run(f"test -e {shlex.quote(path)}", hide=True, warn=True, in_stream=False).ok)


def check_platform(c: Connection) -> StepResult:
    arch = _run(c, "uname -m").strip()
    os_id = _run(c, ". /etc/os-release && echo $ID").strip()
    if arch not in SUPPORTED_ARCH or os_id not in SUPPORTED_OS:
        raise RuntimeError(f"unsupported box: {os_id} on {arch}")
    return StepResult("platform", False, f"{os_id} {arch}")


def make_layout(c: Connection, root: str) -> StepResult:
    dirs = [f"{root}/{d}" for d in ("slots/a", "slots/b", "etc", "data", "log", "identity", "incoming")]
    missing = [d for d in dirs if not _exists(c, d)]
    if missing:
        _run(c, "mkdir -p " + " ".join(shlex.quote(d) for d in missing) + f" && chmod 700 {shlex.quote(root)}/identity")
    return StepResult("layout", bool(missing), f"created {len(missing)} directories" if missing else "present")


def upload_bundle(c: Connection, bundle: Path, root: str) -> StepResult:
    digest = hashlib.sha256(bundle.read_bytes()).hexdigest()
    remote = f"{root}/incoming/{bundle.name}"
    if _exists(c, remote) and _run(c, f"sha256sum {shlex.quote(remote)}").split()[0] == digest:
        return StepResult("bundle", False, f"{bundle.name} already there (sha256 {digest[:12]})")
    c.put(str(bundle), remote)
    got = _run(c, f"sha256sum {shlex.quote(remote)}").split()[0]
    if got != digest:
        raise RuntimeError(f"upload of {bundle.name} corrupted: {got} != {digest}")
    return StepResult("bundle", True, f"uploaded {bundle.name} (sha256 {digest[:12]})")


def identity_key(c: Connection, root: str) -> tuple[StepResult, str]:
    key = f"{root}/identity/device.key"
    changed = False
    if not _exists(c, key):
        _run(c, f"umask 077 && openssl genpkey -algorithm ed25519 -out {shlex.quote(key)}")
        changed = True
    public = _run(c, f"openssl pkey -in {shlex.quote(key)} -pubout")
    return StepResult("identity", changed, "generated on the box" if changed else "present"), public


def _read(c: Connection, path: str) -> bytes | None:
    if not _exists(c, path):
        return None
    buf = BytesIO()
    c.get(path, buf)
    return buf.getvalue()


def _write_if_changed(c: Connection, path: str, body: bytes, name: str, mode: str = "644") -> StepResult:
    if _read(c, path) == body:
        return StepResult(name, False, "up to date")
    c.put(BytesIO(body), path)
    _run(c, f"chmod {mode} {shlex.quote(path)}")
    return StepResult(name, True, f"wrote {path}")


def post_enroll(fleet_url: str, token: str, public_key: str, timeout_s: float = 30.0) -> dict[str, Any]:
    """``POST {fleet}/api/v1/enroll``; RuntimeError with the fleet's answer on refusal."""
    request = urllib.request.Request(
        f"{fleet_url.rstrip('/')}/api/v1/enroll", method="POST",
        data=json.dumps({"token": token, "public_key": public_key}).encode(),
        headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as resp:
            return dict(json.loads(resp.read()))
    except urllib.error.HTTPError as exc:
        raise RuntimeError(f"enrollment refused by {fleet_url}: {exc.code} {exc.read().decode(errors='replace')}") \
            from None
    except (OSError, urllib.error.URLError) as exc:
        raise RuntimeError(f"enrollment: cannot reach {fleet_url}: {exc}") from None


def enroll(c: Connection, opts: BootstrapOptions,
           public_key: str) -> tuple[StepResult, dict[str, Any] | None, dict[str, Any] | None]:
    """Enroll the box's key with the fleet, once; returns the ``telemetry:`` section to
    write (the box's existing one when it is enrolled already) and the enrollment record
    to write once the site config holds that section (None: nothing new)."""
    record_path = f"{opts.root}/etc/enrollment.json"
    key_sha = hashlib.sha256(public_key.strip().encode()).hexdigest()
    raw = _read(c, record_path)
    record = json.loads(raw) if raw else {}
    if record.get("key_sha256") == key_sha and record.get("site_id") == opts.site:
        existing = yaml.safe_load(_read(c, f"{opts.root}/etc/site.yaml") or b"") or {}
        return (StepResult("enroll", False, f"enrolled as {opts.site} already"),
                existing.get("telemetry"), None)
    if not opts.enroll_token:
        return StepResult("enroll", False, "skipped (no enrollment token)"), None, None
    answer = post_enroll(opts.fleet_url, opts.enroll_token, public_key)
    if answer.get("site_id") != opts.site:
        raise RuntimeError(f"the token is for site {answer.get('site_id')!r}, this box is {opts.site!r}")
    record = {"site_id": answer["site_id"], "fleet": opts.fleet_url, "broker_url": answer["broker_url"],
              "fleet_public_key": answer["fleet_public_key"], "key_sha256": key_sha, "enrolled_at": time.time()}
    return (StepResult("enroll", True, f"enrolled with {opts.fleet_url} as {answer['site_id']}"),
            dict(answer["telemetry"]), record)


def write_enrollment_record(c: Connection, opts: BootstrapOptions, record: dict[str, Any]) -> None:
    """Written last: a bootstrap cut before the site config holds the telemetry section
    enrolls again on the next run (with a new token) rather than leaving a mute box."""
    c.put(BytesIO(json.dumps(record, indent=1, sort_keys=True).encode()), f"{opts.root}/etc/enrollment.json")


def updater_config(c: Connection, opts: BootstrapOptions) -> list[StepResult]:
    """``etc/bundle.pub`` and ``etc/updater.yaml`` for the update agent, when given."""
    steps = []
    if opts.bundle_public_key:
        steps.append(_write_if_changed(c, f"{opts.root}/etc/bundle.pub", opts.bundle_public_key, "bundle-key"))
    if opts.updater:
        body = yaml.safe_dump(opts.updater, sort_keys=True).encode()
        steps.append(_write_if_changed(c, f"{opts.root}/etc/updater.yaml", body, "updater"))
    return steps


def site_config(c: Connection, opts: BootstrapOptions, telemetry: dict[str, Any] | None = None) -> StepResult:
    doc: dict[str, Any] = {"site": {"id": opts.site, "name": opts.site, "timezone": "UTC"}, **opts.site_config}
    if telemetry:
        doc["telemetry"] = telemetry
    body = yaml.safe_dump(doc, sort_keys=True).encode()
    return _write_if_changed(c, f"{opts.root}/etc/site.yaml", body, "site-config", "600" if telemetry else "644")


def bootstrap(c: Connection, opts: BootstrapOptions) -> HostReport:
    report = HostReport(c.host if c.port == 22 else f"{c.host}:{c.port}")
    try:
        report.steps.append(check_platform(c))
        report.steps.append(make_layout(c, opts.root))
        report.steps.append(upload_bundle(c, opts.bundle, opts.root))
        step, report.public_key = identity_key(c, opts.root)
        report.steps.append(step)
        step, telemetry, record = enroll(c, opts, report.public_key)
        report.steps.append(step)
        report.steps += updater_config(c, opts)
        report.steps.append(site_config(c, opts, telemetry))
        if record is not None:
            write_enrollment_record(c, opts, record)
    except Exception as exc:  # one host's failure is reported, the others go on
        report.ok, report.error = False, f"{type(exc).__name__}: {exc}"
    finally:
        c.close()
    return report


def bootstrap_many(connect: Callable[[str], Connection], hosts: list[str],
                   opts_for: Callable[[str], BootstrapOptions], parallel: int = 8) -> list[HostReport]:
    """Bootstrap every host in parallel; reports in the order of ``hosts``."""
    with ThreadPoolExecutor(max_workers=max(1, min(parallel, len(hosts)))) as pool:
        return list(pool.map(lambda h: bootstrap(connect(h), opts_for(h)), hosts))
