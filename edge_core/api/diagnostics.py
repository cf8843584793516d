"""Control-API routes for the technician's diagnostics (issue 7): OPTIONS ping, a media
test call, database, outbox and fleet checks, recent logs, a config dry run with a
rollback point, and the support bundle. Included by ``edge_core/api/http.py``; the view
is ``request.app.state.view`` and the daemon is ``view.config_control`` (its ``store``,
``telemetry``, ``reconfigure``).

* ``POST /v1/diagnostics/ping`` sends an OPTIONS from the edge's own SIP stack
  (``B2BUA.send_out_of_dialog``) to a trunk, a registered extension or ``host:port``
  and times the final response. The client transaction's owner is a marker object the
  core passes over, and the answer is read from ``tx.last_response`` by polling every
  :data:`PING_POLL_S` (that is the RTT's resolution: the core has no per-request hook).
* ``POST /v1/diagnostics/test-call`` is a media loopback inside the edge: two legs of
  the media engine send a 1 kHz tone to each other over UDP for a few seconds, and each
  leg's receive statistics give loss, jitter and an estimated MOS. It proves the engine,
  its sockets and the G.711 path; it is not a SIP call to a phone (no echo target exists
  in the dial plan yet).
* Recent logs: the telemetry client's ring when telemetry runs, else a ring this module
  adds to the root logger when it is first imported (when the API app is built).
* Secrets never leave the box: configs are :func:`~edge_core.config.changes.redacted`,
  and every file of the bundle is also scrubbed of every secret value of the running
  config (passwords, keys, credentials in URLs).
"""

from __future__ import annotations

import asyncio
import io
import json
import logging
import math
import os
import re
import shutil
import tarfile
import time
from array import array
from pathlib import Path
from typing import Any

import yaml
from fastapi import APIRouter, Request
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field

from edge_core.api.view import ApiError, EdgeView
from edge_core.config.changes import redacted, restart_fields
from edge_core.telemetry.commands import LogRing

router = APIRouter(tags=["diagnostics"])

PING_POLL_S = 0.002
TONE_HZ = 1000.0
MAX_BODY_BYTES = 4 * 1024 * 1024
LOG_LINES = 2000

_fallback_logs = LogRing(LOG_LINES)
if not any(isinstance(h, LogRing) for h in logging.getLogger().handlers):
    logging.getLogger().addHandler(_fallback_logs)


class PingBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    target: str = Field(min_length=1, max_length=255)
    """A trunk name, a registered extension, or ``host:port`` (UDP)."""
    timeout_s: float = Field(default=3.0, gt=0, le=32)


class TestCallBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    seconds: float = Field(default=2.0, ge=0.5, le=10)
    codec: str = Field(default="PCMU", pattern="^(PCMU|PCMA)$")


class BundleBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    results: list[dict[str, Any]] = Field(default_factory=list, max_length=200)
    """Diagnostics the console ran, kept in the bundle as they are (scrubbed)."""


def _view(request: Request) -> EdgeView:
    return request.app.state.view  # type: ignore[no-any-return]


def _daemon(view: EdgeView, what: str) -> Any:
    if view.config_control is None:
        raise ApiError(503, f"{what} is not available on this edge")
    return view.config_control


class _DiagnosticProbe:
    """Owner of a diagnostic OPTIONS transaction: neither a call nor a keepalive, so
    the core and the B2BUA leave its response alone."""

    __slots__ = ()


# -- OPTIONS ping -------------------------------------------------------------------------
def _resolve(view: EdgeView, target: str) -> dict[str, Any]:
    core = view.core
    trunk = core.trunks.trunks.get(target)
    if trunk is not None:
        t = trunk.config
        return {"kind": "trunk", "uri": f"sip:{t.host}:{t.port}", "addr": (t.host, t.port),
                "transport": t.transport}  # fmt: skip
    bindings = core.registrar.lookup(target, view.wall())
    if bindings:
        b = bindings[0]
        return {"kind": "phone", "uri": b.contact, "addr": tuple(b.source), "transport": b.transport}
    match = re.fullmatch(r"\[?([\w.:-]+?)\]?:(\d{1,5})", target)
    if match and 0 < int(match[2]) < 65536:
        host, port = match[1], int(match[2])
        return {"kind": "address", "uri": f"sip:{host}:{port}", "addr": (host, port), "transport": "udp"}
    raise ApiError(404, f"{target!r} is no trunk, no registered extension and no host:port", "target")


