"""``create_app``: the NOC API and dashboard on a fleet store.

Errors are ``{"error": "...", "field": ...}`` with a 4xx status, like the edge's control
API: invalid input 422 with ``field`` naming the first bad parameter or body field and
``detail`` listing them all; no or a bad token 401; too low a role 403; unknown site,
alarm or version 404; a conflict (an alarm acknowledged already) 409; config push
without a publisher configured 503.

``fleet.reports.router`` (an ``APIRouter`` with its own ``/api/v1/reports`` prefix) is
included, behind the viewer role, when that module exists; its handlers find the store
at ``request.app.state.store``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fastapi import Depends, FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException

from fleet.api.auth import Role, TokenRegistry, require
from fleet.api.events import EventHub
from fleet.api.models import ErrorOut
from fleet.configs import ConfigStore
from fleet.store import FleetStore

log = logging.getLogger(__name__)

API_PREFIX = "/api/v1"
DASHBOARD_DIR = Path(__file__).resolve().parent.parent / "dashboard"


@dataclass
class ApiContext:
    """What the handlers share, at ``request.app.state.ctx``."""

    store: FleetStore
    configs: ConfigStore | None
    """Config writes (push, rollback); None: read-only, writes answer 503."""
    tokens: TokenRegistry
    hub: EventHub
    clock: Callable[[], float] = field(default=time.time)


def _field(loc: tuple[Any, ...] | list[Any]) -> str:
    parts = [str(p) for p in loc]
    if parts and parts[0] in ("body", "query", "path", "header"):
        parts = parts[1:] or parts
    return ".".join(parts)


def _error(status: int, message: str, field: str | None = None, **extra: Any) -> JSONResponse:
    body: dict[str, Any] = {"error": message}
    if field is not None:
        body["field"] = field
    body.update(extra)
    return JSONResponse(body, status_code=status)


def create_app(
    store: FleetStore,
    *,
    configs: ConfigStore | None = None,
    tokens: TokenRegistry | None = None,
    poll_interval_s: float = 1.0,
    clock: Callable[[], float] = time.time,
    dashboard_dir: Path | None = DASHBOARD_DIR,
) -> FastAPI:
    """The API on ``store``. ``configs`` (a :class:`fleet.configs.ConfigStore` with its
    signing key and publisher) enables config push and rollback; ``tokens`` holds the
    bearer tokens (an empty in-memory registry by default: then nobody gets in until
    one is issued). ``poll_interval_s`` is how often the event stream reads the store."""
    from fleet.api import alarms, cdrs, config_routes, events, prometheus, rollouts, sites
    from fleet.api import tokens as token_routes

    hub = EventHub(store, poll_interval_s=poll_interval_s)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        yield
        await hub.close()

    app = FastAPI(
        title="Branchline fleet NOC API",
        version="1",
        description="Sites, metrics, alarms, configuration, CDRs and reports of the Branchline fleet. "
                    "Every call needs `Authorization: Bearer <token>`; roles viewer < operator < admin.",
        lifespan=lifespan,
        responses={
            401: {"model": ErrorOut, "description": "no token, or an unknown one"},
            403: {"model": ErrorOut, "description": "the token's role is too low"},
            422: {"model": ErrorOut, "description": "invalid input; `field` names the first bad one"},
        },
    )
    ctx = ApiContext(store, configs, tokens if tokens is not None else TokenRegistry(), hub, clock)
    app.state.ctx = ctx
    app.state.store = store

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [
            {"field": _field(e.get("loc", ())), "message": str(e.get("msg", "")), "type": e.get("type", "")}
            for e in exc.errors()
        ]
        first = errors[0] if errors else {"field": None, "message": "invalid request"}
        return _error(422, f"{first['field']}: {first['message']}" if first["field"] else str(first["message"]),
                      first["field"], detail=jsonable_encoder(errors))

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        response = _error(exc.status_code, str(exc.detail), getattr(exc, "field", None),
                          **getattr(exc, "extra", {}))
        for name, value in (exc.headers or {}).items():
            response.headers[name] = value
        return response

    for module in (sites, alarms, config_routes, cdrs, token_routes, events, rollouts):
        app.include_router(module.router, prefix=API_PREFIX)
    app.include_router(prometheus.router)
    _include_reports(app)

    if dashboard_dir is not None and dashboard_dir.is_dir():
        app.mount("/static", StaticFiles(directory=dashboard_dir), name="static")
        index = dashboard_dir / "index.html"

        @app.get("/", include_in_schema=False)
        async def dashboard() -> FileResponse:
            return FileResponse(index, headers={"Cache-Control": "no-cache"})

    return app


def _include_reports(app: FastAPI) -> None:
    try:
        from fleet.reports import router as reports_router
    except ImportError:
        return
    except Exception:  # a broken reports module must not take the NOC API down with it
        log.exception("fleet.reports could not be imported; the API runs without reports")
        return
    # the router carries its own /api/v1/reports prefix
    app.include_router(reports_router, dependencies=[Depends(require(Role.viewer))])
