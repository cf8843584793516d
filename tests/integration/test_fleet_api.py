"""The NOC HTTP API on a real fleet store (SQLite always, PostgreSQL when a server
answers), filled through the store's own ingest path (``FleetStore.ingest`` with the
alarm rules the worker applies): every endpoint's happy path, tokens and roles (401,
403), the audit log of every change, CDR filters in the operator's time zone and the
CSV export, Prometheus text that parses, config push through a real mosquitto."""

from __future__ import annotations

import asyncio
import csv
import io
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from edge_core.telemetry import protocol as p
from fleet.alarms import AlarmRules, changes_for
from fleet.api import Role, TokenRegistry, create_app
from fleet.configs import ConfigStore, load_signing_key, public_key_b64
from fleet.store import FleetStore, IngestBatch
from tests.brokers import Mosquitto, mosquitto_binary

# 2026-03-10 09:15 in Paris (UTC+1) is 08:15 UTC
T0 = datetime(2026, 3, 10, 8, 15, tzinfo=UTC).timestamp()
SITES = ("b1", "b2", "b3", "b4")


@dataclass
class Fleet:
    store: FleetStore
    client: httpx.AsyncClient
    tokens: dict[str, str]
    published: list[tuple[str, bytes]] = field(default_factory=list)
    configs: ConfigStore | None = None

    def auth(self, role: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[role]}"}

    async def get(self, url: str, role: str = "viewer", **params: Any) -> Any:
        r = await self.client.get(url, headers=self.auth(role), params=params)
        assert r.status_code == 200, r.text
        return r.json()

    async def post(self, url: str, body: Any = None, role: str = "operator") -> httpx.Response:
        return await self.client.post(url, headers=self.auth(role), json=body)


def cdr(site: str, seq: int, start: float, caller: str, queue: str, disposition: str) -> p.Record:
    return p.Record(seq=seq, kind="cdr", at=start + 60, body={
        "call_id": f"{site}-{seq}", "from_number": caller, "to_number": "100", "queue": queue,
        "start_time": start, "answer_time": start + 5, "end_time": start + 60, "disposition": disposition})


def interval(seq: int, start: float, offered: int, answered: int, in_sl: int, abandoned: int) -> p.Record:
    return p.Record(seq=seq, kind="interval", at=start + 900, body={
        "kind": "queue", "name": "sales", "queue": "sales", "start": start, "end": start + 900,
        "offered": offered, "answered": answered, "answered_in_sl": in_sl, "abandoned": abandoned,
        "abandoned_in_sl": 0, "service_level": None})


async def ingest(store: FleetStore, now: float, *, states: list[tuple[str, p.State]] = (),  # type: ignore[assignment]
                 metrics: list[tuple[str, p.Metrics]] = (),  # type: ignore[assignment]
                 records: list[tuple[str, p.Record]] = ()) -> None:  # type: ignore[assignment]
    """Store messages as a worker would: the batch plus the alarm changes the rules derive."""
    rules = AlarmRules()
    changes = [c for site, m in [*states, *metrics, *records] for c in changes_for(rules, site, m)]
    await store.ingest(IngestBatch(now=now, states=list(states), metrics=list(metrics), records=list(records),
                                   alarms=changes))


def metrics_of(calls: float, level: float, wan: bool = True, at: float | None = None) -> p.Metrics:
    return p.Metrics(
        at=time.time() if at is None else at,
        gauges={"registrations": 12, "calls_active": calls, "calls_waiting": 2, "agents.available": 3,
                "agents.on_call": 2},
        queues={"sales": {"waiting": 2, "service_level": level, "asa_s": 12.5, "agents.available": 3}},
        trunks={"wan": wan, "pstn": True})


