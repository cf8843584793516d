"""Install a bundle: verify, install into the inactive slot, switch, check, commit or roll back.

The order is the point (Mender/RAUC): nothing is written before the signature, every
hash, the platform and the version rules pass; the running slot is never touched;
a slot is marked ``good`` only after the application's own health check passes within
the window; otherwise -- or on a crash loop (``crash_loop_starts`` failed starts within
``crash_loop_window_s``) -- ``current`` goes back, the service restarts on the old slot
and the reason (the failing check and its output) is recorded in ``state.json``.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import stat
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from images.bundle import BundleError, VerifiedBundle, extract_payload, verify_bundle
from images.health import Baseline, EdgeEndpoints, EdgeProbe, HealthPolicy, HealthReport, judge
from images.manifest import Refused, check_compatible
from images.service import EDGE_SERVICE, ServiceError, ServiceManager
from images.slots import BoxLayout, SlotName

log = logging.getLogger(__name__)

Outcome = Literal["committed", "rolled_back", "refused", "failed"]
CONFIG_OVERRIDE = "files/config/override.yaml"
"""A release may carry settings merged over the box's site config (its own defaults)."""


@dataclass
class InstallResult:
    outcome: Outcome
    version: str
    slot: SlotName | None
    reason: str = ""
    check: str = ""
    """The check that refused or failed (``signature``, ``platform``, ``sip``, ``crash_loop`` ...)."""
    timings: dict[str, float] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {"outcome": self.outcome, "version": self.version, "slot": self.slot,
                "reason": self.reason, "check": self.check, "timings": self.timings}


def deep_merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = value
    return out


@dataclass
class QuietPolicy:
    """Never interrupt calls: wait until none is active, at most ``max_wait_s``."""

    max_wait_s: float = 300.0
    poll_s: float = 0.5


