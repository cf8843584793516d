"""A small rollout for ``branchline demo``: watchable in the API (and the dashboard's
audit log) across the demo's simulated sites.

:func:`demo_rollout` builds a tiny signed bundle (a placeholder wheel), uploads it to
the fleet (``POST /api/v1/bundles``), creates a campaign over ``sites`` (waves: one
site, then the rest; always in window), and plays the boxes behind those sites: each
answers its ``update`` command like the real edge and update agent do -- ``accepted``,
the bundle downloaded over HTTP from the fleet and its SHA-256 checked
(:func:`images.agent.download`), then ``done`` -- ``committed``, or ``rolled_back`` with
a health-check reason for the sites in ``bad_sites``. The demo's real edge is not in
the campaign: it does not run from an A/B box, so it would refuse the update.

From the demo (edge_core/demo.py, once the fleet is up)::

    from fleet.rollout_demo import demo_rollout
    task = asyncio.create_task(demo_rollout(fleet.dashboard_url, fleet.token, fleet.broker_url,
                                            workdir / "rollout"))

It returns the campaign as ``GET /api/v1/rollouts/{id}`` shows it once it ends.
"""

from __future__ import annotations

import asyncio
import json
import urllib.request
from pathlib import Path
from typing import Any

from edge_core.telemetry import protocol
from fleet.mqtt import MqttConnection

DEMO_SITES = ("branch-002", "branch-003", "branch-004", "branch-005")
DEMO_BAD = ("branch-004",)


def _api(api_url: str, token: str, method: str, path: str, body: bytes | None = None,
         content_type: str = "application/json") -> Any:
    request = urllib.request.Request(f"{api_url.rstrip('/')}{path}", method=method, data=body, headers={
        "Authorization": f"Bearer {token}", "Content-Type": content_type})
    with urllib.request.urlopen(request, timeout=30) as resp:
        return json.loads(resp.read())


def build_demo_bundle(workdir: Path, version: str) -> Path:
    """A signed bundle holding a placeholder wheel (the key is made here and thrown away:
    the simulated boxes check the download's hash, not the signature)."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from images.build import make_bundle

    wheels = workdir / "wheels"
    wheels.mkdir(parents=True, exist_ok=True)
    (wheels / f"branchline-{version}-py3-none-any.whl").write_bytes(b"demo wheel " * 20_000)
    out = workdir / f"branchline-{version}.bundle"
    make_bundle(out, version=version, key=Ed25519PrivateKey.generate(), wheels=sorted(wheels.glob("*.whl")),
                build_time=1_700_000_000)
    return out


async def _play_box(mqtt: MqttConnection, site: str, command: protocol.Command, workdir: Path,
                    bad: bool, step_s: float) -> None:
    from images.agent import download

    args = protocol.UpdateArgs.model_validate(command.args)

    def answer(ok: bool, result: protocol.UpdateResult, error: str = "") -> None:
        reply = protocol.CommandResult(id=args.report_id, ok=ok, result=result.model_dump(), error=error)
        mqtt.publish(protocol.topic(site, "cmd/result"), reply.to_bytes(), qos=1)

    answer(True, protocol.UpdateResult(stage="accepted", version=args.version))
    try:
        await asyncio.to_thread(download, args.url, workdir / site / f"{args.sha256}.bundle",
                                sha256=args.sha256, size=args.size)
    except Exception as exc:  # the demo box reports whatever went wrong
        answer(False, protocol.UpdateResult(stage="done", version=args.version, outcome="failed",
                                            check="download", reason=str(exc)), str(exc))
        return
    await asyncio.sleep(step_s)  # the simulated install and health check take a moment to watch
    if bad:
        reason = ("api: /srv/branchline/data/var/edge.sock: [Errno 2] No such file or directory "
                  "(simulated: the new release's control API did not come up)")
        answer(False, protocol.UpdateResult(stage="done", version=args.version, outcome="rolled_back",
                                            check="api", reason=reason), f"rolled_back: {reason}")
    else:
        answer(True, protocol.UpdateResult(stage="done", version=args.version, outcome="committed"))


async def demo_rollout(api_url: str, token: str, broker_url: str, workdir: Path, *,
                       sites: tuple[str, ...] = DEMO_SITES, bad_sites: tuple[str, ...] = DEMO_BAD,
                       version: str = "0.2.0", step_s: float = 2.0, timeout_s: float = 300.0) -> dict[str, Any]:
    """Run a rollout of a demo bundle over ``sites`` to its end; the final campaign."""
    workdir.mkdir(parents=True, exist_ok=True)
    bundle = await asyncio.to_thread(build_demo_bundle, workdir, version)
    info = await asyncio.to_thread(_api, api_url, token, "POST", "/api/v1/bundles", bundle.read_bytes(),
                                   "application/octet-stream")
    spec = {"name": f"demo: {version} to {len(sites)} branches", "bundle": info["sha256"], "sites": list(sites),
            "waves": [1, 1.0], "max_concurrent": 2, "window_start_h": 0, "window_end_h": 0,
            "success_threshold": 0.6, "error_threshold": 0.5, "bundle_base_url": api_url}
    campaign = await asyncio.to_thread(_api, api_url, token, "POST", "/api/v1/rollouts", json.dumps(spec).encode())
    cid = int(campaign["id"])
    tasks: set[asyncio.Task[None]] = set()
    async with MqttConnection(broker_url, f"demo-rollout-boxes-{cid}") as mqtt:
        await mqtt.subscribe([(protocol.topic(site, "cmd"), 1) for site in sites])

        async def serve() -> None:
            while True:
                msg = await mqtt.messages.get()
                site, _ = protocol.parse_topic(msg.topic)
                try:
                    command = protocol.Command.from_bytes(bytes(msg.payload))
                except protocol.ProtocolError:
                    continue
                if command.op == protocol.UPDATE_OP:
                    task = asyncio.create_task(_play_box(mqtt, site, command, workdir, site in bad_sites, step_s))
                    tasks.add(task)
                    task.add_done_callback(tasks.discard)

        server = asyncio.create_task(serve())
        try:
            async with asyncio.timeout(timeout_s):
                while True:
                    campaign = await asyncio.to_thread(_api, api_url, token, "GET", f"/api/v1/rollouts/{cid}")
                    if campaign["state"] not in ("running", "paused"):
                        return dict(campaign)
                    await asyncio.sleep(0.5)  # polling the API, as the dashboard does
        finally:
            server.cancel()
            for task in list(tasks):
                task.cancel()
            await asyncio.gather(server, *tasks, return_exceptions=True)
