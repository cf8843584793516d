"""An update result the agent could not send reaches the fleet later, once.

Real parts: a private mosquitto; the fleet's NOC API with its rollout control loop
(uvicorn) and an ingest worker storing command results, on one SQLite store; the real
edge daemon (a process) whose box root (``$BRANCHLINE_BOX_ROOT``) holds the agent's
``data/update-last.json``; the agent's own ``report_result`` writing that file. A test
peer (a persistent paho session) catches the campaign's ``update`` command, to learn its
id, and counts every ``cmd/result`` copy.

1. The result is already pending when the edge starts (the agent's broker was out of
   reach): the edge publishes it on connecting; the campaign and the store get it; the
   file is marked sent; a restarted edge does not send it again. Also when the campaign
   had given the site up (install timeout): the real outcome replaces the timeout.
2. The broker is down when the agent finishes, and comes back: the edge, reconnecting,
   sends it; the fleet's consumers (persistent sessions) get it once.

The ingest worker subscribes plainly here (``group=None``, a one-worker fleet): mosquitto
(2.0.11 at least) does not restore ``$share/...`` subscriptions of persistent sessions
from its persistence file, so after a broker restart a shared-subscription worker misses
what is published before it has subscribed again -- test 2 would race on that. The
rollout control loop's plain persistent session does not have that gap.
"""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import paho.mqtt.client as paho
import pytest
import yaml
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import select

from edge_core.telemetry import protocol
from fleet.store import FleetStore, schema
from fleet.worker import IngestWorker, WorkerSettings
from images import agent
from tests.brokers import Mosquitto, mosquitto_binary
from tests.fleet_peer import FleetPeer
from tests.integration.test_rollout_update import fleet_api, placeholder_bundle, upload
from tests.integration.test_telemetry import telemetry_overrides
from tests.sipp import EdgeProcess, deep_merge, default_edge_config, wait_for_async, wait_for_coro

pytestmark = [pytest.mark.skipif(mosquitto_binary() is None, reason="mosquitto not installed"),
              pytest.mark.timeout(180)]

SITE = "test-site"  # default_edge_config's site id
REASON = "api: the control API is turned off (release 2.0.0)"


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Mosquitto]:
    """A private mosquitto whose persistence works (tests/brokers.py runs it as root when
    the tests are root), so the fleet consumers' sessions survive its restart (test 2)."""
    with Mosquitto(tmp_path / "mq") as mq:
        yield mq


class Peer(FleetPeer):
    """FleetPeer that also sees the site's ``cmd`` and counts each ``cmd/result`` copy."""

    def __init__(self, port: int, site: str) -> None:
        super().__init__(port, site)
        self.commands: list[protocol.Command] = []
        self.copies: Counter[str] = Counter()

    def _on_connect(self, client: Any, userdata: Any, flags: Any, reason: Any, properties: Any) -> None:
        client.subscribe([(self.topic("cmd"), 1)])
        super()._on_connect(client, userdata, flags, reason, properties)

    def _take(self, message: paho.MQTTMessage) -> None:
        _, kind = protocol.parse_topic(message.topic)
        if kind == "cmd":
            with self.lock:
                self.commands.append(protocol.Command.from_bytes(bytes(message.payload)))
            return
        if kind == "cmd/result":
            with self.lock:
                self.copies[protocol.CommandResult.from_bytes(bytes(message.payload)).id] += 1
        super()._take(message)

    def update_command(self) -> protocol.Command | None:
        with self.lock:
            return next((c for c in self.commands if c.op == protocol.UPDATE_OP), None)

    def online_states(self) -> int:
        with self.lock:
            return sum(s["status"] == "online" for s in self.states)


@dataclass
class Fleet:
    api: httpx.AsyncClient
    store: FleetStore
    worker: IngestWorker
    peer: Peer
    cid: int
    command: protocol.Command

    @property
    def controller(self) -> Any:
        return self.api.app_state.rollout_controller  # type: ignore[attr-defined]

    async def campaign(self) -> dict[str, Any]:
        return dict((await self.api.get(f"/api/v1/rollouts/{self.cid}")).json())

    async def stored(self) -> list[Any]:
        async with self.store.engine.connect() as conn:
            c = schema.commands
            return list((await conn.execute(select(c).where(c.c.site_id == SITE))).all())


