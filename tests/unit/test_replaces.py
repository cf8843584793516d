"""The Replaces header carried in a REFER's Refer-To URI (RFC 3891, RFC 5589 §7)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from edge_core.sip.hosted_legs import _replaces


def test_escaped_replaces_gives_the_dialog_it_names() -> None:
    assert _replaces("Replaces=abc%40host%3Bto-tag%3D111%3Bfrom-tag%3D222") == ("abc@host", "111", "222")


def test_other_uri_headers_are_ignored_and_no_replaces_is_none() -> None:
    assert _replaces("") is None
    assert _replaces("Subject=hi") is None
    assert _replaces("Subject=hi&replaces=x%3Bfrom-tag%3Df%3Bto-tag%3Dt") == ("x", "t", "f")


@pytest.mark.parametrize("value", ["Replaces=", "Replaces=x%3Bto-tag%3D1", "Replaces=%3Bto-tag%3D1%3Bfrom-tag%3D2"])
def test_an_incomplete_replaces_is_refused(value: str) -> None:
    with pytest.raises(ValueError):
        _replaces(value)


@given(st.text(max_size=200))
def test_garbage_gives_none_a_triple_or_a_value_error(text: str) -> None:
    try:
        result = _replaces(text)
    except ValueError:
        return
    assert result is None or (len(result) == 3 and all(isinstance(p, str) for p in result))
