"""``branchline fleet run``: migrate the store, then run N ingest workers as processes.

Workers are processes, not tasks, because the ingest is CPU-bound Python (JSON
validation, SQL building) and one process uses one core. Each worker has a stable
MQTT client id ``{client_prefix}-{index}``: its persistent session at the broker holds
what it received but had not acknowledged, so the supervisor restarts a dead worker
under the same id and it finishes that work (another worker cannot take over a
session's in-flight messages in MQTT 3.1.1). Workers share the load through the
``$share/{group}/...`` subscriptions.

The supervisor writes ``--status-file`` (JSON: its pid and each worker's index, pid,
client id and restart count) whenever that changes, and each worker writes its
counters to ``--stats-dir/worker-{index}.json`` about twice a second.

With ``--http host:port`` the supervisor also runs the NOC API and dashboard
(``python -m fleet.api serve``, see ``fleet/api``) as one more child, restarted like a
worker; it pushes configs through ``--broker`` signed with ``--signing-key``, and with
the ``--mosquitto-*`` options it keeps mosquitto's password and ACL files in step with
the enrolled boxes (``fleet.broker_auth``). Every MQTT client of the fleet connects with
the credentials in ``--broker`` (``mqtt://user:password@host:port``), if any.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fleet.mqtt import BROKER_ENV

log = logging.getLogger(__name__)

RESTART_MIN_S = 0.5
RESTART_MAX_S = 30.0
API_INDEX = -1
"""The child index of the NOC API process (``--http``)."""
SYNC_INDEX = -2
"""The child index of the cloud-tier exporter (``--cloud-url``); one only."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``fleet run`` (shared with the worker entry point)."""
    parser.add_argument("--db", default="sqlite+aiosqlite:///var/fleet.db",
                        help="sqlite+aiosqlite:///path or postgresql+asyncpg://user@host/db")
    parser.add_argument("--broker", default=os.environ.get(BROKER_ENV, "mqtt://127.0.0.1:1883"),
                        help=f"mqtt://[user:password@]host:port (default: ${BROKER_ENV}, which keeps the "
                             "fleet's MQTT password out of the process list; children get it that way)")
    parser.add_argument("--workers", type=int, default=1, help="ingest worker processes")
    parser.add_argument("--group", default="fleet", help="shared-subscription group")
    parser.add_argument("--client-prefix", default=f"fleet-{socket.gethostname()}",
                        help="worker i connects as PREFIX-i (stable: it names the broker session)")
    parser.add_argument("--max-batch-messages", type=int, default=2000, help="MQTT messages per transaction, at most")
    parser.add_argument("--max-batch-bytes", type=int, default=1_000_000, help="payload bytes per transaction, at most")
    parser.add_argument("--status-file", help="write supervisor and worker pids here (JSON)")
    parser.add_argument("--stats-dir", help="each worker writes its counters here (JSON)")
    parser.add_argument("--http", help="also serve the NOC API and dashboard on host:port (python -m fleet.api)")
    parser.add_argument("--tokens", default="var/fleet-tokens.json", help="the API's token file (hashes only)")
    parser.add_argument("--signing-key", default="var/fleet-signing.pem",
                        help="ed25519 PEM the API signs pushed configs with (created when missing)")
    parser.add_argument("--cloud-url", help="also export to the cloud tier at this database URL (fleet.cloudsync)")
    parser.add_argument("--cloud-every-s", type=float, default=60.0, help="export period")
    parser.add_argument("--cloud-mask", default="keep:4", help="caller numbers leaving the fleet: keep:N, hash, drop")
    from fleet.broker_auth import add_arguments as add_broker_auth_arguments

    add_broker_auth_arguments(parser)


@dataclass
class _Child:
    index: int
    proc: subprocess.Popen[bytes]
    restarts: int = 0
    next_start: float = 0.0
    delay: float = RESTART_MIN_S


