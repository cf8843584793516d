"""``branchline fleet run --http host:port``: the supervisor runs the NOC API as a child
next to the ingest workers, against a real mosquitto. An edge's state arrives through a
worker and shows in the API; a config pushed through the API is signed and retained at
the broker; SIGTERM stops everything with exit code 0."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from edge_core.telemetry import protocol as p
from fleet.configs import load_signing_key, public_key_b64
from fleet.mqtt import MqttConnection
from tests.brokers import Mosquitto, mosquitto_binary
from tests.sipp import wait_for_coro

pytestmark = pytest.mark.skipif(mosquitto_binary() is None, reason="mosquitto not installed")

ADMIN = "service-test-admin-token"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_fleet_run_serves_the_api(tmp_path: Path) -> None:
    port = free_port()
    key_path = tmp_path / "fleet.pem"
    with Mosquitto(tmp_path / "mq") as broker:
        argv = [sys.executable, "-m", "fleet.service", "run", "--db", f"sqlite+aiosqlite:///{tmp_path}/fleet.db",
                "--broker", broker.url, "--workers", "1", "--client-prefix", "api-svc-test",
                "--http", f"127.0.0.1:{port}", "--tokens", str(tmp_path / "tokens.json"),
                "--signing-key", str(key_path)]
        proc = subprocess.Popen(argv, env={**os.environ, "BRANCHLINE_FLEET_ADMIN_TOKEN": ADMIN})
        try:
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}",
                                         headers={"Authorization": f"Bearer {ADMIN}"}) as client:
                async def up() -> bool:
                    try:
                        return (await client.get("/api/v1/whoami")).status_code == 200
                    except httpx.TransportError:
                        return False

                await wait_for_coro(up, 20, interval_s=0.1, what="the API answers")
                async with MqttConnection(broker.url, "edge-s1") as edge:
                    edge.publish(p.topic("s1", "state"), p.State(status="online", version="9.9").to_bytes(),
                                 qos=1, retain=True)

                    async def site_seen() -> bool:
                        sites = (await client.get("/api/v1/sites")).json()["sites"]
                        return any(s["id"] == "s1" and s["status"] == "online" for s in sites)

                    await wait_for_coro(site_seen, 20, interval_s=0.1, what="site s1 online in the API")
                    r = await client.post("/api/v1/sites/s1/configs",
                                          json={"config": {"sip": {"domain": "s1.local"}}, "reason": "first"})
                    assert r.status_code == 200, r.text
                    await edge.subscribe([(p.topic("s1", "config"), 1)])
                    msg = await asyncio.wait_for(edge.messages.get(), 10)
            envelope = p.ConfigEnvelope.from_bytes(bytes(msg.payload))
            p.verify_config(p.load_public_key(public_key_b64(load_signing_key(key_path)).encode()), envelope, "s1")
            assert (envelope.version, envelope.author) == (1, "admin")
        finally:
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(30) == 0
