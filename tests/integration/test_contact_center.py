"""A caller through the IVR into a queue and on to an agent, through the real daemon.

The agent's phone logs in with the feature code *71; the caller dials the hotline,
presses 1 during the menu prompt (RFC 4733, barge-in), waits in the queue with hold
music, and is connected to the agent when the edge rings the agent's phone. The
daemon is a child process; phones are the simulator on the test's loop.
"""

from __future__ import annotations

import asyncio
import socket
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from appliance.sim.phones import Phone
from tests.sipp import EdgeProcess, wait_for_async

pytestmark = pytest.mark.timeout(90)

DOMAIN = "test.local"
USERS = {"1001": "pw1001", "2001": "pw2001", "2002": "pw2002"}


def site(tmp_path: Path, **queue: Any) -> dict[str, Any]:
    return {
        "extensions": [{"number": n, "password": p} for n, p in USERS.items()],
        "sip": {"t1_ms": 100},
        "prompts": {"dir": str(tmp_path / "prompts"), "generate": "tones"},
        "routes": [
            {"match": r"^(\d{4})$", "extension": r"\1"},
            {"match": r"^100$", "flow": "hotline"},
        ],
        "flows": {
            "hotline": {
                "start": "menu",
                "nodes": {
                    "menu": {"type": "menu", "prompt": "menu_main", "options": {"1": "sales"},
                             "timeout_s": 5, "on_fail": "bye"},
                    "sales": {"type": "queue", "queue": "sales"},
                    "bye": {"type": "hangup", "cause": "no-choice"},
                },
            }
        },  # fmt: skip
        "queues": [{"name": "sales", "strategy": "longest-idle", "ring_timeout_s": 5, "wrap_up_s": 1, **queue}],
        "agents": [{"id": "dana", "name": "Dana", "extension": "2001", "queues": ["sales"]}],
    }


def cdrs(db: str) -> list[sqlite3.Row]:
    with sqlite3.connect(db) as conn:
        conn.row_factory = sqlite3.Row
        return conn.execute("SELECT * FROM cdrs ORDER BY id").fetchall()


async def test_caller_goes_through_menu_and_queue_to_the_logged_in_agent(
    edge_factory: Callable[..., EdgeProcess], tmp_path: Path
) -> None:
    edge = edge_factory(site(tmp_path))
    caller = Phone("1001", USERS["1001"], edge.sip_udp, DOMAIN)
    agent = Phone("2001", USERS["2001"], edge.sip_udp, DOMAIN)
    async with caller, agent:
        await asyncio.gather(caller.register(), agent.register())
        login = await agent.call("*71", talk_s=5.0)
        assert login.status == 200 and login.hangup_side == "callee", login.line(1)  # prompt, then BYE
        result = await caller.call("100", talk_s=2.0, callee=agent, digits="1")
    assert result.status == 200, result.line(1)
    assert result.callee_received and result.callee_received > 20, result.line(1)  # the agent heard the caller
    assert result.caller_received > 50, result.line(1)  # prompts, hold music and the agent
    edge.stop()

    rows = cdrs(edge.config["store"]["path"])
    hotline = [r for r in rows if r["destination"] == "flow:hotline"]
    assert len(hotline) == 1
    (call,) = hotline
    assert call["disposition"] == "answered" and call["hangup_side"] == "caller"
    assert call["dtmf"] == "1"
    assert call["b_call_id"] is not None  # the agent's leg
    assert call["packets_b_to_a"] > 20  # the agent's audio was relayed to the caller
    assert any(r["destination"] == "feature-code" for r in rows)

    # the interval statistics (closed at shutdown for the partial interval)
    import json

    with sqlite3.connect(edge.config["store"]["path"]) as conn:
        stats = {(k, n): json.loads(d) for k, n, d in conn.execute("SELECT kind, name, data FROM interval_stats")}
    sales, dana = stats[("queue", "sales")], stats[("agent", "dana")]
    assert (sales["offered"], sales["answered"], sales["abandoned"]) == (1, 1, 0)
    assert sales["answered_in_sl"] == 1 and sales["service_level"] == 1.0
    assert dana["calls"] == 1 and dana["talk_s"] > 1.0


