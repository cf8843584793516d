"""Trunk groups, keepalives, the WAN mode and emergency routing through the real daemon,
with SIPp playing the central platform (a ``wan`` trunk) and the branch's PSTN gateway
(a ``local`` trunk). The network cut itself is the system test's (tests/system/)."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.integration.test_edge_sipp import FAST, LOCAL, assert_ok, cdrs, merged, users_csv
from tests.sipp import EdgeProcess, Sipp, free_udp_port, wait_for

pytestmark = [pytest.mark.sipp, pytest.mark.timeout(120)]

SippFactory = Callable[..., Sipp]
CALL_TIMEOUT_S = 15


def trunks(central_port: int, pstn_port: int, **central: Any) -> dict[str, Any]:
    """Route 9 + number to central first, then the local gateway; fast mode decisions."""
    return {
        "trunks": [
            {"name": "central", "host": LOCAL, "port": central_port, "kind": "wan", "trusted": False,
             "options_interval_s": 0, **central},
            {"name": "pstn", "host": LOCAL, "port": pstn_port, "kind": "local", "trusted": False,
             "options_interval_s": 0},
        ],
        "routes": [
            {"match": r"^(\d{4})$", "extension": r"\1"},
            {"match": r"^9(\d+)$", "trunks": ["central", "pstn"], "number": r"\1"},
        ],
        "routing": {"wan": {"signals": ["trunks"], "up_after_s": 1.0, "min_dwell_s": 0}},
    }  # fmt: skip


def api_get(edge: EdgeProcess, path: str) -> Any:
    socket = str(edge.workdir / edge.ready["api_socket"])
    with httpx.Client(transport=httpx.HTTPTransport(uds=socket), base_url="http://edge") as client:
        response = client.get(path)
        response.raise_for_status()
        return response.json()


def api_post(edge: EdgeProcess, path: str, body: Any = None, *, method: str = "POST") -> httpx.Response:
    socket = str(edge.workdir / edge.ready["api_socket"])
    with httpx.Client(transport=httpx.HTTPTransport(uds=socket), base_url="http://edge") as client:
        return client.request(method, path, json=body)


def call(sipp_factory: SippFactory, edge: EdgeProcess, tmp_path: Path, number: str, name: str) -> Any:
    return sipp_factory(
        "uac_auth", remote=edge.sip_udp, service=number, calls=1, hold_ms=100,
        inf=users_csv(tmp_path), timeout_s=CALL_TIMEOUT_S, name=name,
    ).start().wait()  # fmt: skip


def invites(uas: Sipp) -> list[str]:
    text = uas.message_file.read_text(errors="replace") if uas.message_file.is_file() else ""
    return re.findall(r"^INVITE (\S+) SIP/2\.0", text, re.M)


def test_a_trunk_answering_503_hands_the_call_to_the_next_trunk_in_the_same_attempt(
    edge_factory: Callable[..., EdgeProcess], sipp_factory: SippFactory, tmp_path: Path
) -> None:
    central = sipp_factory("uas_503", calls=1, timeout_s=CALL_TIMEOUT_S, trace_msg=True, name="central").start()
    pstn = sipp_factory("uas_answer", calls=1, timeout_s=CALL_TIMEOUT_S, trace_msg=True, name="pstn").start()
    edge = edge_factory(merged(FAST, trunks(central.port, pstn.port)))
    caller = call(sipp_factory, edge, tmp_path, "95551234", "caller")
    assert_ok(caller, pstn.wait(timeout=10), calls=1)
    central.wait(timeout=10)
    assert invites(central) == [f"sip:5551234@{LOCAL}:{central.port}"]
    assert invites(pstn) == [f"sip:5551234@{LOCAL}:{pstn.port}"]
    edge.stop()
    (cdr,) = cdrs(edge)
    assert (cdr["disposition"], cdr["destination"]) == ("answered", "trunk:pstn")


def test_a_wan_trunk_that_stops_answering_keepalives_makes_the_branch_survivable_and_back(
    edge_factory: Callable[..., EdgeProcess], sipp_factory: SippFactory, tmp_path: Path
) -> None:
    central_port = free_udp_port()
    keepalive = {"options_interval_s": 0.3, "options_timeout_s": 0.3, "down_after": 2, "up_after": 2}
    central = sipp_factory("uas_options", local_port=central_port, timeout_s=60, name="central-1").start()
    pstn = sipp_factory("uas_answer", calls=2, timeout_s=60, trace_msg=True, name="pstn").start()
    edge = edge_factory(merged(FAST, trunks(central_port, pstn.port, **keepalive)))

    def trunk(name: str) -> dict[str, Any]:
        return next(t for t in api_get(edge, "/v1/trunks")["trunks"] if t["name"] == name)

    up = wait_for(lambda: (t := trunk("central"))["rtt_ms"] is not None and t, 10.0, what="a keepalive answered")
    assert up["up"] and up["last_status"] == 200
    assert api_get(edge, "/v1/status")["mode"]["mode"] == "normal"

    central.stop()  # the central platform is gone
    wait_for(lambda: api_get(edge, "/v1/status")["mode"]["mode"] == "survivable", 10.0, what="survivable mode")
    assert not trunk("central")["up"] and trunk("central")["failures"] >= 2
    # outbound calls now leave by the local gateway at once: central is not even tried
    assert_ok(call(sipp_factory, edge, tmp_path, "95550001", "during"), calls=1)
    # emergency numbers go to the local gateway first, whatever the mode
    assert_ok(call(sipp_factory, edge, tmp_path, "112", "emergency"), calls=1)
    assert invites(pstn) == [f"sip:5550001@{LOCAL}:{pstn.port}", f"sip:112@{LOCAL}:{pstn.port}"]

    central = sipp_factory("uas_options", local_port=central_port, timeout_s=60, name="central-2").start()
    wait_for(lambda: api_get(edge, "/v1/status")["mode"]["mode"] == "normal", 10.0, what="back to normal")
    edge.stop()
    central.stop()
    log = edge.stderr_text()
    assert "mode normal -> survivable (wan down (trunks))" in log
    assert "mode survivable -> normal (wan up)" in log


def test_a_drill_forces_survivable_mode_and_ends_on_request(
    edge_factory: Callable[..., EdgeProcess], tmp_path: Path
) -> None:
    edge = edge_factory(merged(FAST, trunks(free_udp_port(), free_udp_port())))
    started = api_post(edge, "/v1/drill", {"seconds": 600})
    assert started.status_code == 200 and started.json()["mode"] == "survivable"
    assert started.json()["drill_until"] is not None
    refused = api_post(edge, "/v1/drill", {"seconds": -1})
    assert refused.status_code == 422 and "seconds" in refused.text
    ended = api_post(edge, "/v1/drill", method="DELETE")
    assert ended.status_code == 200 and ended.json()["drill_until"] is None
    # back to normal once the WAN has been up for up_after_s (it has been, unless the
    # edge started less than that ago)
    wait_for(lambda: api_get(edge, "/v1/status")["mode"]["mode"] == "normal", 5.0, what="normal again")


def test_maintenance_mode_through_the_api_refuses_new_calls_until_turned_off(
    edge_factory: Callable[..., EdgeProcess], tmp_path: Path
) -> None:
    edge = edge_factory(merged(FAST, trunks(free_udp_port(), free_udp_port())))
    on = api_post(edge, "/v1/maintenance", {"on": True, "reason": "replacing the UPS"})
    assert on.status_code == 200 and on.json()["accepting_calls"] is False
    status = api_get(edge, "/v1/status")
    assert status["maintenance"] is True and status["accepting_calls"] is False
    # (the 503 a new call then gets is checked by the telemetry test's maintenance command)
    off = api_post(edge, "/v1/maintenance", {"on": False})
    assert off.status_code == 200 and off.json()["accepting_calls"] is True
    assert api_post(edge, "/v1/maintenance", {"on": "maybe"}).status_code == 422


def test_the_edge_registers_to_its_carrier_answering_the_digest_challenge(
    edge_factory: Callable[..., EdgeProcess], sipp_factory: SippFactory, tmp_path: Path
) -> None:
    """SIPp as the carrier's registrar (fake_registrar: 401, then 200 only for the right
    digest); the trunk's registration shows in the API with its expiry."""
    registrar = sipp_factory(
        "fake_registrar", calls=1, timeout_s=CALL_TIMEOUT_S, trace_msg=True, name="carrier",
        keys={"user": "branch001", "password": "s3cret-carrier", "realm": "carrier.test"},
    ).start()  # fmt: skip
    config = merged(FAST, {"trunks": [{
        "name": "carrier", "host": LOCAL, "port": registrar.port, "kind": "local", "options_interval_s": 0,
        "registration": True, "username": "branch001", "password": "s3cret-carrier", "register_expires_s": 600,
    }], "routes": [{"match": r"^9(\d+)$", "trunk": "carrier", "number": r"\1"}]})  # fmt: skip
    edge = edge_factory(config)

    def registration() -> dict[str, Any]:
        (trunk,) = api_get(edge, "/v1/trunks")["trunks"]
        return dict(trunk["registration"])

    state = wait_for(lambda: (r := registration())["state"] == "registered" and r, 10.0, what="registered")
    assert state["expires"] is not None and state["reason"] is None
    assert_ok(registrar.wait(timeout=10), calls=1)
    sent = registrar.message_file.read_text(errors="replace")
    assert 'Authorization: Digest username="branch001", realm="carrier.test"' in sent
    assert "Expires: 600" in sent and "To: <sip:branch001@127.0.0.1>" in sent


