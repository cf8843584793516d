"""The control API over HTTP/JSON: FastAPI routes on an :class:`EdgeView`, served by
uvicorn on a unix socket, on the daemon's own loop (no thread, no second loop).

Every handler is ``async def`` on purpose: a plain ``def`` handler would run in a
worker thread and touch the SIP stack off its loop.

Errors are ``{"error": "...", "field": ...}`` with a 4xx status: unknown agent or call
404, a transition the agent's state does not allow 409, invalid input 422 (``field``
is the path of the first bad field, ``detail`` lists them all). The event stream is
Server-Sent Events, one ``data: {json}`` per event, with a comment line as keepalive.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import socket
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Annotated, Any

import uvicorn
import yaml
from fastapi import Body, FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

from edge_core.api.view import DEFAULT_PAUSE_REASON, ApiError, EdgeView

__all__ = ["ApiServer", "create_app", "serve"]

SOCKET_MODE = 0o660  # the API can hang up calls: owner and group only
START_TIMEOUT_S = 5.0
MAX_CONFIG_BYTES = 4 * 1024 * 1024


class PauseBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    reason: str = Field(default=DEFAULT_PAUSE_REASON, min_length=1, max_length=64)
    """Why the agent is paused (shown on the wallboard and in the event)."""


class DrillBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    seconds: float = Field(default=60.0, gt=0, le=86400)
    """How long survivable mode is forced; the WAN decides again afterwards."""


class MaintenanceBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    on: bool
    """On: new calls get 503 while calls in progress finish; off: calls are taken again."""
    reason: str = Field(default="technician", min_length=1, max_length=120)


class LoginBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    extension: str = Field(pattern=r"^[0-9*#+]{1,32}$")
    """The extension the agent takes calls at (one of the site's extensions)."""


def _error(status: int, message: str, field: str | None = None, **extra: Any) -> JSONResponse:
    return JSONResponse({"error": message, "field": field, **extra}, status_code=status)


def _field(loc: tuple[Any, ...] | list[Any]) -> str:
    return ".".join(str(part) for part in loc)


def create_app(view: EdgeView, *, keepalive_s: float = 15.0) -> FastAPI:
    """The API application on ``view``; ``keepalive_s`` paces the SSE comment lines."""
    app = FastAPI(
        title="Branchline edge control API",
        version=view.version,
        description="Local control of one edge: status, calls, registrations, queues, agents, events.",
    )
    app.state.view = view
    from edge_core.api import diagnostics, hardware, software

    app.include_router(hardware.router)
    app.include_router(diagnostics.router)
    app.include_router(software.router)

    @app.exception_handler(ApiError)
    async def _api_error(request: Request, exc: ApiError) -> JSONResponse:
        if exc.detail is not None:
            return _error(exc.status, exc.message, exc.field, detail=exc.detail)
        return _error(exc.status, exc.message, exc.field)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [
            {
                "field": _field(e.get("loc", ())),
                "message": e.get("msg", ""),
                "type": e.get("type", ""),
            }
            for e in exc.errors()
        ]
        message = str(errors[0]["message"]) if errors else "invalid request"
        field = str(errors[0]["field"]) if errors else None
        return _error(422, message, field, detail=jsonable_encoder(errors))

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        response = _error(exc.status_code, str(exc.detail))
        for name, value in (exc.headers or {}).items():
            response.headers[name] = value
        return response

    @app.get("/v1/status", summary="Site, version, uptime, kernels, media and counts")
    async def status() -> dict[str, Any]:
        return view.status()

    @app.post("/v1/maintenance", summary="Maintenance mode: refuse new calls, let calls finish")
    async def maintenance(body: MaintenanceBody) -> dict[str, Any]:
        return view.set_maintenance(body.on, body.reason)

    @app.get("/v1/trunks", summary="Trunk health (keepalive, RTT, failures, calls) and the mode")
    async def trunks() -> dict[str, Any]:
        return view.trunks()

    @app.post("/v1/drill", summary="Force survivable mode for a while (a technician's drill)")
    async def drill(body: DrillBody) -> dict[str, Any]:
        return view.drill(body.seconds)

    @app.delete("/v1/drill", summary="End the survivable drill now")
    async def end_drill() -> dict[str, Any]:
        return view.drill(None)

    @app.get("/v1/calls", summary="Active calls with their legs")
    async def calls() -> dict[str, Any]:
        return view.calls()

    @app.delete("/v1/calls/{call_id}", summary="Hang up an answered call (cause operator)")
    async def hangup(call_id: str) -> dict[str, Any]:
        return view.hangup(call_id)

    @app.get("/v1/registrations", summary="Live registrations of the site's extensions")
    async def registrations() -> dict[str, Any]:
        return view.registrations()

    @app.get("/v1/queues", summary="Live statistics per queue")
    async def queues() -> dict[str, Any]:
        return view.queues()

    @app.get("/v1/agents", summary="Agents: state, reason, time in state, calls, occupancy")
    async def agents() -> dict[str, Any]:
        return view.agents()

    @app.post("/v1/agents/{agent_id}/pause", summary="Pause an agent")
    async def pause(
        agent_id: str, body: Annotated[PauseBody | None, Body()] = None
    ) -> dict[str, Any]:
        reason = body.reason if body is not None else DEFAULT_PAUSE_REASON
        return view.agent_action(agent_id, "pause", reason=reason)

    @app.post("/v1/agents/{agent_id}/unpause", summary="Make a paused agent available")
    async def unpause(agent_id: str) -> dict[str, Any]:
        return view.agent_action(agent_id, "unpause")

    @app.post("/v1/agents/{agent_id}/logout", summary="Log an agent out")
    async def logout(agent_id: str) -> dict[str, Any]:
        return view.agent_action(agent_id, "logout")

    @app.post("/v1/agents/{agent_id}/login", summary="Log an agent in at an extension")
    async def login(agent_id: str, body: LoginBody) -> dict[str, Any]:
        return view.agent_action(agent_id, "login", extension=body.extension)

    @app.get("/v1/config", summary="The running site config: version, origin, secrets redacted")
    async def get_config() -> dict[str, Any]:
        return view.config_info()

    @app.post(
        "/v1/config",
        summary="Validate and apply a site config (YAML or JSON body); 422 lists every bad field",
        openapi_extra={"requestBody": {"required": True, "content": {
            "application/yaml": {"schema": {"type": "object"}},
            "application/json": {"schema": {"type": "object"}}}}},
    )  # fmt: skip
    async def post_config(request: Request) -> dict[str, Any]:
        raw = await request.body()
        if len(raw) > MAX_CONFIG_BYTES:
            raise ApiError(413, f"a site config is at most {MAX_CONFIG_BYTES} bytes")
        try:
            data = yaml.safe_load(raw.decode("utf-8"))  # JSON is YAML too
        except (UnicodeDecodeError, yaml.YAMLError) as exc:
            mark = getattr(exc, "problem_mark", None)
            where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else "(body)"
            raise ApiError(422, f"not YAML or JSON: {getattr(exc, 'problem', None) or exc}", where) from None
        return await view.apply_config(data)

    @app.get(
        "/v1/events",
        summary="Server-Sent Events: calls, agents, registrations, media timeouts, stats",
        response_class=StreamingResponse,
        responses={200: {"content": {"text/event-stream": {}}}},
    )
    async def events() -> StreamingResponse:
        queue = view.subscribe()

        async def stream() -> AsyncIterator[str]:
            try:
                yield ": subscribed\n\n"
                while True:
                    try:
                        event = await asyncio.wait_for(queue.get(), keepalive_s)
                    except TimeoutError:
                        yield ": keepalive\n\n"
                        continue
                    yield f"data: {json.dumps(event, separators=(',', ':'))}\n\n"
                    if event.get("type") == "closed":
                        return
            finally:  # the client went away (the response task is cancelled) or we closed
                view.unsubscribe(queue)

        return StreamingResponse(
            stream(), media_type="text/event-stream", headers={"Cache-Control": "no-cache"}
        )

    return app


class ApiServer(uvicorn.Server):
    """uvicorn's server as a task on the running loop. It leaves the process's signals
    alone (the daemon owns SIGTERM/SIGINT and stops it with :meth:`stop`)."""

    def __init__(self, config: uvicorn.Config, view: EdgeView | None) -> None:
        super().__init__(config)
        self.view = view
        self.ready = asyncio.Event()
        self.task: asyncio.Task[None] | None = None

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        if self.config.uds:
            os.chmod(self.config.uds, SOCKET_MODE)
        self.ready.set()

    async def stop(self) -> None:
        """End the event streams, close the socket, wait for the server task."""
        if self.view is not None:
            self.view.close()
        self.should_exit = True
        if self.task is not None:
            await self.task
        if self.config.uds:
            Path(self.config.uds).unlink(missing_ok=True)


def _remove_stale_socket(path: Path) -> None:
    """Remove a socket file left by a dead process; refuse one a live server answers on,
    and anything that is not a socket."""
    if not path.exists():
        return
    if not path.is_socket():
        raise FileExistsError(f"{path} exists and is not a socket; not removing it")
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        probe.connect(str(path))
    except (ConnectionRefusedError, FileNotFoundError):
        path.unlink(missing_ok=True)
        return
    finally:
        probe.close()
    raise OSError(f"{path}: another process is serving the control API there")


async def serve(app: FastAPI, path: str, *, timeout_s: float = START_TIMEOUT_S) -> ApiServer:
    """Serve ``app`` on the unix socket ``path`` from the running loop; returns once the
    socket accepts connections. Stop it with ``await server.stop()``."""
    sock_path = Path(path)
    sock_path.parent.mkdir(mode=0o750, parents=True, exist_ok=True)
    _remove_stale_socket(sock_path)
    # log_config=None: the daemon's logging stays as it is (uvicorn's loggers propagate)
    config = uvicorn.Config(app, uds=str(sock_path), loop="none", lifespan="off", log_level="warning",
                            log_config=None, access_log=False, timeout_graceful_shutdown=2)  # fmt: skip
    server = ApiServer(config, getattr(app.state, "view", None))
    server.task = task = asyncio.create_task(server.serve(), name="edge-api")
    ready = asyncio.create_task(server.ready.wait())
    try:
        done, _ = await asyncio.wait(
            {task, ready}, timeout=timeout_s, return_when=asyncio.FIRST_COMPLETED
        )
    finally:
        ready.cancel()
    if task in done:
        task.result()  # raises what made the server fail to start
        raise RuntimeError(f"control API on {path} stopped while starting")
    if not done:
        server.should_exit = True
        task.cancel()
        raise TimeoutError(f"control API on {path} did not start within {timeout_s} s")
    return server
