"""MQTT credentials from enrollment really authenticate at mosquitto, on SQLite and
PostgreSQL.

A real mosquitto (``allow_anonymous false``, password and ACL files the fleet owns,
reloaded by SIGHUP through its pid file) and the real NOC API (uvicorn, lifespan on) with
``broker_auth`` set. Every fleet connection uses the fleet's own credentials from its
broker URL. Shown: an enrolled site connects with what enrollment answered and nothing
else does; a site neither receives from nor publishes into another site's topics (a
fleet subscriber sees a sentinel published afterwards, never the forged message); after
a rotation the old password is refused (the connected client is dropped) and the new
one works; the fleet's ingest worker ($share subscription) and config push still work;
a broker that cannot be reloaded makes enrollment fail without using up the token.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import Any

import httpx
import paho.mqtt.client as paho
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from edge_core.telemetry import protocol as p
from fleet.broker_auth import BrokerAuth, check_password, hash_password
from fleet.mqtt import BROKER_ENV, MqttConnection, MqttError
from fleet.store import FleetStore
from fleet.worker import IngestWorker, WorkerSettings
from tests.brokers import Mosquitto, mosquitto_binary
from tests.integration.test_rollout_update import fleet_api as rollout_fleet_api
from tests.sipp import free_tcp_port, wait_for_async, wait_for_coro

pytestmark = pytest.mark.skipif(mosquitto_binary() is None, reason="mosquitto not installed")

ADMIN, VIEWER = "broker-auth-admin-token", "broker-auth-viewer-token"
FLEET_USER, FLEET_PASSWORD = "fleet", "fleet-s3cret:with@odd/chars"
FLEET_PASSWORD_URL = "fleet-s3cret%3Awith%40odd%2Fchars"


class Secured:
    """The broker, its auth files and the fleet's URL (with the fleet's credentials)."""

    def __init__(self, tmp_path: Path, host: str = "127.0.0.1") -> None:
        files = tmp_path / "auth"
        files.mkdir()
        (files / "base.passwd").write_text(f"monitor:{hash_password('monitor-pw')}\n")
        (files / "base.acl").write_text("user monitor\ntopic read $SYS/#\n")
        self.broker = Mosquitto(tmp_path / "mq", password_file=files / "passwd", acl_file=files / "acl", host=host)
        self.auth = BrokerAuth(files / "passwd", files / "acl", pid_file=self.broker.pid_file,
                               fleet_username=FLEET_USER, fleet_password=FLEET_PASSWORD,
                               base_password_file=files / "base.passwd", base_acl_file=files / "base.acl",
                               confirm_url=self.broker.url)
        self.fleet_url = f"mqtt://{FLEET_USER}:{FLEET_PASSWORD_URL}@{host}:{self.broker.port}"

    @property
    def url(self) -> str:
        return self.broker.url


@pytest.fixture
def secured(tmp_path: Path) -> Iterator[Secured]:
    s = Secured(tmp_path)
    s.auth.write([])  # mosquitto refuses to start without its password file
    with s.broker:
        yield s


def fleet_api(tmp_path: Path, db_url: str, secured: Secured) -> AbstractAsyncContextManager[httpx.AsyncClient]:
    """The NOC API on a free port with broker auth; its config publisher connects with
    the fleet's credentials (no rollout control loop). Yields a client with the admin
    token."""
    return rollout_fleet_api(tmp_path, None, db_url=db_url, config_broker=secured.fleet_url, admin=ADMIN,
                             viewer=VIEWER, broker_auth=secured.auth)


def _public_pem() -> str:
    return Ed25519PrivateKey.generate().public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode()


async def issue_token(api: httpx.AsyncClient, site: str) -> str:
    r = await api.post("/api/v1/enroll-tokens", json={"site": site, "expires_in_s": 600})
    assert r.status_code == 201, r.text
    return str(r.json()["token"])


async def enroll(api: httpx.AsyncClient, site: str) -> dict[str, Any]:
    r = await api.post("/api/v1/enroll", json={"token": await issue_token(api, site), "public_key": _public_pem()})
    assert r.status_code == 200, r.text
    return dict(r.json())


def edge(url: str, site: str, answer: dict[str, Any], client_id: str | None = None) -> MqttConnection:
    return MqttConnection(url, client_id or f"edge-{site}", username=answer["mqtt_username"],
                          password=answer["mqtt_password"], connect_timeout_s=5)


async def refused(url: str, username: str | None, password: str | None) -> str:
    """Connect; the broker's refusal (the test fails if it accepts)."""
    with pytest.raises(MqttError) as err:
        async with MqttConnection(url, "intruder", username=username, password=password, connect_timeout_s=5):
            pass
    assert "Not authorized" in str(err.value) or "Bad user name or password" in str(err.value), err.value
    return str(err.value)


