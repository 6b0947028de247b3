"""``yibao report --format xlsx|csv|pdf``: the report's figures as files the
evaluation team can be handed.

- **xlsx** (openpyxl): sheet 评分卡 — the scorecard of the region and month
  (month and year to date, value, target, verdict, margin, numerator /
  denominator, rank, 环比 / 同比, provisional, small denominator); one sheet
  per indicator with every region of the report's area and every month of
  the year through the report month; 数据质量 — the quality rules; 人工佐证 —
  the manual evidence and what is still missing; 说明 — what the columns mean
  and, with --data-docs, the hyperlink to the region and month's Data Docs page.
  Numbers are numbers (percentages formatted as such, margins and changes in
  百分点), headers Chinese, header row frozen with a filter.
- **csv**: the 评分卡 rows with the same Chinese headers, UTF-8 with a BOM
  (Excel opens it in Chinese), ratios as plain numbers (0.9876 = 98.76 %).
- **pdf**: the HTML report printed by headless Chromium (UsageError when no
  Chromium is installed); its quality section links to the Data Docs page as
  the HTML does.

With --data-docs, XLSX and PDF link to the same target as the HTML: the one
string ``report.render.data_docs_link`` computes (relative to the exported
file for a folder, so keep the two together).

Every figure is read from the warehouse through report/data.py and
report/compare.py, the same functions behind the HTML, so the formats agree.
"""

from __future__ import annotations

import csv
import datetime as dt
import os
import shutil
import string
import subprocess
import tempfile
import urllib.parse
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

from pipelines.errors import UsageError
from report import compare, data, evidence, fmt, labels
from report.data import Period, Region
from transforms.indicators.catalog import BY_CODE, INDICATORS

FORMATS = ("html", "xlsx", "csv", "pdf")


@dataclass(frozen=True)
class Col:
    key: str
    header: str  # Chinese
    kind: str = "text"  # text | pct | pp | amount | int | date | datetime | flag
    width: int = 12


SCORECARD = (
    Col("indicator_code", "指标代码", width=9),
    Col("name_zh", "指标名称", width=30),
    Col("plan_number", "方案序号", "int", 9),
    Col("region_code", "地区代码", width=10),
    Col("region_name", "地区名称", width=14),
    Col("period_name", "期间", width=8),
    Col("period_start", "期间起", "date", 11),
    Col("period_end", "期间止", "date", 11),
    Col("value", "指标值", "pct"),
    Col("direction", "方向", width=6),
    Col("target", "目标值", "pct"),
    Col("result", "结果", width=8),
    Col("margin", "余量/差距（百分点）", "pp", 14),
    Col("numerator", "分子", "amount", 16),
    Col("denominator", "分母", "amount", 16),
    Col("small", "小样本（分母<30）", "flag", 12),
    Col("provisional", "暂定（可能变动）", "flag", 12),
    Col("rank", "排名", "int", 7),
    Col("rank_of", "参与排名数", "int", 10),
    Col("rank_change_mom", "排名较上月（升+）", "int", 12),
    Col("rank_change_yoy", "排名较上年同期（升+）", "int", 14),
    Col("mom", "环比（百分点）", "pp", 12),
    Col("yoy", "同比（百分点）", "pp", 12),
)
INDICATOR_SHEET = (
    Col("region_code", "地区代码", width=10),
    Col("region_name", "地区名称", width=14),
    Col("level_name", "层级", width=9),
    Col("period_name", "期间", width=8),
    Col("period_start", "期间起", "date", 11),
    Col("period_end", "期间止", "date", 11),
    Col("value", "指标值", "pct"),
    Col("target", "目标值", "pct"),
    Col("result", "结果", width=8),
    Col("margin", "余量/差距（百分点）", "pp", 14),
    Col("numerator", "分子", "amount", 16),
    Col("denominator", "分母", "amount", 16),
    Col("small", "小样本（分母<30）", "flag", 12),
    Col("provisional", "暂定（可能变动）", "flag", 12),
    Col("rank", "同级排名", "int", 9),
    Col("rank_of", "参与排名数", "int", 10),
)
QUALITY = (
    Col("rule_id", "规则", width=7),
    Col("rule_name", "规则名称", width=18),
    Col("stream_name", "数据流", width=10),
    Col("severity_name", "级别", width=14),
    Col("period_name", "期间", width=8),
    Col("checked", "检查记录数", "int", 11),
    Col("failed", "不合格记录数", "int", 12),
    Col("pass_rate", "记录合格率", "pct", 11),
    Col("description_zh", "规则说明", width=60),
)
EVIDENCE = (
    Col("indicator_code", "方案序号", width=9),
    Col("name", "指标", width=36),
    Col("status_name", "状态", width=9),
    Col("value", "数值", "amount", 10),
    Col("score", "得分", "amount", 8),
    Col("evidence", "佐证说明", width=50),
    Col("attachments_text", "附件", width=30),
    Col("entered_by", "填报人", width=10),
    Col("entered_at", "填报时间（北京时间）", "datetime", 17),
)
NOTES = (
    "指标值、目标值为比率，以百分数显示；C01 为增幅（可为负），目标为上限。",
    "余量/差距、环比、同比以百分点计：余量为正表示高于目标（C01 为低于上限），为负表示差距。",
    "环比：与上月（年累计：截至上月的年累计）之差；同比：与上年同期之差。无上期数据时为空。",
    "排名：县（区）在所属统筹地区内排名，统筹地区在全区排名；同值同名次，第一名最好"
    "（C01 越低越好）；排名变化为正表示名次上升。",
    "小样本：分母不足 30 件，比率波动大，比较时须谨慎；金额类、地区数和事项目录类指标不标记。",
    "暂定：统计期未结束，或决定分子的时限尚未届满（如 I13 结算后 30 日内的清单上传、"
    "未到期的在办件），数值仍可能变动，不作为最终结果。",
    "数值取自数据仓库 indicator_values 中最新的夜间（nightly）结果。",
)


