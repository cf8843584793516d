"""Failover benchmark: the WAN cut of the system test (tests/system/), measured.

Builds the three namespaces (``central``: mosquitto, ``branchline fleet run``, SIPp as the
central platform; ``site``: the edge and SIPp phones; ``pstn``: SIPp as the PSTN
gateway), runs local calls (1001 -> 2001, 2/s, 2 s each) and outbound calls (1002 dials
9..., 2/s, routed central then pstn), cuts the site's WAN port (``--cut link``) or
blackholes the link with nftables (``--cut nft``), keeps it cut 11 s past the switch
to SURVIVABLE, restores it, and measures:

* ``detect_s``: cut -> the edge's SURVIVABLE (the mode's own ``since``);
* ``trunk_down_s``: cut -> the central trunk judged down (keepalives lost);
* ``first_local_call_s``: cut -> the first outbound call answered by the PSTN gateway;
* ``dropped_calls``: local calls (never on the WAN) that did not end normally (goal 0);
* ``outage_records`` / ``delivered_records`` / ``duplicates``: CDRs of calls that ended
  during the outage, those of them stored by the fleet afterwards, and CDRs stored more
  than once (goal: equal, 0);
* ``normal_after_restore_s``: link back -> NORMAL;
* ``resync_s`` for ``buffered_records``: N CDRs written into the edge's store during the
  outage (through ``EdgeStore``, as the daemon writes them), link back -> the fleet
  has acked all of them.

Profiles: ``default`` is the schema's defaults throughout (wan trunk keepalive every 1 s,
1 s to answer, down after 2; the trunks decide the mode before the MQTT session; MQTT
keepalive 30 s, reconnect backoff up to 30 s, up_after_s 5, min_dwell_s 10, T1 500 ms);
``fast`` is the system test's settings (tests/system/branch.py FAST_*: keepalive every
0.5 s, lost after 0.5 s, down after 2; MQTT keepalive 5 s; backoff 0.2-1 s; T1 100 ms)
with ``routing.wan.signals: [trunks]`` (the MQTT session can't be judged in under
two of its keepalives, 10 s at the schema's 5 s minimum) and ``up_after_s`` 1.

The full run does both profiles with 10 000 buffered records (a few minutes: the
defaults take tens of seconds to notice the cut); ``--quick`` does ``fast`` with 1 000
(under a minute). Needs root. Last line: one JSON object, the first profile's figures
at the top level and every profile under ``profiles``; goals: SURVIVABLE within 3 s of
the cut, NORMAL within 10 s of the restore.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import REPO_ROOT, emit_json, log  # noqa: E402

sys.path.insert(0, str(REPO_ROOT))

from edge_core.store.db import CdrRow, EdgeStore  # noqa: E402
from tests.system.branch import Branch  # noqa: E402
from tests.system.netlab import unavailable_reason  # noqa: E402
from tests.system.outage import SYNTHETIC_CALLER, run_outage  # noqa: E402

GOAL_DETECT_S = 3.0
GOAL_NORMAL_S = 10.0
OUTAGE_HOLD_S = 11.0
"""The WAN stays cut this long after the switch: past the default ``min_dwell_s`` (10 s),
so ``normal_after_restore_s`` measures the recovery, not the dwell window."""
PROFILES: dict[str, dict[str, Any]] = {
    "default": {"fast": False, "overrides": {}, "detect_timeout_s": 150.0, "restore_timeout_s": 120.0,
                "call_timeout_s": 90.0},
    "fast": {"fast": True, "overrides": {"routing": {"wan": {"signals": ["trunks"], "up_after_s": 1.0}}},
             "detect_timeout_s": 30.0, "restore_timeout_s": 60.0, "call_timeout_s": 30.0},
}  # fmt: skip


async def _buffer(path: str, count: int) -> None:
    """``count`` CDRs into the edge's store (its own transactions: BEGIN IMMEDIATE, so the
    running daemon's writes wait for ours), in chunks so it never waits long."""
    store = await EdgeStore.open(path)
    try:
        now = time.time()
        for start in range(0, count, 1000):
            await store.insert_cdrs([
                CdrRow(call_id=str(uuid.uuid4()), a_call_id=f"resync-{i}", b_call_id=None,
                       from_uri=f"sip:{SYNTHETIC_CALLER}@bench", from_number=SYNTHETIC_CALLER, to_number="2001",
                       destination="extension:2001", start_time=now, answer_time=now, end_time=now,
                       disposition="answered", hangup_side="caller", sip_status=200, sip_reason="OK")
                for i in range(start, min(count, start + 1000))
            ])  # fmt: skip
    finally:
        await store.close()


def run_profile(name: str, cut: str, buffered: int, workdir: Path) -> dict[str, Any]:
    profile = PROFILES[name]
    log(f"[{name}] building the branch (namespaces, broker, fleet, peers, edge)")
    with Branch(workdir / name, f"bench-{name}", profile["overrides"], fast=profile["fast"]) as branch:
        assert branch.edge is not None
        store_path = str(branch.edge.config["store"]["path"])

        def during_outage() -> dict[str, Any]:
            started = time.monotonic()
            asyncio.run(_buffer(store_path, buffered))
            log(f"[{name}] {buffered} records buffered in {time.monotonic() - started:.2f} s")
            return {}

        log(f"[{name}] calls running; cutting the WAN ({cut})")
        outage = run_outage(branch, cut,  # type: ignore[arg-type]
                            during_outage=during_outage if buffered else None,
                            detect_timeout_s=profile["detect_timeout_s"],
                            restore_timeout_s=profile["restore_timeout_s"],
                            call_timeout_s=profile["call_timeout_s"], hold_s=OUTAGE_HOLD_S)  # fmt: skip
        figures = outage.figures()
        figures["profile"] = name
        figures["resync_records_per_s"] = round(figures["buffered_delivered"] / max(outage.resync_s, 1e-3))
        figures["goal_detect_met"] = figures["detect_s"] <= GOAL_DETECT_S
        figures["goal_normal_met"] = figures["normal_after_restore_s"] <= GOAL_NORMAL_S
        log(f"[{name}] {figures}")
        return figures


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="the fast profile only, 1 000 records (< 1 min)")
    parser.add_argument("--cut", choices=["link", "nft"], default="link")
    parser.add_argument("--profiles", help="comma-separated: default,fast (default: both; --quick: fast)")
    parser.add_argument("--records", type=int, help="records buffered during the outage (10 000; --quick 1 000)")
    parser.add_argument("--keep", action="store_true", help="keep the work directory (logs, stores)")
    args = parser.parse_args(argv)

    reason = unavailable_reason()
    if reason is None and shutil.which("nft") is None and args.cut == "nft":
        reason = "nftables is not installed (Debian package nftables)"
    if reason is not None:
        log(f"cannot run: {reason}")
        emit_json({"error": reason})
        return 2
    names = (args.profiles or ("fast" if args.quick else "default,fast")).split(",")
    buffered = args.records if args.records is not None else (1000 if args.quick else 10_000)
    workdir = Path(tempfile.mkdtemp(prefix="bl-failover-"))
    results: dict[str, dict[str, Any]] = {}
    try:
        for name in names:
            results[name] = run_profile(name, args.cut, buffered, workdir)
    finally:
        if args.keep:
            log(f"work directory kept: {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    first = results[names[0]]
    emit_json({**first, "goals": {"detect_s": GOAL_DETECT_S, "normal_after_restore_s": GOAL_NORMAL_S},
               "profiles": results})  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
