"""A new contact-center config on a running edge, through the local control API.

An invalid queue or flow is refused with the path of the bad field and changes nothing:
the running queues keep answering. A valid one replaces the queues and agents once the
contact center is idle: a call in progress finishes on the old config, and agents who
were logged in stay logged in.
"""

from __future__ import annotations

import asyncio
import copy
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from appliance.sim.phones import Phone
from tests.integration.test_contact_center import DOMAIN, USERS, site
from tests.sipp import EdgeProcess, wait_for_coro

pytestmark = pytest.mark.timeout(120)


def api(edge: EdgeProcess) -> httpx.AsyncClient:
    socket = str(edge.workdir / edge.ready["api_socket"])
    return httpx.AsyncClient(transport=httpx.AsyncHTTPTransport(uds=socket), base_url="http://edge")


async def queue_names(client: httpx.AsyncClient) -> list[str]:
    board = (await client.get("/v1/queues")).json()
    queues = board["queues"] if isinstance(board, dict) else board
    return sorted(q["name"] for q in queues)


async def agent_state(client: httpx.AsyncClient, agent_id: str) -> str:
    board = (await client.get("/v1/agents")).json()
    agents = board["agents"] if isinstance(board, dict) else board
    return next(a["state"] for a in agents if a["id"] == agent_id)


def with_support_queue(config: dict[str, Any]) -> dict[str, Any]:
    new = copy.deepcopy(config)
    new["queues"].append({"name": "support", "strategy": "linear", "ring_timeout_s": 5, "wrap_up_s": 0.5})
    new["agents"][0]["queues"] = ["sales", "support"]
    new["flows"]["hotline"]["nodes"]["menu"]["options"]["2"] = "support"
    new["flows"]["hotline"]["nodes"]["support"] = {"type": "queue", "queue": "support"}
    return new


async def test_invalid_queue_config_is_refused_with_its_path_and_the_queues_keep_working(
    edge_factory: Callable[..., EdgeProcess], tmp_path: Path
) -> None:
    edge = edge_factory(site(tmp_path))
    customer = Phone("1001", USERS["1001"], edge.sip_udp, DOMAIN)
    agent = Phone("2001", USERS["2001"], edge.sip_udp, DOMAIN)
    async with api(edge) as client, customer, agent:
        bad_strategy = copy.deepcopy(edge.config)
        bad_strategy["queues"][0]["strategy"] = "loudest-first"
        refused = await client.post("/v1/config", json=bad_strategy)
        assert refused.status_code == 422, refused.text
        assert "queues[0].strategy" in refused.text

        dangling = with_support_queue(edge.config)
        dangling["flows"]["hotline"]["nodes"]["support"]["queue"] = "suport"
        refused = await client.post("/v1/config", json=dangling)
        assert refused.status_code == 422, refused.text
        assert "flows.hotline.nodes.support" in refused.text and "suport" in refused.text

        assert await queue_names(client) == ["sales"]  # nothing changed
        await asyncio.gather(customer.register(), agent.register())
        assert (await agent.call("*71", talk_s=5.0)).status == 200
        result = await customer.call("100", talk_s=1.5, callee=agent, digits="1")
        assert result.status == 200 and result.callee_received, result.line(1)


async def test_new_queues_wait_for_the_call_in_progress_and_logged_in_agents_stay(
    edge_factory: Callable[..., EdgeProcess], tmp_path: Path
) -> None:
    edge = edge_factory(site(tmp_path, wrap_up_s=0.5))
    customer = Phone("1001", USERS["1001"], edge.sip_udp, DOMAIN)
    agent = Phone("2001", USERS["2001"], edge.sip_udp, DOMAIN)
    async with api(edge) as client, customer, agent:
        await asyncio.gather(customer.register(), agent.register())
        assert (await agent.call("*71", talk_s=5.0)).status == 200
        call = asyncio.create_task(customer.call("100", talk_s=3.0, callee=agent, digits="1"))

        async def on_call() -> bool:
            return await agent_state(client, "dana") == "on_call"

        await wait_for_coro(on_call, 10.0, what="the agent on the call")
        applied = await client.post("/v1/config", json=with_support_queue(edge.config))
        assert applied.status_code == 200, applied.text
        assert await queue_names(client) == ["sales"]  # the call in progress keeps the old center
        result = await call
        assert result.status == 200 and result.callee_received, result.line(1)

        async def swapped() -> bool:
            return await queue_names(client) == ["sales", "support"]

        await wait_for_coro(swapped, 10.0, what="the new queues once the center is idle")
        assert await agent_state(client, "dana") == "available"  # still logged in
        # the new menu option reaches the new queue and the same agent
        result = await customer.call("100", talk_s=1.5, callee=agent, digits="2")
        assert result.status == 200 and result.callee_received, result.line(1)
