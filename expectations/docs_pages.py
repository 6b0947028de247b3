"""Our pages of the Data Docs (issue 19): one page per region and month, in
Chinese, whose headline is the RECORD pass rate of each stream — records
passing every rule of the suite ÷ records checked — not Great Expectations'
"Success Percent" (a share of expectations, not of records).

The figures are the nightly run's own: ``transforms.compute.compute_run`` on
the same landing, as_of and months, so each rule's checked / failed /
pass rate is the row ``quality_rule_results`` holds, and the record pass
rate of enrolment and settlement is I07 / I08 (``indicator_values``: the
records of the rule population passing every rule).  Contribution, settlement
lists and filing have no indicator: their record pass rate is counted here
over the run's own relations, attributed and rolled up like their rules
(``transforms.rollup``: county -> pooling region -> province, MONTH and YTD).

Layout (the report links to it, README "Data Docs"):
``index.html`` (ours), ``regions/<region_code>/<YYYY-MM>.html``, and Great
Expectations' own pages (``ge-index.html``, ``validations/``, ``expectations/``).
"""
from __future__ import annotations

import dataclasses
import datetime as dt
import os
from pathlib import Path

import jinja2

import expectations
from report import fmt, labels
from transforms import prepare, rollup
from transforms.compute import compute_run
from transforms.context import RunContext
from transforms.indicators.components import Component

#: streams whose record pass rate is an indicator of the run (same population as their rules)
RECORD_INDICATORS = {"enrolment": "I07", "settlement": "I08"}
#: the others: (relation, attribution column, month column) as compute_run's rule components
RECORD_RELATIONS = {"contribution": ("contrib", "insu_admdvs", "month"),
                    "settlement_list": ("lists", "_region", "month"),
                    "filing": ("cases", "insu_admdvs", "_submitted_month")}
STREAMS = ("enrolment", "settlement", "contribution", "settlement_list", "filing")
assert set(STREAMS) == set(RECORD_INDICATORS) | set(RECORD_RELATIONS)
PAGE_MARK = 'data-yibao-page="'  # our pages: no Great Expectations banner
GE_INDEX = "ge-index.html"
TEMPLATES = Path(__file__).with_name("templates")


def page_path(region_code: str, month: dt.date | str) -> str:
    """The page of a region and month, relative to the Data Docs folder
    (one definition: the report's link uses it too)."""
    label = month if isinstance(month, str) else f"{month:%Y-%m}"
    return f"regions/{region_code}/{label}.html"


@dataclasses.dataclass
class Figures:
    ctx: RunContext
    rules: list[dict]  # quality_rule_results rows
    records: list[dict]  # per stream, region and period: checked, passed, pass_rate


def _record_row(stream: str, region_code: str, level: str, period: tuple, checked: int,
                passed: int) -> dict:
    period_type, start, end, _ = period
    return {"stream": stream, "region_code": region_code, "region_level": level,
            "period_type": period_type, "period_start": start, "period_end": end,
            "checked": checked, "passed": passed,
            "pass_rate": passed / checked if checked else None}


def compute(con, ctx: RunContext) -> Figures:
    """The run's figures; ``{stream}_accepted`` must be on ``con`` (as for compute_run)."""
    result = compute_run(con, ctx)
    levels = dict(ctx.ref.output_regions())
    by_code = {v: k for k, v in RECORD_INDICATORS.items()}
    records = []
    for row in result.indicator_values:
        if stream := by_code.get(row["indicator_code"]):
            period = (row["period_type"], row["period_start"], row["period_end"], None)
            records.append(_record_row(stream, row["region_code"], levels[row["region_code"]],
                                       period, int(row["denominator"]), int(row["numerator"])))
    parts = []
    for stream, (relation, region, month) in RECORD_RELATIONS.items():
        fails = prepare._any(prepare.rule_ids(stream))
        for attr, m, checked, passed in con.sql(
                f"SELECT {region}, {month}, count(*), count(*) FILTER (NOT ({fails}))"
                f" FROM {relation} GROUP BY ALL").fetchall():
            parts.append(Component(stream, attr, m, {"checked": checked, "passed": passed}))
    summed = rollup.region_parts(parts, ctx)
    for stream in RECORD_RELATIONS:
        for region_code, level in ctx.ref.output_regions():
            for period in rollup.periods(ctx):
                acc = rollup.period_sum(summed, stream, region_code,
                                        rollup.months_of(period[0], period[3]))
                records.append(_record_row(stream, region_code, level, period,
                                           int(acc.get("checked", 0)), int(acc.get("passed", 0))))
    return Figures(ctx, result.quality_rule_results, records)


