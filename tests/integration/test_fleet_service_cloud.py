"""``branchline fleet run --cloud-url``: the supervisor also runs the cloud-tier exporter.
A CDR an edge sends reaches the cloud store, with the caller's number masked."""

from __future__ import annotations

import asyncio
import os
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from edge_core.telemetry import protocol as p
from fleet.mqtt import MqttConnection
from tests.brokers import Mosquitto, mosquitto_binary
from tests.sipp import wait_for_async

pytestmark = pytest.mark.skipif(mosquitto_binary() is None, reason="mosquitto not installed")


def cloud_cdrs(path: Path) -> list[str]:
    if not path.exists():
        return []
    try:
        with sqlite3.connect(path) as conn:
            return [str(row) for row in conn.execute("SELECT * FROM cdrs").fetchall()]
    except sqlite3.OperationalError:  # not created yet
        return []


async def test_fleet_run_exports_to_the_cloud_tier_with_numbers_masked(tmp_path: Path) -> None:
    cloud = tmp_path / "cloud.db"
    with Mosquitto(tmp_path / "mq") as broker:
        argv = [sys.executable, "-m", "fleet.service", "run", "--db", f"sqlite+aiosqlite:///{tmp_path}/fleet.db",
                "--broker", broker.url, "--workers", "1", "--group", "", "--client-prefix", "cloud-svc-test",
                "--cloud-url", f"sqlite+aiosqlite:///{cloud}", "--cloud-every-s", "0.5"]  # fmt: skip
        proc = subprocess.Popen(argv, env=dict(os.environ))
        try:
            body = {"call_id": "c-1", "from_number": "+442071234567", "to_number": "100", "start_time": 1.0,
                    "end_time": 5.0, "disposition": "answered", "queue": "sales"}  # fmt: skip
            batch = p.OutboxBatch(records=[p.Record(seq=1, kind="cdr", at=5.0, body=body)])
            async with MqttConnection(broker.url, "edge-cloud-site") as edge:
                await edge.subscribe([(p.topic("cloud-site", "ack"), 1)])
                # as an edge does: send again until the fleet's ack says it is stored (the
                # worker may not have subscribed yet when the first copy goes out)
                for _ in range(30):
                    await edge.publish_confirmed(p.topic("cloud-site", "outbox"), batch.to_bytes())
                    try:
                        msg = await asyncio.wait_for(edge.messages.get(), 1.0)
                    except TimeoutError:
                        continue
                    if p.Ack.from_bytes(bytes(msg.payload)).upto >= 1:
                        break
                rows = await wait_for_async(lambda: cloud_cdrs(cloud), 30, interval_s=0.2, what="the CDR in the cloud")
        finally:
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(30) == 0
    (row,) = rows
    assert "c-1" in row and "+442071234567" not in row and "4567" in row
