"""Support bundles never carry secrets: provisioning.maintain.redact / redact_text."""

from __future__ import annotations

import json

from hypothesis import given
from hypothesis import strategies as st

from provisioning.maintain import REDACTED, redact, redact_text

SECRET = st.text(alphabet=st.characters(min_codepoint=33, max_codepoint=126, exclude_characters="\"',}&"),
                 min_size=4, max_size=40)


def test_redact_walks_documents() -> None:
    doc = {"telemetry": {"username": "site-a", "password": "s3cret", "broker_url": "mqtt://x"},
           "extensions": [{"number": "1001", "password": "pw1001"}],
           "api": {"token": "", "private_key_file": "/k"}, "site": {"id": "a"}}
    out = redact(doc)
    assert out["telemetry"] == {"username": "site-a", "password": REDACTED, "broker_url": "mqtt://x"}
    assert out["extensions"] == [{"number": "1001", "password": REDACTED}]
    assert out["api"] == {"token": "", "private_key_file": REDACTED}  # empty stays visibly empty
    assert out["site"] == {"id": "a"} and doc["telemetry"]["password"] == "s3cret"  # the input is untouched


def test_redact_text_keeps_the_rest_of_the_line() -> None:
    line = "2026-11-26 connect user=site-a password=hunter22 host=x token: abc123 ok"
    assert redact_text(line) == f"2026-11-26 connect user=site-a password={REDACTED} host=x token: {REDACTED} ok"


@given(secret=SECRET, key=st.sampled_from(["password", "mqtt_password", "secret", "Token", "PSK", "passwd"]),
       style=st.sampled_from(["{k}={v}", "{k}: {v}", '"{k}": "{v}"', "'{k}': '{v}'", "{k} = {v}"]))
def test_no_secret_survives_a_log_line(secret: str, key: str, style: str) -> None:
    line = "before " + style.format(k=key, v=secret) + " after"
    assert redact_text(line) == "before " + style.format(k=key, v=REDACTED) + " after"


@given(secret=SECRET)
def test_no_secret_survives_json(secret: str) -> None:
    text = json.dumps({"ok": True, "telemetry": {"password": secret}})
    assert secret not in json.dumps(redact(json.loads(text)))
    assert secret not in redact_text(text)
