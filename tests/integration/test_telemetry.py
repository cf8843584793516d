"""The edge's MQTT reporting end to end: the real edge daemon, a private mosquitto, and
the fleet's side played by a plain paho client in the test (tests/fleet_peer.py).

Calls are made by the simulated phones (appliance/sim); the local control API is read
over its unix socket with httpx. Nothing is mocked; nothing sleeps to wait.
"""

from __future__ import annotations

import base64
import sqlite3
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from appliance.sim.phones import Phone
from edge_core.telemetry import protocol
from tests.brokers import Mosquitto, mosquitto_binary
from tests.fleet_peer import FleetPeer
from tests.sipp import EdgeProcess, wait_for_async

pytestmark = [
    pytest.mark.timeout(120),
    pytest.mark.skipif(mosquitto_binary() is None, reason="mosquitto not installed"),
]

SITE = "test-site"  # tests/sipp.py default_edge_config
DOMAIN = "test.local"
USERS = {"1001": "pw1001", "2001": "pw2001"}


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Mosquitto]:
    with Mosquitto(tmp_path / "broker") as broker:
        yield broker


@pytest.fixture
def fleet_key() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.generate()


@pytest.fixture
def fleet(broker: Mosquitto) -> Iterator[FleetPeer]:
    with FleetPeer(broker.port, SITE) as peer:
        yield peer


def telemetry_overrides(broker: Mosquitto, key: Ed25519PrivateKey, **extra: Any) -> dict[str, Any]:
    raw = key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return {
        "sip": {"t1_ms": 100},
        "media": {"record_calls": False},
        "telemetry": {
            "enabled": True, "broker_url": broker.url, "fleet_public_key": base64.b64encode(raw).decode(),
            "metrics_interval_s": 0.5, "reconnect_min_s": 0.1, "reconnect_max_s": 0.5,
            "ack_timeout_s": 5, "keepalive_s": 5, **extra,
        },
        # the broker's outages here are not WAN losses: the mode (and its events on the
        # outbox) is left out; tests/integration/test_survivable_routing.py has it
        "routing": {"wan": {"signals": ["trunks"]}},
    }  # fmt: skip


@pytest.fixture
def edge(edge_factory: Callable[..., EdgeProcess], broker: Mosquitto, fleet_key: Ed25519PrivateKey,
         fleet: FleetPeer) -> EdgeProcess:  # fmt: skip
    return edge_factory(telemetry_overrides(broker, fleet_key))


@pytest.fixture
async def phones(edge: EdgeProcess) -> AsyncIterator[dict[str, Phone]]:
    made = {n: Phone(n, p, edge.sip_udp, DOMAIN) for n, p in USERS.items()}
    for phone in made.values():
        await phone.start()
    try:
        for phone in made.values():
            await phone.register()
        yield made
    finally:
        for phone in made.values():
            await phone.close()


def outbox_rows(edge: EdgeProcess) -> int:
    db = sqlite3.connect(edge.config["store"]["path"])
    try:
        return int(db.execute("SELECT count(*) FROM outbox").fetchone()[0])
    finally:
        db.close()


def api(edge: EdgeProcess) -> httpx.AsyncClient:
    socket = str(edge.workdir / edge.ready["api_socket"])
    return httpx.AsyncClient(transport=httpx.AsyncHTTPTransport(uds=socket), base_url="http://edge")


def online(fleet: FleetPeer) -> bool:
    state = fleet.last_state()
    return state is not None and state["status"] == "online"


