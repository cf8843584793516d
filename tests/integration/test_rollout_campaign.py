"""A campaign over 10 simulated sites, on the real fleet store (SQLite), with the bundle
served over real HTTP and verified by each site with the real verifier. Sites listed as
bad report a rollback (as a box whose health check failed would); the campaign halts at
the error threshold and the last wave never starts."""

from __future__ import annotations

import functools
import http.server
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from fleet.rollouts import Campaign, CampaignSpec, RolloutStore, plan_waves
from fleet.store import FleetStore
from images.build import make_bundle
from images.bundle import BundleError, verify_bundle

SITES = [f"site-{i:02d}" for i in range(10)]


@pytest.fixture
def bundle_server(tmp_path: Path) -> Iterator[tuple[str, Ed25519PrivateKey]]:
    key = Ed25519PrivateKey.generate()
    wheels = tmp_path / "w"
    wheels.mkdir()
    (wheels / "branchline-2.0.0-py3-none-any.whl").write_bytes(b"wheel" * 1000)
    served = tmp_path / "served"
    served.mkdir()
    make_bundle(served / "branchline-2.0.0.bundle", version="2.0.0", key=key,
                wheels=sorted(wheels.glob("*.whl")), build_time=1_700_000_000)
    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, format: str, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Quiet, directory=str(served)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/branchline-2.0.0.bundle", key
    server.shutdown()
    server.server_close()
    thread.join(timeout=5)


def site_install(url: str, key: Ed25519PrivateKey, workdir: Path, bad: bool) -> tuple[str, str]:
    """What a box does: download over HTTP, verify, install (simulated outcome)."""
    import urllib.request

    target = workdir / "bundle"
    with urllib.request.urlopen(url, timeout=10) as resp:
        target.write_bytes(resp.read())
    try:
        manifest = verify_bundle(target, key.public_key()).manifest
    except BundleError as exc:
        return "failed", str(exc)
    if bad:
        return "rolled_back", f"sip: OPTIONS to 127.0.0.1:5060: timed out (release {manifest.version})"
    return "committed", ""


def test_plan_waves_for_ten_sites() -> None:
    assert [len(w) for w in plan_waves(SITES, (1, 0.05, 0.25, 1.0))] == [1, 2, 7]


async def test_campaign_halts_at_error_threshold(tmp_path: Path,
                                                 bundle_server: tuple[str, Ed25519PrivateKey]) -> None:
    url, key = bundle_server
    store = await FleetStore.open(f"sqlite+aiosqlite:///{tmp_path / 'fleet.db'}")
    try:
        rollouts = RolloutStore(store.engine)
        await rollouts.create_tables()
        spec = CampaignSpec(name="2.0.0 to all", bundle_version="2.0.0", bundle_url=url, sites=SITES,
                            error_threshold=0.2, max_concurrent=3, window_start_h=0, window_end_h=0)
        cid = await rollouts.create(Campaign(spec))
        bad = {"site-02"}
        now = 1_700_000_000.0
        started_all: list[str] = []
        for _ in range(20):  # the fleet's control loop, one tick at a time
            campaign = await rollouts.load(cid)
            started = campaign.start_next(now)
            await rollouts.save(cid, campaign, now)
            if not started:
                break
            started_all += started
            for site in started:
                site_dir = tmp_path / site
                site_dir.mkdir()
                outcome, reason = site_install(url, key, site_dir, site in bad)
                campaign = await rollouts.load(cid)
                campaign.report(site, outcome, reason, now)
                await rollouts.save(cid, campaign, now)
            now += 60
        campaign = await rollouts.load(cid)
        assert campaign.state == "halted", campaign.summary()
        assert "wave 2: 1 of 2 failed" in campaign.halt_reason
        assert started_all == SITES[:3]  # the last wave (7 sites) never started
        rows = {r["site_id"]: r for r in await rollouts.site_rows(cid)}
        assert rows["site-02"]["state"] == "rolled_back" and rows["site-02"]["reason"].startswith("sip:")
        assert {rows[s]["state"] for s in SITES[3:]} == {"skipped"}
        assert rows["site-00"]["state"] == "committed"
    finally:
        await store.close()
