"""Shared fixtures. Real peers: sipp and the edge daemon from tests/sipp.py; mosquitto and
a throwaway PostgreSQL database from tests/brokers.py."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from tests.brokers import Mosquitto, postgres_url
from tests.sipp import EdgeProcess, Sipp, deep_merge, default_edge_config, sipp_binary


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """The fleet store's URL: a SQLite file, then a throwaway PostgreSQL database (the
    PostgreSQL case skips when no server answers)."""
    if request.param == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path}/fleet.db"
        return
    with postgres_url() as url:
        if url is None:
            pytest.skip("no PostgreSQL server")
        yield url


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Mosquitto]:
    """A private mosquitto on a free port, stopped at the end (``.restart()`` in between)."""
    with Mosquitto(tmp_path / "mosquitto") as mq:
        yield mq


@pytest.fixture
def sipp_bin() -> str:
    """Path of sipp; skips the test when it is not installed."""
    binary = sipp_binary()
    if binary is None:
        pytest.skip("sipp not installed (Debian package sip-tester; `make test` installs it)")
    return binary


@pytest.fixture
def sipp_factory(sipp_bin: str, tmp_path: Path) -> Iterator[Callable[..., Sipp]]:
    """``sipp_factory(scenario, **Sipp kwargs)`` -> an unstarted Sipp; all are stopped at teardown."""
    made: list[Sipp] = []

    def make(scenario: str | Path, **kwargs: Any) -> Sipp:
        kwargs.setdefault("sipp_bin", sipp_bin)
        sipp = Sipp(tmp_path, scenario, **kwargs)
        made.append(sipp)
        return sipp

    yield make
    for sipp in made:
        if sipp.running():
            sipp.stop(grace_s=1.0)


@pytest.fixture
def edge_factory(tmp_path: Path) -> Iterator[Callable[..., EdgeProcess]]:
    """``edge_factory(overrides={...}, start=True)`` -> a running EdgeProcess.

    ``overrides`` is deep-merged over ``default_edge_config`` (lists replace).
    Every edge still running at teardown is stopped with SIGTERM and must exit 0.
    """
    made: list[EdgeProcess] = []

    def make(
        overrides: Mapping[str, Any] | None = None,
        *,
        start: bool = True,
        ready_timeout_s: float = 15.0,
    ) -> EdgeProcess:
        workdir = tmp_path / f"edge{len(made)}"
        workdir.mkdir()
        config = deep_merge(default_edge_config(workdir), overrides or {})
        edge = EdgeProcess(workdir, config)
        made.append(edge)
        if start:
            edge.start(timeout_s=ready_timeout_s)
        return edge

    yield make
    errors = []
    for edge in made:
        if edge.running():
            try:
                edge.stop()
            except AssertionError as exc:
                errors.append(str(exc))
    if errors:
        pytest.fail("edge did not stop cleanly:\n" + "\n".join(errors))
