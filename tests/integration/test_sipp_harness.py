"""The SIPp harness and scenarios, proven SIPp against SIPp (no edge involved).

Each test pairs a caller scenario with the callee scenario (or a small test
double) it is meant to meet through the edge, so a failure in an edge test
points at the edge, not at the scenario.
"""

from __future__ import annotations

import signal
import sys
import textwrap
from pathlib import Path

import pytest

from tests.sipp import (
    EdgeProcess,
    EdgeStartError,
    Sipp,
    SippTimeout,
    free_udp_port,
    free_udp_port_block,
    free_udp_tcp_port,
    wait_for,
    write_reject_uas,
    write_users_csv,
)

pytestmark = pytest.mark.sipp

LOCAL = "127.0.0.1"
CALL_TIMEOUT_S = 15.0


def run_pair(callee: Sipp, caller: Sipp) -> tuple:
    """Start the callee, run the caller to completion, then collect the callee."""
    callee.start()
    caller.start()
    caller_result = caller.wait()
    callee_result = callee.wait(timeout=10.0)
    return caller_result, callee_result


def assert_all_ok(*results) -> None:
    for result in results:
        assert result.ok, result.describe()
        assert result.failed == 0, result.describe()


# ----------------------------------------------------------------- ports and waiting


def test_free_ports_are_bindable() -> None:
    import socket

    port = free_udp_tcp_port()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as u, socket.socket() as t:
        u.bind((LOCAL, port))
        t.bind((LOCAL, port))
    assert 0 < free_udp_port() < 65536
    base = free_udp_port_block(4)
    assert 10000 <= base < 32768 and base % 2 == 0


def test_wait_for_returns_value_and_times_out() -> None:
    calls = iter([0, 0, 7])
    assert wait_for(lambda: next(calls), 1.0, interval_s=0.001) == 7
    with pytest.raises(TimeoutError, match="the impossible"):
        wait_for(lambda: False, 0.05, what="the impossible")


# ----------------------------------------------------------------- built-in uac/uas


def test_builtin_uac_to_builtin_uas(sipp_factory) -> None:
    uas = sipp_factory("uas", calls=5, timeout_s=CALL_TIMEOUT_S)
    uac = sipp_factory(
        "uac", remote=uas.address, calls=5, rate=20, hold_ms=50, timeout_s=CALL_TIMEOUT_S
    )
    caller, callee = run_pair(uas, uac)
    assert_all_ok(caller, callee)
    assert caller.successful == 5 and callee.successful == 5
    assert caller.created == 5
    assert caller.retransmissions == 0
    # per-message counters from -trace_counts, keyed "<index>_<message>_<what>"
    assert caller.counts["0_INVITE_Sent"] == 5
    assert any(k.endswith("_BYE_Sent") and v == 5 for k, v in caller.counts.items())
    assert "Successful call" in caller.screen


def test_wait_timeout_kills_and_reports(sipp_factory) -> None:
    dead_end = free_udp_port()  # nobody listens: the INVITE is retransmitted forever
    uac = sipp_factory("uac", remote=(LOCAL, dead_end), calls=1, timeout_s=None)
    uac.start()
    with pytest.raises(SippTimeout) as info:
        uac.wait(timeout=0.5)
    assert not uac.running()
    assert info.value.result.returncode != 0


def test_global_timeout_is_an_error_exit(sipp_factory) -> None:
    uac = sipp_factory("uac", remote=(LOCAL, free_udp_port()), calls=1, timeout_s=1)
    result = uac.start().wait()
    assert result.returncode == 255, result.describe()
    assert result.successful == 0


# ----------------------------------------------------------------- project scenarios


def test_builtin_uac_to_uas_answer(sipp_factory) -> None:
    uas = sipp_factory("uas_answer", calls=3, timeout_s=CALL_TIMEOUT_S)
    uac = sipp_factory("uac", remote=uas.address, calls=3, rate=10, hold_ms=20,
                       timeout_s=CALL_TIMEOUT_S)
    assert_all_ok(*run_pair(uas, uac))


def test_callee_hangs_up(sipp_factory) -> None:
    uas = sipp_factory("uas_bye", calls=2, hold_ms=50, timeout_s=CALL_TIMEOUT_S)
    uac = sipp_factory("uac_wait_bye", remote=uas.address, service="2001", calls=2,
                       timeout_s=CALL_TIMEOUT_S)
    caller, callee = run_pair(uas, uac)
    assert_all_ok(caller, callee)
    assert callee.counts.get("5_BYE_Sent") == 2, callee.counts


