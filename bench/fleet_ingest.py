"""Fleet ingest benchmark: records stored per second and publish->stored latency.

For each database (SQLite file, PostgreSQL throwaway database when a server answers)
and each worker count (1, 2): a private mosquitto, ``python -m fleet.service run
--workers N`` (the real service, as processes), and S simulated sites publishing
outbox batches (QoS 1) and metrics.

The simulated sites are lightweight: ``--connections`` paho connections in this process
(``fleet.sim.SimulatedEdges``), each publishing for S/connections site ids; the broker
and the fleet see ``bl/v1/site/{site}/...`` topics as from real edges (a real edge has
its own connection and last-will, which ingest does not depend on). Each site behaves
like the edge's outbox: at most ``--window`` batches unacknowledged; the next one goes
out when an ack comes back (closed loop: the measured rate is what the fleet sustains).

With ``--rate R`` the sites publish R records/s in total instead (open loop, the window
still caps each site): latency at a given load rather than at saturation.

Each (database, workers) pair runs twice by default: closed loop for the rate the fleet
sustains, then open loop at ``--latency-rate`` (the goal, 20 000 records/s) for the
latency. The closed-loop latency says little about the fleet: every site's window is
full from the start (``--records`` = sites x window x batch by default: one burst), so by
Little's law its p99 is just the time to drain the burst (records in flight / rate). The
goal "20 000 records/s with p99 under 1 s" is a latency at an offered load, which is
what the open-loop run measures.

* records/s = records acked / (last ack - first publish)
* latency = a batch's publish -> the fleet's ack covering it. The ack is sent after the
  commit, so this is publish -> stored plus the ack's trip back (an upper bound).

Last line: one JSON object ``{"sqlite_records_per_s", "pg_records_per_s",
"p99_latency_s", "runs": [...]}``; the two rates are the best closed-loop rates over
worker counts, and ``p99_latency_s`` is that of the open-loop PostgreSQL run at
``--latency-rate`` with the most workers (SQLite when there is no PostgreSQL; the
closed-loop one with ``--latency-rate 0``). ``--quick`` finishes in about a minute.
Each run also reports each worker's seconds parsing and inside transactions.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from fleet.sim import SimulatedEdges, percentile  # noqa: E402
from tests.brokers import Mosquitto, mosquitto_binary, postgres_url  # noqa: E402
from tests.sipp import wait_for  # noqa: E402


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


class Fleet:
    """``python -m fleet.service run`` as a child process, stopped by its own pid."""

    def __init__(self, workdir: Path, db: str, broker: str, workers: int, profile: bool) -> None:
        self.stats_dir = workdir / "stats"
        self.workers = workers
        argv = [sys.executable, "-m", "fleet.service", "run", "--db", db, "--broker", broker,
                "--workers", str(workers), "--client-prefix", f"bench-{workdir.name}",
                "--stats-dir", str(self.stats_dir), "--status-file", str(workdir / "status.json")]
        self.proc = subprocess.Popen(argv, cwd=REPO_ROOT)
        self.status_file = workdir / "status.json"
        self.profile = profile
        self.profilers: list[subprocess.Popen[bytes]] = []
        wait_for(lambda: all((_json(self.stats_dir / f"worker-{i}.json") or {}).get("connects")
                             for i in range(workers)), 60, what="fleet workers connected")
        spy = shutil.which("py-spy") or shutil.which("py-spy", path=str(Path(sys.executable).parent))
        if profile and spy:
            for w in _json(self.status_file)["workers"]:
                out = workdir / f"profile-worker-{w['index']}.txt"
                self.profilers.append(subprocess.Popen(
                    [spy, "record", "--format", "raw", "--pid", str(w["pid"]), "-o", str(out)],
                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))

    def stats(self, records: int) -> list[dict[str, Any]]:
        """Each worker's counters, once they account for ``records`` (the workers write
        them every 0.5 s, so right after the last ack they may still be a step behind)."""
        def read() -> list[dict[str, Any]]:
            return [_json(self.stats_dir / f"worker-{i}.json") or {} for i in range(self.workers)]

        deadline = time.time() + 3.0
        while sum(s.get("records", 0) for s in read()) < records and time.time() < deadline:
            time.sleep(0.1)
        return read()

    def stop(self) -> None:
        for prof in self.profilers:
            prof.send_signal(signal.SIGINT)
        for prof in self.profilers:
            prof.wait(30)
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


async def drive(broker_url: str, args: argparse.Namespace) -> dict[str, Any]:
    """Publish ``args.records`` records from ``args.sites`` sites; wait for every ack."""
    conns = [SimulatedEdges(broker_url, f"bench-sim-{os.getpid()}-{i}", record_bytes=args.record_bytes)
             for i in range(args.connections)]
    for c in conns:
        await c.connect()
    sites = [(conns[i % len(conns)], f"site{i:05d}") for i in range(args.sites)]
    per_batch = args.batch
    budget = args.records // per_batch
    published = 0
    start = time.time()
    rate_batches = args.rate / per_batch if args.rate else None
    next_metrics = start
    try:
        while True:
            now = time.time()
            if now >= next_metrics:
                for edges, site in sites:
                    edges.publish_metrics(site, cpu=0.2, disk_used_pct=40.0)
                next_metrics = now + args.metrics_every_s
            progress = False
            allowed = budget if rate_batches is None else min(budget, int((now - start) * rate_batches) + 1)
            for edges, site in sites:
                if published >= allowed:
                    break
                stream = edges.sites.get(site)
                if stream is None or len(stream.pending) < args.window:
                    edges.publish_batch(site, per_batch, kind="cdr" if published % 4 == 0 else "event")
                    published += 1
                    progress = True
            if published >= budget and all(c.all_acked() for c in conns):
                break
            if rate_batches is not None and published < budget:
                await asyncio.sleep(0.005)  # paced publishing (open loop): the next slice of the rate
            elif not progress or published >= budget:
                waits = [asyncio.ensure_future(c.changed.wait()) for c in conns]
                await asyncio.wait(waits, timeout=min(1.0, max(0.01, next_metrics - time.time())),
                                   return_when=asyncio.FIRST_COMPLETED)
                for w in waits:
                    w.cancel()
                for c in conns:
                    c.changed.clear()
            else:
                await asyncio.sleep(0)
            if time.time() - start > args.timeout_s:
                raise TimeoutError(f"not all records acked after {args.timeout_s}s "
                                   f"({sum(c.acked_records for c in conns)} of {budget * per_batch})")
        elapsed = time.time() - start  # the loop ends at the ack of the last record
    finally:
        for c in conns:
            await c.disconnect()
    latencies = [x for c in conns for x in c.latencies]
    records = sum(c.acked_records for c in conns)
    return {
        "records": records,
        "elapsed_s": round(elapsed, 3),
        "records_per_s": round(records / elapsed),
        "p50_latency_s": round(percentile(latencies, 0.5) or 0.0, 4),
        "p99_latency_s": round(percentile(latencies, 0.99) or 0.0, 4),
    }


def run_one(db_kind: str, db_url: str, workers: int, args: argparse.Namespace, root: Path) -> dict[str, Any]:
    workdir = root / f"{db_kind}-{workers}w-{'open' if args.rate else 'closed'}"
    workdir.mkdir()
    broker = Mosquitto(workdir / "mosquitto", persistence=False)
    # the fleet's in-flight window: PUBACKs wait for the commit, so 20 (the default)
    # would cap a worker at 20 messages per transaction
    broker.conf.write_text(broker.conf.read_text() + f"max_inflight_messages {args.broker_inflight}\n")
    broker.start()
    fleet = None
    try:
        fleet = Fleet(workdir, db_url, broker.url, workers, args.profile)
        result = asyncio.run(drive(broker.url, args))
        stats = fleet.stats(result["records"])
        result.update({"db": db_kind, "workers": workers, "loop": "open" if args.rate else "closed",
                       "offered_records_per_s": args.rate or None, "sites": args.sites, "batch": args.batch,
                       "per_worker_records": [s.get("records", 0) for s in stats],
                       "per_worker_batches": [s.get("batches", 0) for s in stats],
                       "per_worker_parse_s": [round(s.get("parse_s", 0.0), 2) for s in stats],
                       "per_worker_store_s": [round(s.get("store_s", 0.0), 2) for s in stats]})
        return result
    finally:
        if fleet is not None:
            fleet.stop()
            for prof in sorted(workdir.glob("profile-*.txt")):
                log(f"profile: {prof}")
        broker.stop()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="small run, under a minute")
    parser.add_argument("--sites", type=int, default=1000)
    parser.add_argument("--records", type=int, default=200_000, help="records per run")
    parser.add_argument("--batch", type=int, default=100, help="records per outbox batch (the edge's batch_size)")
    parser.add_argument("--window", type=int, default=2, help="unacked batches per site")
    parser.add_argument("--rate", type=float, default=0.0,
                        help="offered records/s (open loop, window still caps a site); 0: as fast as acks allow")
    parser.add_argument("--latency-rate", type=float, default=20_000.0,
                        help="after each closed-loop run, an open-loop one at this rate for the latency; 0: none")
    parser.add_argument("--connections", type=int, default=4, help="paho connections of the simulator")
    parser.add_argument("--record-bytes", type=int, default=300)
    parser.add_argument("--metrics-every-s", type=float, default=5.0)
    parser.add_argument("--workers", default="1,2")
    parser.add_argument("--db", default="sqlite,pg")
    parser.add_argument("--broker-inflight", type=int, default=1000)
    parser.add_argument("--timeout-s", type=float, default=300.0)
    parser.add_argument("--profile", action="store_true", help="py-spy record each worker (raw stacks)")
    parser.add_argument("--keep", action="store_true", help="keep the work directory")
    args = parser.parse_args()
    if args.quick:
        args.sites, args.records, args.timeout_s = min(args.sites, 100), min(args.records, 60_000), 40.0
    if mosquitto_binary() is None:
        log("mosquitto is not installed")
        return 2
    root = Path(tempfile.mkdtemp(prefix="bench-fleet-"))
    runs: list[dict[str, Any]] = []
    try:
        modes = [args.rate] if args.rate or not args.latency_rate else [0.0, args.latency_rate]
        for db_kind in args.db.split(","):
            for workers in [int(w) for w in args.workers.split(",")]:
                for rate in modes:  # a fresh database each: the simulator starts every site at seq 1
                    with ExitStack() as stack:
                        loop = "open" if rate else "closed"
                        if db_kind == "sqlite":
                            url: str | None = f"sqlite+aiosqlite:///{root}/fleet-{workers}w-{loop}.db"
                        else:
                            url = stack.enter_context(postgres_url("bl_bench"))
                        if url is None:
                            log("no PostgreSQL server: skipping the PostgreSQL runs")
                            break
                        result = run_one(db_kind, url, workers, argparse.Namespace(**{**vars(args), "rate": rate}),
                                         root)
                        runs.append(result)
                        print(json.dumps(result), flush=True)
    finally:
        if args.keep:
            log(f"work directory kept: {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)

    def best(kind: str) -> int | None:
        rates = [r["records_per_s"] for r in runs if r["db"] == kind and r["loop"] == "closed"]
        rates = rates or [r["records_per_s"] for r in runs if r["db"] == kind]
        return max(rates) if rates else None

    pg_runs = [r for r in runs if r["db"] == "pg"] or runs
    latency_runs = [r for r in pg_runs if r["loop"] == "open"] or pg_runs
    summary = {
        "sqlite_records_per_s": best("sqlite"),
        "pg_records_per_s": best("pg"),
        "p99_latency_s": max(latency_runs, key=lambda r: r["workers"])["p99_latency_s"] if latency_runs else None,
        "latency_at_records_per_s": latency_runs[0]["offered_records_per_s"] if latency_runs else None,
        "quick": args.quick,
        "runs": runs,
    }
    print(json.dumps(summary), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
