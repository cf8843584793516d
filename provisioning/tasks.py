"""Bootstrap a box over SSH (Fabric): from a bare Debian box to "installed, enrolled,
running and healthy".

The steps, in order; each looks first and only then changes, and says which, so a
second run on a provisioned box changes nothing and says so:

``platform`` (OS, architecture, and the bundle -- verified here with its signing key
before anything is written -- matches the box's platform and Python), ``packages``
(apt-get installs what is missing), ``service-user`` (a system user the edge runs as),
``layout``, ``bundle`` (upload, sha256 checked on the box), ``identity``, ``enroll``,
``bundle-key`` and ``updater-config`` (``ROOT/etc/updater.yaml``: the installer's
service manager, Python, health policy), ``site-config``, ``service`` (the supervisord
or systemd definitions of the edge and of the updater -- images.updater, which runs
update agents as root on the edge's request -- enabled), ``install`` (the box's own
installer -- the bundle's ``branchline image install``, run from a throw-away venv
built from the bundle's wheels -- installs slot A, starts the edge through the service
manager and commits only when the application's health check passes), ``updater``
(started) and ``health`` (the check again, its result in the report). A changed site
config on a box that runs already is applied with ``branchline image apply-config``
(restart, health check).

The device's identity key is generated *on the box* (``openssl genpkey -algorithm
ed25519``) and only its public half is read back.

Enrollment: the public key and the site's one-time token (issued by an admin with
``POST /api/v1/enroll-tokens``) go to the fleet's ``POST /api/v1/enroll`` from where
this runs; the answer (site id, broker URL, the fleet's config-signing key, MQTT
credentials) becomes the ``telemetry:`` section of the box's site config (mode 0600,
owned by the service user: it holds the MQTT password), and ``ROOT/etc/enrollment.json``
records which identity key was enrolled. A box whose record matches its key is not
enrolled again (a token works once): its existing ``telemetry:`` section is kept.

Login: root, or an admin user who may ``sudo`` without a password (every step then
runs through ``sudo -n``: provisioning.remote), with an SSH key.
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
from typing import Any, Literal, TypeVar

import yaml
from fabric import Connection

from images.bundle import VerifiedBundle
from images.manifest import Manifest
from provisioning.remote import Remote, as_root

T = TypeVar("T")

SUPPORTED_ARCH = ("x86_64", "aarch64")
SUPPORTED_OS = ("debian",)
ServiceKind = Literal["systemd", "supervisor"]
INSTALLER_DIR = "incoming/installer"
"""The throw-away venv (built from the bundle's own wheels) that installs slot A."""


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
    on_step: Callable[[str, StepResult], None] | None = field(default=None, repr=False, compare=False)
    """Told of each step as it finishes (the CLI prints progress: a bootstrap takes minutes)."""

    @property
    def changed(self) -> bool:
        return any(s.changed for s in self.steps)

    def add(self, *steps: StepResult) -> StepResult:
        """Record steps as they finish, telling ``on_step`` (progress); returns the last."""
        for step in steps:
            self.steps.append(step)
            if self.on_step is not None:
                self.on_step(self.host, step)
        return steps[-1]

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
    """PEM of the key bundles are signed with: the bundle is verified with it before
    anything is written, and it is written to ``ROOT/etc/bundle.pub``."""
    updater: dict[str, Any] = field(default_factory=dict)
    """Settings merged over the ``ROOT/etc/updater.yaml`` bootstrap writes (see images.agent)."""
    install: bool = True
    """Install the bundle into slot A, start the service and health-check it (needs
    ``bundle_public_key``); False: lay out and enroll only."""
    service: ServiceKind = "systemd"
    """The box's process manager: systemd (production) or a box-owned supervisord
    (``ROOT/etc/supervisord.conf``, socket ``ROOT/run/supervisor.sock``: boxes and
    tests without systemd)."""
    service_user: str = "branchline"
    python: str = "/usr/bin/python3"
    apt: bool = True
    """Install missing Debian packages with apt-get; False: a missing one is an error."""
    deps_site_packages: str = ""
    """Development and tests only: take the dependencies from this site-packages on
    the box instead of the bundle's wheels (a bundle holding only the project wheel)."""


def _run(c: Remote, cmd: str) -> str:
    return str(c.run(cmd, hide=True, in_stream=False).stdout)


def _ok(c: Remote, cmd: str) -> bool:
    return bool(c.run(cmd, hide=True, warn=True, in_stream=False).ok)


def _exists(c: Remote, path: str) -> bool:
    return _ok(c, f"test -e {shlex.quote(path)}")


def _q(*parts: str) -> str:
    return " ".join(shlex.quote(p) for p in parts)


def remote_json(c: Remote, cmd: str, what: str) -> dict[str, Any]:
    """Run a ``branchline`` command that answers one JSON object on the box; its answer
    whatever its exit status (the object says what failed), RuntimeError naming
    ``what`` with its stderr when there is no such answer."""
    out = c.run(cmd, hide=True, warn=True, in_stream=False)
    try:
        return dict(json.loads(out.stdout))
    except ValueError:
        raise RuntimeError(f"{what} failed: {out.stderr.strip()[-1500:]}") from None


def check_platform(c: Remote) -> StepResult:
    arch = _run(c, "uname -m").strip()
    os_id = _run(c, ". /etc/os-release && echo $ID").strip()
    if arch not in SUPPORTED_ARCH or os_id not in SUPPORTED_OS:
        raise RuntimeError(f"unsupported box: {os_id} on {arch}")
    return StepResult("platform", False, f"{os_id} {arch}")


def required_packages(opts: BootstrapOptions) -> list[str]:
    return ["python3", "python3-venv", "python3-pip", "openssl",
            *(["supervisor"] if opts.service == "supervisor" else [])]


def packages(c: Remote, opts: BootstrapOptions) -> StepResult:
    wanted = required_packages(opts)
    missing = [p for p in wanted
               if not _ok(c, f"dpkg-query -W -f='${{Status}}' {shlex.quote(p)} 2>/dev/null | grep -q 'ok installed'")]
    if not missing:
        return StepResult("packages", False, f"present: {' '.join(wanted)}")
    if not opts.apt:
        raise RuntimeError(f"packages missing and apt disabled: {' '.join(missing)}")
    _run(c, "DEBIAN_FRONTEND=noninteractive apt-get update -q && DEBIAN_FRONTEND=noninteractive "
            "apt-get install -y -q --no-install-recommends " + _q(*missing))
    return StepResult("packages", True, f"installed {' '.join(missing)}")


def verify_bundle_locally(opts: BootstrapOptions) -> VerifiedBundle:
    """Signature and every hash, here, before anything reaches the box."""
    from images.bundle import verify_bundle
    from images.signing import load_public_key

    return verify_bundle(opts.bundle, load_public_key(opts.bundle_public_key, "bundle public key"))


def check_bundle_fits(c: Remote, opts: BootstrapOptions, manifest: Manifest) -> StepResult:
    probe = ("import sys, sysconfig; print(sysconfig.get_platform().replace('-', '_').replace('.', '_'), "
             "f'cp{sys.version_info[0]}{sys.version_info[1]}')")
    platform, python = _run(c, f"{shlex.quote(opts.python)} -c {shlex.quote(probe)}").split()
    if (manifest.platform, manifest.python) != (platform, python):
        raise RuntimeError(f"bundle {manifest.version} is for {manifest.platform} {manifest.python}, "
                           f"this box is {platform} {python} ({opts.python})")
    return StepResult("bundle-fits", False, f"{manifest.version} for {platform} {python}")


def service_user(c: Remote, opts: BootstrapOptions) -> StepResult:
    user = opts.service_user
    if _ok(c, f"id -u {shlex.quote(user)}"):
        return StepResult("service-user", False, f"{user} exists")
    _run(c, "useradd --system --no-create-home --shell /usr/sbin/nologin --home-dir "
            + _q(opts.root, user))
    return StepResult("service-user", True, f"created system user {user}")


def make_layout(c: Remote, root: str, user: str = "") -> StepResult:
    dirs = [f"{root}/{d}" for d in ("slots/a", "slots/b", "etc", "data", "log", "identity", "incoming", "run")]
    missing = [d for d in dirs if not _exists(c, d)]
    if missing:
        _run(c, "mkdir -p " + _q(*missing) + f" && chmod 700 {shlex.quote(root)}/identity")
    owned = [f"{root}/{d}" for d in ("data", "log", "identity")]
    chowned = False
    if user and _run(c, "stat -c %U " + _q(*owned)).split() != [user] * len(owned):
        _run(c, f"chown -R {shlex.quote(user)}: " + _q(*owned))
        chowned = True
    what = [f"created {len(missing)} directories"] if missing else []
    what += [f"data, log, identity owned by {user}"] if chowned else []
    return StepResult("layout", bool(what), ", ".join(what) or "present")


def upload_bundle(c: Remote, bundle: Path, root: str) -> StepResult:
    digest = hashlib.sha256(bundle.read_bytes()).hexdigest()
    remote = f"{root}/incoming/{bundle.name}"
    if _exists(c, remote) and _run(c, f"sha256sum {shlex.quote(remote)}").split()[0] == digest:
        return StepResult("bundle", False, f"{bundle.name} already there (sha256 {digest[:12]})")
    c.put(str(bundle), remote)
    got = _run(c, f"sha256sum {shlex.quote(remote)}").split()[0]
    if got != digest:
        raise RuntimeError(f"upload of {bundle.name} corrupted: {got} != {digest}")
    return StepResult("bundle", True, f"uploaded {bundle.name} (sha256 {digest[:12]})")


def identity_key(c: Remote, root: str, user: str = "") -> tuple[StepResult, str]:
    key = f"{root}/identity/device.key"
    changed = False
    if not _exists(c, key):
        _run(c, f"umask 077 && openssl genpkey -algorithm ed25519 -out {shlex.quote(key)}"
             + (f" && chown {shlex.quote(user)}: {shlex.quote(key)}" if user else ""))
        changed = True
    public = _run(c, f"openssl pkey -in {shlex.quote(key)} -pubout")
    return StepResult("identity", changed, "generated on the box" if changed else "present"), public


def _read(c: Remote, path: str) -> bytes | None:
    if not _exists(c, path):
        return None
    buf = BytesIO()
    c.get(path, buf)
    return buf.getvalue()


def _write_if_changed(c: Remote, path: str, body: bytes, name: str, mode: str = "644",
                      owner: str = "") -> StepResult:
    if _read(c, path) == body:
        return StepResult(name, False, "up to date")
    c.put(BytesIO(body), path)
    _run(c, f"chmod {mode} {shlex.quote(path)}" + (f" && chown {shlex.quote(owner)}: {shlex.quote(path)}"
                                                    if owner else ""))
    return StepResult(name, True, f"wrote {path}")


def post_enroll(fleet_url: str, token: str, public_key: str, timeout_s: float = 30.0) -> dict[str, Any]:
    """``POST {fleet}/api/v1/enroll``; RuntimeError with the fleet's answer on refusal."""
    return fleet_request(fleet_url, "/api/v1/enroll", {"token": token, "public_key": public_key},
                         what="enrollment", timeout_s=timeout_s)


def fleet_request(fleet_url: str, path: str, body: dict[str, Any], *, what: str, bearer: str = "",
                  timeout_s: float = 30.0) -> dict[str, Any]:
    """POST JSON to the fleet; RuntimeError naming ``what`` and the fleet's answer on refusal."""
    headers = {"Content-Type": "application/json"}
    if bearer:
        headers["Authorization"] = f"Bearer {bearer}"
    request = urllib.request.Request(f"{fleet_url.rstrip('/')}{path}", method="POST",
                                     data=json.dumps(body).encode(), headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as resp:
            return dict(json.loads(resp.read()))
    except urllib.error.HTTPError as exc:
        raise RuntimeError(f"{what} refused by {fleet_url}: {exc.code} {exc.read().decode(errors='replace')}") \
            from None
    except (OSError, urllib.error.URLError) as exc:
        raise RuntimeError(f"{what}: cannot reach {fleet_url}: {exc}") from None


def enroll(c: Remote, opts: BootstrapOptions,
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


def write_enrollment_record(c: Remote, opts: BootstrapOptions, record: dict[str, Any]) -> None:
    """Written last: a bootstrap cut before the site config holds the telemetry section
    enrolls again on the next run (with a new token) rather than leaving a mute box."""
    c.put(BytesIO(json.dumps(record, indent=1, sort_keys=True).encode()), f"{opts.root}/etc/enrollment.json")


def supervisor_socket(opts: BootstrapOptions) -> str:
    return f"{opts.root}/run/supervisor.sock"


def updater_settings(opts: BootstrapOptions) -> dict[str, Any]:
    """What the box's installer and update agent run with (``ROOT/etc/updater.yaml``)."""
    base: dict[str, Any] = {"service": opts.service, "python": opts.python, "launch": "service"}
    if opts.service == "supervisor":
        base["supervisor_socket"] = supervisor_socket(opts)
    if opts.deps_site_packages:
        base["host_site_packages"] = opts.deps_site_packages
    return {**base, **opts.updater}


def updater_config(c: Remote, opts: BootstrapOptions) -> list[StepResult]:
    """``etc/bundle.pub`` (when given) and ``etc/updater.yaml`` for the installer and agent."""
    steps = []
    if opts.bundle_public_key:
        steps.append(_write_if_changed(c, f"{opts.root}/etc/bundle.pub", opts.bundle_public_key, "bundle-key"))
    body = yaml.safe_dump(updater_settings(opts), sort_keys=True).encode()
    steps.append(_write_if_changed(c, f"{opts.root}/etc/updater.yaml", body, "updater-config"))
    return steps


def site_config(c: Remote, opts: BootstrapOptions, telemetry: dict[str, Any] | None = None) -> StepResult:
    doc: dict[str, Any] = {"site": {"id": opts.site, "name": opts.site, "timezone": "UTC"}, **opts.site_config}
    if telemetry:
        doc["telemetry"] = telemetry
    body = yaml.safe_dump(doc, sort_keys=True).encode()
    return _write_if_changed(c, f"{opts.root}/etc/site.yaml", body, "site-config", "600", opts.service_user)


def service(c: Remote, opts: BootstrapOptions) -> StepResult:
    """The edge's and the updater's service definitions, enabled (the install step starts
    the edge; :func:`updater` starts the updater once a slot exists)."""
    from images.service import (
        EDGE_SERVICE,
        supervisor_program,
        supervisord_conf,
        systemd_unit,
        updater_program,
        updater_units,
    )

    root = Path(opts.root)
    if opts.service == "systemd":
        units = {f"{EDGE_SERVICE}.service": systemd_unit(root, user=opts.service_user), **updater_units(root)}
        wrote = [name for name, text in units.items()
                 if _write_if_changed(c, f"/etc/systemd/system/{name}", text.encode(), "service").changed]
        if wrote:
            _run(c, "systemctl daemon-reload")
        enabled = [u for u in (f"{EDGE_SERVICE}.service", "branchline-update.path")
                   if not _ok(c, f"systemctl is-enabled --quiet {u}")]
        if enabled:
            _run(c, "systemctl enable " + " ".join(enabled))
        what = [f"wrote {', '.join(wrote)}"] if wrote else []
        what += [f"enabled {', '.join(enabled)}"] if enabled else []
        return StepResult("service", bool(what), "; ".join(what) or "units up to date and enabled")
    conf_path = f"{opts.root}/etc/supervisord.conf"
    programs = supervisor_program(root, user=opts.service_user) + "\n" + updater_program(root)
    conf = supervisord_conf(root / "run", programs, daemon=True)
    step = _write_if_changed(c, conf_path, conf.encode(), "service", "600")
    pid_file = f"{opts.root}/run/supervisord.pid"
    running = _ok(c, f"test -S {shlex.quote(supervisor_socket(opts))} && kill -0 \"$(cat {shlex.quote(pid_file)})\"")
    if not running:
        _run(c, f"supervisord -c {shlex.quote(conf_path)} </dev/null >/dev/null 2>&1")
        return StepResult("service", True, f"supervisord started ({conf_path})")
    if step.changed:
        _run(c, f"supervisorctl -c {shlex.quote(conf_path)} update")
        return StepResult("service", True, f"supervisord reloaded {conf_path}")
    return StepResult("service", False, "supervisord running, definitions up to date")


def updater(c: Remote, opts: BootstrapOptions) -> StepResult:
    """The updater service runs (it takes the edge's update requests; needs a slot)."""
    from images.updater import UPDATER_SERVICE

    if opts.service == "systemd":
        if _ok(c, "systemctl is-active --quiet branchline-update.path"):
            return StepResult("updater", False, "branchline-update.path active")
        _run(c, "systemctl start branchline-update.path")
        return StepResult("updater", True, "started branchline-update.path")
    ctl = f"supervisorctl -c {shlex.quote(opts.root)}/etc/supervisord.conf"
    status = str(c.run(f"{ctl} status {UPDATER_SERVICE}", hide=True, warn=True, in_stream=False).stdout)
    if "RUNNING" in status:
        return StepResult("updater", False, f"{UPDATER_SERVICE} running")
    _run(c, f"{ctl} start {UPDATER_SERVICE}")
    return StepResult("updater", True, f"started {UPDATER_SERVICE}")


def _box_state(c: Remote, root: str) -> tuple[str | None, dict[str, Any]]:
    current = _run(c, f"readlink {shlex.quote(root)}/current || true").strip()
    raw = _read(c, f"{root}/state.json")
    return (current.rsplit("/", 1)[-1] or None), (json.loads(raw) if raw else {})


def install(c: Remote, opts: BootstrapOptions, verified: VerifiedBundle) -> StepResult:
    """Slot A from the bundle, through the box's own installer; nothing when a good slot
    runs this very release (same manifest) already, or a newer one (a box updated by the
    fleet since: bootstrap never downgrades it)."""
    from packaging.version import InvalidVersion, Version

    slot, state = _box_state(c, opts.root)
    record = (state.get("slots") or {}).get(slot or "", {})
    if record.get("status") == "good":
        if record.get("manifest_sha256") == verified.manifest_sha256:
            return StepResult("install", False, f"{record.get('version')} installed and good in slot {slot}")
        try:
            newer = Version(str(record.get("version"))) > verified.manifest.parsed_version
        except InvalidVersion:
            newer = False
        if newer:
            return StepResult("install", False, f"{record.get('version')} good in slot {slot}, newer than the "
                                                f"bundle's {verified.manifest.version}: left as it is")
    root, bundle = opts.root, f"{opts.root}/incoming/{opts.bundle.name}"
    venv, wheels = f"{root}/{INSTALLER_DIR}/venv", f"{root}/{INSTALLER_DIR}/wheels"
    extract = ("import os, sys, tarfile\n"
               "with tarfile.open(sys.argv[1]) as t:\n"
               "    for m in t.getmembers():\n"
               "        if m.isfile() and m.name.startswith('wheels/') and m.name.endswith('.whl'):\n"
               "            with open(os.path.join(sys.argv[2], os.path.basename(m.name)), 'wb') as f:\n"
               "                f.write(t.extractfile(m).read())\n")
    pip = f"{venv}/bin/python -m pip install -q --no-index --disable-pip-version-check --find-links {wheels}"
    steps = [f"rm -rf {root}/{INSTALLER_DIR}", f"mkdir -p {wheels}",
             f"{shlex.quote(opts.python)} -c {shlex.quote(extract)} {_q(bundle, wheels)}",
             f"{shlex.quote(opts.python)} -m venv {venv}"]
    if opts.deps_site_packages:
        steps += [f"{pip} --no-deps branchline",  # then the dependencies: after pip, which would see them
                  f"echo {shlex.quote(opts.deps_site_packages)} > "
                  f"$(echo {venv}/lib/python3*/site-packages)/_branchline_deps.pth"]
    else:
        steps += [f"{pip} branchline"]
    _run(c, " && ".join(steps))
    result = remote_json(c, f"{venv}/bin/branchline image install {_q(bundle)} --root {shlex.quote(root)}",
                         "install: the box's installer")
    if result.get("outcome") != "committed":
        raise RuntimeError(f"install: {result.get('outcome')} at {result.get('check') or '-'}: {result.get('reason')}")
    _run(c, f"rm -rf {root}/{INSTALLER_DIR}")
    healthy_s = (result.get("timings") or {}).get("healthy_s", 0.0)
    return StepResult("install", True, f"{result['version']} committed in slot {result['slot']} "
                                      f"(healthy {healthy_s:.1f} s after the start)")


def apply_config(c: Remote, opts: BootstrapOptions) -> StepResult:
    """A changed site config on a box whose release is installed already: into the
    running slot, restart, health check (``branchline image apply-config``)."""
    result = remote_json(c, f"{opts.root}/current/venv/bin/branchline image apply-config --root "
                            f"{shlex.quote(opts.root)}", "apply-config")
    if not result.get("ok"):
        raise RuntimeError(f"the edge is not healthy with the new site config: {result.get('detail')}")
    return StepResult("apply-config", result.get("detail") != "unchanged", str(result.get("detail")))


def health(c: Remote, root: str) -> StepResult:
    """The application's own health check, once (``branchline image health``)."""
    result = remote_json(c, f"{root}/current/venv/bin/branchline image health --root {shlex.quote(root)}",
                         "the health check")
    checks = result.get("checks", [])
    if not result.get("ok"):
        raise RuntimeError("unhealthy: " + "; ".join(f"{k['name']}: {k['detail']}" for k in checks if not k["ok"]))
    return StepResult("health", False, "passed: " + ", ".join(k["name"] for k in checks))


def bootstrap(connection: Connection, opts: BootstrapOptions,
              on_step: Callable[[str, StepResult], None] | None = None) -> HostReport:
    c = as_root(connection)
    report = HostReport(c.host if c.port == 22 else f"{c.host}:{c.port}", on_step=on_step)
    user = opts.service_user
    try:
        verified: VerifiedBundle | None = None
        if opts.install:
            if not opts.bundle_public_key:
                raise RuntimeError("installing needs the bundle's public key (--bundle-pubkey)")
            verified = verify_bundle_locally(opts)
        report.add(check_platform(c))
        report.add(packages(c, opts))
        if verified is not None:
            report.add(check_bundle_fits(c, opts, verified.manifest))
        report.add(service_user(c, opts))
        report.add(make_layout(c, opts.root, user))
        report.add(upload_bundle(c, opts.bundle, opts.root))
        step, report.public_key = identity_key(c, opts.root, user)
        report.add(step)
        step, telemetry, record = enroll(c, opts, report.public_key)
        report.add(step)
        report.add(*updater_config(c, opts))
        config_step = site_config(c, opts, telemetry)
        report.add(config_step)
        if record is not None:
            write_enrollment_record(c, opts, record)
        if verified is not None:
            report.add(service(c, opts))
            step = install(c, opts, verified)
            report.add(step)
            if config_step.changed and not step.changed:
                report.add(apply_config(c, opts))
            report.add(updater(c, opts))
            report.add(health(c, opts.root))
    except Exception as exc:  # one host's failure is reported, the others go on
        report.ok, report.error = False, f"{type(exc).__name__}: {exc}"
    finally:
        c.close()
    return report


def on_hosts(hosts: list[str], work: Callable[[str], T], parallel: int = 8) -> list[T]:
    """``work(host)`` for every host in parallel; results in the order of ``hosts``."""
    with ThreadPoolExecutor(max_workers=max(1, min(parallel, len(hosts)))) as pool:
        return list(pool.map(work, hosts))


def bootstrap_many(connect: Callable[[str], Connection], hosts: list[str],
                   opts_for: Callable[[str], BootstrapOptions], parallel: int = 8,
                   on_step: Callable[[str, StepResult], None] | None = None) -> list[HostReport]:
    """Bootstrap every host in parallel; reports in the order of ``hosts``."""
    return on_hosts(hosts, lambda h: bootstrap(connect(h), opts_for(h), on_step), parallel)
