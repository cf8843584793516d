"""Ingest through a real mosquitto into SQLite and PostgreSQL: exactly-once storage,
acks of the highest contiguous seq, malformed payloads, a broker restart mid-stream,
and the registry going offline from an edge's last-will."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import textwrap
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from edge_core.telemetry import protocol as p
from fleet.mqtt import MqttConnection
from fleet.sim import SimulatedEdges
from fleet.store import FleetStore
from fleet.worker import IngestWorker, WorkerSettings
from tests.brokers import Mosquitto, mosquitto_binary
from tests.sipp import wait_for_async, wait_for_coro

pytestmark = pytest.mark.skipif(mosquitto_binary() is None, reason="mosquitto not installed")


@pytest.fixture
async def store(db_url: str) -> AsyncIterator[FleetStore]:
    store = await FleetStore.open(db_url)
    yield store
    await store.close()


@pytest.fixture
async def worker(store: FleetStore, broker: Mosquitto) -> AsyncIterator[IngestWorker]:
    w = IngestWorker(store, WorkerSettings(broker.url, "fleet-test-0", reconnect_max_s=0.5))
    stop = asyncio.Event()
    task = asyncio.create_task(w.run(stop))
    await wait_for_async(w.connected.is_set, 10, what="worker connected")
    yield w
    stop.set()
    await asyncio.wait_for(task, 10)


@pytest.fixture
async def edges(broker: Mosquitto) -> AsyncIterator[SimulatedEdges]:
    async with SimulatedEdges(broker.url, "sim-edges") as sim:
        yield sim


async def until(condition: Callable[[], Any], what: str, timeout_s: float = 20.0) -> Any:
    return await wait_for_async(condition, timeout_s, what=what)


async def test_batch_published_twice_is_stored_once(store: FleetStore, worker: IngestWorker,
                                                    edges: SimulatedEdges) -> None:
    records = edges.make_records("s1", 3, kind="cdr")
    edges.publish_records("s1", records)
    edges.publish_records("s1", records)  # the edge re-sends before the ack arrives
    await until(lambda: edges.sites["s1"].acked == 3, "ack upto=3")
    edges.publish_records("s1", records)  # and once more after it
    await until(lambda: worker.stats.records >= 9, "third copy received")
    await until(lambda: worker.stats.batches >= 1 and worker.connected.is_set(), "processed")
    assert await store.count_records(site_id="s1") == 3
    assert len(await store.search_cdrs(site_id="s1")) == 3


async def test_ack_is_highest_contiguous_seq(store: FleetStore, worker: IngestWorker,
                                             edges: SimulatedEdges) -> None:
    records = edges.make_records("s1", 6)
    edges.publish_records("s1", records[:3])
    edges.publish_records("s1", records[4:])  # 5, 6: seq 4 is missing
    await until(lambda: edges.sites["s1"].acked == 3, "ack upto=3")
    await wait_for_coro(lambda: _count_is(store, "s1", 5), 20, what="5 records stored")
    assert edges.sites["s1"].acked == 3  # the ack of the 5-6 batch still says 3
    edges.publish_records("s1", records[3:4])
    await until(lambda: edges.sites["s1"].acked == 6, "ack upto=6 once the gap is filled")


async def _count_is(store: FleetStore, site: str, n: int) -> bool:
    return await store.count_records(site_id=site) == n


async def test_malformed_payloads_are_counted_and_dropped(store: FleetStore, worker: IngestWorker,
                                                          edges: SimulatedEdges) -> None:
    assert edges.mqtt is not None
    bad = [
        (p.topic("s1", "outbox"), b"not json"),
        (p.topic("s1", "outbox"), b'{"records": []}'),
        (p.topic("s1", "outbox"), b'{"records": [{"seq": 0, "kind": "cdr", "at": 1, "body": {}}]}'),
        (p.topic("s1", "state"), b'{"status": "sleeping"}'),
        (p.topic("s1", "metrics"), b'{"at": "yesterday"}'),
        (p.topic("s1", "config/report"), b"\xff\xfe"),
    ]
    for topic, payload in bad:
        edges.mqtt.publish(topic, payload, qos=1)
    edges.publish_batch("s1", 2)
    await until(lambda: edges.sites["s1"].acked == 2, "the valid batch acked")
    await until(lambda: worker.stats.malformed == len(bad), "malformed counted")
    assert await store.count_records() == 2
    assert worker.connected.is_set()


async def test_broker_restart_mid_stream_loses_and_duplicates_nothing(
    store: FleetStore, worker: IngestWorker, broker: Mosquitto, edges: SimulatedEdges
) -> None:
    sites = [f"site{i}" for i in range(5)]
    for round_ in range(40):
        for site in sites:
            edges.publish_batch(site, 5)
        if round_ == 20:
            await edges.disconnect()
            broker.restart()
            await until(lambda: worker.connected.is_set() and worker.stats.connects >= 2, "worker reconnected")
            await edges.connect()
            edges.resend_unacked()  # what the edge's outbox does after a reconnect
        await asyncio.sleep(0)
    await until(edges.all_acked, "every record acked", timeout_s=60)
    assert await store.count_records() == 5 * 40 * 5
    for site in sites:
        stored = [r.seq for r in await store.list_records(site_id=site, limit=10_000)]
        assert stored == list(range(1, 201))
        assert (await store.get_site(site)).contiguous_seq == 200  # type: ignore[union-attr]


EDGE_WITH_WILL = textwrap.dedent(
    """
    import sys, time
    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion
    from edge_core.telemetry import protocol as p
    host, port, site = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="edge-" + site, protocol=mqtt.MQTTv311)
    c.will_set(p.topic(site, "state"), p.OFFLINE, qos=1, retain=True)
    c.connect(host, port, keepalive=5)
    c.loop_start()
    state = p.State(status="online", version="9.9.9", mode="survivable", at=time.time())
    c.publish(p.topic(site, "state"), state.to_bytes(), qos=1, retain=True).wait_for_publish()
    print("online", flush=True)
    time.sleep(600)
    """
)


async def test_registry_goes_offline_from_last_will(store: FleetStore, worker: IngestWorker,
                                                    broker: Mosquitto) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-c", EDGE_WITH_WILL, "127.0.0.1", str(broker.port), "branch7"],
        stdout=subprocess.PIPE, cwd=Path(__file__).parents[2],
    )
    try:
        assert proc.stdout is not None
        assert (await asyncio.to_thread(proc.stdout.readline)).strip() == b"online"
        site = await wait_for_coro(lambda: _site_status(store, "branch7", "online"), 20, what="site online")
        assert site.version == "9.9.9" and site.mode == "survivable"
        kinds = {a.kind for a in await store.list_alarms(site_id="branch7")}
        assert kinds == {"survivable_mode"}
        proc.kill()  # SIGKILL: no DISCONNECT, so the broker publishes the will
        proc.wait()
        await wait_for_coro(lambda: _site_status(store, "branch7", "offline"), 30, what="site offline")
        alarms = {a.kind: a for a in await store.list_alarms(site_id="branch7")}
        assert alarms["site_offline"].severity == "critical"
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()


async def _site_status(store: FleetStore, site_id: str, status: str) -> Any:
    site = await store.get_site(site_id)
    return site if site is not None and site.status == status else None


async def test_worker_retries_until_connected(store: FleetStore, tmp_path: Path) -> None:
    """A worker started before its broker keeps retrying and then ingests."""
    mq = Mosquitto(tmp_path / "late")
    w = IngestWorker(store, WorkerSettings(mq.url, "late-0", reconnect_max_s=0.3))
    stop = asyncio.Event()
    task = asyncio.create_task(w.run(stop))
    try:
        await until(lambda: w.stats.connection_failures >= 2, "two failed attempts")
        assert not w.connected.is_set()
        mq.start()
        await until(w.connected.is_set, "connected once the broker is up")
        async with MqttConnection(mq.url, "late-edge") as edge:
            batch = p.OutboxBatch(records=[p.Record(seq=1, kind="event", at=1.0, body={})])
            await edge.publish_confirmed(p.topic("s9", "outbox"), batch.to_bytes())
        await wait_for_coro(lambda: _count_is(store, "s9", 1), 20, what="stored")
    finally:
        stop.set()
        await asyncio.wait_for(task, 10)
        mq.stop()