async def fill_fleet(store: FleetStore) -> None:
    """Four sites: b1 healthy, b2 survivable, b3 offline, b4 with a trunk down; CDRs at
    known times; today's intervals for b1 and some metrics history."""
    now = time.time()
    await store.set_site_groups("b1", actor="setup", region="north", site_type="small")
    await ingest(store, now, states=[
        ("b1", p.State(status="online", version="1.4.0")),
        ("b2", p.State(status="online", version="1.4.0", mode="survivable", mode_since=now - 300)),
        ("b3", p.State(status="online", version="1.3.9")),
        ("b4", p.State(status="online", version="1.4.0")),
    ])
    await ingest(store, now, states=[("b3", p.State(status="offline"))])
    for i, at in enumerate((now - 120, now - 60, now - 1)):
        await ingest(store, at, metrics=[("b1", metrics_of(3 + i, 0.9, at=at)), ("b2", metrics_of(1, 0.85, at=at)),
                                        ("b4", metrics_of(0, 0.95, wan=False, at=at))])
    day = datetime.fromtimestamp(now, UTC).replace(hour=0, minute=0, second=0, microsecond=0).timestamp()
    records = [
        cdr("b1", 1, T0, "+33612345678", "sales", "answered"),
        cdr("b1", 2, T0 + 3600, "+33698765432", "support", "abandoned"),
        cdr("b1", 3, T0 + 7200, "0612000000", "sales", "answered"),
        cdr("b1", 4, T0 + 86400, "=cmd|calc", "sales", "answered"),
    ]
    records += [interval(5 + i, day + i * 900, 10 + i, 8, 6 + i % 3, 1) for i in range(4)]
    await ingest(store, now, records=[("b1", r) for r in records])
    await ingest(store, now, records=[("b2", cdr("b2", 1, T0 + 600, "+33611111111", "sales", "answered"))])


def make_tokens(path: Path | None = None) -> tuple[TokenRegistry, dict[str, str]]:
    registry = TokenRegistry(path)
    secrets = {role.value: registry.issue(f"{role.value}-tok", role, created_by="test") for role in Role}
    return registry, secrets


@pytest.fixture
async def fleet(db_url: str, tmp_path: Path) -> AsyncIterator[Fleet]:
    store = await FleetStore.open(db_url)
    await fill_fleet(store)
    registry, secrets = make_tokens(tmp_path / "tokens.json")
    published: list[tuple[str, bytes]] = []

    async def publish(topic: str, payload: bytes) -> None:
        published.append((topic, payload))

    configs = ConfigStore(store, load_signing_key(tmp_path / "fleet.pem", create=True), publish)
    app = create_app(store, configs=configs, tokens=registry)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://noc") as client:
        yield Fleet(store, client, secrets, published, configs)
    await app.state.ctx.hub.close()
    await store.close()


# -- authentication -----------------------------------------------------------------------


async def test_no_token_is_401_and_low_roles_are_403(fleet: Fleet) -> None:
    for url in ("/api/v1/sites", "/api/v1/sites/b1", "/api/v1/alarms", "/api/v1/cdrs", "/api/v1/cdrs.csv",
                "/metrics", "/api/v1/events", "/api/v1/configs/scopes", "/api/v1/audit"):
        r = await fleet.client.get(url)
        assert r.status_code == 401, url
        assert r.headers["www-authenticate"] == "Bearer" and "token" in r.json()["error"]
        r = await fleet.client.get(url, headers={"Authorization": "Bearer not-a-token"})
        assert r.status_code == 401, url
    r = await fleet.post("/api/v1/configs/layers/base", {"config": {}, "reason": "x"}, role="viewer")
    assert r.status_code == 403 and "operator" in r.json()["error"]
    r = await fleet.post("/api/v1/sites/b1/configs/rollback", {"to_version": 1}, role="viewer")
    assert r.status_code == 403
    [alarm] = await fleet.get("/api/v1/alarms", site_id="b4")
    assert (await fleet.post(f"/api/v1/alarms/{alarm['id']}/ack", role="viewer")).status_code == 403
    assert (await fleet.post("/api/v1/tokens", {"name": "x", "role": "viewer"}, role="operator")).status_code == 403
    assert await fleet.store.list_config_versions("b1") == []  # nothing happened
    assert [a.action for a in await fleet.store.list_audit()] == ["site.groups"]
    assert await fleet.get("/api/v1/whoami", role="operator") == {"name": "operator-tok", "role": "operator"}


# -- sites and metrics --------------------------------------------------------------------


