"""The self-evaluation report, its notebook charts and ``yibao query``.

The warehouse is hand-made (tests/conftest_report.py) and published through
DuckDBWarehouse like a pipeline run, with stream rows the report must
ignore. The report is opened in headless Chromium (installed from Debian
when missing) to check it loads offline without errors and that every
chart drew all its data points; its numbers are compared with SQL.
"""

from __future__ import annotations

import calendar
import datetime as dt
import io
import os
import shutil
from decimal import Decimal
from html.parser import HTMLParser
from pathlib import Path

import pytest

from pipelines.errors import UsageError
from report import charts
from report.cli import query_main, report_main
from tests.builders import warehouse_rows as sql
from tests.conftest_report import (
    RUN_ID,
    STREAM_RUN_ID,
    Browser,
    build_warehouse,
    ensure_chromium,
)
from transforms.indicators.catalog import CODES, MANUAL_EVIDENCE
from warehouse.duckdb_store import connect

PERIOD = "2023-11"


@pytest.fixture(scope="session")
def warehouse(tmp_path_factory) -> Path:
    return build_warehouse(tmp_path_factory.mktemp("warehouse") / "warehouse.duckdb")


@pytest.fixture(scope="session")
def uri(warehouse) -> str:
    return f"duckdb:///{warehouse}"  # absolute path: duckdb:////tmp/...


@pytest.fixture(scope="session")
def browser(tmp_path_factory):
    try:
        binary = ensure_chromium()
    except RuntimeError as e:  # CI gets Chromium only this way: fail loudly, never skip
        pytest.fail(str(e))
    b = Browser(binary, tmp_path_factory.mktemp("chromium"))
    yield b
    b.close()



def render(uri: str, region: str, period: str, out: Path) -> str:
    assert (
        report_main(["--warehouse", uri, "--region", region, "--period", period, "--out", str(out)])
        == 0
    )
    return out.read_text(encoding="utf-8")


class Numbers(HTMLParser):
    """Every element with data-field: its data-* attributes and its text."""

    def __init__(self):
        super().__init__()
        self.items: list[dict] = []
        self._open: dict | None = None

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if "data-field" in a:
            self._open = {k.removeprefix("data-"): v for k, v in a.items() if k.startswith("data-")}
            self._open["text"] = ""
            self.items.append(self._open)

    def handle_data(self, data):
        if self._open is not None:
            self._open["text"] += data

    def handle_endtag(self, tag):
        self._open = None


def numbers(html: str) -> list[dict]:
    p = Numbers()
    p.feed(html)
    return p.items


def _exact(raw: str, expected):
    """The report's data-raw against a SQL value, exactly (None <-> empty)."""
    if expected is None:
        return raw == ""
    if isinstance(expected, Decimal):
        return Decimal(raw) == expected
    return float(raw) == expected


# --- the report's numbers are the warehouse's ----------------------------------------


def bounds(period: str) -> dict[str, tuple[dt.date, dt.date]]:
    year, month = map(int, period.split("-"))
    end = dt.date(year, month, calendar.monthrange(year, month)[1])
    return {"MONTH": (dt.date(year, month, 1), end), "YTD": (dt.date(year, 1, 1), end)}


def check_indicator_numbers(warehouse, html: str, region: str, period: str) -> set[tuple]:
    """Every indicator number in the report equals its nightly row; returns what was seen."""
    b = bounds(period)
    rows = {}
    for code, reg, pt, num, den, value, target, direction, meets in sql(
        warehouse,
        "SELECT indicator_code, region_code, period_type, numerator, denominator,"
        " value, target, direction, meets_target FROM indicator_values WHERE pipeline = 'nightly'"
        " AND ((period_type = 'MONTH' AND period_start = ?) OR (period_type = 'YTD' AND"
        " period_start = ?)) AND period_end = ?",
        [b["MONTH"][0], b["YTD"][0], b["MONTH"][1]],
    ):
        margin = None
        if value is not None and target is not None:
            margin = value - target if direction == ">=" else target - value
        rows[(code, reg, pt)] = {
            "value": value,
            "target": target,
            "numerator": num,
            "denominator": den,
            "margin": margin,
            "meets": meets,
        }
    checked = set()
    for n in numbers(html):
        if "indicator" not in n:
            continue
        want = rows[(n["indicator"], n["region"], n["period-type"])][n["field"]]
        assert _exact(n["raw"], want), n
        if n["field"] == "value":
            sign = "+" if n["indicator"] == "C01" else ""
            assert n["text"] == ("–" if want is None else f"{want * 100:{sign}.2f}%"), n
        assert n["period"] == period
        checked.add((n["indicator"], n["region"], n["period-type"], n["field"]))
    # Every field of every indicator, month and YTD, is on the scorecard.
    for code in CODES:
        for pt in ("MONTH", "YTD"):
            for field in ("value", "target", "numerator", "denominator"):
                assert (code, region, pt, field) in checked, (code, pt, field)
    # The headline counts are the warehouse's verdicts.
    summary = {(n["summary"], n["field"]): int(n["text"]) for n in numbers(html) if "summary" in n}
    for pt in ("MONTH", "YTD"):
        verdicts = [v["meets"] for (_, r, t), v in rows.items() if r == region and t == pt]
        assert summary[(pt, "met")] == verdicts.count(True)
        assert summary[(pt, "missed")] == verdicts.count(False)
    return checked