@router.post("/v1/diagnostics/ping", summary="OPTIONS to a trunk, a registered phone or host:port, with RTT")
async def ping(body: PingBody, request: Request) -> dict[str, Any]:
    view = _view(request)
    dest = _resolve(view, body.target)
    loop = asyncio.get_running_loop()
    sent = loop.time()
    tx = view.core.b2bua.send_out_of_dialog(
        "OPTIONS", dest["uri"], dest["addr"], dest["transport"], "diagnostics", view.endpoint.loop.time(),
        headers=[("Accept", "application/sdp")],
    )  # fmt: skip
    tx.owner = _DiagnosticProbe()
    view.endpoint.step()
    result = {"target": body.target, "kind": dest["kind"], "uri": dest["uri"],
              "addr": f"{dest['transport']}:{dest['addr'][0]}:{dest['addr'][1]}"}  # fmt: skip
    deadline = sent + body.timeout_s
    while loop.time() < deadline:
        resp = tx.last_response
        if resp is not None and resp.status >= 200:
            rtt = (loop.time() - sent) * 1000.0
            return {**result, "ok": resp.status < 300, "status": resp.status, "reason": resp.reason,
                    "rtt_ms": round(rtt, 1), "rtt_resolution_ms": PING_POLL_S * 1000}  # fmt: skip
        if tx.state.value == "Terminated":
            break
        await asyncio.sleep(PING_POLL_S)
    return {**result, "ok": False, "status": None, "reason": f"no answer within {body.timeout_s:g} s",
            "rtt_ms": None}  # fmt: skip


# -- media test call ----------------------------------------------------------------------
def _tone(seconds: float) -> bytes:
    step = 2 * math.pi * TONE_HZ / 8000
    return array("h", (int(8000 * math.sin(step * i)) for i in range(int(8000 * seconds)))).tobytes()


@router.post("/v1/diagnostics/test-call", summary="Media loopback: a tone between two engine legs, loss/jitter/MOS")
async def test_call(body: TestCallBody, request: Request) -> dict[str, Any]:
    from cython_ext.rtp import mos_estimate

    view = _view(request)
    media = view.media
    pt = 8 if body.codec == "PCMA" else 0
    legs = []
    try:
        for _ in range(2):
            legs.append(media.allocate_leg())
        a, b = legs
        for leg, peer in ((a, b), (b, a)):
            media.set_codec(leg, pt, None)
            media.set_remote(leg, peer.local_host, peer.local_port)
        pcm = await asyncio.to_thread(_tone, body.seconds)
        media.play(a, pcm)
        media.play(b, pcm)
        await asyncio.sleep(body.seconds + 0.3)  # the engine paces 20 ms packets in real time
        expected = int(body.seconds * 50)
        report = []
        for name, leg in (("b->a", a), ("a->b", b)):
            s = media.refresh(leg)
            received, lost = int(s["packets_in"]), max(0, int(s.get("lost", 0)))
            missing = max(lost, expected - received)
            loss = missing / expected if expected else 0.0
            jitter = float(s.get("jitter_ms") or 0.0)
            report.append({"direction": name, "sent": expected, "received": received, "lost": missing,
                           "loss_pct": round(100 * loss, 2), "jitter_ms": round(jitter, 3),
                           "mos": round(mos_estimate(codec=body.codec, loss_fraction=min(1.0, loss),
                                                     jitter_ms=jitter), 2)})  # fmt: skip
    except Exception as exc:  # MediaError: no ports, engine stopped
        raise ApiError(503, f"media test failed: {exc}") from None
    finally:
        for leg in legs:
            media.release(leg)
    worst = min(r["mos"] for r in report)
    return {"ok": worst >= 3.6 and all(r["received"] for r in report), "kind": "media-loopback",
            "codec": body.codec, "seconds": body.seconds, "mos": worst, "legs": report,
            "implementation": media.implementation}  # fmt: skip