async def test_sites_list_health_filters_and_detail(fleet: Fleet) -> None:
    doc = await fleet.get("/api/v1/sites")
    sites = {s["id"]: s for s in doc["sites"]}
    assert list(sites) == list(SITES)
    assert {k: s["health"] for k, s in sites.items()} == {
        "b1": "online", "b2": "survivable", "b3": "offline", "b4": "alarms"}
    assert sites["b3"]["status"] == "offline" and sites["b1"]["version"] == "1.4.0"
    assert sites["b2"]["mode"] == "survivable" and sites["b4"]["active_alarms"] == 1
    assert sites["b1"]["last_seen"] is not None and sites["b1"]["region"] == "north"
    assert doc["summary"] == {"sites": 4, "online": 3, "offline": 1, "survivable": 1, "active_alarms": 3}
    assert [s["id"] for s in (await fleet.get("/api/v1/sites", status="offline"))["sites"]] == ["b3"]
    assert [s["id"] for s in (await fleet.get("/api/v1/sites", region="north"))["sites"]] == ["b1"]
    assert await fleet.get("/api/v1/summary") == doc["summary"]

    detail = await fleet.get("/api/v1/sites/b4")
    assert detail["site"]["id"] == "b4" and detail["metrics"]["trunks"] == {"wan": False, "pstn": True}
    assert detail["agents"] == {"available": 3.0, "on_call": 2.0}
    assert [(a["kind"], a["subject"]) for a in detail["alarms"]] == [("trunk_down", "wan")]
    r = await fleet.client.get("/api/v1/sites/nope", headers=fleet.auth("viewer"))
    assert r.status_code == 404 and "nope" in r.json()["error"]


async def test_live_metrics_history_and_intervals(fleet: Fleet) -> None:
    latest = await fleet.get("/api/v1/sites/b1/metrics")
    assert latest["gauges"]["calls_active"] == 5 and latest["queues"]["sales"]["service_level"] == 0.9
    history = await fleet.get("/api/v1/sites/b1/metrics/history")
    assert [pt["gauges"]["calls_active"] for pt in history["points"]] == [3, 4, 5]
    since = datetime.fromtimestamp(time.time() - 90, UTC).isoformat()
    assert len((await fleet.get("/api/v1/sites/b1/metrics/history", since=since))["points"]) == 2
    assert {m["site_id"] for m in await fleet.get("/api/v1/metrics/latest")} == {"b1", "b2", "b4"}
    r = await fleet.client.get("/api/v1/sites/b3/metrics", headers=fleet.auth("viewer"))
    assert r.status_code == 404 and "no metrics" in r.json()["error"]

    day = await fleet.get("/api/v1/sites/b1/intervals", tz="UTC")
    assert [i["offered"] for i in day["intervals"]] == [10, 11, 12, 13]
    first = day["intervals"][0]
    assert first["answered"] == 8 and first["service_level"] == pytest.approx(6 / 9)
    assert day["day_end"] - day["day_start"] == 86400
    assert (await fleet.get("/api/v1/sites/b1/intervals", date="2020-01-01"))["intervals"] == []


# -- alarms -------------------------------------------------------------------------------


async def test_alarm_filters_and_ack_is_audited(fleet: Fleet) -> None:
    active = await fleet.get("/api/v1/alarms")
    assert sorted((a["site_id"], a["kind"]) for a in active) == [
        ("b2", "survivable_mode"), ("b3", "site_offline"), ("b4", "trunk_down")]
    assert [a["kind"] for a in await fleet.get("/api/v1/alarms", severity="critical")] == ["site_offline"]
    assert [a["site_id"] for a in await fleet.get("/api/v1/alarms", site_id="b2")] == ["b2"]
    await ingest(fleet.store, time.time(), metrics=[("b4", metrics_of(0, 0.95, wan=True))])  # trunk back: cleared
    assert len(await fleet.get("/api/v1/alarms")) == 2
    cleared = await fleet.get("/api/v1/alarms", active="false")
    assert [(a["kind"], a["active"]) for a in cleared] == [("trunk_down", False)]
    assert len(await fleet.get("/api/v1/alarms", cleared="true")) == 3

    offline = next(a for a in active if a["kind"] == "site_offline")
    r = await fleet.post(f"/api/v1/alarms/{offline['id']}/ack")
    assert r.status_code == 200, r.text
    assert r.json()["acked_by"] == "operator-tok" and r.json()["acked_at"] is not None
    assert (await fleet.get(f"/api/v1/alarms/{offline['id']}"))["acked_by"] == "operator-tok"
    again = await fleet.post(f"/api/v1/alarms/{offline['id']}/ack", role="admin")
    assert again.status_code == 409 and "operator-tok" in again.json()["error"]
    assert (await fleet.post("/api/v1/alarms/999999/ack")).status_code == 404
    assert [a["id"] for a in await fleet.get("/api/v1/alarms", acked="true")] == [offline["id"]]
    [entry] = [a for a in await fleet.get("/api/v1/audit") if a["action"] == "alarm.ack"]
    assert (entry["actor"], entry["target"]) == ("operator-tok", str(offline["id"]))
    assert abs(entry["at"] - time.time()) < 60


