"""Erlang B/C staffing (fleet/erlang.py): published examples and properties."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fleet.erlang import asa_s, erlang_b, erlang_c, required_agents, service_level, staffing


def test_erlang_b_table_value() -> None:
    """Erlang B tables (e.g. ITU-T E.800-series traffic tables, or any teletraffic
    textbook's appendix) give B(A=10 E, N=10) = 0.2146 and B(A=5, N=10) = 0.01838."""
    assert erlang_b(10, 10) == pytest.approx(0.2146, abs=5e-5)
    assert erlang_b(5, 10) == pytest.approx(0.01838, abs=5e-6)
    assert erlang_b(3.0, 0) == 1.0


def test_erlang_c_small_closed_form() -> None:
    """By hand from C(N, A) = (A^N/N! · N/(N-A)) / (Σ_{k<N} A^k/k! + A^N/N! · N/(N-A)):
    N=3, A=2 gives (4/3 · 3) / (1 + 2 + 2 + 4) = 4/9; N=1 is M/M/1, C = A."""
    assert erlang_c(2, 3) == pytest.approx(4 / 9, rel=1e-12)
    assert erlang_c(0.7, 1) == pytest.approx(0.7, rel=1e-12)


def test_call_centre_helper_example() -> None:
    """Call Centre Helper, "Erlang C Formula – Made Simple With an Easy Worked Example":
    100 calls per 30 minutes, AHT 180 s, target 80 % answered in 20 s, so A = 10 Erlangs.
    With 11 agents the article's probability of waiting is 68.21 % and its ASA 122.8 s;
    adding agents one at a time, 14 is the first to reach the target (88.8 %)."""
    assert erlang_c(10, 11) == pytest.approx(0.6821, abs=5e-5)
    assert asa_s(10, 11, 180) == pytest.approx(122.8, abs=0.05)
    assert service_level(10, 13, 180, 20) < 0.8
    plan = staffing(100, 180, period_s=1800, target_sl=0.8, threshold_s=20)
    assert plan.traffic_erlangs == pytest.approx(10.0)
    assert plan.agents == 14
    assert plan.service_level == pytest.approx(0.888, abs=5e-4)
    assert plan.occupancy == pytest.approx(10 / 14)


def test_westbay_example() -> None:
    """Westbay Engineers, "The Erlang-C formula" (westbay.ndirect.co.uk/erlang.htm):
    360 calls per half hour, 4-minute calls, 55 agents, 15 s target: traffic 48 Erlangs,
    occupancy 0.873, probability of waiting 0.2387, ASA 0.1364 min (8.18 s),
    service level 84.6 %."""
    a = 360 * 4 / 30
    assert a == 48
    assert erlang_c(a, 55) == pytest.approx(0.2387, abs=5e-5)
    assert asa_s(a, 55, 240) == pytest.approx(8.18, abs=0.01)
    assert service_level(a, 55, 240, 15) == pytest.approx(0.846, abs=5e-4)


def test_no_traffic_needs_no_agents() -> None:
    plan = staffing(0, 180)
    assert plan.agents == 0 and plan.service_level == 1.0


def test_overloaded_agents_have_no_service() -> None:
    assert erlang_c(10, 10) == 1.0
    assert service_level(10, 9, 180, 20) == 0.0
    assert math.isinf(asa_s(10, 10, 180))


def test_huge_traffic_is_finite_and_stable() -> None:
    """50 000 Erlangs: factorials would overflow a float at N=171; the recursion does not."""
    n, sl, c = required_agents(50_000, 300, 0.8, 20)
    assert 50_000 < n < 50_100
    assert 0.8 <= sl < 1 and 0 < c <= 1
    assert service_level(50_000, n - 1, 300, 20) < 0.8


def test_bad_arguments_are_refused() -> None:
    with pytest.raises(ValueError):
        required_agents(10, 180, 1.0, 20)
    with pytest.raises(ValueError):
        staffing(-1, 180)
    with pytest.raises(ValueError):
        erlang_b(-1, 3)


traffic = st.floats(min_value=0.01, max_value=2000, allow_nan=False)
aht = st.floats(min_value=5, max_value=3600, allow_nan=False)
threshold = st.floats(min_value=0, max_value=600, allow_nan=False)
target = st.floats(min_value=0.05, max_value=0.99)


@settings(max_examples=200, deadline=None)
@given(traffic, aht, threshold, st.integers(min_value=0, max_value=50))
def test_more_agents_never_lower_service_level(a: float, h: float, t: float, extra: int) -> None:
    n = math.floor(a) + 1 + extra
    assert service_level(a, n + 1, h, t) >= service_level(a, n, h, t) - 1e-12
    assert asa_s(a, n + 1, h) <= asa_s(a, n, h) + 1e-9
    assert 0.0 <= erlang_c(a, n) <= 1.0


@settings(max_examples=200, deadline=None)
@given(traffic, aht, threshold, target)
def test_staffing_meets_the_target_with_the_fewest_agents(a: float, h: float, t: float, sl: float) -> None:
    n, predicted, _ = required_agents(a, h, sl, t)
    assert n > a
    assert predicted >= sl
    assert service_level(a, n, h, t) == pytest.approx(predicted)
    if n - 1 > a:
        assert service_level(a, n - 1, h, t) < sl


@settings(max_examples=100, deadline=None)
@given(st.floats(min_value=0.01, max_value=300), st.integers(min_value=1, max_value=400))
def test_recursion_matches_the_factorial_formula_where_that_is_exact(a: float, n: int) -> None:
    """The textbook sum, evaluated in log space, for N small enough to check."""
    logs = [k * math.log(a) - math.lgamma(k + 1) for k in range(n + 1)]
    top = max(logs)
    expected = math.exp(logs[n] - top) / sum(math.exp(x - top) for x in logs)
    assert erlang_b(a, n) == pytest.approx(expected, rel=1e-9, abs=1e-300)