# -- health checks ------------------------------------------------------------------------
async def database_check(view: EdgeView) -> dict[str, Any]:
    daemon = _daemon(view, "the store")
    store = getattr(daemon, "store", None)
    if store is None:
        raise ApiError(503, "the store is not open")
    integrity = await store.integrity_check()
    path = Path(store.path)
    wal = Path(f"{path}-wal")
    disk = shutil.disk_usage(path.parent)
    return {"ok": integrity == ["ok"], "integrity": integrity[:20], "path": str(path),
            "size_bytes": path.stat().st_size if path.exists() else 0,
            "wal_bytes": wal.stat().st_size if wal.exists() else 0,
            "schema_version": await store.schema_version(), "journal_mode": await store.journal_mode(),
            "disk_free_bytes": disk.free, "disk_total_bytes": disk.total,
            "disk_free_pct": round(100 * disk.free / disk.total, 1) if disk.total else None}  # fmt: skip


async def outbox_check(view: EdgeView) -> dict[str, Any]:
    daemon = _daemon(view, "the outbox")
    store = getattr(daemon, "store", None)
    if store is None:
        raise ApiError(503, "the store is not open")
    telemetry = getattr(daemon, "telemetry", None)
    drain = dict(telemetry.drain.counters) if telemetry is not None else {}
    backlog = await store.outbox_backlog()
    return {"ok": backlog == 0 or telemetry is not None, "backlog": backlog,
            "last_seq": await store.outbox_last_seq(), "draining": telemetry is not None, "drain": drain}  # fmt: skip


async def fleet_check(view: EdgeView, timeout_s: float = 3.0) -> dict[str, Any]:
    from edge_core.config.schema import broker_address

    settings = view.config.telemetry
    telemetry = getattr(view.config_control, "telemetry", None)
    out: dict[str, Any] = {"enabled": bool(settings.enabled), "site": settings.site_id or view.config.site.id}
    try:
        host, port = broker_address(settings.broker_url)
    except ValueError as exc:
        return {**out, "ok": False, "error": str(exc)}
    out["broker"] = f"{host}:{port}"
    out["connected"] = bool(telemetry is not None and telemetry.connected.is_set())
    out["counters"] = dict(telemetry.counters) if telemetry is not None else {}
    loop = asyncio.get_running_loop()
    start = loop.time()
    try:
        _, writer = await asyncio.wait_for(asyncio.open_connection(host, port), timeout_s)
        out["tcp_reachable"], out["connect_ms"] = True, round((loop.time() - start) * 1000, 1)
        writer.close()
    except (OSError, TimeoutError) as exc:
        out["tcp_reachable"], out["error"] = False, str(exc) or type(exc).__name__
    out["ok"] = out["connected"] if settings.enabled else out["tcp_reachable"]
    return out


@router.get("/v1/diagnostics/database", summary="SQLite integrity check, file sizes, free disk")
async def database(request: Request) -> dict[str, Any]:
    return await database_check(_view(request))


@router.get("/v1/diagnostics/outbox", summary="Outbox backlog (records the fleet has not acknowledged)")
async def outbox(request: Request) -> dict[str, Any]:
    return await outbox_check(_view(request))


@router.get("/v1/diagnostics/fleet", summary="MQTT session state and a TCP reachability probe of the broker")
async def fleet(request: Request) -> dict[str, Any]:
    return await fleet_check(_view(request))


def recent_logs(view: EdgeView, lines: int) -> list[str]:
    telemetry = getattr(view.config_control, "telemetry", None)
    ring = telemetry.logs if telemetry is not None and telemetry.logs is not None else _fallback_logs
    return ring.last(lines)