# -- configuration ------------------------------------------------------------------------


async def test_config_push_versions_diff_rollback_drift_all_audited(fleet: Fleet) -> None:
    r = await fleet.post("/api/v1/configs/layers/base", {"config": {"sip": {"domain": "corp.local"}},
                                                         "reason": "fleet default"})
    assert r.status_code == 200, r.text
    assert r.json() == {"scope": "base", "layer_version": 1, "site_versions": {s: 1 for s in SITES}}
    r = await fleet.post("/api/v1/sites/b1/configs", {"config": {"sip": {"ring_timeout_s": 25}}, "reason": "slow"})
    assert r.status_code == 200 and r.json()["site_versions"] == {"b1": 2}
    r = await fleet.post("/api/v1/configs/layers/region:north", {"config": {"site": {"name": "North"}},
                                                                 "reason": "names"}, role="admin")
    assert r.json()["site_versions"] == {"b1": 3}

    versions = await fleet.get("/api/v1/sites/b1/configs")
    assert [(v["version"], v["author"], v["reason"]) for v in versions] == [
        (3, "admin-tok", "names"), (2, "operator-tok", "slow"), (1, "operator-tok", "fleet default")]
    assert all(v["body"] is None for v in versions)
    v3 = await fleet.get("/api/v1/sites/b1/configs/3")
    assert v3["body"]["site"] == {"id": "b1", "name": "North"} and v3["sources"] == {
        "base": 1, "region:north": 1, "site:b1": 1}
    diff = (await fleet.get("/api/v1/sites/b1/configs/diff", from_version=1, to_version=2))["diff"]
    assert diff.startswith("--- b1 v1\n+++ b1 v2\n") and '+    "ring_timeout_s": 25' in diff
    layer = await fleet.get("/api/v1/configs/layers/base/versions")
    assert [v["body"] for v in layer] == [{"sip": {"domain": "corp.local"}}]
    assert await fleet.get("/api/v1/configs/scopes") == ["base", "region:north", "site:b1"]

    # the edge reports v1: drift, with the diff reported -> desired
    await ingest(fleet.store, time.time(), states=[("b1", p.State(status="online", version="1.4.0",
                                                                  config_version=1))])
    drift = await fleet.get("/api/v1/sites/b1/drift")
    assert drift["drift"] and (drift["desired_version"], drift["reported_version"]) == (3, 1)
    assert "(reported)" in drift["diff"] and '"name": "North"' in drift["diff"]
    assert [s["id"] for s in (await fleet.get("/api/v1/sites", drift="true"))["sites"]] == list(SITES)

    r = await fleet.post("/api/v1/sites/b1/configs/rollback", {"to_version": 1, "reason": "bad change"})
    assert r.status_code == 200 and r.json()["site_versions"] == {"b1": 4}
    assert (await fleet.get("/api/v1/sites/b1/configs/4"))["body"] == (await fleet.get(
        "/api/v1/sites/b1/configs/1"))["body"]
    r = await fleet.post("/api/v1/configs/layers/region:north/rollback", {"to_version": 1}, role="admin")
    assert r.status_code == 200 and r.json()["layer_version"] == 2
    layer_diff = await fleet.get("/api/v1/configs/layers/region:north/diff", from_version=1, to_version=2)
    assert layer_diff["diff"] == ""

    # every published envelope is signed for its site
    public = p.load_public_key(public_key_b64(fleet.configs.signing_key).encode())  # type: ignore[union-attr]
    assert fleet.published
    for topic, payload in fleet.published:
        envelope = p.ConfigEnvelope.from_bytes(payload)
        p.verify_config(public, envelope, envelope.site)
        assert topic == p.topic(envelope.site, "config")

    audit = await fleet.get("/api/v1/audit")
    actions = [(a["action"], a["actor"], a["target"]) for a in reversed(audit)]
    assert ("config.layer", "operator-tok", "base") in actions
    assert ("config.layer", "operator-tok", "site:b1") in actions
    assert ("config.layer", "admin-tok", "region:north") in actions
    assert ("config.rollback", "operator-tok", "site:b1") in actions
    assert sum(a == "config.layer" for a, _, _ in actions) == 4  # three pushes and the layer rollback


