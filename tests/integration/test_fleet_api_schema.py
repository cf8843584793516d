"""Schemathesis over the NOC API's OpenAPI spec, in process (ASGI), on a filled store:
no generated request gets a 5xx, and every 2xx body matches its declared schema.

Requests carry an admin token so every operation runs past authentication (writes
included: config pushes, rollbacks, acks, token changes). The event stream is left
out: it never ends, and ``test_fleet_dashboard`` reads it through a real server.

The app runs on schemathesis' own event-loop thread, so the store it is given opens
its connections there (an engine connects lazily); the data is written beforehand by
another store on another loop, which is closed before the fuzzing starts.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.python.asgi import shutdown_lifespans
from schemathesis.specs.openapi.checks import response_schema_conformance

from fleet.api import create_app
from fleet.configs import ConfigStore, load_signing_key
from fleet.store import FleetStore
from fleet.store.engine import make_engine
from tests.brokers import postgres_url
from tests.integration.test_fleet_api import fill_fleet, make_tokens

MAX_EXAMPLES = 30
KNOWN = {"site_id": "b1", "scope": "base", "alarm_id": 1}
ADMIN: dict[str, str] = {}


def _closing(app: Any, store: FleetStore) -> Any:
    """The app, closing the store's pool on lifespan shutdown (on the loop that opened it)."""

    async def asgi(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "lifespan":
            return await app(scope, receive, send)  # type: ignore[no-any-return]

        async def on_receive() -> dict[str, Any]:
            message: dict[str, Any] = await receive()
            if message["type"] == "lifespan.shutdown":
                await store.close()
            return message

        return await app(scope, on_receive, send)  # type: ignore[no-any-return]

    return asgi


@pytest.fixture(params=["sqlite", "postgresql"])
def api_schema(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Any]:
    with postgres_url() if request.param == "postgresql" else _sqlite(tmp_path) as url:
        if url is None:
            pytest.skip("no PostgreSQL server")

        async def fill() -> None:
            store = await FleetStore.open(url)
            await fill_fleet(store)
            await store.close()

        asyncio.run(fill())
        store = FleetStore(make_engine(url))
        registry, secrets = make_tokens()
        ADMIN["Authorization"] = f"Bearer {secrets['admin']}"

        async def publish(topic: str, payload: bytes) -> None:
            return None

        configs = ConfigStore(store, load_signing_key(tmp_path / "fleet.pem", create=True), publish)
        app = _closing(create_app(store, configs=configs, tokens=registry), store)
        yield schemathesis.openapi.from_asgi("/openapi.json", app).exclude(path="/api/v1/events")
        shutdown_lifespans()


class _sqlite:
    def __init__(self, tmp_path: Path) -> None:
        self.url = f"sqlite+aiosqlite:///{tmp_path}/fleet.db"

    def __enter__(self) -> str:
        return self.url

    def __exit__(self, *exc: object) -> None:
        return None


def test_no_server_errors(api_schema: Any) -> None:
    """Valid and invalid requests (schemathesis' positive and negative modes) per operation."""
    operations = [result.ok() for result in api_schema.get_all_operations()]
    assert len(operations) > 25
    for operation in operations:
        strategies = [operation.as_strategy(GenerationMode.POSITIVE), operation.as_strategy(GenerationMode.NEGATIVE)]
        names = re.findall(r"{(\w+)}", operation.path)
        if names and all(n in KNOWN for n in names):  # also requests that reach a site that exists
            strategies.append(operation.as_strategy(GenerationMode.POSITIVE,
                                                    path_parameters={n: KNOWN[n] for n in names}))
        strategy = st.one_of(*strategies)

        @given(strategy)
        @settings(max_examples=MAX_EXAMPLES, deadline=None, derandomize=True, database=None,
                  suppress_health_check=list(HealthCheck))
        def run(case: Any) -> None:
            case.call_and_validate(headers=ADMIN, checks=[not_a_server_error, response_schema_conformance])

        run()
