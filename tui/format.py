"""Plain-text formatting shared by the panes: every state is a word (and a symbol),
never only a colour, so the console reads the same on a monochrome terminal."""

from __future__ import annotations

import difflib
import time
from typing import Any

import yaml

UP, DOWN, UNKNOWN = "▲ up", "▼ DOWN", "? unknown"


def duration(seconds: float | None) -> str:
    """``42s``, ``5m07s``, ``3h02m``, ``2d04h``; ``-`` for None."""
    if seconds is None:
        return "-"
    s = int(max(0.0, seconds))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    if s < 86400:
        return f"{s // 3600}h{s % 3600 // 60:02d}m"
    return f"{s // 86400}d{s % 86400 // 3600:02d}h"


def updown(value: bool | None) -> str:
    return UNKNOWN if value is None else UP if value else DOWN


def percent(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.0f} %"


def number(value: Any, unit: str = "", digits: int = 1) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.{digits}f}{unit}"
    return f"{value}{unit}"


def mode_line(mode: dict[str, Any] | None) -> str:
    """``NORMAL for 5m07s`` / ``SURVIVABLE for 12s (drill until 10:42:00)``."""
    if not mode:
        return "unknown"
    text = f"{str(mode.get('mode', '?')).upper()} for {duration(mode.get('for_s'))}"
    if mode.get("drill_until"):
        text += f" (drill until {str(mode['drill_until'])[11:19]})"
    return text


def matches(needle: str, *cells: Any) -> bool:
    """Case-insensitive substring filter over a row's cells; every word must match."""
    if not needle.strip():
        return True
    hay = " ".join("" if c is None else str(c) for c in cells).lower()
    return all(word in hay for word in needle.lower().split())


def config_yaml(config: Any) -> str:
    return yaml.safe_dump(config, sort_keys=True, default_flow_style=False, allow_unicode=True)


def config_diff(running: Any, new: Any, *, context: int = 2) -> list[str]:
    """Unified diff of two (redacted, normalized) site configs as YAML lines; empty when
    they are the same. Lines start with ``+``/``-``/`` ``/``@@``: readable without colour."""
    old_lines = config_yaml(running).splitlines()
    new_lines = config_yaml(new).splitlines()
    return list(difflib.unified_diff(old_lines, new_lines, "running", "file", n=context, lineterm=""))


def event_line(event: dict[str, Any]) -> str:
    """One event of the stream as a line of the log (without its ``seq`` and ``time``)."""
    kind = str(event.get("type", "?"))
    rest = {k: v for k, v in event.items() if k not in ("type", "seq", "time") and v not in (None, "", [])}
    if kind == "stats":
        counts = rest.get("counts", {})
        return (f"stats     calls {counts.get('calls_active', 0)} waiting {counts.get('calls_waiting', 0)} "
                f"phones {counts.get('registrations', 0)}")  # fmt: skip
    return f"{kind:<9} " + " ".join(f"{k}={v}" for k, v in rest.items())


def local_time(at: float | None, *, date: bool = True) -> str:
    """A UNIX time as the box's local time, ``2024-05-01 10:42:07`` (``10:42:07``
    without the date); ``-`` for None."""
    if at is None:
        return "-"
    return time.strftime("%Y-%m-%d %H:%M:%S" if date else "%H:%M:%S", time.localtime(at))


def software_event_line(entry: dict[str, Any]) -> str:
    """One install event of ``GET /v1/software``'s history: local time, event, slot,
    version, the failing check and the first line of the reason."""
    reason = str(entry.get("reason") or "").strip().splitlines()
    check = entry.get("check")
    why = f"{check}: " if check else ""
    why += reason[0] if reason else ""
    return (f"{local_time(entry.get('at'))}  {str(entry.get('event', '?')):<11} "
            f"{str(entry.get('slot') or '-'):<2} {entry.get('version') or '?'}" + (f"  {why}" if why else ""))  # fmt: skip