async def test_config_errors_name_the_field(fleet: Fleet) -> None:
    r = await fleet.post("/api/v1/configs/layers/base", {"config": {"routes": [{"match": "(", "extension": "1"}]},
                                                         "reason": "broken"})
    assert r.status_code == 422
    assert r.json()["field"] == "site b1: routes[0].match" and r.json()["problems"]
    r = await fleet.post("/api/v1/configs/layers/base", {"config": {}})
    assert r.status_code == 422 and r.json()["field"] == "reason"
    r = await fleet.post("/api/v1/configs/layers/base", {"config": {}, "reason": "x", "extra": 1})
    assert r.status_code == 422 and r.json()["field"] == "extra"
    r = await fleet.client.post("/api/v1/configs/layers/base", headers={**fleet.auth("operator"),
                                "content-type": "application/json"}, content=b'{"config": {"a": NaN}, "reason": "x"}')
    assert r.status_code == 422 and "finite" in r.json()["error"]
    r = await fleet.post("/api/v1/configs/layers/nowhere", {"config": {}, "reason": "x"})
    assert r.status_code == 422 and r.json()["field"] == "scope"
    r = await fleet.post("/api/v1/sites/zz/configs", {"config": {}, "reason": "x"})
    assert r.status_code == 404
    r = await fleet.post("/api/v1/sites/b1/configs/rollback", {"to_version": 7})
    assert r.status_code == 404 and "to_version" in r.json()["error"]
    r = await fleet.client.get("/api/v1/sites/b1/configs/diff", headers=fleet.auth("viewer"),
                               params={"from_version": "x", "to_version": 1})
    assert r.status_code == 422 and r.json()["field"] == "from_version"
    assert await fleet.store.list_layer_versions("base") == []


async def test_read_only_api_answers_503_for_config_writes(db_url: str) -> None:
    store = await FleetStore.open(db_url)
    registry, secrets = make_tokens()
    app = create_app(store, tokens=registry)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://noc") as client:
        r = await client.post("/api/v1/configs/layers/base", json={"config": {}, "reason": "x"},
                              headers={"Authorization": f"Bearer {secrets['admin']}"})
    assert r.status_code == 503 and "not configured" in r.json()["error"]
    await store.close()


# -- CDRs ---------------------------------------------------------------------------------


async def test_cdr_search_filters_in_the_operators_zone(fleet: Fleet) -> None:
    page = await fleet.get("/api/v1/cdrs")
    assert [(c["site_id"], c["seq"]) for c in page["items"]] == [("b1", 4), ("b1", 3), ("b1", 2), ("b2", 1), ("b1", 1)]
    # 09:00-10:00 Paris time on 2026-03-10 = 08:00-09:00 UTC: b1/1 (08:15) and b2/1 (08:25)
    local = await fleet.get("/api/v1/cdrs", since="2026-03-10T09:00", until="2026-03-10T10:00", tz="Europe/Paris")
    offset = await fleet.get("/api/v1/cdrs", since="2026-03-10T09:00:00+01:00", until="2026-03-10T10:00:00+01:00")
    assert [c["seq"] for c in local["items"]] == [c["seq"] for c in offset["items"]] == [1, 1]
    assert local["items"][1]["start_local"] == "2026-03-10T09:15:00+01:00" and local["tz"] == "Europe/Paris"
    assert [c["seq"] for c in (await fleet.get("/api/v1/cdrs", since="2026-03-11", tz="Europe/Paris"))["items"]] == [4]
    assert [c["caller"] for c in (await fleet.get("/api/v1/cdrs", caller="+336*"))["items"]] == [
        "+33698765432", "+33611111111", "+33612345678"]
    assert [c["seq"] for c in (await fleet.get("/api/v1/cdrs", site_id="b1", queue="sales",
                                               disposition="answered"))["items"]] == [4, 3, 1]
    assert [c["seq"] for c in (await fleet.get("/api/v1/cdrs", disposition="abandoned"))["items"]] == [2]
    first = await fleet.get("/api/v1/cdrs", limit=2)
    assert first["next_offset"] == 2 and len(first["items"]) == 2
    last = await fleet.get("/api/v1/cdrs", limit=2, offset=4)
    assert last["next_offset"] is None and len(last["items"]) == 1
    for params, name in (({"tz": "Mars/Olympus"}, "tz"), ({"since": "yesterday"}, "since"),
                         ({"limit": 0}, "limit"), ({"until": "2026-13-01"}, "until")):
        r = await fleet.client.get("/api/v1/cdrs", headers=fleet.auth("viewer"), params=params)
        assert r.status_code == 422 and r.json()["field"] == name, (params, r.text)
        assert name in r.json()["error"]


