"""The diagnostics routes of the control API (edge_core/api/diagnostics.py) on a real
edge daemon: OPTIONS ping from the edge's SIP stack, the media loopback test call, the
store, outbox and fleet checks, recent logs, the config dry run and rollback point, and
the support bundle (no secrets in it)."""

from __future__ import annotations

import copy
import io
import tarfile
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
import yaml

from appliance.sim.phones import Phone
from tests.integration.test_contact_center import DOMAIN, USERS, site
from tests.sipp import EdgeProcess, free_udp_port

pytestmark = pytest.mark.timeout(120)

EdgeFactory = Callable[..., EdgeProcess]


def api(edge: EdgeProcess) -> httpx.AsyncClient:
    socket = str(edge.workdir / edge.ready["api_socket"])
    return httpx.AsyncClient(transport=httpx.AsyncHTTPTransport(uds=socket), base_url="http://edge", timeout=30)


async def test_options_ping_reaches_a_trunk_and_a_registered_phone_with_rtt(
    edge_factory: EdgeFactory, tmp_path: Path
) -> None:
    async with Phone("9999", "x", ("127.0.0.1", 9), DOMAIN) as gateway:  # answers OPTIONS: the trunk's far end
        trunk = {"name": "pstn", "host": "127.0.0.1", "port": gateway.local[1], "transport": "udp",
                 "options_interval_s": 0}  # fmt: skip
        edge = edge_factory({**site(tmp_path), "trunks": [trunk]})
        async with api(edge) as client, Phone("2001", USERS["2001"], edge.sip_udp, DOMAIN) as phone:
            await phone.register()
            to_trunk = (await client.post("/v1/diagnostics/ping", json={"target": "pstn"})).json()
            assert to_trunk["ok"] and to_trunk["status"] == 200 and to_trunk["kind"] == "trunk", to_trunk
            assert 0 < to_trunk["rtt_ms"] < 1000
            to_phone = (await client.post("/v1/diagnostics/ping", json={"target": "2001"})).json()
            assert to_phone["ok"] and to_phone["kind"] == "phone" and to_phone["uri"].startswith("sip:2001@"), to_phone
            dead = f"127.0.0.1:{free_udp_port()}"
            silent = (await client.post("/v1/diagnostics/ping", json={"target": dead, "timeout_s": 0.5})).json()
            assert not silent["ok"] and silent["status"] is None and "no answer" in silent["reason"]
            unknown = await client.post("/v1/diagnostics/ping", json={"target": "nowhere"})
            assert unknown.status_code == 404 and unknown.json()["field"] == "target"


async def test_media_test_call_database_outbox_fleet_and_logs(edge_factory: EdgeFactory, tmp_path: Path) -> None:
    broker = f"mqtt://127.0.0.1:{free_udp_port()}"  # nothing listens there
    edge = edge_factory({**site(tmp_path), "telemetry": {"broker_url": broker}})
    async with api(edge) as client:
        call = (await client.post("/v1/diagnostics/test-call", json={"seconds": 1})).json()
        assert call["ok"] and call["kind"] == "media-loopback" and call["mos"] > 4.0, call
        for leg in call["legs"]:
            assert leg["received"] >= 45 and leg["loss_pct"] <= 10, call
        assert (await client.post("/v1/diagnostics/test-call", json={"seconds": 60})).status_code == 422
        assert (await client.get("/v1/status")).json()["media"]["legs_active"] == 0  # the test's legs are released

        db = (await client.get("/v1/diagnostics/database")).json()
        assert db["ok"] and db["integrity"] == ["ok"] and db["journal_mode"] == "wal" and db["disk_free_bytes"] > 0
        outbox = (await client.get("/v1/diagnostics/outbox")).json()
        assert outbox["backlog"] >= 0 and outbox["draining"] is False
        fleet = (await client.get("/v1/diagnostics/fleet")).json()
        assert fleet["enabled"] is False and fleet["tcp_reachable"] is False and not fleet["ok"]
        assert fleet["broker"] == broker.removeprefix("mqtt://")
        logs = (await client.get("/v1/diagnostics/logs", params={"lines": 50})).json()["lines"]
        assert any("listening" in line for line in logs), logs


