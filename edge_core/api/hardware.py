"""Control-API routes for the appliance's hardware side (front panel, UPS, sensors).

The host-side agent (``appliance/host/agent.py``, ``branchline hw-agent``) reports here
and asks for the drill through ``/v1/drill``; the edge keeps no hardware of its own.

* ``POST /v1/hardware/alarms`` - an alarm raised or cleared: an ``alarm`` event on the
  event stream and an outbox event the fleet's alarm rules read
  (``{"type": "alarm", "alarm", "subject", "severity", "active", "message"}``, see
  ``fleet/alarms.py``: ``AlarmRules.on_record``).
* ``PUT /v1/hardware/readings/{device}`` - the latest values of one Modbus device.
* ``PUT /v1/hardware/panel`` - the front-panel link and watchdog as the agent sees them.
* ``GET /v1/hardware`` - all of it, ``"agent": "not reported"`` until an agent spoke.
* ``POST /v1/outbox/flush`` - wait (bounded) until the outbox reached the fleet.

What the agent reported lives in memory, in a :class:`HardwareState` on the app
(``app.state.hardware``): a restarted edge shows nothing until the agent reports again
(it re-sends its active alarms when it sees a new edge). The view is
``request.app.state.view``; the daemon (its ``store``, ``telemetry``) is
``view.config_control``.
"""

from __future__ import annotations

import asyncio
import time
from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Body, Path, Request
from pydantic import BaseModel, ConfigDict, Field

from edge_core.api.view import ApiError

router = APIRouter(tags=["hardware"])

DEVICE_PATTERN = r"^[a-z][a-z0-9_-]{0,63}$"
FLUSH_POLL_S = 0.05
"""How often a flush looks at the outbox backlog while it waits."""


class AlarmBody(BaseModel):
    """An alarm raised (``active``) or cleared, as the fleet's alarm rules take it."""

    model_config = ConfigDict(extra="forbid")
    kind: str = Field(pattern=r"^[a-z][a-z0-9_]{0,31}$")
    """What is wrong (``hw_battery_pct_low``, ``hw_offline``); the fleet's alarm kind."""
    subject: str = Field(default="", max_length=100)
    """What it is wrong with (the device name)."""
    severity: Literal["info", "minor", "major", "critical"] = "major"
    active: bool
    """True: raised; False: cleared."""
    message: str = Field(default="", max_length=500)
    """Human text for the panel, the console and the NOC."""
    value: float | None = None
    """The reading that moved it, if one did."""


class PanelBody(BaseModel):
    """The front panel as the agent sees it."""

    model_config = ConfigDict(extra="forbid")
    port: str = Field(default="", max_length=256)
    connected: bool
    """The serial port is open."""
    link_up: bool
    """The MCU answered the handshake."""
    watchdog: str | None = Field(default=None, max_length=32)
    """The MCU's host-watchdog state (``normal``, ``recovering``, ``holdoff``...)."""
    relay: bool | None = None
    """True: the PSTN bypass relay is engaged (the emergency line skips the host)."""
    resets: int | None = Field(default=None, ge=0)
    """Host reset pulses since the MCU booted."""


class FlushBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    timeout_s: float = Field(default=10.0, gt=0, le=120)
    """Answer after this long even if records are still waiting."""


class HardwareState:
    """What the agent reported: panel, latest readings, active alarms (in memory)."""

    def __init__(self) -> None:
        self.last_report: float | None = None
        """Wall-clock time of the agent's last report; None: never reported."""
        self.panel: dict[str, Any] | None = None
        self.readings: dict[str, dict[str, Any]] = {}
        """device -> {"values": {name: value}, "at": epoch}."""
        self.alarms: dict[tuple[str, str], dict[str, Any]] = {}
        """(kind, subject) -> the active alarm with ``since`` (epoch)."""

    def reported(self, now: float) -> None:
        self.last_report = now


def _state(request: Request) -> HardwareState:
    app_state = request.app.state
    hw = getattr(app_state, "hardware", None)
    if hw is None:
        hw = app_state.hardware = HardwareState()
    return hw


def _view(request: Request) -> Any:
    return request.app.state.view


def _iso(view: Any, epoch: float | None) -> str | None:
    if epoch is None:
        return None
    return datetime.fromtimestamp(epoch, view.zone).isoformat(timespec="milliseconds")


def _store(view: Any) -> Any:
    store = getattr(view.config_control, "store", None)
    if store is None:
        raise ApiError(503, "this edge has no store: the outbox is not available")
    return store