async def test_cdr_csv_export(fleet: Fleet) -> None:
    r = await fleet.client.get("/api/v1/cdrs.csv", headers=fleet.auth("viewer"),
                               params={"site_id": "b1", "tz": "Europe/Paris"})
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
    assert "attachment" in r.headers["content-disposition"]
    rows = list(csv.DictReader(io.StringIO(r.text)))
    assert [row["seq"] for row in rows] == ["4", "3", "2", "1"]
    assert rows[3]["start_local"] == "2026-03-10T09:15:00+01:00" and rows[3]["caller"] == "+33612345678"
    assert rows[0]["caller"] == "'=cmd|calc"  # never a spreadsheet formula
    assert rows[3]["duration_s"] == "60.0" and rows[3]["queue"] == "sales"
    empty = await fleet.client.get("/api/v1/cdrs.csv", headers=fleet.auth("viewer"), params={"caller": "nobody"})
    assert empty.text.strip() == ",".join(
        ["site_id", "seq", "call_id", "start_time", "start_local", "caller", "callee", "queue", "disposition",
         "duration_s"])


async def test_csv_export_streams_many_pages(fleet: Fleet) -> None:
    start = T0 + 10 * 86400
    records = [("b3", cdr("b3", i, start + i, f"07{i:08d}", "bulk", "answered")) for i in range(1, 2502)]
    await ingest(fleet.store, time.time(), records=records)
    r = await fleet.client.get("/api/v1/cdrs.csv", headers=fleet.auth("viewer"), params={"queue": "bulk"})
    rows = list(csv.DictReader(io.StringIO(r.text)))
    assert len(rows) == 2501 and len({row["seq"] for row in rows}) == 2501


# -- Prometheus, tokens, events -----------------------------------------------------------


async def test_prometheus_metrics_parse(fleet: Fleet) -> None:
    from prometheus_client.parser import text_string_to_metric_families

    r = await fleet.client.get("/metrics", headers=fleet.auth("viewer"))
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
    samples = {(s.name, tuple(sorted(s.labels.items()))): s.value
               for fam in text_string_to_metric_families(r.text) for s in fam.samples}
    assert samples[("branchline_fleet_sites", (("status", "online"),))] == 3
    assert samples[("branchline_fleet_sites", (("status", "offline"),))] == 1
    assert samples[("branchline_fleet_alarms_active", (("severity", "critical"),))] == 1
    assert samples[("branchline_fleet_records_total", (("kind", "cdr"),))] == 5
    assert samples[("branchline_site_online", (("site", "b3"),))] == 0
    assert samples[("branchline_site_survivable", (("site", "b2"),))] == 1
    assert samples[("branchline_site_active_calls", (("site", "b1"),))] == 5
    assert samples[("branchline_site_registrations", (("site", "b1"),))] == 12
    assert samples[("branchline_site_queue_waiting", (("queue", "sales"), ("site", "b1")))] == 2
    assert samples[("branchline_site_queue_service_level", (("queue", "sales"), ("site", "b2")))] == 0.85
    assert samples[("branchline_site_trunk_up", (("site", "b4"), ("trunk", "wan")))] == 0