# --- the rows ---------------------------------------------------------------------


def _common(row: dict | None, extras: dict) -> dict:
    c = compare.cell(row)
    margin = c.get("margin")
    return {
        **c,
        **extras,
        "result": labels.STATUSES[c["status"]],
        "direction": labels.DIRECTIONS.get(c.get("direction"), c.get("direction")),
        "margin": None if margin is None else margin * 100,
        "mom": None if extras.get("mom") is None else extras["mom"] * 100,
        "yoy": None if extras.get("yoy") is None else extras["yoy"] * 100,
        "provisional": bool(c.get("provisional")),
    }


def scorecard_rows(con, r: Region, period: Period) -> list[dict]:
    """The 评分卡 rows: every indicator, month and year to date."""
    ranked = compare.siblings(con, r)
    comp = compare.Comparison(con, [r.code, *(s.code for s in ranked)], period,
                              ranked=[s.code for s in ranked])
    if not comp.now["MONTH"] and not comp.now["YTD"]:
        raise LookupError(f"no nightly indicator values for region {r.code} in {period.label}")
    out = []
    for ind in INDICATORS:
        for t in ("MONTH", "YTD"):
            start, end = period.bounds(t)
            out.append({
                **_common(comp.row(ind.code, r.code, t), comp.extras(ind.code, r.code, t)),
                "indicator_code": ind.code,
                "name_zh": ind.name_zh,
                "plan_number": ind.plan_number,
                "region_code": r.code,
                "region_name": r.name,
                "period_type": t,
                "period_name": labels.PERIOD_TYPES[t],
                "period_start": start,
                "period_end": end,
            })
    return out


def scope_region(con, r: Region) -> Region:
    """The area whose regions the indicator sheets list: a county's pooling region."""
    if r.level != "county" or not (r.pooling_code or r.parent_code):
        return r
    return data.region(con, r.pooling_code or r.parent_code)


