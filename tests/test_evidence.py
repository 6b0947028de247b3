"""Manual evidence (issue 19: "Manual indicators have nowhere to go") and
provisional rows ("Provisional figures look final").

``yibao evidence template`` writes the file the agency fills in; ``yibao
evidence load`` puts it into manual_evidence (replaced by region, year and
item); the report and the workbook show each item and what is missing.
Select with ``pytest -k evidence``; the provisional tests with ``-k provisional``.
"""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal
from pathlib import Path

import pytest
import yaml
from openpyxl import load_workbook

from pipelines import cli
from pipelines.config import load_config
from pipelines.errors import UsageError
from report import evidence
from report.cli import report_main
from tests.conftest_report import build_warehouse
from transforms.context import RunContext
from transforms.indicators.catalog import MANUAL_EVIDENCE
from transforms.indicators.components import Component
from transforms.provisional import provisional
from transforms.rollup import indicator_rows
from warehouse.duckdb_store import connect

SUB_ITEMS = ["12(1)", "12(2)", "23(1)", "23(2)", "23(3)", "29(1)", "29(2)", "29(3)"]


@pytest.fixture()
def warehouse(tmp_path) -> Path:
    return build_warehouse(tmp_path / "warehouse.duckdb")


def stored(warehouse) -> list[tuple]:
    con = connect(str(warehouse), read_only=True)
    try:
        return con.execute(
            "SELECT region_code, year, indicator_code, value, score, evidence, attachments,"
            " entered_by FROM manual_evidence ORDER BY ALL").fetchall()
    finally:
        con.close()


def fill(template: Path, out: Path, answers: dict[str, tuple]) -> Path:
    """The agency's part: value, score, evidence, attachments of some items."""
    wb = load_workbook(template)
    ws = wb.active
    header = [c.value for c in ws[1]]
    col = {h.split("（")[0]: i + 1 for i, h in enumerate(header)}
    for row in range(2, ws.max_row + 1):
        code = ws.cell(row, col["方案序号"]).value
        if code in answers:
            value, score, text, files = answers[code]
            ws.cell(row, col["数值"]).value = value
            ws.cell(row, col["得分"]).value = score
            ws.cell(row, col["佐证说明"]).value = text
            ws.cell(row, col["附件"]).value = files
            ws.cell(row, col["填报人"]).value = "张三"
    wb.save(out)
    return out


def test_evidence_template_lists_every_manual_item_and_sub_item(tmp_path, capsys):
    """"16 of the plan's indicators and the sub-items 12(1)(2), 23(1)–(3),
    29(1)–(3) are judged from documents …": the template has a row for each."""
    out = tmp_path / "佐证.xlsx"
    assert cli.main(["evidence", "template", "--out", str(out), "--region", "640100",
                     "--year", "2023"]) == 0
    ws = load_workbook(out).active
    codes = [r[2] for r in ws.iter_rows(min_row=2, values_only=True)]
    assert codes == [c for c in (i["code"] for i in evidence.items())]
    assert {str(n) for n, _ in MANUAL_EVIDENCE} | set(SUB_ITEMS) == set(codes)
    assert len(codes) == 16 + 8
    assert all(r[0] == "640100" and r[1] == 2023 for r in ws.iter_rows(min_row=2, values_only=True))
    assert all(not str(c.value).isascii() for c in ws[1])  # Chinese headers
    for suffix in (".csv", ".yaml"):  # the other two formats hold the same items
        other = tmp_path / f"t{suffix}"
        evidence.write_template(other, "640100", 2023)
        assert other.stat().st_size > 0
    assert [i["indicator_code"] for i in yaml.safe_load((tmp_path / "t.yaml").read_text())[
        "items"]] == codes