class Supervisor:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.children: list[_Child] = []
        self.stopping = False

    def _spawn(self, index: int) -> subprocess.Popen[bytes]:
        a = self.args
        from fleet.broker_auth import forward_arguments

        if index == SYNC_INDEX:
            return subprocess.Popen([sys.executable, "-m", "fleet.cloudsync", "--from", a.db, "--to", a.cloud_url,
                                     "--every", str(a.cloud_every_s), "--mask", a.cloud_mask])
        if index == API_INDEX:
            return subprocess.Popen([sys.executable, "-m", "fleet.api", "serve", "--no-migrate", "--db", a.db,
                                     "--http", a.http, "--tokens", a.tokens,
                                     "--signing-key", a.signing_key, *forward_arguments(a)], env=self._env())
        argv = [sys.executable, "-m", "fleet.service", "worker", "--index", str(index),
                "--db", a.db, "--group", a.group,
                "--client-prefix", a.client_prefix, "--max-batch-messages", str(a.max_batch_messages),
                "--max-batch-bytes", str(a.max_batch_bytes)]
        if a.stats_dir:
            argv += ["--stats-dir", a.stats_dir]
        argv += ["-v"] * getattr(a, "verbose", 0)
        return subprocess.Popen(argv, env=self._env())

    def _env(self) -> dict[str, str]:
        """The broker URL (it may hold the fleet's MQTT password) goes to the children in
        their environment, not on their command line, which every local user can read."""
        return {**os.environ, BROKER_ENV: self.args.broker}

    def _write_status(self) -> None:
        if not self.args.status_file:
            return
        doc = {
            "pid": os.getpid(),
            "workers": [
                {"index": c.index, "pid": c.proc.pid, "client_id": f"{self.args.client_prefix}-{c.index}",
                 "restarts": c.restarts, "running": c.proc.poll() is None}
                for c in self.children if c.index >= 0
            ],
        }
        doc["api"] = [{"pid": c.proc.pid, "http": self.args.http, "restarts": c.restarts,
                       "running": c.proc.poll() is None} for c in self.children if c.index == API_INDEX]
        tmp = Path(self.args.status_file + ".tmp")
        tmp.write_text(json.dumps(doc))
        tmp.replace(self.args.status_file)

    def run(self) -> int:
        from fleet.mqtt import redact_broker_url
        from fleet.store import FleetStore

        async def migrate() -> None:
            store = await FleetStore.open(self.args.db)
            await store.close()

        asyncio.run(migrate())
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, self._on_signal)
        self.children = [_Child(i, self._spawn(i)) for i in range(self.args.workers)]
        if self.args.http:  # the NOC API: one more child, restarted like a worker
            self.children.append(_Child(API_INDEX, self._spawn(API_INDEX)))
        if self.args.cloud_url:  # the cloud-tier exporter, likewise
            self.children.append(_Child(SYNC_INDEX, self._spawn(SYNC_INDEX)))
        self._write_status()
        log.info("fleet: %d worker(s) on %s -> %s", self.args.workers, redact_broker_url(self.args.broker),
                 self.args.db)
        while not self.stopping:
            changed = False
            now = time.monotonic()
            for child in self.children:
                code = child.proc.poll()
                if code is None:
                    continue
                if child.next_start == 0.0:
                    log.warning("worker %d (pid %d) exited with %s; restarting in %.1fs",
                                child.index, child.proc.pid, code, child.delay)
                    child.next_start = now + child.delay
                elif now >= child.next_start:
                    child.proc = self._spawn(child.index)
                    child.restarts += 1
                    child.next_start = 0.0
                    child.delay = min(child.delay * 2, RESTART_MAX_S)
                    changed = True
            if changed:
                self._write_status()
            time.sleep(0.1)
        for child in self.children:
            if child.proc.poll() is None:
                child.proc.send_signal(signal.SIGTERM)
        for child in self.children:
            try:
                child.proc.wait(15)
            except subprocess.TimeoutExpired:
                child.proc.kill()
                child.proc.wait()
        return 0

    def _on_signal(self, signum: int, _frame: Any) -> None:
        self.stopping = True


def run_fleet(args: argparse.Namespace) -> int:
    """The ``branchline fleet run`` entry point."""
    from fleet.broker_auth import from_arguments

    if args.workers < 1:
        print("--workers must be at least 1", file=sys.stderr)
        return 2
    try:
        if from_arguments(args, args.broker) is not None and not args.http:
            print("--mosquitto-* options need --http (the NOC API enrolls the boxes)", file=sys.stderr)
            return 2
    except ValueError as exc:
        print(exc, file=sys.stderr)
        return 2
    return Supervisor(args).run()


# -- one worker process -------------------------------------------------------------------


async def _worker_main(args: argparse.Namespace) -> int:
    from fleet.store import FleetStore
    from fleet.worker import IngestWorker, WorkerSettings

    store = await FleetStore.open(args.db, migrate_schema=False)
    settings = WorkerSettings(args.broker, f"{args.client_prefix}-{args.index}", group=args.group,
                              max_batch_messages=args.max_batch_messages, max_batch_bytes=args.max_batch_bytes)
    worker = IngestWorker(store, settings)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    stats_path = Path(args.stats_dir) / f"worker-{args.index}.json" if args.stats_dir else None

    async def report() -> None:
        while True:
            if stats_path is not None:
                doc = {"index": args.index, "pid": os.getpid(), **worker.stats.as_dict()}
                tmp = stats_path.with_suffix(".tmp")
                tmp.write_text(json.dumps(doc))
                tmp.replace(stats_path)
            await asyncio.sleep(0.5)

    reporter = asyncio.create_task(report())
    try:
        await worker.run(stop)
    finally:
        reporter.cancel()
        await store.close()
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m fleet.service")
    parser.add_argument("-v", "--verbose", action="count", default=0)
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run")
    add_arguments(run)
    worker = sub.add_parser("worker")
    add_arguments(worker)
    worker.add_argument("--index", type=int, required=True)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING - 10 * min(args.verbose + 1, 2),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if args.command == "worker":
        if args.stats_dir:
            Path(args.stats_dir).mkdir(parents=True, exist_ok=True)
        try:
            import uvloop

            return uvloop.run(_worker_main(args))
        except ImportError:
            return asyncio.run(_worker_main(args))
    return run_fleet(args)


if __name__ == "__main__":
    sys.exit(main())