@router.get("/v1/diagnostics/logs", summary="The edge's recent log lines")
async def logs(request: Request, lines: int = 200) -> dict[str, Any]:
    return {"lines": recent_logs(_view(request), max(0, min(lines, LOG_LINES)))}


# -- the config: dry run and rollback point -------------------------------------------------
async def _body_data(request: Request) -> Any:
    raw = await request.body()
    if len(raw) > MAX_BODY_BYTES:
        raise ApiError(413, f"a site config is at most {MAX_BODY_BYTES} bytes")
    try:
        return yaml.safe_load(raw.decode("utf-8"))
    except (UnicodeDecodeError, yaml.YAMLError) as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else "(body)"
        raise ApiError(422, f"not YAML or JSON: {getattr(exc, 'problem', None) or exc}", where) from None


def _secret_paths(old: Any, new: Any, path: str = "") -> list[str]:
    """Paths of secret fields whose value differs (the redacted diff cannot show them)."""
    if isinstance(old, dict) and isinstance(new, dict):
        out = []
        for key in sorted(set(old) | set(new)):
            sub = f"{path}.{key}" if path else str(key)
            if redacted({key: 1}) == {key: "***"}:
                if old.get(key) != new.get(key):
                    out.append(sub)
            else:
                out += _secret_paths(old.get(key), new.get(key), sub)
        return out
    if isinstance(old, list) and isinstance(new, list):
        return [p for i, (o, n) in enumerate(zip(old, new, strict=False)) for p in _secret_paths(o, n, f"{path}[{i}]")]
    return []


@router.post("/v1/diagnostics/config-check", summary="Validate a site config (YAML or JSON) without applying it")
async def config_check(request: Request) -> dict[str, Any]:
    """Nothing changes: the problems (path, reason), or the normalized config (secrets
    redacted, for a diff against ``GET /v1/config``) and what would wait for a restart.
    Prompts are checked when the config is applied (they may be generated then)."""
    from edge_core.config.schema import ConfigError, parse_config

    view = _view(request)
    data = await _body_data(request)
    try:
        new = parse_config(data, "config-check")
        if new.site.id != view.config.site.id:
            raise ConfigError("config-check", [("site.id", f"is {view.config.site.id!r} on this edge and cannot change while it runs")])
    except ConfigError as exc:
        return {"valid": False, "problems": [{"field": p, "message": m} for p, m in exc.problems]}
    old_raw, new_raw = view.config.model_dump(mode="json"), new.model_dump(mode="json")
    return {"valid": True, "problems": [], "config": redacted(new_raw),
            "restart_fields": restart_fields(view.config, new, contact_center_swappable=True),
            "secrets_changed": _secret_paths(old_raw, new_raw)}  # fmt: skip


@router.post("/v1/diagnostics/config-checkpoint", summary="Keep the running config as the rollback point")
async def config_checkpoint(request: Request) -> dict[str, Any]:
    """The edge keeps only the applied config, and ``GET /v1/config`` is redacted, so the
    console asks the edge to remember the running one (in memory, secrets included)
    before it applies a new one. Lost when the edge restarts."""
    view = _view(request)
    info = view.config_info()
    request.app.state.config_checkpoint = {"config": view.config.model_dump(mode="json"),
                                           "version": info.get("version"), "origin": info.get("origin"),
                                           "saved_at": time.time()}  # fmt: skip
    return {k: v for k, v in request.app.state.config_checkpoint.items() if k != "config"}


@router.get("/v1/diagnostics/config-checkpoint", summary="The rollback point, if any (without the config)")
async def get_checkpoint(request: Request) -> dict[str, Any]:
    point = getattr(request.app.state, "config_checkpoint", None)
    if point is None:
        return {"saved": False}
    return {"saved": True, **{k: v for k, v in point.items() if k != "config"}}


