"""Hardware monitoring tied to the edge: Modbus pollers -> alarms and readings, the UPS
shutdown (maintenance mode, outbox flush, an announcement to the fleet), and the
front-panel state. The edge is reached only through :class:`EdgeActions`;
:class:`EdgeApiActions` is its implementation over the local control API (HTTP/JSON on
the unix socket; the hooks are in ``edge_core/api/hardware.py``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
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
    """The edge's local control API over its unix socket (``edge_core/api/hardware.py``):
    ``POST /v1/hardware/alarms`` (written to the outbox as an ``alarm`` event),
    ``PUT /v1/hardware/readings/{device}``, ``POST /v1/maintenance`` and
    ``POST /v1/outbox/flush`` (answers when the outbox is empty, the broker unreachable,
    or after ``flush_timeout_s``). A failed request raises ``httpx.HTTPError``."""

    def __init__(self, socket_path: str, timeout_s: float = 10.0, flush_timeout_s: float = 30.0,
                 client: httpx.AsyncClient | None = None) -> None:  # fmt: skip
        self.flush_timeout_s = flush_timeout_s
        self._own = client is None
        self.client = client or httpx.AsyncClient(
            transport=httpx.AsyncHTTPTransport(uds=socket_path), base_url="http://edge", timeout=timeout_s
        )

    async def _post(self, method: str, path: str, body: dict[str, Any], timeout_s: float | None = None) -> Any:
        extra: dict[str, Any] = {} if timeout_s is None else {"timeout": timeout_s}
        resp = await self.client.request(method, path, json=body, **extra)
        if resp.status_code == 404:
            log.error("the edge has no %s %s hook", method, path)
        resp.raise_for_status()
        return resp.json()

    async def alarm(self, change: AlarmChange) -> None:
        await self._post("POST", "/v1/hardware/alarms", alarm_body(change))

    async def report_readings(self, device: str, values: dict[str, float]) -> None:
        await self._post("PUT", f"/v1/hardware/readings/{device}", values)

    async def maintenance(self, on: bool, reason: str) -> None:
        await self._post("POST", "/v1/maintenance", {"on": on, "reason": reason[:120]})

    async def flush_outbox(self) -> None:
        result = await self._post("POST", "/v1/outbox/flush", {"timeout_s": self.flush_timeout_s},
                                  timeout_s=self.flush_timeout_s + 5)  # fmt: skip
        log.warning("outbox flush: %s", result)

    async def aclose(self) -> None:
        if self._own:
            await self.client.aclose()


def alarm_body(change: AlarmChange) -> dict[str, Any]:
    """An AlarmChange as ``POST /v1/hardware/alarms`` takes it: the fleet's alarm kind is
    ``hw_<alarm>`` (at most 32 characters), its subject the device."""
    return {"kind": f"hw_{change.alarm}"[:32], "subject": change.device, "severity": change.severity,
            "active": change.raised, "message": change.message[:500], "value": change.value}  # fmt: skip


class HardwareMonitor:
    """Runs the pollers of ``config.modbus`` and forwards what they find to the edge."""

    def __init__(self, config: HardwareConfig, actions: EdgeActions,
                 on_change: Callable[[], None] | None = None) -> None:  # fmt: skip
        self.config = config
        self.actions = actions
        self.on_change = on_change
        """Called after new readings or an alarm change (the agent refreshes the panel)."""
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

    def readings(self) -> dict[str, dict[str, float]]:
        """The latest values of every device that answered at least once."""
        return {p.config.name: p.values for p in self.pollers if p.values}

    def _on_reading(self, device: str, values: dict[str, float]) -> None:
        self._queue.put_nowait(("readings", (device, values)))
        if self.guard is not None:
            fired = self.guard.update(device, values)
            if fired:
                self._queue.put_nowait(("shutdown", (device, values)))
            elif not self.guard.fired and (device, "shutdown") in self.active:
                self._on_alarm(AlarmChange(device, "shutdown", False, "critical",
                                           f"{device}: runtime restored"))  # fmt: skip
        self._changed()

    def _on_alarm(self, change: AlarmChange) -> None:
        key = (change.device, change.alarm)
        if change.raised:
            self.active[key] = change
        else:
            self.active.pop(key, None)
        self._queue.put_nowait(("alarm", (change,)))
        self._changed()

    def _changed(self) -> None:
        if self.on_change is not None:
            try:
                self.on_change()
            except Exception:  # the panel must not stop the monitoring
                log.exception("hardware change callback")

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
                    # announced first: the NOC learns why the branch stops taking calls
                    change = AlarmChange(device, "shutdown", True, "critical",
                                         f"{reason}: maintenance, clean shutdown", runtime)  # fmt: skip
                    self.active[(device, "shutdown")] = change
                    self._changed()
                    await self.actions.alarm(change)
                    await self.actions.maintenance(True, reason)
                    await self.actions.flush_outbox()
            except httpx.HTTPError as exc:  # the edge is down or restarting: not a bug
                log.warning("forwarding %s to the edge: %s", what, exc or type(exc).__name__)
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
