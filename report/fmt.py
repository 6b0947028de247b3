"""How numbers are shown. Every indicator value is a ratio, shown as a
percentage with two decimals: a 99% target needs them (98.96% is a miss)."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from zoneinfo import ZoneInfo

BUSINESS_TZ = ZoneInfo("Asia/Shanghai")
DASH = "–"


def pct(value, signed: bool = False) -> str:
    if value is None:
        return DASH
    return f"{value * 100:+.2f}%" if signed else f"{value * 100:.2f}%"


def points(margin) -> str:
    """A margin in percentage points (百分点), signed."""
    return DASH if margin is None else f"{margin * 100:+.2f} 百分点"


def amount(value) -> str:
    """A numerator or denominator: counts whole, money sums with 2 decimals."""
    if value is None:
        return DASH
    d = Decimal(value)
    return f"{d:,.0f}" if d == d.to_integral_value() else f"{d:,.2f}"


def count(value) -> str:
    return DASH if value is None else f"{value:,}"


def raw(value) -> str:
    """The exact value for data-raw attributes (tests compare it with SQL)."""
    if value is None:
        return ""
    if isinstance(value, float):
        return repr(value)
    return str(value)


def instant(value: dt.datetime | None) -> str:
    """UTC and the Asia/Shanghai wall time (business dates are Shanghai dates)."""
    if value is None:
        return DASH
    utc = value.astimezone(dt.UTC)
    local = value.astimezone(BUSINESS_TZ)
    return f"{utc:%Y-%m-%d %H:%M:%S} UTC（北京时间 {local:%Y-%m-%d %H:%M}）"
