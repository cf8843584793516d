"""The technician console (``tui.app.ConsoleApp``) driven with Textual's pilot at 80x24
against a real edge daemon started by the test, with simulated phones: what the
technician sees, and that what they do through it reaches the edge."""

from __future__ import annotations

import asyncio
import copy
import tarfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from textual.pilot import Pilot
from textual.widgets import DataTable, Input, RichLog, Static

from appliance.sim.phones import Phone
from tests.integration.test_contact_center import DOMAIN, USERS, site
from tests.integration.test_survivable_routing import FAST, merged, trunks
from tests.sipp import EdgeProcess, free_udp_port
from tui.app import ConsoleApp
from tui.screens import ConfirmScreen, HelpScreen

pytestmark = pytest.mark.timeout(120)

SIZE = (80, 24)
EdgeFactory = Callable[..., EdgeProcess]


def socket_of(edge: EdgeProcess) -> str:
    return str(edge.workdir / edge.ready["api_socket"])


def api(edge: EdgeProcess) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.AsyncHTTPTransport(uds=socket_of(edge)), base_url="http://edge")


def text(app: ConsoleApp, selector: str) -> str:
    return str(app.query_one(selector, Static).content)


def rows(app: ConsoleApp, selector: str) -> list[list[str]]:
    table = app.query_one(selector, DataTable)
    return [[str(cell) for cell in table.get_row_at(i)] for i in range(table.row_count)]


async def until(pilot: Pilot[Any], check: Callable[[], Any], what: str, timeout_s: float = 15.0) -> Any:
    """Let the app run until ``check()`` is truthy (the console's own workers do the I/O)."""
    deadline = time.monotonic() + timeout_s
    while not (value := check()):
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout_s:.0f}s waiting for {what} (focus: {pilot.app.focused}, screen: {pilot.app.screen})")
        await pilot.pause(0.05)
    return value


async def until_api(pilot: Pilot[Any], check: Callable[[], Awaitable[Any]], what: str, timeout_s: float = 15.0) -> Any:
    deadline = time.monotonic() + timeout_s
    while not (value := await check()):
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout_s:.0f}s waiting for {what} (focus: {pilot.app.focused}, screen: {pilot.app.screen})")
        await pilot.pause(0.05)
    return value


async def goto(pilot: Pilot[Any], key: str, tab: str) -> None:
    """Open a tab with its key and wait until its keys work (its main widget has the focus)."""
    app: Any = pilot.app
    await pilot.press(key)
    pane = app.pane(tab)
    await until(pilot, lambda: app.focused is not None and pane in app.focused.ancestors_with_self, f"the {tab} tab")


def console(edge: EdgeProcess, tmp_path: Path) -> ConsoleApp:
    return ConsoleApp(socket_of(edge), bundle_dir=tmp_path)


async def test_the_overview_shows_the_site_the_mode_and_the_phones_and_every_tab_opens(
    edge_factory: EdgeFactory, tmp_path: Path
) -> None:
    edge = edge_factory(site(tmp_path))
    app = console(edge, tmp_path)
    async with Phone("2001", USERS["2001"], edge.sip_udp, DOMAIN) as phone, app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: app.connected, "connected")
        await phone.register()
        await until(pilot, lambda: "1 registered" in text(app, "#overview-body"), "the registration")
        overview = text(app, "#overview-body")
        assert "Test (test-site)" in overview and "NORMAL for" in overview
        assert "Alarms        not reported" in overview and "Hardware      not reported" in overview
        assert "● connected" in text(app, "#connection")

        await pilot.press("2")
        await until(pilot, lambda: ["sales", "0"] == rows(app, "#queues-table")[0][:2] if rows(app, "#queues-table") else False,
                    "the queue table")  # fmt: skip
        assert rows(app, "#agents-table")[0][:3] == ["dana", "Dana", "logged_out"]
        await pilot.press("3")
        await until(pilot, lambda: rows(app, "#phones-table"), "the phones table")
        assert rows(app, "#phones-table")[0][0] == "2001"
        assert rows(app, "#trunks-table")[0][0] == "pstn"
        await pilot.press("slash", *"nomatch")  # the filter hides what does not match
        await until(pilot, lambda: not rows(app, "#phones-table"), "the filter")
        assert "0 of 1" in text(app, "#phones-title")
        await pilot.press("escape", "4")
        assert app.query_one("#tabs").active == "diagnostics"  # type: ignore[attr-defined]
        await pilot.press("5")
        assert "origin file" in text(app, "#config-running")
        await pilot.press("6")
        assert "Drill         not running" in text(app, "#drill-state")
        await pilot.press("7")
        await until(pilot, lambda: app.query_one("#events-log", RichLog).lines, "the event log")
        assert any("registration" in line for line in app.pane("events").lines)
        await pilot.press("question_mark")
        assert isinstance(app.screen, HelpScreen)
        await pilot.press("escape")
        assert not isinstance(app.screen, HelpScreen)


