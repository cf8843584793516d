"""``branchline demo`` (what ``make demo`` runs): the edge and four simulated phones in
one process, on free ports, then the call records the edge wrote.

The example site (``examples/site.yaml``) is loaded and adjusted so the demo can run
anywhere, next to anything: SIP on ports the kernel picks, an RTP range chosen at
random among free ports, and a fresh store in a temporary directory. The daemon runs
on the same loop as the phones; the demo waits for its listening sockets through a
readiness hook rather than for a file.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import random
import socket
import sys
import tempfile
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import yaml

from edge_core.app import EdgeDaemon
from edge_core.config.schema import ConfigError, SiteConfig, parse_config
from edge_core.demo_fleet import SIMULATED_SITES as SIMULATED

EXAMPLE_CONFIG = Path(__file__).resolve().parent.parent / "examples" / "site.yaml"
DEMO_TALK_S = 2.0
DEMO_PHONES = 4
DEMO_DIGITS = "42#"  # what each caller keys in (RFC 4733); the CDRs show what the edge heard
RTP_RANGE_PORTS = 200  # 100 legs: far more than the demo's concurrent calls need
DEMO_AGENT_TALK_S = 2.0  # the agent hangs up after this long; the survey follows
DEMO_ANNOUNCE_S = 2.0  # the demo's sales queue announces the caller's position this often
DEMO_SURVEY_AFTER_S = 9  # seconds after pressing 1 that the customer keys the rating
DEMO_SURVEY_SCORE = "4"
READY_TIMEOUT_S = 10.0
STOP_TIMEOUT_S = 20.0


def _free_rtp_base(host: str, count: int = RTP_RANGE_PORTS, attempts: int = 50) -> int:
    """An even port starting a range whose first few ports are free right now.

    Below the Linux ephemeral range (32768+) so the kernel's own picks for the SIP
    and phone sockets do not land in it; the relay skips any port taken later anyway.
    """
    for _ in range(attempts):
        base = random.randrange(21000, 32000 - count) & ~1
        probe = []
        try:
            for port in range(base, base + 8):
                s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                probe.append(s)
                s.bind((host, port))
        except OSError:
            continue
        finally:
            for s in probe:
                s.close()
        return base
    return 20000


def demo_config(source: Path, store_dir: Path, telemetry: dict[str, Any] | None = None,
                hardware: dict[str, Any] | None = None) -> SiteConfig:  # fmt: skip
    """The example site with free ports, a store under ``store_dir``, ``telemetry``
    (reporting to the demo's fleet) and ``hardware`` (the simulated panel and UPS)."""
    data: Any = yaml.safe_load(source.read_text())
    if not isinstance(data, dict):
        raise ConfigError(str(source), [("(top level)", "expected a mapping of sections")])
    sip = data.setdefault("sip", {})
    sip["udp_port"] = 0
    sip["tcp_port"] = 0
    media = data.setdefault("media", {})
    base = _free_rtp_base(media.get("host", "127.0.0.1"))
    media["rtp_port_min"], media["rtp_port_max"] = base, base + RTP_RANGE_PORTS - 1
    data.setdefault("store", {})["path"] = str(store_dir / "edge.db")
    media["recordings_dir"] = str(store_dir / "recordings")
    media["voicemail_dir"] = str(store_dir / "voicemail")
    data.setdefault("api", {})["socket"] = str(store_dir / "edge.sock")
    for queue in data.get("queues", []):  # announcements the demo's short wait can hear
        queue["announce_every_s"] = DEMO_ANNOUNCE_S
    for trunk in data.get("trunks", []):  # the demo has no PSTN gateway to keep alive
        trunk["options_interval_s"] = 0
    if telemetry is not None:
        data["telemetry"] = telemetry
    if hardware is not None:
        data["hardware"] = hardware
    return parse_config(data, str(source))


async def api_get(socket_path: str, path: str) -> Any:
    """GET a JSON resource from the edge's local control API (HTTP/1.1 on its socket)."""
    import json

    reader, writer = await asyncio.open_unix_connection(socket_path)
    try:
        writer.write(f"GET {path} HTTP/1.1\r\nHost: edge\r\nConnection: close\r\n\r\n".encode())
        await writer.drain()
        response = await reader.read()
    finally:
        writer.close()
    head, _, body = response.partition(b"\r\n\r\n")
    if not head.startswith(b"HTTP/1.1 200"):
        raise RuntimeError(f"GET {path}: {head.splitlines()[0].decode()}")
    return json.loads(body)


async def _queue_board(config: SiteConfig, when: str = "now") -> None:
    """The live queue statistics, as the control API gives them."""
    board = await api_get(config.api.socket, "/v1/queues")
    print(f"\nqueue board {when}, from the control API ({config.api.socket}, GET /v1/queues):")
    queues = board["queues"] if isinstance(board, dict) and "queues" in board else board
    for q in queues:
        sl = q.get("service_level")
        print(f"  {q.get('name', q.get('queue')):<8} waiting {q.get('waiting')}  "
              f"answered {q.get('answered', q.get('totals', {}).get('answered'))}  "
              f"service level {'-' if sl is None else f'{sl:.0%}'}  "
              f"agents {q.get('agents_by_state', q.get('agents'))}")  # fmt: skip


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    minutes, secs = divmod(int(round(seconds)), 60)
    return f"{minutes}:{secs:02d}"


def cdr_table(rows: list[Any], zone: str) -> str:
    """CDRs as a fixed-width table, times in the site's time zone."""
    tz = ZoneInfo(zone)
    head = ("time", "from", "to", "destination", "disposition", "hangup", "talk", "SIP",
            "RTP a>b", "RTP b>a", "MOS", "DTMF", "survey", "recording")  # fmt: skip
    lines = [head]
    for r in sorted(rows, key=lambda r: r.start_time):
        talk = r.end_time - r.answer_time if r.answer_time is not None and r.end_time is not None else None
        lines.append((
            datetime.fromtimestamp(r.start_time, tz).strftime("%H:%M:%S"),
            r.from_number, r.to_number, r.destination or "-", r.disposition, r.hangup_side or "-",
            _duration(talk), f"{r.sip_status}", str(r.packets_a_to_b), str(r.packets_b_to_a),
            "-" if r.mos is None else f"{r.mos:.2f}", r.dtmf or "-",
            "-" if r.survey_score is None else str(r.survey_score),
            Path(r.recording).name if r.recording else "-",
        ))  # fmt: skip
    widths = [max(len(line[i]) for line in lines) for i in range(len(head))]
    out = ["  ".join(cell.ljust(w) for cell, w in zip(line, widths, strict=True)).rstrip() for line in lines]
    out.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(out)


async def _read_cdrs(path: str, limit: int) -> list[Any]:
    from edge_core.store.db import EdgeStore

    store = await EdgeStore.open(path)
    try:
        return list(await store.list_cdrs(limit))
    finally:
        await store.close()


def _next_steps(edge: tuple[str, int]) -> str:
    return f"""
What to do next
  run the edge on its own:  .venv/bin/branchline edge run --config examples/site.yaml --ready-file var/ready.json
                            (site.yaml asks for free ports: its log line and var/ready.json say
                            which; set sip.udp_port to 5060 for real phones; Ctrl-C stops it)
  call through it:          .venv/bin/branchline sim --edge 127.0.0.1:<its udp port> --config examples/site.yaml --phones 4 --calls 8
                            (this demo's edge was {edge[0]}:{edge[1]})
  validate a config:        .venv/bin/branchline edge check --config examples/site.yaml
  ask a running edge:       curl --unix-socket var/edge.sock http://edge/v1/queues   (also /v1/status,
                            /v1/calls, /v1/agents, /v1/events; site.yaml's api.socket)
  the technician console:   .venv/bin/branchline tui --socket <the edge's api.socket>   (make demo keeps
                            this demo running on a terminal and prints the exact command)
  a survivable drill:       .venv/bin/branchline edge drill survivable --for 60s --socket <api.socket>
  the fleet on its own:     .venv/bin/branchline fleet run --db sqlite+aiosqlite:///var/fleet.db
                            --broker mqtt://127.0.0.1:1883 --http 127.0.0.1:8080   (NOC dashboard and API)
  the appliance agent:      .venv/bin/branchline hw-agent --config examples/site.yaml (front panel, UPS)
  run the tests:            make test
  measure call setup rate:  .venv/bin/python bench/sip_cps.py --quick
"""


async def _demo(args: argparse.Namespace) -> int:
    if not EXAMPLE_CONFIG.is_file():
        print(f"branchline demo: the example site config is missing: {EXAMPLE_CONFIG}\n"
              "  (the demo runs from a source checkout: `make demo` in the repository)",
              file=sys.stderr)  # fmt: skip
        return 2
    store_dir = Path(tempfile.mkdtemp(prefix="branchline-demo-"))
    from edge_core.demo_fleet import DemoFleet

    fleet: DemoFleet | None = DemoFleet(store_dir)
    assert fleet is not None
    try:
        await fleet.start()
    except Exception as exc:  # the demo goes on without its fleet, and says so
        print(f"branchline demo: the fleet did not start ({exc}); the edge runs alone", file=sys.stderr)
        await fleet.stop()
        fleet = None
    from edge_core.demo_hardware import DemoHardware

    hardware: DemoHardware | None = DemoHardware(store_dir)
    assert hardware is not None
    try:
        await hardware.start()
    except Exception as exc:  # e.g. no pty: the demo goes on without its front panel
        print(f"branchline demo: the simulated front panel and UPS did not start ({exc})", file=sys.stderr)
        await hardware.stop()
        hardware = None
    site_id = str(yaml.safe_load(EXAMPLE_CONFIG.read_text())["site"]["id"])
    try:
        config = demo_config(EXAMPLE_CONFIG, store_dir, fleet.telemetry_settings(site_id) if fleet else None,
                             hardware.hardware_settings() if hardware else None)  # fmt: skip
    except ConfigError as exc:
        print(f"branchline demo: {exc}", file=sys.stderr)
        for part in (hardware, fleet):
            if part is not None:
                await part.stop()
        return 2
    if fleet is not None:
        print(f"fleet: embedded MQTT broker {fleet.broker_url}, fleet store {fleet.db}")
        print(f"fleet: NOC dashboard {fleet.dashboard_url}  (sign in with the token {fleet.token})")

    daemon = EdgeDaemon(config)
    edge_task = asyncio.create_task(daemon.run(), name="edge")
    first: set[asyncio.Future[Any]] = {edge_task, daemon.listening}
    await asyncio.wait(first, timeout=READY_TIMEOUT_S, return_when=asyncio.FIRST_COMPLETED)
    if not daemon.listening.done():
        if edge_task.done():
            failure = edge_task.exception()
            print(f"branchline demo: the edge stopped before it was ready: {failure!r}", file=sys.stderr)
            return 1
        print(f"branchline demo: the edge was not ready after {READY_TIMEOUT_S:.0f} s", file=sys.stderr)
        daemon.stop()
        await asyncio.wait({edge_task}, timeout=STOP_TIMEOUT_S)
        return 1
    edge = daemon.listening.result()["udp"]
    print(f"edge {config.site.id} ({config.site.name}) listening on sip udp {edge[0]}:{edge[1]}, "
          f"rtp {config.media.rtp_port_min}-{config.media.rtp_port_max}, store {config.store.path}")  # fmt: skip
    if hardware is not None:
        hardware.start_agent(config, config.api.socket)

    from appliance.sim.phones import SimError, run_sim, summary

    calls_ok = False
    try:
        results = await run_sim(
            config, edge, phones=DEMO_PHONES, calls=args.calls, talk_s=DEMO_TALK_S, digits=DEMO_DIGITS
        )
        print(summary(results))
        calls_ok = len(results) == args.calls and all(r.ok for r in results)
        calls_ok = await _hotline(config, edge) and calls_ok
        await _queue_board(config, "after the calls")
        if hardware is not None:
            await _hardware_view(config)
        if fleet is not None:
            await _fleet_view(fleet, config)
    except SimError as exc:
        print(f"branchline demo: {exc}", file=sys.stderr)

    if args.keep_running and not sys.stdin.isatty():
        print("(--keep-running: not on a terminal, so the demo stops here instead of waiting for Ctrl-C)")
    if args.keep_running and sys.stdin.isatty():
        await daemon.flush()
        rows = await _read_cdrs(config.store.path, max(50, args.calls * 2))
        _print_records(rows, config, edge)
        print(f"the edge keeps running on sip udp {edge[0]}:{edge[1]}; Ctrl-C stops it")
        print(f"open the technician console on it: .venv/bin/branchline tui --socket {config.api.socket}")
        if fleet is not None:
            print(f"watch it in the NOC dashboard: {fleet.dashboard_url} (token {fleet.token})")
            print(f"cut its WAN for a minute (a survivable drill): curl --unix-socket {config.api.socket} "
                  "-X POST http://edge/v1/drill -H 'content-type: application/json' -d '{\"seconds\": 60}'")  # fmt: skip
        rc = await _stopped(edge_task, None)
    else:
        if hardware is not None:
            await hardware.stop()
        daemon.stop()
        rc = await _stopped(edge_task, STOP_TIMEOUT_S)
        rows = await _read_cdrs(config.store.path, max(50, args.calls * 2))
        _print_records(rows, config, edge)
    for part in (hardware, fleet):
        if part is not None:
            await part.stop()
    return 0 if calls_ok and rc == 0 and len(rows) >= args.calls else 1


async def _hardware_view(config: SiteConfig, timeout_s: float = 10.0) -> None:
    """The front panel, UPS and rack sensor as the hardware agent reported them."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    hw: Any = {}
    while loop.time() < deadline:
        hw = await api_get(config.api.socket, "/v1/hardware")
        panel = hw.get("panel") or {}
        if panel.get("watchdog") == "normal" and len(hw.get("readings", {})) >= 2:
            break
        await asyncio.sleep(0.2)
    print(f"\nappliance (GET /v1/hardware): agent {hw.get('agent')}")
    panel = hw.get("panel") or {}
    if panel:
        print(f"  front panel: link {'up' if panel.get('link_up') else 'down'}, watchdog {panel.get('watchdog')}, "
              f"bypass relay {'engaged' if panel.get('relay') else 'off'}")  # fmt: skip
    for device, reading in (hw.get("readings") or {}).items():
        values = ", ".join(f"{k} {v:g}" for k, v in sorted(reading["values"].items()))
        print(f"  {device}: {values}")
    print(f"  alarms: {len(hw.get('alarms', []))} active")


async def _fleet_view(fleet: Any, config: SiteConfig) -> None:
    """What the fleet knows of this site: online, its mode, records ingested."""
    await fleet.publish_simulated_sites()
    site = await fleet.wait_online(config.site.id)
    if site is None:
        print(f"\nfleet: {config.site.id} did not show up online (see the fleet log)")
        return
    print(f"\nfleet: {config.site.id} is {site.get('status')} in the fleet, mode {site.get('mode')}, "
          f"version {site.get('version')}; {len(SIMULATED)} simulated branches beside it; dashboard {fleet.dashboard_url}")  # fmt: skip
    await _rollout_view(fleet)


async def _rollout_view(fleet: Any) -> None:
    """A release rolled out across the simulated branches in two waves (they download
    and verify the signed bundle; one of them fails its health check and rolls back)."""
    from fleet.rollout_demo import demo_rollout

    try:
        campaign = await demo_rollout(fleet.dashboard_url.rstrip("/"), fleet.token, fleet.broker_url,
                                      fleet.workdir / "rollout", step_s=0.5, timeout_s=60.0)  # fmt: skip
    except Exception as exc:  # the demo goes on; the rollout is an extra
        print(f"fleet: the demo rollout did not run ({exc})")
        return
    print(f"fleet: rollout \"{campaign.get('name')}\" {campaign.get('state')} "
          f"(waves {[len(w) for w in campaign.get('waves', [])]}):")  # fmt: skip
    for site in campaign.get("sites", []):
        why = f" - {site.get('check')}: {site.get('reason')}" if site.get("reason") else ""
        print(f"  {site.get('site_id')}: {site.get('state')}{why}")


async def _hotline(config: SiteConfig, edge: tuple[str, int]) -> bool:
    """The contact center: a customer calls the hotline, presses 1 for sales during the
    menu and waits in the queue (hold music, a position announcement, the live board
    from the control API); the agent logs in with *71 and the call goes through; when
    the agent hangs up, the customer rates the call by DTMF (the survey)."""
    from appliance.sim.phones import Phone

    passwords = {e.number: e.password for e in config.extensions}
    agent_ext = config.agents[0].extension
    customer = Phone("1001", passwords["1001"], edge, config.sip.domain)
    agent = Phone(agent_ext, passwords[agent_ext], edge, config.sip.domain)
    agent.hangup_after_s = DEMO_AGENT_TALK_S
    print("\ncontact center: 1001 calls the hotline 100 while no agent is logged in")
    async with customer, agent:
        await asyncio.gather(customer.register(), agent.register())
        # 1 for sales at once; the survey digit once the agent has gone (a comma is 1 s)
        digits = "1" + "," * DEMO_SURVEY_AFTER_S + DEMO_SURVEY_SCORE
        call = asyncio.create_task(customer.call("100", talk_s=30.0, callee=agent, digits=digits))
        waiting = await _until_waiting(config, "sales")
        await _queue_board(config, "while 1001 waits")
        if waiting:
            await asyncio.sleep(DEMO_ANNOUNCE_S + 0.5)  # let one position announcement play
        login = await agent.call("*71", talk_s=15.0)
        print(f"  {agent_ext} dials *71: {login.status} {login.reason}, the edge confirms and hangs up; "
              f"the queue rings {agent_ext} at once")  # fmt: skip
        result = await call
        print(f"  1001 -> 100, pressed 1, waited, talked to {agent_ext}, then rated the call "
              f"{DEMO_SURVEY_SCORE}/5: {result.status} {result.reason}, ended by the "
              f"{'edge' if result.hangup_side == 'callee' else 'caller'}; RTP caller {result.caller_sent}/"
              f"{result.caller_received} agent {result.callee_sent}/{result.callee_received}")  # fmt: skip
    return login.status == 200 and result.status == 200 and bool(result.callee_received)


async def _until_waiting(config: SiteConfig, queue: str, timeout_s: float = 10.0) -> bool:
    """Poll the control API until someone waits in ``queue``; False after ``timeout_s``."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while loop.time() < deadline:
        board = await api_get(config.api.socket, "/v1/queues")
        queues = board["queues"] if isinstance(board, dict) and "queues" in board else board
        if any(q.get("name", q.get("queue")) == queue and q.get("waiting") for q in queues):
            return True
        await asyncio.sleep(0.1)
    return False


async def _stopped(edge_task: asyncio.Task[int], timeout_s: float | None) -> int:
    """The daemon's exit status once it has stopped; 1 when it failed or hung."""
    try:
        return await asyncio.wait_for(edge_task, timeout_s)
    except TimeoutError:
        print(f"branchline demo: the edge did not stop within {timeout_s:.0f} s", file=sys.stderr)
    except Exception as exc:  # the daemon crashed: say so; the records may still be there
        print(f"branchline demo: the edge failed: {exc!r}", file=sys.stderr)
    return 1


def _print_records(rows: list[Any], config: SiteConfig, edge: tuple[str, int]) -> None:
    print(f"\ncall records ({len(rows)}) in {config.store.path}, times in {config.site.timezone}:")
    print(cdr_table(rows, config.site.timezone))
    print(f"recordings (stereo WAV, caller left, callee right) in {config.media.recordings_dir}")
    print(_next_steps(edge))


def run_demo(args: argparse.Namespace) -> int:
    """Entry point of ``branchline demo``; returns the exit status."""
    if not getattr(args, "verbose", 0):
        logging.getLogger().setLevel(logging.WARNING)  # the edge's INFO lines would bury the table
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is a dependency
        return asyncio.run(_demo(args))
    return uvloop.run(_demo(args))
