"""Rankings (排名) and comparisons over time (环比 / 同比) of indicator values.

One place computes them, so the HTML report, the XLSX workbook and the CSV
show the same ranks and changes:

- ``rank``: competition ranking ("1224") of regions on one indicator and
  period, best first — highest value for a ``>=`` target, lowest for a
  ``<=`` one; equal values share a rank, a region without a value (0/0) has
  none. Ranked together are regions of one level: the counties of a pooling
  region, or the pooling regions of a province.
- ``previous``: the same period one month earlier (环比: the previous month,
  or the year to date through it) and one year earlier (同比); a change is
  the difference in percentage points (百分点), None where either side is
  missing — January has no year-to-date 环比.
- ``small``: a denominator below ``SMALL_DENOMINATOR`` records or cases: a
  rate on 1 case is not comparable with a rate on 30, so the report and the
  exports flag it. Money sums, C01 and the structural counts (I19's
  counties, the catalogue's matters) are never "small": they are not samples.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from decimal import Decimal

from report import data
from report.data import Period, Region
from transforms.indicators.catalog import BY_CODE, MONEY

SMALL_DENOMINATOR = 30
NOT_SAMPLES = MONEY | {"C01"} | {i.code for i in BY_CODE.values()
                                 if i.time_rule in ("presence", "catalogue")}


def month_before(p: Period) -> Period | None:
    return Period(p.year - 1, 12) if p.month == 1 else Period(p.year, p.month - 1)


def year_before(p: Period) -> Period:
    return Period(p.year - 1, p.month)


def small(code: str, denominator) -> bool:
    """A count denominator under SMALL_DENOMINATOR (0/0 is 'no data', not small)."""
    if code in NOT_SAMPLES or denominator is None:
        return False
    return 0 < Decimal(denominator) < SMALL_DENOMINATOR


def rank(rows: Iterable[dict]) -> dict[str, int]:
    """region_code -> competition rank among ``rows`` (one indicator and period)."""
    valued = [r for r in rows if r.get("value") is not None]
    if not valued:
        return {}
    worse_first = (valued[0].get("direction") or BY_CODE[valued[0]["indicator_code"]].direction)
    key = (lambda r: r["value"]) if worse_first == "<=" else (lambda r: -r["value"])
    ordered = sorted(valued, key=key)
    ranks: dict[str, int] = {}
    for i, r in enumerate(ordered):
        same = i and key(ordered[i - 1]) == key(r)
        ranks[r["region_code"]] = ranks[ordered[i - 1]["region_code"]] if same else i + 1
    return ranks


def ranks(rows: Iterable[dict]) -> dict[tuple[str, str, str], int]:
    """(indicator, region, period_type) -> rank within each indicator and period type."""
    groups: dict[tuple[str, str], list[dict]] = {}
    for r in rows:
        groups.setdefault((r["indicator_code"], r["period_type"]), []).append(r)
    return {
        (code, region, t): n
        for (code, t), group in groups.items()
        for region, n in rank(group).items()
    }


def siblings(con, r: Region) -> list[Region]:
    """The regions ``r`` is ranked among (itself included): the counties of its
    pooling region, or the pooling regions of its province; none for a province."""
    if r.level == "province":
        return []
    if r.level == "county":
        found = data.peers(con, r)
        return found if any(f.code == r.code for f in found) else [r, *found]
    found = data.rows(
        con,
        "SELECT region_code AS code, name, level, parent_code, pooling_code FROM dim_region"
        " WHERE level = 'pooling' AND parent_code = ? ORDER BY region_code",
        [r.parent_code],
    )
    regions = [Region(**f) for f in found]
    return regions if any(x.code == r.code for x in regions) else [r, *regions]


def period_values(con, codes: Sequence[str], period: Period | None) -> dict[str, list[dict]]:
    """MONTH and YTD nightly rows of ``codes`` for ``period`` (empty when None)."""
    if period is None or not codes:
        return {"MONTH": [], "YTD": []}
    return {t: data.values(con, list(codes), period, t) for t in ("MONTH", "YTD")}


class Comparison:
    """The rows of a set of regions for the report period, the month before
    and the year before, with ranks in each; built with three queries per
    period type."""

    def __init__(self, con, region_codes: Sequence[str], period: Period,
                 ranked: Sequence[str] = ()):
        """``ranked``: the region codes ranked against each other (a subset of
        ``region_codes``; empty = no ranking)."""
        self.period = period
        codes = list(dict.fromkeys(region_codes))
        self.now = period_values(con, codes, period)
        self.mom = period_values(con, codes, month_before(period))
        self.yoy = period_values(con, codes, year_before(period))
        ranked_set = set(ranked)

        def index(by_type):
            return {(r["indicator_code"], r["region_code"], t): r
                    for t, rs in by_type.items() for r in rs}

        def ranking(by_type):
            return ranks(r for rs in by_type.values() for r in rs
                         if r["region_code"] in ranked_set) if len(ranked_set) > 1 else {}

        self._now, self._mom, self._yoy = index(self.now), index(self.mom), index(self.yoy)
        self.rank_now, self.rank_mom, self.rank_yoy = (
            ranking(self.now), ranking(self.mom), ranking(self.yoy))
        self.ranked_count = len(ranked_set) if len(ranked_set) > 1 else 0

    def row(self, code: str, region: str, t: str) -> dict | None:
        return self._now.get((code, region, t))

    def extras(self, code: str, region: str, t: str) -> dict:
        """Rank, its change and the 环比 / 同比 changes of one cell."""
        key = (code, region, t)
        now, mom, yoy = self._now.get(key), self._mom.get(key), self._yoy.get(key)
        if t == "YTD" and self.period.month == 1:
            mom = None  # January's year to date has no earlier one in its year
        value = now and now["value"]

        def change(before):
            if value is None or not before or before["value"] is None:
                return None
            return value - before["value"]

        def rank_change(ranks_before):
            n, b = self.rank_now.get(key), ranks_before.get(key)
            return None if n is None or b is None else b - n  # positive = moved up

        return {
            "rank": self.rank_now.get(key),
            "rank_of": self.ranked_count or None,
            "rank_change_mom": rank_change(self.rank_mom),
            "rank_change_yoy": rank_change(self.rank_yoy),
            "mom": change(mom),
            "yoy": change(yoy),
            "mom_value": mom and mom["value"],
            "yoy_value": yoy and yoy["value"],
            "small": bool(now) and small(code, now["denominator"]),
        }


def cell(row: dict | None) -> dict:
    """A scorecard cell: the row plus how far from the target it is (``margin``,
    positive = headroom) and its ``status``: met | missed | nodata (0/0) |
    notarget | absent (no row)."""
    if row is None:
        return {"status": "absent"}
    value, target = row["value"], row["target"]
    margin = None
    if value is not None and target is not None:
        margin = value - target if row["direction"] != "<=" else target - value
    status = {True: "met", False: "missed"}.get(row["meets_target"], "nodata")
    if status == "nodata" and value is not None:
        status = "notarget"  # a value but no target configured: no verdict
    return {**row, "margin": margin, "status": status}
