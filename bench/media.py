#!/usr/bin/env python3
"""RTP media relay: calls relayed with zero loss and < 1 ms p99 added latency.

Per call (../shared/anchors/README.md): two legs; the generator has one UDP socket
per leg, the relay under test one socket per leg; 172-byte packets (RTP header +
160 bytes PCMU) every 20 ms in both directions, the generator spreading its sends
evenly over each period and stamping each packet with its send time (CLOCK_MONOTONIC).
Latency = generator send -> generator receive through the relay. Generator and
relay share the machine's cores. Each step runs ``--duration-s`` (6 s) and counts
the packets sent after ``--warmup-s`` (1 s); a step passes with zero loss and a
p99 below 1 ms.

Relays:
  c         bench/c_relay.c (epoll, recvfrom/sendto, one socket per leg, symmetric
            latching), ``gcc -O2`` at start into bench/out/: the machine's ceiling
  edge      the Branchline edge's media engine hosted by bench/engine_host.py in its
            own process: ``--edge-impl engine`` the compiled engine, ``python`` its
            pure-Python twin, ``auto`` whichever ``cython_ext.mediaengine`` loads (the
            compiled one when built); "edge_impl" says which ran
  rtpengine rtpengine userspace (Debian ``rtpengine-daemon``; ``--with-references``
            installs it as root), one ng offer + answer per call

The generator is bench/rtpgen.pyx (nogil epoll loop), built with cythonize at start
into bench/out/rtpgen-HASH/. Ports: generator 10000-15999, C relay and edge
20000-29999, rtpengine 30000-50000, its ng port a free one in 16000-19999.

Progress lines go to stdout, one JSON line per (relay, calls) step; the last line is
one JSON object: {"max_calls_zero_loss", "edge_pps", "c_relay_pps",
"p99_added_latency_ms", "rtpengine_max_calls_p99_1ms", "edge_impl", "quick", ...}.
Relay CPU is utime+stime of its process (/proc/PID/stat) per wall second;
"others_cpu" is what the rest of the machine burned meanwhile (a busy neighbour
makes every figure worse; such steps say "contended"). Latency is taken from the
kernel's receive timestamp on the generator's socket, so the generator batches its
reads. A step where the generator could not keep its schedule does not pass. On a
machine shared with other work, ``--realtime`` (SCHED_FIFO, root) keeps CPU hogs
from delaying each wake-up; it was used for the generator check below.

Generator check (2 vCPU VM, others' test suites running): generator -> C relay,
1000 calls, --realtime: 0 loss, p50 0.03 ms, p99 2.2 ms, relay 0.59 and generator
0.66 CPU/s (README: 0 loss, p50 0.23 ms, p99 0.45 ms). The generator costs about
what the relay costs (same syscalls per packet; perf: 55 % sendto, 15 % recvmsg,
9 % epoll_wait, ~1 % its own code).
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import importlib.util
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import Stopwatch, emit_json, log  # noqa: E402
from _media_relays import CRelay, EdgeRelay, Relay, RtpengineRelay, ensure_rtpengine  # noqa: E402

BENCH_DIR = Path(__file__).resolve().parent
OUT_DIR = BENCH_DIR / "out"
GENERATOR_PORTS = (10000, 15999)
PASS_P99_MS = 1.0
OVERLOADED_LOSS = 0.05  # a step losing more ends that relay's ladder
PERIOD_S = 0.020
GENERATOR_KEPT_MIN = 0.99  # of the scheduled packets sent in the window
CONTENDED_OTHERS_CPU = 0.25  # cores used by other processes: the figures are not clean
CLK_TCK = os.sysconf("SC_CLK_TCK")


# ------------------------------------------------------------------ builds


def build_generator() -> Any:
    """Cythonize bench/rtpgen.pyx into bench/out/rtpgen-HASH/ (cached) and import it."""
    source = BENCH_DIR / "rtpgen.pyx"
    digest = hashlib.sha256(source.read_bytes()).hexdigest()[:12]
    build_dir = OUT_DIR / f"rtpgen-{digest}"
    built = sorted(build_dir.glob("rtpgen*.so"))
    if not built:
        build_dir.mkdir(parents=True, exist_ok=True)
        shutil.copy(source, build_dir / "rtpgen.pyx")
        subprocess.run(
            [sys.executable, "-m", "Cython.Build.Cythonize", "-i", "-3", "rtpgen.pyx"],
            cwd=build_dir, check=True, capture_output=True, timeout=180,
        )
        built = sorted(build_dir.glob("rtpgen*.so"))
    spec = importlib.util.spec_from_file_location("rtpgen", built[0])
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def build_c_relay(out_dir: Path = OUT_DIR) -> Path:
    source = BENCH_DIR / "c_relay.c"
    digest = hashlib.sha256(source.read_bytes()).hexdigest()[:12]
    binary = out_dir / f"c_relay-{digest}"
    if not binary.exists():
        out_dir.mkdir(parents=True, exist_ok=True)
        subprocess.run(["gcc", "-O2", "-Wall", "-o", str(binary), str(source)],
                       check=True, capture_output=True, timeout=60)
    return binary


# ------------------------------------------------------------------ measurement


def histogram_percentile(histogram: Sequence[int], q: float) -> float | None:
    """The ``q`` quantile (0..1) of a histogram with 1-unit bins, nearest rank.

    Bin i holds samples in [i, i+1); the answer is the bin's upper edge, so a
    reported p99 is never optimistic. None when the histogram is empty.
    """
    total = sum(histogram)
    if total == 0:
        return None
    rank = max(1, -(-int(q * total * 1_000_000) // 1_000_000))  # ceil without float drift
    seen = 0
    for value, count in enumerate(histogram):
        seen += count
        if seen >= rank:
            return float(value + 1)
    return float(len(histogram))


def process_cpu_s(pid: int) -> float:
    """utime + stime of a whole process (all threads), seconds."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def machine_cpu_s() -> tuple[float, float, float]:
    """Whole machine: (user+nice+system, irq+softirq, steal) seconds since boot.

    Softirq time (the loopback delivery of every packet, much of it) is charged to no
    process; steal is what the hypervisor took. Both are reported apart from
    "others" (processes other than the relay and this benchmark).
    """
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:9]]
    return (v[0] + v[1] + v[2]) / CLK_TCK, (v[5] + v[6]) / CLK_TCK, v[7] / CLK_TCK


