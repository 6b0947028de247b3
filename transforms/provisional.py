"""Is an indicator row still provisional at as_of? (WAREHOUSE.md ``provisional``)

A row is provisional while later events can still change it under the
contract's own rules:

- its period has not ended at as_of (business date, Asia/Shanghai): any
  indicator — a stock is evaluated at the period end, a flow still gathers
  records, an open case's deadline in the period has not passed (an open case
  counts only once its deadline is before as_of's date, so for the case
  indicators "period not ended" is exactly "an open case not yet due");
- I13 also while a settlement of the period may still be inside its
  ``settlement_list_days`` (30) window: such a settlement without a list is
  left out of the denominator until the window closes (June's 206/206 = 100 %
  on 15 July). The last settlement of a period can happen on its last day, so
  the row is final once as_of's business date is ``period_end + days + 1``.

Decided per period from the calendar, not from the records: a region with no
settlement in the period's last days is still marked until the window of the
period's last day has closed, which is what the analyst can check by hand.
"""
from __future__ import annotations

import datetime as dt

#: indicators whose numerator waits on a due window after the period (days parameter)
WINDOWED = {"I13": "settlement_list_days"}


def provisional(code: str, period_end: dt.date, as_of_date: dt.date, params) -> bool:
    """``params``: the run's parameters (``ctx.param``-like mapping)."""
    if as_of_date <= period_end:
        return True
    window = WINDOWED.get(code)
    if window is None:
        return False
    return as_of_date <= period_end + dt.timedelta(days=int(params[window]))
