"""Bootstrap two sshd hosts in parallel from nothing to "enrolled and reporting to the
fleet", then again: no changes.

The hosts are the ones of test_provision_bootstrap.py (two sshd processes on loopback
ports, each in its own mount namespace). The fleet is the real NOC API (uvicorn) next to
a real mosquitto. An admin issues one enrollment token per site through the API;
``bootstrap`` lays out each box, generates its identity key on the box, enrolls it
with the fleet (its public key, the token) and writes the ``telemetry:`` section.
"Reporting" is then shown for real: the edge daemon started with each box's own
provisioned site config connects to the broker and publishes its retained ``state``
online for its site (the edge runs from the test's venv, not from an installed slot:
installing the bundle into slot A over SSH is not part of bootstrap yet).
"""

from __future__ import annotations

import asyncio
import base64
import stat
from pathlib import Path
from typing import Any

import yaml
from cryptography.hazmat.primitives import serialization
from fabric import Connection

from edge_core.telemetry import protocol as p
from fleet.mqtt import MqttConnection
from provisioning.tasks import BootstrapOptions, bootstrap_many
from tests.brokers import Mosquitto
from tests.integration.test_provision_bootstrap import SshHost, hosts, pytestmark  # noqa: F401 (fixture, marks)
from tests.integration.test_rollout_update import fleet_api
from tests.sipp import EdgeProcess, default_edge_config


async def test_two_hosts_enrolled_and_reporting_then_no_changes(
        tmp_path: Path, hosts: tuple[list[SshHost], Path]) -> None:  # noqa: F811
    boxes, key = hosts
    bundle = tmp_path / "branchline-1.0.0.bundle"
    bundle.write_bytes(b"bundle" * 1000)
    by_name = {f"127.0.0.1:{h.port}": h for h in boxes}
    site_of = {name: f"branch-{h.port}" for name, h in by_name.items()}
    edges: list[EdgeProcess] = []
    try:
        with Mosquitto(tmp_path / "mq") as broker:
            async with fleet_api(tmp_path, broker.url) as api:
                tokens: dict[str, str] = {}
                for name, site in site_of.items():
                    r = await api.post("/api/v1/enroll-tokens", json={"site": site, "expires_in_s": 600})
                    assert r.status_code == 201, r.text
                    tokens[name] = r.json()["token"]
                configs = {name: _edge_config() for name in by_name}

                def connect(name: str) -> Connection:
                    return Connection("127.0.0.1", port=by_name[name].port, user="root", connect_kwargs={
                        "key_filename": str(key), "look_for_keys": False, "allow_agent": False})

                def opts(name: str) -> BootstrapOptions:
                    return BootstrapOptions(site=site_of[name], fleet_url=str(api.base_url), bundle=bundle,
                                            root="/srv/branchline", site_config=configs[name],
                                            enroll_token=tokens[name], bundle_public_key=b"-----BEGIN PUBLIC KEY-----\n",
                                            updater={"service": "systemd"})

                first = await asyncio.to_thread(bootstrap_many, connect, list(by_name), opts)
                for report in first:
                    assert report.ok, "\n".join(report.lines())
                    assert {"layout", "bundle", "identity", "enroll", "site-config"} <= \
                        {s.name for s in report.steps if s.changed}, "\n".join(report.lines())

                # the fleet knows both boxes by their public keys
                devices = {d["site_id"]: d for d in (await api.get("/api/v1/devices")).json()}
                assert set(devices) == set(site_of.values())
                signing = api.app_state.ctx.configs.signing_key  # type: ignore[attr-defined]
                fleet_key = base64.b64encode(signing.public_key().public_bytes(
                    serialization.Encoding.Raw, serialization.PublicFormat.Raw)).decode()
                for name, report in zip(by_name, first, strict=True):
                    root = by_name[name].srv / "branchline"
                    site_yaml = root / "etc" / "site.yaml"
                    telemetry = yaml.safe_load(site_yaml.read_text())["telemetry"]
                    assert telemetry["site_id"] == site_of[name] and telemetry["enabled"] is True
                    assert telemetry["broker_url"] == broker.url and telemetry["fleet_public_key"] == fleet_key
                    assert telemetry["password"] and stat.S_IMODE(site_yaml.stat().st_mode) == 0o600
                    assert (root / "etc" / "updater.yaml").exists() and (root / "etc" / "bundle.pub").exists()
                    assert "PRIVATE" not in report.public_key
                # a used token does not work twice
                r = await api.post("/api/v1/enroll", json={"token": tokens[next(iter(by_name))],
                                                           "public_key": first[0].public_key})
                assert r.status_code == 401 and "used already" in r.json()["error"]

                # reporting: each box's provisioned config brings its edge online at the broker
                async with MqttConnection(broker.url, "enroll-test-watch") as watch:
                    await watch.subscribe([(f"{p.PREFIX}/+/state", 1)])
                    for h in by_name.values():
                        config = yaml.safe_load((h.srv / "branchline" / "etc" / "site.yaml").read_text())
                        edge = EdgeProcess(tmp_path / f"edge-{h.port}", config)
                        edges.append(edge)
                        await edge.start_async()
                    online: set[str] = set()
                    while online != set(site_of.values()):
                        msg = await asyncio.wait_for(watch.messages.get(), 30)
                        site, _ = p.parse_topic(msg.topic)
                        if p.State.from_bytes(bytes(msg.payload)).status == "online":
                            online.add(site)
                for edge in edges:
                    edge.stop()
                edges.clear()

                # again: nothing changes, nothing is enrolled twice
                second = await asyncio.to_thread(bootstrap_many, connect, list(by_name), opts)
                for before, after in zip(first, second, strict=True):
                    assert after.ok and not after.changed, "\n".join(after.lines())
                    assert after.public_key == before.public_key
                    assert any(s.name == "enroll" and "already" in s.detail for s in after.steps)
                again = {d["site_id"]: d["enrolled_at"] for d in (await api.get("/api/v1/devices")).json()}
                assert again == {s: d["enrolled_at"] for s, d in devices.items()}
    finally:
        for edge in edges:  # (only when an assertion above failed first)
            if edge.running():
                edge.kill()



def _edge_config() -> dict[str, Any]:
    """The site config provisioning writes besides ``site`` and ``telemetry``; the store
    path is relative to the edge's working directory."""
    config = default_edge_config(Path("."))
    del config["site"]
    config["store"]["path"] = "edge.db"
    return config