# --- the report's numbers are the warehouse's ----------------------------------------


def test_report_numbers_equal_the_warehouse(warehouse, uri, tmp_path):
    html = render(uri, "640100", PERIOD, tmp_path / "r.html")
    checked = check_indicator_numbers(warehouse, html, "640100", PERIOD)
    # Side by side: every value of the region's counties, month and YTD.
    for code in CODES:
        for pt in ("MONTH", "YTD"):
            for county in ("640104", "640105", "640106"):
                assert (code, county, pt, "value") in checked
    assert {r for _, r, _, _ in checked} == {"640100", "640104", "640105", "640106"}
    assert STREAM_RUN_ID not in html and RUN_ID in html  # stream rows never shown
    # 0/0 rows: no value, no verdict, shown as such.
    assert 'data-field="value" data-raw="">–<' in html and "无数据" in html
    assert "人口数据为合成数据" not in html  # a real population: no demo label


def test_quality_and_provenance_numbers_equal_the_warehouse(warehouse, uri, tmp_path):
    html = render(uri, "640100", PERIOD, tmp_path / "r.html")
    items, b = numbers(html), bounds(PERIOD)
    quality = {
        (rule, pt): {"checked": c, "failed": f, "pass_rate": p}
        for rule, pt, c, f, p in sql(
            warehouse,
            "SELECT rule_id, period_type, checked, failed, pass_rate FROM quality_rule_results"
            " WHERE region_code = '640100' AND period_end = ? AND period_start IN (?, ?)",
            [b["MONTH"][1], b["MONTH"][0], b["YTD"][0]],
        )
    }
    shown = [n for n in items if "rule" in n]
    assert len(shown) == len(quality) * 3
    for n in shown:
        assert _exact(n["raw"], quality[(n["rule"], n["period-type"])][n["field"]]), n
    # Worst rule first (by year-to-date failures).
    order = [n["rule"] for n in shown if n["field"] == "failed" and n["period-type"] == "YTD"]
    failed = [quality[(r, "YTD")]["failed"] for r in order]
    assert failed == sorted(failed, reverse=True)
    # Example records are the region's (its counties'), masked as stored.
    keys = {
        k
        for (k,) in sql(
            warehouse,
            "SELECT record_key FROM quality_failures"
            " WHERE region_code IN ('640104', '640105', '640106')",
        )
    }
    examples = [
        line.split("<code>")[1].split("</code>")[0]
        for line in html.splitlines()
        if "data-example-rule" in line
    ]
    assert examples and set(examples) <= keys
    assert "640104********123X" in html
    # Provenance: the nightly run's stream counters.
    counts = {
        (s, f): v
        for s, *vals in sql(
            warehouse,
            "SELECT stream, read, accepted, duplicates, dead_lettered, late_dropped,"
            " quality_failures FROM pipeline_run_streams WHERE run_id = ?",
            [RUN_ID],
        )
        for f, v in zip(
            ("read", "accepted", "duplicates", "dead_lettered", "late_dropped", "quality_failures"),
            vals,
        )
    }
    stream_items = [n for n in items if "run" in n]
    assert {(n["stream"], n["field"]) for n in stream_items} == set(counts)
    assert all(int(n["raw"]) == counts[(n["stream"], n["field"])] for n in stream_items)
    # Plan indicators needing manual evidence, with their plan numbers.
    for number, name in MANUAL_EVIDENCE:
        assert f'data-plan-number="{number}"' in html and name in html