@asynccontextmanager
async def fleet(tmp_path: Path, mq: Mosquitto, *, install_timeout_s: float = 600) -> AsyncIterator[Fleet]:
    """API + control loop + ingest worker + peer; a campaign to SITE whose ``update``
    command went out (no edge listens yet) and is in hand."""
    bundle = placeholder_bundle(tmp_path, "2.0.0")
    async with fleet_api(tmp_path, mq.url) as api:
        store: FleetStore = api.app_state.ctx.store  # type: ignore[attr-defined]
        worker = IngestWorker(store, WorkerSettings(mq.url, "fleet-test-w0", group=None, reconnect_max_s=0.3))
        stop = asyncio.Event()
        task = asyncio.create_task(worker.run(stop))
        peer = Peer(mq.port, SITE)
        peer.start()
        try:
            await wait_for_async(worker.connected.is_set, 20, what="the ingest worker connected")
            await wait_for_async(lambda: api.app_state.rollout_controller.conn is not None,  # type: ignore[attr-defined]
                                 20, what="the rollout control loop connected")
            sha = (await upload(api, bundle))["sha256"]
            r = await api.post("/api/v1/rollouts", json={
                "name": "2.0.0", "bundle": sha, "sites": [SITE], "waves": [1], "error_threshold": 0,
                "window_start_h": 0, "window_end_h": 0, "install_timeout_s": install_timeout_s})
            assert r.status_code == 201, r.text
            command = await wait_for_async(peer.update_command, 20, what="the campaign's update command")
            yield Fleet(api, store, worker, peer, int(r.json()["id"]), command)
        finally:
            peer.stop()
            stop.set()
            await asyncio.wait_for(task, 30)


def box_root(tmp_path: Path, broker_url: str) -> Path:
    """A box root as far as the result goes: ``etc/site.yaml`` (the agent's telemetry
    settings) and ``data/``."""
    root = tmp_path / "box"
    (root / "etc").mkdir(parents=True)
    (root / "data").mkdir()
    (root / "etc" / "site.yaml").write_text(yaml.safe_dump({
        "site": {"id": SITE}, "telemetry": {"enabled": True, "broker_url": broker_url}}))
    return root


def rolled_back(command: protocol.Command) -> protocol.CommandResult:
    """The agent's answer for a release whose health check failed."""
    body = protocol.UpdateResult(stage="done", version="2.0.0", outcome="rolled_back", check="api", reason=REASON)
    return protocol.CommandResult(id=command.id, ok=False, result=body.model_dump(), error=f"rolled_back: {REASON}")


def the_agent_finishes(root: Path, answer: protocol.CommandResult) -> bool:
    """What ``python -m images.agent`` does after the install: under its lock, keep the
    result and try to publish it (briefly: the broker is out of reach in these tests)."""
    with agent.agent_lock(root):
        return agent.report_result(root, answer, give_up_s=0.5)


def result_file(root: Path) -> dict[str, Any]:
    return dict(json.loads((root / agent.LAST_RESULT).read_text()))


def edge_process(tmp_path: Path, mq: Mosquitto, root: Path) -> EdgeProcess:
    workdir = tmp_path / "edge"
    workdir.mkdir()
    config = deep_merge(default_edge_config(workdir), telemetry_overrides(mq, Ed25519PrivateKey.generate()))
    return EdgeProcess(workdir, config, env={"BRANCHLINE_BOX_ROOT": str(root)})