# -- (b) a real call's CDR: on the outbox once, deleted after the ack -----------------------------
async def test_a_calls_cdr_reaches_the_fleet_once_and_is_deleted_after_the_ack(
    edge: EdgeProcess, phones: dict[str, Phone], fleet: FleetPeer
) -> None:
    await wait_for_async(lambda: online(fleet), 15, what="state online")
    result = await phones["1001"].call("2001", talk_s=0.3, callee=phones["2001"])
    assert result.status == 200, result.line(1)

    (cdr,) = await wait_for_async(lambda: fleet.of_kind("cdr"), 15, what="the CDR on outbox")
    assert cdr.body["from_number"] == "1001" and cdr.body["to_number"] == "2001"
    assert cdr.body["disposition"] == "answered"
    await wait_for_async(lambda: outbox_rows(edge) == 0, 15, what="the acked record deleted")
    assert fleet.deliveries[cdr.seq] == 1  # exactly once: no resend was needed

    def registered_two() -> dict[str, float] | None:
        return next((m.gauges for m in reversed(fleet.metrics) if m.gauges["registrations"] == 2), None)

    gauges = await wait_for_async(registered_two, 10, what="metrics with the two registrations")
    assert {"calls_active", "media.packets_relayed", "disk_free_bytes", "mem_rss_bytes"} <= set(gauges)
    assert fleet.last_state() is not None and fleet.last_state()["kernels"]  # type: ignore[index]

    edge.stop()  # a clean stop says offline itself (no last-will needed)
    await wait_for_async(lambda: not online(fleet), 10, what="state offline")
    assert sum(fleet.deliveries.values()) == len(fleet.records) == 1


# -- (c) broker stopped and restarted mid-stream ---------------------------------------------------
async def test_records_made_while_the_broker_is_down_arrive_after_it_is_back(
    edge: EdgeProcess, phones: dict[str, Phone], fleet: FleetPeer, broker: Mosquitto
) -> None:
    alice = phones["1001"]

    async def refused_calls(n: int) -> None:  # each one is a CDR (404), made in milliseconds
        for _ in range(n):
            assert (await alice.call("12345", talk_s=0.1)).status == 404

    await wait_for_async(lambda: online(fleet), 15, what="state online")
    await refused_calls(5)
    await wait_for_async(lambda: fleet.acked >= 5, 15, what="the first 5 records acked")

    broker.stop()
    await refused_calls(5)  # the edge takes calls without the WAN; records wait in the outbox
    await wait_for_async(lambda: outbox_rows(edge) >= 5, 10, what="5 records kept in the outbox")
    broker.start()
    await refused_calls(5)

    await wait_for_async(lambda: fleet.acked == 15, 30, what="all 15 records after the restart")
    records = fleet.of_kind("cdr")
    assert [r.seq for r in records] == list(range(1, 16))
    assert len({r.body["call_id"] for r in records}) == 15  # 15 different calls, none lost
    await wait_for_async(lambda: outbox_rows(edge) == 0, 15, what="the outbox emptied")


# -- (d) last-will ------------------------------------------------------------------------------------
async def test_the_last_will_marks_the_site_offline_when_the_edge_is_killed(
    edge: EdgeProcess, fleet: FleetPeer, broker: Mosquitto
) -> None:
    await wait_for_async(lambda: online(fleet), 15, what="state online")
    edge.kill()  # SIGKILL by pid: no DISCONNECT, the broker publishes the will
    await wait_for_async(lambda: not online(fleet), 15, what="the last-will")
    assert fleet.last_state()["status"] == "offline"  # type: ignore[index]
    with FleetPeer(broker.port, SITE) as late:  # retained: a fleet worker starting now sees it
        state = await wait_for_async(late.last_state, 10, what="the retained state")
        assert state["status"] == "offline"


# -- (e) configs from the fleet -------------------------------------------------------------------
def _desired(edge: EdgeProcess, **changes: Any) -> dict[str, Any]:
    config = dict(edge.config)
    config.update(changes)
    return config