def test_the_drill_command_starts_and_stops_survivable_mode(
    edge_factory: Callable[..., EdgeProcess], tmp_path: Path
) -> None:
    import json
    import subprocess
    import sys

    edge = edge_factory(merged(FAST, trunks(free_udp_port(), free_udp_port())))
    socket = str(edge.workdir / edge.ready["api_socket"])

    def drill(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "edge_core.cli", "edge", "drill", "survivable", *args],
                              capture_output=True, text=True, timeout=30)  # fmt: skip

    started = drill("--for", "2m", "--socket", socket)
    assert started.returncode == 0, started.stderr
    assert json.loads(started.stdout)["mode"] == "survivable"
    assert api_get(edge, "/v1/status")["mode"]["drill_until"] is not None
    assert drill("--for", "soon", "--socket", socket).returncode == 2  # a clear usage error
    stopped = drill("--stop", "--socket", socket)
    assert stopped.returncode == 0 and json.loads(stopped.stdout)["drill_until"] is None
    gone = drill("--socket", str(tmp_path / "nothing.sock"))
    assert gone.returncode == 1 and "does not answer" in gone.stderr


async def test_queue_overflow_to_a_central_number_goes_over_the_wan_only_when_it_is_up(
    edge_factory: Callable[..., EdgeProcess], sipp_factory: SippFactory, tmp_path: Path
) -> None:
    """A queue that overflows to a number on the central platform: in normal mode the
    waiting caller is put through to it over the wan trunk; in survivable mode that is
    skipped and the flow's own overflow way (here: hang up, cause queue-overflow) is the
    local alternative."""
    import asyncio

    from appliance.sim.phones import Phone
    from tests.integration.test_contact_center import DOMAIN, USERS, site

    central = sipp_factory("uas_answer", calls=1, timeout_s=60, trace_msg=True, name="central").start()
    config = site(tmp_path, join_empty=True, max_wait_s=1.0, overflow={"type": "number", "target": "95551234"})
    config["trunks"] = [{"name": "central", "host": LOCAL, "port": central.port, "kind": "wan",
                         "trusted": False, "options_interval_s": 0}]  # fmt: skip
    config["routes"].append({"match": r"^9(\d+)$", "trunks": ["central"], "number": r"\1"})
    config["routing"] = {"wan": {"signals": ["trunks"], "min_dwell_s": 0}}
    edge = edge_factory(config)
    caller = Phone("1001", USERS["1001"], edge.sip_udp, DOMAIN)
    async with caller:
        await caller.register()
        through = await caller.call("100", talk_s=4.0, digits="1")
        assert through.status == 200 and through.hangup_side == "caller", through.line(1)
        assert invites(central) == [f"sip:5551234@{LOCAL}:{central.port}"]
        assert (await asyncio.to_thread(api_post, edge, "/v1/drill", {"seconds": 600})).status_code == 200
        local = await caller.call("100", talk_s=10.0, digits="1")
        assert local.status == 200 and local.hangup_side == "callee", local.line(1)
    edge.stop()
    first, second = [r for r in cdrs(edge) if r["destination"] == "flow:hotline"]
    assert first["b_call_id"] is not None and first["transfers"] == 0
    assert second["cause"] == "ivr-queue-overflow" and len(invites(central)) == 1


