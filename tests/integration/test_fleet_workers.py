"""``branchline fleet run --workers 2`` against a real mosquitto: both workers take a
share of the stream, and SIGKILL of one (its own pid) loses nothing — the supervisor
restarts it under the same client id and its broker session redelivers what it had
not acknowledged. On SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from fleet.sim import SimulatedEdges
from fleet.store import FleetStore
from tests.brokers import Mosquitto, mosquitto_binary
from tests.sipp import wait_for, wait_for_async

pytestmark = [pytest.mark.skipif(mosquitto_binary() is None, reason="mosquitto not installed"),
              pytest.mark.slow]

ROOT = Path(__file__).parents[2]


def _json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


class FleetProcess:
    def __init__(self, tmp_path: Path, db_url: str, broker_url: str, workers: int) -> None:
        self.status_file = tmp_path / "fleet-status.json"
        self.stats_dir = tmp_path / "fleet-stats"
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "edge_core.cli", "fleet", "run", "--db", db_url, "--broker", broker_url,
             "--workers", str(workers), "--client-prefix", "fleet-t", "--status-file", str(self.status_file),
             "--stats-dir", str(self.stats_dir)],
            cwd=ROOT,
        )

    def status(self) -> Any:
        return _json(self.status_file)

    def stats(self, index: int) -> Any:
        return _json(self.stats_dir / f"worker-{index}.json") or {}

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            status = self.status() or {"workers": []}
            for w in status["workers"]:  # the supervisor is gone: end its children by their pids
                try:
                    os.kill(w["pid"], signal.SIGKILL)
                except ProcessLookupError:
                    pass
            raise


async def test_two_workers_share_and_a_killed_one_loses_nothing(tmp_path: Path, db_url: str) -> None:
    with Mosquitto(tmp_path / "mq") as broker:
        fleet = FleetProcess(tmp_path, db_url, broker.url, workers=2)
        try:
            wait_for(lambda: fleet.stats(0).get("connects") and fleet.stats(1).get("connects"), 30,
                     what="both workers connected")
            sites = [f"branch{i:02d}" for i in range(20)]
            async with SimulatedEdges(broker.url, "sim") as edges:
                async def publish_rounds(n: int) -> None:
                    for _ in range(n):
                        for site in sites:
                            edges.publish_batch(site, 10)
                        await asyncio.sleep(0.01)  # a steady stream, not one burst

                await publish_rounds(30)
                await wait_for_async(lambda: fleet.stats(0).get("records", 0) > 0
                                     and fleet.stats(1).get("records", 0) > 0, 30, what="both workers storing")
                victim = fleet.status()["workers"][0]
                os.kill(victim["pid"], signal.SIGKILL)
                await publish_rounds(30)
                await wait_for_async(lambda: (fleet.status() or {}).get("workers", [{}])[0].get("restarts") == 1,
                                     30, what="supervisor restarted worker 0")
                await publish_rounds(20)
                await wait_for_async(edges.all_acked, 90, what="every record acked")
            assert fleet.status()["workers"][0]["pid"] != victim["pid"]
        finally:
            assert fleet.stop() == 0
        store = await FleetStore.open(db_url, migrate_schema=False)
        try:
            assert await store.count_records() == 20 * 80 * 10
            for site in sites:
                assert (await store.get_site(site)).contiguous_seq == 800  # type: ignore[union-attr]
                seqs = [r.seq for r in await store.list_records(site_id=site, limit=10_000)]
                assert seqs == list(range(1, 801))
        finally:
            await store.close()