# --- rendering -------------------------------------------------------------------------


def _environment() -> jinja2.Environment:
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(TEMPLATES), autoescape=True,
                             undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True)
    env.filters.update(pct=fmt.pct, count=fmt.count, stream_zh=labels.stream,
                       severity_zh=labels.severity, level_zh=labels.level,
                       rule_zh=labels.rule_name, rule_desc_zh=labels.rule_description)
    return env


def _regions(ctx: RunContext) -> list[dict]:
    """Province, then each pooling region followed by its counties."""
    ref = ctx.ref
    out = [{"code": ref.province.code, "name": ref.province.name, "level": "province", "depth": 0}]
    for city in ref.cities:
        out.append({"code": city.code, "name": city.name, "level": "pooling", "depth": 1})
        out += [{"code": c.code, "name": c.name, "level": "county", "depth": 2}
                for c in ref.counties if c.pooling_code == city.code]
    listed = {r["code"] for r in out}
    out += [{"code": c.code, "name": c.name, "level": "county", "depth": 1}
            for c in ref.counties if c.code not in listed]
    return out


def _rules_by_stream() -> dict[str, list]:
    return {s: expectations.rules(s) for s in STREAMS}


def write_pages(out: Path, figures: Figures, ge_pages: dict[str, Path], as_of_shown: str) -> list[Path]:
    """index.html and one page per region and month; returns the pages written."""
    ctx = figures.ctx
    env = _environment()
    regions = _regions(ctx)
    rules = _rules_by_stream()
    rule_rows = {(r["rule_id"], r["region_code"], r["period_type"], r["period_end"]): r
                 for r in figures.rules}
    record_rows = {(r["stream"], r["region_code"], r["period_type"], r["period_end"]): r
                   for r in figures.records}
    months = [(m, rollup.periods(ctx)[2 * i][2]) for i, m in enumerate(ctx.months)]
    written = []
    common = {"as_of": as_of_shown, "months": months, "streams": STREAMS, "rules": rules,
              "levels": labels.LEVELS, "period_types": labels.PERIOD_TYPES}
    for region in regions:
        for month, end in months:
            path = out / page_path(region["code"], month)
            path.parent.mkdir(parents=True, exist_ok=True)
            up = Path(os.path.relpath(out, path.parent)).as_posix()
            html = env.get_template("region.html.j2").render(
                **common, region=region, month=month, up=up,
                page_path=page_path, regions=regions,
                record=lambda s, t, r=region, e=end: record_rows.get((s, r["code"], t, e)),
                rule=lambda rid, t, r=region, e=end: rule_rows.get((rid, r["code"], t, e)),
                ge_pages={s: f"{up}/{p.relative_to(out).as_posix()}" for s, p in ge_pages.items()})
            path.write_text(html, encoding="utf-8")
            written.append(path)
    last = months[-1][1]
    index = out / "index.html"
    index.write_text(env.get_template("index.html.j2").render(
        **common, regions=regions, page_path=page_path, ge_index=GE_INDEX,
        record=lambda s, code, t="MONTH", e=last: record_rows.get((s, code, t, e)),
        last_month=months[-1][0]), encoding="utf-8")
    written.append(index)
    return written