def bind_generator_sockets(count: int) -> list[socket.socket]:
    """``count`` non-blocking UDP sockets on free ports of GENERATOR_PORTS."""
    sockets: list[socket.socket] = []
    try:
        for port in range(GENERATOR_PORTS[0], GENERATOR_PORTS[1] + 1):
            if len(sockets) == count:
                break
            sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                sock.close()
                continue
            sock.setblocking(False)
            sockets.append(sock)
        if len(sockets) < count:
            raise RuntimeError(f"only {len(sockets)} of {count} generator ports free")
    except BaseException:
        for sock in sockets:
            sock.close()
        raise
    return sockets


def run_step(rtpgen: Any, relay: Relay, calls: int, args: argparse.Namespace) -> dict[str, Any]:
    sockets = bind_generator_sockets(2 * calls)
    try:
        watch = Stopwatch()
        dest_ports = relay.start(calls, [s.getsockname()[1] for s in sockets])
        setup_s = watch.elapsed()
        outcome: dict[str, Any] = {}

        def generate() -> None:
            try:
                outcome["result"] = rtpgen.run(
                    [s.fileno() for s in sockets], dest_ports,
                    duration_s=args.duration_s, warmup_s=args.warmup_s,
                    drain_s=args.drain_s, tick_us=args.tick_us)
            except BaseException as exc:  # reported by the main thread
                outcome["error"] = exc

        thread = threading.Thread(target=generate, name="rtpgen")
        thread.start()
        # The generator starts sending ~5 ms after the call; sample around its window.
        time.sleep(0.005 + args.warmup_s)
        pid = relay.pid()
        cpu0, busy0, self0, t0 = (process_cpu_s(pid), machine_cpu_s(),
                                  process_cpu_s(os.getpid()), time.monotonic())
        time.sleep(max(0.0, args.duration_s - args.warmup_s))
        cpu1, busy1, self1, t1 = (process_cpu_s(pid), machine_cpu_s(),
                                  process_cpu_s(os.getpid()), time.monotonic())
        thread.join()
        relay_counters = relay.stop()
    finally:
        relay.stop()
        for sock in sockets:
            sock.close()
    if "error" in outcome:
        raise outcome["error"]
    result = outcome["result"]
    histogram = result.pop("histogram")
    wall = t1 - t0
    relay_cpu = cpu1 - cpu0
    sent, received = result["sent"], result["received"]
    loss = max(0, sent - received)
    p50, p99 = histogram_percentile(histogram, 0.50), histogram_percentile(histogram, 0.99)
    p99_ms = None if p99 is None else p99 / 1000
    step = {
        "relay": relay.name, "calls": calls, "sent": sent, "received": received,
        "scheduled": round(2 * calls * result["window_s"] / PERIOD_S),
        "loss": loss, "loss_ratio": round(loss / sent, 6) if sent else None,
        "p50_ms": None if p50 is None else p50 / 1000, "p99_ms": p99_ms,
        "max_ms": _max_ms(histogram),
        "relayed_pps": round(received / result["window_s"]),
        "relay_cpu": round(relay_cpu / wall, 3),
        "generator_cpu": round(result["generator_cpu_s"] / result["window_s"], 3),
        "others_cpu": round(max(0.0, busy1[0] - busy0[0] - relay_cpu - (self1 - self0)) / wall, 3),
        "softirq_cpu": round((busy1[1] - busy0[1]) / wall, 3),
        "steal_cpu": round((busy1[2] - busy0[2]) / wall, 3),
        "late_sends_1ms": result["late_sends_1ms"], "max_send_lag_ms": result["max_send_lag_us"] / 1000,
        "send_errors": result["send_errors"], "setup_s": round(setup_s, 2),
    }
    # A starved generator sends less and burstier than asked: such a step proves nothing.
    scheduled = round(2 * calls * result["window_s"] / PERIOD_S)
    step["generator_kept_pace"] = sent >= GENERATOR_KEPT_MIN * scheduled
    step["contended"] = step["others_cpu"] > CONTENDED_OTHERS_CPU
    step["passed"] = (bool(sent) and loss == 0 and p99_ms is not None and p99_ms < PASS_P99_MS
                      and step["generator_kept_pace"])
    if relay_counters:
        step["relay_counters"] = relay_counters
    return step


