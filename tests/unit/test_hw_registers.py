"""Register decoding (type, signedness, word order, scale), its inverse, thresholds
with hysteresis, the offline alarm and the UPS shutdown trigger."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from appliance.host.alarms import OfflineAlarm, ShutdownGuard, ThresholdAlarm
from appliance.host.config import RegisterConfig, ShutdownConfig, ThresholdConfig
from appliance.host.modbus import decode, encode


def reg(**kw: object) -> RegisterConfig:
    return RegisterConfig.model_validate({"name": "x", "address": 0, **kw})


@pytest.mark.parametrize(
    ("raw", "config", "value"),
    [
        ([2305], {"type": "u16", "scale": 0.1}, 230.5),
        ([0xFFF6], {"type": "s16", "scale": 0.1}, -1.0),
        ([0xFFF6], {"type": "u16"}, 65526),
        ([0x0001, 0x0002], {"type": "u32"}, 0x10002),
        ([0x0002, 0x0001], {"type": "u32", "word_order": "little"}, 0x10002),
        ([0xFFFF, 0xFFFE], {"type": "s32"}, -2),
        ([0xFFFE, 0xFFFF], {"type": "s32", "word_order": "little"}, -2),
        ([True], {"type": "bool", "table": "coil"}, 1.0),
    ],
)  # fmt: skip
def test_decode(raw: list[int], config: dict[str, object], value: float) -> None:
    assert decode(raw, reg(**config)) == pytest.approx(value)


@given(st.integers(-(2**31), 2**31 - 1), st.sampled_from(["big", "little"]))
def test_s32_round_trip(value: int, order: str) -> None:
    r = reg(type="s32", word_order=order)
    assert decode(encode(value, r), r) == value


def test_threshold_hysteresis() -> None:
    alarm = ThresholdAlarm("rack", ThresholdConfig(value="t", above=35, hysteresis=2))
    changes = [alarm.update(v) for v in (30, 35, 35.1, 40, 34, 33.1, 33, 36)]
    assert [None if c is None else c.raised for c in changes] == [
        None, None, True, None, None, None, False, True]  # fmt: skip
    low = ThresholdAlarm(
        "ups", ThresholdConfig(value="b", below=50, hysteresis=5, severity="critical")
    )
    assert low.update(49).raised and low.name == "b_low"  # type: ignore[union-attr]
    assert low.update(54) is None
    assert low.update(55).raised is False  # type: ignore[union-attr]


def test_threshold_needs_one_level() -> None:
    with pytest.raises(ValueError, match="exactly one"):
        ThresholdConfig(value="t", above=1, below=0)


def test_offline_alarm_once() -> None:
    off = OfflineAlarm("ups")
    assert off.update(False, "timeout").raised  # type: ignore[union-attr]
    assert off.update(False) is None
    assert off.update(True).raised is False  # type: ignore[union-attr]
    assert off.update(True) is None


def test_shutdown_fires_once_and_rearms() -> None:
    guard = ShutdownGuard(ShutdownConfig(device="ups", below_s=300))
    seq = [guard.update("ups", {"runtime_left_s": v}) for v in (900, 299, 200, 400, 450, 100)]
    assert seq == [False, True, False, False, False, True]
    assert guard.update("rack", {"runtime_left_s": 0}) is False
