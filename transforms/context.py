"""What one run computes for: reference data, as_of, the month range and
parameters.  Built once by the pipeline and handed to every step."""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

from pipelines.config import Config
from reference import Reference
from transforms.timeutil import business_date


def month_range(spec: str) -> list[dt.date]:
    """'2023-01..2023-11' (or a single '2023-11') -> first days of those months."""
    start, _, end = spec.partition("..")
    end = end or start
    y, m = (int(x) for x in start.split("-"))
    ey, em = (int(x) for x in end.split("-"))
    if (y, m) > (ey, em):
        raise ValueError(f"empty month range {spec!r}")
    out = []
    while (y, m) <= (ey, em):
        out.append(dt.date(y, m, 1))
        y, m = (y + 1, 1) if m == 12 else (y, m + 1)
    return out


def month_end(first: dt.date) -> dt.date:
    nxt = dt.date(first.year + 1, 1, 1) if first.month == 12 else dt.date(first.year, first.month + 1, 1)
    return nxt - dt.timedelta(days=1)


def default_months(as_of: dt.datetime) -> list[dt.date]:
    """January of as_of's business year through as_of's business month."""
    d = business_date(as_of)
    return month_range(f"{d.year}-01..{d.year}-{d.month:02d}")


@dataclass(frozen=True)
class RunContext:
    ref: Reference
    config: Config
    as_of: dt.datetime  # aware, UTC
    months: list[dt.date]  # output months (first days)
    extra: dict = field(default_factory=dict)

    @property
    def as_of_date(self) -> dt.date:
        return business_date(self.as_of)

    def param(self, name: str):
        return self.config.parameters[name]
