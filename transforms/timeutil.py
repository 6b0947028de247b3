"""Business time: Asia/Shanghai dates of UTC instants, and working days.

Business dates are the Asia/Shanghai local date of an instant, never the
machine's zone.  Working days follow the official calendar with 调休
make-up days via the ``chinesecalendar`` package (maintained, covers each
year's State Council notice); outside the years it knows we fall back to
Monday–Friday and log a warning once per year.
"""
from __future__ import annotations

import datetime as dt
import functools
import logging
from zoneinfo import ZoneInfo

import chinese_calendar

BUSINESS_TZ = ZoneInfo("Asia/Shanghai")
log = logging.getLogger(__name__)


def business_date_sql(column: str) -> str:
    """DuckDB expression: the Asia/Shanghai date of a TIMESTAMPTZ column."""
    return f"CAST(({column}) AT TIME ZONE 'Asia/Shanghai' AS DATE)"


def business_date(instant: dt.datetime) -> dt.date:
    if instant.tzinfo is None:
        raise ValueError("business_date needs an aware datetime (a UTC instant)")
    return instant.astimezone(BUSINESS_TZ).date()


def parse_instant(text: str) -> dt.datetime:
    """ISO 8601 instant; a naive time is Asia/Shanghai (ARCHITECTURE.md)."""
    value = dt.datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    if value.tzinfo is None:
        value = value.replace(tzinfo=BUSINESS_TZ)
    return value.astimezone(dt.UTC)


@functools.cache
def _warn_unknown_year(year: int) -> None:
    log.warning("chinesecalendar has no data for %s: using Monday-Friday working days", year)


@functools.lru_cache(maxsize=65536)
def is_working_day(day: dt.date) -> bool:
    # Cached: chinesecalendar validates its whole table on every call.
    try:
        return chinese_calendar.is_workday(day)
    except NotImplementedError:
        _warn_unknown_year(day.year)
        return day.weekday() < 5


@functools.lru_cache(maxsize=65536)
def deadline(start: dt.date, working_days: int) -> dt.date:
    """deadline(d, 0) = d if working, else the next working day;
    deadline(d, N>0) = the N-th working day after d (INDICATORS.md)."""
    day = start
    if working_days <= 0:
        while not is_working_day(day):
            day += dt.timedelta(days=1)
        return day
    remaining = working_days
    while remaining:
        day += dt.timedelta(days=1)
        if is_working_day(day):
            remaining -= 1
    return day
