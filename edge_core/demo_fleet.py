"""The fleet half of ``branchline demo``: an embedded MQTT broker, the fleet, its dashboard.

Everything on embedded defaults and free ports, under the demo's own directory:

* the broker is amqtt, in this process (MQTT 3.1.1 only, and no shared subscriptions:
  the fleet runs one ingest worker with plain subscriptions, ``--group ""``);
* ``branchline fleet run`` (the ingest worker) and ``python -m fleet.api serve`` (the
  NOC API and dashboard) are child processes on a SQLite store, stopped by their pids;
* a config-signing key is made for the demo, and an admin token for the dashboard;
* a few simulated branch sites (retained state and one metrics message each, from one
  MQTT connection) keep the real demo edge company on the site grid.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

READY_TIMEOUT_S = 20.0
SIMULATED_SITES = (
    ("branch-002", "normal"),
    ("branch-003", "normal"),
    ("branch-004", "survivable"),
    ("branch-005", "normal"),
)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _accepting(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.2)
        return s.connect_ex(("127.0.0.1", port)) == 0


class DemoFleet:
    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.broker: Any = None
        self.broker_port = 0
        self.http_port = 0
        self.token = secrets.token_urlsafe(18)
        self.db = f"sqlite+aiosqlite:///{workdir / 'fleet.db'}"
        self.public_key_b64 = ""
        self.procs: list[subprocess.Popen[bytes]] = []

    @property
    def broker_url(self) -> str:
        return f"mqtt://127.0.0.1:{self.broker_port}"

    @property
    def dashboard_url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}/"

    async def start(self) -> None:
        from amqtt.broker import Broker

        from fleet.configs import load_signing_key, public_key_b64
        from fleet.store import FleetStore

        self.broker_port = _free_port()
        self.broker = Broker({
            "listeners": {"default": {"type": "tcp", "bind": f"127.0.0.1:{self.broker_port}"}},
            "plugins": {"amqtt.plugins.authentication.AnonymousAuthPlugin": {"allow_anonymous": True}},
        })  # fmt: skip
        await self.broker.start()
        key_path = self.workdir / "fleet-signing.pem"
        self.public_key_b64 = public_key_b64(load_signing_key(key_path, create=True))
        store = await FleetStore.open(self.db)  # migrated once here, before both processes
        await store.close()
        log = open(self.workdir / "fleet.log", "ab")  # noqa: SIM115 - the children write it
        self.procs.append(subprocess.Popen(
            [sys.executable, "-m", "edge_core.cli", "fleet", "run", "--db", self.db, "--broker",
             self.broker_url, "--workers", "1", "--group", "", "--client-prefix", "demo-fleet"],
            stdout=log, stderr=log, stdin=subprocess.DEVNULL,
        ))  # fmt: skip
        self.http_port = _free_port()
        env = {**os.environ, "BRANCHLINE_FLEET_ADMIN_TOKEN": self.token}
        self.procs.append(subprocess.Popen(
            [sys.executable, "-m", "fleet.api", "serve", "--db", self.db, "--http", f"127.0.0.1:{self.http_port}",
             "--tokens", str(self.workdir / "fleet-tokens.json"), "--broker", self.broker_url,
             "--signing-key", str(key_path), "--no-migrate"],
            stdout=log, stderr=log, stdin=subprocess.DEVNULL, env=env,
        ))  # fmt: skip
        deadline = time.monotonic() + READY_TIMEOUT_S
        while not _accepting(self.http_port):
            if time.monotonic() > deadline or any(p.poll() is not None for p in self.procs):
                raise RuntimeError(f"the fleet did not start: see {self.workdir / 'fleet.log'}")
            await asyncio.sleep(0.1)

    def telemetry_settings(self, site_id: str) -> dict[str, Any]:
        """The demo edge's ``telemetry`` section: report to this fleet, trust its key."""
        return {
            "enabled": True, "broker_url": self.broker_url, "site_id": site_id,
            "fleet_public_key": self.public_key_b64, "metrics_interval_s": 2.0,
            "reconnect_min_s": 0.2, "reconnect_max_s": 2.0,
        }  # fmt: skip

    async def publish_simulated_sites(self) -> None:
        """A few more branches on the grid: a retained state and one metrics message each."""
        from edge_core.telemetry import protocol
        from fleet.mqtt import MqttConnection

        now = time.time()
        async with MqttConnection(self.broker_url, "demo-simulated-sites", clean_session=True) as mqtt:
            for site, mode in SIMULATED_SITES:
                state = protocol.State(status="online", version="simulated", mode=mode, mode_since=now - 600,  # type: ignore[arg-type]
                                       started_at=now - 86400, at=now)  # fmt: skip
                metrics = protocol.Metrics(at=now, gauges={"registrations": 12.0, "calls_active": 3.0},
                                           trunks={"central": mode == "normal", "pstn": True})  # fmt: skip
                await mqtt.publish_confirmed(protocol.topic(site, "state"), state.to_bytes(), retain=True)
                await mqtt.publish_confirmed(protocol.topic(site, "metrics"), metrics.to_bytes())

    async def site(self, site_id: str) -> dict[str, Any] | None:
        """The fleet's registry entry for ``site_id`` (GET /api/v1/sites/ID), or None."""
        import httpx

        async with httpx.AsyncClient(base_url=self.dashboard_url, timeout=5.0,
                                     headers={"Authorization": f"Bearer {self.token}"}) as client:  # fmt: skip
            response = await client.get(f"/api/v1/sites/{site_id}")
        if response.status_code != 200:
            return None
        data = response.json()
        return data.get("site", data) if isinstance(data, dict) else None

    async def wait_online(self, site_id: str, timeout_s: float = 15.0) -> dict[str, Any] | None:
        """Poll the fleet until ``site_id`` is registered online; None after ``timeout_s``."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            site = await self.site(site_id)
            if site is not None and site.get("status") == "online":
                return site
            await asyncio.sleep(0.2)
        return None

    async def stop(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in self.procs:
            try:
                await asyncio.to_thread(proc.wait, 10)
            except subprocess.TimeoutExpired:
                proc.kill()
                await asyncio.to_thread(proc.wait)
        if self.broker is not None:
            await self.broker.shutdown()