async def test_an_edge_that_falls_behind_refuses_new_calls_with_503_until_it_catches_up(
    edge_factory: Callable[..., EdgeProcess], tmp_path: Path
) -> None:
    """Overload protection, provoked for real: the daemon is stopped (SIGSTOP) for a
    second, so its loop wakes that late; new calls then get 503 with Retry-After, and
    once the loop has been on time for a second, calls are taken again. (Emergency
    numbers pass the gate: ``DialPlan.is_emergency``, checked in SipCore._on_invite.)"""
    import asyncio
    import os
    import signal

    from appliance.sim.phones import Phone
    from tests.integration.test_contact_center import DOMAIN, USERS, site
    from tests.sipp import wait_for_async

    edge = edge_factory(site(tmp_path))
    alice = Phone("1001", USERS["1001"], edge.sip_udp, DOMAIN)
    bob = Phone("2001", USERS["2001"], edge.sip_udp, DOMAIN)
    async with alice, bob:
        await asyncio.gather(alice.register(), bob.register())
        assert edge.proc is not None
        os.kill(edge.proc.pid, signal.SIGSTOP)
        try:
            await asyncio.sleep(1.0)  # the stall being simulated, not a wait for an event
        finally:
            os.kill(edge.proc.pid, signal.SIGCONT)
        await wait_for_async(lambda: "overloaded: the loop runs" in edge.stderr_text(), 5.0, what="overload seen")
        refused = await alice.call("2001", talk_s=0.2)
        assert (refused.status, refused.reason) == (503, "Overloaded"), refused.line(1)
        await wait_for_async(lambda: "overload over" in edge.stderr_text(), 10.0, what="overload over")
        taken = await alice.call("2001", talk_s=0.2, callee=bob)
        assert taken.status == 200, taken.line(1)
    status = api_get(edge, "/v1/status")
    assert status["sip"]["core"]["overload.refused"] >= 1


