"""Pieces of the NOC API that need no database: tokens and roles, operator times,
site health, CSV cells, the SSE wire format, request-body checks."""

from __future__ import annotations

import json
import stat
from datetime import UTC, datetime
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from fleet.api.auth import Role, TokenError, TokenRegistry
from fleet.api.cdrs import _cell
from fleet.api.events import format_event
from fleet.api.models import ConfigPushIn, health
from fleet.api.times import BadInput, day_bounds, local_iso, parse_time, zone
from fleet.store.rows import SiteRow


def site(**kw: object) -> SiteRow:
    base: dict[str, object] = dict(id="b1", status="online", status_at=None, last_seen=None, version="1", mode="normal",
                                   mode_since=None, config_version=None, desired_version=None,
                                   config_rejected_version=None, config_rejection="", contiguous_seq=0, region="",
                                   site_type="", active_alarms=0)
    base.update(kw)
    return SiteRow(**base)  # type: ignore[arg-type]


def test_roles_are_ordered() -> None:
    assert Role.admin.allows(Role.operator) and Role.operator.allows(Role.viewer)
    assert not Role.viewer.allows(Role.operator) and not Role.operator.allows(Role.admin)


def test_tokens_keep_only_hashes_and_persist(tmp_path: Path) -> None:
    path = tmp_path / "tokens.json"
    registry = TokenRegistry(path)
    secret = registry.issue("alice", Role.operator, created_by="test")
    assert secret.startswith("bl_") and len(secret) > 30
    assert secret not in path.read_text() and stat.S_IMODE(path.stat().st_mode) == 0o600
    again = TokenRegistry(path)
    token = again.authenticate(secret)
    assert token is not None and (token.name, token.role) == ("alice", Role.operator)
    assert again.authenticate(secret + "x") is None
    with pytest.raises(TokenError):
        again.issue("alice", Role.viewer, created_by="test")
    with pytest.raises(TokenError):
        again.issue("no spaces", Role.viewer, created_by="test")
    with pytest.raises(TokenError):
        again.issue("short", Role.viewer, created_by="test", secret="tiny")
    assert again.revoke("alice") is not None and TokenRegistry(path).list() == []


def test_health_order() -> None:
    assert health(site(status="offline", mode="survivable", active_alarms=3)) == "offline"
    assert health(site(status="unknown")) == "unknown"
    assert health(site(mode="survivable", active_alarms=1)) == "survivable"
    assert health(site(active_alarms=1)) == "alarms"
    assert health(site()) == "online"


def test_times_in_the_operators_zone() -> None:
    paris = zone("Europe/Paris")
    summer = datetime(2026, 7, 1, 7, 0, tzinfo=UTC).timestamp()
    assert parse_time("2026-07-01T09:00", paris, "since") == summer  # UTC+2 in summer
    assert parse_time("2026-07-01T09:00:00+02:00", zone(None), "since") == summer
    assert parse_time("2026-07-01", zone("UTC"), "since") == datetime(2026, 7, 1, tzinfo=UTC).timestamp()
    assert parse_time("", paris, "since") is None and parse_time(None, paris, "since") is None
    assert local_iso(summer, paris) == "2026-07-01T09:00:00+02:00"
    start, end = day_bounds("2026-10-25", paris, 0)  # autumn back: 25 hours
    assert end - start == 25 * 3600
    for bad in ("tomorrow", "2026-02-30", "nan", "1e300"):
        with pytest.raises(BadInput) as err:
            parse_time(bad, paris, "until")
        assert err.value.status_code == 422 and err.value.field == "until"
    with pytest.raises(BadInput):
        zone("Not/AZone")


@given(st.text(max_size=40))
def test_parse_time_answers_or_refuses(value: str) -> None:
    try:
        result = parse_time(value, zone("Europe/Paris"), "since")
    except BadInput as err:
        assert err.field == "since"
    else:
        assert result is None or isinstance(result, float)


def test_csv_cells_are_never_formulas() -> None:
    assert _cell("=1+2") == "'=1+2" and _cell("@SUM(A1)") == "'@SUM(A1)" and _cell("-x") == "'-x"
    assert _cell("+33612345678") == "+33612345678" and _cell("-12.5") == "-12.5"
    assert _cell("sales") == "sales" and _cell(4) == 4


def test_sse_wire_format() -> None:
    raw = format_event("site", {"id": "b1", "health": "offline"}).decode()
    assert raw.startswith("event: site\ndata: ") and raw.endswith("\n\n")
    assert json.loads(raw.split("data: ", 1)[1]) == {"id": "b1", "health": "offline"}


def test_config_body_checks_name_the_path() -> None:
    ConfigPushIn(config={"sip": {"domain": "x"}}, reason="ok")
    for config, where in (({"a": [1, float("inf")]}, "config.a[1]"), ({"a": {"b": "x\x00"}}, "config.a.b")):
        with pytest.raises(ValidationError) as err:
            ConfigPushIn(config=config, reason="r")
        assert where in str(err.value)
    with pytest.raises(ValidationError):
        ConfigPushIn(config={}, reason="")
