"""The console's pure parts: formatting (words, not colours), the config diff, the
filter, coalescing messages, and the API client's error shape."""

from __future__ import annotations

import httpx
import pytest

from tui.client import EdgeClient, EdgeError, EdgeUnavailable, _error
from tui.format import config_diff, duration, event_line, matches, mode_line, percent, updown
from tui.messages import Connection, EdgeEvent, Snapshot
from tui.panes.diagnostics import summary


@pytest.mark.parametrize(("seconds", "text"), [(None, "-"), (0, "0s"), (59.9, "59s"), (61, "1m01s"),
                                               (3600 * 3 + 120, "3h02m"), (86400 * 2 + 3600 * 4, "2d04h")])  # fmt: skip
def test_durations(seconds: float | None, text: str) -> None:
    assert duration(seconds) == text


def test_states_are_words_and_symbols() -> None:
    assert updown(True) == "▲ up" and updown(False) == "▼ DOWN" and updown(None) == "? unknown"
    assert percent(0.926) == "93 %" and percent(None) == "-"
    assert mode_line({"mode": "survivable", "for_s": 75, "drill_until": "2024-05-01T10:42:00.000+00:00"}) == (
        "SURVIVABLE for 1m15s (drill until 10:42:00)"
    )
    assert mode_line(None) == "unknown"


def test_the_filter_needs_every_word() -> None:
    assert matches("", "anything")
    assert matches("2001 udp", "2001", "Bob", "udp:127.0.0.1:5060")
    assert not matches("2001 tcp", "2001", "Bob", "udp:127.0.0.1:5060")
    assert matches("BOB", "2001", "bob", None)


def test_config_diff_shows_added_and_removed_lines_and_nothing_when_equal() -> None:
    running = {"queues": [{"name": "sales"}], "site": {"id": "a"}}
    new = {"queues": [{"name": "sales"}, {"name": "support"}], "site": {"id": "a"}}
    diff = config_diff(running, new)
    assert diff[:2] == ["--- running", "+++ file"]
    assert "+- name: support" in diff
    assert config_diff(running, running) == []


def test_event_lines_leave_out_empty_fields() -> None:
    line = event_line({"type": "agent", "agent": "dana", "old": "available", "new": "paused", "reason": None,
                       "seq": 4, "time": 1.0})  # fmt: skip
    assert line == "agent     agent=dana old=available new=paused"
    assert event_line({"type": "stats", "counts": {"calls_active": 2}}).startswith("stats     calls 2 waiting 0")


def test_snapshots_of_one_kind_coalesce_and_events_never_do() -> None:
    assert Snapshot("calls", {}).can_replace(Snapshot("calls", {"calls": []}))
    assert not Snapshot("calls", {}).can_replace(Snapshot("agents", {}))
    assert not EdgeEvent({"type": "agent"}).can_replace(EdgeEvent({"type": "agent"}))
    assert Connection(True).can_replace(Connection(False, "gone"))


def test_api_errors_keep_every_bad_field() -> None:
    body = {"error": "bad", "field": "queues[0].strategy",
            "detail": [{"field": "queues[0].strategy", "message": "bad"}, {"field": "agents[1].id", "message": "dup"}]}  # fmt: skip
    error = _error(httpx.Response(422, json=body))
    assert error.status == 422 and error.problems() == [("queues[0].strategy", "bad"), ("agents[1].id", "dup")]
    plain = _error(httpx.Response(500, text="oops"))
    assert plain.status == 500 and plain.problems() == [("", "Internal Server Error")]


async def test_a_missing_socket_is_edge_unavailable(tmp_path: object) -> None:
    async with EdgeClient(f"{tmp_path}/none.sock", timeout_s=1.0) as client:
        with pytest.raises(EdgeUnavailable) as caught:
            await client.get("/v1/status")
        assert isinstance(caught.value, EdgeError) and caught.value.status == 0
        with pytest.raises(EdgeUnavailable):
            async for _ in client.events():
                pass


def test_diagnostic_summaries() -> None:
    assert summary("ping", {"ok": True, "status": 200, "reason": "OK", "rtt_ms": 1.5, "addr": "udp:h:5060"}) == (
        "200 OK in 1.5 ms (udp:h:5060)"
    )
    assert summary("database", {"ok": False, "error": "the store is not open"}) == "the store is not open"
    assert "telemetry off" in summary("fleet", {"enabled": False, "broker": "h:1883", "tcp_reachable": True})