async def delivered_once(f: Fleet, root: Path) -> None:
    """The campaign has the result with its reason, the store has it, the file says sent,
    and exactly one copy went over the broker."""
    rid = f.command.id

    async def campaign_over() -> dict[str, Any] | None:
        body = await f.campaign()
        site = body["sites"][0]
        return body if site["state"] != "installing" and site["check"] != "timeout" else None

    body = await wait_for_coro(campaign_over, 60, interval_s=0.1, what="the campaign got the result")
    assert body["state"] == "halted" and "1 of 1 failed" in body["halt_reason"], body
    (site,) = body["sites"]
    assert (site["site_id"], site["state"], site["check"], site["reason"]) == (SITE, "rolled_back", "api", REASON)

    async def stored() -> list[Any]:
        return [r for r in await f.stored() if r.id == rid]

    (row,) = await wait_for_coro(stored, 30, interval_s=0.1, what="the result in the fleet store")
    assert row.ok is False and row.result["outcome"] == "rolled_back" and row.result["reason"] == REASON
    await wait_for_async(lambda: result_file(root)["sent"] is True, 20, what="the result file marked sent")
    assert f.peer.copies[rid] == 1
    assert f.controller.counters["results"] == 1 and f.controller.counters["ignored"] == 0


async def no_second_copy(f: Fleet, edge: EdgeProcess) -> EdgeProcess:
    """Restart the edge: once it answers a ping on its new connection, it has looked at
    the (sent) result already and sent nothing (a copy would have come before the pong)."""
    online = f.peer.online_states()
    await asyncio.to_thread(edge.stop)
    edge = EdgeProcess(edge.workdir, edge.config, env={"BRANCHLINE_BOX_ROOT": edge.env["BRANCHLINE_BOX_ROOT"]})
    await asyncio.to_thread(edge.start)
    await wait_for_async(lambda: f.peer.online_states() > online, 30, what="the edge online again")
    ping = f.peer.command("ping")
    check: Callable[[], Any] = lambda: f.peer.results.get(ping)  # noqa: E731
    await wait_for_async(check, 20, what="the pong")
    assert f.peer.copies[f.command.id] == 1
    assert f.controller.counters["ignored"] == 0
    return edge


@pytest.mark.parametrize("timed_out", [False, True], ids=["in-time", "after-the-install-timeout"])
async def test_a_pending_result_is_sent_when_the_edge_connects(tmp_path: Path, broker: Mosquitto,
                                                               timed_out: bool) -> None:
    async with fleet(tmp_path, broker, install_timeout_s=1 if timed_out else 600) as f:
        # the agent's own broker connection failed (a WAN cut): nothing reached the fleet
        unreachable = f"mqtt://127.0.0.1:{Mosquitto(tmp_path / 'nobody').port}"
        root = box_root(tmp_path, unreachable)
        assert await asyncio.to_thread(the_agent_finishes, root, rolled_back(f.command)) is False
        assert result_file(root)["sent"] is False
        if timed_out:  # the campaign gave up on the site: the late result still tells what happened
            async def timed_out_site() -> bool:
                return bool((await f.campaign())["sites"][0]["check"] == "timeout")

            await wait_for_coro(timed_out_site, 30, interval_s=0.1, what="the site's install timeout")
        else:
            assert (await f.campaign())["sites"][0]["state"] == "installing"

        edge = edge_process(tmp_path, broker, root)
        await asyncio.to_thread(edge.start)
        try:
            await delivered_once(f, root)
            edge = await no_second_copy(f, edge)
        finally:
            await asyncio.to_thread(edge.stop)


async def test_broker_down_when_the_agent_finishes_then_back(tmp_path: Path, broker: Mosquitto) -> None:
    async with fleet(tmp_path, broker) as f:
        root = box_root(tmp_path, broker.url)
        edge = edge_process(tmp_path, broker, root)
        await asyncio.to_thread(edge.start)
        try:
            await wait_for_async(lambda: f.peer.online_states() > 0, 30, what="the edge online")
            await asyncio.to_thread(broker.stop)
            assert await asyncio.to_thread(the_agent_finishes, root, rolled_back(f.command)) is False
            assert result_file(root)["sent"] is False
            await asyncio.to_thread(broker.start)
            await delivered_once(f, root)
            edge = await no_second_copy(f, edge)
        finally:
            await asyncio.to_thread(edge.stop)