def indicator_rows(con, r: Region, period: Period) -> dict[str, list[dict]]:
    """Per indicator: every region of the area and every month (and year to
    date) of the year through ``period``, ranked among regions of one level
    and parent."""
    area = scope_region(con, r)
    cond, params = data.region_filter(area, "v.region_code")
    year_start = dt.date(period.year, 1, 1)
    found = data.rows(
        con,
        f"SELECT v.{', v.'.join(c.strip() for c in data.VALUE_COLUMNS.split(','))},"
        " d.name AS region_name, d.level, d.parent_code, d.pooling_code"
        " FROM indicator_values AS v LEFT JOIN dim_region AS d ON d.region_code = v.region_code"
        f" WHERE v.pipeline = ? AND {cond} AND v.period_type IN ('MONTH', 'YTD')"
        " AND v.period_start >= ? AND v.period_end <= ?"
        " AND (v.period_type = 'MONTH' OR v.period_start = ?)"
        " ORDER BY v.indicator_code, v.period_end, v.period_type, v.region_level, v.region_code",
        [data.NIGHTLY, *params, year_start, period.end, year_start],
    )
    groups: dict[tuple, list[dict]] = {}
    for row in found:
        level = row["level"] or row["region_level"]
        parent = row["pooling_code"] if level == "county" else row["parent_code"]
        if level != "province":
            key = (row["indicator_code"], row["period_type"], row["period_end"], level, parent)
            groups.setdefault(key, []).append(row)
    rank_of = {}
    for group in groups.values():
        ranked = compare.rank(group) if len(group) > 1 else {}
        for row in group:
            rank_of[id(row)] = (ranked.get(row["region_code"]), len(group) if ranked else None)
    out: dict[str, list[dict]] = {i.code: [] for i in INDICATORS}
    for row in found:
        n, of = rank_of.get(id(row), (None, None))
        out.setdefault(row["indicator_code"], []).append({
            **_common(row, {"rank": n, "rank_of": of,
                            "small": compare.small(row["indicator_code"], row["denominator"])}),
            "region_name": row["region_name"] or row["region_code"],
            "level_name": labels.level(row["level"] or row["region_level"]),
            "period_name": labels.PERIOD_TYPES[row["period_type"]],
        })
    return out


def quality_rows(con, r: Region, period: Period) -> list[dict]:
    out = []
    for t in ("MONTH", "YTD"):
        for q in sorted(data.rule_results(con, r.code, period, t), key=lambda q: q["rule_id"]):
            out.append({
                **q,
                "period_type": t,
                "period_name": labels.PERIOD_TYPES[t],
                "rule_name": labels.rule_name(q["rule_id"]),
                "description_zh": labels.rule_description(q["rule_id"]) or q["description"],
                "stream_name": labels.stream(q["stream"]),
                "severity_name": labels.severity(q["severity"]),
            })
    return out


# --- XLSX ------------------------------------------------------------------------


def _excel_value(value, kind: str):
    if value is None:
        return None
    if kind == "flag":
        return "是" if value else ""
    if isinstance(value, dt.datetime) and value.tzinfo is not None:  # Excel has no zones
        return value.astimezone(fmt.BUSINESS_TZ).replace(tzinfo=None)
    return value


def _number_format(col: Col, row: dict) -> str | None:
    if col.kind == "pct":
        return "+0.00%;-0.00%;0.00%" if row.get("indicator_code") == "C01" else "0.00%"
    if col.kind == "pp":
        return "+0.00;-0.00;0.00"
    if col.kind == "amount":
        v = row.get(col.key)
        whole = v is not None and float(v) == int(float(v))
        return "#,##0" if whole else "#,##0.00"
    if col.kind == "int":
        return "0"
    if col.kind == "date":
        return "yyyy-mm-dd"
    if col.kind == "datetime":
        return "yyyy-mm-dd hh:mm"
    return None


def _sheet(wb, title: str, cols: Sequence[Col], rows: Sequence[dict], code: str | None = None):
    """A sheet of ``rows`` on a write-only workbook (fast: cells are streamed)."""
    from openpyxl.cell import WriteOnlyCell
    from openpyxl.styles import Alignment, Font, PatternFill
    from openpyxl.utils import get_column_letter

    ws = wb.create_sheet(title)
    for i, c in enumerate(cols, 1):
        ws.column_dimensions[get_column_letter(i)].width = c.width
    ws.freeze_panes = "A2"
    if rows:
        ws.auto_filter.ref = f"A1:{get_column_letter(len(cols))}{len(rows) + 1}"
    bold, band = Font(bold=True), PatternFill("solid", fgColor="F6F8FA")
    wrap = Alignment(wrap_text=True, vertical="top")
    header = []
    for c in cols:
        cell = WriteOnlyCell(ws, c.header)
        cell.font, cell.fill, cell.alignment = bold, band, wrap
        header.append(cell)
    ws.append(header)
    red, grey = Font(color="CF222E"), Font(color="57606A", italic=True)
    for row in rows:
        ctx = {**row, "indicator_code": row.get("indicator_code", code)}
        out = []
        for c in cols:
            cell = WriteOnlyCell(ws, _excel_value(row.get(c.key), c.kind))
            number_format = _number_format(c, ctx)
            if number_format:
                cell.number_format = number_format
            if c.key == "result" and row.get("status") == "missed":
                cell.font = red
            if row.get("provisional") and c.key in ("value", "result"):
                cell.font = grey
            out.append(cell)
        ws.append(out)
    return ws