async def test_admin_manages_tokens_audited(fleet: Fleet, tmp_path: Path) -> None:
    r = await fleet.post("/api/v1/tokens", {"name": "carol", "role": "operator"}, role="admin")
    assert r.status_code == 201, r.text
    secret = r.json()["token"]
    assert (await fleet.client.get("/api/v1/whoami", headers={"Authorization": f"Bearer {secret}"})).json() == {
        "name": "carol", "role": "operator"}
    assert (await fleet.post("/api/v1/tokens", {"name": "carol", "role": "viewer"}, role="admin")).status_code == 409
    r = await fleet.post("/api/v1/tokens", {"name": "bad name", "role": "boss"}, role="admin")
    assert r.status_code == 422 and r.json()["field"] in ("name", "role")
    names = [t["name"] for t in await fleet.get("/api/v1/tokens", role="admin")]
    assert names == ["admin-tok", "carol", "operator-tok", "viewer-tok"]
    assert "secret" not in str(await fleet.get("/api/v1/tokens", role="admin"))
    assert TokenRegistry(tmp_path / "tokens.json").get("carol") is not None  # persisted (hash only)
    assert secret not in (tmp_path / "tokens.json").read_text()
    r = await fleet.client.delete("/api/v1/tokens/carol", headers=fleet.auth("admin"))
    assert r.status_code == 200
    assert (await fleet.client.get("/api/v1/whoami", headers={"Authorization": f"Bearer {secret}"})).status_code == 401
    r = await fleet.client.delete("/api/v1/tokens/admin-tok", headers=fleet.auth("admin"))
    assert r.status_code == 409
    actions = [(a["action"], a["actor"], a["target"]) for a in await fleet.get("/api/v1/audit")]
    assert actions[:2] == [("token.revoke", "admin-tok", "carol"), ("token.issue", "admin-tok", "carol")]


async def test_event_hub_sends_snapshot_then_changes(fleet: Fleet) -> None:
    hub = fleet.client._transport.app.state.ctx.hub  # type: ignore[attr-defined]
    queue = await hub.subscribe()
    name, first = queue.get_nowait()
    assert name == "sites" and [s["id"] for s in first["sites"]] == list(SITES)
    assert queue.get_nowait()[0] == "alarms"
    await ingest(fleet.store, time.time(), states=[("b1", p.State(status="offline"))])
    await hub.poll_once()
    got = [queue.get_nowait() for _ in range(queue.qsize())]
    site = next(data for n, data in got if n == "site")
    assert (site["id"], site["health"]) == ("b1", "offline")
    assert {n for n, _ in got} == {"site", "summary", "alarms"}
    hub.unsubscribe(queue)


# -- through a real broker ------------------------------------------------------------------


@pytest.mark.skipif(mosquitto_binary() is None, reason="mosquitto not installed")
async def test_pushed_config_is_retained_at_the_broker(db_url: str, tmp_path: Path) -> None:
    from fleet.mqtt import MqttConnection, RetainedPublisher

    store = await FleetStore.open(db_url)
    await fill_fleet(store)
    registry, secrets = make_tokens()
    key = load_signing_key(tmp_path / "fleet.pem", create=True)
    with Mosquitto(tmp_path / "mq") as broker:
        async with RetainedPublisher(broker.url, "api-pub") as publish:
            app = create_app(store, configs=ConfigStore(store, key, publish), tokens=registry)
            async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://noc") as client:
                r = await client.post("/api/v1/sites/b2/configs", json={"config": {"sip": {"domain": "b2.local"}},
                                      "reason": "own domain"}, headers={"Authorization": f"Bearer {secrets['operator']}"})
                assert r.status_code == 200, r.text
        async with MqttConnection(broker.url, "edge-b2") as edge:  # an edge connecting afterwards
            await edge.subscribe([(p.topic("b2", "config"), 1)])
            msg = await asyncio.wait_for(edge.messages.get(), 10)
    envelope = p.ConfigEnvelope.from_bytes(bytes(msg.payload))
    p.verify_config(p.load_public_key(public_key_b64(key).encode()), envelope, "b2")
    assert (envelope.version, envelope.author, envelope.config["sip"]["domain"]) == (1, "operator-tok", "b2.local")
    [entry] = await store.list_audit(actor="operator-tok")
    assert (entry.action, entry.target) == ("config.layer", "site:b2")
    await store.close()


def test_time_helpers_cover_dst() -> None:
    from fleet.api.times import day_bounds, parse_time, zone

    paris = zone("Europe/Paris")
    start, end = day_bounds("2026-03-29", paris, 0)  # spring forward: a 23-hour day
    assert end - start == 23 * 3600
    assert parse_time("2026-03-29T12:00", paris, "since") == datetime(2026, 3, 29, 10, tzinfo=UTC).timestamp()
    assert parse_time("1700000000", paris, "since") == 1_700_000_000
    assert parse_time("2026-03-29T12:00:00Z", paris, "since") == (
        datetime(2026, 3, 29, 12, tzinfo=UTC).timestamp())
    assert timedelta(seconds=end - start) == timedelta(hours=23)
