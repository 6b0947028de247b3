"""The report's drill-down (issue 18): under each indicator the region
missed, the institutions or service matters contributing most to the
shortfall — their own rate, numerator, denominator and monthly trend — and,
for the quality rules, the failing records per institution and rule.

Reads ``v_indicator_shortfall``, ``indicator_breakdown`` and
``quality_failures`` (WAREHOUSE.md) through report.data.rows, so DuckDB and
BigQuery alike; a warehouse from before the breakdown shows none.
"""
from __future__ import annotations

from report import data
from report.data import Period, Region

TOP = 5
TOP_INSTITUTIONS = 10
BARS = "▁▂▃▄▅▆▇█"


def _has(con, table: str) -> bool:
    return bool(data.columns(con, table))


def sparkline(values: list[float | None]) -> str:
    """One bar per month (0 % .. 100 %), a space where the month has no value."""
    return "".join(" " if v is None else BARS[min(len(BARS) - 1, max(0, int(v * len(BARS))))]
                   for v in values)


def missed(con, r: Region, period: Period, top: int = TOP) -> list[dict]:
    """Per missed (indicator, MONTH / YTD) of the region and month: its
    shortfall and the ``top`` members by shortfall, each with its trend
    (its MONTH values January .. the report month)."""
    if not _has(con, "indicator_breakdown"):
        return []
    rows = data.rows(con, """
        SELECT indicator_code, indicator_name_zh, indicator_name_en, period_type, region_value, target,
               region_numerator, region_denominator, region_shortfall, dimension, member_code, member_name,
               numerator, denominator, value, shortfall, shortfall_share, shortfall_rank
        FROM v_indicator_shortfall
        WHERE region_code = ? AND pipeline = 'nightly' AND period_end = ? AND shortfall_rank <= ?
        ORDER BY indicator_code, period_type, shortfall_rank""", [r.code, period.end, top])
    if not rows:
        return []
    codes = sorted({x["indicator_code"] for x in rows})
    members = sorted({x["member_code"] for x in rows})
    trend: dict = {}
    for t in data.rows(con, f"""
            SELECT indicator_code, member_code, period_start, value FROM indicator_breakdown
            WHERE region_code = ? AND pipeline = 'nightly' AND period_type = 'MONTH'
              AND period_start BETWEEN ? AND ?
              AND indicator_code IN ({", ".join("?" for _ in codes)})
              AND member_code IN ({", ".join("?" for _ in members)})""",
            [r.code, Period(period.year, 1).start, period.start, *codes, *members]):
        trend[(t["indicator_code"], t["member_code"], t["period_start"].month)] = t["value"]
    out: dict = {}
    for x in rows:
        key = (x["indicator_code"], x["period_type"])
        group = out.setdefault(key, {k: x[k] for k in (
            "indicator_code", "indicator_name_zh", "indicator_name_en", "period_type", "region_value",
            "target", "region_numerator", "region_denominator", "region_shortfall", "dimension")})
        values = [trend.get((x["indicator_code"], x["member_code"], m)) for m in range(1, period.month + 1)]
        group.setdefault("members", []).append({**x, "trend": values, "sparkline": sparkline(values)})
    return list(out.values())


def failing_rules(con, r: Region, period: Period, top: int = TOP_INSTITUTIONS) -> dict:
    """Year to date: per institution (the ``top`` with most failing records),
    its failing records per rule; the rules shown as columns."""
    if "fixmedins_code" not in data.columns(con, "quality_failures"):
        return {"rules": [], "institutions": []}
    cond, params = data.region_filter(r)
    start, end = period.bounds("YTD")
    rows = data.rows(con, f"""
        SELECT f.fixmedins_code, i.name, i.in_reference, f.rule_id, count(DISTINCT f.record_key) AS records
        FROM (SELECT * FROM quality_failures WHERE pipeline = 'nightly' AND {cond}
              AND fixmedins_code IS NOT NULL AND business_date BETWEEN ? AND ?) AS f
        LEFT JOIN dim_institution AS i ON i.fixmedins_code = f.fixmedins_code
        GROUP BY f.fixmedins_code, i.name, i.in_reference, f.rule_id""", [*params, start, end])
    by_inst: dict = {}
    for x in rows:
        inst = by_inst.setdefault(x["fixmedins_code"], {
            "fixmedins_code": x["fixmedins_code"], "name": x["name"], "in_reference": x["in_reference"],
            "rules": {}, "total": 0})
        inst["rules"][x["rule_id"]] = x["records"]
        inst["total"] += x["records"]
    ranked = sorted(by_inst.values(), key=lambda i: (-i["total"], i["fixmedins_code"]))[:top]
    return {"rules": sorted({rule for i in ranked for rule in i["rules"]}), "institutions": ranked}
