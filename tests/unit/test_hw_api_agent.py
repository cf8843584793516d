"""What the hardware agent makes of the edge's /v1/status and the Modbus monitor: the
heartbeat's health flag, the panel's mode, power and top alarm, a PANEL body that
always fits one frame, and the alarm body the edge's hardware hook takes."""

from __future__ import annotations

from typing import Any

from appliance.firmware import frame, leds, messages
from appliance.host.agent import edge_healthy, panel_mode, panel_state
from appliance.host.alarms import AlarmChange
from appliance.host.config import HardwareConfig
from appliance.host.monitor import alarm_body
from appliance.sim.modbus_devices import UPS_REGISTERS
from edge_core.api.hardware import AlarmBody

CONFIG = HardwareConfig.model_validate({
    "modbus": [{"name": "ups", "kind": "ups", "registers": [r.model_dump() for r in UPS_REGISTERS]}],
    "shutdown": {"device": "ups", "below_s": 600},
})  # fmt: skip


def status(mode: str = "normal", *, drill: bool = False, wan_up: bool = True, accepting: bool = True,
           maintenance: bool = False) -> dict[str, Any]:  # fmt: skip
    return {"site": {"name": "Branch 7"}, "accepting_calls": accepting, "maintenance": maintenance,
            "mode": {"mode": mode, "wan_up": wan_up,
                     "drill_until": "2030-01-01T00:00:00.000+00:00" if drill else None}}  # fmt: skip


def test_healthy_is_taking_calls_or_maintenance_on_purpose() -> None:
    assert edge_healthy(status())
    assert edge_healthy(status(accepting=False, maintenance=True))
    assert not edge_healthy(status(accepting=False))  # stopping: refusing calls, not on purpose
    assert not edge_healthy(None)  # not answering


def test_mode_words_are_the_firmware_led_table_keys() -> None:
    assert panel_mode(status()) == "normal"
    assert panel_mode(status("survivable", wan_up=False)) == "survivable"
    assert panel_mode(status("survivable", drill=True)) == "drill"
    assert panel_mode(status(maintenance=True, accepting=False)) == "maintenance"
    assert panel_mode(status("survivable", maintenance=True)) == "survivable"
    assert panel_mode(None) == "edge down"
    led = leds.patterns_for(panel_state(CONFIG, status("survivable", drill=True), "B", [], {}), "normal", True)
    assert led["survivable"] == leds.DOUBLE


def test_power_from_the_ups() -> None:
    mains = {"ups": {"on_battery": 0.0, "runtime_left_s": 3600.0}}
    battery = {"ups": {"on_battery": 1.0, "runtime_left_s": 1800.0}}
    low = {"ups": {"on_battery": 1.0, "runtime_left_s": 300.0}}
    assert panel_state(CONFIG, status(), "B", [], mains)["power"] == "mains"
    assert panel_state(CONFIG, status(), "B", [], battery)["power"] == "battery"
    assert panel_state(CONFIG, status(), "B", [], low)["power"] == "low"
    assert panel_state(CONFIG, status(), "B", [], battery, shutdown_fired=True)["power"] == "low"
    assert panel_state(HardwareConfig(), status(), "B", [], {})["power"] == "mains"


def test_the_most_severe_alarm_is_shown_and_a_dead_edge_is_critical() -> None:
    alarms = [AlarmChange("rack", "humidity_pct_high", True, "minor", "humid"),
              AlarmChange("rack", "temperature_c_high", True, "critical", "rack 41 C above 35"),
              AlarmChange("ups", "offline", True, "major", "ups not answering")]  # fmt: skip
    state = panel_state(CONFIG, status(), "Branch 7", alarms, {})
    assert (state["alarm"], state["severity"]) == ("rack 41 C above 35", "critical")
    assert panel_state(CONFIG, status(), "B", [], {})["severity"] == "none"
    down = panel_state(CONFIG, None, "Branch 7", [], {})
    assert (down["mode"], down["severity"], down["wan"]) == ("edge down", "critical", "up")
    assert panel_state(CONFIG, status(wan_up=False), "B", [], {})["wan"] == "down"


def test_the_panel_body_always_fits_one_frame() -> None:
    readings = {f"device{i}": {f"value_{j}": 12345.678 for j in range(8)} for i in range(6)}
    alarms = [AlarmChange("ups", "x", True, "major", "a very long alarm text " * 10)]
    state = panel_state(CONFIG, status(), "A site with a very long name indeed " * 3, alarms, readings)
    assert len(messages.encode(state)) <= frame.MAX_BODY
    assert state["alarm"].startswith("a very long alarm text")  # pages go first
    short = panel_state(CONFIG, status(), "Branch 7", [], readings)
    assert len(messages.encode(short)) <= frame.MAX_BODY and short["pages"][0][0] == "device0"
    few = panel_state(CONFIG, status(), "B", [], {"ups": {"battery_pct": 97.5}})
    assert few["pages"] == [["ups", "battery_pct 97.5%"]]


def test_an_alarm_change_is_a_valid_alarm_body_for_the_edge() -> None:
    raised = alarm_body(AlarmChange("ups", "runtime_left_s_low", True, "critical", "runtime low", 120.0))
    assert raised == {"kind": "hw_runtime_left_s_low", "subject": "ups", "severity": "critical",
                      "active": True, "message": "runtime low", "value": 120.0}  # fmt: skip
    AlarmBody.model_validate(raised)
    long = alarm_body(AlarmChange("pdu", "outlet_with_a_long_name_current_a_high", False, "minor", "ok"))
    assert len(long["kind"]) == 32 and long["active"] is False
    AlarmBody.model_validate(long)
