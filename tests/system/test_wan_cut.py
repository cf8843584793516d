"""THE PROOF of survivable mode (issue 6): a real network cut between a branch and its
centre, in network namespaces built by the test (tests/system/netlab.py), with the
real edge, the real fleet (``branchline fleet run``), mosquitto and SIPp peers.

* the WAN port goes down (``ip link set … down``), and separately a link that stays up
  and passes nothing (an nftables drop table inside ``central``): calls keep running
  through the cut (extension to extension, and hotline calls queued to two SIPp
  agents), the edge turns SURVIVABLE, outbound calls leave by the PSTN gateway, no
  local call drops; after the restore: NORMAL, every CDR of the outage at
  the fleet exactly once, the mode change and its duration at the fleet, and a config
  pushed centrally during the outage applied;
* a flapping link (down/up every 2 s for 30 s): at most one mode change per
  ``routing.wan.min_dwell_s``.

Shorter keepalive settings than the defaults, so the module runs in about two
minutes: see ``tests.system.branch`` (FAST_*) and ``CUT_WAN`` / ``FLAP_WAN`` below.
Needs root (namespaces), iproute2, nftables, SIPp and mosquitto; skipped with the
reason otherwise.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.brokers import mosquitto_binary
from tests.sipp import sipp_binary, wait_for
from tests.system.branch import FAST_TELEMETRY, FAST_TRUNK, Branch
from tests.system.netlab import unavailable_reason
from tests.system.outage import Outage, run_outage

pytestmark = [pytest.mark.slow, pytest.mark.timeout(150)]


@pytest.fixture(scope="module", autouse=True)
def _the_lab_can_be_built() -> None:
    """Skip the whole module, saying why, where namespaces cannot be made."""
    reason = unavailable_reason()  # probes with a throwaway namespace of its own
    for binary, package in ((sipp_binary(), "sip-tester"), (mosquitto_binary(), "mosquitto")):
        if reason is None and binary is None:
            reason = f"Debian package {package} is not installed"
    if reason is not None:
        pytest.skip(f"system tests (network namespaces) skipped: {reason}")


# Both WAN signals (the defaults): the central trunk's keepalives and the MQTT session.
# Back to NORMAL after 1 s of WAN [5 s]; at most one change per 2 s [10 s].
CUT_WAN = {"signals": ["trunks", "fleet"], "up_after_s": 1.0, "min_dwell_s": 2.0}
# The trunks alone (a 2 s cut is shorter than any MQTT keepalive), and a WAN that must
# be back 1 s only: without the dwell window the mode would follow every flap.
FLAP_WAN = {"signals": ["trunks"], "up_after_s": 1.0, "min_dwell_s": 10.0}


@pytest.fixture
def branch_factory(tmp_path: Path) -> Iterator[Any]:
    made: list[Branch] = []

    def make(site_id: str, wan: dict[str, Any]) -> Branch:
        branch = Branch(tmp_path / site_id, site_id, {"routing": {"wan": wan}})
        made.append(branch)
        return branch.start()

    yield make
    for branch in made:
        branch.close()


def detection_bound_s(wan: dict[str, Any]) -> float:
    """The latest the edge may turn SURVIVABLE after the cut, from the settings: the trunk
    is down after an interval plus ``down_after`` probe timeouts; the MQTT session after
    two keepalives (no PINGRESP to the PINGREQ sent one keepalive after the last traffic)."""
    trunks = FAST_TRUNK["options_interval_s"] + FAST_TRUNK["down_after"] * (
        FAST_TRUNK["options_interval_s"] + FAST_TRUNK["options_timeout_s"])
    fleet = 2 * FAST_TELEMETRY["keepalive_s"] if "fleet" in wan["signals"] else 0.0
    return max(trunks, fleet) + 2.0  # + scheduling slack on two shared cores


def assert_the_outage_was_survived(outage: Outage, wan: dict[str, Any]) -> None:
    figures = outage.figures()
    report = f"figures: {figures}\nlocal calls: {outage.local.describe()}\nqueue calls: {outage.queue.describe()}"
    # detection and local routing
    assert 0 < outage.detect_s <= detection_bound_s(wan), report
    # outbound calls leave by the gateway as soon as the central trunk is judged down
    # (a down trunk is skipped in any mode), at the latest once the mode has switched
    assert outage.trunk_down_at is not None and outage.trunk_down_at - outage.cut_at <= detection_bound_s(
        {"signals": ["trunks"]}), report
    assert outage.first_local_call_s <= outage.detect_s + 1.0, report
    # no local call dropped, through the cut and the restore
    assert outage.local.successful >= 5 and outage.local.failed == 0, report
    assert outage.queue.successful >= 2 and outage.queue.failed == 0, report
    assert any(outage.cut_at < c["start_time"] < outage.restore_at for c in outage.queue_cdrs()), report
    assert outage.dropped_local_calls() == 0, report
    # back to NORMAL once the WAN has been up for up_after_s (and the dwell is over)
    assert 0 < outage.normal_s <= wan["up_after_s"] + wan["min_dwell_s"] + 6.0, report
    # every CDR of the outage at the fleet, exactly once (by id), and all the others too
    counts = outage.fleet_counts()
    outage_ids = outage.outage_ids()
    assert len(outage_ids) >= 3, report
    assert {i: counts[i] for i in outage_ids} == dict.fromkeys(outage_ids, 1), report
    assert set(counts) == {c["call_id"] for c in outage.edge_cdrs}, report
    assert max(counts.values()) == 1, report
    # the fleet saw the mode change, why, and how long the branch was survivable
    pairs = [(e["old"], e["new"]) for e in outage.mode_events]
    assert pairs == [("normal", "survivable"), ("survivable", "normal")], outage.mode_events
    down, up = outage.mode_events
    assert down["cause"].startswith("wan down (") and up["cause"] == "wan up", outage.mode_events
    assert up["previous_s"] == pytest.approx(outage.normal_at - outage.survivable_at, abs=0.05)
    # the config pushed centrally during the outage: not applied then, applied after
    assert outage.config_version is not None and not outage.config_applied_during_outage


@pytest.mark.parametrize("how", ["link", "nft"], ids=["link-down", "nftables-blackhole"])
def test_a_cut_wan_leaves_local_calls_up_and_every_record_arrives_once(branch_factory: Any, how: str) -> None:
    if how == "nft" and shutil.which("nft") is None:
        pytest.skip("the blackhole needs nft (Debian package nftables)")
    branch: Branch = branch_factory(f"sys-{how}", CUT_WAN)
    outage = run_outage(branch, how)  # type: ignore[arg-type]
    print(f"\n{how}: {outage.figures()}")
    assert_the_outage_was_survived(outage, CUT_WAN)
    site = branch.fleet_site()
    assert (site["mode"], site["config_version"]) == ("normal", outage.config_version)
    running = branch.api("/v1/config")
    assert (running["version"], running["origin"]) == (outage.config_version, "fleet")
    assert "3001" in [e["number"] for e in running["config"]["extensions"]]
    assert branch.register_new("3001"), "the extension added by the pushed config cannot register"


def test_a_flapping_link_changes_the_mode_at_most_once_per_dwell_window(branch_factory: Any) -> None:
    branch: Branch = branch_factory("sys-flap", FLAP_WAN)
    local = branch.local_calls(2.0, 2000)
    wait_for(lambda: len(branch.edge_cdrs()) >= 2, 20, what="local calls before the flapping")
    started = time.monotonic()
    for step in range(15):  # the schedule: 2 s down, 2 s up, 30 s in all
        branch.lab.cut_link() if step % 2 == 0 else branch.lab.restore_link()
        time.sleep(max(0.0, started + 2.0 * (step + 1) - time.monotonic()))
    branch.lab.restore_link()
    wait_for(lambda: branch.mode()["mode"] == "normal", FLAP_WAN["min_dwell_s"] + 10, what="NORMAL after the flapping")
    local_result = local.stop(grace_s=10.0)
    wait_for(lambda: branch.edge_backlog() == 0 and branch.fleet_site().get("contiguous_seq") == branch.edge_last_seq(),
             30, what="every record acked")  # fmt: skip

    trunk_downs = [e for e in branch.fleet_events("trunk") if e["trunk"] == "central" and not e["up"]]
    modes = branch.fleet_events("mode")
    report = f"mode events: {modes}\ntrunk downs: {len(trunk_downs)}"
    print(f"\nflapping: {report}")
    assert len(trunk_downs) >= 4, report  # the keepalives did see the link flap
    assert 1 <= len(modes) <= 1 + 30 // FLAP_WAN["min_dwell_s"] + 1, report
    for event in modes[1:]:  # time spent in the mode it leaves: never under the dwell window
        assert event["previous_s"] >= FLAP_WAN["min_dwell_s"] - 0.01, report
    assert modes[-1]["new"] == "normal", report
    assert local_result.failed == 0 and local_result.successful >= 10, local_result.describe()
