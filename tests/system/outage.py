"""The WAN cut, measured: calls running, cut, SURVIVABLE, a local outbound call, a config
pushed centrally, restore, NORMAL, every record delivered. Shared by the system test
(which asserts on the :class:`Outage`) and ``bench/failover.py`` (which prints it).

Times come from the edge's own clock where it has one: the mode's ``since`` in
``GET /v1/status`` and the CDRs' ``answer_time`` (wall clock), against the wall-clock
instant just before the ``ip``/``nft`` command that cut or restored the link.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from tests.sipp import SippResult, wait_for
from tests.system.branch import HOTLINE, Branch, iso_to_epoch

Cut = Literal["link", "nft"]
LOCAL_RATE, LOCAL_HOLD_MS = 2.0, 2000  # about four local calls up at any moment
OUTBOUND_RATE, OUTBOUND_HOLD_MS = 2.0, 300
QUEUE_RATE, QUEUE_HOLD_MS = 0.5, 3000  # into the queue, an agent answers, talk, the caller hangs up
SYNTHETIC_CALLER = "resync"
"""``from_number`` of records a benchmark buffers straight into the edge's store."""


@dataclass
class Outage:
    how: Cut
    cut_at: float
    survivable_at: float
    """The edge's own time of the switch (``since`` of the mode)."""
    first_local_call_at: float
    restore_at: float
    normal_at: float
    drained_at: float
    """When the fleet had acked every record written before the link came back."""
    local: SippResult
    queue: SippResult
    outbound: SippResult
    edge_cdrs: list[dict[str, Any]]
    fleet_cdrs: list[tuple[int, float, dict[str, Any]]]
    mode_events: list[dict[str, Any]]
    trunk_down_at: float | None
    """When the edge wrote the central trunk's down event (its keepalives lost)."""
    config_version: int | None = None
    config_applied_during_outage: bool = False
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def detect_s(self) -> float:
        return self.survivable_at - self.cut_at

    @property
    def first_local_call_s(self) -> float:
        return self.first_local_call_at - self.cut_at

    @property
    def normal_s(self) -> float:
        return self.normal_at - self.restore_at

    @property
    def resync_s(self) -> float:
        return self.drained_at - self.restore_at

    def local_cdrs(self) -> list[dict[str, Any]]:
        return [c for c in self.edge_cdrs if c["destination"] == "extension:2001"]

    def queue_cdrs(self) -> list[dict[str, Any]]:
        return [c for c in self.edge_cdrs if c["to_number"] == HOTLINE and c["from_number"] == "1003"]

    def dropped_local_calls(self) -> int:
        """Calls that never touch the WAN (extension to extension, and the queue's, which an
        agent must have taken) that did not end the normal way: the caller's hang-up."""
        bad_cdrs = [c for c in self.local_cdrs() + self.queue_cdrs()
                    if (c["disposition"], c["hangup_side"], c["cause"]) != ("answered", "caller", "normal")
                    or (c["to_number"] == HOTLINE and not c["b_call_id"])]  # fmt: skip
        return max(self.local.failed + self.queue.failed, len(bad_cdrs))

    def outage_ids(self) -> set[str]:
        """CDRs of calls that ended while the WAN was cut (made during the outage)."""
        return {c["call_id"] for c in self.edge_cdrs
                if self.cut_at <= c["end_time"] <= self.restore_at and c["from_number"] != SYNTHETIC_CALLER}  # fmt: skip

    def synthetic_ids(self) -> set[str]:
        return {c["call_id"] for c in self.edge_cdrs if c["from_number"] == SYNTHETIC_CALLER}

    def fleet_counts(self) -> Counter[str]:
        return Counter(body["call_id"] for _, _, body in self.fleet_cdrs)

    def figures(self) -> dict[str, Any]:
        counts = self.fleet_counts()
        outage = self.outage_ids()
        return {
            "cut": self.how,
            "detect_s": round(self.detect_s, 3),
            "trunk_down_s": None if self.trunk_down_at is None else round(self.trunk_down_at - self.cut_at, 3),
            "first_local_call_s": round(self.first_local_call_s, 3),
            "normal_after_restore_s": round(self.normal_s, 3),
            "dropped_calls": self.dropped_local_calls(),
            "local_calls": self.local.successful,
            "queue_calls": self.queue.successful,
            "outage_records": len(outage),
            "delivered_records": sum(1 for i in outage if counts[i] >= 1),
            "duplicates": sum(n - 1 for n in counts.values()),
            "buffered_records": len(self.synthetic_ids()),
            "buffered_delivered": sum(1 for i in self.synthetic_ids() if counts[i] >= 1),
            "resync_s": round(self.resync_s, 3),
            **self.extra,
        }


def _wait_mode(branch: Branch, mode: str, timeout_s: float) -> float:
    status = wait_for(lambda: (m := branch.mode())["mode"] == mode and m, timeout_s, what=f"mode {mode}")
    return iso_to_epoch(status["since"])


