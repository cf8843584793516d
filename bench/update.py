"""Update benchmark: bundle size, build time, install-to-healthy time, rollback time.

Everything runs the real code on a throwaway box root with supervisord as its process
manager (the approach of tests/integration/test_image_install.py):

1. **build** -- ``images.build``: the project wheel with its compiled kernels (and, in
   the full run, every dependency as a wheel), signed into a bundle; ``build_s`` and
   ``bundle_bytes``. The build runs twice and ``reproducible`` says whether the two
   bundles are byte-identical.
2. **first install** -- 1.0.0 on the blank box: verify, slot a, start, health check.
3. **upgrade** -- 1.1.0 while 1.0.0 runs: ``install_to_healthy_s`` is the whole
   ``Installer.install`` call (verify, unpack, venv, pip, switch, restart, health check
   passed); ``healthy_after_switch_s`` is the part after the switch.
4. **rollback** -- 1.2.0 carries a setting the edge refuses, so it exits at start
   (``--bad crash``: rolled back by the crash-loop rule) or its control API is off
   (``--bad health``: rolled back when the health window ends). ``detect_s`` is switch
   -> decision, ``rollback_s`` is decision -> the old slot healthy again.

``--quick`` (under a minute): project-only bundles whose slot venvs take the
dependencies from this venv through a ``.pth`` (the tests' fast path), health window
10 s. The full run bundles every dependency (``pip wheel``: needs the index or a warm
pip cache) and installs offline (``pip install --no-index``).

    .venv/bin/python bench/update.py --quick

Last line: one JSON object.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import site
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

import yaml  # noqa: E402
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey  # noqa: E402

from bench._common import emit_json, log  # noqa: E402
from images.build import build_wheels, make_bundle, source_date_epoch  # noqa: E402
from images.bundle import sha256_file  # noqa: E402
from images.health import HealthPolicy  # noqa: E402
from images.install import Installer, InstallResult, QuietPolicy  # noqa: E402
from images.service import Supervisor, supervisor_program, supervisord_conf  # noqa: E402
from images.slots import BoxLayout  # noqa: E402
from tests.sipp import default_edge_config, wait_for  # noqa: E402


def build(work: Path, key: Ed25519PrivateKey, version: str, *, with_deps: bool,
          override: dict[str, Any] | None = None, tag: str = "") -> tuple[Path, float]:
    """Wheels from the source tree + files -> a signed bundle; (path, seconds)."""
    t0 = time.monotonic()
    epoch = source_date_epoch(REPO_ROOT)
    wheel_dir = work / f"wheels-{version}{tag}"
    wheels = build_wheels(REPO_ROOT, wheel_dir, with_deps=with_deps, epoch=epoch)
    files = work / f"files-{version}"
    (files / "prompts").mkdir(parents=True, exist_ok=True)
    (files / "prompts" / "README").write_text(f"prompts of {version}\n")
    if override is not None:
        (files / "config").mkdir(exist_ok=True)
        (files / "config" / "override.yaml").write_text(yaml.safe_dump(override))
    out = work / f"branchline-{version}{tag}.bundle"
    make_bundle(out, version=version, key=key, wheels=wheels, files_dir=files, build_time=epoch)
    return out, time.monotonic() - t0


class BenchBox:
    """A box root with its own supervisord (stopped by its own pid)."""

    def __init__(self, root: Path, key: Ed25519PrivateKey, *, quick: bool, window_s: float) -> None:
        supervisord = shutil.which("supervisord")
        if supervisord is None:
            raise SystemExit("supervisord missing (Debian package supervisor)")
        self.layout = BoxLayout(root / "box")
        self.layout.create()
        config = default_edge_config(self.layout.data_dir)
        config["store"]["path"] = "edge.db"
        self.layout.site_config.write_text(yaml.safe_dump(config))
        run_dir = root / "sv"
        run_dir.mkdir()
        conf = run_dir / "supervisord.conf"
        conf.write_text(supervisord_conf(run_dir, supervisor_program(
            self.layout.root, start_retries=3, start_s=1, autostart=False)))
        self.proc = subprocess.Popen([supervisord, "-n", "-c", str(conf)],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.service = Supervisor(run_dir / "supervisor.sock")
        wait_for(self.service.ping, 15, what="supervisord")
        self.installer = Installer(
            self.layout, self.service, key.public_key(),
            policy=HealthPolicy(window_s=window_s, crash_loop_starts=3, crash_loop_window_s=30, poll_s=0.05),
            quiet=QuietPolicy(max_wait_s=5),
            host_site_packages=Path(site.getsitepackages()[0]) if quick else None,
        )

    def install(self, bundle: Path) -> tuple[InstallResult, float]:
        t0 = time.monotonic()
        result = self.installer.install(bundle)
        return result, time.monotonic() - t0

    def close(self) -> None:
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.kill(self.proc.pid, signal.SIGKILL)
                self.proc.wait()


def run(args: argparse.Namespace) -> dict[str, Any]:
    key = Ed25519PrivateKey.generate()
    with_deps = not args.quick
    out: dict[str, Any] = {"bench": "update", "mode": "quick" if args.quick else "full",
                           "bundle_contents": "project wheel only" if args.quick else "project + dependency wheels",
                           "bad_release": args.bad, "health_window_s": args.window_s}
    with tempfile.TemporaryDirectory(prefix="bl-bench-update-") as tmp:
        work = Path(tmp)
        log("building 1.0.0 (twice, for reproducibility) ...")
        first, build_s = build(work, key, "1.0.0", with_deps=with_deps)
        again, build_again_s = build(work, key, "1.0.0", with_deps=with_deps, tag="-again")
        upgrade, _ = build(work, key, "1.1.0", with_deps=with_deps)
        bad_override = {"sip": {"no_such_setting": 1}} if args.bad == "crash" else {"api": {"socket": ""}}
        bad, _ = build(work, key, "1.2.0", with_deps=with_deps, override=bad_override)
        out.update(build_s=round(build_s, 2), build_again_s=round(build_again_s, 2),
                   bundle_bytes=first.stat().st_size,
                   reproducible=sha256_file(first) == sha256_file(again))
        box = BenchBox(work / "root", key, quick=args.quick, window_s=args.window_s)
        try:
            log("first install 1.0.0 on a blank box ...")
            result, secs = box.install(first)
            if result.outcome != "committed":
                raise SystemExit(f"first install: {result.to_json()}")
            out["first_install_s"] = round(secs, 2)
            log("upgrade to 1.1.0 ...")
            result, secs = box.install(upgrade)
            if result.outcome != "committed":
                raise SystemExit(f"upgrade: {result.to_json()}")
            out["install_to_healthy_s"] = round(secs, 2)
            out["healthy_after_switch_s"] = round(result.timings.get("healthy_s", 0.0), 2)
            out["unpack_and_venv_s"] = round(result.timings.get("install_s", 0.0), 2)
            log(f"bad release 1.2.0 ({args.bad}) ...")
            result, secs = box.install(bad)
            if result.outcome != "rolled_back":
                raise SystemExit(f"bad release was not rolled back: {result.to_json()}")
            rollback_s = result.timings.get("rollback_s", 0.0)
            out["rollback"] = {"check": result.check, "reason": result.reason[:200]}
            out["rollback_total_s"] = round(secs, 2)
            out["rollback_s"] = round(rollback_s, 2)
            out["detect_s"] = round(secs - result.timings.get("install_s", 0.0) - rollback_s, 2)
            out["running_after_rollback"] = box.layout.load().slots[box.layout.current() or "a"].version
        finally:
            box.close()
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="project-only bundles, dependencies from this venv")
    parser.add_argument("--bad", choices=("crash", "health"), default="crash",
                        help="how the bad release fails: exits at start, or its control API is off")
    parser.add_argument("--window-s", type=float, default=10.0, help="health-check window")
    args = parser.parse_args(argv)
    t0 = time.monotonic()
    result = run(args)
    result["wall_s"] = round(time.monotonic() - t0, 1)
    emit_json(result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