async def test_signed_config_applied_bad_ones_rejected_running_config_kept(
    edge: EdgeProcess, fleet: FleetPeer, fleet_key: Ed25519PrivateKey, phones: dict[str, Phone]
) -> None:
    await wait_for_async(lambda: online(fleet), 15, what="state online")
    extensions = [*edge.config["extensions"], {"number": "3001", "password": "pw3001", "name": "New"}]
    good = _desired(edge, extensions=extensions)
    fleet.push_config(protocol.sign_config(fleet_key, SITE, 2, good, author="noc", reason="new desk"))
    report = fleet.report(2)
    assert (report.status, report.reason) == ("applied", "")
    async with api(edge) as client:
        running = (await client.get("/v1/config")).json()
    assert (running["version"], running["origin"]) == (2, "fleet")
    assert "3001" in [e["number"] for e in running["config"]["extensions"]]
    assert running["config"]["extensions"][0]["password"] == "***"
    # the new extension works at once: it registers without a restart
    async with Phone("3001", "pw3001", edge.sip_udp, DOMAIN) as newcomer:
        await newcomer.register()
    await wait_for_async(lambda: online(fleet) and fleet.last_state()["config_version"] == 2, 10,  # type: ignore[index]
                         what="state with config v2")  # fmt: skip

    impostor = Ed25519PrivateKey.generate()
    fleet.push_config(protocol.sign_config(impostor, SITE, 3, _desired(edge, extensions=[])))
    report = fleet.report(3)
    assert report.status == "rejected" and "bad signature" in report.reason

    invalid = _desired(edge, routes=[{"match": "^9(\\d+)$", "trunk": "nowhere"}])
    fleet.push_config(protocol.sign_config(fleet_key, SITE, 4, invalid))
    report = fleet.report(4)
    assert report.status == "rejected"
    assert "routes[0].trunk: no trunk named 'nowhere'" in report.reason

    other_site = protocol.sign_config(fleet_key, "elsewhere", 5, good)
    fleet.push_config(other_site)
    report = fleet.report(5)
    assert report.status == "rejected" and "for site 'elsewhere'" in report.reason

    fleet.push_config(b'{"site": "test-site", "version": 6}')  # malformed: no config, no signature
    report = fleet.report(6)
    assert report.status == "rejected" and "config" in report.reason

    async with api(edge) as client:
        running = (await client.get("/v1/config")).json()
        assert running["version"] == 2  # untouched by the three rejections
        assert "3001" in [e["number"] for e in running["config"]["extensions"]]
        # the local API takes the same path: every bad field named, nothing changed
        bad = dict(invalid, extensions=[{"number": "x", "password": "1"}])
        response = await client.post("/v1/config", json=bad)
        assert response.status_code == 422, response.text
        fields = {d["field"] for d in response.json()["detail"]}
        assert {"extensions[0].number", "extensions[0].password"} <= fields
        assert (await client.get("/v1/config")).json()["version"] == 2

    # a restart comes back on the applied config, not on the file
    edge.stop()
    with fleet.lock:
        fleet.reports.clear()
    edge.proc = None
    edge.start()
    async with api(edge) as client:
        running = (await client.get("/v1/config")).json()
    assert (running["version"], running["origin"]) == (2, "fleet")
    assert "3001" in [e["number"] for e in running["config"]["extensions"]]
    report = fleet.report(6)  # the retained (malformed) envelope is met again, and refused again
    assert report.status == "rejected"


async def test_local_api_applies_a_yaml_config(edge: EdgeProcess) -> None:
    import yaml

    config = _desired(edge, extensions=[*edge.config["extensions"], {"number": "3002", "password": "pw3002"}])
    async with api(edge) as client:
        response = await client.post("/v1/config", content=yaml.safe_dump(config),
                                     headers={"content-type": "application/yaml"})  # fmt: skip
        assert response.status_code == 200, response.text
        assert response.json()["origin"] == "api"
        response = await client.post("/v1/config", content=b"site: [unclosed")
        assert response.status_code == 422 and "YAML" in response.json()["error"]
        running = (await client.get("/v1/config")).json()
    assert running["origin"] == "api"
    assert "3002" in [e["number"] for e in running["config"]["extensions"]]


