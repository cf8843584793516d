"""The worker's parsing of outside input (topics and payloads from any MQTT client)
never raises: anything malformed is counted and dropped. And the config layers' deep
merge keeps what it should. Property-based (hypothesis)."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from fleet.configs import compose, deep_merge
from fleet.worker import IngestWorker, WorkerSettings


class FakeMessage:
    """The two fields of paho's MQTTMessage the parser reads."""

    def __init__(self, topic: str, payload: bytes) -> None:
        self.topic = topic
        self.payload = payload


def worker() -> IngestWorker:
    return IngestWorker(None, WorkerSettings("mqtt://127.0.0.1:1", "parse-test"))  # type: ignore[arg-type]


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=20,
)
kinds = st.sampled_from(["outbox", "state", "metrics", "config/report", "cmd/result", "ack", "x", "config"])
topics = st.one_of(
    st.builds(lambda s, k: f"bl/v1/site/{s}/{k}", st.text(max_size=10), kinds),
    st.text(max_size=40),
)
payloads = st.one_of(
    st.binary(max_size=200),
    json_values.map(lambda v: json.dumps(v).encode()),
    st.builds(
        lambda recs: json.dumps({"records": recs}).encode(),
        st.lists(st.fixed_dictionaries({"seq": st.integers(-2, 5), "kind": st.sampled_from(["cdr", "event", "bogus"]),
                                        "at": st.floats(allow_nan=False) | st.text(max_size=3),
                                        "body": json_values}), max_size=3),
    ),
)


@settings(max_examples=400, deadline=None)
@given(st.lists(st.tuples(topics, payloads), min_size=1, max_size=5))
def test_parse_never_raises_and_counts(messages: list[tuple[str, bytes]]) -> None:
    w = worker()
    parsed = w.parse([FakeMessage(t, b) for t, b in messages], 1.0)  # type: ignore[misc]
    b = parsed.batch
    empty = sum(1 for _, payload in messages if not payload)
    assert w.stats.messages == len(messages)
    assert w.stats.malformed + w.stats.accepted + empty == len(messages)  # each one accounted for once
    assert len(b.states + b.metrics + b.reports + b.results) <= w.stats.accepted
    for _, record in b.records:
        assert record.seq >= 1


def test_parse_sorts_valid_messages() -> None:
    w = worker()
    msgs = [
        FakeMessage("bl/v1/site/a/outbox", b'{"records":[{"seq":1,"kind":"cdr","at":1,"body":{}}]}'),
        FakeMessage("bl/v1/site/a/state", b'{"status":"offline"}'),
        FakeMessage("bl/v1/site/a/metrics", b'{"at":1,"trunks":{"wan":false}}'),
        FakeMessage("bl/v1/site/a/config/report", b'{"version":2,"status":"applied"}'),
        FakeMessage("bl/v1/site/a/cmd/result", b'{"id":"1","ok":true}'),
        FakeMessage("bl/v1/site/a/ack", b'{"upto":1}'),
        FakeMessage("elsewhere/topic", b"{}"),
    ]
    b = w.parse(msgs, 5.0).batch  # type: ignore[arg-type]
    assert [len(x) for x in (b.records, b.states, b.metrics, b.reports, b.results)] == [1, 1, 1, 1, 1]
    assert {c.kind for c in b.alarms} == {"site_offline", "trunk_down"}
    assert w.stats.malformed == 2


mappings = st.dictionaries(st.sampled_from("abcd"), json_values, max_size=4)


@settings(max_examples=300, deadline=None)
@given(mappings, mappings)
def test_deep_merge_properties(base: dict[str, Any], overlay: dict[str, Any]) -> None:
    merged = deep_merge(base, overlay)
    for key, value in overlay.items():  # the overlay wins, except where both are mappings
        if not (isinstance(value, dict) and isinstance(base.get(key), dict)):
            assert merged[key] == value
    for key in base.keys() - overlay.keys():  # what the overlay does not name stays
        assert merged[key] == base[key]
    assert deep_merge(merged, overlay) == merged  # applying the same overlay twice changes nothing


def test_compose_forces_the_site_id() -> None:
    body = compose("b1", [{"site": {"id": "other", "name": "x"}}, {"sip": {"domain": "d"}}])
    assert body == {"site": {"id": "b1", "name": "x"}, "sip": {"domain": "d"}}
