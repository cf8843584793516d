"""Hardware monitoring tied to the edge: Modbus pollers -> alarms and readings, the UPS
shutdown (maintenance mode, outbox flush, an announcement to the fleet), and the
front-panel state. The edge is reached only through :class:`EdgeActions`;
:class:`EdgeApiActions` is its implementation over the local control API (HTTP/JSON on
the unix socket) and needs the hooks listed in its docstring.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import asdict
from typing import Any, Protocol

import httpx

from appliance.host.alarms import AlarmChange, ShutdownGuard
from appliance.host.config import HardwareConfig
from appliance.host.modbus import DevicePoller

log = logging.getLogger(__name__)

SEVERITY_RANK = {"none": 0, "minor": 1, "major": 2, "critical": 3}


class EdgeActions(Protocol):
    async def alarm(self, change: AlarmChange) -> None: ...
    async def report_readings(self, device: str, values: dict[str, float]) -> None: ...
    async def maintenance(self, on: bool, reason: str) -> None: ...
    async def flush_outbox(self) -> None: ...


class EdgeApiActions:
    """The edge's local control API over its unix socket. Needs (not in edge_core yet):
    ``POST /v1/hardware/alarms`` (an AlarmChange; written to the outbox as an ``alarm``
    event), ``PUT /v1/hardware/readings/{device}`` (shown in status, the TUI, metrics),
    ``POST /v1/maintenance`` ``{"on", "reason"}`` (as the fleet's maintenance command,
    plus a ``state`` publish) and ``POST /v1/outbox/flush`` (drain now, answer when the
    outbox is empty or the broker is unreachable)."""

    def __init__(self, socket_path: str, timeout_s: float = 10.0) -> None:
        self.client = httpx.AsyncClient(transport=httpx.AsyncHTTPTransport(uds=socket_path),
                                        base_url="http://edge", timeout=timeout_s)  # fmt: skip

    async def _post(self, method: str, path: str, body: dict[str, Any]) -> None:
        resp = await self.client.request(method, path, json=body)
        if resp.status_code == 404:
            log.error("the edge has no %s %s hook yet", method, path)
        resp.raise_for_status()

    async def alarm(self, change: AlarmChange) -> None:
        await self._post("POST", "/v1/hardware/alarms", asdict(change))

    async def report_readings(self, device: str, values: dict[str, float]) -> None:
        await self._post("PUT", f"/v1/hardware/readings/{device}", values)

    async def maintenance(self, on: bool, reason: str) -> None:
        await self._post("POST", "/v1/maintenance", {"on": on, "reason": reason})

    async def flush_outbox(self) -> None:
        await self._post("POST", "/v1/outbox/flush", {})

    async def aclose(self) -> None:
        await self.client.aclose()


class HardwareMonitor:
    """Runs the pollers of ``config.modbus`` and forwards what they find to the edge."""

    def __init__(self, config: HardwareConfig, actions: EdgeActions) -> None:
        self.config = config
        self.actions = actions
        self.pollers = [DevicePoller(d, self._on_reading, self._on_alarm) for d in config.modbus]
        self.guard = ShutdownGuard(config.shutdown) if config.shutdown else None
        self.active: dict[tuple[str, str], AlarmChange] = {}
        """Alarms raised and not cleared, by (device, alarm)."""
        self.shutdowns = 0
        self._queue: asyncio.Queue[tuple[str, tuple[Any, ...]]] = asyncio.Queue()

    def top_alarm(self) -> AlarmChange | None:
        """The most severe active alarm (for the front panel)."""
        ranked = sorted(self.active.values(), key=lambda a: -SEVERITY_RANK.get(a.severity, 0))
        return ranked[0] if ranked else None

    def _on_reading(self, device: str, values: dict[str, float]) -> None:
        self._queue.put_nowait(("readings", (device, values)))
        if self.guard is not None and self.guard.update(device, values):
            self._queue.put_nowait(("shutdown", (device, values)))

    def _on_alarm(self, change: AlarmChange) -> None:
        key = (change.device, change.alarm)
        if change.raised:
            self.active[key] = change
        else:
            self.active.pop(key, None)
        self._queue.put_nowait(("alarm", (change,)))

    async def _forward(self) -> None:
        while True:
            what, args = await self._queue.get()
            try:
                if what == "alarm":
                    await self.actions.alarm(args[0])
                elif what == "readings":
                    await self.actions.report_readings(*args)
                elif what == "shutdown":
                    device, values = args
                    assert self.guard is not None
                    runtime = values.get(self.guard.config.value, 0.0)
                    reason = f"UPS {device}: {runtime:.0f} s of runtime left"
                    self.shutdowns += 1
                    await self.actions.maintenance(True, reason)
                    await self.actions.flush_outbox()
            except Exception:  # the edge being down must not stop the monitoring
                log.exception("forwarding %s to the edge", what)

    async def run(self) -> None:
        tasks = [asyncio.create_task(p.run()) for p in self.pollers]
        tasks.append(asyncio.create_task(self._forward()))
        try:
            await asyncio.gather(*tasks)
        finally:
            for t in tasks:
                t.cancel()
            for t in tasks:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await t
