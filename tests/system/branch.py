"""A whole branch and its centre in three namespaces (``tests.system.netlab``), for the
system test and ``bench/failover.py``.

* ``central``: a private mosquitto on ``10.77.1.1:1883``, ``branchline fleet run`` (one
  worker, SQLite store in the work dir) and a SIPp peer playing the central SIP
  platform (the edge's ``wan`` trunk ``central``: keepalives and calls,
  tests/scenarios/sys_trunk_peer.xml).
* ``site``: ``branchline edge run`` on the LAN address ``10.77.0.1:5060``, reporting to
  central's broker; SIPp phones on ``127.0.0.1`` (1001 calls 2001 — local calls —, 1002
  dials ``9…`` — outbound calls, routed ``[central, pstn]``).
* ``pstn``: a SIPp peer playing the branch's PSTN gateway (the ``local`` trunk ``pstn``).

The test process reads the edge through its API socket and its SQLite store, and the
fleet through its SQLite store (the shared filesystem); a config change is pushed
from inside ``central`` (``tests.system.fleet_push``). Every process is a child
started through the lab and stopped by its own pid.
"""

from __future__ import annotations

import json
import sqlite3
import sys
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from fleet.configs import load_signing_key, public_key_b64
from tests.brokers import mosquitto_binary
from tests.sipp import (
    EdgeProcess,
    Sipp,
    deep_merge,
    default_edge_config,
    sipp_binary,
    wait_for,
    write_users_csv,
)
from tests.system.netlab import CENTRAL_IP, PHONE_IP, PSTN_IP, SITE_LAN_IP, Netlab, listening

BROKER_PORT = 1883
SIP_PORT = 5060
DOMAIN = "test.local"
PHONES = {"1001": "pw1001", "2001": "pw2001", "1002": "pw1002", "1003": "pw1003", "2101": "pw2101", "2102": "pw2102"}
PHONE_PORTS = {"1001": 7001, "2001": 7002, "1002": 7003, "3001": 7004, "1003": 7005, "2101": 7011, "2102": 7012}
OUTBOUND_NUMBER = "95551234"
HOTLINE = "100"
AGENTS = {"a1": "2101", "a2": "2102"}

# The shorter settings of the system test (defaults in brackets): keepalive every 0.5 s
# [30 s], a probe is lost after 0.5 s [2 s], down after 2 lost [2], up after 2 answered
# [2]; MQTT keepalive 5 s [30 s, the schema's minimum is 5]; reconnect backoff 0.2-1 s
# [0.5-30 s]; the mode back to NORMAL after the WAN is up 1 s [5 s]; SIP T1 100 ms
# [500 ms] so an INVITE into the cut WAN times out (Timer B) in 6.4 s [32 s].
FAST_TRUNK = {"options_interval_s": 0.5, "options_timeout_s": 0.5, "down_after": 2, "up_after": 2}
FAST_TELEMETRY = {"keepalive_s": 5, "reconnect_min_s": 0.2, "reconnect_max_s": 1.0, "connect_timeout_s": 2.0,
                  "ack_timeout_s": 5.0, "metrics_interval_s": 1.0}  # fmt: skip
FAST_SIP = {"t1_ms": 100}


def iso_to_epoch(text: str) -> float:
    return datetime.fromisoformat(text).timestamp()


