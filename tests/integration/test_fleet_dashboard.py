"""The NOC dashboard in headless Chromium (Debian's, driven by Playwright) against the
API served by uvicorn on a loopback port, on a store filled through its ingest path:
sign in with a token, see the site grid by health, open a site page (queues, trunks,
agents, charts, config versions and drift), acknowledge an alarm by clicking, and watch
a site that goes offline in the store change the grid without a reload.
Screenshots go to ``test-artifacts/dashboard/``."""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import socket
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import uvicorn

from edge_core.telemetry import protocol as p
from fleet.api import create_app
from fleet.configs import ConfigStore, load_signing_key
from fleet.store import FleetStore
from tests.integration.test_fleet_api import fill_fleet, ingest, make_tokens

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--no-first-run"]
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "dashboard"
TIMEOUT_MS = 10_000

pytestmark = pytest.mark.skipif(shutil.which(CHROMIUM) is None, reason=f"{CHROMIUM} is not installed "
                                "(Debian package chromium)")


@dataclass
class Served:
    url: str
    store: FleetStore
    tokens: dict[str, str]


@contextlib.asynccontextmanager
async def serve(app: object) -> AsyncIterator[str]:
    """uvicorn on this loop, on a loopback port the kernel picked; stopped on exit."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on", timeout_graceful_shutdown=3))  # type: ignore[arg-type]
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        deadline = time.monotonic() + 10
        while not server.started:
            if task.done() or time.monotonic() > deadline:
                raise RuntimeError("uvicorn did not start")
            await asyncio.sleep(0.02)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 15)
        sock.close()


@pytest.fixture
async def served(tmp_path: Path) -> AsyncIterator[Served]:
    store = await FleetStore.open(f"sqlite+aiosqlite:///{tmp_path}/fleet.db")
    await fill_fleet(store)
    registry, secrets = make_tokens()

    async def publish(topic: str, payload: bytes) -> None:
        return None

    configs = ConfigStore(store, load_signing_key(tmp_path / "fleet.pem", create=True), publish)
    await configs.set_layer("base", {"sip": {"domain": "corp.local"}}, author="alice", reason="fleet default")
    await configs.set_layer("site:b1", {"sip": {"ring_timeout_s": 25}}, author="bob", reason="slow phones")
    await ingest(store, time.time(), states=[("b1", p.State(status="online", version="1.4.0", config_version=1))])
    app = create_app(store, configs=configs, tokens=registry, poll_interval_s=0.2)
    async with serve(app) as url:
        yield Served(url, store, secrets)
    await store.close()


async def test_dashboard_grid_site_page_ack_and_live_update(served: Served) -> None:
    from playwright.async_api import async_playwright, expect

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    expect.set_options(timeout=TIMEOUT_MS)
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            page = await browser.new_page(viewport={"width": 1280, "height": 900})
            await page.goto(served.url + "/")

            # a wrong token is refused with a message; the right one is kept for the next visit
            await page.get_by_label("API token").fill("wrong-token")
            await page.get_by_role("button", name="Sign in").click()
            await expect(page.get_by_role("alert")).to_contain_text("refused")
            await page.get_by_label("API token").fill(served.tokens["operator"])
            await page.get_by_role("button", name="Sign in").click()
            await expect(page.locator("#whoami")).to_have_text("operator-tok (operator)")
            await expect(page.locator("#live")).to_have_text("live")

            tiles = page.locator("[data-site]")
            await expect(tiles).to_have_count(4)
            await expect(page.locator('[data-site="b3"]')).to_have_attribute("data-health", "offline")
            await expect(page.locator('[data-site="b3"]')).to_contain_text("OFFLINE")  # words, not only colour
            await expect(page.locator('[data-site="b2"]')).to_contain_text("SURVIVABLE")
            await expect(page.locator('[data-site="b4"]')).to_contain_text("ALARMS (1)")
            await expect(page.locator('[data-site="b1"]')).to_contain_text("ONLINE")
            await expect(page.locator('[data-site="b1"]')).to_contain_text("config drift: runs v1, desired v2")
            await expect(page.locator("#summary")).to_contain_text("4 sites")
            await page.screenshot(path=ARTIFACTS / "01-site-grid.png", full_page=True)

            # keyboard: focus the b1 tile and press Enter
            await page.locator('[data-site="b1"]').focus()
            await page.keyboard.press("Enter")
            await expect(page).to_have_url(served.url + "/#/site/b1")
            await expect(page.locator("#site-health")).to_contain_text("ONLINE")
            await expect(page.locator("#queues")).to_contain_text("sales")
            await expect(page.locator("#queues")).to_contain_text("90 %")
            await expect(page.locator("#trunks")).to_contain_text("wan: \u2713 up")
            await expect(page.locator("#agents")).to_contain_text("on call")
            await expect(page.locator("#chart-sl svg.chart circle")).to_have_count(4)
            await expect(page.locator("#chart-volume svg.chart rect")).to_have_count(4)
            await expect(page.locator("#drift")).to_contain_text("Drift: the site runs v1, desired is v2")
            await expect(page.locator("#versions")).to_contain_text("slow phones")
            await page.get_by_role("button", name="Diff v1\u2192v2").click()
            await expect(page.locator("#diff")).to_contain_text('+    "ring_timeout_s": 25')
            await page.screenshot(path=ARTIFACTS / "02-site-page.png", full_page=True)

            # acknowledge b4's trunk alarm by clicking
            await page.get_by_role("link", name="All sites").click()
            await page.locator('[data-site="b4"]').click()
            await expect(page.locator("#trunks")).to_contain_text("wan: \u2715 down")
            await page.get_by_role("button", name="Acknowledge trunk_down wan at b4").click()
            await expect(page.locator("#site-alarms")).to_contain_text("by operator-tok")
            await page.screenshot(path=ARTIFACTS / "03-alarm-acked.png", full_page=True)
            [entry] = [a for a in await served.store.list_audit() if a.action == "alarm.ack"]
            assert entry.actor == "operator-tok"

            # the alarm list
            await page.get_by_role("link", name="Alarms", exact=True).click()
            await expect(page.locator("#alarms tbody tr")).to_have_count(3)
            await expect(page.locator("#alarms")).to_contain_text("CRITICAL")
            await page.get_by_label("Severity").select_option("critical")
            await expect(page.locator("#alarms tbody tr")).to_have_count(1)
            await page.screenshot(path=ARTIFACTS / "04-alarms.png", full_page=True)

            # live: b1 goes offline in the store; the grid follows without a reload
            await page.get_by_role("link", name="Sites").click()
            await expect(page.locator('[data-site="b1"]')).to_have_attribute("data-health", "online")
            await page.evaluate("window.__noReload = true")
            await ingest(served.store, time.time(), states=[("b1", p.State(status="offline"))])
            await expect(page.locator('[data-site="b1"]')).to_have_attribute("data-health", "offline")
            await expect(page.locator('[data-site="b1"]')).to_contain_text("OFFLINE")
            await expect(page.locator("#summary")).to_contain_text("2 offline")
            assert await page.evaluate("window.__noReload") is True
            await page.screenshot(path=ARTIFACTS / "05-live-offline.png", full_page=True)

            # the token is remembered: a new visit goes straight to the grid
            await page.reload()
            await expect(page.locator("[data-site]")).to_have_count(4)
        finally:
            await browser.close()


async def test_viewer_cannot_acknowledge(served: Served) -> None:
    from playwright.async_api import async_playwright, expect

    expect.set_options(timeout=TIMEOUT_MS)
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            page = await browser.new_page()
            await page.goto(served.url + "/#/alarms")
            await page.get_by_label("API token").fill(served.tokens["viewer"])
            await page.keyboard.press("Enter")
            await expect(page.locator("#alarms tbody tr")).to_have_count(3)
            buttons = page.get_by_role("button", name="Acknowledge", exact=False)
            await expect(buttons).to_have_count(3)
            for i in range(3):
                await expect(buttons.nth(i)).to_be_disabled()
        finally:
            await browser.close()