async def received_until(conn: MqttConnection, sentinel_topic: str, timeout_s: float = 10) -> list[paho.MQTTMessage]:
    """Messages up to and including the first on ``sentinel_topic``."""
    got: list[paho.MQTTMessage] = []
    while not got or got[-1].topic != sentinel_topic:
        got.append(await asyncio.wait_for(conn.messages.get(), timeout_s))
    return got


async def test_enrolled_sites_connect_with_their_credentials_and_stay_in_their_topics(
        tmp_path: Path, db_url: str, secured: Secured) -> None:
    url = secured.url
    await refused(url, None, None)  # anonymous
    async with fleet_api(tmp_path, db_url, secured) as api:
        a, b = await enroll(api, "a1"), await enroll(api, "b2")
        assert a["mqtt_username"] == "site-a1" and a["telemetry"]["username"] == "site-a1"
        assert a["telemetry"]["password"] == a["mqtt_password"]
        assert a["broker_url"] == a["telemetry"]["broker_url"] == url  # never the fleet's own credentials

        await refused(url, "site-a1", "wrong")
        await refused(url, "site-a1", b["mqtt_password"])
        await refused(url, "site-a1", None)
        async with edge(url, "a1", a) as ea, edge(url, "b2", b) as eb, \
                MqttConnection(secured.fleet_url, "fleet-watch") as fleet:
            await fleet.subscribe([(f"{p.PREFIX}/+/state", 1), (f"{p.PREFIX}/+/config", 1)])
            # a1 writes into b2's state and its own config (neither is allowed), then its own state
            await ea.publish_confirmed(p.topic("b2", "state"), b"forged by a1")
            await ea.publish_confirmed(p.topic("a1", "config"), b"a1 may not write its config")
            await ea.publish_confirmed(p.topic("a1", "state"), b"sentinel")
            seen = await received_until(fleet, p.topic("a1", "state"))
            assert [(m.topic, bytes(m.payload)) for m in seen] == [(p.topic("a1", "state"), b"sentinel")]

            # a1 subscribes to b2's commands (directly and by wildcards); b2 gets its own, a1 only its own
            await ea.subscribe([(p.topic("b2", "cmd"), 1), (f"{p.PREFIX}/+/cmd", 1), (f"{p.PREFIX}/#", 1)])
            await eb.subscribe([(p.topic("b2", "cmd"), 1)])
            await fleet.publish_confirmed(p.topic("b2", "cmd"), b"for b2")
            await fleet.publish_confirmed(p.topic("a1", "cmd"), b"sentinel")
            seen = await received_until(ea, p.topic("a1", "cmd"))
            assert {m.topic for m in seen} == {p.topic("a1", "cmd")}, [m.topic for m in seen]
            got_b = await asyncio.wait_for(eb.messages.get(), 10)
            assert (got_b.topic, bytes(got_b.payload)) == (p.topic("b2", "cmd"), b"for b2")

        # the operator's own user from the base files still works
        async with MqttConnection(url, "monitor", username="monitor", password="monitor-pw"):
            pass
    devices = (secured.auth.password_file.read_text(), secured.auth.acl_file.read_text())
    assert "monitor:" in devices[0] and "user monitor" in devices[1] and "user site-b2" in devices[1]


