"""The edge's software API, as the technician console uses it: ``GET /v1/software`` and
an install from a file on the box (``POST /v1/software/install``), on a real A/B box
under supervisord (tests/integration/test_image_install.py's ``Box``) whose edge runs
from its slot.

A corrupted bundle, one signed with another key, a downgrade and a bad path are
refused before anything is written; a good one is copied in, installed, health-checked
and committed by the update agent the edge starts (the edge is restarted by it); a
release whose health check fails is rolled back, and the console reads why.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import site
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from images.service import EDGE_SERVICE, _UnixHTTPConnection
from images.signing import public_pem
from tests.integration.test_image_install import Box, project_wheel  # noqa: F401 (session fixture)
from tests.sipp import wait_for

pytestmark = pytest.mark.skipif(shutil.which("supervisord") is None,
                                reason="supervisord missing (Debian package supervisor)")


class Response:
    def __init__(self, status_code: int, body: bytes) -> None:
        self.status_code, self.text = status_code, body.decode(errors="replace")

    def json(self) -> Any:
        return json.loads(self.text)


class Console:
    """What the console does: HTTP on the edge's unix socket (a new connection each
    time: the edge restarts under it)."""

    def __init__(self, box: Box) -> None:
        socket_path = box.probe().endpoints.api_socket
        assert socket_path is not None
        self.socket = str(socket_path)

    def request(self, method: str, path: str, body: dict[str, Any] | None = None) -> Response:
        conn = _UnixHTTPConnection(self.socket, 30)
        try:
            data = json.dumps(body).encode() if body is not None else None
            conn.request(method, path, data, {"Content-Type": "application/json"} if data else {})
            with conn.getresponse() as resp:
                return Response(resp.status, resp.read())
        finally:
            conn.close()

    def software(self) -> dict[str, Any]:
        r = self.request("GET", "/v1/software")
        assert r.status_code == 200, r.text
        return dict(r.json())

    def answering(self) -> dict[str, Any] | None:
        try:
            return self.software()
        except OSError:
            return None


@pytest.fixture
def box(tmp_path: Path, project_wheel: Path) -> Any:  # noqa: F811
    key = Ed25519PrivateKey.generate()
    b = Box(tmp_path, key, project_wheel)
    (b.layout.root / "etc" / "bundle.pub").write_bytes(public_pem(key.public_key()))
    (b.layout.root / "etc" / "updater.yaml").write_text(yaml.safe_dump({
        "service": "supervisor", "supervisor_socket": str(b.run_dir / "supervisor.sock"),
        "python": sys.executable, "host_site_packages": site.getsitepackages()[0],
        "health": {"window_s": 15, "crash_loop_starts": 3, "crash_loop_window_s": 30, "poll_s": 0.1},
        "quiet_max_wait_s": 5,
    }))
    yield b
    b.close()


def test_the_console_reads_slots_and_installs_from_a_file(box: Box, tmp_path: Path) -> None:
    assert box.installer.install(box.bundle("1.0.0")).outcome == "committed"
    console = Console(box)
    sw = wait_for(console.answering, 20, what="the edge's API from slot a")
    assert sw["installed"] and sw["current"] == "a" and sw["root"] == str(box.layout.root)
    assert sw["slots"]["a"]["version"] == "1.0.0" and sw["slots"]["a"]["status"] == "good"
    assert sw["update"] == {"running": False, "pending": False} and sw["last_result"] is None
    assert sw["history"][-1]["event"] == "committed"

    # refused before anything is written; the edge keeps running untouched
    good = box.bundle("1.1.0")
    corrupt = tmp_path / "corrupt.bundle"
    data = bytearray(good.read_bytes())
    data[len(data) // 2] ^= 0xFF
    corrupt.write_bytes(bytes(data))
    foreign = box.bundle("1.1.1", key=Ed25519PrivateKey.generate())
    before, pid = box.snapshot(), box.service.status(EDGE_SERVICE).pid
    for path, status, words in ((corrupt, 422, "hash"), (foreign, 422, "signature"),
                                (box.bundle("0.9.0"), 422, "downgrade"),
                                (Path("relative.bundle"), 400, "absolute"), (tmp_path / "none.bundle", 400, "no such")):
        r = console.request("POST", "/v1/software/install", {"path": str(path)})
        assert r.status_code == status and words in r.json()["error"], (path, r.text)
        assert r.json()["field"] == "path"
    assert box.snapshot() == before and box.service.status(EDGE_SERVICE).pid == pid
    r = console.request("POST", "/v1/software/install", {"path": str(good), "force": True})
    assert r.status_code == 422 and r.json()["field"] == "body.force"  # unknown fields refused

    # a good bundle from the "USB stick": installed, health-checked, committed
    r = console.request("POST", "/v1/software/install", {"path": str(good)})
    assert r.status_code == 202, r.text
    accepted = r.json()
    assert accepted["version"] == "1.1.0" and accepted["report_id"].startswith("console-")

    def settled(version: str) -> dict[str, Any] | None:
        sw = console.answering()
        result = (sw or {}).get("last_result") or {}
        done = result.get("result", {}).get("version") == version and not sw["update"]["running"]  # type: ignore[index]
        return sw if done else None

    sw = wait_for(lambda: settled("1.1.0"), 90, what="the console install of 1.1.0 to finish")
    assert sw["current"] == "b" and sw["slots"]["b"] == {**sw["slots"]["b"], "version": "1.1.0", "status": "good"}
    assert sw["last_result"]["ok"] and sw["last_result"]["result"]["outcome"] == "committed"
    assert sw["last_result"]["id"] == accepted["report_id"]
    assert (box.layout.root / "incoming").is_dir() and good.exists()  # the stick's file is left as it was

    # a release whose control API is off fails its health check: rolled back, and why
    bad = box.bundle("1.2.0", override={"api": {"socket": ""}})
    r = console.request("POST", "/v1/software/install", {"path": str(bad)})
    assert r.status_code == 202, r.text
    sw = wait_for(lambda: settled("1.2.0"), 120, what="the console install of 1.2.0 to roll back")
    assert sw["current"] == "b" and sw["slots"]["a"]["status"] == "failed"
    assert sw["slots"]["a"]["reason"].startswith("api:")
    assert not sw["last_result"]["ok"]
    assert (sw["last_result"]["result"]["outcome"], sw["last_result"]["result"]["check"]) == ("rolled_back", "api")
    last = sw["history"][-1]
    assert (last["event"], last["version"], last.get("check")) == ("rolled_back", "1.2.0", "api")


def test_an_edge_not_run_from_a_slot_says_so(tmp_path: Path) -> None:
    from edge_core.api.software import software_state

    assert software_state(None)["installed"] is False
    empty = software_state(tmp_path)
    assert empty["installed"] is False and "nothing was installed" in empty["reason"]


async def test_the_console_installs_a_file_on_a_real_box(box: Box, tmp_path: Path) -> None:
    """The technician's whole path, through the console's Software tab on a real edge:
    type the file, confirm, follow the restart to the committed release."""
    from tests.integration.test_tui_console import goto, text, until
    from tui.app import ConsoleApp
    from tui.screens import ConfirmScreen

    assert (await asyncio.to_thread(box.installer.install, box.bundle("1.0.0"))).outcome == "committed"
    good = box.bundle("1.1.0")
    socket_path = box.probe().endpoints.api_socket
    app = ConsoleApp(str(socket_path), bundle_dir=tmp_path)
    async with app.run_test(size=(120, 40)) as pilot:
        await until(pilot, lambda: app.connected, "connected", 20)
        await goto(pilot, "8", "software")
        await until(pilot, lambda: "slot a  1.0.0  good" in text(app, "#software-state"), "slot a shown")
        await pilot.press("i", *str(good), "enter")
        await until(pilot, lambda: isinstance(app.screen, ConfirmScreen), "the confirmation")
        await pilot.press("y")
        await until(pilot, lambda: "finished: COMMITTED 1.1.0" in text(app, "#software-result"),
                    "the install to finish", 90)
        await until(pilot, lambda: "slot b  1.1.0  good" in text(app, "#software-state"), "slot b shown")
    assert box.layout.current() == "b" and box.layout.load().slots["b"].status == "good"
