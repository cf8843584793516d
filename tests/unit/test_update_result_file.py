"""The update agent's last result (``ROOT/data/update-last.json``): kept unsent when the
broker is out of reach, found pending by the edge, marked sent only while it is still
the same result, never read while an agent holds the lock."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from edge_core.telemetry import protocol
from images import agent
from tests.sipp import free_tcp_port


def answer(rid: str = "rollout-1-7") -> protocol.CommandResult:
    body = protocol.UpdateResult(stage="done", version="2.0.0", outcome="rolled_back", check="api",
                                 reason="api: the control API is turned off")
    return protocol.CommandResult(id=rid, ok=False, result=body.model_dump(), error="rolled_back: api")


@pytest.fixture
def root(tmp_path: Path) -> Path:
    """A box root whose telemetry points at a port nobody listens on (a WAN cut)."""
    (tmp_path / "etc").mkdir()
    (tmp_path / "etc" / "site.yaml").write_text(yaml.safe_dump({
        "site": {"id": "branch-1"},
        "telemetry": {"enabled": True, "broker_url": f"mqtt://127.0.0.1:{free_tcp_port()}"}}))
    return tmp_path


def test_a_result_that_could_not_be_sent_stays_pending(root: Path) -> None:
    with agent.agent_lock(root):
        assert agent.report_result(root, answer(), give_up_s=0) is False
        with pytest.raises(BlockingIOError):  # the agent runs: the edge keeps off
            agent.pending_result(root)
    record = agent.pending_result(root)
    assert record is not None and record["sent"] is False and record["id"] == "rollout-1-7"
    sent = protocol.CommandResult.from_bytes(agent.result_payload(record))
    assert sent == answer()
    assert agent.mark_sent(root, record) is True
    assert agent.pending_result(root) is None
    on_disk = json.loads((root / agent.LAST_RESULT).read_text())
    assert on_disk["sent"] is True and on_disk["sent_at"] >= on_disk["at"]
    assert not list((root / "data").glob(".*.tmp"))


def test_mark_sent_only_marks_the_same_result(root: Path) -> None:
    with agent.agent_lock(root):
        agent.report_result(root, answer("rollout-1-7"), give_up_s=0)
    first = agent.pending_result(root)
    assert first is not None
    with agent.agent_lock(root):  # a newer update finished meanwhile
        agent.report_result(root, answer("rollout-2-9"), give_up_s=0)
        assert agent.mark_sent(root, first) is False  # an agent holds the lock
    assert agent.mark_sent(root, first) is False  # not the last result any more
    second = agent.pending_result(root)
    assert second is not None and second["id"] == "rollout-2-9" and not second["sent"]


def test_a_result_from_an_older_agent_counts_as_unsent(root: Path) -> None:
    """An agent from before the ``sent`` flag wrote no flag: sent again (harmless twice)."""
    (root / "data").mkdir()
    (root / agent.LAST_RESULT).write_text(json.dumps({"at": 1.0, **answer().model_dump()}))
    record = agent.pending_result(root)
    assert record is not None and agent.mark_sent(root, record)
    assert agent.pending_result(root) is None


@pytest.mark.parametrize("content", ["", "{not json", "[]", '{"ok": true}', '{"id": ""}'])
def test_an_unreadable_file_is_not_pending(root: Path, content: str) -> None:
    (root / "data").mkdir()
    (root / agent.LAST_RESULT).write_text(content)
    assert agent.pending_result(root) is None
    assert agent.pending_result(root / "elsewhere") is None  # no file at all
