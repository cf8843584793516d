"""A site's real result that arrives after its install timeout (the box was cut off from
the broker and sent it when it was back) replaces the timeout; duplicates change nothing."""

from __future__ import annotations

from fleet.rollouts import Campaign, CampaignSpec

T0 = 1_700_000_000.0


def campaign(**kw: object) -> Campaign:
    spec: dict[str, object] = dict(name="c", bundle_version="2.0.0", bundle_url="http://x/b", sites=["a", "b"],
                                   waves=(1.0,), window_start_h=0, window_end_h=0, install_timeout_s=60,
                                   error_threshold=0.6, success_threshold=0.5)
    spec.update(kw)
    return Campaign(CampaignSpec(**spec))  # type: ignore[arg-type]


def test_a_late_rollback_replaces_the_timeout_and_a_duplicate_is_ignored() -> None:
    c = campaign()
    assert c.start_next(T0) == ["a", "b"]
    assert c.report("b", "committed", "", T0 + 10)
    assert c.expire(T0 + 61) == ["a"]
    assert (c.sites["a"].state, c.sites["a"].check) == ("failed", "timeout")
    assert c.state == "done"  # 1 of 2 committed is enough here
    assert c.report("a", "rolled_back", "api: the control API is turned off", T0 + 3600, "api")
    a = c.sites["a"]
    assert (a.state, a.check, a.reason, a.done_at) == ("rolled_back", "api", "api: the control API is turned off",
                                                       T0 + 3600)
    assert not c.report("a", "rolled_back", "api: the control API is turned off", T0 + 3700, "api")  # duplicate
    assert not c.report("b", "committed", "", T0 + 3700)  # duplicate
    assert c.state == "done" and c.summary()["sites"] == {"committed": 1, "rolled_back": 1}


def test_a_late_commit_lets_a_running_wave_finish_but_a_halted_campaign_stays_halted() -> None:
    c = campaign(error_threshold=0.6, success_threshold=0.5, sites=["a", "b", "c"], waves=(2, 1.0))
    assert c.start_next(T0) == ["a", "b"]
    c.expire(T0 + 61)  # both time out: 2 of 2 failed > 60 %: halted, "c" skipped
    assert c.state == "halted" and c.sites["c"].state == "skipped"
    assert c.report("a", "committed", "", T0 + 120)
    assert c.sites["a"].state == "committed" and c.state == "halted"

    c = campaign(error_threshold=0.9, success_threshold=0.5, sites=["a", "b", "c"], waves=(2, 1.0))
    c.start_next(T0)
    assert c.report("b", "rolled_back", "crash_loop", T0 + 5, "crash_loop")
    c.expire(T0 + 61)  # 0 of 2 succeeded < 50 %: halted
    assert c.state == "halted"

    c = campaign(error_threshold=1.0, success_threshold=0.5, sites=["a", "b", "c"], waves=(2, 1.0))
    c.start_next(T0)
    assert c.report("b", "committed", "", T0 + 5)
    c.expire(T0 + 61)  # 1 of 2 committed: the next wave starts
    assert c.wave == 1 and c.start_next(T0 + 62) == ["c"]
    assert c.report("a", "committed", "", T0 + 90)  # the late one is counted where it belongs
    assert c.sites["a"].state == "committed" and c.state == "running"
    assert c.report("c", "committed", "", T0 + 100)
    assert c.state == "done"


def test_a_site_that_never_started_cannot_report() -> None:
    c = campaign()
    assert not c.report("a", "committed", "", T0)
    assert not c.report("nobody", "committed", "", T0)
    assert c.sites["a"].state == "waiting"
