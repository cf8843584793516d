"""The console's Software tab (``tui.panes.software``) driven with Textual's pilot: the
A/B slots, why the last rollback happened, the last update result and the install
history as the technician sees them; installing a bundle file (asked first; the
edge's refusal shown as an error; an accepted install followed through the edge's
restart to its outcome).

The console talks to :class:`SoftwareStandIn`, a small HTTP server on a unix socket in
the test's loop, not to a real edge: the edge's software endpoints are written at the
same time as this tab. It answers the two routes per their contract; what the real
edge does behind them is tested in tests/integration/test_software_api.py."""

from __future__ import annotations

import asyncio
import contextlib
import copy
import json
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route
from textual.widgets import Input

from tests.integration.test_tui_console import goto, text, until
from tests.sipp import wait_for_async
from tui.app import ConsoleApp
from tui.format import local_time
from tui.screens import ConfirmScreen

pytestmark = pytest.mark.timeout(60)

SIZE = (80, 24)
NOW = time.time()
CHECK_OUTPUT = "no 200 to REGISTER within 5 s\nsent REGISTER sip:127.0.0.1:5060\nreceived: nothing"
REFUSED = {"error": "signature: the bundle is not signed by this box's key", "field": "path"}

INSTALLED: dict[str, Any] = {
    "installed": True, "reason": "", "root": "/opt/branchline", "current": "a",
    "slots": {
        "a": {"version": "1.2.0", "status": "good", "installed_at": NOW - 86400, "reason": ""},
        "b": {"version": "1.3.0", "status": "failed", "installed_at": NOW - 600,
              "reason": "health check sip_register failed: no 200 to REGISTER within 5 s"},
    },
    "history": [
        {"at": NOW - 86400, "event": "installed", "slot": "a", "version": "1.2.0", "reason": ""},
        {"at": NOW - 86300, "event": "committed", "slot": "a", "version": "1.2.0", "reason": ""},
        {"at": NOW - 600, "event": "installed", "slot": "b", "version": "1.3.0", "reason": ""},
        {"at": NOW - 590, "event": "switched", "slot": "b", "version": "1.3.0", "reason": ""},
        {"at": NOW - 500, "event": "rolled_back", "slot": "b", "version": "1.3.0", "reason": CHECK_OUTPUT,
         "check": "sip_register"},
    ],
    "update": {"running": False, "pending": False},
    "last_result": {"id": "upd-42", "ok": True, "at": NOW - 495, "sent": True, "error": "",
                    "result": {"stage": "done", "version": "1.3.0", "outcome": "rolled_back",
                               "check": "sip_register", "reason": CHECK_OUTPUT}},
}  # fmt: skip
NOT_INSTALLED: dict[str, Any] = {
    "installed": False, "reason": "this edge does not run from an A/B slot (installed by hand or from a checkout)",
    "current": None, "slots": {}, "history": [], "update": {"running": False, "pending": False},
    "last_result": None, "root": None,
}  # fmt: skip


class SoftwareStandIn:
    """A stand-in for the edge's software API (``GET /v1/software``,
    ``POST /v1/software/install``) on a unix socket, per the contract the console is
    written against; the real edge's behaviour is tested in
    tests/integration/test_software_api.py. It also serves what the console needs to
    count as connected: the event stream (``/v1/events``) and a small ``/v1/status``;
    everything else is 404, which the console logs and leaves alone.

    ``software`` is what GET answers; every install body is kept in ``posts``, answered
    with ``answer`` (status, body). :meth:`restart` is the edge restarting: its event
    streams end, the socket goes away, and it comes back."""

    def __init__(self, socket_path: Path, software: dict[str, Any]) -> None:
        self.socket_path = socket_path
        self.software = copy.deepcopy(software)
        self.posts: list[Any] = []
        self.answer: tuple[int, dict[str, Any]] = (202, {"accepted": True, "version": "1.3.1",
                                                         "report_id": "console-20240501T104200-abcdef"})  # fmt: skip
        self._closing = asyncio.Event()
        self._server: uvicorn.Server | None = None
        self._task: asyncio.Task[None] | None = None
        self.app = Starlette(routes=[
            Route("/v1/events", self._events), Route("/v1/status", self._status),
            Route("/v1/software", self._get_software), Route("/v1/software/install", self._install, methods=["POST"]),
        ])  # fmt: skip

    async def _events(self, request: Request) -> Response:
        async def stream() -> AsyncIterator[str]:
            yield ": subscribed\n\n"
            await self._closing.wait()

        return StreamingResponse(stream(), media_type="text/event-stream")

    async def _status(self, request: Request) -> Response:
        return JSONResponse({"site": {"name": "Stand-in", "id": "stand-in"}, "version": "1.2.0",
                             "mode": {"mode": "normal", "for_s": 60, "wan_up": True}})  # fmt: skip

    async def _get_software(self, request: Request) -> Response:
        return JSONResponse(self.software)

    async def _install(self, request: Request) -> Response:
        self.posts.append(json.loads(await request.body()))
        status, body = self.answer
        return JSONResponse(body, status_code=status)

    async def start(self) -> None:
        self._closing.clear()
        config = uvicorn.Config(self.app, uds=str(self.socket_path), loop="none", lifespan="off", log_config=None,
                                log_level="warning", access_log=False, timeout_graceful_shutdown=1)  # fmt: skip
        self._server = server = _Server(config)
        self._task = asyncio.create_task(server.serve())
        await wait_for_async(lambda: server.started or self._task.done(), 10.0, what="the stand-in's socket")  # type: ignore[union-attr]
        if self._task.done():
            self._task.result()
            raise RuntimeError("the stand-in stopped while starting")

    async def stop(self) -> None:
        self._closing.set()  # the event streams end, as the edge's do when it stops
        if self._server is not None and self._task is not None:
            self._server.should_exit = True
            await self._task
        self._server = self._task = None
        self.socket_path.unlink(missing_ok=True)

    async def restart(self, software: dict[str, Any]) -> None:
        await self.stop()
        self.software = copy.deepcopy(software)
        await self.start()