async def test_config_check_changes_nothing_and_rollback_brings_back_the_previous_config(
    edge_factory: EdgeFactory, tmp_path: Path
) -> None:
    edge = edge_factory(site(tmp_path))
    async with api(edge) as client:
        before = (await client.get("/v1/config")).json()
        bad = copy.deepcopy(edge.config)
        bad["queues"][0]["strategy"] = "loudest-first"
        checked = (await client.post("/v1/diagnostics/config-check", content=yaml.safe_dump(bad))).json()
        assert not checked["valid"] and checked["problems"][0]["field"] == "queues[0].strategy"
        other_site = copy.deepcopy(edge.config)
        other_site["site"]["id"] = "elsewhere"
        checked = (await client.post("/v1/diagnostics/config-check", json=other_site)).json()
        assert not checked["valid"] and checked["problems"][0]["field"] == "site.id"
        broken = await client.post("/v1/diagnostics/config-check", content=b"queues: [")
        assert broken.status_code == 422 and "line" in broken.json()["field"]

        good = copy.deepcopy(edge.config)
        good["extensions"][0]["password"] = "changed-1001"
        good["sip"]["udp_port"] = free_udp_port()
        checked = (await client.post("/v1/diagnostics/config-check", json=good)).json()
        assert checked["valid"] and checked["secrets_changed"] == ["extensions[0].password"]
        assert "sip.udp_port" in checked["restart_fields"]
        assert "changed-1001" not in str(checked)
        assert (await client.get("/v1/config")).json() == before  # nothing changed

        assert (await client.post("/v1/diagnostics/config-rollback")).status_code == 409
        point = (await client.post("/v1/diagnostics/config-checkpoint")).json()
        assert point["origin"] == "file" and "config" not in point
        del good["sip"]["udp_port"]
        assert (await client.post("/v1/config", json=good)).status_code == 200
        rolled = (await client.post("/v1/diagnostics/config-rollback")).json()
        assert rolled["rolled_back_to"] == {"version": None, "origin": "file"}
        assert (await client.get("/v1/diagnostics/config-checkpoint")).json() == {"saved": False}
    async with Phone("1001", USERS["1001"], edge.sip_udp, DOMAIN) as phone:
        assert (await phone.register()).status == 200  # the real password came back, not "***"


async def test_the_support_bundle_has_config_logs_and_diagnostics_and_no_secrets(
    edge_factory: EdgeFactory, tmp_path: Path
) -> None:
    edge = edge_factory(site(tmp_path))
    async with api(edge) as client:
        console_results = [{"name": "note", "password": USERS["1001"], "said": f"login with {USERS['2001']}"}]
        response = await client.post("/v1/diagnostics/bundle", json={"results": console_results})
        assert response.status_code == 200 and response.headers["content-type"] == "application/gzip"
        assert "branchline-test-site-" in response.headers["content-disposition"]
    with tarfile.open(fileobj=io.BytesIO(response.content)) as tar:
        files = {m.name.split("/", 1)[1]: tar.extractfile(m).read().decode() for m in tar.getmembers()}  # type: ignore[union-attr]
    assert set(files) >= {"config.yaml", "status.json", "trunks.json", "registrations.json", "calls.json",
                          "queues.json", "logs.txt", "diagnostics.json", "manifest.json"}  # fmt: skip
    everything = "\n".join(files.values())
    for password in USERS.values():
        assert password not in everything
    config = yaml.safe_load(files["config.yaml"])
    assert {e["password"] for e in config["config"]["extensions"]} == {"***"}
    assert '"integrity"' in files["diagnostics.json"] and '"note"' in files["diagnostics.json"]