def test_busy(sipp_factory) -> None:
    uas = sipp_factory("uas_busy", calls=2, timeout_s=CALL_TIMEOUT_S)
    uac = sipp_factory("uac_expect_486", remote=uas.address, service="2001", calls=2,
                       timeout_s=CALL_TIMEOUT_S)
    assert_all_ok(*run_pair(uas, uac))


def test_cancel_while_ringing(sipp_factory) -> None:
    uas = sipp_factory("uas_noanswer", calls=2, timeout_s=CALL_TIMEOUT_S)
    uac = sipp_factory("uac_cancel", remote=uas.address, service="2001", calls=2,
                       timeout_s=CALL_TIMEOUT_S)
    assert_all_ok(*run_pair(uas, uac))


@pytest.mark.parametrize(
    ("scenario", "status", "reason"),
    [
        ("uac_expect_404", 404, "Not Found"),
        ("uac_expect_480", 480, "Temporarily Unavailable"),
        ("uac_expect_noanswer", 408, "Request Timeout"),
        ("uac_expect_noanswer", 480, "Temporarily Unavailable"),
    ],
)
def test_expected_failures(sipp_factory, tmp_path: Path, scenario, status, reason) -> None:
    callee_xml = write_reject_uas(tmp_path / f"reject_{status}.xml", status, reason)
    uas = sipp_factory(callee_xml, calls=1, timeout_s=CALL_TIMEOUT_S)
    uac = sipp_factory(scenario, remote=uas.address, service="1234", calls=1,
                       timeout_s=CALL_TIMEOUT_S)
    assert_all_ok(*run_pair(uas, uac))


def test_expected_failure_after_challenge(sipp_factory, tmp_path: Path) -> None:
    keys = {"user": "1001", "password": "pw1001"}
    callee_xml = write_reject_uas(
        tmp_path / "reject_486_auth.xml", 486, "Busy Here", challenge_realm="test.local"
    )
    uas = sipp_factory(callee_xml, calls=1, keys=keys, timeout_s=CALL_TIMEOUT_S)
    uac = sipp_factory("uac_expect_486", remote=uas.address, service="2001", calls=1,
                       auth_user="1001", auth_password="pw1001", timeout_s=CALL_TIMEOUT_S)
    caller, callee = run_pair(uas, uac)
    assert_all_ok(caller, callee)
    assert any(k.endswith("_401_Recv") and v == 1 for k, v in caller.counts.items())


def test_wrong_expected_status_fails(sipp_factory, tmp_path: Path) -> None:
    callee_xml = write_reject_uas(tmp_path / "reject_404.xml", 404, "Not Found")
    uas = sipp_factory(callee_xml, calls=1, timeout_s=5)
    uac = sipp_factory("uac_expect_486", remote=uas.address, service="1234", calls=1,
                       timeout_s=5)
    uas.start()
    result = uac.start().wait()
    assert result.returncode == 1, result.describe()
    assert result.failure_reasons.get("FailedUnexpectedMessage") == 1, result.describe()
    uas.stop(grace_s=1.0)


def test_authenticated_call(sipp_factory, tmp_path: Path) -> None:
    users = write_users_csv(tmp_path / "callers.csv", [("1001", "pw1001")], "test.local")
    uas = sipp_factory("fake_challenger", calls=1, timeout_s=CALL_TIMEOUT_S,
                       keys={"user": "1001", "password": "pw1001", "realm": "test.local"})
    uac = sipp_factory("uac_auth", remote=uas.address, service="2001", calls=1, inf=users,
                       hold_ms=20, timeout_s=CALL_TIMEOUT_S)
    assert_all_ok(*run_pair(uas, uac))


def test_authenticated_call_bad_password_fails(sipp_factory, tmp_path: Path) -> None:
    users = write_users_csv(tmp_path / "callers.csv", [("1001", "nope")], "test.local")
    uas = sipp_factory("fake_challenger", calls=1, timeout_s=5,
                       keys={"user": "1001", "password": "pw1001", "realm": "test.local"})
    uac = sipp_factory("uac_auth", remote=uas.address, service="2001", calls=1, inf=users,
                       timeout_s=5)
    caller, callee = run_pair(uas, uac)
    assert caller.returncode == 1 and callee.returncode == 1, caller.describe()


@pytest.mark.parametrize(("password", "scenario"), [("pw1001", "register"),
                                                     ("wrong", "register_badpw")])
