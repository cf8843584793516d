"""The cloud sync's masking policy (fleet/cloudsync.py ``MaskPolicy``), by example and
with hypothesis. No database: it sits with the cloud-sync tests it belongs to."""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fleet.cloudsync import MaskPolicy

numbers = st.from_regex(r"\A\+?[0-9 ()-]{0,24}\Z")
policies = st.builds(MaskPolicy, mode=st.just("keep"), keep_last=st.integers(0, 8),
                     keep_first=st.integers(0, 8), min_hidden=st.integers(1, 8))


def test_examples() -> None:
    m = MaskPolicy()
    assert m.number("+442079461234") == "+4420xxxx1234"
    assert m.number("1001") == "xxxx"  # a short number is never shown whole
    assert m.number("12345678") == "xxxx5678"
    assert m.number("") == ""
    assert m.uri("sip:+442079461234@192.0.2.10") == "sip:+4420xxxx1234@192.0.2.10"
    assert MaskPolicy("keep", keep_last=2, keep_first=0).number("+442079461234") == "+xxxxxxxxxx34"
    assert MaskPolicy("drop").number("+442079461234") == ""
    assert MaskPolicy.parse("keep:3", keep_first=0).number("+442079461234") == "+xxxxxxxxx234"
    with pytest.raises(ValueError):
        MaskPolicy("hash")
    with pytest.raises(ValueError):
        MaskPolicy.parse("shred")


def test_body_masks_number_fields_and_number_lookalikes() -> None:
    body = {"from_number": "+442079461234", "to_number": "100", "from_uri": "sip:2001@10.0.0.1",
            "note": "+1 415 555 0123", "call_id": "6f1c-22", "transfers": 2, "dtmf": "4929123412341234"}
    out = MaskPolicy().body(body)
    assert out == {"from_number": "+4420xxxx1234", "to_number": "xxx", "from_uri": "sip:xxxx@10.0.0.1",
                   "note": "+1 41x xxx 0123", "call_id": "6f1c-22", "transfers": 2, "dtmf": "4929xxxxxxxx1234"}
    assert body["from_number"] == "+442079461234"  # the input is left alone


@settings(max_examples=300, deadline=None)
@given(numbers, policies)
def test_keep_hides_enough_and_keeps_the_shape(number: str, policy: MaskPolicy) -> None:
    out = policy.number(number)
    digits = re.sub(r"\D", "", number)
    assert len(out) == len(number)
    assert [c for c in out if not c.isdigit() and c != "x"] == [c for c in number if not c.isdigit()]
    hidden = out.count("x")
    assert hidden >= min(len(digits), policy.min_hidden)
    shown = re.sub(r"\D", "", out)
    assert len(shown) <= max(0, len(digits) - policy.min_hidden)
    if digits:
        assert digits not in out
        tail = min(policy.keep_last, len(digits) - hidden)
        assert not tail or shown.endswith(digits[len(digits) - tail:])
    assert sum(c.isdigit() for c in policy.number(out)) <= len(shown)  # masking again never reveals more


@settings(max_examples=200, deadline=None)
@given(numbers.filter(bool), st.text(min_size=1, max_size=20), st.text(min_size=1, max_size=20))
def test_hash_is_stable_per_salt_and_hides_the_number(number: str, salt: str, other: str) -> None:
    a = MaskPolicy("hash", salt=salt)
    out = a.number(number)
    assert out == a.number(number) and re.fullmatch(r"h:[0-9a-f]{16}", out)
    if salt != other:
        assert out != MaskPolicy("hash", salt=other).number(number)


@settings(max_examples=200, deadline=None)
@given(st.dictionaries(st.sampled_from(["from_number", "to_number", "caller", "callee", "dtmf", "x", "y"]),
                       st.one_of(numbers, st.integers(), st.none()), max_size=7), policies)
def test_body_never_keeps_a_whole_number(body: dict[str, object], policy: MaskPolicy) -> None:
    out = policy.body(body)
    assert out.keys() == body.keys()
    for key, value in body.items():
        if isinstance(value, str) and (key != "x" and key != "y"):
            digits = re.sub(r"\D", "", value)
            assert not digits or digits not in str(out[key])
        elif not isinstance(value, str):
            assert out[key] == value
