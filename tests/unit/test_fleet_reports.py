"""fleet/reports.py without a database: buckets in time zones, time parsing, ratios, CSV."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo, available_timezones

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from fleet.reports import QueueInterval, bucket, parse_time, to_csv, zone

NY = ZoneInfo("America/New_York")


def test_buckets_across_the_autumn_change() -> None:
    first = datetime(2024, 11, 3, 1, 30, tzinfo=NY).timestamp()  # EDT
    second = first + 3600  # the same wall time again, EST
    assert bucket(first, "hour", NY) != bucket(second, "hour", NY)
    assert bucket(first, "day", NY) == bucket(second, "day", NY)
    start, end = bucket(first, "day", NY)
    assert end - start == 25 * 3600
    spring = datetime(2024, 3, 10, 12, 0, tzinfo=NY).timestamp()
    start, end = bucket(spring, "day", NY)
    assert end - start == 23 * 3600


def test_half_hour_zone_hours_start_at_half_past_utc() -> None:
    t = datetime.fromisoformat("2024-06-01T10:05:00+00:00").timestamp()
    start, _ = bucket(t, "hour", ZoneInfo("Asia/Kolkata"))
    assert datetime.fromtimestamp(start, ZoneInfo("UTC")).strftime("%H:%M") == "09:30"
    assert bucket(t, "15min", ZoneInfo("Asia/Kolkata")) == (t - 300, t + 600)


def test_parse_time() -> None:
    assert parse_time("1700000000.5", None) == 1700000000.5
    assert parse_time("2024-11-03T09:00", "America/New_York") == 1730642400.0
    assert parse_time("2024-11-03T14:00", None) == 1730642400.0
    assert parse_time("2024-11-03T14:00:00+00:00", "Asia/Tokyo") == 1730642400.0
    with pytest.raises(ValueError):
        parse_time("noon", None)
    with pytest.raises(ValueError):
        zone("Nowhere/Special")


def test_ratios_are_none_without_a_denominator() -> None:
    row = QueueInterval(site_id="b1", queue="q", start=0.0, end=900.0)
    d = row.as_dict()
    assert all(d[k] is None for k in ("service_level", "asa_s", "aht_s", "transfer_rate", "csat"))
    assert d["start_local"] == "1970-01-01T00:00:00+00:00"
    assert to_csv([]) == ""
    assert to_csv([{"a": 1, "b": None}]) == "a,b\n1,\n"


zones = st.sampled_from(sorted(z for z in available_timezones() if "/" in z and not z.startswith("posix")))


@settings(max_examples=300, deadline=None)
@given(st.floats(min_value=946684800, max_value=4102444800), zones, st.sampled_from(["15min", "hour", "day"]))
@example(1025611199.9999995, "Europe/London", "hour")  # half a microsecond before the hour (fromtimestamp rounds up)
def test_a_bucket_holds_its_time_and_is_its_own_bucket(t: float, name: str, granularity: str) -> None:
    tz = ZoneInfo(name)
    start, end = bucket(t, granularity, tz)  # type: ignore[arg-type]
    assert start <= t < end
    assert bucket(start, granularity, tz) == (start, end)  # type: ignore[arg-type]
    if granularity == "day":
        assert datetime.fromtimestamp(start, tz).date() == datetime.fromtimestamp(t, tz).date()