async def test_pausing_an_agent_and_hanging_up_a_call_from_the_console(
    edge_factory: EdgeFactory, tmp_path: Path
) -> None:
    edge = edge_factory(site(tmp_path))
    app = console(edge, tmp_path)
    customer = Phone("1001", USERS["1001"], edge.sip_udp, DOMAIN)
    agent = Phone("2001", USERS["2001"], edge.sip_udp, DOMAIN)
    async with api(edge) as client, customer, agent, app.run_test(size=SIZE) as pilot:
        await asyncio.gather(customer.register(), agent.register())
        assert (await agent.call("*71", talk_s=2.0)).status == 200  # log in

        async def agent_state() -> str:
            return str((await client.get("/v1/agents")).json()["agents"][0]["state"])

        await goto(pilot, "2", "calls")
        await until(pilot, lambda: any(r[2] == "available" for r in rows(app, "#agents-table")), "dana available")
        await pilot.press("p")
        await until_api(pilot, lambda: _is(agent_state(), "paused"), "dana paused")
        await until(pilot, lambda: rows(app, "#agents-table")[0][2:4] == ["paused", "technician"], "the table")
        await pilot.press("u")
        await until_api(pilot, lambda: _is(agent_state(), "available"), "dana available again")

        call = asyncio.create_task(customer.call("2001", talk_s=60.0, callee=agent))
        await until(pilot, lambda: any(r[2] == "answered" for r in rows(app, "#calls-table")), "the call")
        await pilot.press("h")
        await until(pilot, lambda: isinstance(app.screen, ConfirmScreen), "the confirmation")
        await pilot.press("n")  # not this time: the call stays
        await pilot.pause(0.3)
        assert len((await client.get("/v1/calls")).json()["calls"]) == 1
        await pilot.press("h")
        await until(pilot, lambda: isinstance(app.screen, ConfirmScreen), "the confirmation")
        await pilot.press("y")
        result = await asyncio.wait_for(call, 10)
        assert result.status == 200 and result.hangup_side != "caller", result.line(1)
        assert (await client.get("/v1/calls")).json()["calls"] == []
        await until(pilot, lambda: not rows(app, "#calls-table"), "the call gone from the table")


async def _is(value: Awaitable[str], wanted: str) -> bool:
    return await value == wanted


async def test_a_drill_and_maintenance_started_from_the_console(edge_factory: EdgeFactory, tmp_path: Path) -> None:
    edge = edge_factory(merged(FAST, trunks(free_udp_port(), free_udp_port())))
    app = console(edge, tmp_path)
    async with api(edge) as client, app.run_test(size=SIZE) as pilot:

        async def mode() -> str:
            return str((await client.get("/v1/status")).json()["mode"]["mode"])

        await until(pilot, lambda: app.connected, "connected")
        await goto(pilot, "6", "drill")
        await pilot.press("d")
        await until(pilot, lambda: isinstance(app.screen, ConfirmScreen), "the confirmation")
        await pilot.press("y")
        await until_api(pilot, lambda: _is(mode(), "survivable"), "survivable mode")
        await until(pilot, lambda: "SURVIVABLE" in text(app, "#drill-state") and "running until" in text(app, "#drill-state"),
                    "the drill on screen")  # fmt: skip
        assert "SURVIVABLE" in text(app, "#connection")
        await pilot.press("e")
        await until(pilot, lambda: "not running" in text(app, "#drill-state"), "the drill ended")

        await pilot.press("m")
        await until(pilot, lambda: isinstance(app.screen, ConfirmScreen), "the confirmation")
        await pilot.press("y")
        await until(pilot, lambda: "Maintenance   ON" in text(app, "#drill-state"), "maintenance on")
        assert (await client.get("/v1/status")).json()["accepting_calls"] is False
        await pilot.press("m")  # off needs no confirmation
        await until(pilot, lambda: "Maintenance   off" in text(app, "#drill-state"), "maintenance off")
        assert (await client.get("/v1/status")).json()["accepting_calls"] is True