class Installer:
    def __init__(
        self,
        layout: BoxLayout,
        service: ServiceManager,
        public_key: Ed25519PublicKey,
        *,
        policy: HealthPolicy | None = None,
        quiet: QuietPolicy | None = None,
        service_name: str = EDGE_SERVICE,
        python: str = sys.executable,
        host_site_packages: Path | None = None,
        progress: Callable[[str, dict[str, Any]], None] | None = None,
    ) -> None:
        """``host_site_packages`` (tests and development only): dependencies are taken from
        this site-packages through a ``.pth`` instead of the bundle's wheels, so a bundle
        holding only the project wheel can be installed quickly."""
        self.layout = layout
        self.service = service
        self.key = public_key
        self.policy = policy or HealthPolicy()
        self.quiet = quiet or QuietPolicy()
        self.service_name = service_name
        self.python = python
        self.host_site_packages = host_site_packages
        self._progress = progress or (lambda step, info: None)

    # ---------------------------------------------------------------- steps

    def preflight(self, bundle: Path, *, allow_downgrade: bool = False) -> VerifiedBundle:
        """Signature, hashes, platform, version rules. Raises BundleError/Refused; writes nothing."""
        verified = verify_bundle(bundle, self.key)
        state = self.layout.load()
        check_compatible(verified.manifest, running=state.good_version(self.layout.current()),
                         allow_downgrade=allow_downgrade)
        return verified

    def _probe(self, slot: SlotName) -> EdgeProbe:
        config = self.layout.slot_dir(slot) / "etc" / "site.yaml"
        return EdgeProbe(EdgeEndpoints.from_config(config, self.layout.data_dir))

    def _install_slot(self, verified: VerifiedBundle, slot: SlotName) -> None:
        target = self.layout.slot_dir(slot)
        shutil.rmtree(target, ignore_errors=True)
        target.mkdir(parents=True)
        extract_payload(verified, self.key, target)
        venv = target / "venv"
        subprocess.run([self.python, "-m", "venv", "--without-pip", str(venv)], check=True)
        wheels = sorted(str(p) for p in (target / "wheels").glob("*.whl"))
        project = [w for w in wheels if Path(w).name.startswith("branchline-")]
        cmd = [self.python, "-m", "pip", "--python", str(venv / "bin" / "python"), "install", "-q",
               "--no-index", "--find-links", str(target / "wheels"), "--disable-pip-version-check",
               "--no-cache-dir"]
        if self.host_site_packages is not None:
            site = next((venv / "lib").glob("python3*/site-packages"))
            (site / "_branchline_host_deps.pth").write_text(f"{self.host_site_packages}\n")
            cmd += ["--no-deps", *project]
        else:
            cmd += project
        out = subprocess.run(cmd, capture_output=True, text=True)
        if out.returncode != 0:
            raise RuntimeError(f"pip install into slot {slot} failed: {out.stderr.strip()[-2000:]}")
        shutil.rmtree(target / "wheels")  # installed; the bundle stays the source of truth
        self.write_slot_config(slot)
        (target / "release.json").write_text(json.dumps(verified.manifest.to_dict(), indent=1))

    def write_slot_config(self, slot: SlotName) -> bool:
        """The slot's ``etc/site.yaml``: the box's site config with the release's own
        override merged over it, with the box file's owner and mode (it holds the MQTT
        password: 0600 for the service user). Returns whether it changed."""
        target = self.layout.slot_dir(slot)
        source = self.layout.site_config
        box = yaml.safe_load(source.read_text()) if source.exists() else {}
        override = target / CONFIG_OVERRIDE
        if override.exists():
            box = deep_merge(box or {}, yaml.safe_load(override.read_text()) or {})
        (target / "etc").mkdir(exist_ok=True)
        path = target / "etc" / "site.yaml"
        body = yaml.safe_dump(box, sort_keys=False)
        if path.exists() and path.read_text() == body:
            return False
        tmp = path.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as out:
            out.write(body)
        if source.exists():
            st = source.stat()
            os.chown(tmp, st.st_uid, st.st_gid)
            os.chmod(tmp, stat.S_IMODE(st.st_mode))
        os.replace(tmp, path)
        return True

    def apply_config(self) -> tuple[bool, str]:
        """After the box's site config changed (provisioning, rotated credentials): write
        it into the running slot, restart the edge and wait for its health check.
        Returns (healthy, failures); nothing is rolled back (the release did not change)."""
        slot = self.layout.current()
        if slot is None:
            return False, "nothing installed"
        if not self.write_slot_config(slot):
            return True, "unchanged"
        self._wait_quiet(slot)
        self.service.restart(self.service_name)
        healthy, check, reason = self.watch(self._probe(slot), Baseline())
        return healthy, f"{check}: {reason}" if not healthy else "restarted, healthy"

    def _wait_quiet(self, slot: SlotName | None) -> None:
        if slot is None:
            return
        probe = self._probe(slot)
        deadline = time.monotonic() + self.quiet.max_wait_s
        while (calls := probe.calls_active()):
            if time.monotonic() > deadline:
                raise Refused("busy", f"{calls} call(s) still active after {self.quiet.max_wait_s:.0f}s")
            time.sleep(self.quiet.poll_s)

    def _tail_log(self, limit: int = 1500) -> str:
        path = self.layout.log_dir / "edge.err.log"
        try:
            data = path.read_bytes()[-limit:]
        except OSError:
            return ""
        return data.decode(errors="replace").strip()

    def watch(self, probe: EdgeProbe, baseline: Baseline, window_s: float | None = None) -> tuple[bool, str, str]:
        """Until healthy (True) or the window ends / a crash loop (False, check, reason)."""
        policy = self.policy
        deadline = time.monotonic() + (window_s or policy.window_s)
        failed_starts: dict[float, float] = {}  # spawn time -> when we saw it fail
        last_report: HealthReport | None = None
        last_status = ""
        while True:
            status = self.service.status(self.service_name)
            last_status = f"{status.state} ({status.detail})" if status.detail else status.state
            now = time.monotonic()
            if status.state in ("exited", "backoff", "fatal") and status.started_at is not None:
                failed_starts.setdefault(status.started_at, now)
            recent = [t for t in failed_starts.values() if now - t <= policy.crash_loop_window_s]
            if len(recent) >= policy.crash_loop_starts or status.state == "fatal":
                return False, "crash_loop", (
                    f"{len(recent)} failed starts within {policy.crash_loop_window_s:.0f}s, "
                    f"service {last_status}; stderr: {self._tail_log()}")
            if status.state == "running":
                last_report = judge(probe.observe(), baseline, policy)
                if last_report.ok:
                    return True, "", ""
            if now > deadline:
                if last_report is None:
                    return False, "process", f"service never ran: {last_status}; stderr: {self._tail_log()}"
                failing = next(c for c in last_report.checks if not c.ok)
                return False, failing.name, last_report.failures()
            time.sleep(policy.poll_s)

    # ---------------------------------------------------------------- the whole thing

    def install(self, bundle: Path, *, allow_downgrade: bool = False) -> InstallResult:
        t0 = time.monotonic()
        timings: dict[str, float] = {}
        try:
            verified = self.preflight(bundle, allow_downgrade=allow_downgrade)
        except (BundleError, Refused) as exc:
            return InstallResult("refused", "", None, str(exc), exc.check)
        manifest = verified.manifest
        timings["verify_s"] = time.monotonic() - t0
        self._progress("verified", {"version": manifest.version})
        old = self.layout.current()
        try:
            self._wait_quiet(old)
        except Refused as exc:
            return InstallResult("refused", manifest.version, None, str(exc), exc.check)
        slot = self.layout.inactive()
        self.layout.create()
        state = self.layout.load()
        rec = state.slots[slot]
        rec.version, rec.status, rec.reason = manifest.version, "installing", ""
        rec.manifest_sha256, rec.installed_at = verified.manifest_sha256, time.time()
        self.layout.save(state)
        try:
            self._install_slot(verified, slot)
        except (BundleError, RuntimeError, OSError, subprocess.CalledProcessError) as exc:
            rec.status, rec.reason = "failed", f"install: {exc}"
            self.layout.record(state, "failed", slot, manifest.version, rec.reason)
            return InstallResult("failed", manifest.version, slot, rec.reason, "install", timings)
        timings["install_s"] = time.monotonic() - t0
        self._progress("installed", {"version": manifest.version, "slot": slot})

        baseline = self._probe(old).baseline() if old is not None else Baseline()
        self.layout.switch(slot)
        rec.status = "pending"
        self.layout.record(state, "switched", slot, manifest.version)
        t_switch = time.monotonic()
        try:
            self.service.restart(self.service_name)
            healthy, check, reason = self.watch(self._probe(slot), baseline)
        except ServiceError as exc:
            healthy, check, reason = False, "service", str(exc)
        if healthy:
            timings["healthy_s"] = time.monotonic() - t_switch
            rec.status = "good"
            self.layout.record(state, "committed", slot, manifest.version)
            self._progress("committed", {"version": manifest.version, "slot": slot})
            return InstallResult("committed", manifest.version, slot, "", "", timings)

        # roll back: the new slot is failed with its reason, the old one runs again
        t_back = time.monotonic()
        rec.status, rec.reason = "failed", f"{check}: {reason}"
        if old is not None:
            self.layout.switch(old)
            self.service.restart(self.service_name)
        else:
            self.service.stop(self.service_name)
        self.layout.record(state, "rolled_back", slot, manifest.version, rec.reason, check=check)
        if old is not None:
            ok, _, why = self.watch(self._probe(old), Baseline())
            if not ok:
                log.error("the old slot %s is not healthy after the rollback either: %s", old, why)
        timings["rollback_s"] = time.monotonic() - t_back
        self._progress("rolled_back", {"version": manifest.version, "check": check, "reason": reason})
        return InstallResult("rolled_back", manifest.version, slot, rec.reason, check, timings)
