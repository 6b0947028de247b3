"""The self-evaluation report of one region and month as one HTML file.

Self-contained: CSS inline, charts inline SVG, no script, no web font, no
CDN, so it opens offline and can be mailed as is. Every number shown sits in
an element with ``data-field`` (and data-indicator / data-region /
data-period-type, or data-rule / data-stream) and its exact value in
``data-raw``, so tests and scrapers read the numbers without parsing text.
"""

from __future__ import annotations

import datetime as dt
import json
import os
from importlib import resources
from pathlib import Path

import jinja2

from report import charts, compare, data, drilldown, evidence, fmt, labels
from report.data import Period, Region
from transforms.indicators.catalog import INDICATORS, MANUAL_EVIDENCE

PERIOD_TYPES = ("MONTH", "YTD")
PERIOD_NAMES = {"MONTH": "本月 Month", "YTD": "年累计 Year to date"}


_cell = compare.cell  # one definition of a verdict and its margin (report/compare.py)


def _scorecard(rows_by_type: dict[str, list[dict]], comp: compare.Comparison | None = None,
               region_code: str = "") -> list[dict]:
    """Every indicator's MONTH and YTD cells, with rank and 环比 / 同比 from ``comp``."""
    got = {(r["indicator_code"], t): r for t, rs in rows_by_type.items() for r in rs}

    def one(code, t):
        c = _cell(got.get((code, t)))
        return {**c, **comp.extras(code, region_code, t)} if comp and c["status"] != "absent" else c

    return [{"ind": i, "cells": {t: one(i.code, t) for t in PERIOD_TYPES}} for i in INDICATORS]


def _summary(scorecard: list[dict]) -> dict[str, dict[str, int]]:
    out = {}
    for t in PERIOD_TYPES:
        statuses = [s["cells"][t]["status"] for s in scorecard]
        out[t] = {k: statuses.count(k) for k in ("met", "missed")}
        out[t]["none"] = len(statuses) - out[t]["met"] - out[t]["missed"]
        out[t]["provisional"] = sum(1 for s in scorecard if s["cells"][t].get("provisional"))
    return out


def _quality(con, r: Region, period: Period) -> dict:
    results = {t: data.rule_results(con, r.code, period, t) for t in PERIOD_TYPES}
    month = {q["rule_id"]: q for q in results["MONTH"]}
    # One table: the year's worst rules first, the month beside them.
    table = [
        {
            "rule_id": q["rule_id"],
            "stream": q["stream"],
            "severity": q["severity"],
            "description": q["description"],
            "name_zh": labels.rule_name(q["rule_id"]),
            "description_zh": labels.rule_description(q["rule_id"]),
            "YTD": q,
            "MONTH": month.get(q["rule_id"]),
        }
        for q in results["YTD"]
    ]
    worst = [q["rule_id"] for q in results["YTD"] if q["failed"]][:5]
    examples = data.failure_examples(con, r, worst, period)
    for e in examples:
        e["details"] = _pretty_json(e["details"])
    return {
        "table": table,
        "examples": examples,
        "figures": [charts.quality_figure(results[t], t) for t in PERIOD_TYPES],
    }


def _pretty_json(text: str | None) -> str:
    if not text:
        return ""
    try:
        return json.dumps(json.loads(text), ensure_ascii=False, sort_keys=True)
    except ValueError:
        return text


def _region_summary(columns: list[Region], peer_rows: dict[str, list[dict]]) -> list[dict]:
    """Per region of the side-by-side table: met / missed / provisional counts of the month."""
    out = []
    for col in columns:
        mine = [row for row in peer_rows["MONTH"] if row["region_code"] == col.code]
        out.append({
            "region": col,
            "met": sum(1 for row in mine if row["meets_target"] is True),
            "missed": sum(1 for row in mine if row["meets_target"] is False),
            "provisional": sum(1 for row in mine if row.get("provisional")),
            "small": sum(1 for row in mine if compare.small(row["indicator_code"],
                                                            row["denominator"])),
        })
    return out


def _synthetic_population(runs: list[dict]) -> bool:
    """A run that read a generated data set's made-up population says so in its
    options (pipelines/nightly.py, reference.SYNTHETIC): I09 is then a demo figure."""
    return any((json.loads(run["options"] or "null") or {}).get("synthetic_population")
               for run in runs)