async def test_caller_who_chooses_nothing_is_hung_up_after_the_retries(
    edge_factory: Callable[..., EdgeProcess], tmp_path: Path
) -> None:
    config = site(tmp_path)
    config["flows"]["hotline"]["nodes"]["menu"].update(timeout_s=0.5, retries=0)
    edge = edge_factory(config)
    caller = Phone("1001", USERS["1001"], edge.sip_udp, DOMAIN)
    async with caller:
        await caller.register()
        result = await caller.call("100", talk_s=10.0)
    assert result.status == 200 and result.hangup_side == "callee", result.line(1)
    edge.stop()
    (call,) = cdrs(edge.config["store"]["path"])
    assert (call["cause"], call["hangup_side"]) == ("ivr-no-choice", "edge")


def test_a_flow_naming_an_unknown_queue_is_refused_with_its_path(
    edge_factory: Callable[..., EdgeProcess], tmp_path: Path
) -> None:
    from tests.sipp import EdgeStartError

    config = site(tmp_path)
    config["flows"]["hotline"]["nodes"]["sales"]["queue"] = "salez"
    with pytest.raises(EdgeStartError) as info:
        edge_factory(config)
    assert info.value.returncode == 2
    assert "flows.hotline.nodes.sales" in info.value.stderr and "salez" in info.value.stderr


async def test_caller_rates_the_call_after_the_agent_hangs_up_and_a_low_score_opens_a_task(
    edge_factory: Callable[..., EdgeProcess], tmp_path: Path
) -> None:
    config = site(tmp_path)
    nodes = config["flows"]["hotline"]["nodes"]
    nodes["sales"]["after_call"] = "rate"
    nodes["rate"] = {"type": "survey", "prompt": "survey_ask", "timeout_s": 5, "next": "thanks"}
    nodes["thanks"] = {"type": "play", "prompt": "survey_thanks", "next": "done"}
    nodes["done"] = {"type": "hangup", "cause": "done"}
    edge = edge_factory(config)
    caller = Phone("1001", USERS["1001"], edge.sip_udp, DOMAIN)
    agent = Phone("2001", USERS["2001"], edge.sip_udp, DOMAIN)
    agent.hangup_after_s = 1.0  # the agent finishes the conversation
    async with caller, agent:
        await asyncio.gather(caller.register(), agent.register())
        assert (await agent.call("*71", talk_s=5.0)).status == 200
        # 1 for sales; two seconds later (the agent has gone), 1 out of 5 for the survey
        result = await caller.call("100", talk_s=15.0, callee=agent, digits="1,,1")
    assert result.status == 200 and result.hangup_side == "callee", result.line(1)  # the flow ended it
    edge.stop()

    db = edge.config["store"]["path"]
    (call,) = [r for r in cdrs(db) if r["destination"] == "flow:hotline"]
    assert (call["survey_score"], call["dtmf"], call["cause"]) == (1, "11", "ivr-done")
    with sqlite3.connect(db) as conn:
        tasks = conn.execute("SELECT kind, call_id, caller, status, due_at - created_at FROM tasks").fetchall()
    assert tasks == [("survey-followup", call["call_id"], "1001", "open", 24 * 3600)]


async def test_agent_blind_transfers_the_caller_with_refer(
    edge_factory: Callable[..., EdgeProcess], tmp_path: Path
) -> None:
    """1001 calls 2001; 2001 sends REFER to 2002: the edge answers 202, rings 2002, joins
    the caller to it, tells 2001 by NOTIFY and hangs 2001 up; the CDR counts it."""
    edge = edge_factory(site(tmp_path))
    alice = Phone("1001", USERS["1001"], edge.sip_udp, DOMAIN)
    bob = Phone("2001", USERS["2001"], edge.sip_udp, DOMAIN)
    carol = Phone("2002", USERS["2002"], edge.sip_udp, DOMAIN)
    async with alice, bob, carol:
        await asyncio.gather(alice.register(), bob.register(), carol.register())
        call = asyncio.create_task(alice.call("2001", talk_s=4.0))
        token = await wait_for_async(lambda: next((t for t, i in bob.incoming.items() if i.answered), None), 5.0)
        accepted = await bob.transfer(token, "2002")
        assert accepted.status == 202
        ended = await bob.incoming_call_ended(token, timeout_s=5.0)  # the edge let bob go
        assert ended.packets_received > 0
        result = await call
        inc = await carol.incoming_call_ended(token, timeout_s=5.0)  # alice's BYE reached carol
    assert result.status == 200 and result.hangup_side == "caller", result.line(1)
    assert inc.answered and inc.packets_received > 20  # carol heard alice after the transfer
    assert any(b.startswith(b"SIP/2.0 200") for b in bob.notifications)  # RFC 3515 sipfrag
    edge.stop()
    (cdr,) = cdrs(edge.config["store"]["path"])
    assert (cdr["transfers"], cdr["disposition"], cdr["hangup_side"]) == (1, "answered", "caller")


