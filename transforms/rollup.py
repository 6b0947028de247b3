"""Roll-up: attribution-level components -> indicator_values rows for every
county, pooling region and the province, every month of the run, MONTH and
YTD, 0/0 rows included (INDICATORS.md "Common rules", "Rows").

Components add across regions (a province's rate is never an average of
its counties' rates); across time they add only for flow indicators.

The same sums split by member (institution or matter) are
``transforms.breakdown``'s; ``catalogue_members`` is the one definition of
the catalogue indicators' parts for both.
"""
from __future__ import annotations

import datetime as dt
import json
from collections import defaultdict
from decimal import Decimal, localcontext

from transforms.context import RunContext, month_end
from transforms.indicators.catalog import INDICATORS
from transforms.indicators.components import Component
from transforms.provisional import provisional

SIX = Decimal("0.000001")


def _add(into: dict, parts: dict) -> None:
    for k, v in parts.items():
        into[k] = into.get(k, 0) + v


def months_of(period_type: str, month: dt.date) -> list[dt.date]:
    if period_type == "MONTH":
        return [month]
    return [dt.date(month.year, m, 1) for m in range(1, month.month + 1)]


def periods(ctx: RunContext) -> list[tuple[str, dt.date, dt.date, dt.date]]:
    """(period_type, period_start, period_end, last month) for every run month."""
    out = []
    for m in ctx.months:
        out.append(("MONTH", m, month_end(m), m))
        out.append(("YTD", dt.date(m.year, 1, 1), month_end(m), m))
    return out


def region_parts(components: list[Component], ctx: RunContext) -> dict:
    """(code, region_code, month) -> summed parts; I19 kept as county sets."""
    ref = ctx.ref
    out: dict = defaultdict(dict)
    for c in components:
        for region in ref.attribution(c.attr):
            if region is not None:
                _add(out[(c.code, region, c.month)], c.parts)
    return out


def period_sum(parts: dict, code: str, region_code: str, months: list[dt.date]) -> dict:
    acc: dict = {}
    for m in months:
        _add(acc, parts.get((code, region_code, m), {}))
    return acc


def _ratio_parts(num, den) -> tuple[Decimal | None, Decimal | None, float | None]:
    num, den = Decimal(num), Decimal(den)
    return num, den, (float(num / den) if den != 0 else None)


def _c01(cur_sum, cur_cnt, prev_sum, prev_cnt):
    """numerator = avg - avg_prev, denominator = avg_prev, value = their ratio, unrounded."""
    comps = {"cur_sum": str(cur_sum), "cur_cnt": int(cur_cnt), "prev_sum": str(prev_sum),
             "prev_cnt": int(prev_cnt)}
    if cur_cnt == 0 or prev_cnt == 0:
        return None, None, None, comps
    with localcontext() as ctx:
        ctx.prec = 60
        avg, avg_prev = Decimal(cur_sum) / cur_cnt, Decimal(prev_sum) / prev_cnt
        num, den = avg - avg_prev, avg_prev
        value = float(num / den) if prev_sum != 0 else None
    return num, den, value, comps


def _year_earlier(month: dt.date) -> dt.date:
    return dt.date(month.year - 1, month.month, 1)


