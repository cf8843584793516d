"""The worker's fast parse path: what reaches the store is exactly what the protocol
allows and PostgreSQL can hold. A record's body is still a JSON object (the protocol's
model), its stored text is the body itself (property-based round trip), and values
``jsonb`` refuses (NaN, Infinity, NUL) or that overflow a column are malformed input,
counted and dropped with their whole message, never a batch that fails forever."""

from __future__ import annotations

import json
import math
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edge_core.telemetry import protocol as p
from fleet.store.ingest import MAX_SEQ, UnstorableJson, cdr_projection, encode_json, storable
from fleet.worker import IngestWorker, WorkerSettings


class FakeMessage:
    """The fields of paho's MQTTMessage the worker reads."""

    def __init__(self, topic: str, payload: bytes) -> None:
        self.topic = topic
        self.payload = payload
        self.qos = 1
        self.mid = 1


def worker() -> IngestWorker:
    return IngestWorker(None, WorkerSettings("mqtt://127.0.0.1:1", "parse-test"))  # type: ignore[arg-type]


def outbox(*records: str, site: str = "s1") -> FakeMessage:
    return FakeMessage(f"bl/v1/site/{site}/outbox", ('{"records":[' + ",".join(records) + "]}").encode())


def record(seq: int = 1, body: str = '{"a":1}', kind: str = "event") -> str:
    return f'{{"seq":{seq},"kind":"{kind}","at":1.5,"body":{body}}}'


def parse(*messages: FakeMessage) -> tuple[IngestWorker, Any]:
    w = worker()
    return w, w.parse(list(messages), 1.0)  # type: ignore[arg-type]


def test_body_text_is_stored_as_sent_and_alarms_still_read() -> None:
    body = '{"alarm":"trunk_down","subject":"pstn","severity":"critical","note":"é\\u2028"}'
    w, parsed = parse(outbox(record(1, body), record(2, '{"n":[1,2.5,null,true]}', kind="cdr")))
    assert w.stats.accepted == 1 and w.stats.malformed == 0
    assert [json.loads(b) for b in parsed.batch.record_rows().body] == [json.loads(body), {"n": [1, 2.5, None, True]}]
    assert [r.seq for _, r in parsed.batch.records] == [1, 2]
    assert [c.kind for c in parsed.batch.alarms] == ["trunk_down"]


@pytest.mark.parametrize("body", ['[1,2]', '"text"', "3", "null", "true", "{", '{"a":NaN}', '{"a":Infinity}',
                                  '{"a":-Infinity}', '{"a":"x\\u0000y"}', '{"x\\u0000":1}', '{"a":[{"b":NaN}]}'])
def test_non_object_or_unstorable_body_drops_the_whole_message(body: str) -> None:
    w, parsed = parse(outbox(record(1), record(2, body)), outbox(record(3)))
    assert w.stats.malformed == 1 and w.stats.accepted == 1 and w.stats.messages == 2
    assert [r.seq for _, r in parsed.batch.records] == [3]  # nothing of the bad message, all of the good one
    assert len(parsed.messages) == 2  # both are PUBACKed after the commit


def test_strings_that_only_look_unstorable_are_kept() -> None:
    body = '{"NaN":"Infinity","note":"\\\\u0000 is how JSON writes NUL"}'
    w, parsed = parse(outbox(record(1, body)))
    assert w.stats.accepted == 1
    assert json.loads(parsed.batch.record_rows().body[0]) == json.loads(body)


