"""The NOC dashboard's rollouts page in headless Chromium: the demo's campaign (two waves
over four simulated branches, one rolled back) as an operator watches it."""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path

import pytest
import uvicorn
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from fleet.api.app import create_app
from fleet.api.auth import Role, TokenRegistry
from fleet.configs import ConfigStore
from fleet.rollout_demo import demo_rollout
from fleet.store import FleetStore
from tests.brokers import Mosquitto, mosquitto_binary
from tests.integration.test_fleet_dashboard import ARGS, ARTIFACTS, CHROMIUM, TIMEOUT_MS
from tests.sipp import free_tcp_port, wait_for_async

pytestmark = [
    pytest.mark.skipif(shutil.which(CHROMIUM) is None, reason=f"{CHROMIUM} is not installed"),
    pytest.mark.skipif(mosquitto_binary() is None, reason="mosquitto not installed"),
    pytest.mark.timeout(120),
]
TOKEN = "rollout-dashboard-admin"


async def test_the_rollouts_page_shows_each_branch_and_the_rollback_reason(tmp_path: Path) -> None:
    from playwright.async_api import async_playwright, expect

    with Mosquitto(tmp_path / "mq") as broker:
        store = await FleetStore.open(f"sqlite+aiosqlite:///{tmp_path / 'fleet.db'}")
        tokens = TokenRegistry()
        tokens.issue("admin", Role.admin, created_by="test", secret=TOKEN)
        app = create_app(store, configs=ConfigStore(store, Ed25519PrivateKey.generate(), None), tokens=tokens)
        app.state.bundle_dir = tmp_path / "bundles"
        app.state.rollout_broker = broker.url
        app.state.rollout_tick_s = 0.2
        port = free_tcp_port()
        server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on"))
        task = asyncio.create_task(server.serve())
        try:
            await wait_for_async(lambda: server.started or task.done(), 20, what="uvicorn started")
            url = f"http://127.0.0.1:{port}"
            campaign = await demo_rollout(url, TOKEN, broker.url, tmp_path / "demo", step_s=0.1, timeout_s=60)
            assert campaign["state"] == "done", campaign
            async with async_playwright() as pw:
                browser = await pw.chromium.launch(executable_path=CHROMIUM, args=ARGS)
                try:
                    page = await browser.new_page(viewport={"width": 1200, "height": 800})
                    page.set_default_timeout(TIMEOUT_MS)
                    await page.goto(url + "/")
                    await page.get_by_label("API token").fill(TOKEN)
                    await page.get_by_role("button", name="Sign in").click()
                    await page.get_by_role("link", name="Rollouts").click()
                    block = page.locator("[data-campaign]").first
                    await expect(block).to_contain_text("demo: 0.2.0 to 4 branches")
                    await expect(block).to_contain_text("DONE")
                    await expect(block.locator('tr[data-site="branch-004"]')).to_contain_text("ROLLED_BACK")
                    await expect(block.locator('tr[data-site="branch-004"]')).to_contain_text("control API")
                    await expect(block.locator('tr[data-site="branch-002"]')).to_contain_text("COMMITTED")
                    ARTIFACTS.mkdir(parents=True, exist_ok=True)
                    await page.screenshot(path=ARTIFACTS / "06-rollouts.png", full_page=True)
                finally:
                    await browser.close()
        finally:
            server.should_exit = True
            await asyncio.wait_for(task, 30)
            await store.close()