def test_an_edge_that_cannot_bind_its_sip_port_says_so_and_exits(
    edge_factory: Callable[..., EdgeProcess], tmp_path: Path
) -> None:
    import socket

    from tests.sipp import EdgeStartError

    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as taken:
        taken.bind((LOCAL, 0))
        port = taken.getsockname()[1]
        with pytest.raises(EdgeStartError) as info:
            edge_factory(merged(FAST, {"sip": {"udp_port": port, "tcp_port": free_udp_port()}}))
    assert info.value.returncode == 3
    assert f"cannot listen for SIP on {LOCAL} (udp {port}" in info.value.stderr


def test_a_trunk_that_says_nothing_at_all_is_left_for_the_next_after_failover_after_s(
    edge_factory: Callable[..., EdgeProcess], sipp_factory: SippFactory, tmp_path: Path
) -> None:
    """The central platform's address swallows the INVITE (a cut the keepalive has not
    noticed yet): after failover_after_s, not Timer B, the call goes out by the gateway."""
    import socket
    import time

    pstn = sipp_factory("uas_answer", calls=1, timeout_s=CALL_TIMEOUT_S, trace_msg=True, name="pstn").start()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as silent:
        silent.bind((LOCAL, 0))
        config = merged(FAST, trunks(silent.getsockname()[1], pstn.port, failover_after_s=0.5))
        config["sip"]["t1_ms"] = 500  # Timer B would be 32 s
        edge = edge_factory(config)
        started = time.monotonic()
        caller = call(sipp_factory, edge, tmp_path, "95551234", "caller")
        took = time.monotonic() - started
        assert_ok(caller, pstn.wait(timeout=10), calls=1)
        assert silent.recv(65535).startswith(b"INVITE sip:5551234@")  # it was tried first
    assert took < 5.0, took
    edge.stop()
    (cdr,) = cdrs(edge)
    assert (cdr["disposition"], cdr["destination"]) == ("answered", "trunk:pstn")


async def test_a_full_trunk_is_skipped_and_with_nothing_left_the_call_gets_503(
    edge_factory: Callable[..., EdgeProcess], sipp_factory: SippFactory, tmp_path: Path
) -> None:
    """``max_calls: 1`` on the only trunk of a route: while one call is up on it, the
    next is refused with 503 No Trunk Available (and a CDR), not sent over the limit."""
    import asyncio

    from appliance.sim.phones import Phone
    from tests.integration.test_contact_center import DOMAIN, USERS
    from tests.sipp import wait_for_async

    pstn = sipp_factory("uas_answer", calls=1, timeout_s=CALL_TIMEOUT_S, name="pstn").start()
    config = merged(FAST, trunks(free_udp_port(), pstn.port), {"sip": {"domain": DOMAIN}})
    config["trunks"][1]["max_calls"] = 1
    config["routes"][1] = {"match": r"^9(\d+)$", "trunks": ["pstn"], "number": r"\1"}
    config["extensions"] = [{"number": n, "password": p} for n, p in USERS.items()]
    edge = edge_factory(config)
    first = Phone("1001", USERS["1001"], edge.sip_udp, DOMAIN)
    second = Phone("2001", USERS["2001"], edge.sip_udp, DOMAIN)
    async with first, second:
        await asyncio.gather(first.register(), second.register())
        up = asyncio.create_task(first.call("95551234", talk_s=3.0))

        def pstn_busy() -> bool:
            return next(t for t in api_get(edge, "/v1/trunks")["trunks"] if t["name"] == "pstn")["calls"] == 1

        await wait_for_async(pstn_busy, 10.0, what="the first call up on pstn")
        refused = await second.call("95550000", talk_s=0.5)
        assert (refused.status, refused.reason) == (503, "No Trunk Available"), refused.line(1)
        assert (await up).status == 200
