"""``yibao report --format xlsx|csv|pdf`` (issue 19: "No exports"): every
exported figure is compared with SQL on the warehouse (the hand-made one of
tests/conftest_report.py, published through DuckDBWarehouse).

The workbook is read back with openpyxl: numbers must be numbers, rates
formatted as percentages, headers Chinese; the CSV holds the scorecard
sheet's rows; the PDF is printed by headless Chromium and its text read
with pypdf.
"""

from __future__ import annotations

import csv
import datetime as dt
import os
import unicodedata
from decimal import Decimal
from pathlib import Path

import pytest
from openpyxl import load_workbook

from pipelines import cli
from report.cli import report_main
from tests.builders import warehouse_rows as sql
from tests.conftest_report import build_warehouse, ensure_chromium
from transforms.indicators.catalog import CODES

PERIOD = "2023-11"
PERIOD_TYPES = {"本月": "MONTH", "年累计": "YTD"}


@pytest.fixture(scope="module")
def warehouse(tmp_path_factory) -> Path:
    return build_warehouse(tmp_path_factory.mktemp("exports") / "warehouse.duckdb")



def export(warehouse, fmt: str, out: Path, region: str = "640100") -> Path:
    assert report_main(["--warehouse", f"duckdb:///{warehouse}", "--region", region,
                        "--period", PERIOD, "--format", fmt, "--out", str(out)]) == 0
    return out


def nightly(warehouse) -> dict[tuple, dict]:
    """(indicator, region, period_type, period_start, period_end) -> the nightly row."""
    cols = ("indicator_code", "region_code", "period_type", "period_start", "period_end",
            "numerator", "denominator", "value", "target", "direction", "meets_target")
    return {
        r[:5]: dict(zip(cols, r))
        for r in sql(warehouse, f"SELECT {', '.join(cols)} FROM indicator_values"
                                " WHERE pipeline = 'nightly'")
    }


def sheet_rows(ws) -> list[dict]:
    rows = ws.iter_rows(values_only=True)
    header = next(rows)
    return [dict(zip(header, r)) for r in rows]


def same_amount(got, want: Decimal | None) -> bool:
    """An exported numerator / denominator against the exact DECIMAL."""
    if want is None:
        return got in (None, "")
    return Decimal(str(got)) == want


def same_double(got, want: float | None) -> bool:
    """openpyxl writes a double with 16 significant digits ("%.16g"); Excel
    keeps 15. Within that, the figure is the warehouse's."""
    return got is None if want is None else got == pytest.approx(want, rel=1e-15, abs=0)


def check_row(row: dict, want: dict) -> None:
    assert same_double(row["指标值"], want["value"]), (row, want)
    assert row["目标值"] == want["target"]
    assert same_amount(row["分子"], want["numerator"]) and same_amount(row["分母"], want["denominator"])
    verdict = {True: "达标", False: "未达标", None: "无数据"}[want["meets_target"]]
    assert row["结果"] == verdict
    if want["value"] is None:
        assert row["余量/差距（百分点）"] is None
    else:
        gap = want["value"] - want["target"] if want["direction"] == ">=" else \
            want["target"] - want["value"]
        assert row["余量/差距（百分点）"] == pytest.approx(gap * 100, abs=1e-12)


def test_xlsx_scorecard_equals_the_warehouse(warehouse, tmp_path):
    """"No exports … an XLSX workbook (one sheet for the scorecard of the region
    and period …; numbers as numbers, percentages formatted, Chinese headers)"."""
    wb = load_workbook(export(warehouse, "xlsx", tmp_path / "r.xlsx"))
    assert wb.sheetnames[0] == "评分卡" and "数据质量" in wb.sheetnames
    ws = wb["评分卡"]
    header = [c.value for c in ws[1]]
    assert all(not h.isascii() for h in header), header  # every header says something in Chinese
    want = nightly(warehouse)
    rows = sheet_rows(ws)
    assert len(rows) == 2 * len(CODES)
    for row in rows:
        t = PERIOD_TYPES[row["期间"]]
        key = (row["指标代码"], row["地区代码"], t, row["期间起"].date(), row["期间止"].date())
        assert row["地区代码"] == "640100"
        check_row(row, want[key])
    # Numbers are numbers, rates shown as percentages, margins in 百分点.
    col = {h: i for i, h in enumerate(header)}
    for cells in ws.iter_rows(min_row=2):
        value = cells[col["指标值"]]
        if value.value is not None:
            assert isinstance(value.value, float)
            assert value.number_format in ("0.00%", "+0.00%;-0.00%;0.00%")
        assert isinstance(cells[col["分母"]].value, (int, float))
        assert cells[col["余量/差距（百分点）"]].number_format == "+0.00;-0.00;0.00"
        assert cells[col["期间起"]].is_date
    assert ws.freeze_panes == "A2" and ws.auto_filter.ref


def test_xlsx_has_every_region_and_month_per_indicator(warehouse, tmp_path):
    """"… one per indicator with every region and month …": the pooling
    region's report lists it and its counties, every month of the year."""
    wb = load_workbook(export(warehouse, "xlsx", tmp_path / "r.xlsx"))
    want = nightly(warehouse)
    expected = {k for k in want if k[1] in ("640100", "640104", "640105", "640106")}
    seen = set()
    for code in CODES:
        (name,) = [n for n in wb.sheetnames if n.split(" ")[0] == code]
        for row in sheet_rows(wb[name]):
            key = (code, row["地区代码"], PERIOD_TYPES[row["期间"]], row["期间起"].date(),
                   row["期间止"].date())
            check_row(row, want[key])
            seen.add(key)
    assert seen == expected


