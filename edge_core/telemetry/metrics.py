"""The periodic ``metrics`` payload: the site's live figures and the host's resources.

Gauges are numbers by name: ``registrations``, ``calls_active``, ``calls_waiting``,
``agents.<state>``, ``media.<counter>``, ``sip.<counter>``, ``outbox_backlog`` and the
host's ``cpu_process_s``, ``load_1m``, ``mem_rss_bytes``, ``mem_available_bytes``,
``disk_free_bytes``, ``disk_total_bytes`` (the store's file system), ``uptime_s``.
Which kernel implementation is loaded is not a number: it travels in ``state``.
"""

from __future__ import annotations

import os
import resource
import shutil
import time
from pathlib import Path
from typing import Any

from edge_core.telemetry import protocol


def host_gauges(store_path: str | Path) -> dict[str, float]:
    """CPU, memory and disk of this process and host (os/shutil/procfs only)."""
    times = os.times()
    gauges = {
        "cpu_process_s": times.user + times.system,
        "load_1m": os.getloadavg()[0],
        "mem_rss_bytes": float(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024),
    }
    try:
        with open("/proc/self/statm") as f:
            gauges["mem_rss_bytes"] = float(int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE"))
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    gauges["mem_available_bytes"] = float(int(line.split()[1]) * 1024)
                    break
    except (OSError, ValueError, IndexError):  # not Linux: the rusage peak stands in
        pass
    directory = Path(store_path).resolve().parent
    try:
        usage = shutil.disk_usage(directory)
        gauges["disk_free_bytes"] = float(usage.free)
        gauges["disk_total_bytes"] = float(usage.total)
    except OSError:
        pass
    return gauges


def site_metrics(view: Any, store_path: str | Path, outbox_backlog: int, at: float | None = None) -> protocol.Metrics:
    """A Metrics payload from the control API's view of the daemon (see EdgeView.status)."""
    status = view.status()
    counts = status["counts"]
    gauges: dict[str, float] = {
        "registrations": float(counts["registrations"]),
        "calls_active": float(counts["calls_active"]),
        "calls_waiting": float(counts["calls_waiting"]),
        "uptime_s": float(status["uptime_s"]),
        "outbox_backlog": float(outbox_backlog),
        "accepting_calls": 1.0 if status["accepting_calls"] else 0.0,
    }
    for state, n in counts["agents"].items():
        gauges[f"agents.{state}"] = float(n)
    for name, value in status["media"].items():
        if isinstance(value, int | float) and not isinstance(value, bool):
            gauges[f"media.{name}"] = float(value)
    for group in ("transport", "core"):
        for name, value in status["sip"][group].items():
            gauges[f"sip.{group}.{name}"] = float(value)
    gauges.update(host_gauges(store_path))
    queues = {
        q["name"]: {
            "waiting": float(q["waiting"]),
            "longest_wait_s": q["longest_wait_s"],
            "service_level": q["service_level"],
            "asa_s": q["asa_s"],
            "aht_s": q["aht_s"],
            "abandon_rate": q["abandon_rate"],
            **{f"agents.{k}": float(v) for k, v in q["agents"].items()},
        }
        for q in view.queues()["queues"]
    }
    core = view.core
    trunks = {name: status.up for name, status in core.trunks.trunks.items()}
    gauges["survivable"] = 1.0 if core.mode.value == "survivable" else 0.0
    for device, reading in getattr(view, "hardware_readings", {}).items():  # UPS, sensors (hw-agent)
        for name, value in reading["values"].items():
            gauges[f"hw.{device}.{name}"] = float(value)
    return protocol.Metrics(at=time.time() if at is None else at, gauges=gauges, queues=queues, trunks=trunks)