def test_register(sipp_factory, tmp_path: Path, password: str, scenario: str) -> None:
    users = write_users_csv(tmp_path / "users.csv", [("1001", password)], "test.local")
    registrar = sipp_factory("fake_registrar", calls=1, timeout_s=CALL_TIMEOUT_S,
                             keys={"user": "1001", "password": "pw1001", "realm": "test.local"})
    ua = sipp_factory(scenario, remote=registrar.address, calls=1, inf=users,
                      timeout_s=CALL_TIMEOUT_S, trace_msg=True)
    caller, callee = run_pair(registrar, ua)
    assert_all_ok(caller, callee)
    sent = ua.message_file.read_text()
    assert "To: <sip:1001@test.local>" in sent
    assert 'Authorization: Digest username="1001",realm="test.local"' in sent


def test_register_wrong_password_is_a_failure(sipp_factory, tmp_path: Path) -> None:
    users = write_users_csv(tmp_path / "users.csv", [("1001", "wrong")], "test.local")
    registrar = sipp_factory("fake_registrar", calls=1, timeout_s=5,
                             keys={"user": "1001", "password": "pw1001", "realm": "test.local"})
    ua = sipp_factory("register", remote=registrar.address, calls=1, inf=users, timeout_s=5)
    registrar.start()
    result = ua.start().wait()
    assert result.returncode == 1, result.describe()
    registrar.wait(timeout=5)


def test_register_many_users_from_csv(sipp_factory, tmp_path: Path) -> None:
    users = write_users_csv(tmp_path / "users.csv", [("1001", "pw"), ("1002", "pw")], "x.test")
    ua = sipp_factory("register", remote=(LOCAL, free_udp_port()), calls=2, inf=users,
                      rate=100, timeout_s=1, trace_msg=True)
    ua.start().wait()
    sent = ua.message_file.read_text()
    assert "sip:1001@x.test" in sent and "sip:1002@x.test" in sent


# ----------------------------------------------------------------- EdgeProcess


FAKE_EDGE = textwrap.dedent(
    """
    import json, os, signal, socket, sys, time, yaml
    args = sys.argv[1:]
    config = yaml.safe_load(open(args[args.index("--config") + 1]))
    ready = args[args.index("--ready-file") + 1]
    if "sip" not in config:
        print("config: sip: required", file=sys.stderr)
        sys.exit(2)
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind((config["sip"]["listen_host"], config["sip"]["udp_port"]))
    state = {"pid": os.getpid(), "sip_udp": list(sock.getsockname()),
             "sip_tcp": list(sock.getsockname()), "media": "fake", "kernels": {}}
    with open(ready + ".tmp", "w") as f:
        json.dump(state, f)
    os.replace(ready + ".tmp", ready)
    print("listening", file=sys.stderr, flush=True)
    signal.signal(signal.SIGTERM, lambda *a: sys.exit(0))
    while True:
        signal.pause()
    """
)


def fake_edge(tmp_path: Path, config: dict) -> EdgeProcess:
    script = tmp_path / "fake_edge.py"
    script.write_text(FAKE_EDGE)
    workdir = tmp_path / "edge"
    return EdgeProcess(
        workdir,
        config,
        command=[sys.executable, str(script), "--config", str(workdir / "site.yaml"),
                 "--ready-file", str(workdir / "ready.json")],
    )


@pytest.mark.timeout(30)
def test_edge_process_start_and_stop(tmp_path: Path) -> None:
    port = free_udp_tcp_port()
    edge = fake_edge(tmp_path, {"sip": {"listen_host": LOCAL, "udp_port": port}})
    ready = edge.start(timeout_s=10)
    assert ready["pid"] == edge.pid
    assert edge.sip_udp == (LOCAL, port)
    assert "listening" in wait_for(edge.stderr_text, 5, what="stderr line")
    assert edge.stop() == 0
    assert not edge.running()


@pytest.mark.timeout(30)
def test_edge_process_invalid_config_reports_stderr(tmp_path: Path) -> None:
    edge = fake_edge(tmp_path, {"site": {"id": "x"}})
    with pytest.raises(EdgeStartError) as info:
        edge.start(timeout_s=10)
    assert info.value.returncode == 2
    assert "sip: required" in info.value.stderr


@pytest.mark.timeout(30)
def test_edge_process_stop_asserts_exit_code(tmp_path: Path) -> None:
    edge = fake_edge(tmp_path, {"sip": {"listen_host": LOCAL, "udp_port": 0}})
    edge.start(timeout_s=10)
    assert edge.proc is not None
    edge.proc.send_signal(signal.SIGKILL)
    edge.proc.wait(timeout=5)
    with pytest.raises(AssertionError, match="exited -9"):
        edge.stop()
