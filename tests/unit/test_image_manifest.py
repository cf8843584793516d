"""The bundle manifest parser and the compatibility rules (pure, no I/O)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from images.manifest import (
    FileEntry,
    Manifest,
    ManifestError,
    Refused,
    check_compatible,
    parse_manifest,
)

SHA = "ab" * 32


def manifest(**kw: Any) -> Manifest:
    base: dict[str, Any] = dict(
        version="1.2.0", build_time=1_700_000_000, platform="linux_x86_64", python="cp311",
        config_schema=1, min_upgrade_from="1.0.0",
        files=(FileEntry("files/prompts/welcome.wav", SHA, 10), FileEntry("wheels/branchline-1.2.0.whl", SHA, 5)),
    )
    base.update(kw)
    return Manifest(**base)


def test_round_trip_is_canonical() -> None:
    m = manifest()
    data = m.to_bytes()
    assert parse_manifest(data) == m
    assert data == json.dumps(json.loads(data), sort_keys=True, separators=(",", ":")).encode()


@pytest.mark.parametrize(
    ("mutate", "field"),
    [
        (lambda d: d.update(extra=1), "extra"),
        (lambda d: d.pop("version"), "version"),
        (lambda d: d.update(version="one"), "version"),
        (lambda d: d.update(format=2), "format"),
        (lambda d: d.update(product="other"), "product"),
        (lambda d: d.update(build_time=-1), "build_time"),
        (lambda d: d.update(build_time=True), "build_time"),
        (lambda d: d.update(python="py3"), "python"),
        (lambda d: d["files"][0].update(path="../etc/passwd"), "files[0].path"),
        (lambda d: d["files"][0].update(path="/abs/x"), "files[0].path"),
        (lambda d: d["files"][0].update(path="files/a/../../x"), "files[0].path"),
        (lambda d: d["files"][0].update(path="venv/bin/python"), "files[0].path"),
        (lambda d: d["files"][0].update(sha256="AB" * 32), "files[0].sha256"),
        (lambda d: d["files"][1].update(path=d["files"][0]["path"]), "files[1].path"),
        (lambda d: d["files"][0].update(size="10"), "files[0].size"),
    ],
)
def test_bad_fields_are_named(mutate: Any, field: str) -> None:
    raw = manifest().to_dict()
    mutate(raw)
    with pytest.raises(ManifestError) as info:
        parse_manifest(json.dumps(raw).encode())
    assert info.value.field == field


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=400))
def test_arbitrary_bytes_never_crash(data: bytes) -> None:
    try:
        parse_manifest(data)
    except ManifestError:
        pass


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=20,
)


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(st.sampled_from(sorted(manifest().to_dict())), json_values, max_size=9))
def test_arbitrary_json_objects_never_crash(overrides: dict[str, Any]) -> None:
    raw = {**manifest().to_dict(), **overrides}
    try:
        parse_manifest(json.dumps(raw).encode())
    except ManifestError:
        pass


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.from_regex(r"(wheels|files)/[a-z0-9_.-]{1,12}(/[a-z0-9_]{1,8})?", fullmatch=True)
             .filter(lambda p: not any(part in (".", "..") for part in p.split("/"))),
             unique=True, max_size=8),
    st.from_regex(r"[0-9]{1,3}\.[0-9]{1,3}\.[0-9]{1,3}", fullmatch=True),
)
def test_valid_manifests_round_trip(paths: list[str], version: str) -> None:
    m = manifest(version=version, files=tuple(sorted((FileEntry(p, SHA, 1) for p in paths), key=lambda f: f.path)))
    assert parse_manifest(m.to_bytes()) == m


def test_compatibility_rules() -> None:
    m = manifest()
    check_compatible(m, running=None, platform="linux_x86_64", python="cp311")
    check_compatible(m, running="1.1.0", platform="linux_x86_64", python="cp311")
    cases = [
        (dict(running="1.1.0", platform="linux_aarch64", python="cp311"), "platform"),
        (dict(running="1.1.0", platform="linux_x86_64", python="cp312"), "python"),
        (dict(running="0.9.0", platform="linux_x86_64", python="cp311"), "min_upgrade_from"),
        (dict(running="1.3.0", platform="linux_x86_64", python="cp311"), "downgrade"),
    ]
    for kwargs, check in cases:
        with pytest.raises(Refused) as info:
            check_compatible(m, **kwargs)  # type: ignore[arg-type]
        assert info.value.check == check
    check_compatible(m, running="1.3.0", platform="linux_x86_64", python="cp311", allow_downgrade=True)
