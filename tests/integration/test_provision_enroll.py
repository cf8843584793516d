"""Bootstrap two sshd hosts in parallel from nothing to "installed, enrolled and
reporting to the fleet", look after them, roll a release out to one, then bootstrap
again: no changes.

The hosts are the ones of test_provision_bootstrap.py: two sshd, each in its own
network namespace (a veth to the test's namespace; loopback ports where namespaces
cannot be made) and mount namespace (its own /etc and /srv). The fleet is the real
NOC API (uvicorn) and a real mosquitto whose password and ACL files the fleet keeps,
both listening where the boxes reach them. An admin issues one enrollment token per
site through the API; ``bootstrap`` verifies the signed bundle, creates the service
user, lays out each box, generates its identity key on the box, enrolls it with the
fleet (its public key, the token), writes the site config, starts the box's own
supervisord, installs the bundle into slot A with the box's own installer (which
starts the edge and commits only when its health check passes), starts the updater
and runs the health check again. "Reporting" is shown for real: each box's edge --
running from slot A as the service user under the box's supervisord -- publishes its
retained ``state`` online for its site with its own MQTT credentials. Then ``provision
status``, ``collect-logs`` (no secret in the support bundle) and ``rotate-credentials``
(the old password refused, the edge back online on the new one), and a fleet campaign
that updates one box to 1.0.1 through the edge's request and the box's updater.

The bundle holds the project wheel only; its dependencies come from the test's
site-packages (``deps_site_packages``), which keeps the installs to seconds.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import shutil
import stat
import tarfile
from pathlib import Path
from site import getsitepackages
from typing import Any

import pytest
import yaml
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from fabric import Connection

from edge_core.telemetry import protocol as p
from fleet.mqtt import MqttConnection
from images.build import make_bundle
from images.service import EDGE_SERVICE
from images.signing import public_pem
from provisioning.maintain import REDACTED, box_status, collect_logs, rotate_credentials
from provisioning.remote import as_root
from provisioning.tasks import BootstrapOptions, bootstrap_many
from tests.integration.test_broker_auth import Secured, refused
from tests.integration.test_image_install import project_wheel  # noqa: F401 (session fixture)
from tests.integration.test_provision_bootstrap import (  # noqa: F401 (fixture, marks)
    ADMIN_USER,
    SUDO,
    SshHost,
    connector,
    hosts,
    pytestmark,
)
from tests.integration.test_rollout_update import ADMIN, fleet_api, upload
from tests.sipp import default_edge_config, wait_for_async, wait_for_coro

pytestmark = [*pytestmark, pytest.mark.skipif(shutil.which("supervisord") is None,
                                              reason="supervisord missing (Debian package supervisor)")]


async def test_two_hosts_installed_enrolled_and_reporting_then_no_changes(
        tmp_path: Path, hosts: tuple[list[SshHost], Path], project_wheel: Path) -> None:  # noqa: F811
    boxes, key = hosts
    signing_key = Ed25519PrivateKey.generate()
    bundle = tmp_path / "branchline-1.0.0.bundle"
    make_bundle(bundle, version="1.0.0", key=signing_key, wheels=[project_wheel], files_dir=None,
                build_time=1_700_000_000)
    # as an admin through sudo (root where sudo is not installed)
    by_name, connect = connector(boxes, key, {h.name: ADMIN_USER for h in boxes} if SUDO else None)
    site_of = {name: f"branch-{h.dir.name}" for name, h in by_name.items()}
    # the fleet and the broker listen where the boxes reach them: the test's end of the
    # first box's veth (both boxes route there), or loopback when there are no namespaces
    fleet_host = boxes[0].peer_address
    secured = Secured(tmp_path, host=fleet_host)
    secured.auth.write([])
    with secured.broker as broker:
        async with fleet_api(tmp_path, secured.fleet_url, host=fleet_host, broker_auth=secured.auth) as api:
            tokens: dict[str, str] = {}
            for name, site in site_of.items():
                r = await api.post("/api/v1/enroll-tokens", json={"site": site, "expires_in_s": 600})
                assert r.status_code == 201, r.text
                tokens[name] = r.json()["token"]
            configs = {name: _edge_config() for name in by_name}

            def opts(name: str) -> BootstrapOptions:
                return BootstrapOptions(site=site_of[name], fleet_url=str(api.base_url), bundle=bundle,
                                        root="/srv/branchline", site_config=configs[name],
                                        enroll_token=tokens[name],
                                        bundle_public_key=public_pem(signing_key.public_key()),
                                        service="supervisor", service_user="branchline",
                                        deps_site_packages=getsitepackages()[0],
                                        updater={"health": {"window_s": 60, "poll_s": 0.2}})

            first = await asyncio.to_thread(bootstrap_many, connect, list(by_name), opts)
            for report in first:
                assert report.ok, "\n".join(report.lines())
                assert {"service-user", "layout", "bundle", "identity", "enroll", "site-config", "service",
                        "install"} <= {s.name for s in report.steps if s.changed}, "\n".join(report.lines())
                assert any(s.name == "health" and s.detail.startswith("passed") for s in report.steps)

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
                # slot A holds the release, committed by the box's own installer
                state = json.loads((root / "state.json").read_text())
                assert os.readlink(root / "current") == "slots/a"
                assert state["slots"]["a"]["version"] == "1.0.0" and state["slots"]["a"]["status"] == "good"
                assert not (root / "incoming" / "installer").exists()
                slot_config = root / "slots" / "a" / "etc" / "site.yaml"
                assert stat.S_IMODE(slot_config.stat().st_mode) == 0o600  # it holds the MQTT password
                # the edge runs from slot A under the box's supervisord, as the service user
                pid = _edge_pid(connect(name))
                exe = os.readlink(f"/proc/{pid}/exe")
                assert Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[1].startswith(
                    b"/srv/branchline/current/venv/bin/branchline"), exe
                uid = int(next(line for line in Path(f"/proc/{pid}/status").read_text().splitlines()
                               if line.startswith("Uid:")).split()[1])
                assert uid != 0 and (root / "data").stat().st_uid == uid
            # a used token does not work twice
            r = await api.post("/api/v1/enroll", json={"token": tokens[next(iter(by_name))],
                                                       "public_key": first[0].public_key})
            assert r.status_code == 401 and "used already" in r.json()["error"]

            # reporting: each box's edge is online at the broker for its own site
            async with MqttConnection(secured.fleet_url, "enroll-test-watch") as watch:
                await watch.subscribe([(f"{p.PREFIX}/+/state", 1)])
                online: set[str] = set()
                while online != set(site_of.values()):
                    msg = await asyncio.wait_for(watch.messages.get(), 30)
                    site_id, _ = p.parse_topic(msg.topic)
                    if p.State.from_bytes(bytes(msg.payload)).status == "online":
                        online.add(site_id)

            # provision status and collect-logs on the running boxes
            for name, h in by_name.items():
                status = await asyncio.to_thread(box_status, connect(name), "/srv/branchline")
                assert status.ok and status.site == site_of[name] and status.current == "a", status.lines()
                assert status.health["ok"] and "RUNNING" in status.service, status.lines()
                assert status.lines()[0].endswith("1.0.0 in slot a (good), health ok")
                support = await asyncio.to_thread(collect_logs, connect(name), "/srv/branchline",
                                                  tmp_path / "support")
                with tarfile.open(support) as tar:
                    members = {m.name.split("/", 1)[1]: tar.extractfile(m).read()  # type: ignore[union-attr]
                               for m in tar.getmembers() if m.isfile()}
                assert {"system.txt", "service.txt", "health.json", "state.json", "etc/site.yaml",
                        "log/edge.err.log"} <= set(members), sorted(members)
                password = yaml.safe_load((h.srv / "branchline/etc/site.yaml").read_text())["telemetry"]["password"]
                everything = b"".join(members.values())
                assert password.encode() not in everything and b"pw1001" not in everything
                assert b"PRIVATE KEY" not in everything and not any("identity" in m for m in members)
                assert yaml.safe_load(members["etc/site.yaml"])["telemetry"]["password"] == REDACTED

            # rotate one box's MQTT credentials: the old password is refused at the broker,
            # the box's edge is back online on the new one
            name0, h0 = next(iter(by_name.items()))
            site_yaml0 = h0.srv / "branchline" / "etc" / "site.yaml"
            old_password = yaml.safe_load(site_yaml0.read_text())["telemetry"]["password"]
            steps = await asyncio.to_thread(rotate_credentials, connect(name0), "/srv/branchline",
                                            str(api.base_url), ADMIN)
            assert [s.name for s in steps] == ["credentials", "apply-config"], steps
            new_password = yaml.safe_load(site_yaml0.read_text())["telemetry"]["password"]
            assert new_password != old_password and stat.S_IMODE(site_yaml0.stat().st_mode) == 0o600
            slot_yaml0 = h0.srv / "branchline" / "slots" / "a" / "etc" / "site.yaml"
            assert yaml.safe_load(slot_yaml0.read_text())["telemetry"]["password"] == new_password
            await refused(broker.url, f"site-{site_of[name0]}", old_password)
            async with MqttConnection(secured.fleet_url, "enroll-test-watch-2") as watch:
                await watch.subscribe([(p.topic(site_of[name0], "state"), 1)])
                while True:  # the retained state, then what follows, until the restarted edge is online
                    msg = await asyncio.wait_for(watch.messages.get(), 30)
                    if p.State.from_bytes(bytes(msg.payload)).status == "online":
                        break

            # a release rolled out by the fleet to a provisioned box: the edge (service user)
            # only asks; the box's updater (root) runs the agent, which installs slot B
            release = tmp_path / "branchline-1.0.1.bundle"
            make_bundle(release, version="1.0.1", key=signing_key, wheels=[project_wheel], files_dir=None,
                        build_time=1_700_000_000)
            info = await upload(api, release)
            r = await api.post("/api/v1/rollouts", json={
                "name": "1.0.1", "bundle": info["sha256"], "sites": [site_of[name0]], "waves": [1],
                "window_start_h": 0, "window_end_h": 0, "install_timeout_s": 120})
            assert r.status_code == 201, r.text

            async def finished(cid: int = r.json()["id"]) -> dict[str, Any] | None:
                body = (await api.get(f"/api/v1/rollouts/{cid}")).json()
                return body if body["state"] not in ("running", "paused") else None

            done = await wait_for_coro(finished, 120, interval_s=0.2, what="the rollout to finish")
            assert (done["state"], done["sites"][0]["state"]) == ("done", "committed"), done
            root0 = h0.srv / "branchline"
            assert os.readlink(root0 / "current") == "slots/b"
            assert json.loads((root0 / "state.json").read_text())["slots"]["b"]["status"] == "good"
            # (the agent reports, then exits: the updater logs its exit a moment after the result)
            await wait_for_async(lambda: "update agent exited with 0" in (root0 / "log" / "updater.log").read_text(),
                                 30, what="the updater to log the agent's exit")
            assert not (root0 / "data" / "update-request.json").exists()

            # again: nothing changes, nothing is enrolled twice
            second = await asyncio.to_thread(bootstrap_many, connect, list(by_name), opts)
            for before, after in zip(first, second, strict=True):
                assert after.ok and not after.changed, "\n".join(after.lines())
                assert after.public_key == before.public_key
                assert any(s.name == "enroll" and "already" in s.detail for s in after.steps)
                assert any(s.name == "install" and "good in slot" in s.detail for s in after.steps)
            again = {d["site_id"]: d["enrolled_at"] for d in (await api.get("/api/v1/devices")).json()}
            assert again == {s: d["enrolled_at"] for s, d in devices.items()}


def _edge_pid(connection: Connection) -> int:
    c = as_root(connection)
    out = c.run(f"supervisorctl -c /srv/branchline/etc/supervisord.conf pid {EDGE_SERVICE}", hide=True,
                in_stream=False).stdout
    c.close()
    return int(out.strip())


def _edge_config() -> dict[str, Any]:
    """The site config provisioning writes besides ``site`` and ``telemetry``; the store
    path is relative to the edge's working directory."""
    config = default_edge_config(Path("."))
    del config["site"]
    config["store"]["path"] = "edge.db"
    return config