def _max_ms(histogram: Sequence[int]) -> float | None:
    for value in range(len(histogram) - 1, -1, -1):
        if histogram[value]:
            return (value + 1) / 1000
    return None


# ------------------------------------------------------------------ ladder


def run_ladder(rtpgen: Any, relay: Relay, ladder: list[int],
               args: argparse.Namespace) -> list[dict[str, Any]]:
    steps: list[dict[str, Any]] = []
    for calls in ladder:
        try:
            step = run_step(rtpgen, relay, calls, args)
        except Exception as exc:  # one broken step must not lose the others
            log(f"[{relay.name}] {calls} calls: ERROR {exc}\n{relay.diagnostics()}")
            steps.append({"relay": relay.name, "calls": calls, "error": str(exc), "passed": False})
            break
        steps.append(step)
        log(f"[{relay.name}] {calls} calls: {step['received']}/{step['sent']} packets, "
            f"loss {step['loss']}, p50 {step['p50_ms']} ms, p99 {step['p99_ms']} ms, "
            f"relay cpu {step['relay_cpu']}, generator cpu {step['generator_cpu']}, "
            f"softirq {step['softirq_cpu']}, others {step['others_cpu']}, steal {step['steal_cpu']}"
            f" -> {'pass' if step['passed'] else 'FAIL'}"
            f"{'' if step['generator_kept_pace'] else ' (generator behind schedule)'}"
            f"{' (machine busy with other work)' if step['contended'] else ''}")
        print(json.dumps(step), flush=True)
        if not step["sent"] or step["loss"] / step["sent"] > OVERLOADED_LOSS or (
                step["sent"] < 0.5 * step["scheduled"]):
            log(f"[{relay.name}] overloaded at {calls} calls: higher steps skipped")
            break
    return steps


