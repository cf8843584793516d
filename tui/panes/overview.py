"""Overview: site, version, uptime, mode, WAN and fleet, trunks, phones, calls, service
level, alarms and hardware (front panel, UPS and sensors, as the hardware agent reports
them to the edge; "not reported" without an agent)."""

from __future__ import annotations

from typing import Any, ClassVar

from textual.app import ComposeResult
from textual.widgets import Static

from tui.format import duration, mode_line, percent, updown
from tui.panes import Pane

NOT_REPORTED = "not reported"


class OverviewPane(Pane):
    KINDS: ClassVar[tuple[str, ...]] = ("status", "trunks", "queues", "fleet", "hardware")

    def __init__(self, **kw: Any) -> None:
        super().__init__(**kw)
        self.data: dict[str, Any] = {}

    def compose(self) -> ComposeResult:
        body = Static("waiting for the edge…", markup=False, id="overview-body")
        body.can_focus = True
        yield body

    def focus_main(self) -> None:
        self.query_one("#overview-body", Static).focus()

    def show(self, kind: str, data: Any) -> None:
        self.data[kind] = data
        self.query_one("#overview-body", Static).update(self.render_text())

    def render_text(self) -> str:
        status = self.data.get("status")
        if not status:
            return "waiting for the edge…"
        site, mode, counts = status.get("site", {}), status.get("mode", {}), status.get("counts", {})
        trunks = (self.data.get("trunks") or {}).get("trunks", [])
        down = [t["name"] for t in trunks if not t.get("up")]
        queues = (self.data.get("queues") or {}).get("queues", [])
        levels = [q["service_level"] for q in queues if q.get("service_level") is not None]
        fleet = self.data.get("fleet")
        if fleet is None:
            fleet_text = "checking…"
        elif not fleet.get("enabled"):
            fleet_text = "telemetry off"
        else:
            fleet_text = f"{'connected' if fleet.get('connected') else 'NOT connected'} ({fleet.get('broker', '?')})"
        agents = counts.get("agents", {})
        maintenance = "ON — new calls refused" if status.get("maintenance") else "off"
        if not status.get("accepting_calls", True) and not status.get("maintenance"):
            maintenance = "off, but new calls are refused (stopping?)"
        lines = [
            ("Site", f"{site.get('name', '?')} ({site.get('id', '?')}), {site.get('timezone', '')}"),
            ("Software", f"{status.get('version', '?')}, up {duration(status.get('uptime_s'))}, "
                         f"media {status.get('media', {}).get('implementation', '?')}"),
            ("Mode", mode_line(mode)),
            ("WAN", updown(mode.get("wan_up"))),
            ("Fleet", fleet_text),
            ("Maintenance", maintenance),
            ("Trunks", f"{len(trunks) - len(down)} up, {len(down)} down"
                       + (f": {', '.join(down)}" if down else "")),
            ("Phones", f"{counts.get('registrations', 0)} registered"),
            ("Calls", f"{counts.get('calls_active', 0)} active, {counts.get('calls_waiting', 0)} waiting"),
            ("Service level", percent(min(levels)) + " (worst queue)" if levels else "-"),
            ("Agents", ", ".join(f"{k} {v}" for k, v in sorted(agents.items())) or "none logged in"),
            *self.hardware_lines(),
        ]  # fmt: skip
        return "\n".join(f"{label:<14}{value}" for label, value in lines)

    def hardware_lines(self) -> list[tuple[str, str]]:
        hw = self.data.get("hardware")
        if not hw or hw.get("agent") != "reporting":
            return [("Alarms", NOT_REPORTED), ("Hardware", NOT_REPORTED)]
        alarms = hw.get("alarms", [])
        by_severity: dict[str, int] = {}
        for alarm in alarms:
            by_severity[alarm["severity"]] = by_severity.get(alarm["severity"], 0) + 1
        alarm_text = ", ".join(f"{n} {sev}" for sev, n in by_severity.items()) or "none"
        if alarms:
            alarm_text += f" — {alarms[0].get('kind', '?')} {alarms[0].get('subject', '')}".rstrip()
        panel = hw.get("panel") or {}
        lines = [("Alarms", alarm_text),
                 ("Panel", (f"link {'up' if panel.get('link_up') else 'DOWN'}, watchdog {panel.get('watchdog') or '?'}, "
                            f"bypass relay {'ENGAGED' if panel.get('relay') else 'off'}") if panel else "-")]  # fmt: skip
        for device, reading in (hw.get("readings") or {}).items():
            values = ", ".join(f"{k} {v:g}" for k, v in sorted(reading.get("values", {}).items())[:4])
            lines.append((f"  {device}"[:13], values or "-"))
        return lines