def test_county_report_compares_it_with_its_neighbours(uri, tmp_path):
    html = render(uri, "640104", PERIOD, tmp_path / "county.html")
    regions = {n["region"] for n in numbers(html) if "indicator" in n}
    assert regions == {"640104", "640105", "640106"}  # its pooling region's counties
    assert "陕西省" not in html


def test_report_refuses_what_it_cannot_show(uri, tmp_path):
    """Each mistake is a UsageError: one line, exit 2 (tests/test_report_cli_errors.py)."""
    out = tmp_path / "x.html"
    for argv in (
        ["--warehouse", uri, "--region", "640100", "--period", "2022-11", "--out", str(out)],
        ["--warehouse", uri, "--region", "999999", "--period", PERIOD, "--out", str(out)],
        ["--warehouse", "duckdb:///nowhere/x.duckdb", "--region", "640100", "--period", PERIOD],
        ["--warehouse", uri, "--region", "640100", "--period", "2023-13"],
    ):
        with pytest.raises(UsageError):
            report_main(argv)
    assert not out.exists()


# --- in a real browser ------------------------------------------------------------

CHART_MARKS = """(async () => {
  await document.fonts.ready;
  return [...document.querySelectorAll('svg.chart')].map(svg => ({
    chart: svg.dataset.chart, indicator: svg.dataset.indicator || null,
    periodType: svg.dataset.periodType || null, count: Number(svg.dataset.count),
    drawn: [...svg.querySelectorAll('.mark')].filter(m => {
      const b = m.getBBox(); return b.width > 0 && b.height > 0; }).length,
  }));
})()"""


def check_in_browser(browser, warehouse, page: Path, region: str, shots: dict) -> list[dict]:
    """The page loads offline without errors, in a CJK font, and every chart
    drew a mark per data point; a trend chart's points are the warehouse's."""
    seen = browser.visit(page.as_uri(), CHART_MARKS, shots)
    assert seen["errors"] == []
    assert all(u.startswith(("file:", "data:", "about:")) for u in seen["requests"]), seen[
        "requests"
    ]
    assert any("CJK" in f for f in seen["h1_fonts"]), seen["h1_fonts"]
    found = seen["value"]
    for c in found:
        assert c["drawn"] >= c["count"], c
    kinds = [c["chart"] for c in found]
    assert kinds.count("trend") == len(CODES) and kinds.count("quality") == 2
    year = int(page.read_text(encoding="utf-8").split('data-period="')[1][:4])
    expected = dict(
        sql(
            warehouse,
            "SELECT indicator_code, count(value) FROM indicator_values"
            " WHERE pipeline = 'nightly' AND region_code = ?"
            " AND year(period_end) = ? AND period_type IN ('MONTH', 'YTD')"
            " GROUP BY ALL",
            [region, year],
        )
    )
    assert {c["indicator"]: c["count"] for c in found if c["chart"] == "trend"} == {
        code: expected.get(code, 0) for code in CODES
    }
    for shot in shots.values():
        assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 20_000
    keep = os.environ.get("YIBAO_REPORT_ARTIFACTS")  # e.g. CI uploads them
    if keep:
        Path(keep).mkdir(parents=True, exist_ok=True)
        for path in [*shots.values(), page]:
            shutil.copy(path, keep)
    return found


def test_report_opens_offline_in_chromium(warehouse, uri, browser, tmp_path):
    page = tmp_path / "province.html"
    render(uri, "640000", PERIOD, page)
    shots = {"top": tmp_path / "report-top.png", "full": tmp_path / "report-full.png"}
    found = check_in_browser(browser, warehouse, page, "640000", shots)
    # Side by side: the province's two pooling regions, one bar chart per indicator.
    peers = [c for c in found if c["chart"] == "peers"]
    assert len(peers) == len(CODES) and max(c["count"] for c in peers) == 2


def test_each_visit_enables_devtools_before_its_page_loads(browser, tmp_path):
    """Issue 15: with Debian 12's Chromium 150.0.7871.100 the browser tests saw
    "Unsafe attempt to load URL file:///…/province.html from frame with URL
    file:///…/province.html. 'file:' URLs are treated as unique security origins."
    The page was innocent: the harness sent CSS.enable to a tab already showing a
    file: page, and Chromium blocked DevTools' re-fetch of it. Two visits in a row
    (the second used to inherit the first's tab): each enables its domains on
    about:blank, requests its page once and hears nothing from it."""
    for name in ("first", "second"):
        page = tmp_path / f"{name}.html"
        page.write_text(
            '<!DOCTYPE html><html lang="zh-CN"><meta charset="utf-8">'
            f"<style>h1 {{ color: #333 }}</style><h1>{name} 参保率</h1></html>",
            encoding="utf-8",
        )
        seen = browser.visit(page.as_uri(), "document.querySelector('h1').textContent", {})
        assert seen["value"] == f"{name} 参保率"
        assert seen["enabled_on"] == "about:blank"
        assert seen["requests"] == [page.as_uri()]  # no second, DevTools-made request
        assert seen["errors"] == []