def summarize(name: str, steps: list[dict[str, Any]]) -> dict[str, Any]:
    passing = [s for s in steps if s.get("passed")]
    best = max(passing, key=lambda s: s["calls"]) if passing else None
    return {
        "max_calls_zero_loss": best["calls"] if best else None,
        "pps_at_best": best["relayed_pps"] if best else None,
        "relay_cpu_at_best": best["relay_cpu"] if best else None,
        "steps": [{k: s.get(k) for k in ("calls", "loss", "p50_ms", "p99_ms", "relayed_pps",
                                          "relay_cpu", "generator_cpu", "softirq_cpu", "others_cpu",
                                          "generator_kept_pace", "contended", "passed",
                                          "error") if k in s} for s in steps],
    }


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true",
                        help="3 s steps, 100/500/1000 calls: the whole run stays under a minute")
    parser.add_argument("--with-references", action="store_true",
                        help="apt-get install rtpengine-daemon when missing (root)")
    parser.add_argument("--relays", default="c,edge,rtpengine",
                        help="comma-separated subset of c,edge,rtpengine")
    parser.add_argument("--calls", default=None, help="comma-separated ladder of call counts")
    parser.add_argument("--duration-s", type=float, default=None)
    parser.add_argument("--warmup-s", type=float, default=None)
    parser.add_argument("--drain-s", type=float, default=0.2,
                        help="receive for this long after the last send")
    parser.add_argument("--tick-us", type=int, default=100,
                        help="shortest generator sleep; sends due meanwhile go out together")
    parser.add_argument("--edge-impl", choices=("auto", "engine", "python"), default="auto",
                        help="edge relay: the compiled media engine, its pure-Python twin, "
                             "or whichever cython_ext.mediaengine loads")
    parser.add_argument("--nice", type=int, default=0,
                        help="niceness for this run and its relays (negative needs root): "
                             "on a machine shared with other work, e.g. -5")
    parser.add_argument("--realtime", action="store_true",
                        help="SCHED_FIFO (root) for the generator and the relays: on a machine "
                             "busy with other work, where nice does not stop CPU hogs from "
                             "delaying every wake-up; the kernel's RT throttling still leaves "
                             "others 5%% of each core")
    parser.add_argument("--keep", metavar="DIR", default=None, help="keep relay logs in DIR")
    args = parser.parse_args(argv)
    default_ladder = "100,500,1000" if args.quick else "100,250,500,1000,2000"
    args.ladder = [int(n) for n in (args.calls or default_ladder).split(",")]
    args.duration_s = args.duration_s or (3.0 if args.quick else 6.0)
    args.warmup_s = args.warmup_s if args.warmup_s is not None else (0.5 if args.quick else 1.0)
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    wanted = [r.strip() for r in args.relays.split(",") if r.strip()]
    if args.nice:
        os.setpriority(os.PRIO_PROCESS, 0, args.nice)  # children inherit it
    if args.realtime:
        os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(10))  # and this too
    watch = Stopwatch()
    results: dict[str, list[dict[str, Any]]] = {}
    edge_impl: str | None = None
    rtpgen = build_generator()
    log(f"media: {args.duration_s:g} s steps ({args.warmup_s:g} s warm-up), calls {args.ladder}, "
        f"pass = 0 loss and p99 < {PASS_P99_MS:g} ms, {os.cpu_count()} cores, quick={args.quick} "
        f"(generator built in {watch.elapsed():.1f} s)")
    with contextlib.ExitStack() as stack:
        if args.keep:
            workdir = Path(args.keep)
            workdir.mkdir(parents=True, exist_ok=True)
        else:
            workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="media-")))
        for name in wanted:
            relay: Relay | None
            if name == "c":
                relay = CRelay(workdir, build_c_relay())
            elif name == "edge":
                relay = EdgeRelay(workdir, args.edge_impl)
            elif name == "rtpengine":
                binary = ensure_rtpengine(args.with_references)
                relay = RtpengineRelay(workdir, binary) if binary else None
                if relay is None:
                    log("[rtpengine] not installed (--with-references installs it as root)")
            else:
                log(f"unknown relay {name!r} skipped")
                relay = None
            if relay is None:
                continue
            try:
                results[name] = run_ladder(rtpgen, relay, args.ladder, args)
            finally:
                relay.stop()
            if isinstance(relay, EdgeRelay):
                edge_impl = relay.impl
    summaries = {name: summarize(name, steps) for name, steps in results.items()}
    edge = summaries.get("edge", {})
    edge_1000 = next((s for s in results.get("edge", []) if s["calls"] == 1000 and "p99_ms" in s), None)
    emit_json({
        "max_calls_zero_loss": edge.get("max_calls_zero_loss"),
        "edge_pps": edge.get("pps_at_best"),
        "c_relay_pps": summaries.get("c", {}).get("pps_at_best"),
        "p99_added_latency_ms": edge_1000["p99_ms"] if edge_1000 else None,
        "rtpengine_max_calls_p99_1ms": summaries.get("rtpengine", {}).get("max_calls_zero_loss"),
        "c_relay_max_calls_zero_loss": summaries.get("c", {}).get("max_calls_zero_loss"),
        "edge_impl": edge_impl,
        "quick": args.quick,
        "nice": args.nice,
        "realtime": args.realtime,
        "duration_s": args.duration_s,
        "warmup_s": args.warmup_s,
        "elapsed_s": round(watch.elapsed(), 1),
        "contended_steps": sum(1 for steps in results.values() for s in steps if s.get("contended")),
        "relays": summaries,
    })
    return 0


if __name__ == "__main__":
    sys.exit(main())