async def test_rotation_refuses_the_old_password_and_accepts_the_new(
        tmp_path: Path, db_url: str, secured: Secured) -> None:
    url = secured.url
    async with fleet_api(tmp_path, db_url, secured) as api:
        old, other = await enroll(api, "a1"), await enroll(api, "b2")
        r = await api.post("/api/v1/devices/a1/credentials", headers={"Authorization": f"Bearer {VIEWER}"})
        assert r.status_code == 403, r.text
        r = await api.post("/api/v1/devices/nowhere/credentials")
        assert r.status_code == 404 and "nowhere" in r.json()["error"]
        r = await api.post("/api/v1/devices/bad%20site!/credentials")
        assert r.status_code == 422 and r.json()["field"] == "site", r.text

        async with edge(url, "a1", old) as connected:  # connected with the old password
            r = await api.post("/api/v1/devices/a1/credentials")
            assert r.status_code == 200, r.text
            new = r.json()
            assert set(new) == {"site_id", "mqtt_username", "mqtt_password", "telemetry"}
            assert (new["site_id"], new["mqtt_username"]) == ("a1", "site-a1")
            assert new["mqtt_password"] != old["mqtt_password"]
            assert new["telemetry"] == {**old["telemetry"], "password": new["mqtt_password"]}
            # the broker reloaded before the answer: the old session is dropped, the old password refused
            await asyncio.wait_for(asyncio.shield(connected.lost), 10)
        await refused(url, "site-a1", old["mqtt_password"])
        async with edge(url, "a1", new) as ea:
            await ea.subscribe([(p.topic("a1", "cmd"), 1)])
            async with MqttConnection(secured.fleet_url, "fleet-cmd") as fleet:  # the fleet's own user
                await fleet.publish_confirmed(p.topic("a1", "cmd"), b"hello again")
            msg = await asyncio.wait_for(ea.messages.get(), 10)
            assert bytes(msg.payload) == b"hello again"
        async with edge(url, "b2", other):  # the other site is untouched
            pass

        line = next(x for x in secured.auth.password_file.read_text().splitlines() if x.startswith("site-a1:"))
        assert check_password(new["mqtt_password"], line.split(":", 1)[1])
        audit = (await api.get("/api/v1/audit", params={"target": "a1"})).json()
        assert [(e["actor"], e["action"]) for e in audit if e["action"] == "device.credentials"] == \
            [("admin", "device.credentials")]
        assert new["mqtt_password"] not in str(audit)


async def test_the_fleets_own_connections_work_with_its_credentials(
        tmp_path: Path, db_url: str, secured: Secured) -> None:
    async with fleet_api(tmp_path, db_url, secured) as api:
        store: FleetStore = api.app_state.ctx.store  # type: ignore[attr-defined]
        worker = IngestWorker(store, WorkerSettings(secured.fleet_url, "fleet-auth-0", group="fleet"))
        stop = asyncio.Event()
        task = asyncio.create_task(worker.run(stop))
        try:
            await wait_for_async(worker.connected.is_set, 10, what="worker connected with the fleet's user")
            a = await enroll(api, "a1")  # reloads mosquitto under the connected worker
            async with edge(secured.url, "a1", a) as ea:
                await ea.subscribe([(p.topic("a1", "config"), 1)])
                await ea.publish_confirmed(p.topic("a1", "state"), p.State(status="online", version="9.9").to_bytes(),
                                           retain=True)

                async def online() -> bool:
                    site = await store.get_site("a1")
                    return site is not None and site.status == "online" and site.version == "9.9"

                await wait_for_coro(online, 10, what="a1's state ingested through $share")
                r = await api.post("/api/v1/sites/a1/configs", json={"config": {"sip": {"ring_timeout_s": 33}},
                                                                     "reason": "auth test"})
                assert r.status_code in (200, 201), r.text
                msg = await asyncio.wait_for(ea.messages.get(), 10)
                envelope = p.ConfigEnvelope.from_bytes(bytes(msg.payload))
                assert envelope.config["sip"]["ring_timeout_s"] == 33
                r = await api.post("/api/v1/devices/a1/credentials")  # another reload
                assert r.status_code == 200, r.text
            # the fleet's session lived through both reloads
            assert (worker.stats.connects, worker.stats.connection_failures) == (1, 0)
        finally:
            stop.set()
            await asyncio.wait_for(task, 10)


async def test_a_broker_that_cannot_reload_fails_enrollment_and_keeps_the_token(
        tmp_path: Path, db_url: str, secured: Secured) -> None:
    async with fleet_api(tmp_path, db_url, secured) as api:
        token = await issue_token(api, "a1")
        pem = _public_pem()
        before = secured.auth.password_file.read_text()
        pid_file = secured.auth.pid_file
        secured.auth.pid_file = tmp_path / "no-such.pid"
        r = await api.post("/api/v1/enroll", json={"token": token, "public_key": pem})
        assert r.status_code == 503 and "pid file" in r.json()["error"], r.text
        assert secured.auth.password_file.read_text() == before  # written back from the table
        assert (await api.get("/api/v1/devices")).json() == []

        secured.auth.pid_file = pid_file
        r = await api.post("/api/v1/enroll", json={"token": token, "public_key": pem})
        assert r.status_code == 200, r.text
        async with edge(secured.url, "a1", r.json()):
            pass


