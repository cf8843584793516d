"""Campaign rules (sans-I/O): windows, concurrency, thresholds, pause/resume/abort."""

from __future__ import annotations

from datetime import UTC, datetime

from fleet.rollouts import Campaign, CampaignSpec, in_window

SITES = [f"s{i}" for i in range(20)]


def spec(**kw: object) -> CampaignSpec:
    base: dict[str, object] = dict(name="c", bundle_version="2.0.0", bundle_url="http://x/b", sites=SITES,
                                   window_start_h=0, window_end_h=0)
    base.update(kw)
    return CampaignSpec(**base)  # type: ignore[arg-type]


def at(hour: int) -> float:
    return datetime(2024, 3, 5, hour, 30, tzinfo=UTC).timestamp()


def test_window_wraps_midnight() -> None:
    s = spec(window_start_h=20, window_end_h=6)
    assert [in_window(s, at(h)) for h in (19, 20, 23, 0, 5, 6, 12)] == [False, True, True, True, True, False, False]
    c = Campaign(s)
    assert c.start_next(at(12)) == []
    assert c.start_next(at(22)) == ["s0"]


def test_waves_advance_and_finish_with_concurrency_cap() -> None:
    c = Campaign(spec(max_concurrent=2))
    assert [len(w) for w in c.waves] == [1, 4, 15]
    now = at(1)
    while c.state == "running":
        started = c.start_next(now)
        assert 0 < len(started) <= 2
        for site in started:
            c.report(site, "committed", "", now)
    assert c.state == "done" and c.summary()["sites"] == {"committed": 20}


def test_success_threshold_and_operator_controls() -> None:
    c = Campaign(spec(error_threshold=0.5, success_threshold=0.9))
    c.report("s0", "committed", "", at(1))  # not started yet: ignored
    assert c.sites["s0"].state == "waiting"
    (first,) = c.start_next(at(1))
    c.report(first, "committed", "", at(1))
    c.pause()
    assert c.start_next(at(1)) == []
    c.resume()
    wave2 = c.start_next(at(1))
    for site, outcome in zip(wave2, ["committed", "committed", "committed", "rolled_back"], strict=True):
        c.report(site, outcome, "api: down" if outcome != "committed" else "", at(1))
    assert c.state == "halted" and "3 of 4 succeeded" in c.halt_reason
    c2 = Campaign(spec())
    c2.start_next(at(1))
    c2.abort()
    assert c2.state == "aborted" and c2.summary()["sites"]["skipped"] == 19