def _sheet_title(code: str) -> str:
    ind = BY_CODE[code]
    # Excel forbids / \ ? * [ ] : in sheet names and allows 31 characters.
    name = "".join("-" if ch in '/\\?*[]:' else ch for ch in ind.name_zh)
    return f"{code} {name}"[:31]


DATA_DOCS_LABEL = "数据质量明细（Data Docs）"
DATA_DOCS_TEXT = (f"{DATA_DOCS_LABEL}：本地区本月各数据流的记录合格率及每条规则的检查、失败数"
                  " — per-record evidence behind the quality figures →")


def _link_cell(ws, target: str):
    """A hyperlink cell of a write-only sheet, looking like a link."""
    from openpyxl.cell import WriteOnlyCell
    from openpyxl.styles import Font

    cell = WriteOnlyCell(ws, DATA_DOCS_TEXT)
    cell.hyperlink = target  # relative targets: Excel resolves them against the workbook
    cell.font = Font(color="0563C1", underline="single")
    return cell


def write_xlsx(con, r: Region, period: Period, out: Path, data_docs: str | None = None) -> Path:
    """``data_docs``: the link to the Data Docs page (data_docs_link), if any."""
    from openpyxl import Workbook

    wb = Workbook(write_only=True)
    _sheet(wb, "评分卡", SCORECARD, scorecard_rows(con, r, period))
    for code, rows in indicator_rows(con, r, period).items():
        _sheet(wb, _sheet_title(code), INDICATOR_SHEET, rows, code)
    _sheet(wb, "数据质量", QUALITY, quality_rows(con, r, period))
    _sheet(wb, "人工佐证", EVIDENCE, evidence.report_rows(con, r.code, period.year))
    notes = wb.create_sheet("说明")
    notes.column_dimensions["A"].width = 120
    notes.append([f"{r.name}（{r.code}，{labels.level(r.level)}）医保经办管理服务自评 {period.label}"])
    if data_docs:  # here, not under the 数据质量 table: its sheet stays one table
        notes.append([_link_cell(notes, data_docs)])
    for line in NOTES:
        notes.append([line])
    wb.properties.title = f"{r.name} {period.label} 自评报告"
    wb.properties.creator = "yibao report"
    _atomic(out, wb.save)
    return out


# --- CSV --------------------------------------------------------------------------


def _csv_value(value, kind: str) -> str:
    if value is None:
        return ""
    if kind == "flag":
        return "是" if value else ""
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, Decimal):  # 2207.000000 -> 2207: the same number, as people write it
        return f"{value.normalize():f}"
    return fmt.raw(value)


def write_csv(con, r: Region, period: Period, out: Path) -> Path:
    rows = scorecard_rows(con, r, period)

    def write(path):
        # utf-8-sig: Excel reads the BOM and shows the Chinese headers.
        with open(path, "w", encoding="utf-8-sig", newline="") as f:
            w = csv.writer(f)
            w.writerow([c.header for c in SCORECARD])
            for row in rows:
                w.writerow([_csv_value(row.get(c.key), c.kind) for c in SCORECARD])

    _atomic(out, write)
    return out


# --- PDF --------------------------------------------------------------------------

CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")


def chromium() -> str:
    """The headless browser printing the PDF: $YIBAO_CHROMIUM, else the first
    of CHROMIUM_NAMES on PATH; UsageError when there is none."""
    override = os.environ.get("YIBAO_CHROMIUM")
    if override:
        if not (os.path.isfile(override) and os.access(override, os.X_OK)):
            raise UsageError(f"YIBAO_CHROMIUM={override} is not an executable file — point it at"
                             " chromium or google-chrome, or unset it")
        return override
    for name in CHROMIUM_NAMES:
        found = shutil.which(name)
        if found:
            return found
    raise UsageError(
        "--format pdf prints the HTML report with headless Chromium, which is not installed"
        " — install it (apt-get install chromium fonts-noto-cjk) or set YIBAO_CHROMIUM to a"
        " chromium / google-chrome binary; --format html writes the page to print by hand"
    )