class Branch:
    """Build with ``Branch(workdir, site_id, overrides)``, then :meth:`start`; :meth:`close` always."""

    def __init__(self, workdir: Path, site_id: str, overrides: Mapping[str, Any] | None = None,
                 *, fast: bool = True) -> None:  # fmt: skip
        """``fast``: the FAST_* settings above; else the schema's defaults throughout."""
        self.workdir = workdir
        self.site_id = site_id
        self.overrides = dict(overrides or {})
        self.fast = fast
        self.trunk_keepalive = dict(FAST_TRUNK if fast else {})
        self.lab = Netlab()
        self.sipps: list[Sipp] = []
        self.edge: EdgeProcess | None = None
        self.fleet_db = workdir / "central" / "fleet.db"
        self.fleet_url = f"sqlite+aiosqlite:///{self.fleet_db}"
        self.broker_url = f"mqtt://{CENTRAL_IP}:{BROKER_PORT}"
        self.key_path = workdir / "central" / "fleet-key.pem"
        self.signing_key: Ed25519PrivateKey | None = None
        self.fleet_stats = workdir / "central" / "fleet-stats"

    # -- lifecycle -----------------------------------------------------------------------
    def start(self) -> Branch:
        for binary, package in ((sipp_binary(), "sip-tester"), (mosquitto_binary(), "mosquitto")):
            if binary is None:
                raise FileNotFoundError(f"needs Debian package {package}")
        (self.workdir / "central").mkdir(parents=True, exist_ok=True)
        self.lab.__enter__()
        self.signing_key = load_signing_key(self.key_path, create=True)
        self._start_broker()
        self._start_fleet()
        self.central = self._peer("central", CENTRAL_IP)
        self.pstn = self._peer("pstn", PSTN_IP)
        self.edge = self._start_edge()
        self._register("2001")
        self._register("1001")
        self._register("1002")
        self.callee = self.sipp("site", "uas_answer", PHONE_IP, PHONE_PORTS["2001"], name="callee-2001",
                                timeout_s=None).start()  # fmt: skip
        wait_for(lambda: listening(self.callee.pid or 0, PHONE_PORTS["2001"], "udp"), 10, what="callee listening")
        for agent, extension in AGENTS.items():
            self._agent(agent, extension)
        wait_for(lambda: self.fleet_site().get("status") == "online", 30, what="the fleet to see the site online")
        wait_for(lambda: self.trunk("central")["rtt_ms"] is not None, 30, what="a keepalive answered by central")
        return self

    def close(self) -> None:
        """Phones, then the edge (its trunk peers still answering, so it stops at once),
        then the peers; the lab (fleet, broker, namespaces) last, whatever failed before."""
        peers = [s for s in self.sipps if s.name in ("central", "pstn")]
        try:
            for sipp in self.sipps:
                if sipp.running() and sipp not in peers:
                    sipp.stop(grace_s=1.0)
            if self.edge is not None and self.edge.running():
                try:
                    self.edge.stop(expect_returncode=None)
                except AssertionError:
                    self.edge.kill()
            for sipp in peers:
                if sipp.running():
                    sipp.stop(grace_s=1.0)
        finally:
            self.lab.close()

    def __enter__(self) -> Branch:
        try:
            return self.start()
        except BaseException:
            self.close()
            raise

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- central ---------------------------------------------------------------------------
    def _start_broker(self) -> None:
        conf = self.workdir / "central" / "mosquitto.conf"
        conf.write_text("\n".join([
            f"listener {BROKER_PORT} {CENTRAL_IP}", "allow_anonymous true", "user root",
            "persistence true", f"persistence_location {self.workdir / 'central'}/", "autosave_interval 1",
            f"log_dest file {self.workdir / 'central' / 'mosquitto.log'}",
            "log_type error", "log_type warning", "log_type notice", "max_queued_messages 100000",
        ]) + "\n")  # fmt: skip
        self.broker = self.lab.popen("central", [str(mosquitto_binary()), "-c", str(conf)])
        wait_for(lambda: listening(self.broker.pid, BROKER_PORT) or self.broker.poll() is not None, 10,
                 what="mosquitto listening")  # fmt: skip
        assert self.broker.poll() is None, f"mosquitto exited {self.broker.returncode}"

    def _start_fleet(self) -> None:
        self.fleet = self.lab.popen("central", [
            sys.executable, "-m", "edge_core.cli", "fleet", "run", "--db", self.fleet_url,
            "--broker", self.broker_url, "--workers", "1", "--client-prefix", "fleet-sys",
            "--status-file", str(self.workdir / "central" / "fleet-status.json"),
            "--stats-dir", str(self.fleet_stats),
        ], log=self.workdir / "central" / "fleet.log")  # fmt: skip

        def connected() -> bool:
            assert self.fleet.poll() is None, f"fleet exited: {self.fleet_log()[-3000:]}"
            try:
                return bool(json.loads((self.fleet_stats / "worker-0.json").read_text()).get("connects"))
            except (OSError, ValueError):
                return False

        wait_for(connected, 30, what="the fleet worker connected")

    def fleet_log(self) -> str:
        path = self.workdir / "central" / "fleet.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def _peer(self, role: str, host: str) -> Sipp:
        peer = self.sipp(role, "sys_trunk_peer", host, SIP_PORT, name=role, timeout_s=None, trace_msg=True).start()
        wait_for(lambda: listening(peer.pid or 0, SIP_PORT, "udp") or not peer.running(), 10, what=f"{role} peer")
        assert peer.running(), peer.stop().describe()
        return peer

    # -- SIPp in a namespace ---------------------------------------------------------------
    def sipp(self, role: str, scenario: str, host: str, port: int, **kwargs: Any) -> Sipp:
        """A Sipp bound to ``host:port`` inside namespace ``role``."""
        binary = sipp_binary()
        assert binary is not None
        wrapper = self.lab.wrapper(role, binary, self.workdir)
        kwargs.setdefault("media_port", 11000 + 10 * len(self.sipps))
        # built on loopback (Sipp picks its control port there), then bound to ``host``:
        # a port picked in the test's namespace means nothing in another anyway
        sipp = Sipp(self.workdir / "sipp", scenario, local_host="127.0.0.1", local_port=port, sipp_bin=str(wrapper),
                    **kwargs)  # fmt: skip
        sipp.command[sipp.command.index("-i") + 1] = host
        sipp.host = host
        self.sipps.append(sipp)
        return sipp

    def _users(self, number: str) -> Path:
        password = PHONES.get(number, f"pw{number}")
        return write_users_csv(self.workdir / f"users-{number}.csv", [(number, password)], DOMAIN)

    def _register(self, number: str) -> None:
        assert self.edge is not None
        result = self.sipp("site", "register", PHONE_IP, PHONE_PORTS[number], remote=self.edge.sip_udp, calls=1,
                           inf=self._users(number), timeout_s=10, name=f"register-{number}").start().wait()  # fmt: skip
        assert result.ok and result.successful == 1, result.describe()

    def _agent(self, agent: str, extension: str) -> None:
        """Log the agent in (REGISTER, then *71 from the same port) and answer its calls
        there, 300 ms after they ring."""
        assert self.edge is not None
        port = PHONE_PORTS[extension]
        login = self.sipp("site", "acd_agent_login", PHONE_IP, port, remote=self.edge.sip_udp, service="*71",
                          calls=1, inf=self._users(extension), timeout_s=10, name=f"login-{agent}").start().wait()  # fmt: skip
        assert login.ok, login.describe()
        wait_for(lambda: f"agent {agent} logged in at {extension}" in self.edge.stderr_text(), 10,  # type: ignore[union-attr]
                 what=f"agent {agent} logged in")  # fmt: skip
        phone = self.sipp("site", "acd_agent", PHONE_IP, port, hold_ms=300, timeout_s=None, name=f"agent-{agent}")
        phone.start()
        wait_for(lambda: listening(phone.pid or 0, port, "udp"), 10, what=f"agent {agent} phone listening")

    def queue_calls(self, rate: float, hold_ms: int) -> Sipp:
        """1003 calls the hotline (straight into queue ``sales``) at ``rate``/s and talks
        ``hold_ms`` from the edge's answer: contact-center calls, all local."""
        assert self.edge is not None
        return self.sipp("site", "uac_auth", PHONE_IP, PHONE_PORTS["1003"], remote=self.edge.sip_udp,
                         service=HOTLINE, rate=rate, hold_ms=hold_ms, inf=self._users("1003"), timeout_s=None,
                         name="queue-1003").start()  # fmt: skip

    def register_new(self, number: str) -> bool:
        """REGISTER an extension the pushed config added: True when the edge accepts it."""
        assert self.edge is not None
        return self.sipp("site", "register", PHONE_IP, PHONE_PORTS[number], remote=self.edge.sip_udp, calls=1,
                         inf=self._users(number), timeout_s=10, name=f"register-{number}").start().wait().ok  # fmt: skip

    def local_calls(self, rate: float, hold_ms: int) -> Sipp:
        """1001 calls 2001 at ``rate``/s, each held ``hold_ms``: calls that never touch the WAN."""
        assert self.edge is not None
        return self.sipp("site", "uac_auth", PHONE_IP, PHONE_PORTS["1001"], remote=self.edge.sip_udp, service="2001",
                         rate=rate, hold_ms=hold_ms, inf=self._users("1001"), timeout_s=None,
                         name="local-1001").start()  # fmt: skip

    def outbound_calls(self, rate: float, hold_ms: int) -> Sipp:
        """1002 dials 9… at ``rate``/s: central while the WAN is up, the PSTN gateway in survivable mode."""
        assert self.edge is not None
        return self.sipp("site", "uac_auth", PHONE_IP, PHONE_PORTS["1002"], remote=self.edge.sip_udp,
                         service=OUTBOUND_NUMBER, rate=rate, hold_ms=hold_ms, inf=self._users("1002"),
                         timeout_s=None, name="outbound-1002").start()  # fmt: skip

    # -- the edge --------------------------------------------------------------------------
    def edge_config(self) -> dict[str, Any]:
        workdir = self.workdir / "edge"
        assert self.signing_key is not None
        base = default_edge_config(workdir, sip_port=SIP_PORT)
        peer = {"port": SIP_PORT, "transport": "udp", "trusted": False, **self.trunk_keepalive}
        site = {
            "site": {"id": self.site_id, "name": "System test branch"},
            "sip": {"listen_host": SITE_LAN_IP, **(FAST_SIP if self.fast else {})},
            "media": {"host": SITE_LAN_IP, "record_calls": False},
            "extensions": [{"number": n, "password": p} for n, p in PHONES.items()],
            "trunks": [{"name": "central", "host": CENTRAL_IP, "kind": "wan", **peer},
                       {"name": "pstn", "host": PSTN_IP, "kind": "local", **peer}],
            "routes": [{"match": r"^(\d{4})$", "extension": r"\1"},
                       {"match": r"^9(\d+)$", "trunks": ["central", "pstn"], "number": r"\1"},
                       {"match": f"^{HOTLINE}$", "flow": "hotline"}],
            "prompts": {"dir": str(workdir / "prompts"), "generate": "tones"},
            "flows": {"hotline": {"start": "queue", "nodes": {"queue": {"type": "queue", "queue": "sales"}}}},
            "queues": [{"name": "sales", "ring_timeout_s": 5, "wrap_up_s": 0.2, "announce_every_s": 0}],
            "agents": [{"id": agent, "extension": ext, "queues": ["sales"]} for agent, ext in AGENTS.items()],
            "telemetry": {"enabled": True, "broker_url": self.broker_url,
                          "fleet_public_key": public_key_b64(self.signing_key),
                          **(FAST_TELEMETRY if self.fast else {})},
        }  # fmt: skip
        return deep_merge(deep_merge(base, site), self.overrides)

    def _start_edge(self) -> EdgeProcess:
        workdir = self.workdir / "edge"
        config = self.edge_config()
        probe = EdgeProcess(workdir, config)  # for its command and env
        command = [*self.lab.exec_prefix("site"), *probe.command]
        edge = EdgeProcess(workdir, config, command=command)
        edge.start(timeout_s=30)
        return edge

    def api(self, path: str) -> Any:
        assert self.edge is not None
        socket = str(self.edge.workdir / self.edge.ready["api_socket"])
        with httpx.Client(transport=httpx.HTTPTransport(uds=socket), base_url="http://edge", timeout=5) as client:
            response = client.get(path)
            response.raise_for_status()
            return response.json()

    def mode(self) -> dict[str, Any]:
        return dict(self.api("/v1/status")["mode"])

    def trunk(self, name: str) -> dict[str, Any]:
        return next(t for t in self.api("/v1/trunks")["trunks"] if t["name"] == name)

    def _edge_db(self) -> sqlite3.Connection:
        assert self.edge is not None
        db = sqlite3.connect(self.edge.config["store"]["path"], timeout=10)
        db.row_factory = sqlite3.Row
        return db

    def edge_cdrs(self) -> list[dict[str, Any]]:
        db = self._edge_db()
        try:
            return [dict(r) for r in db.execute("SELECT * FROM cdrs ORDER BY id")]
        finally:
            db.close()

    def edge_last_seq(self) -> int:
        db = self._edge_db()
        try:
            return int(db.execute("SELECT last FROM outbox_seq WHERE id = 1").fetchone()[0])
        finally:
            db.close()

    def edge_backlog(self) -> int:
        db = self._edge_db()
        try:
            return int(db.execute("SELECT count(*) FROM outbox").fetchone()[0])
        finally:
            db.close()

    # -- the fleet's store --------------------------------------------------------------
    def _fleet_query(self, sql: str, *args: Any) -> list[sqlite3.Row]:
        if not self.fleet_db.exists():
            return []
        db = sqlite3.connect(self.fleet_db, timeout=10)
        db.row_factory = sqlite3.Row
        try:
            return list(db.execute(sql, args))
        except sqlite3.OperationalError:  # not migrated yet
            return []
        finally:
            db.close()

    def fleet_site(self) -> dict[str, Any]:
        rows = self._fleet_query("SELECT * FROM sites WHERE id = ?", self.site_id)
        return dict(rows[0]) if rows else {}

    def fleet_records(self, kind: str) -> list[tuple[int, float, dict[str, Any]]]:
        """``(seq, at, body)`` of the site's stored records of ``kind``, in seq order."""
        rows = self._fleet_query("SELECT seq, at, body FROM records WHERE site_id = ? AND kind = ? ORDER BY seq",
                                 self.site_id, kind)  # fmt: skip
        return [(int(r["seq"]), float(r["at"]), json.loads(r["body"])) for r in rows]

    def fleet_events(self, type_: str) -> list[dict[str, Any]]:
        return [body for _, _, body in self.fleet_records("event") if body.get("type") == type_]

    def push_config(self, changes: Mapping[str, Any], reason: str) -> int:
        """A config change made at the centre: the edge's config with ``changes`` merged in,
        stored and published by the fleet's ConfigStore; returns the new version."""
        layer = deep_merge(self.edge_config(), changes)
        path = self.workdir / "central" / f"layer-{reason.replace(' ', '-')}.json"
        path.write_text(json.dumps(layer))
        done = self.lab.run("central", [
            sys.executable, "-m", "tests.system.fleet_push", "--db", self.fleet_url, "--broker", self.broker_url,
            "--key", str(self.key_path), "--site", self.site_id, "--layer", str(path), "--reason", reason,
        ], timeout=60, cwd=str(Path(__file__).resolve().parents[2]))  # fmt: skip
        assert done.returncode == 0, f"fleet_push failed:\n{done.stdout}\n{done.stderr}"
        return int(json.loads(done.stdout.strip().splitlines()[-1])["version"])