def test_evidence_load_replaces_by_key_and_the_report_shows_it(warehouse, tmp_path, capsys):
    template = evidence.write_template(tmp_path / "t.xlsx", "640100", 2023)
    first = fill(template, tmp_path / "a.xlsx", {
        "1": (None, 4, "制度汇编已印发,执行检查记录齐全", "制度汇编.pdf;检查记录.docx"),
        "12(1)": ("98.5%", 3, "协议处理 197/200 家", "协议清单.xlsx"),
        "28": (1, 5, "信访转办 12 件,全部办结", None),
    })
    uri = f"duckdb:///{warehouse}"
    assert cli.main(["evidence", "load", "--warehouse", uri, "--file", str(first)]) == 0
    rows = stored(warehouse)
    assert [r[2] for r in rows] == ["1", "12(1)", "28"]
    one = rows[0]
    assert one[:3] == ("640100", 2023, "1") and one[3] is None and one[4] == 4.0
    assert json.loads(one[6]) == ["制度汇编.pdf", "检查记录.docx"] and one[7] == "张三"
    assert rows[1][3] == pytest.approx(0.985)  # "98.5%" is a rate
    # A second file for the same region and year replaces 12(1), adds 29(1), keeps the rest.
    second = tmp_path / "b.yaml"
    second.write_text(yaml.safe_dump({"region_code": "640100", "year": 2023, "items": [
        {"indicator_code": "12(1)", "value": 1, "score": 4, "evidence": "补充核查后 200/200"},
        {"indicator_code": "29（1）", "value": 0.9, "evidence": "整改 9/10",
         "attachments": ["整改台账.xlsx"]},
    ]}, allow_unicode=True), encoding="utf-8")
    assert cli.main(["evidence", "load", "--warehouse", uri, "--file", str(second)]) == 0
    rows = {r[2]: r for r in stored(warehouse)}
    assert sorted(rows) == ["1", "12(1)", "28", "29(1)"]
    assert rows["12(1)"][3] == 1.0 and rows["12(1)"][5] == "补充核查后 200/200"

    # The report shows each item with its value, evidence and attachments, and what is missing.
    html_path = tmp_path / "r.html"
    assert report_main(["--warehouse", uri, "--region", "640100", "--period", "2023-11",
                        "--out", str(html_path)]) == 0
    html = html_path.read_text(encoding="utf-8")
    section = html[html.index('id="manual"'):html.index('id="provenance"')]
    assert "制度汇编已印发" in section and "检查记录.docx" in section and "整改台账.xlsx" in section
    missing = section[section.index('id="manual-missing"'):]
    missing = missing[:missing.index("</p>")]
    required = [i["code"] for i in evidence.items() if i["required"]]
    for code in required:
        assert (f"data-missing=\"{code}\"" in missing) == (code not in ("1", "12(1)", "28", "29(1)")), code
    # The workbook's 人工佐证 sheet says the same.
    xlsx = tmp_path / "r.xlsx"
    assert report_main(["--warehouse", uri, "--region", "640100", "--period", "2023-11",
                        "--format", "xlsx", "--out", str(xlsx)]) == 0
    sheet = load_workbook(xlsx)["人工佐证"]
    by_code = {r[0]: r for r in sheet.iter_rows(min_row=2, values_only=True)}
    assert by_code["12(1)"][2] == "已填报" and by_code["12(1)"][3] == 1
    assert by_code["12(2)"][2] == "缺" and by_code["12"][2] == "分项汇总"
    assert by_code["1"][6] == "制度汇编.pdf;检查记录.docx"


