"""Times as an operator types them: ISO 8601 with an offset, or local to a time zone.

The store keeps float Unix epoch seconds; the API accepts ``2026-11-26T09:00:00+01:00``,
``2026-11-26T09:00`` or ``2026-11-26`` read in the ``tz`` parameter's zone (an IANA
name, UTC by default), or plain epoch seconds, and answers with both.
"""

from __future__ import annotations

import math
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from fastapi import HTTPException

TZ_PATTERN = r"^[A-Za-z][A-Za-z0-9_+\-/]{0,63}$"


class BadInput(HTTPException):
    """A 422 naming the parameter that is wrong."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(422, message)
        self.field = field


def zone(name: str | None, field: str = "tz") -> ZoneInfo:
    if not name:
        return ZoneInfo("UTC")
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        raise BadInput(field, f"{field}: unknown time zone {name!r} (use an IANA name like Europe/Paris)") from None


def parse_time(value: str | None, tz: ZoneInfo, field: str) -> float | None:
    """Epoch seconds of ``value``; a value without an offset is local time in ``tz``."""
    if value is None or value == "":
        return None
    text = value.strip()
    try:
        epoch = float(text)
    except ValueError:
        pass
    else:
        if not math.isfinite(epoch) or abs(epoch) > 1e11:
            raise BadInput(field, f"{field}: {value!r} is not a usable epoch time")
        return epoch
    try:
        if len(text) == 10:
            moment = datetime.combine(date.fromisoformat(text), time(0))
        else:
            moment = datetime.fromisoformat(text.replace("Z", "+00:00") if text.endswith("Z") else text)
    except ValueError:
        raise BadInput(field, f"{field}: {value!r} is not ISO 8601 (2026-11-26T09:00:00+01:00, "
                              f"2026-11-26T09:00 in tz, 2026-11-26) or epoch seconds") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=tz)
    try:
        return moment.timestamp()
    except (OverflowError, ValueError):
        raise BadInput(field, f"{field}: {value!r} is out of range") from None


def day_bounds(day: str | None, tz: ZoneInfo, now: float, field: str = "date") -> tuple[float, float]:
    """Start and end (epoch) of a local calendar day in ``tz``; today when ``day`` is None."""
    if day:
        try:
            d = date.fromisoformat(day)
        except ValueError:
            raise BadInput(field, f"{field}: {day!r} is not a date (YYYY-MM-DD)") from None
    else:
        d = datetime.fromtimestamp(now, tz).date()
    start = datetime.combine(d, time(0), tz)
    try:
        end = datetime.combine(d + timedelta(days=1), time(0), tz)
    except OverflowError:
        raise BadInput(field, f"{field}: {day!r} is out of range") from None
    return start.timestamp(), end.timestamp()


def local_iso(epoch: float | None, tz: ZoneInfo) -> str | None:
    if epoch is None:
        return None
    try:
        return datetime.fromtimestamp(epoch, tz).isoformat(timespec="seconds")
    except (OverflowError, ValueError, OSError):
        return None
