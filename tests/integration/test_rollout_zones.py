"""Install windows per site time zone through the NOC API: the real API with its control
loop (uvicorn, a private mosquitto), the sites' zones in their desired configs, the loop's
clock fixed. ``GET /rollouts/{id}`` says why a site waits; an unknown campaign zone is
refused at creation."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from fleet.store import FleetStore, schema
from tests.brokers import Mosquitto, mosquitto_binary
from tests.integration.test_rollout_update import broker, fleet_api, placeholder_bundle, upload  # noqa: F401 (fixture)
from tests.sipp import wait_for_coro

pytestmark = [pytest.mark.skipif(mosquitto_binary() is None, reason="mosquitto not installed"),
              pytest.mark.timeout(120)]

NOW = datetime(2024, 3, 5, 20, 30, tzinfo=UTC).timestamp()
"""21:30 in Paris (inside 20:00-06:00), 15:30 in New York (business hours)."""


async def test_each_site_waits_for_its_own_window(tmp_path: Path, broker: Mosquitto) -> None:  # noqa: F811
    bundle = placeholder_bundle(tmp_path, "3.1.0")
    async with fleet_api(tmp_path, broker.url) as api:
        state: Any = api.app_state  # type: ignore[attr-defined]
        state.rollout_controller.clock = lambda: NOW
        store: FleetStore = state.ctx.store
        async with store.transaction() as conn:
            for site, zone in (("paris", "Europe/Paris"), ("nyc", "America/New_York"), ("mars", "Mars/Base")):
                await conn.execute(schema.config_versions.insert().values(
                    site_id=site, version=1, body={"site": {"id": site, "timezone": zone}}, sources={},
                    author="test", reason="", created_at=0.0))
        sha = (await upload(api, bundle))["sha256"]

        r = await api.post("/api/v1/rollouts", json={"name": "x", "bundle": sha, "sites": ["paris"],
                                                     "timezone": "Europe/Pariss"})
        assert r.status_code == 422 and "unknown time zone 'Europe/Pariss'" in r.text, r.text

        r = await api.post("/api/v1/rollouts", json={
            "name": "3.1.0 after hours", "bundle": sha, "sites": ["paris", "nyc", "mars", "plain"], "waves": [1.0],
            "window_start_h": 20, "window_end_h": 6, "timezone": "Asia/Tokyo"})
        assert r.status_code == 201, r.text
        cid = r.json()["id"]

        async def ticked() -> dict[str, dict[str, Any]] | None:
            body = (await api.get(f"/api/v1/rollouts/{cid}")).json()
            sites = {s["site_id"]: s for s in body["sites"]}
            return sites if sites["paris"]["state"] == "installing" and sites["nyc"]["reason"] else None

        sites = await wait_for_coro(ticked, 30, interval_s=0.1, what="the control loop's first tick")
        assert sites["nyc"]["state"] == "waiting"
        assert sites["nyc"]["reason"] == "waiting for window (20:00 local, America/New_York)"
        # 05:30 next day in Tokyo, the campaign's zone: inside the window for the fallback sites
        assert sites["plain"]["state"] == "installing"
        assert sites["mars"]["state"] == "installing"
        assert state.rollout_controller.counters["commands"] == 3