class _Server(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:  # the test process's signals stay as they are
        yield


@pytest.fixture
async def stand_in(tmp_path: Path) -> AsyncIterator[SoftwareStandIn]:
    server = SoftwareStandIn(tmp_path / "api.sock", INSTALLED)
    await server.start()
    yield server
    await server.stop()


def console(stand_in: SoftwareStandIn, tmp_path: Path) -> ConsoleApp:
    return ConsoleApp(str(stand_in.socket_path), bundle_dir=tmp_path)


def state(app: ConsoleApp) -> str:
    return text(app, "#software-state")


async def test_the_software_tab_shows_the_slots_the_last_rollback_with_its_check_and_output_and_the_history(
    stand_in: SoftwareStandIn, tmp_path: Path
) -> None:
    app = console(stand_in, tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: app.connected, "connected")
        await goto(pilot, "8", "software")
        await until(pilot, lambda: "Running" in state(app), "the software state")
        shown = state(app)
        assert "Running       slot a  1.2.0  good" in shown
        assert "Other slot    slot b  1.3.0  FAILED" in shown
        assert "Last rollback: 1.3.0 — sip_register: no 200 to REGISTER within 5 s" in shown
        assert "    sent REGISTER sip:127.0.0.1:5060" in shown and "    received: nothing" in shown  # its output
        assert "Last update   ROLLED BACK 1.3.0 at" in shown and "fleet informed; upd-42" in shown
        assert "Update        none running" in shown
        assert "History (last 5 of 5, newest last)" in shown
        assert f"{local_time(NOW - 500)}  rolled_back b  1.3.0  sip_register: no 200 to REGISTER" in shown
        assert f"{local_time(NOW - 86400)}  installed   a  1.2.0" in shown

        # an update starts (the periodic refresh shows it), and the result not yet sent
        stand_in.software["update"] = {"running": True, "pending": False}
        stand_in.software["last_result"]["sent"] = False
        await until(pilot, lambda: "Update        IN PROGRESS" in state(app), "the update in progress")
        assert "fleet NOT informed yet" in state(app)


async def test_a_box_not_installed_from_a_bundle_says_so_with_the_reason(stand_in: SoftwareStandIn, tmp_path: Path) -> None:
    stand_in.software = copy.deepcopy(NOT_INSTALLED)
    app = console(stand_in, tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await goto(pilot, "8", "software")
        await until(pilot, lambda: "NOT INSTALLED" in state(app), "not installed")
        assert "does not run from an A/B slot (installed by hand or from a checkout)" in state(app)
        assert "Last rollback" not in state(app)


async def test_installing_a_file_asks_first_then_posts_only_its_path_and_follows_the_restart_to_the_outcome(
    stand_in: SoftwareStandIn, tmp_path: Path
) -> None:
    bundle = str(tmp_path / "usb" / "branchline-1.3.1.bundle")
    app = console(stand_in, tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: app.connected, "connected")
        await goto(pilot, "8", "software")
        await pilot.press("i")  # nothing typed yet: "i" goes to the path field
        await until(pilot, lambda: isinstance(app.focused, Input), "the path field")
        await pilot.press(*bundle, "enter")
        await until(pilot, lambda: isinstance(app.screen, ConfirmScreen), "the confirmation")
        assert f"Install {bundle}?" in str(app.screen.query_one("#question").content)  # type: ignore[attr-defined]
        assert "a failed health check rolls back" in str(app.screen.query_one("#question").content)  # type: ignore[attr-defined]
        await pilot.press("n")  # not this time
        await until(pilot, lambda: not isinstance(app.screen, ConfirmScreen), "the confirmation gone")
        await pilot.press("escape", "i")  # the pane's key with a path typed asks too
        await until(pilot, lambda: isinstance(app.screen, ConfirmScreen), "the confirmation")
        await pilot.press("y")
        await until(pilot, lambda: "accepted" in text(app, "#software-result"), "the install accepted")
        assert stand_in.posts == [{"path": bundle}]  # once ("n" posted nothing), the path and nothing else
        result = text(app, "#software-result")
        assert result.startswith("accepted: installing 1.3.1 …"), result
        assert not app.query_one("#software-result").has_class("-error")

        # the agent restarts the edge and installs 1.3.1 into slot b, which passes its health check
        done = copy.deepcopy(INSTALLED)
        done["current"] = "b"
        done["slots"]["b"] = {"version": "1.3.1", "status": "good", "installed_at": time.time(), "reason": ""}
        done["history"] += [{"at": time.time(), "event": "committed", "slot": "b", "version": "1.3.1", "reason": ""}]
        done["last_result"] = {"id": "console-20240501T104200-abcdef", "ok": True, "at": time.time(), "sent": True,
                               "error": "", "result": {"stage": "done", "version": "1.3.1", "outcome": "committed",
                                                       "check": "", "reason": ""}}  # fmt: skip
        await stand_in.restart(done)
        await until(pilot, lambda: "finished: COMMITTED 1.3.1" in text(app, "#software-result"), "the outcome")
        assert "● connected" in text(app, "#connection")
        assert "Running       slot b  1.3.1  good" in state(app)
        assert "Last update   COMMITTED 1.3.1" in state(app)
        assert "Last rollback: 1.3.0 — sip_register" in state(app)  # still the last one there was
        assert len(stand_in.posts) == 1


async def test_a_bundle_the_edge_refuses_shows_the_check_as_an_error_and_changes_nothing(
    stand_in: SoftwareStandIn, tmp_path: Path
) -> None:
    stand_in.answer = (422, REFUSED)
    bundle = str(tmp_path / "forged.bundle")
    app = console(stand_in, tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await goto(pilot, "8", "software")
        await until(pilot, lambda: "Running" in state(app), "the software state")
        before = state(app)
        await pilot.press("i", *bundle, "enter")
        await until(pilot, lambda: isinstance(app.screen, ConfirmScreen), "the confirmation")
        await pilot.press("y")
        await until(pilot, lambda: "refused" in text(app, "#software-result"), "the refusal")
        assert text(app, "#software-result") == f"refused: {REFUSED['error']}"
        assert app.query_one("#software-result").has_class("-error")
        assert stand_in.posts == [{"path": bundle}]
        assert stand_in.software == INSTALLED  # nothing else changed
        assert app.pane("software").pending is None
        assert state(app) == before
        assert app.query_one("#software-path", Input).value == bundle  # kept, to fix and retry


@pytest.mark.parametrize("size", [(80, 24), (120, 40)], ids=["80x24", "120x40"])
async def test_the_software_tab_fits_both_sizes_and_is_saved_as_a_screenshot(
    stand_in: SoftwareStandIn, tmp_path: Path, size: tuple[int, int]
) -> None:
    """Like tests/integration/test_tui_console.py's screenshots (test-artifacts/tui/,
    for a person to look at): the tab's text, the path field and the result line are on
    screen at 80x24 and 120x40."""
    artifacts = Path(__file__).resolve().parents[2] / "test-artifacts" / "tui"
    artifacts.mkdir(parents=True, exist_ok=True)
    app = console(stand_in, tmp_path)
    width, height = size
    async with app.run_test(size=size) as pilot:
        await goto(pilot, "8", "software")
        await until(pilot, lambda: "Last rollback" in state(app), "the software state")
        for selector in ("#software-box", "#software-path", "#software-install-button", "#software-result"):
            region = app.query_one(selector).region
            assert region.width > 0 and region.height > 0, selector
            assert region.right <= width and region.bottom <= height - 1, (selector, region)  # above the footer
        app.save_screenshot(str(artifacts / f"{width}x{height}-8-software.svg"))