async def test_a_password_hashed_by_the_fleet_is_accepted_by_mosquitto(secured: Secured) -> None:
    from fleet.broker_auth import SiteCredentials

    password = "ünïcode: $7$ and spaces"
    secured.auth.write([SiteCredentials("h1", "site-h1", hash_password(password))])
    secured.broker.reload()

    async def accepted() -> bool:
        try:
            async with MqttConnection(secured.url, "hash-check", username="site-h1", password=password,
                                      connect_timeout_s=2):
                return True
        except MqttError:
            return False

    await wait_for_coro(accepted, 10, what="mosquitto accepts the fleet's hash after SIGHUP")
    await refused(secured.url, "site-h1", password + "!")


async def test_fleet_run_keeps_mosquitto_in_step(tmp_path: Path) -> None:
    """The same through ``fleet run`` (supervisor, worker and API processes), in the order
    an operator starts them: the fleet first (its API writes the files mosquitto needs to
    start), then mosquitto."""
    secured = Secured(tmp_path)
    http = free_tcp_port()
    files = secured.auth.password_file.parent
    argv = [sys.executable, "-m", "fleet.service", "run", "--db", f"sqlite+aiosqlite:///{tmp_path}/fleet.db",
            "--workers", "1", "--client-prefix", "auth-svc-test",
            "--http", f"127.0.0.1:{http}", "--tokens", str(tmp_path / "tokens.json"),
            "--signing-key", str(tmp_path / "fleet.pem"), "--stats-dir", str(tmp_path / "stats"),
            "--mosquitto-password-file", str(secured.auth.password_file),
            "--mosquitto-acl-file", str(secured.auth.acl_file),
            "--mosquitto-pid-file", str(secured.broker.pid_file),
            "--mosquitto-base-password-file", str(files / "base.passwd"),
            "--mosquitto-base-acl-file", str(files / "base.acl")]
    # the broker URL with the fleet's password in the environment, as the systemd unit's
    # EnvironmentFile gives it: no process of the fleet shows it on its command line
    proc = subprocess.Popen(argv, env={**os.environ, "BRANCHLINE_FLEET_ADMIN_TOKEN": ADMIN,
                                       BROKER_ENV: secured.fleet_url})
    try:
        await wait_for_async(secured.auth.acl_file.exists, 30, what="the fleet wrote mosquitto's files")
        with secured.broker:
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{http}", timeout=30,
                                         headers={"Authorization": f"Bearer {ADMIN}"}) as api:
                async def up() -> bool:
                    try:
                        return (await api.get("/api/v1/whoami")).status_code == 200
                    except httpx.TransportError:
                        return False

                await wait_for_coro(up, 30, interval_s=0.1, what="the API answers")
                a = await enroll(api, "a1")
                assert a["broker_url"] == secured.url
                async with edge(secured.url, "a1", a) as ea:
                    await ea.publish_confirmed(p.topic("a1", "state"),
                                               p.State(status="online", version="9.9").to_bytes(), retain=True)

                    async def site_online() -> bool:
                        sites = (await api.get("/api/v1/sites")).json()["sites"]
                        return any(s["id"] == "a1" and s["status"] == "online" for s in sites)

                    await wait_for_coro(site_online, 30, interval_s=0.1, what="a1 online through the fleet's worker")
                    r = await api.post("/api/v1/devices/a1/credentials")
                    assert r.status_code == 200, r.text
                    await asyncio.wait_for(asyncio.shield(ea.lost), 10)
                await refused(secured.url, "site-a1", a["mqtt_password"])
                async with edge(secured.url, "a1", r.json()) as ea:
                    await ea.publish_confirmed(p.topic("a1", "state"),
                                               p.State(status="online", version="9.10").to_bytes(), retain=True)

                def worker_stats() -> dict[str, Any] | None:
                    path = tmp_path / "stats" / "worker-0.json"
                    stats = json.loads(path.read_text()) if path.exists() else {}
                    return stats if stats.get("accepted", 0) >= 2 else None

                # both states ingested by a worker whose session lived through both reloads
                stats = await wait_for_async(worker_stats, 30, what="the worker took both states")
                assert stats["connects"] == 1, stats
                family = [proc.pid, *_children(proc.pid)]
                assert len(family) >= 3  # supervisor, worker, API
                for pid in family:
                    cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
                    assert FLEET_PASSWORD.encode() not in cmdline and FLEET_PASSWORD_URL.encode() not in cmdline
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0


def _children(pid: int) -> list[int]:
    """Direct children of ``pid`` (from /proc/*/stat)."""
    out = []
    for stat_file in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat_file.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            out.append(int(stat_file.parent.name))
    return out