def run_outage(branch: Branch, how: Cut, *, push_config: bool = True, outage_local_calls: int = 3,
               during_outage: Callable[[], dict[str, Any]] | None = None, detect_timeout_s: float = 30.0,
               restore_timeout_s: float = 40.0, call_timeout_s: float = 30.0, hold_s: float = 0.0) -> Outage:  # fmt: skip
    """Cut the WAN under load and bring it back; see the module docstring. ``hold_s``:
    keep the WAN cut at least this long after the switch (a scripted outage length,
    e.g. past ``min_dwell_s`` so the restore is not held back by the dwell window)."""
    local = branch.local_calls(LOCAL_RATE, LOCAL_HOLD_MS)
    queue = branch.queue_calls(QUEUE_RATE, QUEUE_HOLD_MS)
    outbound = branch.outbound_calls(OUTBOUND_RATE, OUTBOUND_HOLD_MS)
    cut_at = restore_at = 0.0

    def answered(since: float, destination: str, n: int = 1) -> list[dict[str, Any]]:
        done = [c for c in branch.edge_cdrs() if c["destination"] == destination
                and c["answer_time"] is not None and c["answer_time"] > since]  # fmt: skip
        return done if len(done) >= n else []

    try:
        wait_for(lambda: answered(0, "extension:2001", 2) and answered(0, "trunk:central"), 20,
                 what="local calls and an outbound call through central before the cut")  # fmt: skip
        assert branch.mode()["mode"] == "normal"

        cut_at = time.time()
        branch.lab.cut_link() if how == "link" else branch.lab.blackhole()
        survivable_at = _wait_mode(branch, "survivable", detect_timeout_s)
        first = wait_for(lambda: answered(cut_at, "trunk:pstn"), call_timeout_s, what="an outbound call through pstn")
        first_local_call_at = min(c["answer_time"] for c in first)

        version = None
        applied_early = False
        if push_config:
            extensions = [*branch.edge_config()["extensions"], {"number": "3001", "password": "pw3001"}]
            version = branch.push_config({"extensions": extensions}, reason="new desk during the outage")
        extra = during_outage() if during_outage else {}
        wait_for(lambda: len([c for c in branch.edge_cdrs() if c["destination"] == "extension:2001"
                              and c["start_time"] > survivable_at]) >= outage_local_calls, call_timeout_s,
                 what=f"{outage_local_calls} local calls made in survivable mode")  # fmt: skip
        time.sleep(max(0.0, survivable_at + hold_s - time.time()))  # the schedule, not a wait
        if version is not None:
            applied_early = branch.api("/v1/config")["version"] == version

        buffered_upto = branch.edge_last_seq()
        restore_at = time.time()
        branch.lab.restore_link() if how == "link" else branch.lab.unblackhole()
        seen: dict[str, float] = {}

        def normal_and_resynced() -> bool:
            now = time.time()
            if "normal" not in seen and (m := branch.mode())["mode"] == "normal":
                seen["normal"] = iso_to_epoch(m["since"])
            if "drained" not in seen and (branch.fleet_site().get("contiguous_seq") or 0) >= buffered_upto:
                seen["drained"] = now
            return len(seen) == 2

        wait_for(normal_and_resynced, restore_timeout_s, what="NORMAL and the outage's records acked")
        normal_at, drained_at = seen["normal"], seen["drained"]
    finally:
        if cut_at and not restore_at:  # a failed wait: give the lab its link back for teardown
            branch.lab.restore_link() if how == "link" else branch.lab.unblackhole()
        outbound_result = outbound.stop(grace_s=10.0)
        local_result = local.stop(grace_s=10.0)
        queue_result = queue.stop(grace_s=10.0)

    wait_for(lambda: branch.edge_backlog() == 0 and branch.fleet_site().get("contiguous_seq") == branch.edge_last_seq(),
             60, what="every record acked by the fleet")  # fmt: skip
    if version is not None:
        wait_for(lambda: branch.fleet_site().get("config_version") == version, 30,
                 what=f"the edge's report of config v{version} at the fleet")  # fmt: skip
    mode_events = branch.fleet_events("mode")
    trunk_down_at = min((at for _, at, body in branch.fleet_records("event") if body.get("type") == "trunk"
                         and body["trunk"] == "central" and not body["up"] and at >= cut_at), default=None)  # fmt: skip
    return Outage(
        how=how, cut_at=cut_at, survivable_at=survivable_at, first_local_call_at=first_local_call_at,
        restore_at=restore_at, normal_at=normal_at, drained_at=drained_at, local=local_result, queue=queue_result,
        outbound=outbound_result, edge_cdrs=branch.edge_cdrs(), fleet_cdrs=branch.fleet_records("cdr"),
        mode_events=mode_events, trunk_down_at=trunk_down_at, config_version=version, config_applied_during_outage=applied_early, extra=extra,
    )  # fmt: skip