async def test_agent_attended_transfer_joins_the_caller_to_the_consulted_colleague(
    edge_factory: Callable[..., EdgeProcess], tmp_path: Path
) -> None:
    """1001 calls 2001; 2001 calls 2002 to consult, then sends REFER with Replaces
    naming that consultation: the edge joins 1001 to 2002 and lets 2001 go on both
    calls. The first call's CDR counts the transfer; the consultation's says why it ended."""
    edge = edge_factory(site(tmp_path))
    alice = Phone("1001", USERS["1001"], edge.sip_udp, DOMAIN)
    bob = Phone("2001", USERS["2001"], edge.sip_udp, DOMAIN)
    carol = Phone("2002", USERS["2002"], edge.sip_udp, DOMAIN)
    async with alice, bob, carol:
        await asyncio.gather(alice.register(), bob.register(), carol.register())
        call = asyncio.create_task(alice.call("2001", talk_s=5.0))
        token = await wait_for_async(lambda: next((t for t, i in bob.incoming.items() if i.answered), None), 5.0)
        consultation = asyncio.create_task(bob.call("2002", talk_s=20.0))
        await wait_for_async(lambda: bob.outgoing_dialog("2002"), 5.0, what="the consultation answered")
        accepted = await bob.transfer(token, "2002", consult="2002")
        assert accepted.status == 202
        await bob.incoming_call_ended(token, timeout_s=5.0)  # the edge let bob go ...
        consulted = await asyncio.wait_for(consultation, 5.0)  # ... on both calls
        assert consulted.hangup_side == "callee", consulted.line(1)
        result = await call
        (carols,) = carol.incoming.values()
        ended = await carol.incoming_call_ended(carols.token, timeout_s=5.0)  # alice's BYE reached carol
    assert result.status == 200 and result.hangup_side == "caller", result.line(1)
    assert ended.packets_received > 20  # carol heard alice after the transfer (and bob before)
    assert any(b.startswith(b"SIP/2.0 200") for b in bob.notifications)
    edge.stop()
    rows = cdrs(edge.config["store"]["path"])
    first = next(r for r in rows if r["from_number"] == "1001")
    consult = next(r for r in rows if r["from_number"] == "2001")
    assert (first["transfers"], first["hangup_side"]) == (1, "caller")
    assert consult["cause"] == "transferred"


