"""The console with no edge behind its socket: it says so, keeps retrying, and every
tab, the help screen and the command palette still work (80x24)."""

from __future__ import annotations

import time
from pathlib import Path

from textual.command import CommandPalette
from textual.widgets import Static

from tui.app import ConsoleApp
from tui.screens import ConfirmScreen, HelpScreen


async def test_without_an_edge_the_console_says_disconnected_and_stays_usable(tmp_path: Path) -> None:
    app = ConsoleApp(str(tmp_path / "edge.sock"), bundle_dir=tmp_path)
    async with app.run_test(size=(80, 24)) as pilot:
        deadline = time.monotonic() + 5
        while "disconnected, retrying" not in str(app.query_one("#connection", Static).content):
            assert time.monotonic() < deadline, "no disconnected banner"
            await pilot.pause(0.05)
        for key, tab in zip("1234567", ("overview", "calls", "lines", "diagnostics", "config", "drill", "events"), strict=True):
            await pilot.press(key)
            assert app.tabs.active == tab
        await pilot.press("question_mark")
        assert isinstance(app.screen, HelpScreen)
        await pilot.press("escape", "ctrl+p")
        assert isinstance(app.screen, CommandPalette)
        await pilot.press(*"maintenance on", "enter")
        await pilot.pause(0.1)
        assert isinstance(app.screen, ConfirmScreen)  # asked first, even from the palette
        await pilot.press("escape")
        assert not isinstance(app.screen, ConfirmScreen)
        await pilot.press("1")
        await pilot.press("a")  # no binding on the overview: nothing happens
        assert "waiting for the edge" in str(app.query_one("#overview-body", Static).content)