async def test_an_invalid_config_file_shows_its_path_and_changes_nothing_a_valid_one_shows_the_diff_and_applies(
    edge_factory: EdgeFactory, tmp_path: Path
) -> None:
    edge = edge_factory(site(tmp_path))
    app = console(edge, tmp_path)
    bad = copy.deepcopy(edge.config)
    bad["queues"][0]["strategy"] = "loudest-first"
    (tmp_path / "bad.yaml").write_text(yaml.safe_dump(bad))
    good = copy.deepcopy(edge.config)
    good["queues"].append({"name": "support", "strategy": "linear", "ring_timeout_s": 5})
    good["extensions"][0]["password"] = "new-secret-1001"
    (tmp_path / "good.yaml").write_text(yaml.safe_dump(good))

    async def queues(client: httpx.AsyncClient) -> list[str]:
        return sorted(q["name"] for q in (await client.get("/v1/queues")).json()["queues"])

    async with api(edge) as client, app.run_test(size=SIZE) as pilot:
        before = (await client.get("/v1/config")).json()
        await until(pilot, lambda: "origin file" in text(app, "#config-running"), "the running config")
        await goto(pilot, "5", "config")
        await pilot.press("l", *str(tmp_path / "bad.yaml"), "enter")
        await until(pilot, lambda: "INVALID" in text(app, "#config-result"), "the validation")
        assert "queues[0].strategy" in text(app, "#config-result")
        await pilot.press("a")  # nothing loaded: nothing is applied
        await pilot.pause(0.2)
        assert not isinstance(app.screen, ConfirmScreen)
        assert (await client.get("/v1/config")).json() == before and await queues(client) == ["sales"]

        await pilot.press("l", *["ctrl+u"], *str(tmp_path / "good.yaml"), "enter")
        await until(pilot, lambda: "VALID:" in text(app, "#config-result"), "the diff")
        shown = text(app, "#config-result")
        assert "+  name: support" in shown and "secrets changed: extensions[0].password" in shown
        assert "new-secret-1001" not in shown
        assert await queues(client) == ["sales"]  # validating changed nothing
        await pilot.press("a")
        await until(pilot, lambda: isinstance(app.screen, ConfirmScreen), "the confirmation")
        await pilot.press("y")
        await until(pilot, lambda: "APPLIED" in text(app, "#config-result"), "applied")
        assert await queues(client) == ["sales", "support"]
        assert (await client.get("/v1/config")).json()["origin"] == "api"  # a local override
        await until(pilot, lambda: "origin api" in text(app, "#config-running"), "the origin on screen")

        await pilot.press("r")
        await until(pilot, lambda: isinstance(app.screen, ConfirmScreen), "the confirmation")
        await pilot.press("y")
        await until(pilot, lambda: "ROLLED BACK" in text(app, "#config-result"), "rolled back")
        assert await queues(client) == ["sales"]
    async with Phone("1001", USERS["1001"], edge.sip_udp, DOMAIN) as phone:
        assert (await phone.register()).status == 200  # the old password is back, not "***"


async def test_the_console_shows_disconnected_while_the_edge_is_gone_and_recovers(
    edge_factory: EdgeFactory, tmp_path: Path
) -> None:
    edge = edge_factory(site(tmp_path))
    app = console(edge, tmp_path)
    restarted: EdgeProcess | None = None
    try:
        async with app.run_test(size=SIZE) as pilot:
            await until(pilot, lambda: "● connected" in text(app, "#connection") and "status" in app.data, "connected")
            started = app.data["status"]["started"]
            edge.kill()
            await until(pilot, lambda: "disconnected, retrying" in text(app, "#connection"), "disconnected")
            await pilot.press("2", "3", "1")  # still usable while the edge is away
            restarted = EdgeProcess(edge.workdir, edge.config)
            await restarted.start_async()
            await until(pilot, lambda: "● connected" in text(app, "#connection"), "reconnected")
            await until(pilot, lambda: app.data["status"]["started"] != started, "the new edge's status")
            assert "Test (test-site)" in text(app, "#overview-body")
    finally:
        if restarted is not None and restarted.running():
            restarted.stop()


