"""Bootstrap a box over SSH (Fabric): checks, layout, bundle upload, identity key, site config.

Every step is idempotent: it looks first and only then changes, and says which. The
device's identity key is generated *on the box* (``openssl genpkey -algorithm ed25519``)
and only its public half is read back.
"""

from __future__ import annotations

import hashlib
import shlex
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


def site_config(c: Connection, opts: BootstrapOptions) -> StepResult:
    body = yaml.safe_dump({"site": {"id": opts.site, "name": opts.site, "timezone": "UTC"},
                           **opts.site_config}, sort_keys=True).encode()
    path = f"{opts.root}/etc/site.yaml"
    if _exists(c, path):
        current = BytesIO()
        c.get(path, current)
        if current.getvalue() == body:
            return StepResult("site-config", False, "up to date")
    c.put(BytesIO(body), path)
    return StepResult("site-config", True, f"wrote {path}")


def bootstrap(c: Connection, opts: BootstrapOptions) -> HostReport:
    report = HostReport(c.host if c.port == 22 else f"{c.host}:{c.port}")
    try:
        report.steps.append(check_platform(c))
        report.steps.append(make_layout(c, opts.root))
        report.steps.append(upload_bundle(c, opts.bundle, opts.root))
        step, report.public_key = identity_key(c, opts.root)
        report.steps.append(step)
        report.steps.append(site_config(c, opts))
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
