#!/usr/bin/env python3
"""SIP calls per second: SIPp uac -> target -> SIPp uas, highest passing call rate.

Installing the references (all from the package registries, nothing vendored):

    # sippy's b2bua_simple, a pure-Python B2BUA, in its own venv at the repo root
    python3 -m venv .venv-anchors && .venv-anchors/bin/pip install sippy
    # Kamailio 5.6, a C SIP proxy (Debian; root)
    apt-get update && apt-get install -y kamailio

``--with-references`` does both when they are missing (Kamailio only as root).
Without it, each reference is measured when it is already installed.

Method: for each target, SIPp's built-in ``uac`` places calls through the
target to SIPp's built-in ``uas`` at a fixed rate for ``--step-s`` seconds,
each call held ``--hold-ms`` (500) before the caller's BYE. The uac runs with
``-pause_msg_ign``: a 180 that overtakes the 200 over UDP (sippy's threaded
sender does this at any rate, Kamailio's workers under load) arrives during the
hold and would otherwise abort a call that RFC 3261 says is fine. A step passes when
fewer than 0.1 % of the calls fail, SIPp kept the asked rate, and, for the
edge only, SIPp saw no retransmissions. The rate rises (x2; x4 with --quick)
until a step fails, then a bisection narrows the gap. The highest passing rate is the result.

Targets:
  edge      the Branchline edge (``edge run``), ``auth_required: false``, the
            uac dials 9NUMBER, the route ``^9(\\d+)$`` sends it to the trunk
            ``pstn`` pointing at the uas
  sippy     ``b2bua_simple -l 127.0.0.1 -p PORT -n 127.0.0.1:UAS_PORT -f``
  kamailio  a stateful proxy from ../shared/anchors/kamailio-proxy.cfg
            (fallback: bench/kamailio-proxy.cfg.in), no Record-Route

Progress lines go to stdout; the last line is one JSON object:
{"edge_cps", "sippy_cps", "kamailio_cps", "edge_vs_sippy", "edge_vs_kamailio",
 "hold_ms", "step_s", "quick"}; a target that could not run is null.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import (  # noqa: E402
    ANCHORS_VENV,
    EDGE_RTP_PORTS,
    SHARED_ANCHORS,
    SIPP_MEDIA_PORTS,
    ChildProcess,
    Stopwatch,
    emit_json,
    log,
    pick_udp_ports,
    wait_udp_bound,
)

from tests.sipp import (  # noqa: E402
    EdgeProcess,
    EdgeStartError,
    Sipp,
    SippTimeout,
    default_edge_config,
    sipp_binary,
)

FAIL_RATIO_MAX = 0.001
RATE_KEPT_MIN = 0.9  # achieved / asked call rate
DIALLED = "95551234"  # 9 + number: the edge's trunk route


# ------------------------------------------------------------------ targets


class Target:
    """Something SIP calls go through. ``start`` returns its (host, port)."""

    name = "target"
    strict_retransmissions = False

    def __init__(self, workdir: Path, uas_port: int) -> None:
        self.workdir = workdir
        self.uas_port = uas_port

    def start(self) -> tuple[str, int]:
        raise NotImplementedError

    def stop(self) -> None:
        raise NotImplementedError

    def diagnostics(self) -> str:
        return ""


class ChildTarget(Target):
    """A reference run as a child process (``self.child``), stopped by its own pid."""

    child: ChildProcess | None = None

    def stop(self) -> None:
        if self.child is not None:
            self.child.stop()

    def diagnostics(self) -> str:
        return self.child.log_tail() if self.child else ""


class EdgeTarget(Target):
    name = "edge"
    strict_retransmissions = True

    def __init__(self, workdir: Path, uas_port: int, sip_port: int) -> None:
        super().__init__(workdir, uas_port)
        self.sip_port = sip_port
        self.edge: EdgeProcess | None = None
        self.runs = 0

    def start(self) -> tuple[str, int]:
        self.runs += 1
        workdir = self.workdir / f"edge{self.runs}"
        config = default_edge_config(workdir, sip_port=self.sip_port)
        config["sip"]["auth_required"] = False
        config["media"].update(rtp_port_min=EDGE_RTP_PORTS[0], rtp_port_max=EDGE_RTP_PORTS[1])
        config["trunks"] = [
            {"name": "pstn", "host": "127.0.0.1", "port": self.uas_port, "transport": "udp",
             "options_interval_s": 0}  # the SIPp UAS answers INVITEs only
        ]
        self.edge = EdgeProcess(workdir, config)
        self.edge.start(timeout_s=20.0)
        return self.edge.sip_udp

    def stop(self) -> None:
        if self.edge is not None and self.edge.running():
            self.edge.stop(timeout_s=15.0, expect_returncode=None)

    def diagnostics(self) -> str:
        return self.edge.stderr_text()[-1500:] if self.edge else ""


class SippyTarget(ChildTarget):
    name = "sippy"

    def __init__(self, workdir: Path, uas_port: int, port: int, binary: Path) -> None:
        super().__init__(workdir, uas_port)
        self.port = port
        self.binary = binary
        self.child: ChildProcess | None = None

    def start(self) -> tuple[str, int]:
        command = [
            str(self.binary), "-l", "127.0.0.1", "-p", str(self.port),
            "-n", f"127.0.0.1:{self.uas_port}", "-f",
            "-L", str(self.workdir / "b2bua_simple.log"),
        ]
        self.child = ChildProcess("sippy", command, self.workdir).start()
        assert self.child.proc is not None
        wait_udp_bound(self.port, self.child.proc, timeout_s=20.0)
        return ("127.0.0.1", self.port)



def kamailio_template() -> Path:
    shared = SHARED_ANCHORS / "kamailio-proxy.cfg"
    return shared if shared.is_file() else Path(__file__).resolve().parent / "kamailio-proxy.cfg.in"


class KamailioTarget(ChildTarget):
    name = "kamailio"

    def __init__(self, workdir: Path, uas_port: int, port: int, binary: str) -> None:
        super().__init__(workdir, uas_port)
        self.port = port
        self.binary = binary
        self.child: ChildProcess | None = None

    def start(self) -> tuple[str, int]:
        template = kamailio_template()
        cfg = self.workdir / "kamailio.cfg"
        cfg.write_text(
            template.read_text()
            .replace("LISTEN_PORT", str(self.port))
            .replace("TARGET_PORT", str(self.uas_port))
        )
        rundir = self.workdir / "run"
        rundir.mkdir(exist_ok=True)
        # -DD: stay in the foreground (workers still fork) so our pid is the main process.
        command = [
            self.binary, "-f", str(cfg), "-DD", "-E", "-P", str(rundir / "kamailio.pid"),
            "-Y", str(rundir), "-w", str(rundir), "-m", "1024", "-M", "32",
        ]
        self.child = ChildProcess("kamailio", command, self.workdir).start()
        assert self.child.proc is not None
        wait_udp_bound(self.port, self.child.proc, timeout_s=20.0)
        return ("127.0.0.1", self.port)



# ------------------------------------------------------------------ one step


@dataclass
class StepResult:
    rate: int
    calls: int
    successful: int
    failed: int
    retransmissions: int
    achieved_rate: float
    passed: bool
    why: str


def late_provisionals(errors: str) -> int:
    """Calls SIPp aborted because a provisional response overtook the 200 (UDP reordering).

    Counted as failures for every target alike (that is how the references were
    measured), but named in the progress line because it says "reordered", not "lost".
    """
    return sum(
        1 for chunk in errors.split("Aborting call on unexpected message")[1:]
        if "while pausing" in chunk[:200] and "received 'SIP/2.0 1" in chunk[:300]
    )


def run_step(target: Target, address: tuple[str, int], rate: int, args: argparse.Namespace,
             ports: dict[str, int], workdir: Path) -> StepResult:
    calls = max(1, int(rate * args.step_s))
    # A call stuck waiting for longer than recv_timeout fails instead of stalling the step.
    uas = Sipp(workdir, "uas", local_port=ports["uas"], media_port=ports["uas_media"],
               timeout_s=None, name=f"uas-{target.name}-{rate}")
    uac = Sipp(workdir, "uac", remote=address, local_port=ports["uac"],
               media_port=ports["uac_media"], service=DIALLED, calls=calls, rate=rate,
               hold_ms=args.hold_ms, recv_timeout_ms=args.recv_timeout_ms, extra_args=["-pause_msg_ign"],
               timeout_s=args.step_s + args.hold_ms / 1000 + 30, timeout_error=False,
               name=f"uac-{target.name}-{rate}")
    watch = Stopwatch()
    try:
        uas.start()
        uac.start()
        try:
            result = uac.wait()
        except SippTimeout as exc:
            result = exc.result
    finally:  # also on Ctrl-C: never leave a sipp behind
        elapsed = watch.elapsed()
        if uac.proc is not None and uac.running():
            uac.stop(grace_s=1.0)
        if uas.proc is not None:
            uas.stop(grace_s=2.0)

    created = max(result.created, 1)
    failed = result.failed + max(0, calls - result.successful - result.failed)
    # The last call is placed about one call length before sipp exits (hold plus
    # signalling, counted up to 250 ms so a lagging target is not excused); when the
    # target lags, SIPp hits its concurrent-call limit and places calls later.
    hold_s = args.hold_ms / 1000
    tail_s = min(max(result.call_length_s, hold_s), hold_s + 0.25)
    placing_s = max(elapsed - tail_s, 1e-3)
    achieved = result.created / placing_s
    reasons = []
    if failed / max(calls, created) >= FAIL_RATIO_MAX:
        late = late_provisionals(result.errors)
        detail = f" ({late} by a 1xx arriving after the 200)" if late else ""
        reasons.append(f"{failed} failed {result.failure_reasons or ''}{detail}".strip())
    if achieved < RATE_KEPT_MIN * rate:
        reasons.append(f"rate kept {achieved:.0f}/s")
    if target.strict_retransmissions and result.retransmissions:
        reasons.append(f"{result.retransmissions} retransmissions")
    return StepResult(
        rate=rate, calls=calls, successful=result.successful, failed=failed,
        retransmissions=result.retransmissions, achieved_rate=achieved,
        passed=not reasons, why="; ".join(reasons) or "ok",
    )


# ------------------------------------------------------------------ search


def search_max_rate(target: Target, args: argparse.Namespace, ports: dict[str, int],
                    workdir: Path) -> int | None:
    """Highest passing rate, or None when the target cannot be started."""
    try:
        address = target.start()
    except (EdgeStartError, RuntimeError, TimeoutError, OSError) as exc:
        log(f"[{target.name}] ERROR: could not start: {str(exc).splitlines()[0]}")
        detail = target.diagnostics() or str(exc)
        for line in detail.strip().splitlines()[-8:]:
            log(f"[{target.name}]   {line}")
        target.stop()
        return None
    log(f"[{target.name}] listening on {address[0]}:{address[1]}")
    best = 0
    lowest_fail: int | None = None
    rate = args.start_rate
    watch = Stopwatch()
    steps = 0
    try:
        needs_restart = False
        while steps < args.max_steps and watch.elapsed() < args.target_budget_s:
            steps += 1
            if needs_restart:
                # a failed step can leave a backlog: the next one gets a fresh target
                target.stop()
                address = target.start()
                needs_restart = False
            step = run_step(target, address, rate, args, ports, workdir)
            log(
                f"[{target.name}] {rate:>5} cps x {args.step_s:g}s: "
                f"{step.successful}/{step.calls} ok, {step.failed} failed, "
                f"{step.retransmissions} retrans, kept {step.achieved_rate:.0f}/s -> "
                f"{'PASS' if step.passed else 'FAIL (' + step.why + ')'}"
            )
            if step.passed:
                best = max(best, rate)
            else:
                lowest_fail = rate if lowest_fail is None else min(lowest_fail, rate)
                needs_restart = True
            if lowest_fail is None:
                if rate >= args.max_rate:
                    break
                rate = min(rate * args.factor, args.max_rate)
            else:
                low = best if best else 0
                if low == 0 and lowest_fail <= args.min_rate:
                    break
                if low and lowest_fail / low <= 1 + args.precision:
                    break
                rate = max(args.min_rate, (low + lowest_fail) // 2 if low else lowest_fail // 2)
                if rate in (low, lowest_fail):
                    break
    except (EdgeStartError, RuntimeError, TimeoutError, OSError) as exc:
        log(f"[{target.name}] ERROR during the run: {str(exc).splitlines()[0]}")
    finally:
        target.stop()
    log(f"[{target.name}] highest passing rate: {best} cps")
    return best


# ------------------------------------------------------------------ references


def ensure_sippy(install: bool) -> Path | None:
    binary = ANCHORS_VENV / "bin" / "b2bua_simple"
    if binary.exists():
        return binary
    if not install:
        log("[sippy] not installed (run with --with-references, see the docstring)")
        return None
    log("[sippy] installing into .venv-anchors ...")
    try:
        subprocess.run([sys.executable, "-m", "venv", str(ANCHORS_VENV)], check=True,
                       capture_output=True)
        subprocess.run([str(ANCHORS_VENV / "bin" / "pip"), "install", "-q", "sippy"],
                       check=True, capture_output=True, timeout=600)
    except (subprocess.SubprocessError, OSError) as exc:
        log(f"[sippy] ERROR: install failed: {exc}")
        return None
    return binary if binary.exists() else None


def ensure_kamailio(install: bool) -> str | None:
    found = shutil.which("kamailio") or (
        "/usr/sbin/kamailio" if os.access("/usr/sbin/kamailio", os.X_OK) else None
    )
    if found:
        return found
    if not install:
        log("[kamailio] not installed (run with --with-references, see the docstring)")
        return None
    if os.geteuid() != 0:
        log("[kamailio] not installed and not root: apt-get install -y kamailio")
        return None
    log("[kamailio] installing with apt-get ...")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    try:
        subprocess.run(["apt-get", "update", "-qq"], check=True, capture_output=True, env=env,
                       timeout=600)
        subprocess.run(["apt-get", "install", "-y", "-qq", "kamailio"], check=True,
                       capture_output=True, env=env, timeout=900)
    except (subprocess.SubprocessError, OSError) as exc:
        log(f"[kamailio] ERROR: install failed: {exc}")
        return None
    return shutil.which("kamailio") or "/usr/sbin/kamailio"


# ------------------------------------------------------------------ main


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true",
                        help="short steps, few rates: the whole run stays under a minute")
    parser.add_argument("--with-references", action="store_true",
                        help="install sippy (venv) and Kamailio (apt, as root) when missing")
    parser.add_argument("--targets", default="edge,sippy,kamailio",
                        help="comma-separated subset of edge,sippy,kamailio")
    parser.add_argument("--step-s", type=float, default=None, help="seconds per rate step")
    parser.add_argument("--hold-ms", type=int, default=500, help="call hold time (sipp -d)")
    parser.add_argument("--start-rate", type=int, default=None, help="first rate tried (cps)")
    parser.add_argument("--max-rate", type=int, default=None, help="highest rate tried (cps)")
    parser.add_argument("--keep", metavar="DIR", default=None,
                        help="keep sipp traces and target logs in DIR (default: a temp dir)")
    args = parser.parse_args(argv)
    if args.quick:
        args.step_s = args.step_s or 2.0
        args.start_rate = args.start_rate or 100
        args.max_rate = args.max_rate or 1600
        args.max_steps = 4
        args.factor = 4
        args.target_budget_s = 12.0
        args.recv_timeout_ms = 3000
        args.precision = 0.5
    else:
        args.step_s = args.step_s or 15.0
        args.start_rate = args.start_rate or 50
        args.max_rate = args.max_rate or 6400
        args.max_steps = 12
        args.factor = 2
        args.target_budget_s = 900.0
        args.recv_timeout_ms = 8000
        args.precision = 0.1
    args.min_rate = 5
    return args


def ratio(a: int | None, b: int | None) -> float | None:
    if a is None or not b:
        return None
    return round(a / b, 3)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    wanted = {t.strip() for t in args.targets.split(",") if t.strip()}
    results: dict[str, int | None] = {"edge": None, "sippy": None, "kamailio": None}
    if sipp_binary() is None:
        log("ERROR: sipp not found (apt-get install -y sip-tester)")
    else:
        log(f"sip_cps: hold {args.hold_ms} ms, {args.step_s:g} s per step, "
            f"pass < {FAIL_RATIO_MAX:.1%} failed, quick={args.quick}")
        factories: list[tuple[str, Callable[[Path, dict[str, int]], Target | None]]] = [
            ("edge", lambda wd, p: EdgeTarget(wd, p["uas"], p["target"])),
            ("sippy", lambda wd, p: (
                SippyTarget(wd, p["uas"], p["target"], b)
                if (b := ensure_sippy(args.with_references)) else None)),
            ("kamailio", lambda wd, p: (
                KamailioTarget(wd, p["uas"], p["target"], k)
                if (k := ensure_kamailio(args.with_references)) else None)),
        ]
        with contextlib.ExitStack() as stack:
            if args.keep:
                tmp = args.keep
                Path(tmp).mkdir(parents=True, exist_ok=True)
            else:
                tmp = stack.enter_context(tempfile.TemporaryDirectory(prefix="sip_cps-"))
            for name, factory in factories:
                if name not in wanted:
                    continue
                workdir = Path(tmp) / name
                workdir.mkdir(exist_ok=True)
                uas, uac, target = pick_udp_ports(3)
                uas_media, uac_media = pick_udp_ports(2, SIPP_MEDIA_PORTS, stride=4)
                ports = {"uas": uas, "uac": uac, "target": target,
                         "uas_media": uas_media, "uac_media": uac_media}
                made = factory(workdir, ports)
                if made is None:
                    continue
                results[name] = search_max_rate(made, args, ports, workdir)
    emit_json({
        "edge_cps": results["edge"],
        "sippy_cps": results["sippy"],
        "kamailio_cps": results["kamailio"],
        "edge_vs_sippy": ratio(results["edge"], results["sippy"]),
        "edge_vs_kamailio": ratio(results["edge"], results["kamailio"]),
        "hold_ms": args.hold_ms,
        "step_s": args.step_s,
        "quick": args.quick,
    })
    return 0


if __name__ == "__main__":
    sys.exit(main())