async def test_diagnostics_from_the_console_and_a_support_bundle_without_secrets(
    edge_factory: EdgeFactory, tmp_path: Path
) -> None:
    edge = edge_factory(merged(site(tmp_path), {"telemetry": {"broker_url": f"mqtt://127.0.0.1:{free_udp_port()}"}}))
    app = console(edge, tmp_path)
    async with Phone("2001", USERS["2001"], edge.sip_udp, DOMAIN) as phone, app.run_test(size=SIZE) as pilot:
        await phone.register()
        await until(pilot, lambda: app.connected, "connected")
        await goto(pilot, "4", "diagnostics")
        await pilot.press("a")  # every check but ping (no target yet)
        pane = app.pane("diagnostics")
        await until(pilot, lambda: {"test-call", "database", "outbox", "fleet"} <= set(pane.results), "the checks", 20)
        table = {r[0]: r[1:] for r in rows(app, "#diag-table")}
        assert table["Test call"][0] == "OK" and "MOS 4." in table["Test call"][1]
        assert table["Database"][0] == "OK" and "integrity ok" in table["Database"][1]
        assert table["Outbox"][0] == "OK"
        assert table["Fleet/MQTT"][0] == "FAIL" and "telemetry off" in table["Fleet/MQTT"][1]
        app.query_one("#diag-target", Input).focus()
        await pilot.press(*"2001", "enter")
        await until(pilot, lambda: "ping" in pane.results, "the ping")
        assert pane.results["ping"]["ok"] and pane.results["ping"]["kind"] == "phone", pane.results["ping"]
        assert {r[0]: r[1] for r in rows(app, "#diag-table")}["OPTIONS ping"] == "OK"

        await pilot.press("escape", "b")
        await until(pilot, lambda: app.last_bundle is not None and app.last_bundle.exists(), "the bundle")
        assert app.last_bundle is not None
        with tarfile.open(app.last_bundle) as tar:
            files = {m.name.split("/", 1)[1]: tar.extractfile(m).read().decode() for m in tar.getmembers()}  # type: ignore[union-attr]
    assert {"config.yaml", "logs.txt", "diagnostics.json", "status.json", "manifest.json"} <= set(files)
    everything = "\n".join(files.values())
    for password in USERS.values():
        assert password not in everything
    assert "password: '***'" in files["config.yaml"]
    assert "OPTIONS ping" in files["diagnostics.json"] and '"integrity"' in files["diagnostics.json"]


@pytest.mark.parametrize("size", [(80, 24), (120, 40)], ids=["80x24", "120x40"])
async def test_every_screen_at_both_sizes_fits_and_is_saved_as_a_screenshot(
    edge_factory: EdgeFactory, tmp_path: Path, size: tuple[int, int]
) -> None:
    """Each tab at 80x24 and 120x40 against a live edge: its main widget is on screen
    (inside the terminal, not pushed off it) and shows its data; an SVG screenshot of
    each goes to test-artifacts/tui/ for a person to look at. (Byte-exact snapshot
    comparisons are not done: pytest-textual-snapshot needs an older pytest.)"""
    artifacts = Path(__file__).resolve().parents[2] / "test-artifacts" / "tui"
    artifacts.mkdir(parents=True, exist_ok=True)
    edge = edge_factory(site(tmp_path))
    app = console(edge, tmp_path)
    async with app.run_test(size=size) as pilot:
        await until(pilot, lambda: app.connected and "registered" in text(app, "#overview-body"), "connected")
        width, height = size
        for key, tab in enumerate(("overview", "calls", "lines", "diagnostics", "config", "drill", "events"), 1):
            await goto(pilot, str(key), tab)
            focused = app.focused
            assert focused is not None
            region = focused.region
            assert region.width > 0 and region.height > 0, tab
            assert region.right <= width and region.y < height, (tab, region)  # on screen
            app.save_screenshot(str(artifacts / f"{width}x{height}-{key}-{tab}.svg"))
        assert "sales" in str(rows(app, "#queues-table"))
