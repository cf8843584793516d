"""``branchline hw-agent``: the process that ties the appliance's hardware to the edge.

It reaches the edge only through its local control API (HTTP/JSON on the unix socket):

* follows ``/v1/status`` (every ``status_interval_s``, and at once on a ``mode``,
  ``maintenance``, ``trunk`` or ``config_applied`` event from ``/v1/events``) and turns
  it into the front panel's state (:func:`panel_state`: LEDs power, WAN, survivable,
  alarm; the display's site, mode and top alarm) and the watchdog heartbeat's health
  flag (:func:`edge_healthy`);
* turns the panel's confirmed drill request into ``POST /v1/drill`` and shows the answer;
* runs the Modbus :class:`~appliance.host.monitor.HardwareMonitor` (readings and alarms
  to ``/v1/hardware/...``, the UPS shutdown: maintenance on, outbox flushed);
* reports the panel link and the MCU's watchdog to ``PUT /v1/hardware/panel``.

The edge dying is not the agent's end: heartbeats go on saying "unhealthy" (the MCU
engages the PSTN bypass but does not reset a host that is alive), requests fail and are
retried, and when a (new) edge answers again the agent re-sends what it lost: active
alarms, readings, the panel, and maintenance if the UPS shutdown fired. Only a hung or
dead host (no agent) makes the MCU miss heartbeats and pulse the reset line.
Everything runs on one event loop and nothing in it blocks.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from typing import Any

import httpx

from appliance.firmware import frame, messages
from appliance.host.alarms import AlarmChange
from appliance.host.config import HardwareConfig
from appliance.host.monitor import SEVERITY_RANK, EdgeApiActions, HardwareMonitor
from appliance.host.panel_link import PanelLink

log = logging.getLogger(__name__)

WAKE_EVENTS = frozenset({"mode", "maintenance", "trunk", "config_applied", "closed"})
"""Event-stream types after which ``/v1/status`` is read again at once."""


def edge_healthy(status: dict[str, Any] | None) -> bool:
    """The heartbeat's flag: the API answered and the edge takes calls, or it refuses
    them because it was put in maintenance on purpose (not because it is stopping)."""
    if status is None:
        return False
    return bool(status.get("accepting_calls") or status.get("maintenance"))


def panel_mode(status: dict[str, Any] | None) -> str:
    """What the panel calls the edge's mode; the firmware's LED table keys on these."""
    if status is None:
        return "edge down"
    mode = status.get("mode") or {}
    if mode.get("mode") == "survivable":
        return "drill" if mode.get("drill_until") else "survivable"
    if status.get("maintenance"):
        return "maintenance"
    return str(mode.get("mode", "normal"))


def _power(config: HardwareConfig, readings: dict[str, dict[str, float]], shutdown_fired: bool) -> str:
    ups = config.shutdown.device if config.shutdown else next(
        (d.name for d in config.modbus if d.kind == "ups"), None)  # fmt: skip
    values = readings.get(ups or "", {})
    if shutdown_fired:
        return "low"
    if config.shutdown and values.get(config.shutdown.value, float("inf")) < config.shutdown.below_s:
        return "low"
    return "battery" if values.get("on_battery") else "mains"


def _reading_page(config: HardwareConfig, device: str, values: dict[str, float]) -> list[str]:
    """A display page for a device: its name, then its values with units (scrolling)."""
    units = {r.name: r.unit for d in config.modbus if d.name == device for r in d.registers}
    text = " ".join(f"{name} {value:g}{units.get(name, '')}" for name, value in values.items())
    return [device[:16], text[:64]]


def panel_state(config: HardwareConfig, status: dict[str, Any] | None, site: str,
                alarms: list[AlarmChange], readings: dict[str, dict[str, float]],
                shutdown_fired: bool = False) -> dict[str, Any]:  # fmt: skip
    """The PANEL message body (see ``appliance.firmware.messages``), trimmed to fit one
    frame: reading pages are dropped first, then the alarm text is shortened."""
    top = max(alarms, key=lambda a: SEVERITY_RANK.get(a.severity, 0), default=None)
    if status is None:
        alarm, severity = "edge API not answering", "critical"
    elif top is not None:
        alarm, severity = top.message, top.severity
    else:
        alarm, severity = "", "none"
    wan_up = status is None or bool((status.get("mode") or {}).get("wan_up", True))
    state: dict[str, Any] = {
        "site": site[:48], "mode": panel_mode(status), "wan": "up" if wan_up else "down",
        "power": _power(config, readings, shutdown_fired), "alarm": alarm[:80], "severity": severity,
        "pages": [_reading_page(config, d, v) for d, v in sorted(readings.items())],
    }  # fmt: skip
    while len(messages.encode(state)) > frame.MAX_BODY and state["pages"]:
        state["pages"].pop()
    if len(messages.encode(state)) > frame.MAX_BODY:
        state["alarm"] = state["alarm"][:32]
        state["site"] = state["site"][:16]
    return state


class HardwareAgent:
    """Runs until cancelled; see the module docstring."""

    def __init__(self, config: HardwareConfig, socket_path: str) -> None:
        self.config = config
        self.socket_path = socket_path
        self.client = httpx.AsyncClient(transport=httpx.AsyncHTTPTransport(uds=socket_path),
                                        base_url="http://edge", timeout=config.api_timeout_s)  # fmt: skip
        self.api = EdgeApiActions(socket_path, flush_timeout_s=config.flush_timeout_s, client=self.client)
        self.monitor = HardwareMonitor(config, self, on_change=self.refresh_panel)
        self.panel = PanelLink(config.panel, self._on_panel_message) if config.panel else None
        if self.panel is not None:
            self.panel.set_healthy(False)  # until the edge has answered
        self.status: dict[str, Any] | None = None
        """The edge's last ``/v1/status``; None while it does not answer."""
        self.site = "Branchline"
        self.edge_started: str | None = None
        """``started`` of the edge last seen: a change means a new edge process."""
        self.unsent: dict[tuple[str, str], AlarmChange] = {}
        """Alarm changes the edge did not take (down): sent again when it answers."""
        self.drills = 0
        self._wake = asyncio.Event()
        self._panel_reported: dict[str, Any] | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    # -- EdgeActions for the monitor: remember what did not get through ------------------
    async def alarm(self, change: AlarmChange) -> None:
        key = (change.device, change.alarm)
        try:
            await self.api.alarm(change)
        except httpx.HTTPError:
            self.unsent[key] = change
            raise
        self.unsent.pop(key, None)

    async def report_readings(self, device: str, values: dict[str, float]) -> None:
        if self.status is not None:  # the latest are re-sent on reconnection anyway
            await self.api.report_readings(device, values)

    async def maintenance(self, on: bool, reason: str) -> None:
        await self.api.maintenance(on, reason)
        self._wake.set()

    async def flush_outbox(self) -> None:
        await self.api.flush_outbox()

    # -- the loops --------------------------------------------------------------------------
    async def run(self) -> None:
        loops = [self._status_loop(), self._events_loop(), self.monitor.run()]
        if self.panel is not None:
            loops.append(self.panel.run())
        tasks = [asyncio.create_task(c) for c in loops]
        try:
            await asyncio.gather(*tasks)
        finally:
            for t in [*tasks, *self._tasks]:
                t.cancel()
            for t in [*tasks, *self._tasks]:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await t
            await self.client.aclose()

    async def _status_loop(self) -> None:
        while True:
            self._wake.clear()
            await self.poll_status()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.config.status_interval_s)

    async def poll_status(self) -> None:
        """Read ``/v1/status``; health, panel, and a resync when a (new) edge answers."""
        was_down = self.status is None
        try:
            resp = await self.client.get("/v1/status")
            resp.raise_for_status()
            status: dict[str, Any] | None = resp.json()
        except (httpx.HTTPError, ValueError) as exc:
            if not was_down:
                log.warning("edge API not answering: %s", exc)
            status = None
        self.status = status
        if self.panel is not None:
            self.panel.set_healthy(edge_healthy(status))
        if status is not None:
            self.site = str((status.get("site") or {}).get("name") or self.site)
            started = status.get("started")
            restarted = started != self.edge_started
            self.edge_started = started
            if restarted or was_down:
                log.info("edge answering (%s)", "new edge process" if restarted else "again")
                await self._resync(restarted)
            await self._report_panel()
        self.refresh_panel()

    async def _resync(self, restarted: bool) -> None:
        """Give the edge what it missed: a new edge knows nothing of the hardware."""
        keys = set(self.unsent) | (set(self.monitor.active) if restarted else set())
        changes = [self.monitor.active.get(k) or self.unsent[k] for k in sorted(keys)]
        try:
            for change in changes:
                await self.alarm(change)
            for device, values in self.monitor.readings().items():
                await self.api.report_readings(device, values)
            guard = self.monitor.guard
            in_maintenance = self.status is not None and self.status.get("maintenance")
            if guard is not None and guard.fired and not in_maintenance:  # the edge missed it
                await self.api.maintenance(True, f"UPS {guard.config.device}: runtime low (still)")
        except httpx.HTTPError as exc:
            log.warning("resync with the edge: %s", exc)
        self._panel_reported = None

    async def _report_panel(self) -> None:
        if self.panel is None:
            return
        st = self.panel.last_status
        report = {"port": self.panel.config.port, "connected": self.panel.connected.is_set(),
                  "link_up": self.panel.link_up.is_set(), "watchdog": st.get("watchdog"),
                  "relay": st.get("relay"), "resets": st.get("resets")}  # fmt: skip
        if report == self._panel_reported:
            return
        try:
            resp = await self.client.put("/v1/hardware/panel", json=report)
            resp.raise_for_status()
            self._panel_reported = report
        except httpx.HTTPError as exc:
            log.warning("reporting the panel: %s", exc)

    async def _events_loop(self) -> None:
        """Follow the event stream; reconnect every ``status_interval_s`` when it breaks."""
        timeout = httpx.Timeout(self.config.api_timeout_s, read=None)  # keepalives are the edge's
        while True:
            try:
                async with self.client.stream("GET", "/v1/events", timeout=timeout) as resp:
                    resp.raise_for_status()
                    self._wake.set()  # what happened while we were away: read it now
                    async for line in resp.aiter_lines():
                        if line.startswith("data:"):
                            self._on_event(json.loads(line[5:]))
            except (httpx.HTTPError, ValueError) as exc:
                log.debug("event stream: %s", exc)
            await asyncio.sleep(self.config.status_interval_s)

    def _on_event(self, event: dict[str, Any]) -> None:
        if event.get("type") in WAKE_EVENTS:
            self._wake.set()

    # -- the front panel ----------------------------------------------------------------------
    def refresh_panel(self) -> None:
        if self.panel is None:
            return
        guard = self.monitor.guard
        self.panel.set_panel(panel_state(self.config, self.status, self.site,
                                         list(self.monitor.active.values()), self.monitor.readings(),
                                         guard is not None and guard.fired))  # fmt: skip

    def _on_panel_message(self, name: str, body: dict[str, Any]) -> None:
        if name == "drill_request":
            self._spawn(self._drill())
        elif name == "status":
            self._wake.set()  # report the watchdog's new state to the edge
        elif name == "button":
            log.info("panel button %s (%s)", body.get("button"), body.get("press"))

    def _spawn(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _drill(self) -> None:
        """The technician confirmed a drill on the panel: ask the edge, show its answer."""
        assert self.panel is not None
        seconds = self.config.drill_s
        try:
            resp = await self.client.post("/v1/drill", json={"seconds": seconds})
            resp.raise_for_status()
            ok, text = True, f"survivable {seconds / 60:g} min"
            self.drills += 1
        except httpx.HTTPStatusError as exc:
            ok, text = False, f"edge said {exc.response.status_code}"
        except httpx.HTTPError:
            ok, text = False, "edge not answering"
        log.warning("drill from the front panel: %s", text if ok else f"refused ({text})")
        self.panel.send_drill_result(ok, text)
        self._wake.set()


async def run_agent(config: HardwareConfig, socket_path: str) -> None:
    """Run a :class:`HardwareAgent` until SIGTERM/SIGINT; then close the port and client."""
    import signal

    loop = asyncio.get_running_loop()
    agent = HardwareAgent(config, socket_path)
    task = asyncio.create_task(agent.run())
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, task.cancel)
    log.info("hw-agent: edge API %s, panel %s, %d Modbus device(s)", socket_path,
             config.panel.port if config.panel else "none", len(config.modbus))  # fmt: skip
    with contextlib.suppress(asyncio.CancelledError):
        await task
