"""The control API's hardware hooks (edge_core/api/hardware.py) in process over ASGI, on
a real EdgeStore: alarms reach the event stream and the outbox in the shape the
fleet's alarm rules read, readings and panel state show in GET /v1/hardware, and the
outbox flush answers at once without telemetry and waits (bounded) with it."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest

from edge_core.api.http import create_app
from edge_core.store.db import EdgeStore
from edge_core.telemetry.protocol import Record
from fleet.alarms import AlarmRules, Clear, Raise

pytestmark = pytest.mark.timeout(30)


class FakeTelemetry:
    def __init__(self) -> None:
        self.connected = asyncio.Event()


class FakeDaemon:
    def __init__(self, store: EdgeStore) -> None:
        self.store = store
        self.telemetry: FakeTelemetry | None = None


class FakeView:
    """The few parts of EdgeView the hardware routes use; events are recorded."""

    version = "test"

    def __init__(self, daemon: FakeDaemon | None) -> None:
        self.zone = ZoneInfo("UTC")
        self.config_control = daemon
        self.events: list[dict[str, Any]] = []

    def wall(self) -> float:
        return time.time()

    def publish(self, event: dict[str, Any]) -> None:
        self.events.append(event)


class Rig:
    def __init__(self, client: httpx.AsyncClient, view: FakeView, store: EdgeStore) -> None:
        self.client, self.view, self.store = client, view, store


@pytest.fixture
async def rig(tmp_path: Path) -> AsyncIterator[Rig]:
    store = await EdgeStore.open(tmp_path / "edge.db")
    view = FakeView(FakeDaemon(store))
    transport = httpx.ASGITransport(app=create_app(view))  # type: ignore[arg-type]
    async with httpx.AsyncClient(transport=transport, base_url="http://edge") as client:
        yield Rig(client, view, store)
    await store.close()


async def outbox_events(store: EdgeStore) -> list[Record]:
    return [Record(seq=r.seq, kind=r.kind, at=r.at, body=r.body)  # type: ignore[arg-type]
            for r in await store.outbox_after(0, 100)]  # fmt: skip


UPS_LOW = {"kind": "hw_battery_pct_low", "subject": "ups", "severity": "critical",
           "active": True, "message": "ups battery_pct 12 below 20", "value": 12.0}  # fmt: skip


async def test_not_reported_until_an_agent_speaks(rig: Rig) -> None:
    body = (await rig.client.get("/v1/hardware")).json()
    assert body == {"agent": "not reported", "last_report": None, "panel": None, "readings": {},
                    "alarms": []}  # fmt: skip


async def test_alarm_raise_and_clear_reach_stream_outbox_and_fleet_rules(rig: Rig) -> None:
    r = await rig.client.post("/v1/hardware/alarms", json=UPS_LOW)
    assert r.status_code == 200, r.text
    assert r.json()["active_alarms"] == 1
    hw = (await rig.client.get("/v1/hardware")).json()
    assert hw["agent"] == "reporting"
    [alarm] = hw["alarms"]
    assert alarm["kind"] == "hw_battery_pct_low" and alarm["subject"] == "ups"
    assert alarm["severity"] == "critical" and alarm["since"].endswith("+00:00")

    cleared = {**UPS_LOW, "active": False, "message": "ups battery_pct 30", "value": 30.0}
    assert (await rig.client.post("/v1/hardware/alarms", json=cleared)).status_code == 200
    assert (await rig.client.get("/v1/hardware")).json()["alarms"] == []

    # the event stream saw both, in the outbox's shape
    alarms = [e for e in rig.view.events if e["type"] == "alarm"]
    assert [(e["alarm"], e["subject"], e["active"]) for e in alarms] == [
        ("hw_battery_pct_low", "ups", True), ("hw_battery_pct_low", "ups", False)]  # fmt: skip
    # the outbox holds two events the fleet turns into a raise and a clear
    records = await outbox_events(rig.store)
    assert [r.kind for r in records] == ["event", "event"]
    assert records[0].body["type"] == "alarm" and records[0].body["severity"] == "critical"
    rules = AlarmRules()
    assert rules.on_record("s1", records[0]) == [
        Raise("s1", "hw_battery_pct_low", "ups", "critical", "ups battery_pct 12 below 20")]  # fmt: skip
    assert rules.on_record("s1", records[1]) == [Clear("s1", "hw_battery_pct_low", "ups")]


async def test_a_raise_repeated_keeps_its_since_and_one_entry(rig: Rig) -> None:
    await rig.client.post("/v1/hardware/alarms", json=UPS_LOW)
    first = (await rig.client.get("/v1/hardware")).json()["alarms"]
    await rig.client.post("/v1/hardware/alarms", json={**UPS_LOW, "value": 11.0})
    again = (await rig.client.get("/v1/hardware")).json()["alarms"]
    assert len(again) == 1 and again[0]["since"] == first[0]["since"] and again[0]["value"] == 11.0


async def test_alarms_sorted_by_severity(rig: Rig) -> None:
    await rig.client.post("/v1/hardware/alarms", json={**UPS_LOW, "severity": "minor", "subject": "a"})
    await rig.client.post("/v1/hardware/alarms", json={**UPS_LOW, "subject": "b"})
    alarms = (await rig.client.get("/v1/hardware")).json()["alarms"]
    assert [a["subject"] for a in alarms] == ["b", "a"]


@pytest.mark.parametrize("bad", [
    {"kind": "Bad Kind", "active": True},
    {"kind": "x" * 33, "active": True},
    {"kind": "hw_x", "active": True, "severity": "catastrophic"},
    {"kind": "hw_x"},
    {"kind": "hw_x", "active": True, "surprise": 1},
])  # fmt: skip
async def test_a_bad_alarm_is_refused_and_nothing_is_written(rig: Rig, bad: dict[str, Any]) -> None:
    r = await rig.client.post("/v1/hardware/alarms", json=bad)
    assert r.status_code == 422 and r.json()["field"]
    assert await rig.store.outbox_backlog() == 0
    assert rig.view.events == []


async def test_readings_and_panel_shown(rig: Rig) -> None:
    r = await rig.client.put("/v1/hardware/readings/ups", json={"battery_pct": 97.5, "on_battery": 0})
    assert r.status_code == 200, r.text
    await rig.client.put("/v1/hardware/readings/rack", json={"temperature_c": 22.5})
    await rig.client.put("/v1/hardware/readings/ups", json={"battery_pct": 97.0, "on_battery": 1})
    panel = {"port": "/dev/ttyACM0", "connected": True, "link_up": True, "watchdog": "normal",
             "relay": False, "resets": 0}  # fmt: skip
    assert (await rig.client.put("/v1/hardware/panel", json=panel)).status_code == 200
    assert (await rig.client.put("/v1/hardware/panel", json=panel)).status_code == 200
    hw = (await rig.client.get("/v1/hardware")).json()
    assert list(hw["readings"]) == ["rack", "ups"]
    assert hw["readings"]["ups"]["values"] == {"battery_pct": 97.0, "on_battery": 1.0}
    assert hw["readings"]["ups"]["age_s"] >= 0
    assert {k: v for k, v in hw["panel"].items() if k != "at"} == panel
    # readings go to the stream, not to the outbox; an unchanged panel is published once
    assert await rig.store.outbox_backlog() == 0
    kinds = [e["type"] for e in rig.view.events]
    assert kinds.count("hardware_readings") == 3 and kinds.count("panel") == 1


async def test_bad_readings_refused(rig: Rig) -> None:
    assert (await rig.client.put("/v1/hardware/readings/UPS!", json={"a": 1})).status_code == 422
    assert (await rig.client.put("/v1/hardware/readings/ups", json={"a": "warm"})).status_code == 422
    too_many = {f"v{i}": i for i in range(65)}
    assert (await rig.client.put("/v1/hardware/readings/ups", json=too_many)).status_code == 422
    assert (await rig.client.get("/v1/hardware")).json()["agent"] == "not reported"


async def test_flush_without_telemetry_answers_at_once_with_the_backlog(rig: Rig) -> None:
    await rig.client.post("/v1/hardware/alarms", json=UPS_LOW)
    r = await rig.client.post("/v1/outbox/flush", json={"timeout_s": 30})
    assert r.json() == {"backlog": 1, "flushed": False, "telemetry": "off", "waited_s": r.json()["waited_s"]}
    assert r.json()["waited_s"] < 5
    default = (await rig.client.post("/v1/outbox/flush")).json()  # no body: the default timeout
    assert default["telemetry"] == "off" and default["backlog"] == 1


async def test_flush_waits_for_the_fleet_ack_and_gives_up_after_the_timeout(rig: Rig) -> None:
    daemon = rig.view.config_control
    assert daemon is not None
    daemon.telemetry = telemetry = FakeTelemetry()
    telemetry.connected.set()
    await rig.client.post("/v1/hardware/alarms", json=UPS_LOW)
    # nobody acks: the flush answers after its timeout with the backlog left
    late = (await rig.client.post("/v1/outbox/flush", json={"timeout_s": 0.2})).json()
    assert late["backlog"] == 1 and not late["flushed"] and late["telemetry"] == "connected"
    assert late["waited_s"] >= 0.2

    async def ack_soon() -> None:  # the fleet's ack, as the telemetry client applies it
        await asyncio.sleep(0.1)
        await rig.store.outbox_delete_upto(await rig.store.outbox_last_seq())

    acker = asyncio.create_task(ack_soon())
    done = (await rig.client.post("/v1/outbox/flush", json={"timeout_s": 20})).json()
    await acker
    assert done["backlog"] == 0 and done["flushed"] and done["waited_s"] < 10
    # disconnected from the broker: no point waiting
    await rig.client.post("/v1/hardware/alarms", json={**UPS_LOW, "active": False})
    telemetry.connected.clear()
    off = (await rig.client.post("/v1/outbox/flush", json={"timeout_s": 30})).json()
    assert off["telemetry"] == "disconnected" and off["backlog"] == 1 and off["waited_s"] < 5
    assert (await rig.client.post("/v1/outbox/flush", json={"timeout_s": 0})).status_code == 422


async def test_without_a_store_the_outbox_routes_answer_503(tmp_path: Path) -> None:
    view = FakeView(None)
    transport = httpx.ASGITransport(app=create_app(view))  # type: ignore[arg-type]
    async with httpx.AsyncClient(transport=transport, base_url="http://edge") as client:
        r = await client.post("/v1/hardware/alarms", json=UPS_LOW)
        assert r.status_code == 503 and "outbox" in r.json()["error"]
        assert (await client.post("/v1/outbox/flush")).status_code == 503
        assert (await client.put("/v1/hardware/readings/ups", json={"a": 1})).status_code == 200
