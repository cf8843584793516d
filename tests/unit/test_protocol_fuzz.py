"""Fuzzing the v1 MQTT payload parsing (edge_core/telemetry/protocol.py): whatever
arrives on a topic, parsing returns a payload or raises ProtocolError, nothing else."""

from __future__ import annotations

import json
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given, settings
from hypothesis import strategies as st

from edge_core.telemetry import protocol

MESSAGES = [
    protocol.State, protocol.Metrics, protocol.Record, protocol.OutboxBatch, protocol.Ack,
    protocol.ConfigEnvelope, protocol.ConfigReport, protocol.Command, protocol.CommandResult,
]  # fmt: skip

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4),
    max_leaves=20,
)
# objects that look like the real payloads: the real keys, with any JSON under them
keys = st.sampled_from(["status", "version", "seq", "kind", "at", "body", "records", "upto", "site",
                        "config", "signature", "id", "op", "args", "ok", "result", "error", "gauges",
                        "queues", "trunks", "mode", "kernels", "reason"])  # fmt: skip
near_payloads = st.dictionaries(keys, json_values, max_size=8).map(lambda d: json.dumps(d).encode())
payloads = st.binary(max_size=200) | st.text(max_size=200).map(str.encode) | near_payloads


def _parse(cls: Any, data: bytes) -> None:
    try:
        parsed = cls.from_bytes(data)
    except protocol.ProtocolError:
        return
    assert isinstance(parsed, cls)
    assert cls.from_bytes(parsed.to_bytes()) == parsed  # what parses, round-trips


@pytest.mark.parametrize("cls", MESSAGES, ids=lambda c: c.__name__)
@settings(max_examples=150, deadline=None)
@given(data=payloads)
def test_garbage_payloads_raise_only_protocol_error(cls: Any, data: bytes) -> None:
    _parse(cls, data)


@settings(max_examples=300, deadline=None)
@given(name=st.text(max_size=60) | st.lists(st.sampled_from(["bl", "v1", "site", "a", "", "+", "#", "cmd"]),
                                           max_size=7).map("/".join))  # fmt: skip
def test_topic_parsing_raises_only_protocol_error(name: str) -> None:
    try:
        site, kind = protocol.parse_topic(name)
    except protocol.ProtocolError:
        return
    assert name == f"{protocol.PREFIX}/{site}/{kind}"


KEY = Ed25519PrivateKey.generate()


@settings(max_examples=200, deadline=None)
@given(data=near_payloads, signature=st.text(max_size=100), version=st.integers(min_value=1, max_value=10**6))
def test_config_verification_of_garbage_raises_only_protocol_error(data: bytes, signature: str, version: int) -> None:
    """An envelope that parses but whose signature is anything at all: ProtocolError."""
    config = json.loads(data)
    envelope = protocol.ConfigEnvelope(site="b7", version=version, config=config, signature=signature)
    with pytest.raises(protocol.ProtocolError):
        protocol.verify_config(KEY.public_key(), envelope, "b7")


def test_a_good_signature_verifies_and_a_changed_byte_does_not() -> None:
    envelope = protocol.sign_config(KEY, "b7", 3, {"site": {"id": "b7"}})
    protocol.verify_config(KEY.public_key(), envelope, "b7")
    tampered = envelope.model_copy(update={"version": 4})
    with pytest.raises(protocol.ProtocolError, match="bad signature"):
        protocol.verify_config(KEY.public_key(), tampered, "b7")
