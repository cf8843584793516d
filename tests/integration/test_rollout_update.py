"""Rollouts driven by the fleet, end to end, with every part real.

A real mosquitto; the NOC API served by uvicorn with its rollout control loop (the
router's lifespan task); a box root with supervisord running the real edge from slot a
with telemetry on. A campaign created through the API sends the ``update`` command over
MQTT; the edge starts the update agent (``images.agent``, detached), which downloads the
bundle from the API's download route, runs the real installer (switch, restart through
supervisord, health check) and publishes the outcome on ``cmd/result``; the control loop
reports it to the campaign. A good release is committed and the campaign is done; a
release whose control API is off fails its health check, is rolled back on the box, and
the campaign halts with the reason (``api: ...``) visible in ``GET /rollouts/{id}``.

Fast path as in test_image_install.py: bundles hold only the project wheel, the slot
venvs take the dependencies from the test venv (``host_site_packages`` in updater.yaml).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import site
import sys
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
import yaml
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from fleet.api.app import create_app
from fleet.api.auth import Role, TokenRegistry
from fleet.configs import ConfigStore
from fleet.mqtt import RetainedPublisher
from fleet.store import FleetStore
from images.agent import download
from images.build import make_bundle
from images.signing import public_pem
from tests.brokers import Mosquitto, mosquitto_binary
from tests.integration.test_image_install import SUPERVISORD, Box, project_wheel  # noqa: F401 (fixture)
from tests.sipp import free_tcp_port, wait_for_async, wait_for_coro

pytestmark = [
    pytest.mark.skipif(mosquitto_binary() is None, reason="mosquitto not installed"),
    pytest.mark.skipif(SUPERVISORD is None, reason="supervisord missing (Debian package supervisor)"),
]

ADMIN = "rollout-test-admin-token"


@asynccontextmanager
async def fleet_api(tmp_path: Path, broker_url: str | None, *, host: str = "127.0.0.1", db_url: str | None = None,
                    config_broker: str | None = None, admin: str = ADMIN, viewer: str | None = None,
                    **state: Any) -> AsyncIterator[httpx.AsyncClient]:
    """The NOC API on a free port of ``host`` (lifespan on: rollout tables, and the control
    loop on ``broker_url`` when given) over ``db_url`` (default: SQLite in ``tmp_path``),
    pushing configs through ``config_broker`` when given; ``state`` goes onto
    ``app.state``. Yields a client with the ``admin`` token (``viewer``: a viewer token too)."""
    store = await FleetStore.open(db_url or f"sqlite+aiosqlite:///{tmp_path / 'fleet.db'}")
    tokens = TokenRegistry()
    tokens.issue("admin", Role.admin, created_by="test", secret=admin)
    if viewer is not None:
        tokens.issue("noc", Role.viewer, created_by="test", secret=viewer)
    publisher = RetainedPublisher(config_broker, "fleet-api-config") if config_broker else None
    configs = ConfigStore(store, Ed25519PrivateKey.generate(), publisher)
    app = create_app(store, configs=configs, tokens=tokens, dashboard_dir=None)
    app.state.bundle_dir = tmp_path / "bundles"
    app.state.rollout_broker = broker_url
    app.state.rollout_tick_s = 0.2
    for key, value in state.items():
        setattr(app.state, key, value)
    port = free_tcp_port()
    server = uvicorn.Server(uvicorn.Config(app, host=host, port=port, log_level="warning", lifespan="on"))
    task = asyncio.create_task(server.serve())
    try:
        await wait_for_async(lambda: server.started or task.done(), 20, what="uvicorn started")
        assert not task.done(), task
        async with httpx.AsyncClient(base_url=f"http://{host}:{port}", timeout=30,
                                     headers={"Authorization": f"Bearer {admin}"}) as client:
            client.app_state = app.state  # type: ignore[attr-defined]
            yield client
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 30)
        if publisher is not None:
            await publisher.close()
        await store.close()


def placeholder_bundle(tmp_path: Path, version: str) -> Path:
    """A validly signed bundle whose wheel is placeholder bytes: for campaigns whose boxes
    are stand-ins that never install it."""
    wheels = tmp_path / f"w-{version}"
    wheels.mkdir()
    (wheels / f"branchline-{version}-py3-none-any.whl").write_bytes(b"wheel" * 100)
    bundle = tmp_path / f"{version}.bundle"
    make_bundle(bundle, version=version, key=Ed25519PrivateKey.generate(), wheels=sorted(wheels.glob("*.whl")),
                build_time=1_700_000_000)
    return bundle


async def upload(client: httpx.AsyncClient, bundle: Path) -> dict[str, Any]:
    r = await client.post("/api/v1/bundles", content=bundle.read_bytes(),
                          headers={"Content-Type": "application/octet-stream"})
    assert r.status_code == 201, r.text
    return dict(r.json())


class FleetBox(Box):
    """A Box whose edge reports to ``broker_url`` as ``site`` and can update itself."""

    def __init__(self, root: Path, key: Ed25519PrivateKey, wheel: Path, broker_url: str, site_id: str) -> None:
        super().__init__(root, key, wheel)
        config = yaml.safe_load(self.layout.site_config.read_text())
        config["site"]["id"] = site_id
        config["telemetry"] = {"enabled": True, "broker_url": broker_url, "metrics_interval_s": 5,
                               "reconnect_min_s": 0.2, "reconnect_max_s": 1}
        self.layout.site_config.write_text(yaml.safe_dump(config))
        (self.layout.root / "etc" / "bundle.pub").write_bytes(public_pem(key.public_key()))
        (self.layout.root / "etc" / "updater.yaml").write_text(yaml.safe_dump({
            "service": "supervisor", "supervisor_socket": str(self.run_dir / "supervisor.sock"),
            "bundle_public_key_file": "etc/bundle.pub", "python": sys.executable,
            "health": {"window_s": 8, "crash_loop_starts": 3, "crash_loop_window_s": 30, "poll_s": 0.1},
            "quiet_max_wait_s": 5, "host_site_packages": site.getsitepackages()[0],
        }))


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Mosquitto]:
    with Mosquitto(tmp_path / "mq") as b:
        yield b


async def test_campaign_updates_a_real_box_then_halts_on_a_rollback(
        tmp_path: Path, broker: Mosquitto, project_wheel: Path) -> None:  # noqa: F811
    box = FleetBox(tmp_path / "box", Ed25519PrivateKey.generate(), project_wheel, broker.url, "branch-1")
    try:
        first = await asyncio.to_thread(box.installer.install, box.bundle("1.0.0"))
        assert first.outcome == "committed", first
        good, bad = box.bundle("1.1.0"), box.bundle("1.2.0", override={"api": {"socket": ""}})
        async with fleet_api(tmp_path, broker.url) as api:
            info = await upload(api, good)
            assert info["version"] == "1.1.0" and info["sha256"] == hashlib.sha256(good.read_bytes()).hexdigest()
            r = await api.post("/api/v1/rollouts", json={
                "name": "1.1.0 to branch-1", "bundle": info["sha256"], "sites": ["branch-1"], "waves": [1],
                "window_start_h": 0, "window_end_h": 0, "install_timeout_s": 120})
            assert r.status_code == 201, r.text
            cid = r.json()["id"]

            async def finished(cid: int = cid) -> dict[str, Any] | None:
                body = (await api.get(f"/api/v1/rollouts/{cid}")).json()
                return body if body["state"] not in ("running", "paused") else None

            done = await wait_for_coro(finished, 90, interval_s=0.1, what="campaign 1 finished")
            assert done["state"] == "done", done
            assert done["sites"][0]["state"] == "committed", done
            state = box.layout.load()
            assert box.layout.current() == "b" and state.slots["b"].version == "1.1.0"
            assert state.slots["b"].status == "good"

            info = await upload(api, bad)
            r = await api.post("/api/v1/rollouts", json={
                "name": "1.2.0 to branch-1", "bundle": info["sha256"], "sites": ["branch-1"], "waves": [1],
                "window_start_h": 0, "window_end_h": 0, "error_threshold": 0})
            assert r.status_code == 201, r.text
            cid2 = r.json()["id"]
            halted = await wait_for_coro(lambda: finished(cid2), 90, interval_s=0.1, what="campaign 2 finished")
            assert halted["state"] == "halted", halted
            row = halted["sites"][0]
            assert (row["state"], row["check"]) == ("rolled_back", "api"), row
            assert "control API is turned off" in row["reason"]
            assert "1 of 1 failed" in halted["halt_reason"]
            listed = (await api.get("/api/v1/rollouts")).json()
            assert [c["state"] for c in listed] == ["halted", "done"]
            audit = (await api.get("/api/v1/audit", params={"actor": "admin"})).json()
            assert {"rollout.create", "bundle.upload"} <= {a["action"] for a in audit}
        # the box is back on 1.1.0, running
        state = box.layout.load()
        assert box.layout.current() == "b" and state.slots["a"].status == "failed"
        assert state.slots["a"].reason.startswith("api:")
        assert box.service.status("branchline-edge").state == "running"
        last = json.loads((box.layout.data_dir / "update-last.json").read_text())
        # the agent's own publish was acknowledged: marked sent, nothing left for the edge
        assert last["sent"] is True and last["result"]["outcome"] == "rolled_back", last
    finally:
        box.close()


async def test_pause_resume_abort_are_audited_and_download_resumes(tmp_path: Path) -> None:
    key = Ed25519PrivateKey.generate()
    from images.build import make_bundle

    wheels = tmp_path / "w"
    wheels.mkdir()
    (wheels / "branchline-3.0.0-py3-none-any.whl").write_bytes(os.urandom(300_000))
    bundle = tmp_path / "b.bundle"
    make_bundle(bundle, version="3.0.0", key=key, wheels=sorted(wheels.glob("*.whl")), build_time=1_700_000_000)
    data = bundle.read_bytes()
    async with fleet_api(tmp_path, None) as api:  # no broker: no control loop, campaigns stay put
        info = await upload(api, bundle)
        sha = info["sha256"]
        # boxes download without a token, with Range
        async with httpx.AsyncClient(base_url=str(api.base_url)) as anonymous:
            r = await anonymous.get(f"/api/v1/bundles/{sha}", headers={"Range": "bytes=1000-1999"})
            assert r.status_code == 206 and r.content == data[1000:2000]
            assert (await anonymous.get(f"/api/v1/bundles/{'0' * 64}")).status_code == 404
            assert (await anonymous.get("/api/v1/rollouts")).status_code == 401
        # the agent's download resumes a half-written .part
        dest = tmp_path / "dl" / f"{sha}.bundle"
        dest.parent.mkdir()
        dest.with_name(dest.name + ".part").write_bytes(data[: len(data) // 2])
        seen: list[int] = []
        await asyncio.to_thread(download, f"{str(api.base_url).rstrip('/')}/api/v1/bundles/{sha}", dest, sha256=sha, size=len(data),
                                on_progress=seen.append)
        assert dest.read_bytes() == data and seen[0] > len(data) // 2

        r = await api.post("/api/v1/rollouts", json={"name": "x", "bundle": sha, "sites": ["s1", "s2"]})
        assert r.status_code == 201, r.text
        cid = r.json()["id"]
        assert [len(w) for w in r.json()["waves"]] == [1, 1]
        for action, state in (("pause", "paused"), ("resume", "running"), ("abort", "aborted")):
            r = await api.post(f"/api/v1/rollouts/{cid}/{action}")
            assert r.status_code == 200 and r.json()["state"] == state, r.text
        assert (await api.post(f"/api/v1/rollouts/{cid}/resume")).status_code == 409
        assert {s["state"] for s in (await api.get(f"/api/v1/rollouts/{cid}")).json()["sites"]} == {"skipped"}
        audit = (await api.get("/api/v1/audit", params={"target": f"rollout/{cid}"})).json()
        assert [a["action"] for a in audit] == ["rollout.abort", "rollout.resume", "rollout.pause", "rollout.create"]
        r = await api.post("/api/v1/rollouts", json={"name": "x", "bundle": "f" * 64, "sites": ["s1"]})
        assert r.status_code == 404