# --- notebook charts ----------------------------------------------------------------


def test_notebook_charts_from_a_path_or_a_connection(warehouse, uri):
    fig = charts.trend_chart(uri, "I08", "640100")
    assert fig.count == 22  # 11 months, MONTH and YTD
    assert fig._repr_svg_().count('class="mark ') == fig.count
    assert fig._repr_html_().startswith("<svg") and 'data-count="22"' in fig.svg
    con = connect(str(warehouse), read_only=True)
    try:
        peers = charts.peers_chart(con, "I21", "640200", PERIOD)
        assert peers.count == 2 and peers.svg.count('class="mark ') == 2
        quality = charts.quality_chart(con, "640100", PERIOD)
        failing = sql(
            warehouse,
            "SELECT count(*) FROM quality_rule_results WHERE region_code ="
            " '640100' AND period_type = 'YTD' AND period_end = ? AND failed > 0",
            [bounds(PERIOD)["YTD"][1]],
        )[0][0]
        assert quality.count == min(failing, 10)
    finally:
        con.close()


# --- yibao query --------------------------------------------------------------------


def test_query_prints_a_number_from_sql(warehouse, uri, capsys):
    (want,) = sql(warehouse, "SELECT count(*) FROM indicator_values WHERE pipeline = 'nightly'")[0]
    assert (
        query_main(
            [
                "--warehouse",
                uri,
                "SELECT count(*) AS n FROM indicator_values WHERE pipeline = 'nightly'",
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    assert "n" in out and str(want) in out.split()


def test_query_is_read_only(warehouse, uri, capsys):
    before = sql(warehouse, "SELECT count(*) FROM indicator_values")
    with pytest.raises(UsageError, match="read-only"):  # tests/test_query_sandbox.py
        query_main(["--warehouse", uri, "DELETE FROM indicator_values"])
    assert sql(warehouse, "SELECT count(*) FROM indicator_values") == before


def test_query_prompt_reads_statements_until_semicolon(uri, monkeypatch, capsys):
    monkeypatch.setattr("sys.stdin", io.StringIO("SELECT 6 *\n  7 AS answer;\nSELECT 'x' AS y"))
    assert query_main(["--warehouse", uri]) == 0  # EOF ends it; the last ';' is optional
    out = capsys.readouterr().out
    assert "answer" in out and "42" in out.split() and "x" in out.split()


# --- on a real nightly run ----------------------------------------------------------


def test_report_on_a_real_nightly_run(browser, tmp_path):
    """Generator -> nightly pipeline -> report: the numbers still match SQL.
    Issue 15: "I09 (参保率) is 0.07–0.8 % in red because the synthetic persons are
    a sliver of the real registered population": the generated population is
    its residents, so I09 is a realistic share, labelled as demo data."""
    from datagen.cli import generate_main as generate
    from pipelines import nightly
    data_dir, wh = tmp_path / "in", tmp_path / "warehouse.duckdb"
    generate(["--out", str(data_dir), "--seed", "5", "--persons", "300"])
    as_of = (data_dir / "as_of.txt").read_text().strip()
    nightly.run(["--input", str(data_dir), "--warehouse", f"duckdb:///{wh}", "--as-of", as_of])
    (end,) = sql(
        wh,
        "SELECT max(period_end) FROM indicator_values WHERE pipeline = 'nightly'"
        " AND period_type = 'MONTH'",
    )[0]
    period = f"{end:%Y-%m}"
    for region in ("640000", "640100"):
        page = tmp_path / f"{region}.html"
        html = render(f"duckdb:///{wh}", region, period, page)
        check_indicator_numbers(wh, html, region, period)
        assert html.count("人口数据为合成数据（演示）") == 1
    (low, high) = sql(
        wh,
        "SELECT min(value), max(value) FROM indicator_values WHERE indicator_code = 'I09'"
        " AND region_code = '640000' AND pipeline = 'nightly'",
    )[0]
    assert 0.85 < low <= high < 1
    check_in_browser(
        browser, wh, tmp_path / "640000.html", "640000", {"top": tmp_path / "real-top.png"}
    )
