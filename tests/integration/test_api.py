"""The local control API over a real unix socket, on a real SIP stack.

The ``edge`` fixture wires what the daemon wires (transaction layer, SIP endpoint on a
UDP port, the media engine, SipCore with its registrar, B2BUA and contact center, the
prompts) in the test's own loop, minus the store and the recorder, so the test can
reach the objects the API reads; phones are the simulator, talking SIP to it. The
client is httpx over the unix socket that :func:`edge_core.api.http.serve` opened.
Nothing is mocked.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import tempfile
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from appliance.sim.phones import Phone
from edge_core.api.http import ApiServer, create_app, serve
from edge_core.api.view import EdgeView
from edge_core.app import load_prompts
from edge_core.config.schema import SiteConfig, parse_config
from edge_core.media.engine import EngineRelay
from edge_core.sip.core import SipCore
from edge_core.sip.transaction import TimerSettings, TransactionLayer
from edge_core.sip.transport import SipEndpoint, UdpProtocol
from edge_core.store.db import CdrRow
from tests.sipp import EdgeProcess, wait_for_async, wait_for_coro

pytestmark = pytest.mark.timeout(60)

DOMAIN = "test.local"
USERS = {"1001": "pw1001", "2001": "pw2001", "2002": "pw2002"}


def site(prompts: Path) -> dict[str, Any]:
    return {
        "site": {"id": "branch-7", "name": "Branch Seven", "timezone": "Europe/Paris"},
        "sip": {"listen_host": "127.0.0.1", "udp_port": 0, "tcp_port": 0, "domain": DOMAIN,
                "realm": DOMAIN, "t1_ms": 100},
        "media": {"host": "127.0.0.1", "record_calls": False},
        "prompts": {"dir": str(prompts), "generate": "tones"},
        "extensions": [{"number": n, "password": p, "name": f"ext {n}"} for n, p in USERS.items()],
        "routes": [
            {"match": r"^(\d{4})$", "extension": r"\1"},
            {"match": r"^100$", "flow": "hotline"},
        ],
        "flows": {"hotline": {"start": "sales", "nodes": {"sales": {"type": "queue", "queue": "sales"}}}},
        "queues": [{"name": "sales", "ring_timeout_s": 5, "wrap_up_s": 0, "join_empty": True}],
        "agents": [
            {"id": "dana", "name": "Dana", "extension": "2001", "queues": ["sales"]},
            {"id": "eli", "name": "Eli", "extension": "2002", "queues": ["sales"]},
        ],
    }  # fmt: skip


@dataclass
class Edge:
    config: SiteConfig
    core: SipCore
    endpoint: SipEndpoint
    view: EdgeView
    server: ApiServer
    client: httpx.AsyncClient
    sip: tuple[str, int]
    socket: str
    records: list[object] = field(default_factory=list)
    """What the stack produced for the store (CDRs, binding changes), in order."""


@pytest.fixture
async def edge(tmp_path: Path) -> AsyncIterator[Edge]:
    loop = asyncio.get_running_loop()
    config = parse_config(site(tmp_path / "prompts"))
    prompts = load_prompts(config)
    media = EngineRelay("127.0.0.1", 20000, 29999, rtp_timeout_s=30.0)
    await media.start()
    layer = TransactionLayer(TimerSettings(t1_s=0.1))
    endpoint = SipEndpoint(layer, None, 65535)
    udp, _ = await loop.create_datagram_endpoint(
        lambda: UdpProtocol(endpoint), local_addr=("127.0.0.1", 0)
    )
    local = {"udp": udp.get_extra_info("sockname")[:2], "tcp": ("127.0.0.1", 5060)}
    core = SipCore(config, layer, media, local, time.time, os.urandom(32), None, prompts)
    endpoint.core = core
    view = EdgeView(config, core, endpoint, media, time.time())
    records: list[object] = []

    def collect() -> None:  # what the daemon's _collect will do with the view
        for produced in (core.b2bua.records, core.registrar.changes):
            view.on_records(produced)
            records.extend(produced)
            produced.clear()

    def on_media_event(event: tuple[Any, ...]) -> None:
        view.on_media_event(event)
        core.b2bua.on_media_event(event, loop.time())
        endpoint.step()

    endpoint.after_step = collect
    media.add_listener(on_media_event)
    # a short path: unix socket paths are limited to 107 bytes, pytest's tmp_path is long
    sock_dir = tempfile.mkdtemp(prefix="bl-api-")
    path = os.path.join(sock_dir, "run", "edge.sock")
    server = await serve(create_app(view, keepalive_s=0.5), path)
    client = httpx.AsyncClient(transport=httpx.AsyncHTTPTransport(uds=path), base_url="http://edge")
    try:
        yield Edge(config, core, endpoint, view, server, client, local["udp"], path, records)
    finally:
        await client.aclose()
        await server.stop()
        core.b2bua.hang_up_all(loop.time())
        endpoint.close()
        await media.stop()
        shutil.rmtree(sock_dir, ignore_errors=True)


def phone(edge: Edge, number: str) -> Phone:
    return Phone(number, USERS[number], edge.sip, DOMAIN)


async def read_events(lines: AsyncIterator[str], count: int) -> list[dict[str, Any]]:
    """The next ``count`` events of an SSE stream (comment lines skipped)."""
    events: list[dict[str, Any]] = []
    async with asyncio.timeout(5):
        async for line in lines:
            if line.startswith("data: "):
                events.append(json.loads(line.removeprefix("data: ")))
                if len(events) == count:
                    break
    return events


# -- reading ---------------------------------------------------------------------------


async def test_status_names_the_site_kernels_media_and_counts(edge: Edge) -> None:
    resp = await edge.client.get("/v1/status")
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body["site"] == {"id": "branch-7", "name": "Branch Seven", "timezone": "Europe/Paris"}
    assert body["version"] == "0.1.0"
    assert body["started"].endswith(("+01:00", "+02:00"))  # the site's zone
    assert 0 <= body["uptime_s"] < 60
    assert body["kernels"] and set(body["kernels"].values()) <= {"cython", "python"}
    assert body["media"]["implementation"] in ("cython-engine", "python-engine")
    assert body["counts"] == {
        "registrations": 0,
        "calls_active": 0,
        "calls_waiting": 0,
        "agents": {"logged_out": 2},
    }
    assert body["accepting_calls"] is True
    assert isinstance(body["sip"]["transport"], dict)


async def test_openapi_lists_every_endpoint(edge: Edge) -> None:
    resp = await edge.client.get("/openapi.json")
    assert resp.status_code == 200
    paths = resp.json()["paths"]
    for path in ("/v1/status", "/v1/calls", "/v1/registrations", "/v1/queues", "/v1/agents",
                 "/v1/events", "/v1/calls/{call_id}", "/v1/agents/{agent_id}/pause",
                 "/v1/agents/{agent_id}/unpause", "/v1/agents/{agent_id}/logout",
                 "/v1/agents/{agent_id}/login"):  # fmt: skip
        assert path in paths, path


async def test_a_registered_phone_is_listed_with_its_source_and_expiry(edge: Edge) -> None:
    async with phone(edge, "2001") as agent:
        await agent.register(expires=300)
        resp = await edge.client.get("/v1/registrations")
    assert resp.status_code == 200
    (reg,) = resp.json()["registrations"]
    assert reg["extension"] == "2001" and reg["name"] == "ext 2001"
    assert reg["source"] == f"udp:{agent.local[0]}:{agent.local[1]}"
    assert reg["contact"] == agent.contact.strip("<>")
    assert 290 < reg["expires_in_s"] <= 300
    assert (await edge.client.get("/v1/status")).json()["counts"]["registrations"] == 1


async def test_queues_show_the_live_board(edge: Edge) -> None:
    resp = await edge.client.get("/v1/queues")
    assert resp.status_code == 200
    (sales,) = resp.json()["queues"]
    assert sales["name"] == "sales" and sales["waiting"] == 0
    assert sales["agents"] == {"logged_out": 2}
    assert sales["service_level"] is None and sales["asa_s"] is None  # nothing counted yet
    assert sales["totals"]["offered"] == 0


# -- agents ------------------------------------------------------------------------------


async def test_agent_login_pause_unpause_logout(edge: Edge) -> None:
    client = edge.client
    resp = await client.post("/v1/agents/dana/login", json={"extension": "2001"})
    assert resp.status_code == 200, resp.text
    assert resp.json() == {"agent": "dana", "state": "available", "reason": None}

    resp = await client.post("/v1/agents/dana/pause", json={"reason": "lunch"})
    assert resp.status_code == 200, resp.text
    assert resp.json()["state"] == "paused" and resp.json()["reason"] == "lunch"
    agents = {a["id"]: a for a in (await client.get("/v1/agents")).json()["agents"]}
    assert agents["dana"]["state"] == "paused" and agents["dana"]["reason"] == "lunch"
    assert 0 <= agents["dana"]["time_in_state_s"] < 5
    assert agents["eli"]["state"] == "logged_out"
    (sales,) = (await client.get("/v1/queues")).json()["queues"]
    assert sales["agents"] == {"paused": 1, "logged_out": 1}

    resp = await client.post("/v1/agents/dana/pause")  # no body: the default reason
    assert resp.status_code == 200 and resp.json()["reason"] == "break"
    assert (await client.post("/v1/agents/dana/unpause")).json()["state"] == "available"
    assert (await client.post("/v1/agents/dana/logout")).json()["state"] == "logged_out"
    assert edge.core.hosted.center.agent_state("dana").value == "logged_out"


async def test_an_unknown_agent_is_404_with_a_clear_error(edge: Edge) -> None:
    resp = await edge.client.post("/v1/agents/nobody/pause", json={"reason": "lunch"})
    assert resp.status_code == 404
    assert resp.json() == {"error": "no agent 'nobody' on this site", "field": None}


async def test_an_illegal_transition_is_409_with_the_reason(edge: Edge) -> None:
    resp = await edge.client.post("/v1/agents/dana/unpause")
    assert resp.status_code == 409
    assert resp.json()["error"] == "agent 'dana' cannot unpause while logged_out"
    assert edge.core.hosted.center.agent_state("dana").value == "logged_out"  # nothing changed

    assert (
        await edge.client.post("/v1/agents/dana/login", json={"extension": "2001"})
    ).status_code == 200
    resp = await edge.client.post("/v1/agents/eli/login", json={"extension": "2001"})
    assert resp.status_code == 409
    assert "already logged in at 2001" in resp.json()["error"]


async def test_bad_input_is_422_naming_the_field(edge: Edge) -> None:
    client = edge.client
    resp = await client.post("/v1/agents/dana/login", json={"extension": "9999"})
    assert resp.status_code == 422
    assert resp.json() == {"error": "no extension '9999' on this site", "field": "extension"}
    resp = await client.post("/v1/agents/dana/login", json={})
    assert resp.status_code == 422 and resp.json()["field"] == "body.extension"
    resp = await client.post("/v1/agents/dana/pause", json={"reason": "x" * 65})
    assert resp.status_code == 422 and resp.json()["field"] == "body.reason"
    resp = await client.post("/v1/agents/dana/pause", json={"reason": "lunch", "until": "2pm"})
    assert resp.status_code == 422 and resp.json()["field"] == "body.until"
    resp = await client.post(
        "/v1/agents/dana/login", content=b"{not json", headers={"content-type": "application/json"}
    )
    assert resp.status_code == 422 and resp.json()["error"]
    for raw in (b'{"reason": NaN}', b'{"reason": Infinity}', b"[1, 2]", b'"lunch"'):
        resp = await client.post(
            "/v1/agents/dana/pause", content=raw, headers={"content-type": "application/json"}
        )
        assert resp.status_code == 422 and resp.json()["field"].startswith("body"), raw
    resp = await client.get("/v1/nothing-here")
    assert resp.status_code == 404 and resp.json() == {"error": "Not Found", "field": None}


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    body=st.recursive(
        st.none()
        | st.booleans()
        | st.integers()
        | st.floats(allow_nan=False, allow_infinity=False)
        | st.text(max_size=80),
        lambda inner: (
            st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4)
        ),
        max_leaves=12,
    )
    | st.fixed_dictionaries({"reason": st.text(max_size=80)})
    | st.fixed_dictionaries({"extension": st.text(max_size=40)}),
    agent=st.sampled_from(["dana", "eli", "nobody", "d%C3%A5na", "x" * 300]),
    action=st.sampled_from(["pause", "unpause", "logout", "login"]),
)
async def test_arbitrary_json_bodies_never_cause_a_500(
    edge: Edge, body: Any, agent: str, action: str
) -> None:
    resp = await edge.client.post(f"/v1/agents/{agent}/{action}", json=body)
    assert resp.status_code in (200, 404, 409, 422), (resp.status_code, resp.text)
    assert "error" in resp.json() or resp.status_code == 200


# -- calls -------------------------------------------------------------------------------


async def test_delete_of_an_unknown_call_is_404(edge: Edge) -> None:
    resp = await edge.client.delete("/v1/calls/no-such-call")
    assert resp.status_code == 404
    assert resp.json() == {"error": "no active call 'no-such-call'", "field": None}


async def test_a_waiting_caller_is_rung_to_the_agent_logged_in_by_the_api_and_hung_up_by_the_operator(
    edge: Edge,
) -> None:
    client = edge.client
    async with phone(edge, "1001") as caller, phone(edge, "2001") as agent:
        await asyncio.gather(caller.register(), agent.register())
        call = asyncio.create_task(caller.call("100", talk_s=30.0))

        async def waiting() -> list[dict[str, Any]]:
            calls = (await client.get("/v1/calls")).json()["calls"]
            return calls if calls and calls[0]["queue"] == "sales" else []

        listed = await wait_for_coro(waiting, 5, what="the caller waiting in sales")
        (waiting_call,) = listed
        assert waiting_call["from"] == "1001" and waiting_call["to"] == "100"
        assert waiting_call["destination"] == "flow:hotline" and waiting_call["state"] == "answered"
        assert waiting_call["started"].endswith(("+01:00", "+02:00"))
        (a_leg,) = waiting_call["legs"]
        assert a_leg["side"] == "a" and 20000 <= a_leg["rtp_port"] <= 29999
        (sales,) = (await client.get("/v1/queues")).json()["queues"]
        assert sales["waiting"] == 1
        assert (await client.get("/v1/status")).json()["counts"]["calls_waiting"] == 1

        # logging the agent in rings the agent's phone at once (the center's actions are carried out)
        resp = await client.post("/v1/agents/dana/login", json={"extension": "2001"})
        assert resp.status_code == 200, resp.text

        async def connected() -> dict[str, Any] | None:
            calls = (await client.get("/v1/calls")).json()["calls"]
            return calls[0] if calls and calls[0]["agent"] == "dana" else None

        joined = await wait_for_coro(connected, 5, what="the agent answering")
        assert [leg["side"] for leg in joined["legs"]] == ["a", "b"]

        async def scored() -> dict[str, Any] | None:  # live quality, once audio flowed both ways
            calls = (await client.get("/v1/calls")).json()["calls"]
            return calls[0] if calls and all(leg["mos"] for leg in calls[0]["legs"]) else None

        live = await wait_for_coro(scored, 5, what="a live MOS on both legs")
        assert 4.0 < live["mos"] <= 4.5 and all(leg["lost"] == 0 for leg in live["legs"])
        agents = {a["id"]: a for a in (await client.get("/v1/agents")).json()["agents"]}
        assert agents["dana"]["state"] == "on_call"
        resp = await client.post("/v1/agents/dana/logout")
        assert resp.status_code == 409 and "cannot logout while on_call" in resp.json()["error"]

        resp = await client.delete(f"/v1/calls/{joined['id']}")
        assert resp.status_code == 200, resp.text
        result = await asyncio.wait_for(call, 10)
        assert result.status == 200 and result.hangup_side == "callee", result.line(1)
        assert (await client.delete(f"/v1/calls/{joined['id']}")).status_code == 404
    assert (await client.get("/v1/calls")).json() == {"calls": []}
    (cdr,) = [r for r in edge.records if isinstance(r, CdrRow) and r.destination == "flow:hotline"]
    assert (cdr.cause, cdr.sip_reason, cdr.hangup_side) == (
        "operator",
        "Hung Up By Operator",
        "edge",
    )


# -- events ------------------------------------------------------------------------------


async def test_events_arrive_in_order_and_the_stream_ends_when_the_client_goes(edge: Edge) -> None:
    view = edge.view
    async with edge.client.stream("GET", "/v1/events") as resp:
        assert resp.status_code == 200
        assert resp.headers["content-type"].startswith("text/event-stream")
        assert view.subscribers == 1
        view.publish({"type": "test", "n": 1})
        view.publish({"type": "test", "n": 2})
        first, second = await read_events(resp.aiter_lines(), 2)
    assert (first["type"], first["n"], second["n"]) == ("test", 1, 2)
    assert second["seq"] == first["seq"] + 1 and first["time"] > 0
    await wait_for_async(lambda: view.subscribers == 0, 5, what="the subscriber to go away")


async def test_a_slow_subscriber_loses_the_oldest_events_and_reads_a_marker(edge: Edge) -> None:
    view = edge.view
    view.queue_limit = 3
    async with edge.client.stream("GET", "/v1/events") as resp:
        for n in range(10):  # no await: the stream cannot read meanwhile
            view.publish({"type": "test", "n": n})
        events = await read_events(resp.aiter_lines(), 4)
    assert events[0]["type"] == "overflow" and events[0]["lost"] == 7
    assert [e["n"] for e in events[1:]] == [7, 8, 9]


async def test_the_queue_keeps_one_marker_and_starts_a_new_one_after_it_is_read(edge: Edge) -> None:
    view = edge.view
    view.queue_limit = 2
    queue = view.subscribe()
    for n in range(5):
        view.publish({"type": "test", "n": n})
    got = [queue.get_nowait() for _ in range(queue.qsize())]
    assert [e.get("lost", e.get("n")) for e in got] == [3, 3, 4]
    assert got[0]["type"] == "overflow"
    for n in range(5, 8):
        view.publish({"type": "test", "n": n})
    got = [queue.get_nowait() for _ in range(queue.qsize())]
    assert [(e["type"], e.get("lost", e.get("n"))) for e in got] == [
        ("overflow", 1),
        ("test", 6),
        ("test", 7),
    ]
    assert queue.lost == 4
    view.unsubscribe(queue)


async def test_tick_publishes_stats_and_new_calls_and_records_become_events(edge: Edge) -> None:
    view = edge.view
    queue = view.subscribe()
    async with phone(edge, "2001") as agent:
        await agent.register()
    registration = await asyncio.wait_for(queue.get(), 5)
    assert registration["type"] == "registration" and registration["extension"] == "2001"
    assert registration["removed"] is False
    view.tick()
    stats = await asyncio.wait_for(queue.get(), 5)
    assert stats["type"] == "stats"
    assert stats["counts"]["registrations"] == 1 and stats["queues"]["sales"]["waiting"] == 0
    edge.core.hosted.center.agent_login("eli", "2002", edge.endpoint.loop.time())
    view.tick()  # the daemon does not report the center's changes yet: observed at the tick
    change = await asyncio.wait_for(queue.get(), 5)
    assert change["type"] == "agent" and (change["old"], change["new"]) == (
        "logged_out",
        "available",
    )
    view.unsubscribe(queue)


async def test_closing_the_view_ends_every_stream(edge: Edge) -> None:
    async with edge.client.stream("GET", "/v1/events") as resp:
        edge.view.close()
        (closed,) = await read_events(resp.aiter_lines(), 1)
        assert closed["type"] == "closed"
    assert edge.view.subscribers == 0
    assert (await edge.client.get("/v1/events")).status_code == 503


async def test_serve_replaces_a_stale_socket_and_refuses_a_live_one(edge: Edge) -> None:
    app = create_app(edge.view)
    with pytest.raises(OSError, match="another process is serving"):
        await serve(app, edge.socket)
    stale = Path(edge.socket).with_name("stale.sock")
    import socket as socket_module

    dead = socket_module.socket(socket_module.AF_UNIX, socket_module.SOCK_STREAM)
    dead.bind(str(stale))
    dead.close()  # the file stays, nobody listens: what a crash leaves behind
    server = await serve(app, str(stale))
    try:
        async with httpx.AsyncClient(
            transport=httpx.AsyncHTTPTransport(uds=str(stale)), base_url="http://edge"
        ) as c:
            assert (await c.get("/v1/status")).status_code == 200
        assert stale.stat().st_mode & 0o777 == 0o660
    finally:
        await server.stop()
    assert not stale.exists()


# -- the daemon ----------------------------------------------------------------------------


@pytest.mark.skipif(
    "api" not in SiteConfig.model_fields,
    reason="the daemon does not serve the API yet (api.socket in the site config)",
)
async def test_the_daemon_serves_the_api_on_the_configured_socket(
    edge_factory: Callable[..., EdgeProcess],
) -> None:
    sock_dir = tempfile.mkdtemp(prefix="bl-api-")
    path = os.path.join(sock_dir, "edge.sock")
    try:
        edge = edge_factory({"api": {"socket": path}})
        transport = httpx.AsyncHTTPTransport(uds=path)
        async with httpx.AsyncClient(transport=transport, base_url="http://edge") as client:
            status = (await client.get("/v1/status")).json()
            assert status["site"]["id"] == "test-site" and status["counts"]["registrations"] == 0
            async with client.stream("GET", "/v1/events") as resp:
                async with Phone("1001", "pw1001", edge.sip_udp, "test.local") as alice:
                    await alice.register()
                lines = resp.aiter_lines()
                async with asyncio.timeout(5):  # the registration, then the next second's stats
                    kinds = {e["type"] for e in await read_events(lines, 1)}
                    while "stats" not in kinds or "registration" not in kinds:
                        kinds |= {e["type"] for e in await read_events(lines, 1)}
            (reg,) = (await client.get("/v1/registrations")).json()["registrations"]
            assert reg["extension"] == "1001"
        edge.stop()
        assert not os.path.exists(path)
    finally:
        shutil.rmtree(sock_dir, ignore_errors=True)