async def test_caller_leaves_a_voicemail_that_is_written_and_indexed(
    edge_factory: Callable[..., EdgeProcess], tmp_path: Path
) -> None:
    """Menu option 2 is the sales mailbox: the caller speaks (a 400 Hz tone) and hangs
    up; the message is a mono 8 kHz WAV under media.voicemail_dir/sales, indexed, and
    the owner's phone is told a message waits (RFC 3842)."""
    import wave
    from array import array

    from appliance.sim.phones import CALLER_TONE_HZ
    from tests.integration.test_call_media import goertzel_power

    config = site(tmp_path)
    config["media"] = {"voicemail_dir": str(tmp_path / "vm")}
    nodes = config["flows"]["hotline"]["nodes"]
    nodes["menu"]["options"]["2"] = "leave"
    nodes["leave"] = {"type": "voicemail", "mailbox": "sales", "max_s": 30, "next": "bye", "notify": "2001"}
    edge = edge_factory(config)
    caller = Phone("1001", USERS["1001"], edge.sip_udp, DOMAIN)
    owner = Phone("2001", USERS["2001"], edge.sip_udp, DOMAIN)  # the mailbox owner's phone
    async with caller, owner:
        await asyncio.gather(caller.register(), owner.register())
        result = await caller.call("100", talk_s=4.0, digits="2")
        assert result.status == 200 and result.hangup_side == "caller", result.line(1)
        (lamp,) = await wait_for_async(lambda: owner.notifications, 5.0, what="the message-waiting NOTIFY")
    assert b"Messages-Waiting: yes" in lamp and b"Voice-Message: 1/0" in lamp
    assert b"Message-Account: sip:sales@" in lamp
    edge.stop()

    with sqlite3.connect(edge.config["store"]["path"]) as conn:
        rows = conn.execute("SELECT mailbox, caller, path, duration_s, heard FROM voicemails").fetchall()
    ((mailbox, who, path, duration, heard),) = rows
    assert (mailbox, who, heard) == ("sales", "1001", 0)
    assert Path(path).parent == tmp_path / "vm" / "sales"
    assert 1.0 < duration < 4.0  # the greeting took the first part of the call
    with wave.open(path) as wav:
        assert (wav.getnchannels(), wav.getframerate()) == (1, 8000)
        pcm = array("h", wav.readframes(wav.getnframes()))
    middle = pcm[len(pcm) // 2 : len(pcm) // 2 + 1600]
    assert goertzel_power(middle, CALLER_TONE_HZ) > 100 * goertzel_power(middle, 1000.0)


async def test_http_lookup_routes_known_callers_and_falls_back_when_the_crm_is_down(
    edge_factory: Callable[..., EdgeProcess], tmp_path: Path
) -> None:
    """A lookup node asks a CRM over HTTP: a known caller (VIP) reaches the queue, an
    unknown one (404) is sent to not_found, and a CRM that does not answer sends the
    flow to its fallback -- each visible in the CDR's cause."""
    import json
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    class Crm(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 (http.server's name)
            if self.path == "/customers/1001":
                body = json.dumps({"vip": True, "name": "Ada"}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
            else:
                self.send_error(404)

        def log_message(self, *args: object) -> None:
            pass

    crm = ThreadingHTTPServer(("127.0.0.1", 0), Crm)
    threading.Thread(target=crm.serve_forever, daemon=True).start()
    dead = socket.socket()  # a port that refuses connections: the CRM is down
    dead.bind(("127.0.0.1", 0))
    try:
        def lookup_flow(port: int) -> dict[str, Any]:
            return {
                "start": "who",
                "nodes": {
                    "who": {"type": "lookup", "source": "http", "timeout_s": 2,
                            "url": f"http://127.0.0.1:{port}/customers/${{caller}}",
                            "next": "known", "not_found": "unknown", "fallback": "down"},
                    "known": {"type": "hangup", "cause": "known"},
                    "unknown": {"type": "hangup", "cause": "unknown"},
                    "down": {"type": "hangup", "cause": "crm-down"},
                },
            }  # fmt: skip

        config = site(tmp_path)
        config["flows"] = {"hotline": lookup_flow(crm.server_port), "down": lookup_flow(dead.getsockname()[1])}
        config["routes"].append({"match": r"^101$", "flow": "down"})
        edge = edge_factory(config)
        known = Phone("1001", USERS["1001"], edge.sip_udp, DOMAIN)
        stranger = Phone("2002", USERS["2002"], edge.sip_udp, DOMAIN)
        async with known, stranger:
            await asyncio.gather(known.register(), stranger.register())
            results = [
                await known.call("100", talk_s=5.0),
                await stranger.call("100", talk_s=5.0),
                await known.call("101", talk_s=5.0),
            ]
        assert all(r.status == 200 and r.hangup_side == "callee" for r in results), [r.line(1) for r in results]
        edge.stop()
    finally:
        crm.shutdown()
        crm.server_close()
        dead.close()
    causes = [r["cause"] for r in cdrs(edge.config["store"]["path"])]
    assert causes == ["ivr-known", "ivr-unknown", "ivr-crm-down"]


async def test_the_echo_code_sends_the_callers_own_audio_back(
    edge_factory: Callable[..., EdgeProcess], tmp_path: Path
) -> None:
    """*43: the edge answers and every packet the caller sends comes back to them; the
    CDR has the quality figures a technician wants."""
    edge = edge_factory(site(tmp_path))
    caller = Phone("1001", USERS["1001"], edge.sip_udp, DOMAIN)
    async with caller:
        await caller.register()
        result = await caller.call("*43", talk_s=2.0)
    assert result.status == 200 and result.hangup_side == "caller", result.line(1)
    assert result.caller_received > 0.8 * result.caller_sent > 50, result.line(1)  # it came back
    edge.stop()
    (cdr,) = cdrs(edge.config["store"]["path"])
    assert (cdr["destination"], cdr["disposition"]) == ("echo", "answered")
    assert cdr["a_lost"] == 0 and cdr["mos"] > 4.0
