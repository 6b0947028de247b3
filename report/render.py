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
from importlib import resources
from pathlib import Path

import jinja2

from report import charts, data, fmt
from report.data import Period, Region
from transforms.indicators.catalog import INDICATORS, MANUAL_EVIDENCE

PERIOD_TYPES = ("MONTH", "YTD")
PERIOD_NAMES = {"MONTH": "本月 Month", "YTD": "年累计 Year to date"}


def _cell(row: dict | None) -> dict:
    """A scorecard cell: the row plus how far from the target it is."""
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


def _scorecard(rows_by_type: dict[str, list[dict]]) -> list[dict]:
    got = {(r["indicator_code"], t): r for t, rs in rows_by_type.items() for r in rs}
    return [
        {"ind": i, "cells": {t: _cell(got.get((i.code, t))) for t in PERIOD_TYPES}}
        for i in INDICATORS
    ]


def _summary(scorecard: list[dict]) -> dict[str, dict[str, int]]:
    out = {}
    for t in PERIOD_TYPES:
        statuses = [s["cells"][t]["status"] for s in scorecard]
        out[t] = {k: statuses.count(k) for k in ("met", "missed")}
        out[t]["none"] = len(statuses) - out[t]["met"] - out[t]["missed"]
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


def context(con, region_code: str, period: Period) -> dict:
    """Everything the template shows, read from the warehouse in one go."""
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
    scorecard = _scorecard(own)
    return {
        "region": r,
        "period": period,
        "period_names": PERIOD_NAMES,
        "scorecard": scorecard,
        "summary": _summary(scorecard),
        "trends": charts.trend_figures(trend_rows, r.code, codes, highlight=period),
        "columns": columns,
        "matrix": {
            (row["indicator_code"], row["region_code"], t): _cell(row)
            for t, rs in peer_rows.items()
            for row in rs
        },
        "peer_figures": charts.peers_figures(
            peer_rows["MONTH"], peers, codes, "MONTH", highlight=r.code
        )
        if peers
        else {},
        "quality": _quality(con, r, period),
        "manual": MANUAL_EVIDENCE,
        "computed_plan": sorted(i.plan_number for i in INDICATORS if i.plan_number),
        "as_of": sorted({row["as_of"] for row in shown}),
        "runs": data.runs(con, run_ids),
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
        direction=lambda d: {">=": "≥", "<=": "≤"}.get(d, d or ""),
    )
    return env


def render(con, region_code: str, period: Period) -> str:
    return _environment().get_template("report.html.j2").render(**context(con, region_code, period))


def write_report(source, region_code: str, period: str, out: str | Path) -> Path:
    with data.reading(source) as con:
        html = render(con, region_code, Period.parse(period))
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(html, encoding="utf-8")
    return out