# -- (f) commands ---------------------------------------------------------------------------------------
async def test_commands_are_answered_with_their_correlation_id(
    edge: EdgeProcess, fleet: FleetPeer, phones: dict[str, Phone]
) -> None:
    await wait_for_async(lambda: online(fleet), 15, what="state online")
    ping = fleet.command("ping")
    diagnostics = fleet.command("diagnostics")
    unknown = fleet.command("reboot-the-world")
    answer = fleet.result(ping)
    assert answer.ok and answer.result["pong"] is True
    answer = fleet.result(diagnostics)
    assert answer.ok and answer.id == diagnostics
    assert answer.result["db_integrity"] == ["ok"]
    assert answer.result["outbox_backlog"] == 0
    assert answer.result["kernels"]
    answer = fleet.result(unknown)
    assert not answer.ok and "unknown op" in answer.error

    answer = fleet.result(fleet.command("logs", lines=50))
    assert answer.ok and any("connected to broker" in line for line in answer.result["lines"])

    answer = fleet.result(fleet.command("maintenance", on=True))
    assert answer.ok
    assert (await phones["1001"].call("2001", talk_s=0.1)).status == 503
    assert fleet.result(fleet.command("maintenance", on=False)).ok
    result = await phones["1001"].call("2001", talk_s=0.1, callee=phones["2001"])
    assert result.status == 200, result.line(1)
    events = await wait_for_async(lambda: len(fleet.of_kind("event")) >= 2 and fleet.of_kind("event"), 10,
                                  what="the maintenance events")  # fmt: skip
    assert [(e.body["type"], e.body["on"]) for e in events] == [("maintenance", True), ("maintenance", False)]


async def test_the_edge_takes_calls_with_no_broker_and_keeps_the_records(
    edge_factory: Callable[..., EdgeProcess], fleet_key: Ed25519PrivateKey, tmp_path: Path
) -> None:
    nowhere = Mosquitto(tmp_path / "never-started")  # a free port nobody listens on
    edge = edge_factory(telemetry_overrides(nowhere, fleet_key))
    async with Phone("1001", "pw1001", edge.sip_udp, DOMAIN) as alice, \
            Phone("2001", "pw2001", edge.sip_udp, DOMAIN) as bob:  # fmt: skip
        await alice.register()
        await bob.register()
        result = await alice.call("2001", talk_s=0.2, callee=bob)
        assert result.status == 200, result.line(1)
    edge.stop(timeout_s=10)  # at once: nothing waits on the broker
    assert outbox_rows(edge) == 1  # the CDR waits for the next start with a broker
    assert "cannot reach" in edge.stderr_text()


async def test_shutdown_flushes_the_cdrs_of_calls_it_hangs_up(
    edge: EdgeProcess, phones: dict[str, Phone], fleet: FleetPeer
) -> None:
    import asyncio

    await wait_for_async(lambda: online(fleet), 15, what="state online")
    call = asyncio.ensure_future(phones["1001"].call("2001", talk_s=30, callee=phones["2001"]))
    async with api(edge) as client:
        async def answered() -> bool:
            calls = (await client.get("/v1/calls")).json()["calls"]
            return any(c["state"] == "answered" for c in calls)

        deadline = asyncio.get_running_loop().time() + 10
        while not await answered():
            assert asyncio.get_running_loop().time() < deadline, "the call was not answered"
            await asyncio.sleep(0.02)  # polling the API for the answer, bounded above
    await asyncio.to_thread(edge.stop)  # the edge hangs up (BYE), writes the CDR, sends it
    await call
    (cdr,) = fleet.of_kind("cdr")  # already there when the edge has exited
    assert cdr.body["cause"] == "shutdown"
    assert outbox_rows(edge) == 0  # acked before the disconnect
    assert fleet.last_state()["status"] == "offline"  # type: ignore[index]