@pytest.mark.parametrize("message", [
    outbox(record(MAX_SEQ + 1)),
    outbox(record(1), site="s" * 65),
    FakeMessage("bl/v1/site/s1/metrics", b'{"at":1,"gauges":{"cpu":NaN}}'),
    FakeMessage("bl/v1/site/s1/state", ('{"status":"online","version":"' + "v" * 65 + '"}').encode()),
    FakeMessage("bl/v1/site/s1/state", b'{"status":"online","kernels":{"g711":"c\\u0000"}}'),
    FakeMessage("bl/v1/site/s1/config/report", b'{"version":4294967296,"status":"applied"}'),
    FakeMessage("bl/v1/site/s1/cmd/result", ('{"id":"' + "i" * 65 + '","ok":true}').encode()),
    FakeMessage("bl/v1/site/s1/cmd/result", b'{"id":"1","ok":false,"result":{"x":Infinity}}'),
])
def test_values_postgresql_would_refuse_are_malformed(message: FakeMessage) -> None:
    w, parsed = parse(message)
    assert (w.stats.malformed, w.stats.accepted) == (1, 0)
    b = parsed.batch
    assert not (b.records or b.states or b.metrics or b.reports or b.results)


def test_the_largest_values_that_fit_are_kept() -> None:
    w, parsed = parse(outbox(record(MAX_SEQ), site="s" * 64),
                      FakeMessage("bl/v1/site/s1/config/report", b'{"version":2147483647,"status":"applied"}'))
    assert (w.stats.malformed, w.stats.accepted) == (0, 2)


json_leaves = (st.none() | st.booleans() | st.integers(-(2**70), 2**70)
               | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=12))
json_values = st.recursive(
    json_leaves,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=25,
)


def _has_unstorable(value: Any) -> bool:
    if isinstance(value, float):
        return not math.isfinite(value)
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any(_has_unstorable(k) or _has_unstorable(v) for k, v in value.items())
    if isinstance(value, list):
        return any(_has_unstorable(v) for v in value)
    return False


@settings(max_examples=500, deadline=None)
@given(json_values)
def test_encode_json_round_trips_exactly_what_is_storable(value: Any) -> None:
    if _has_unstorable(value):
        with pytest.raises(UnstorableJson):
            encode_json(value)
        return
    text = encode_json(value)
    assert json.loads(text) == value  # the same JSON value (float exponents may be spelled differently)


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(st.text(max_size=8), json_values | st.just(math.nan) | st.just(math.inf), max_size=4))
def test_a_parsed_body_is_stored_iff_storable(body: dict[str, Any]) -> None:
    payload = json.dumps({"records": [{"seq": 1, "kind": "event", "at": 1.0, "body": body}]}).encode()
    w, parsed = parse(FakeMessage("bl/v1/site/s1/outbox", payload))
    if _has_unstorable(body):
        assert w.stats.malformed == 1 and not parsed.batch.records
    else:
        assert w.stats.accepted == 1 and json.loads(parsed.batch.record_rows().body[0]) == body


def test_storable_returns_the_message() -> None:
    state = p.State(status="online", version="1.0", kernels={"g711": "cython"})
    assert storable(state) is state


cdr_bodies = st.fixed_dictionaries({}, optional={
    k: json_values | st.integers() | st.just(10**400) for k in
    ("call_id", "from_number", "to_number", "queue", "destination", "start_time", "end_time", "disposition")})


@settings(max_examples=300, deadline=None)
@given(cdr_bodies)
def test_cdr_projection_is_total(body: dict[str, Any]) -> None:
    """The parser projects CDRs now: nothing in a body may make that raise."""
    row = cdr_projection("s1", p.Record(seq=1, kind="cdr", at=5.0, body=body))
    assert isinstance(row["start_time"], float)
    assert all(len(row[k]) <= n for k, n in (("call_id", 128), ("caller", 64), ("queue", 64), ("disposition", 16)))


def test_a_cdr_with_numbers_beyond_a_double_is_kept() -> None:
    big = "1" + "0" * 400
    w, parsed = parse(outbox(record(1, f'{{"start_time":{big},"end_time":1,"call_id":{big}}}', kind="cdr")))
    assert w.stats.accepted == 1
    rows = parsed.batch.record_rows()
    assert rows.cdrs[3] == [1.5]  # start_time falls back to the record's time