@pytest.mark.parametrize("rows, message", [
    ([{"region_code": "640100", "year": 2023, "indicator_code": "31", "score": 1}],
     "not an item needing manual evidence"),
    ([{"region_code": "6401", "year": 2023, "indicator_code": "1", "score": 1}],
     "not a 6-digit region code"),
    ([{"region_code": "640100", "year": 2023, "indicator_code": "1", "value": "很好"}],
     "is not a number"),
    ([{"region_code": "640100", "year": 2023, "indicator_code": "1", "score": 1},
      {"region_code": "640100", "year": 2023, "indicator_code": "1", "score": 2}],
     "already in row 1"),
    ([{"region_code": "990100", "year": 2023, "indicator_code": "1", "score": 1}],
     "not in dim_region"),
    ([{"region_code": "640100", "year": 2023, "indicator_code": "1"}], "no row is filled in"),
])
def test_evidence_load_refuses_a_mistake_in_one_line(warehouse, tmp_path, capsys, rows, message):
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(rows, allow_unicode=True), encoding="utf-8")
    status = cli.main(["evidence", "load", "--warehouse", f"duckdb:///{warehouse}",
                       "--file", str(path)])
    err = capsys.readouterr().err
    assert status == 2 and message in err and err.count("\n") == 1, err
    assert stored(warehouse) == []


def test_evidence_csv_with_chinese_headers_loads(tmp_path):
    path = tmp_path / "e.csv"
    evidence.write_template(path, "640100", 2023)
    lines = path.read_text(encoding="utf-8-sig").splitlines()
    lines[1] = lines[1].replace(",,,,,,", ",0.95,4,实地核查 20 个乡镇,核查表.pdf,李四,")
    path.write_text("\n".join(lines), encoding="utf-8-sig")
    (row,) = evidence.read(path)
    assert (row["indicator_code"], row["value"], row["score"], row["entered_by"]) == \
        ("1", 0.95, 4.0, "李四")
    with pytest.raises(UsageError, match="unknown column"):
        path.write_text("地区,年度\n640100,2023\n", encoding="utf-8")
        evidence.read(path)


# --- provisional rows -----------------------------------------------------------------


def test_provisional_i13_stays_open_for_thirty_days_after_the_month():
    """"June's I13 showed 206/206 = 100 % ✓ because settlements not yet due are
    left out; nothing says it will change." — provisional until the 30-day
    window of June's last day has closed."""
    params = {"settlement_list_days": 30}
    june = dt.date(2023, 6, 30)
    assert provisional("I13", june, dt.date(2023, 7, 15), params)
    assert provisional("I13", june, dt.date(2023, 7, 30), params)
    assert not provisional("I13", june, dt.date(2023, 7, 31), params)
    assert not provisional("I08", june, dt.date(2023, 7, 1), params)
    assert provisional("I08", june, dt.date(2023, 6, 30), params)  # the month has not ended
    assert provisional("I24", june, dt.date(2023, 6, 12), params)


def test_provisional_is_written_by_the_rollup():
    """The nightly's roll-up marks the rows (every indicator, region, MONTH and
    YTD) without changing a figure."""
    import reference

    ctx = RunContext(ref=reference.load(), config=load_config(),
                     as_of=dt.datetime(2023, 7, 15, 4, tzinfo=dt.UTC),
                     months=[dt.date(2023, 5, 1), dt.date(2023, 6, 1), dt.date(2023, 7, 1)])
    county = ctx.ref.counties[0].code
    parts = [Component("I13", county, dt.date(2023, 6, 1), {"num": Decimal(206), "den": Decimal(206)}),
             Component("I08", county, dt.date(2023, 6, 1), {"num": Decimal(9), "den": Decimal(10)})]
    rows = {(r["indicator_code"], r["region_code"], r["period_type"], r["period_end"]): r
            for r in indicator_rows(parts, ctx)}
    june = rows[("I13", county, "MONTH", dt.date(2023, 6, 30))]
    assert (june["numerator"], june["denominator"], june["value"]) == (206, 206, 1.0)
    assert june["provisional"] is True
    assert rows[("I13", county, "YTD", dt.date(2023, 6, 30))]["provisional"] is True
    assert rows[("I13", county, "MONTH", dt.date(2023, 5, 31))]["provisional"] is False
    assert rows[("I08", county, "MONTH", dt.date(2023, 6, 30))]["provisional"] is False
    assert all(r["provisional"] for k, r in rows.items() if k[3] == dt.date(2023, 7, 31))
