"""Install windows in each site's own time zone (sans-I/O rules), and the control loop
reading the zones from the sites' desired configs (a real fleet store, SQLite and
PostgreSQL; the MQTT side is a list of what was published)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import pytest

from edge_core.telemetry import protocol
from fleet.rollout_control import RolloutController, site_zones
from fleet.rollouts import Campaign, CampaignSpec, RolloutStore, in_window, site_zone
from fleet.store import FleetStore, schema

PARIS, NEW_YORK, TOKYO = "Europe/Paris", "America/New_York", "Asia/Tokyo"


def spec(sites: list[str], **kw: Any) -> CampaignSpec:
    base: dict[str, Any] = dict(name="c", bundle_version="2.0.0", bundle_url="http://x/b", sites=sites,
                                waves=(1.0,), window_start_h=20, window_end_h=6, bundle_sha256="ab" * 32,
                                bundle_size=1)
    base.update(kw)
    return CampaignSpec(**base)


def utc(hour: int, minute: int = 30, day: int = 5) -> float:
    """2024-03-(day) hour:minute UTC (before either side's DST change)."""
    return datetime(2024, 3, day, hour, minute, tzinfo=UTC).timestamp()


def test_each_site_starts_in_its_own_window() -> None:
    c = Campaign(spec(["paris", "nyc"]))
    zones = {"paris": PARIS, "nyc": NEW_YORK}
    # 20:30 UTC = 21:30 in Paris (inside 20-06), 15:30 in New York (business hours)
    assert c.start_next(utc(20), zones) == ["paris"]
    assert c.sites["paris"].state == "installing" and c.sites["paris"].reason == ""
    nyc = c.sites["nyc"]
    assert nyc.state == "waiting"
    assert nyc.reason == "waiting for window (20:00 local, America/New_York)"
    # an hour later New York is still at work
    assert c.start_next(utc(21), zones) == []
    # 01:30 UTC next day = 20:30 in New York: its turn; the reason is gone
    assert c.start_next(utc(1, day=6), zones) == ["nyc"]
    assert nyc.state == "installing" and nyc.reason == ""
    # with the single campaign zone (the old rule) both would have started at 20:30 UTC
    assert Campaign(spec(["paris", "nyc"])).start_next(utc(20)) == ["paris", "nyc"]


def test_window_in_new_york_late_evening_is_early_morning_in_paris() -> None:
    c = Campaign(spec(["paris", "nyc"]))
    zones = {"paris": PARIS, "nyc": NEW_YORK}
    # 06:30 UTC = 07:30 Paris (window over), 01:30 New York (inside)
    assert c.start_next(utc(6), zones) == ["nyc"]
    assert c.sites["paris"].reason == "waiting for window (20:00 local, Europe/Paris)"


def test_a_site_without_a_known_zone_uses_the_campaign_zone() -> None:
    sites = ["none", "empty", "mars", "dotdot", "number", "paris"]
    zones: dict[str, object] = {"empty": "", "mars": "Mars/Olympus_Mons", "dotdot": "../../etc/passwd",
                                "number": 5, "paris": PARIS}
    c = Campaign(spec(sites, timezone=TOKYO))
    # 03:30 UTC: 12:30 in Tokyo (outside), 04:30 in Paris (inside)
    assert c.start_next(utc(3), zones) == ["paris"]
    assert c.sites["none"].reason == "waiting for window (20:00 local, campaign zone Asia/Tokyo)"
    assert c.sites["empty"].reason == "waiting for window (20:00 local, campaign zone Asia/Tokyo)"
    assert c.sites["mars"].reason == ("waiting for window (20:00 local, campaign zone Asia/Tokyo; "
                                      "site zone 'Mars/Olympus_Mons' unknown)")
    assert "site zone '../../etc/passwd' unknown" in c.sites["dotdot"].reason
    assert "site zone 5 unknown" in c.sites["number"].reason
    # 12:30 UTC: 21:30 in Tokyo -- every fallback site starts (UTC itself would be 12:30: outside)
    assert sorted(c.start_next(utc(12), zones)) == ["dotdot", "empty", "mars", "none", "number"]


def test_an_unknown_campaign_zone_falls_back_to_utc() -> None:
    """A campaign stored before the API checked its zone must not stop the control loop."""
    s = spec(["a", "b"], timezone="Nowhere/Special")
    assert site_zone(s, None)[1] == "UTC"
    assert site_zone(s, "Atlantis")[1] == "UTC; site zone 'Atlantis' unknown"
    assert in_window(s, utc(21)) and not in_window(s, utc(12))
    c = Campaign(s)
    assert c.start_next(utc(12), {"a": "Atlantis"}) == []
    assert c.sites["a"].reason == "waiting for window (20:00 local, UTC; site zone 'Atlantis' unknown)"
    assert c.start_next(utc(21), {"a": "Atlantis"}) == ["a", "b"]


def test_concurrency_counts_only_sites_that_start() -> None:
    """A site outside its window does not take a place: the next site in its window starts."""
    c = Campaign(spec(["nyc", "paris", "berlin"], max_concurrent=1))
    zones = {"nyc": NEW_YORK, "paris": PARIS, "berlin": "Europe/Berlin"}
    assert c.start_next(utc(20), zones) == ["paris"]
    assert c.sites["berlin"].reason == ""  # in its window, waiting for a free place
    assert c.sites["nyc"].reason.startswith("waiting for window")
    c.report("paris", "committed", "", utc(20))
    assert c.start_next(utc(20), zones) == ["berlin"]


def test_skipped_sites_lose_their_window_reason() -> None:
    c = Campaign(spec(["paris", "nyc", "la"], error_threshold=0.1))
    zones = {"paris": PARIS, "nyc": NEW_YORK, "la": "America/Los_Angeles"}
    assert c.start_next(utc(20), zones) == ["paris"]
    assert c.sites["nyc"].reason.startswith("waiting for window")
    c.report("paris", "rolled_back", "api: down", utc(20), "api")
    assert c.state == "halted"
    assert [(c.sites[s].state, c.sites[s].reason) for s in ("nyc", "la")] == [("skipped", "")] * 2


# -- the control loop: zones from the desired configs -----------------------------------


class Published:
    """What ``tick`` publishes (the MqttConnection's ``publish``)."""

    def __init__(self) -> None:
        self.commands: list[tuple[str, protocol.Command]] = []

    def publish(self, topic: str, payload: bytes, qos: int = 0, retain: bool = False) -> None:
        site, kind = protocol.parse_topic(topic)
        assert kind == "cmd" and qos == 1
        self.commands.append((site, protocol.Command.from_bytes(payload)))


@pytest.fixture
async def store(db_url: str) -> AsyncIterator[FleetStore]:
    store = await FleetStore.open(db_url)
    yield store
    await store.close()


async def desired(store: FleetStore, site: str, version: int, site_section: dict[str, Any]) -> None:
    """A desired-config row as the config store writes it (written directly: an invalid
    zone must be possible here, as from a fleet whose tz database differs from this one)."""
    async with store.transaction() as conn:
        await conn.execute(schema.config_versions.insert().values(
            site_id=site, version=version, body={"site": {"id": site, **site_section}}, sources={},
            author="test", reason="", created_at=0.0))


async def test_site_zones_reads_the_latest_desired_config(store: FleetStore) -> None:
    await desired(store, "paris", 1, {"timezone": NEW_YORK})
    await desired(store, "paris", 2, {"timezone": PARIS})  # moved: the newest version counts
    await desired(store, "plain", 1, {})
    await desired(store, "mars", 1, {"timezone": "Mars/Olympus_Mons"})
    got = await site_zones(store.engine, ["paris", "plain", "mars", "unregistered"])
    assert got == {"paris": PARIS, "mars": "Mars/Olympus_Mons"}
    assert await site_zones(store.engine, []) == {}
    many = [f"x{i}" for i in range(1200)]  # more than one IN (...) chunk
    assert await site_zones(store.engine, [*many, "paris"]) == {"paris": PARIS}


async def test_control_loop_starts_each_site_in_its_own_window(store: FleetStore) -> None:
    await desired(store, "paris", 1, {"timezone": PARIS})
    await desired(store, "nyc", 1, {"timezone": NEW_YORK})
    await desired(store, "mars", 1, {"timezone": "Mars/Olympus_Mons"})  # unknown: campaign zone
    await desired(store, "plain", 1, {})  # none: campaign zone
    rollouts = RolloutStore(store.engine)
    await rollouts.create_tables()
    cid = await rollouts.create(Campaign(spec(["paris", "nyc", "mars", "plain"], timezone=TOKYO,
                                                install_timeout_s=86_400)))
    now = [utc(20)]  # 21:30 Paris, 15:30 New York, 05:30 Tokyo (next day)
    controller = RolloutController(rollouts, "mqtt://127.0.0.1:1", clock=lambda: now[0], zone_ttl_s=86_400)
    conn = Published()

    await controller.tick(conn)  # type: ignore[arg-type]
    assert [(site, c.op) for site, c in conn.commands] == [("paris", protocol.UPDATE_OP),
                                                            ("mars", protocol.UPDATE_OP),
                                                            ("plain", protocol.UPDATE_OP)]
    rows = {r["site_id"]: r for r in await rollouts.site_rows(cid)}
    assert rows["nyc"]["state"] == "waiting"
    assert rows["nyc"]["reason"] == "waiting for window (20:00 local, America/New_York)"
    assert {rows[s]["state"] for s in ("paris", "mars", "plain")} == {"installing"}

    # the zones are cached (for zone_ttl_s): the next ticks read no config
    lookups = controller.counters["zone_lookups"]
    now[0] = utc(23)  # 18:30 in New York
    await controller.tick(conn)  # type: ignore[arg-type]
    assert controller.counters["zone_lookups"] == lookups and len(conn.commands) == 3
    now[0] = utc(1, day=6)  # 20:30 in New York
    await controller.tick(conn)  # type: ignore[arg-type]
    assert conn.commands[-1][0] == "nyc" and len(conn.commands) == 4
    assert controller.counters["zone_lookups"] == lookups
    row = {r["site_id"]: r for r in await rollouts.site_rows(cid)}["nyc"]
    assert (row["state"], row["reason"]) == ("installing", "")
    args = protocol.UpdateArgs.model_validate(conn.commands[-1][1].args)
    assert args.campaign == cid and json.loads(conn.commands[-1][1].to_bytes())["id"] == args.report_id


async def test_control_loop_reads_a_zone_again_after_its_ttl(store: FleetStore) -> None:
    await desired(store, "branch", 1, {"timezone": NEW_YORK})
    rollouts = RolloutStore(store.engine)
    await rollouts.create_tables()
    cid = await rollouts.create(Campaign(spec(["branch"])))
    now = [utc(20)]
    controller = RolloutController(rollouts, "mqtt://127.0.0.1:1", clock=lambda: now[0], zone_ttl_s=60)
    conn = Published()
    await controller.tick(conn)  # type: ignore[arg-type]
    assert conn.commands == []
    await desired(store, "branch", 2, {"timezone": PARIS})  # the branch's config changes zone
    now[0] += 30
    await controller.tick(conn)  # type: ignore[arg-type]
    assert conn.commands == []  # cached New York still
    now[0] += 61
    await controller.tick(conn)  # type: ignore[arg-type]
    assert [site for site, _ in conn.commands] == ["branch"]
    assert (await rollouts.site_rows(cid))[0]["state"] == "installing"
