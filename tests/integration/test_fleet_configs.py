"""Desired configuration through a real mosquitto, on SQLite and PostgreSQL: layered
composition, signed retained publication (a client subscribed now and one connecting
later both get it), refusal of an invalid config with its field path, config reports
and drift, rollback."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from edge_core.telemetry import protocol as p
from fleet.configs import ConfigRejected, ConfigStore, load_signing_key, public_key_b64
from fleet.mqtt import MqttConnection, RetainedPublisher
from fleet.store import FleetStore
from fleet.store.rows import SiteRow
from fleet.worker import IngestWorker, WorkerSettings
from tests.brokers import Mosquitto, mosquitto_binary
from tests.sipp import wait_for_async

pytestmark = pytest.mark.skipif(mosquitto_binary() is None, reason="mosquitto not installed")


@pytest.fixture
async def store(db_url: str) -> AsyncIterator[FleetStore]:
    store = await FleetStore.open(db_url)
    yield store
    await store.close()


@pytest.fixture
async def configs(store: FleetStore, broker: Mosquitto, tmp_path: Path) -> AsyncIterator[ConfigStore]:
    key = load_signing_key(tmp_path / "keys" / "fleet.pem", create=True)
    async with RetainedPublisher(broker.url, "fleet-config-pub") as publish:
        yield ConfigStore(store, key, publish)


async def next_envelope(conn: MqttConnection, timeout_s: float = 10.0) -> p.ConfigEnvelope:
    msg = await asyncio.wait_for(conn.messages.get(), timeout_s)
    return p.ConfigEnvelope.from_bytes(bytes(msg.payload))  # type: ignore[no-any-return]


async def test_pushed_config_reaches_subscribed_and_later_clients(configs: ConfigStore, broker: Mosquitto,
                                                                   store: FleetStore) -> None:
    public = p.load_public_key(public_key_b64(configs.signing_key).encode())
    await store.set_site_groups("b1", actor="admin", region="north", site_type="small")
    async with MqttConnection(broker.url, "edge-b1") as edge:
        await edge.subscribe([(p.topic("b1", "config"), 1)])
        await configs.set_layer("base", {"sip": {"domain": "corp.local", "ring_timeout_s": 40}},
                                author="alice", reason="fleet default")
        first = await next_envelope(edge)
        p.verify_config(public, first, "b1")
        assert (first.version, first.author, first.reason) == (1, "alice", "fleet default")
        assert first.config["site"]["id"] == "b1" and first.config["sip"]["domain"] == "corp.local"

        await configs.set_layer("region:north", {"sip": {"ring_timeout_s": 20}}, author="bob", reason="north")
        second = await next_envelope(edge)
        assert second.version == 2
        assert second.config["sip"] == {"domain": "corp.local", "ring_timeout_s": 20}

    async with MqttConnection(broker.url, "edge-b1-later") as later:  # an edge that was offline
        await later.subscribe([(p.topic("b1", "config"), 1)])
        retained = await next_envelope(later)
        p.verify_config(public, retained, "b1")
        assert retained.version == 2
    [v2, v1] = await store.list_config_versions("b1")
    assert v2.sources == {"base": 1, "region:north": 1} and v1.published_at is not None
    actions = [a.action for a in await store.list_audit()]
    assert actions.count("config.layer") == 2


async def test_overlays_reach_only_their_group(configs: ConfigStore, store: FleetStore) -> None:
    await store.set_site_groups("n1", actor="admin", region="north")
    await store.set_site_groups("s1", actor="admin", region="south")
    change = await configs.set_layer("region:north", {"site": {"name": "Northern"}}, author="a", reason="r")
    assert change.site_versions == {"n1": 1}
    change = await configs.set_layer("base", {"site": {"timezone": "Europe/Paris"}}, author="a", reason="r")
    assert change.site_versions == {"n1": 2, "s1": 1}
    n1 = await store.get_config_version("n1")
    assert n1 is not None and n1.body["site"] == {"id": "n1", "name": "Northern", "timezone": "Europe/Paris"}
    change = await configs.set_layer("site:s1", {"extensions": [{"number": "1001", "password": "secret1"}]},
                                     author="a", reason="r")
    assert change.site_versions == {"s1": 2}
    # the same base again changes no site's composed config: no new site versions
    again = await configs.set_layer("base", {"site": {"timezone": "Europe/Paris"}}, author="a", reason="same")
    assert again.site_versions == {} and again.layer_version == 2


async def test_invalid_config_is_refused_before_storing(configs: ConfigStore, store: FleetStore) -> None:
    await store.set_site_groups("b1", actor="admin", region="north")
    await configs.set_layer("site:b1", {"sip": {"domain": "ok.local"}}, author="a", reason="ok")
    with pytest.raises(ConfigRejected) as err:
        await configs.set_layer("region:north", {"routes": [{"match": "(", "extension": "1001"}]},
                                author="a", reason="broken regex")
    assert any(path == "site b1: routes[0].match" for path, _ in err.value.problems)
    with pytest.raises(ConfigRejected) as err:
        await configs.set_layer("region:empty", {"sip": {"t1_ms": 1}}, author="a", reason="no site yet")
    assert err.value.problems[0][0].endswith("sip.t1_ms")
    assert await store.list_layer_versions("region:north") == []
    assert await store.list_layer_versions("region:empty") == []
    assert [v.version for v in await store.list_config_versions("b1")] == [1]
    with pytest.raises(ConfigRejected):
        await configs.set_layer("nonsense", {}, author="a", reason="bad scope")


async def test_config_report_drift_and_rollback(configs: ConfigStore, store: FleetStore,
                                                broker: Mosquitto) -> None:
    worker = IngestWorker(store, WorkerSettings(broker.url, "fleet-cfg-0"))
    stop = asyncio.Event()
    task = asyncio.create_task(worker.run(stop))
    try:
        await wait_for_async(worker.connected.is_set, 10, what="worker connected")
        await configs.set_layer("site:b1", {"sip": {"ring_timeout_s": 30}}, author="a", reason="v1")
        await configs.set_layer("site:b1", {"sip": {"ring_timeout_s": 45}}, author="a", reason="v2")
        site = await store.get_site("b1")
        assert site is not None and site.desired_version == 2 and site.config_version is None and site.drift

        async with MqttConnection(broker.url, "edge-b1") as edge:
            await edge.publish_confirmed(p.topic("b1", "config/report"),
                                         p.ConfigReport(version=2, status="applied").to_bytes())
            site = await _wait_site(store, lambda s: s.config_version == 2)
            assert not site.drift
            assert [s.id for s in await store.list_sites(drift=True)] == []

            change = await configs.rollback("site:b1", 1, author="carol", reason="v2 broke queues")
            assert change.site_versions == {"b1": 3}
            v3, v1 = await store.get_config_version("b1", 3), await store.get_config_version("b1", 1)
            assert v3 is not None and v1 is not None and v3.body == v1.body
            assert v3.reason == "rollback to v1: v2 broke queues"
            site = await _wait_site(store, lambda s: s.desired_version == 3)
            assert site.drift

            await edge.publish_confirmed(p.topic("b1", "config/report"), p.ConfigReport(
                version=3, status="rejected", reason="queues[0].name: duplicate").to_bytes())
            site = await _wait_site(store, lambda s: s.config_rejected_version == 3)
            assert site.config_rejection == "queues[0].name: duplicate" and site.config_version == 2

        assert await configs.rollback_site("b1", 2, author="carol") == 4
        v4 = await store.get_config_version("b1")
        assert v4 is not None and v4.body["sip"]["ring_timeout_s"] == 45 and v4.sources["rollback_of"] == 2
    finally:
        stop.set()
        await asyncio.wait_for(task, 10)


async def _wait_site(store: FleetStore, condition: Callable[[SiteRow], bool]) -> SiteRow:
    async def check() -> SiteRow | None:
        site = await store.get_site("b1")
        return site if site is not None and condition(site) else None

    deadline = asyncio.get_running_loop().time() + 10
    while (site := await check()) is None:
        if asyncio.get_running_loop().time() > deadline:
            raise TimeoutError("site b1 never reached the expected state")
        await asyncio.sleep(0.05)
    return site
