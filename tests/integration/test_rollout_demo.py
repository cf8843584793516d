"""``fleet.rollout_demo.demo_rollout`` against the real API and mosquitto: the demo's
campaign runs to its end, one site committed per wave, the bad site rolled back with
its reason, all visible through the API."""

from __future__ import annotations

from pathlib import Path

import pytest

from fleet.rollout_demo import demo_rollout
from tests.brokers import Mosquitto, mosquitto_binary
from tests.integration.test_rollout_update import ADMIN, fleet_api

pytestmark = pytest.mark.skipif(mosquitto_binary() is None, reason="mosquitto not installed")


async def test_demo_rollout(tmp_path: Path) -> None:
    with Mosquitto(tmp_path / "mq") as broker:
        async with fleet_api(tmp_path, broker.url) as api:
            campaign = await demo_rollout(str(api.base_url), ADMIN, broker.url, tmp_path / "demo", step_s=0.1,
                                          timeout_s=60)
    assert campaign["state"] == "done", campaign
    sites = {s["site_id"]: s for s in campaign["sites"]}
    assert sites["branch-004"]["state"] == "rolled_back" and sites["branch-004"]["check"] == "api"
    assert "control API" in sites["branch-004"]["reason"]
    assert {s["state"] for k, s in sites.items() if k != "branch-004"} == {"committed"}
    assert [len(w) for w in campaign["waves"]] == [1, 3]
