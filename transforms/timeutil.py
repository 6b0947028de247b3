"""Business time: Asia/Shanghai dates of UTC instants, and working days.

Business dates are the Asia/Shanghai local date of an instant, never the
machine's zone.  Working days follow the official calendar with 调休
make-up days (``WorkCalendar``), per year from the first source that has it:

1. ``config``: the ``calendar:`` section of the YAML config, copied by the
   operator from the State Council notice published each November (the
   package's next release may come months later);
2. ``chinesecalendar``: the package (it knows 2004 to its release year);
3. ``weekdays``: Monday–Friday, with a warning once per year (and a
   ``calendar_missing`` data-quality alert when the year is in a run's scope).

The calendar travels inside the run's Config (pickled into Beam DoFns with
the RunContext), never as process-global state set by the launcher.
"""
from __future__ import annotations

import datetime as dt
import functools
import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from zoneinfo import ZoneInfo

import chinese_calendar

from pipelines.errors import UsageError

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


# --- working days -----------------------------------------------------------

#: How far before a run's first month a deadline counted in it can start:
#: 45 working days (S04's national limit) span about nine calendar weeks,
#: plus the longest holiday.
DEADLINE_REACH = dt.timedelta(days=92)


@functools.cache
def package_knows(year: int) -> bool:
    """Whether chinesecalendar has the State Council notice of ``year``."""
    try:
        chinese_calendar.is_workday(dt.date(year, 1, 1))
    except NotImplementedError:
        return False
    return True


@functools.lru_cache(maxsize=65536)
def _package_is_working_day(day: dt.date) -> bool:
    # Cached: chinesecalendar validates its whole table on every call.
    return chinese_calendar.is_workday(day)


@functools.cache
def _warn_weekdays(year: int) -> None:
    log.warning("no official working-day calendar for %s (neither the config's calendar: section "
                "nor chinesecalendar has it): using Monday-Friday; add %s's holidays and workdays "
                "from the State Council notice to calendar: in the config", year, year)


@dataclass(frozen=True)
class OfficialYear:
    """One year's State Council notice: the days off (放假; weekend days
    inside a holiday may be listed) and the weekend days worked (调休上班).
    Every other day is a working day Monday to Friday."""

    holidays: frozenset[dt.date]
    workdays: frozenset[dt.date]

    def is_working_day(self, day: dt.date) -> bool:
        if day in self.workdays:
            return True
        return day not in self.holidays and day.weekday() < 5


class WorkCalendar:
    """Working days and deadlines: a year in ``official`` (from the config)
    is served by it entirely, else by chinesecalendar, else Monday–Friday."""

    def __init__(self, official: Mapping[int, OfficialYear] | None = None):
        self.official = dict(official or {})
        self._deadlines: dict[tuple[dt.date, int], dt.date] = {}

    def __reduce__(self):  # pickled (into Beam DoFns) without its memo
        return (WorkCalendar, (self.official,))

    def __repr__(self) -> str:
        return f"WorkCalendar(config years {sorted(self.official)})"

    def source(self, year: int) -> str:
        """config | chinesecalendar | weekdays: who serves ``year``."""
        if year in self.official:
            return "config"
        return "chinesecalendar" if package_knows(year) else "weekdays"

    def sources(self, years: Iterable[int]) -> dict[int, str]:
        out = {year: self.source(year) for year in sorted(set(years))}
        for year, source in out.items():
            if source == "weekdays":
                _warn_weekdays(year)
        return out

    def is_working_day(self, day: dt.date) -> bool:
        official = self.official.get(day.year)
        if official is not None:
            return official.is_working_day(day)
        if package_knows(day.year):
            return _package_is_working_day(day)
        _warn_weekdays(day.year)
        return day.weekday() < 5

    def deadline(self, start: dt.date, working_days: int) -> dt.date:
        """deadline(d, 0) = d if working, else the next working day;
        deadline(d, N>0) = the N-th working day after d (INDICATORS.md)."""
        key = (start, working_days)
        if key not in self._deadlines:
            day, remaining = start, working_days
            if remaining <= 0:
                while not self.is_working_day(day):
                    day += dt.timedelta(days=1)
            while remaining > 0:
                day += dt.timedelta(days=1)
                if self.is_working_day(day):
                    remaining -= 1
            self._deadlines[key] = day
        return self._deadlines[key]


#: No config: chinesecalendar, else Monday–Friday (the data generator's calendar).
PACKAGE_CALENDAR = WorkCalendar()


