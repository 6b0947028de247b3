"""Integer time for the generator: instants as epoch milliseconds (UTC),
dates as epoch days — the Avro wire values, so records need no conversion.

Business dates are Asia/Shanghai dates.  China has had no daylight saving
since 1991, so a fixed +08:00 offset gives exactly the zone's local date for
every year the generator covers (and keeps per-record work to integer maths).
"""
from __future__ import annotations

import datetime as dt
import functools
import re
from dataclasses import dataclass

from transforms import timeutil

DAY_MS = 86_400_000
HOUR_MS = 3_600_000
MINUTE_MS = 60_000
BJ_OFFSET_MS = 8 * HOUR_MS
_EPOCH_ORDINAL = dt.date(1970, 1, 1).toordinal()
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


def day_of(ms: int) -> int:
    """Epoch day of the Asia/Shanghai business date of an instant."""
    return (ms + BJ_OFFSET_MS) // DAY_MS


def at(day: int, seconds: int) -> int:
    """Instant of ``seconds`` after Beijing midnight of epoch day ``day``."""
    return day * DAY_MS + seconds * 1000 - BJ_OFFSET_MS


def to_date(day: int) -> dt.date:
    return dt.date.fromordinal(day + _EPOCH_ORDINAL)


def from_date(date: dt.date) -> int:
    return date.toordinal() - _EPOCH_ORDINAL


def ymd(day: int) -> str:
    return to_date(day).strftime("%Y%m%d")


@functools.cache
def is_working_day(day: int) -> bool:
    return timeutil.is_working_day(to_date(day))


@functools.cache
def deadline(day: int, working_days: int) -> int:
    """INDICATORS.md deadline(d, N) on epoch days (transforms.timeutil)."""
    return from_date(timeutil.deadline(to_date(day), working_days))


@dataclass(frozen=True)
class Month:
    year: int
    month: int

    @property
    def label(self) -> str:
        return f"{self.year:04d}-{self.month:02d}"

    @property
    def first_day(self) -> int:
        return from_date(dt.date(self.year, self.month, 1))

    @property
    def next(self) -> Month:
        return Month(self.year + self.month // 12, self.month % 12 + 1)

    @property
    def last_day(self) -> int:
        return self.next.first_day - 1


def parse_months(text: str) -> list[Month]:
    """``2022-01..2023-12`` (or a single ``2023-05``) -> the months, in order."""
    m = re.fullmatch(r"(\d{4})-(\d{2})(?:\.\.(\d{4})-(\d{2}))?", text.strip())
    if not m:
        raise ValueError(f"--months must look like 2022-01..2023-12, got {text!r}")
    first = Month(int(m[1]), int(m[2]))
    last = Month(int(m[3]), int(m[4])) if m[3] else first
    if not (1 <= first.month <= 12 and 1 <= last.month <= 12):
        raise ValueError(f"--months has a month outside 01-12: {text!r}")
    if (last.year, last.month) < (first.year, first.month):
        raise ValueError(f"--months ends before it starts: {text!r}")
    months = [first]
    while months[-1] != last:
        months.append(months[-1].next)
    return months


def month_label(ms: int) -> str:
    """YYYY-MM of the business date of an instant (file names)."""
    d = to_date(day_of(ms))
    return f"{d.year:04d}-{d.month:02d}"


def iso_beijing(ms: int) -> str:
    """ISO 8601 with +08:00 and milliseconds, e.g. 2023-12-31T23:59:59.999+08:00."""
    t = (_EPOCH + dt.timedelta(milliseconds=ms)).astimezone(timeutil.BUSINESS_TZ)
    return t.isoformat(timespec="milliseconds")
