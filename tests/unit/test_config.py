"""Site config: a bad field is named by its path, and nothing else is accepted."""

from __future__ import annotations

from pathlib import Path

import pytest

from edge_core.config import ConfigError, load_config, parse_config
from edge_core.routing.dialplan import DialPlan, ExtensionTarget, TrunkTarget

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "site.yaml"


def minimal(**extra: object) -> dict[str, object]:
    return {"site": {"id": "b1"}, **extra}


def problems(data: object) -> list[tuple[str, str]]:
    with pytest.raises(ConfigError) as info:
        parse_config(data)
    return info.value.problems


def test_example_config_is_valid() -> None:
    config = load_config(EXAMPLE)
    assert config.site.id == "branch-001"
    assert {e.number for e in config.extensions} >= {"1001", "2001"}


def test_bad_route_regex_names_its_path() -> None:
    found = problems(minimal(routes=[{"match": "^1", "extension": "1"}, {"match": "(", "extension": "x"}]))
    assert found[0][0] == "routes[1].match"
    assert "regular expression" in found[0][1]


def test_route_to_unknown_trunk_is_refused() -> None:
    found = problems(minimal(routes=[{"match": "^9", "trunk": "nope"}]))
    assert "routes[0].trunk" in found[0][1]


def test_unknown_field_is_refused_with_path() -> None:
    found = problems(minimal(sip={"udp_prot": 5060}))
    assert found == [("sip.udp_prot", "Extra inputs are not permitted")]


def test_port_out_of_range() -> None:
    found = problems(minimal(sip={"udp_port": 70000}))
    assert found[0][0] == "sip.udp_port"


def test_unknown_time_zone() -> None:
    found = problems({"site": {"id": "b1", "timezone": "Mars/Olympus"}})
    assert found[0][0] == "site.timezone"
    assert "Mars/Olympus" in found[0][1]


def test_duplicate_extension_numbers() -> None:
    ext = {"number": "1001", "password": "secret"}
    found = problems(minimal(extensions=[ext, ext]))
    assert "1001" in found[0][1]


def test_not_a_mapping() -> None:
    assert problems(["a"]) == [("(top level)", "expected a mapping of sections")]


def test_yaml_syntax_error_names_line(tmp_path: Path) -> None:
    bad = tmp_path / "site.yaml"
    bad.write_text("site:\n  id: b1\n  name: [unclosed\n")
    with pytest.raises(ConfigError) as info:
        load_config(bad)
    assert info.value.problems[0][0].startswith("line ")


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(tmp_path / "absent.yaml")
    assert info.value.problems[0][0] == "(file)"


def test_dialplan_first_match_wins_and_rewrites() -> None:
    config = parse_config(
        minimal(
            trunks=[{"name": "pstn", "host": "127.0.0.1", "port": 5090}],
            routes=[
                {"match": r"^(1\d{3})$", "extension": r"\1"},
                {"match": r"^9(\d+)$", "trunk": "pstn", "number": r"\1"},
                {"match": r"^\d+$", "trunk": "pstn"},
            ],
        )
    )
    plan = DialPlan(config)
    assert plan.route("1001") == ExtensionTarget("1001")
    target = plan.route("90123")
    assert isinstance(target, TrunkTarget) and target.number == "0123" and target.trunk.name == "pstn"
    whole = plan.route("555")
    assert isinstance(whole, TrunkTarget) and whole.number == "555"
    assert plan.route("abc") is None
    assert plan.trunk_for_source("127.0.0.1", 5090) is not None
    assert plan.trunk_for_source("127.0.0.1", 5091) is None


def test_route_rewrite_to_missing_group_is_refused() -> None:
    found = problems(minimal(routes=[{"match": r"^9\d+$", "extension": r"\1"}]))
    assert found[0][0] == "routes[0]"
    assert "group 1" in found[0][1]


@pytest.mark.parametrize("template", [r"\1", r"\g<0>", r"pre\1post", r"\g<x>-\1", "plain", ""])
def test_rewrite_matches_re_expand(template: str) -> None:
    import re

    from edge_core.routing.dialplan import Rewrite

    m = re.fullmatch(r"^9(\d+)(?P<x>x?)$", "95551234x")
    assert m is not None
    assert Rewrite(template).expand(m) == m.expand(template)