def test_xlsx_ranks_counties_with_ties(warehouse, tmp_path):
    """"No ranking. … Rank counties and pooling regions per indicator (排名, with ties)"."""
    wb = load_workbook(export(warehouse, "xlsx", tmp_path / "r.xlsx"))
    want = nightly(warehouse)
    for code in ("I08", "C01", "I21"):
        ind = wb[[n for n in wb.sheetnames if n.startswith(code + " ")][0]]
        for row in sheet_rows(ind):
            if row["层级"] != "县(区)":
                continue
            t = PERIOD_TYPES[row["期间"]]
            mine = want[(code, row["地区代码"], t, row["期间起"].date(), row["期间止"].date())]
            others = [v for k, v in want.items() if k[0] == code and k[2:] == (
                t, row["期间起"].date(), row["期间止"].date()) and k[1] in ("640104", "640105",
                                                                         "640106")]
            if mine["value"] is None:
                assert row["同级排名"] is None
                continue
            better = [o for o in others if o["value"] is not None and (
                o["value"] < mine["value"] if code == "C01" else o["value"] > mine["value"])]
            assert row["同级排名"] == len(better) + 1, (code, row)


def test_xlsx_quality_sheet_equals_the_warehouse(warehouse, tmp_path):
    wb = load_workbook(export(warehouse, "xlsx", tmp_path / "r.xlsx"))
    want = {
        (rule, t): (checked, failed, rate)
        for rule, t, checked, failed, rate in sql(
            warehouse,
            "SELECT rule_id, period_type, checked, failed, pass_rate FROM quality_rule_results"
            " WHERE region_code = '640100' AND period_end = DATE '2023-11-30'"
            " AND (period_type = 'YTD' OR period_start = DATE '2023-11-01')")
    }
    rows = sheet_rows(wb["数据质量"])
    assert len(rows) == len(want)
    for row in rows:
        assert (row["检查记录数"], row["不合格记录数"], row["记录合格率"]) == \
            want[(row["规则"], PERIOD_TYPES[row["期间"]])]
        assert row["数据流"] in ("参保登记", "结算", "经办事项") and row["规则名称"]


def test_csv_holds_the_scorecard_rows(warehouse, tmp_path):
    """"… a CSV of the same rows": the scorecard sheet's rows, exact values."""
    path = export(warehouse, "csv", tmp_path / "r.csv")
    assert path.read_bytes().startswith(b"\xef\xbb\xbf")  # BOM: Excel shows the Chinese
    with open(path, encoding="utf-8-sig", newline="") as f:
        rows = list(csv.DictReader(f))
    want = nightly(warehouse)
    assert len(rows) == 2 * len(CODES)
    for row in rows:
        key = (row["指标代码"], row["地区代码"], PERIOD_TYPES[row["期间"]],
               dt.date.fromisoformat(row["期间起"]), dt.date.fromisoformat(row["期间止"]))
        w = want[key]
        assert (float(row["指标值"]) if row["指标值"] else None) == w["value"]
        assert same_amount(row["分子"], w["numerator"]) and same_amount(row["分母"], w["denominator"])


def test_pdf_is_printed_by_chromium_with_the_figures(warehouse, tmp_path):
    """"… a PDF printed from the HTML by headless Chromium": its text holds
    the scorecard's figures as the HTML shows them."""
    import pypdf

    ensure_chromium()
    pdf = export(warehouse, "pdf", tmp_path / "r.pdf")
    assert pdf.read_bytes()[:5] == b"%PDF-"
    reader = pypdf.PdfReader(pdf)
    # NFKC: the CJK font maps some glyphs to Kangxi radicals (⾃ for 自).
    text = unicodedata.normalize("NFKC", "".join(p.extract_text() for p in reader.pages))
    text = text.replace(",", "")
    assert "自评报告" in text
    want = nightly(warehouse)
    for code in ("I07", "I08", "I13", "R01"):
        row = want[(code, "640100", "MONTH", dt.date(2023, 11, 1), dt.date(2023, 11, 30))]
        assert f"{row['value'] * 100:.2f}%" in text, code
        assert f"{row['denominator'].normalize():f}" in text, code


def test_pdf_without_chromium_says_so_in_one_line(warehouse, tmp_path, monkeypatch, capsys):
    """"… (clear error when Chromium is absent)": exit status 2, one line."""
    monkeypatch.delenv("YIBAO_CHROMIUM", raising=False)
    monkeypatch.setenv("PATH", str(tmp_path))  # no chromium anywhere on it
    status = cli.main(["report", "--warehouse", f"duckdb:///{warehouse}", "--region", "640100",
                       "--period", PERIOD, "--format", "pdf", "--out", str(tmp_path / "r.pdf")])
    err = capsys.readouterr().err
    assert status == 2 and err.count("\n") == 1, err
    assert "Chromium" in err and "not installed" in err and "YIBAO_CHROMIUM" in err
    assert not (tmp_path / "r.pdf").exists()
    monkeypatch.setenv("YIBAO_CHROMIUM", os.devnull)
    assert cli.main(["report", "--warehouse", f"duckdb:///{warehouse}", "--region", "640100",
                     "--period", PERIOD, "--format", "pdf"]) == 2
    assert "YIBAO_CHROMIUM" in capsys.readouterr().err