def is_working_day(day: dt.date) -> bool:
    return PACKAGE_CALENDAR.is_working_day(day)


def deadline(start: dt.date, working_days: int) -> dt.date:
    return PACKAGE_CALENDAR.deadline(start, working_days)


def calendar_years(months: list[dt.date], as_of_date: dt.date) -> list[int]:
    """The years whose working days a run's deadlines can use: from
    DEADLINE_REACH before its first month to the end of its last month or
    as_of's date, whichever is earlier (later deadlines decide nothing)."""
    first = months[0] - DEADLINE_REACH
    nxt = months[-1].replace(day=28) + dt.timedelta(days=4)
    last = max(first, min(nxt - dt.timedelta(days=nxt.day), as_of_date))
    return list(range(first.year, last.year + 1))


# --- the config's calendar: section -----------------------------------------


def parse_calendar(section, where: str = "config") -> WorkCalendar:
    """``calendar: {2027: {holidays: [...], workdays: [...]}}`` -> WorkCalendar.

    A day is a date or a ``YYYY-MM-DD..YYYY-MM-DD`` range (both ends
    included), as the notice writes "2月6日至14日放假".  Each mistake is one
    UsageError line naming the year and the day."""
    if not section:
        return WorkCalendar()
    if not isinstance(section, Mapping):
        raise UsageError(f"{where}: calendar: must map a year to {{holidays: [...], workdays: "
                         f"[...]}}, not {section!r}")
    official: dict[int, OfficialYear] = {}
    for key, spec in section.items():
        year = _year(key, where)
        if year in official:
            raise UsageError(f"{where}: calendar {year} is given twice: keep one entry")
        official[year] = _official_year(year, spec, f"{where}: calendar {year}")
    return WorkCalendar(official)


def _year(key, where: str) -> int:
    text = str(key).strip()
    if isinstance(key, bool) or not (text.isdigit() and len(text) == 4):
        raise UsageError(f"{where}: calendar key {key!r} is not a year: write e.g. 2027:")
    return int(text)


def _official_year(year: int, spec, where: str) -> OfficialYear:
    if not isinstance(spec, Mapping):
        raise UsageError(f"{where}: write {{holidays: [...], workdays: [...]}}, not {spec!r}")
    unknown = sorted(map(str, set(spec) - {"holidays", "workdays"}))
    if unknown:
        raise UsageError(f"{where}: unknown key {', '.join(unknown)}: only holidays (days off) and "
                         "workdays (weekend days worked, 调休) are read")
    holidays = _days(spec.get("holidays"), year, f"{where} holidays")
    workdays = _days(spec.get("workdays"), year, f"{where} workdays")
    if not holidays:
        raise UsageError(f"{where}: no holidays listed: copy the days off from that year's "
                         "State Council notice (New Year's Day at least)")
    both = sorted(holidays & workdays)
    if both:
        raise UsageError(f"{where}: {both[0]} is both a holiday and a workday: keep it in one list")
    weekday = sorted(d for d in workdays if d.weekday() < 5)
    if weekday:
        raise UsageError(f"{where} workdays: {weekday[0]} is a {weekday[0]:%A}, a working day "
                         "anyway: list only the weekend days worked (调休上班)")
    return OfficialYear(frozenset(holidays), frozenset(workdays))


def _days(items, year: int, where: str) -> set[dt.date]:
    if items is None:
        return set()
    if isinstance(items, str | dt.date):
        items = [items]
    if not isinstance(items, list):
        raise UsageError(f"{where}: write a list of dates, not {items!r}")
    out: set[dt.date] = set()
    for item in items:
        first, last = _day_range(item, where)
        for day in (first, last):
            if day.year != year:
                raise UsageError(f"{where}: {day} is not in {year}: each year lists its own days")
        out.update(first + dt.timedelta(days=i) for i in range((last - first).days + 1))
    return out


def _day_range(item, where: str) -> tuple[dt.date, dt.date]:
    if isinstance(item, dt.date) and not isinstance(item, dt.datetime):
        return item, item
    start, _, end = str(item).partition("..")
    try:
        first = dt.date.fromisoformat(start.strip())
        last = dt.date.fromisoformat(end.strip()) if end else first
    except ValueError:
        raise UsageError(f"{where}: {item!r} is not a date: write YYYY-MM-DD or "
                         "YYYY-MM-DD..YYYY-MM-DD") from None
    if last < first:
        raise UsageError(f"{where}: {item!r} is reversed: write the earlier day first")
    return first, last
