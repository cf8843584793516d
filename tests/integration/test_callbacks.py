"""Callbacks through the real daemon: a waiting caller keeps their place and hangs up;
when an agent is free the edge calls the agent, then the customer.

Phones are the simulator (real SIP over UDP to the daemon, a child process).
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from appliance.sim.phones import Phone
from tests.integration.test_contact_center import DOMAIN, USERS, cdrs, site
from tests.sipp import EdgeProcess, wait_for_async, wait_for_coro

pytestmark = pytest.mark.timeout(120)


def callback_site(tmp_path: Path, **queue: Any) -> dict[str, Any]:
    config = site(tmp_path, join_empty=True, callback_key="9", **queue)
    return config


def tasks(db: str) -> list[tuple[Any, ...]]:
    with sqlite3.connect(db) as conn:
        return conn.execute("SELECT kind, call_id, caller, detail FROM tasks").fetchall()


async def test_caller_who_presses_the_callback_key_is_called_back_once_an_agent_answers(
    edge_factory: Callable[..., EdgeProcess], tmp_path: Path
) -> None:
    edge = edge_factory(callback_site(tmp_path))
    customer = Phone("1001", USERS["1001"], edge.sip_udp, DOMAIN)
    agent = Phone("2001", USERS["2001"], edge.sip_udp, DOMAIN)
    agent.hangup_after_s = 1.5  # the agent ends the conversation
    async with customer, agent:
        await asyncio.gather(customer.register(), agent.register())
        # 1 for sales; nobody is logged in, so the caller waits; then 9: call me back
        first = await customer.call("100", talk_s=20.0, digits="1,,9")
        assert first.status == 200 and first.hangup_side == "callee", first.line(1)
        assert not customer.incoming and not agent.incoming
        # an agent logs in: the edge rings the agent, then the customer
        assert (await agent.call("*71", talk_s=5.0)).status == 200
        await wait_for_async(lambda: customer.incoming, 15.0, what="the callback to the customer")
        (token,) = customer.incoming
        back = await customer.incoming_call_ended(token, 15.0)
    assert back.answered and back.packets_received > 10  # the agent's audio reached the customer
    edge.stop()

    rows = cdrs(edge.config["store"]["path"])
    (asked,) = [r for r in rows if r["destination"] == "flow:hotline"]
    assert (asked["cause"], asked["dtmf"]) == ("callback-requested", "19")
    (callback,) = [r for r in rows if r["destination"] == "callback:sales"]
    assert callback["disposition"] == "answered" and callback["hangup_side"] == "caller"  # the agent
    assert (callback["from_number"], callback["to_number"]) == ("1001", "2001")
    assert callback["b_call_id"] is not None and callback["packets_b_to_a"] > 10
    assert callback["queue"] == asked["queue"] == "sales"  # the fleet reports per queue
    assert tasks(edge.config["store"]["path"]) == []


async def test_a_customer_who_never_answers_is_tried_again_then_handed_to_a_supervisor(
    edge_factory: Callable[..., EdgeProcess], tmp_path: Path
) -> None:
    config = callback_site(tmp_path, callback_attempts=2, callback_retry_s=1.0, callback_ring_s=1.0)
    edge = edge_factory(config)
    customer = Phone("1001", USERS["1001"], edge.sip_udp, DOMAIN)
    agent = Phone("2001", USERS["2001"], edge.sip_udp, DOMAIN)
    async with customer, agent:
        await asyncio.gather(customer.register(), agent.register())
        first = await customer.call("100", talk_s=20.0, digits="1,,9")
        assert first.hangup_side == "callee", first.line(1)
        customer.auto_answer = False  # the customer has gone out
        assert (await agent.call("*71", talk_s=5.0)).status == 200
        db = edge.config["store"]["path"]

        (task,) = await wait_for_async(lambda: tasks(db), 30.0, interval_s=0.2, what="the callback given up")
    edge.stop()
    assert task[0] == "callback-failed" and task[2] == "1001" and "2 call(s)" in task[3]
    attempts = [r for r in cdrs(db) if r["destination"] == "callback:sales"]
    assert len(attempts) == 2  # every attempt is on record
    assert all(r["cause"] == "callback-no-answer" for r in attempts)


async def test_a_flow_callback_node_books_a_callback_without_waiting_in_line(
    edge_factory: Callable[..., EdgeProcess], tmp_path: Path
) -> None:
    """Menu option 2: "call me back" straight from the IVR (no place in the line held by
    a waiting caller): the flow confirms and ends, and the queue calls back later."""
    config = callback_site(tmp_path)
    nodes = config["flows"]["hotline"]["nodes"]
    nodes["menu"]["options"]["2"] = "book"
    nodes["book"] = {"type": "callback", "queue": "sales", "next": "confirm"}
    nodes["confirm"] = {"type": "play", "prompt": "callback_confirm", "next": "booked"}
    nodes["booked"] = {"type": "hangup", "cause": "callback-booked"}
    edge = edge_factory(config)
    customer = Phone("1001", USERS["1001"], edge.sip_udp, DOMAIN)
    agent = Phone("2001", USERS["2001"], edge.sip_udp, DOMAIN)
    agent.hangup_after_s = 1.0
    async with customer, agent:
        await asyncio.gather(customer.register(), agent.register())
        first = await customer.call("100", talk_s=20.0, digits="2")
        assert first.hangup_side == "callee", first.line(1)
        assert (await agent.call("*71", talk_s=5.0)).status == 200
        await wait_for_async(lambda: customer.incoming, 15.0, what="the callback to the customer")
        back = await customer.incoming_call_ended(next(iter(customer.incoming)), 15.0)
    assert back.answered
    edge.stop()
    rows = cdrs(edge.config["store"]["path"])
    assert [r["cause"] for r in rows if r["destination"] == "flow:hotline"] == ["ivr-callback-booked"]
    (callback,) = [r for r in rows if r["destination"] == "callback:sales"]
    assert callback["disposition"] == "answered" and callback["from_number"] == "1001"


async def test_an_edge_out_of_media_ports_lets_one_caller_go_and_keeps_serving(
    edge_factory: Callable[..., EdgeProcess], tmp_path: Path
) -> None:
    """Two callers wait and hold the only two RTP ports; the agent logs in through the
    API, so the queue rings the agent for the first caller: no port for that leg. The
    edge lets that caller go (cause no-media-ports) and carries on: the port it freed
    rings the agent for the second caller, who is answered. Nothing raises."""
    import httpx

    config = callback_site(tmp_path)
    config["media"] = {"rtp_port_min": 31000, "rtp_port_max": 31003, "record_calls": False}
    edge = edge_factory(config)
    first = Phone("1001", USERS["1001"], edge.sip_udp, DOMAIN)
    second = Phone("2002", USERS["2002"], edge.sip_udp, DOMAIN)
    agent = Phone("2001", USERS["2001"], edge.sip_udp, DOMAIN)
    socket = str(edge.workdir / edge.ready["api_socket"])
    async with first, second, agent, httpx.AsyncClient(
        transport=httpx.AsyncHTTPTransport(uds=socket), base_url="http://edge"
    ) as client:
        await asyncio.gather(first.register(), second.register(), agent.register())
        one = asyncio.create_task(first.call("100", talk_s=20.0, digits="1"))
        two = asyncio.create_task(second.call("100", talk_s=3.0, callee=agent, digits="1"))

        async def both_waiting() -> bool:
            queues = (await client.get("/v1/queues")).json()["queues"]
            return queues[0]["waiting"] == 2

        await wait_for_coro(both_waiting, 5.0, what="both callers in the queue")
        assert (await client.post("/v1/agents/dana/login", json={"extension": "2001"})).status_code == 200
        let_go, served = await asyncio.gather(one, two)
    assert let_go.hangup_side == "callee", let_go.line(1)
    assert served.status == 200 and served.callee_received, served.line(1)
    edge.stop()
    causes = [r["cause"] for r in cdrs(edge.config["store"]["path"]) if r["destination"] == "flow:hotline"]
    assert sorted(causes) == ["no-media-ports", "normal"]
    assert "Traceback" not in edge.stderr_text()
