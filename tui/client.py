"""The console's side of the control API: httpx over the edge's unix socket.

Every failure is an :class:`EdgeError` with the API's reason (``error``, ``field``,
``detail``); when the edge cannot be reached at all it is :class:`EdgeUnavailable`, which
the console shows as "disconnected, retrying".
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import httpx

__all__ = ["EdgeClient", "EdgeError", "EdgeUnavailable"]

BASE_URL = "http://edge"


class EdgeError(Exception):
    """The edge refused a request (``status`` 4xx/5xx) or could not be reached (0)."""

    def __init__(self, status: int, message: str, field: str | None = None,
                 detail: list[dict[str, Any]] | None = None) -> None:  # fmt: skip
        super().__init__(f"{field}: {message}" if field else message)
        self.status = status
        self.message = message
        self.field = field
        self.detail = detail or []

    def problems(self) -> list[tuple[str, str]]:
        """Every bad field as ``(path, reason)`` (just the one when there is no detail)."""
        if self.detail:
            return [(str(d.get("field") or ""), str(d.get("message") or "")) for d in self.detail]
        return [(self.field or "", self.message)]


class EdgeUnavailable(EdgeError):
    """No answer on the socket: the edge is not running, or restarting."""

    def __init__(self, message: str) -> None:
        super().__init__(0, message)


def _error(response: httpx.Response) -> EdgeError:
    try:
        body = response.json()
    except ValueError:
        body = {}
    if not isinstance(body, dict):
        body = {}
    message = str(body.get("error") or body.get("detail") or response.reason_phrase or response.status_code)
    return EdgeError(response.status_code, message, body.get("field"), body.get("detail") if
                     isinstance(body.get("detail"), list) else None)  # fmt: skip


class EdgeClient:
    """Requests to one edge; ``async with`` or :meth:`aclose` to release the socket."""

    def __init__(self, socket_path: str, *, timeout_s: float = 10.0) -> None:
        self.socket_path = socket_path
        self.timeout_s = timeout_s
        self._http = self._client(httpx.Timeout(timeout_s))

    def _client(self, timeout: httpx.Timeout) -> httpx.AsyncClient:
        transport = httpx.AsyncHTTPTransport(uds=self.socket_path)
        return httpx.AsyncClient(transport=transport, base_url=BASE_URL, timeout=timeout)

    async def __aenter__(self) -> EdgeClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    async def request(self, method: str, path: str, *, json_body: Any = None, content: bytes | None = None,
                      headers: dict[str, str] | None = None, timeout_s: float | None = None) -> httpx.Response:  # fmt: skip
        try:
            response = await self._http.request(
                method, path, json=json_body, content=content, headers=headers,
                timeout=timeout_s if timeout_s is not None else self.timeout_s,
            )  # fmt: skip
        except (httpx.TransportError, OSError) as exc:
            raise EdgeUnavailable(f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__) from None
        if response.status_code >= 400:
            raise _error(response)
        return response

    async def get(self, path: str, **kw: Any) -> Any:
        return (await self.request("GET", path, **kw)).json()

    async def post(self, path: str, body: Any = None, **kw: Any) -> Any:
        return (await self.request("POST", path, json_body=body, **kw)).json()

    async def delete(self, path: str, **kw: Any) -> Any:
        return (await self.request("DELETE", path, **kw)).json()

    async def events(self, *, read_timeout_s: float = 60.0) -> AsyncIterator[dict[str, Any]]:
        """The edge's event stream, one dict per ``data:`` line, until the stream ends
        (the edge stops) or fails (:class:`EdgeUnavailable`). The first item is
        ``{"type": "subscribed"}`` once the edge has accepted the subscription."""
        timeout = httpx.Timeout(self.timeout_s, read=read_timeout_s)
        async with self._client(timeout) as http:
            try:
                async with http.stream("GET", "/v1/events") as response:
                    if response.status_code >= 400:
                        await response.aread()
                        raise _error(response)
                    yield {"type": "subscribed"}
                    async for line in response.aiter_lines():
                        if line.startswith("data:"):
                            try:
                                event = json.loads(line[5:])
                            except ValueError:
                                continue
                            if isinstance(event, dict):
                                yield event
            except (httpx.TransportError, OSError) as exc:
                raise EdgeUnavailable(f"event stream: {type(exc).__name__}: {exc}") from None