def indicator_rows(components: list[Component], ctx: RunContext) -> list[dict]:
    """Every indicator x region x month x (MONTH, YTD)."""
    ref = ctx.ref
    parts = region_parts(components, ctx)
    active_counties: dict[dt.date, set[str]] = defaultdict(set)
    for c in components:
        if c.code == "I19":
            active_counties[c.month].add(c.attr)
    counties_in = {
        code: [c.code for c in ref.counties if level == "province" or code in (c.code, c.pooling_code)]
        for code, level in ref.output_regions()
    }
    as_of_date = ctx.as_of_date
    rows = []
    for ind in INDICATORS:
        for region_code, level in ref.output_regions():
            applicable = ref.applicable_matters(region_code) if ind.time_rule == "catalogue" else None
            for period_type, start, end, last in periods(ctx):
                months = months_of(period_type, last)
                comps_json = None
                if ind.time_rule == "catalogue":
                    num, den = _catalogue(ind.code, applicable)
                    num, den, value = _ratio_parts(num, den)
                elif ind.time_rule == "presence":
                    active = set().union(*(active_counties[m] for m in months))
                    mine = counties_in[region_code]
                    num, den, value = _ratio_parts(sum(1 for c in mine if c in active), len(mine))
                elif ind.code == "C01":
                    cur = period_sum(parts, ind.code, region_code, months)
                    prev = period_sum(parts, ind.code, region_code, [_year_earlier(m) for m in months])
                    num, den, value, comps = _c01(cur.get("sum", 0), cur.get("cnt", 0),
                                                  prev.get("sum", 0), prev.get("cnt", 0))
                    comps_json = json.dumps(comps, sort_keys=True)
                else:
                    acc = period_sum(parts, ind.code, region_code, months if ind.time_rule == "flow" else [last])
                    num, den, value = _ratio_parts(acc.get("num", 0), acc.get("den", 0))
                target = ctx.config.target(ind.code, start.year, region_code)
                rows.append({
                    "indicator_code": ind.code,
                    "region_code": region_code,
                    "region_level": level,
                    "period_type": period_type,
                    "period_start": start,
                    "period_end": end,
                    "numerator": _six(num),
                    "denominator": _six(den),
                    "value": value,
                    "target": target,
                    "direction": ind.direction,
                    "meets_target": _meets(num, den, value, target, ind.direction),
                    "components": comps_json,
                    "provisional": provisional(ind.code, end, as_of_date, ctx.config.parameters),
                })
    return rows


def _six(x: Decimal | None) -> Decimal | None:
    return None if x is None else Decimal(x).quantize(SIX)


def _meets(num, den, value, target, direction) -> bool | None:
    if value is None or target is None:
        return None
    t = Decimal(str(target))
    # Compare num/den with the target exactly (no float rounding at the threshold);
    # den > 0 for every rate except C01, whose denominator avg_prev is positive too.
    lhs, rhs = (Decimal(num), t * Decimal(den)) if den > 0 else (Decimal(value), t)
    return lhs >= rhs if direction == ">=" else lhs <= rhs


def catalogue_members(code: str, matters: dict[str, dict]) -> dict[str, tuple[int, int]]:
    """matter_code -> (numerator, denominator) of a catalogue indicator at a
    region (``matters``: Reference.applicable_matters)."""
    if code == "I04":
        return {k: (1 if m["online_capable"] else 0, 1) for k, m in matters.items()}
    if code == "S01":
        return {k: (1 if m["promised_working_days"] == 0 else 0, 1) for k, m in matters.items()}
    if code == "S05":
        return {k: (m["statutory_working_days"] - m["promised_working_days"], m["statutory_working_days"])
                for k, m in matters.items() if m["statutory_working_days"] > 0}
    raise KeyError(code)


def _catalogue(code: str, matters: dict[str, dict]) -> tuple[int, int]:
    members = catalogue_members(code, matters).values()
    return sum(n for n, _ in members), sum(d for _, d in members)


def rule_rows(components: list[Component], ctx: RunContext, rules: list) -> list[dict]:
    """quality_rule_results: every rule x region x month x (MONTH, YTD);
    enrolment rules are stocks (the I07 population at period end), the
    others flows (QUALITY_RULES.md "Results")."""
    parts = region_parts(components, ctx)
    rows = []
    for rule in rules:
        stock = rule.stream == "enrolment"
        for region_code, level in ctx.ref.output_regions():
            for period_type, start, end, last in periods(ctx):
                acc = period_sum(parts, rule.rule_id, region_code,
                                 [last] if stock else months_of(period_type, last))
                checked, failed = int(acc.get("checked", 0)), int(acc.get("failed", 0))
                rows.append({
                    "rule_id": rule.rule_id,
                    "stream": rule.stream,
                    "region_code": region_code,
                    "region_level": level,
                    "period_type": period_type,
                    "period_start": start,
                    "period_end": end,
                    "checked": checked,
                    "failed": failed,
                    "pass_rate": (1 - failed / checked) if checked else None,
                })
    return rows