@router.post("/v1/diagnostics/config-rollback", summary="Apply the rollback point again")
async def config_rollback(request: Request) -> dict[str, Any]:
    point = getattr(request.app.state, "config_checkpoint", None)
    if point is None:
        raise ApiError(409, "no rollback point: nothing was applied from the console since the edge started")
    view = _view(request)
    result = await view.apply_config(point["config"])
    request.app.state.config_checkpoint = None
    return {**result, "rolled_back_to": {"version": point["version"], "origin": point["origin"]}}


# -- the support bundle -----------------------------------------------------------------------
def _secret_values(data: Any) -> set[str]:
    """Every secret string of a config mapping, and credentials of URLs in it."""
    found: set[str] = set()
    if isinstance(data, dict):
        for key, value in data.items():
            if redacted({key: 1}) == {key: "***"} and isinstance(value, str) and value:
                found.add(value)
            else:
                found |= _secret_values(value)
    elif isinstance(data, list):
        for value in data:
            found |= _secret_values(value)
    elif isinstance(data, str):
        for match in re.finditer(r"://([^/@\s]+)@", data):
            found.add(match[1])
    return {s for s in found if len(s) >= 3}


def _scrub(text: str, secrets: set[str]) -> str:
    for secret in sorted(secrets, key=len, reverse=True):
        text = text.replace(secret, "***")
    return re.sub(r"://[^/@\s]+@", "://***@", text)


async def _checked(name: str, check: Any) -> dict[str, Any]:
    try:
        return {"name": name, **(await check)}
    except ApiError as exc:
        return {"name": name, "ok": False, "error": exc.message}
    except Exception as exc:  # a bundle is wanted most when something is broken
        return {"name": name, "ok": False, "error": f"{type(exc).__name__}: {exc}"}


@router.post("/v1/diagnostics/bundle", summary="Support bundle (.tar.gz): config, status, logs, diagnostics; secrets redacted",
             response_class=Response, responses={200: {"content": {"application/gzip": {}}}})  # fmt: skip
async def bundle(request: Request, body: BundleBody | None = None) -> Response:
    view = _view(request)
    raw = view.config.model_dump(mode="json")
    secrets = _secret_values(raw)
    edge_checks = [await _checked("database", database_check(view)), await _checked("outbox", outbox_check(view)),
                   await _checked("fleet", fleet_check(view, 1.0))]  # fmt: skip
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    name = f"branchline-{view.config.site.id}-{stamp}"
    files = {
        "config.yaml": yaml.safe_dump({**view.config_info(), "config": redacted(raw)}, sort_keys=False),
        "status.json": json.dumps(view.status(), indent=2, default=str),
        "trunks.json": json.dumps(view.trunks(), indent=2, default=str),
        "registrations.json": json.dumps(view.registrations(), indent=2, default=str),
        "calls.json": json.dumps(view.calls(), indent=2, default=str),
        "queues.json": json.dumps({**view.queues(), **view.agents()}, indent=2, default=str),
        "logs.txt": "\n".join(recent_logs(view, LOG_LINES)) + "\n",
        "diagnostics.json": json.dumps({"edge": edge_checks, "console": redacted(body.results if body else [])},
                                       indent=2, default=str),  # fmt: skip
    }
    files["manifest.json"] = json.dumps({"site": view.config.site.id, "version": view.version, "created": stamp,
                                         "host": os.uname().nodename, "files": sorted(files),
                                         "secrets": "redacted"}, indent=2)  # fmt: skip

    def pack() -> bytes:
        out = io.BytesIO()
        with tarfile.open(fileobj=out, mode="w:gz") as tar:
            for fname, text in files.items():
                data = _scrub(text, secrets).encode()
                info = tarfile.TarInfo(f"{name}/{fname}")
                info.size, info.mtime, info.mode = len(data), int(time.time()), 0o640
                tar.addfile(info, io.BytesIO(data))
        return out.getvalue()

    data = await asyncio.to_thread(pack)
    return Response(data, media_type="application/gzip",
                    headers={"Content-Disposition": f'attachment; filename="{name}.tar.gz"'})  # fmt: skip