def context(con, region_code: str, period: Period, data_docs: str | None = None) -> dict:
    """Everything the template shows, read from the warehouse in one go;
    ``data_docs``: the link to this region and month's Data Docs page, if any."""
    r = data.region(con, region_code)
    own = {t: data.values(con, [r.code], period, t) for t in PERIOD_TYPES}
    if not own["MONTH"] and not own["YTD"]:
        raise LookupError(f"no nightly indicator values for region {r.code} in {period.label}")
    codes = [i.code for i in INDICATORS]
    peers = data.peers(con, r)
    # A pooling region or the province first shows its own total, then its parts.
    columns = peers if r.level == "county" else [r, *peers]
    peer_rows = {t: data.values(con, [c.code for c in columns], period, t) for t in PERIOD_TYPES}
    trend_rows = data.trend(con, r.code, period.year)
    shown = [*own["MONTH"], *own["YTD"], *peer_rows["MONTH"], *peer_rows["YTD"], *trend_rows]
    run_ids = sorted({row["run_id"] for row in shown})
    latest = data.latest_nightly_run(con)
    runs = data.runs(con, run_ids)
    ranked = compare.siblings(con, r)
    comp = compare.Comparison(con, [r.code, *(s.code for s in ranked)], period,
                              ranked=[s.code for s in ranked])
    scorecard = _scorecard(own, comp, r.code)
    peer_ranks = compare.ranks(row for rs in peer_rows.values() for row in rs
                               if row["region_code"] != r.code or r.level == "county")
    manual = evidence.report_rows(con, r.code, period.year)
    return {
        "region": r,
        "period": period,
        "period_names": PERIOD_NAMES,
        "scorecard": scorecard,
        "summary": _summary(scorecard),
        "trends": charts.trend_figures(trend_rows, r.code, codes, highlight=period),
        "columns": columns,
        "matrix": {
            (row["indicator_code"], row["region_code"], t): {
                **_cell(row),
                "rank": peer_ranks.get((row["indicator_code"], row["region_code"], t)),
                "small": compare.small(row["indicator_code"], row["denominator"]),
            }
            for t, rs in peer_rows.items()
            for row in rs
        },
        "region_summary": _region_summary(columns, peer_rows),
        "ranked_count": comp.ranked_count,
        "peer_figures": charts.peers_figures(
            peer_rows["MONTH"], peers, codes, "MONTH", highlight=r.code
        )
        if peers
        else {},
        "quality": _quality(con, r, period),
        "data_docs": data_docs,
        # Issue 18: under each missed indicator, the institutions / matters behind it.
        "drilldown": drilldown.missed(con, r, period),
        "failing_by_institution": drilldown.failing_rules(con, r, period),
        "manual": MANUAL_EVIDENCE,
        "evidence": manual,
        "evidence_missing": [m for m in manual if m["status"] == "missing"],
        "computed_plan": sorted(i.plan_number for i in INDICATORS if i.plan_number),
        "as_of": sorted({row["as_of"] for row in shown}),
        "runs": runs,
        "synthetic_population": _synthetic_population(runs),
        "streams": data.run_streams(con, run_ids),
        "latest_run": latest if latest and latest["run_id"] not in run_ids else None,
        "generated_at": dt.datetime.now(dt.UTC),
    }


def _environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FunctionLoader(
            lambda name: resources.files("report").joinpath("templates", name).read_text("utf-8")
        ),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(
        pct=fmt.pct,
        points=fmt.points,
        amount=fmt.amount,
        count=fmt.count,
        raw=fmt.raw,
        instant=fmt.instant,
        direction=lambda d: labels.DIRECTIONS.get(d, d or ""),
        stream_zh=labels.stream,
        severity_zh=labels.severity,
        level_zh=labels.level,
        run_status_zh=lambda s: labels.RUN_STATUSES.get(s, s),
    )
    return env


def render(con, region_code: str, period: Period, data_docs: str | None = None) -> str:
    return _environment().get_template("report.html.j2").render(
        **context(con, region_code, period, data_docs))


def data_docs_link(data_docs: str, region_code: str, period: str, out: Path) -> str:
    """The link from the report at ``out`` to the Data Docs page of its region
    and month (``yibao quality-docs``'s layout): a URL as given, a folder relative
    to the report's, so the two can be moved or mailed together."""
    from expectations.docs_pages import page_path

    page = page_path(region_code, period)
    if "://" in data_docs:
        return f"{data_docs.rstrip('/')}/{page}"
    return Path(os.path.relpath(Path(data_docs, page).absolute(), out.absolute().parent)).as_posix()


def write_report(source, region_code: str, period: str, out: str | Path,
                 data_docs: str | None = None) -> Path:
    out = Path(out)
    link = data_docs_link(data_docs, region_code, period, out) if data_docs else None
    with data.reading(source) as con:
        html = render(con, region_code, Period.parse(period), link)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(html, encoding="utf-8")
    return out