def print_pdf(html: Path, out: Path, timeout: float = 180) -> Path:
    binary = chromium()
    with tempfile.TemporaryDirectory(prefix="yibao-pdf-") as tmp:
        part = Path(tmp) / "report.pdf"
        cmd = [
            binary, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
            "--disable-background-networking", "--disable-extensions", "--no-pdf-header-footer",
            f"--user-data-dir={tmp}/profile", f"--print-to-pdf={part}", html.resolve().as_uri(),
        ]
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            raise UsageError(f"{binary} did not print the PDF within {timeout:.0f} s") from None
        if proc.returncode != 0 or not part.exists() or part.stat().st_size == 0:
            tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["no output"]
            raise UsageError(f"{binary} could not print the PDF (exit {proc.returncode}):"
                             f" {tail[0]}")
        out.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(str(part), out)
    return out


# Chromium resolves every href against the page it prints (a temporary file), so
# the PDF is printed with this stand-in and its /URI then set to the real link.
LINK_STAND_IN = "https://data-docs.yibao.invalid/link"


def _set_link(pdf: Path, stand_in: str, target: str) -> None:
    """Point the link annotations of ``pdf`` whose /URI is ``stand_in`` at ``target``."""
    from pypdf import PdfWriter
    from pypdf.generic import NameObject, TextStringObject

    # A PDF URI is 7-bit ASCII: non-ASCII and spaces percent-encoded.
    uri = TextStringObject(urllib.parse.quote(target, safe=string.punctuation))
    writer = PdfWriter(clone_from=pdf)
    found = 0
    for page in writer.pages:
        for annot in page.get("/Annots") or ():
            action = annot.get_object().get("/A")
            if action is not None and action.get_object().get("/URI") == stand_in:
                action.get_object()[NameObject("/URI")] = uri
                found += 1
    if not found:
        raise RuntimeError(f"{pdf}: Chromium printed no link annotation for the Data Docs link")
    _atomic(pdf, writer.write)


def write_pdf(con, r: Region, period: Period, out: Path, data_docs: str | None = None) -> Path:
    """``data_docs``: the link to the Data Docs page (data_docs_link), if any."""
    from report.render import render

    chromium()  # before rendering: say it up front when there is none
    html = render(con, r.code, period, LINK_STAND_IN if data_docs else None)
    with tempfile.TemporaryDirectory(prefix="yibao-report-") as tmp:
        page = Path(tmp) / "report.html"
        page.write_text(html, encoding="utf-8")
        print_pdf(page, out)
    if data_docs:
        _set_link(out, LINK_STAND_IN, data_docs)
    return out


# --- common -------------------------------------------------------------------------


def _atomic(out: Path, write) -> None:
    """Write to a hidden sibling, then rename: never a half-written file."""
    out.parent.mkdir(parents=True, exist_ok=True)
    part = out.with_name(f".{out.name}.part")
    try:
        write(part)
        os.replace(part, out)
    finally:
        part.unlink(missing_ok=True)


def write(source, region_code: str, period: str, out: str | Path, format_: str,
          data_docs: str | None = None) -> Path:
    """The report of ``region_code`` and ``period`` in ``format_`` (FORMATS) at ``out``;
    ``data_docs``: where ``yibao quality-docs`` wrote its pages (html, xlsx and pdf
    link to the region and month's page; csv holds only the scorecard rows)."""
    from report.render import data_docs_link, write_report

    out = Path(out)
    if format_ == "html":
        return write_report(source, region_code, period, out, data_docs)
    p = Period.parse(period)
    link = data_docs_link(data_docs, region_code, p.label, out) if data_docs else None
    with data.reading(source) as con:
        r = data.region(con, region_code)
        if format_ == "csv":
            return write_csv(con, r, p, out)
        return {"xlsx": write_xlsx, "pdf": write_pdf}[format_](con, r, p, out, link)
