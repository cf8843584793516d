"""What durability costs the edge's store: CDR commits with SQLite ``synchronous`` NORMAL
(the edge's choice) against FULL (an fsync of the WAL on every commit) and OFF (no
fsync at all, for reference), on this machine's disk.

Each run opens a fresh ``EdgeStore`` (WAL, migrations, the outbox written in the same
transaction as each CDR, as the daemon does), sets the mode, and commits CDRs one per
transaction (the worst case: the daemon batches what it has) and 100 per transaction.
Prints a line per mode and, last, one JSON object:
``{"normal_commits_per_s", "full_commits_per_s", "off_commits_per_s", "full_vs_normal", ...}``.

Why NORMAL: in WAL mode a NORMAL commit survives the process being killed (kill -9:
tested in tests/unit/test_outbox.py); only an OS crash or power loss can lose the last
commits. The telemetry drain fsyncs (``EdgeStore.sync``) before it publishes a batch,
so a record the fleet has seen can never be lost and its sequence number reused.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import tempfile
import time
import uuid
from pathlib import Path

from edge_core.store.db import CdrRow, EdgeStore


def cdr(i: int) -> CdrRow:
    now = time.time()
    return CdrRow(
        call_id=str(uuid.uuid4()), a_call_id=f"a-{i}", b_call_id=f"b-{i}", from_uri="sip:1001@branch",
        from_number="1001", to_number="2001", destination="extension:2001", start_time=now - 60,
        answer_time=now - 58, end_time=now, disposition="answered", hangup_side="caller",
        sip_status=200, sip_reason="OK", packets_a_to_b=3000, packets_b_to_a=3000, mos=4.37,
    )  # fmt: skip


async def run(mode: str, commits: int, batch: int, directory: Path) -> dict[str, float]:
    store = await EdgeStore.open(directory / f"{mode}-{batch}.db")
    try:
        await store._db.execute(f"PRAGMA synchronous={mode}")
        latencies = []
        start = time.perf_counter()
        for i in range(commits):
            t0 = time.perf_counter()
            await store.insert_cdrs([cdr(i * batch + j) for j in range(batch)])
            latencies.append(time.perf_counter() - t0)
        elapsed = time.perf_counter() - start
    finally:
        await store.close()
    latencies.sort()
    return {
        "commits_per_s": round(commits / elapsed, 1),
        "cdrs_per_s": round(commits * batch / elapsed, 1),
        "p50_ms": round(statistics.median(latencies) * 1000, 3),
        "p99_ms": round(latencies[int(len(latencies) * 0.99) - 1] * 1000, 3),
    }


async def main(args: argparse.Namespace) -> dict[str, object]:
    commits = 200 if args.quick else 2000
    out: dict[str, object] = {"commits_per_run": commits}
    with tempfile.TemporaryDirectory(prefix="bl-store-sync-", dir=args.dir) as tmp:
        for batch in (1, 100):
            for mode in ("NORMAL", "FULL", "OFF"):
                result = await run(mode, commits if batch == 1 else commits // 10, batch, Path(tmp))
                print(f"synchronous={mode:<6} {batch:>3} CDR/commit: {result}", flush=True)
                key = mode.lower() if batch == 1 else f"{mode.lower()}_batch100"
                out[f"{key}_commits_per_s"] = result["commits_per_s"]
                out[f"{key}_p99_ms"] = result["p99_ms"]
                if batch == 100:
                    out[f"{key}_cdrs_per_s"] = result["cdrs_per_s"]
    normal, full = float(out["normal_commits_per_s"]), float(out["full_commits_per_s"])  # type: ignore[arg-type]
    out["full_vs_normal"] = round(full / normal, 3)
    return out


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="200 commits per mode (seconds)")
    parser.add_argument("--dir", default=None, help="where the databases go (default: the temp dir's disk)")
    print(json.dumps(asyncio.run(main(parser.parse_args()))))
