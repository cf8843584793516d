"""Trunk keepalive judgement and the WAN mode switch, on injected time."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from edge_core.config.schema import SiteConfig, Trunk, WanSettings
from edge_core.routing.dialplan import DialPlan, TrunkTarget
from edge_core.routing.trunks import TrunkChanged, TrunkMonitor
from edge_core.routing.wan import Mode, ModeChanged, WanMonitor


def trunk(name: str = "central", **kw: object) -> Trunk:
    base: dict[str, object] = {"name": name, "host": "192.0.2.1", "kind": "wan", "options_interval_s": 1.0,
                               "options_timeout_s": 0.5, "down_after": 2, "up_after": 2}  # fmt: skip
    return Trunk.model_validate(base | kw)


# -- trunks ------------------------------------------------------------------------------


def test_first_probe_goes_at_once_and_trunks_start_up() -> None:
    m = TrunkMonitor([trunk()], now=0.0)
    assert m.usable("central") and m.get_timer() == 0.0
    assert m.handle_timer(0.0) == ["central"]


def test_two_unanswered_probes_take_a_trunk_down_and_two_answers_bring_it_back() -> None:
    m = TrunkMonitor([trunk()], now=0.0)
    now = 0.0
    for _ in range(2):  # probe, then its timeout
        assert m.handle_timer(now) == ["central"]
        m.sent("central", now)
        now += 0.5
        assert m.handle_timer(now) == []
        now += 0.5
    assert not m.usable("central")
    (down,) = m.take_events()
    assert down == TrunkChanged("central", "wan", False, "keepalive timeout", 1.5)
    probe = m.handle_timer(now) and m.sent("central", now)
    m.answered("central", probe, 200, now + 0.01)
    assert not m.usable("central")  # one answer is not enough
    now += 1.0
    probe = m.handle_timer(now) and m.sent("central", now)
    m.answered("central", probe, 404, now + 0.02)  # alive, even if it does not do OPTIONS
    rtt = m.trunks["central"].rtt_ms
    assert m.usable("central") and rtt is not None and abs(rtt - 20.0) < 1e-6
    (up,) = m.take_events()
    assert up.up and up.cause == "answered 404"


def test_a_late_answer_after_its_timeout_is_ignored_and_503_is_a_failure() -> None:
    m = TrunkMonitor([trunk(down_after=1)], now=0.0)
    m.handle_timer(0.0)
    first = m.sent("central", 0.0)
    m.handle_timer(0.6)  # timed out: down
    assert not m.usable("central")
    m.answered("central", first, 200, 0.7)  # too late: changes nothing
    assert m.trunks["central"].successes == 0
    m2 = TrunkMonitor([trunk(down_after=1)], now=0.0)
    m2.handle_timer(0.0)
    m2.answered("central", m2.sent("central", 0.0), 503, 0.1)
    assert not m2.usable("central")


def test_a_trunk_that_goes_silent_is_down_within_two_intervals_with_the_defaults() -> None:
    """Default wan keepalive: every 1 s, 1 s to answer, down after 2 misses: a cut is
    seen within 2-3 s (the goal for survivable mode is 3 s)."""
    m = TrunkMonitor([Trunk.model_validate({"name": "central", "host": "192.0.2.1", "kind": "wan"})], now=0.0)
    now = 0.0
    for name in m.handle_timer(now):
        m.answered(name, m.sent(name, now), 200, now + 0.01)
    cut = 0.5  # the link goes between two probes; nothing is answered from here on
    while m.usable("central"):
        now = m.get_timer() or now
        for name in m.handle_timer(now):
            m.sent(name, now)
    assert now - cut <= 2.5, now


def test_probes_keep_coming_when_the_timeout_equals_the_interval() -> None:
    m = TrunkMonitor([trunk(options_interval_s=0.3, options_timeout_s=0.3, down_after=3)], now=0.0)
    now, sent = 0.0, 0
    while now < 3.0:
        for name in m.handle_timer(now):
            m.sent(name, now)
            sent += 1
        now = m.get_timer() or now + 0.3
    assert sent >= 5 and not m.usable("central")


def test_keepalive_defaults_by_kind_fast_for_the_wan() -> None:
    assert Trunk.model_validate({"name": "c", "host": "h", "kind": "wan"}).keepalive_s == 1.0
    assert Trunk.model_validate({"name": "p", "host": "h"}).keepalive_s == 30.0
    assert Trunk.model_validate({"name": "p", "host": "h", "options_interval_s": 0}).keepalive_s == 0


def test_wan_up_is_judged_on_wan_trunks_with_keepalive_only() -> None:
    assert TrunkMonitor([trunk(kind="local")], now=0.0).wan_up() is None
    assert TrunkMonitor([trunk(options_interval_s=0)], now=0.0).wan_up() is None
    assert TrunkMonitor([trunk()], now=0.0).wan_up() is True


# -- the WAN mode --------------------------------------------------------------------------


def wan(**kw: object) -> WanSettings:
    return WanSettings.model_validate({"up_after_s": 5.0, "min_dwell_s": 10.0} | kw)


def test_wan_down_is_survivable_at_once_and_up_needs_to_settle() -> None:
    m = WanMonitor(wan(), now=0.0)
    m.signal("trunks", True, 0.0)
    m.signal("fleet", True, 0.0)
    m.signal("fleet", False, 20.0)
    assert m.mode is Mode.NORMAL  # the trunks decide while there are some: a broker restart is no WAN loss
    m.signal("trunks", False, 21.0)
    assert m.mode is Mode.SURVIVABLE  # at once, though the MQTT session has not noticed (it has)
    assert m.take_events() == [ModeChanged(Mode.NORMAL, Mode.SURVIVABLE, "wan down (trunks)", 21.0, 21.0)]
    m.signal("trunks", True, 40.0)
    assert m.mode is Mode.SURVIVABLE and m.get_timer() == 45.0
    m.handle_timer(45.0)
    assert m.mode is Mode.NORMAL
    (back,) = m.take_events()
    assert (back.cause, back.previous_s) == ("wan up", 24.0)


def test_a_signal_with_nothing_behind_it_is_left_out() -> None:
    m = WanMonitor(wan(), now=0.0)
    m.signal("trunks", None, 0.0)  # no wan trunks at this site
    m.signal("fleet", False, 1.0)
    assert m.mode is Mode.SURVIVABLE
    assert m.take_events()[0].cause == "wan down (fleet)"


def test_drill_forces_survivable_for_its_duration_then_the_wan_decides() -> None:
    m = WanMonitor(wan(min_dwell_s=0.0), now=0.0)
    m.drill(60.0, 10.0)
    assert m.mode is Mode.SURVIVABLE and m.drilling and m.get_timer() == 70.0
    m.handle_timer(70.0)
    assert m.mode is Mode.NORMAL and not m.drilling
    assert [e.cause for e in m.take_events()] == ["drill", "drill over"]


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.floats(0.05, 3.0), st.booleans()), min_size=1, max_size=60))
def test_a_flapping_link_changes_the_mode_at_most_once_per_dwell_window(flaps: list[tuple[float, bool]]) -> None:
    m = WanMonitor(wan(up_after_s=1.0, min_dwell_s=10.0), now=0.0)
    now = 0.0
    for gap, up in flaps:
        target = now + gap
        while (t := m.get_timer()) is not None and t <= target:
            m.handle_timer(t)
        now = target
        m.signal("trunks", up, now)
        m.signal("fleet", up, now)
    changes = m.take_events()
    for a, b in zip(changes, changes[1:], strict=False):
        assert b.at - a.at >= 10.0 - 1e-9
    for a, b in zip(changes, changes[1:], strict=False):
        assert a.new is b.old  # a consistent history


# -- the dial plan ------------------------------------------------------------------------------


def test_emergency_numbers_go_to_local_trunks_first_whatever_the_routes_say() -> None:
    config = SiteConfig.model_validate({
        "site": {"id": "s"},
        "trunks": [{"name": "central", "host": "192.0.2.1", "kind": "wan"},
                   {"name": "pstn", "host": "192.0.2.2", "kind": "local"}],
        "routes": [{"match": r"^\d+$", "trunks": ["central", "pstn"]}],
    })  # fmt: skip
    plan = DialPlan(config)
    target = plan.route("112")
    assert isinstance(target, TrunkTarget) and target.emergency
    assert [t.name for t in target.trunks] == ["pstn", "central"]
    ordinary = plan.route("5551234")
    assert isinstance(ordinary, TrunkTarget) and not ordinary.emergency
    assert [t.name for t in ordinary.trunks] == ["central", "pstn"]


# -- outbound registration -------------------------------------------------------------------


def test_registration_refreshes_before_expiry_and_backs_off_after_failures() -> None:
    from edge_core.routing.registration import OutboundRegistrations

    carrier = Trunk.model_validate({"name": "carrier", "host": "192.0.2.9", "registration": True,
                                    "username": "u", "password": "p", "register_expires_s": 600})  # fmt: skip
    r = OutboundRegistrations([carrier, trunk("plain")], now=0.0)
    assert r.handle_timer(0.0) == ["carrier"]  # only trunks that register
    first = r.sent("carrier")
    assert r.answered("carrier", first, 401, "Unauthorized", None, 0.1) == "challenge"
    second = r.sent("carrier", challenged=True)
    assert r.answered("carrier", first, 200, "OK", 300, 0.2) == "stale"  # an older request's answer
    assert r.answered("carrier", second, 200, "OK", 300, 0.2) == "registered"
    assert r.get_timer() == 0.2 + 240.0  # 80 % of the granted 300 s
    third = r.handle_timer(240.2) and r.sent("carrier")
    assert r.answered("carrier", third, 401, "Unauthorized", None, 240.3) == "challenge"
    fourth = r.sent("carrier", challenged=True)
    assert r.answered("carrier", fourth, 401, "Unauthorized", None, 240.4) == "failed"  # wrong password
    assert r.registrations["carrier"].reason == "401 Unauthorized"
    assert r.get_timer() == 240.4 + 5.0
    fifth = r.handle_timer(245.4) and r.sent("carrier")
    r.timed_out("carrier", fifth, 277.4)
    assert r.get_timer() == 277.4 + 10.0  # backing off
