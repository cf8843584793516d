"""Alarms: the sans-I/O rules, and raise / dedupe / acknowledge / clear in the store
(SQLite and PostgreSQL)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from edge_core.telemetry.protocol import OFFLINE, Metrics, Record, State
from fleet.alarms import AlarmRules, AlarmThresholds, Clear, Raise
from fleet.store import FleetStore, IngestBatch

NOW = 1_700_000_000.0


@pytest.fixture
async def store(db_url: str) -> AsyncIterator[FleetStore]:
    store = await FleetStore.open(db_url)
    yield store
    await store.close()


rules = AlarmRules(AlarmThresholds(service_level_target=0.8))


def test_state_rules() -> None:
    assert rules.on_state("s", State.from_bytes(OFFLINE)) == [
        Raise("s", "site_offline", "", "critical", "site is offline (last-will)")
    ]
    changes = rules.on_state("s", State(status="online", mode="survivable"))
    assert Clear("s", "site_offline", "") in changes
    assert any(isinstance(c, Raise) and c.kind == "survivable_mode" for c in changes)
    assert Clear("s", "survivable_mode", "") in rules.on_state("s", State(status="online"))


def test_metrics_rules() -> None:
    m = Metrics(at=NOW, gauges={"disk_used_pct": 96.0}, trunks={"wan": False, "pstn": True},
                queues={"sales": {"service_level": 0.5}, "vip": {"service_level": 0.5, "service_level_target": 0.4},
                        "idle": {"service_level": None}})
    changes = {(type(c).__name__, c.kind, c.subject): c for c in rules.on_metrics("s", m)}
    assert changes[("Raise", "trunk_down", "wan")].severity == "major"  # type: ignore[union-attr]
    assert ("Clear", "trunk_down", "pstn") in changes
    assert ("Raise", "service_level", "sales") in changes
    assert ("Clear", "service_level", "vip") in changes  # its own target is lower
    assert ("Clear", "service_level", "idle") in changes  # no calls, no verdict
    assert changes[("Raise", "disk_filling", "disk")].severity == "critical"  # type: ignore[union-attr]
    assert ("Clear", "disk_filling", "disk") in {
        (type(c).__name__, c.kind, c.subject) for c in rules.on_metrics("s", Metrics(at=NOW, gauges={"disk_used_pct": 10}))
    }


def test_event_rules() -> None:
    ups = Record(seq=1, kind="event", at=NOW, body={"alarm": "ups_on_battery", "subject": "ups1", "severity": "critical"})
    assert rules.on_record("s", ups) == [Raise("s", "ups_on_battery", "ups1", "critical", "")]
    back = Record(seq=2, kind="event", at=NOW, body={"alarm": "ups_on_battery", "subject": "ups1", "active": False})
    assert rules.on_record("s", back) == [Clear("s", "ups_on_battery", "ups1")]
    assert rules.on_record("s", Record(seq=3, kind="cdr", at=NOW, body={"alarm": "x"})) == []


async def test_raise_dedupe_ack_clear(store: FleetStore) -> None:
    down = Metrics(at=NOW, trunks={"wan": False})
    for i in range(3):  # the same condition reported three times: one alarm
        result = await store.ingest(IngestBatch(NOW + i, metrics=[("s1", down)], alarms=rules.on_metrics("s1", down)))
        assert [type(c).__name__ for c in result.alarms] == (["Raise"] if i == 0 else [])
    [alarm] = await store.list_alarms()
    assert (alarm.kind, alarm.subject, alarm.count, alarm.raised_at, alarm.last_seen_at) == ("trunk_down", "wan", 3, NOW, NOW + 2)
    assert (await store.get_site("s1")).active_alarms == 1  # type: ignore[union-attr]

    assert await store.ack_alarm(alarm.id, "noc-op")
    [alarm] = await store.list_alarms(acked=True)
    assert alarm.acked_by == "noc-op" and alarm.active  # acknowledged is not cleared

    up = Metrics(at=NOW, trunks={"wan": True})
    result = await store.ingest(IngestBatch(NOW + 10, metrics=[("s1", up)], alarms=rules.on_metrics("s1", up)))
    assert result.alarms == [Clear("s1", "trunk_down", "wan")]
    assert await store.list_alarms() == []
    [cleared] = await store.list_alarms(active=None)
    assert cleared.cleared_at == NOW + 10 and not cleared.active

    await store.ingest(IngestBatch(NOW + 20, alarms=rules.on_metrics("s1", down)))  # it comes back: a new alarm
    alarms = await store.list_alarms(active=None)
    assert [(a.active, a.count) for a in alarms] == [(True, 1), (False, 3)]
    assert (await store.fleet_summary())["active_alarms"] == 1


async def test_severity_escalates_within_one_alarm(store: FleetStore) -> None:
    for pct in (90.0, 97.0, 91.0):
        m = Metrics(at=NOW, gauges={"disk_used_pct": pct})
        await store.ingest(IngestBatch(NOW, alarms=rules.on_metrics("s1", m)))
    [alarm] = await store.list_alarms()
    assert alarm.severity == "critical" and alarm.count == 3