@router.post("/v1/hardware/alarms", summary="A hardware alarm raised or cleared: event stream and outbox")
async def hardware_alarm(request: Request, body: AlarmBody) -> dict[str, Any]:
    view, hw = _view(request), _state(request)
    store = _store(view)
    now = float(view.wall())
    hw.reported(now)
    event = {"type": "alarm", "alarm": body.kind, "subject": body.subject, "severity": body.severity,
             "active": body.active, "message": body.message, "value": body.value,
             "source": "hardware"}  # fmt: skip
    key = (body.kind, body.subject)
    if body.active:
        since = hw.alarms.get(key, {}).get("since", now)
        hw.alarms[key] = {"kind": body.kind, "subject": body.subject, "severity": body.severity,
                          "message": body.message, "value": body.value, "since": since}  # fmt: skip
    else:
        hw.alarms.pop(key, None)
    await store.insert_event(now, event)  # to the fleet first: it is what must not be lost
    view.publish(event)
    return {"alarm": body.kind, "subject": body.subject, "active": body.active,
            "active_alarms": len(hw.alarms)}  # fmt: skip


@router.put("/v1/hardware/readings/{device}", summary="The latest readings of one Modbus device")
async def hardware_readings(
    request: Request,
    device: Annotated[str, Path(pattern=DEVICE_PATTERN)],
    values: Annotated[dict[str, float], Body(max_length=64)],
) -> dict[str, Any]:
    view, hw = _view(request), _state(request)
    now = float(view.wall())
    hw.reported(now)
    hw.readings[device] = {"values": dict(values), "at": now}
    view.hardware_readings = hw.readings  # the fleet's metrics carry them (telemetry/metrics.py)
    view.publish({"type": "hardware_readings", "device": device, "values": dict(values)})
    return {"device": device, "values": len(values)}


@router.put("/v1/hardware/panel", summary="The front-panel link and watchdog as the agent sees them")
async def hardware_panel(request: Request, body: PanelBody) -> dict[str, Any]:
    view, hw = _view(request), _state(request)
    now = float(view.wall())
    hw.reported(now)
    changed = hw.panel is None or {k: v for k, v in hw.panel.items() if k != "at"} != body.model_dump()
    hw.panel = {**body.model_dump(), "at": now}
    if changed:
        view.publish({"type": "panel", **body.model_dump()})
    return {"panel": body.model_dump()}


@router.get("/v1/hardware", summary="Front panel, latest readings and active alarms the agent reported")
async def hardware(request: Request) -> dict[str, Any]:
    view, hw = _view(request), _state(request)
    now = float(view.wall())
    if hw.last_report is None:
        return {"agent": "not reported", "last_report": None, "panel": None, "readings": {}, "alarms": []}
    panel = None
    if hw.panel is not None:
        panel = {**{k: v for k, v in hw.panel.items() if k != "at"}, "at": _iso(view, hw.panel["at"])}
    readings = {
        device: {"values": r["values"], "at": _iso(view, r["at"]), "age_s": round(max(0.0, now - r["at"]), 3)}
        for device, r in sorted(hw.readings.items())
    }
    rank = {"critical": 0, "major": 1, "minor": 2, "info": 3}
    alarms = [{**a, "since": _iso(view, a["since"])}
              for a in sorted(hw.alarms.values(), key=lambda a: (rank[a["severity"]], a["since"]))]  # fmt: skip
    return {
        "agent": "reporting",
        "last_report": _iso(view, hw.last_report),
        "last_report_age_s": round(max(0.0, now - hw.last_report), 3),
        "panel": panel,
        "readings": readings,
        "alarms": alarms,
    }


@router.post("/v1/outbox/flush", summary="Wait until the outbox reached the fleet (bounded); the backlog left")
async def outbox_flush(request: Request, body: Annotated[FlushBody | None, Body()] = None) -> dict[str, Any]:
    view = _view(request)
    store = _store(view)
    timeout_s = body.timeout_s if body is not None else FlushBody().timeout_s
    telemetry = getattr(view.config_control, "telemetry", None)
    started = time.monotonic()
    backlog = int(await store.outbox_backlog())
    connected = _connected(telemetry)
    # the drain runs on its own (telemetry wakes on every outbox commit): just watch it
    while backlog > 0 and connected and time.monotonic() - started < timeout_s:
        await asyncio.sleep(FLUSH_POLL_S)
        backlog = int(await store.outbox_backlog())
        connected = _connected(telemetry)
    return {
        "backlog": backlog,
        "flushed": backlog == 0,
        "telemetry": "off" if telemetry is None else ("connected" if connected else "disconnected"),
        "waited_s": round(time.monotonic() - started, 3),
    }


def _connected(telemetry: Any) -> bool:
    if telemetry is None:
        return False
    event = getattr(telemetry, "connected", None)
    return bool(event is not None and event.is_set())
