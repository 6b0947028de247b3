"""Manual evidence (人工佐证): the plan's indicators that no data stream measures.

16 of the plan's 30 indicators, and the sub-items 12(1)(2), 23(1)–(3) and
29(1)–(3), are judged from documents, surveys and on-site checks. The agency
fills in one row per item and region in a file; ``yibao evidence load``
replaces the rows of ``manual_evidence`` (WAREHOUSE.md) by (region_code,
year, indicator_code), and the report shows each item with its value,
evidence and attachments, and lists what is still missing.

    yibao evidence template --out 佐证-640100-2023.xlsx --region 640100 --year 2023
    yibao evidence load --warehouse duckdb:///var/warehouse.duckdb --file 佐证-640100-2023.xlsx

Files: .xlsx (the first sheet), .csv (UTF-8, a BOM is fine) or .yaml (a list
of rows, or a mapping with region_code / year defaults and ``items``).
Headers may be the template's Chinese ones or the column names. A row with
neither value, score, evidence nor attachments is a blank template row and
is skipped. An item with sub-items (12, 23, 29) is complete when its
sub-items are; its own row (a total score) is optional.
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import io
import json
import re
import uuid
from decimal import Decimal, InvalidOperation
from pathlib import Path

from pipelines.errors import UsageError
from transforms.indicators.catalog import MANUAL_EVIDENCE

#: The plan's sub-items (seed 000, 四、任务分工), under their indicator.
SUB_ITEMS: dict[int, tuple[tuple[str, str], ...]] = {
    12: (("12(1)", "协议处理覆盖率"), ("12(2)", "协议管理数据上报情况")),
    23: (("23(1)", "便民措施落实率"), ("23(2)", "医保待遇政策网上可查率"),
         ("23(3)", "咨询服务电话接通率")),
    29: (("29(1)", "国务院大督查发现问题整改完成率"), ("29(2)", "审计问题整改完成率"),
         ("29(3)", "国家飞行检查发现问题整改完成率")),
}


def items() -> list[dict]:
    """Every item in plan order: code, name, parent (sub-items), required."""
    out = []
    for number, name in MANUAL_EVIDENCE:
        subs = SUB_ITEMS.get(number, ())
        out.append({"code": str(number), "name": name, "parent": None, "required": not subs})
        out += [{"code": c, "name": n, "parent": str(number), "required": True} for c, n in subs]
    return out


CODES = {i["code"]: i for i in items()}

#: column -> (template header, accepted header spellings)
COLUMNS = {
    "region_code": "地区代码",
    "year": "年度",
    "indicator_code": "方案序号",
    "name": "指标名称（仅供参考）",
    "value": "数值（比率填小数或百分数）",
    "score": "得分",
    "evidence": "佐证说明",
    "attachments": "附件（多个以；分隔）",
    "entered_by": "填报人",
    "entered_at": "填报时间",
}
_HEADERS = {**{k: k for k in COLUMNS}, **{v: k for k, v in COLUMNS.items()},
            **{re.split(r"[(（]", v)[0]: k for k, v in COLUMNS.items()}}


# --- the template -----------------------------------------------------------------


def template_rows(region_code: str = "", year: int | None = None) -> list[dict]:
    return [{"region_code": region_code, "year": year, "indicator_code": i["code"],
             "name": i["name"] + ("" if i["required"] else "（由分项汇总，本行选填）")}
            for i in items()]


def write_template(out: Path, region_code: str = "", year: int | None = None) -> Path:
    rows = template_rows(region_code, year)
    suffix = out.suffix.lower()
    out.parent.mkdir(parents=True, exist_ok=True)
    if suffix == ".xlsx":
        from openpyxl import Workbook
        from openpyxl.styles import Alignment, Font, PatternFill

        wb = Workbook()
        ws = wb.active
        ws.title = "人工佐证"
        ws.append(list(COLUMNS.values()))
        for cell in ws[1]:
            cell.font = Font(bold=True)
            cell.fill = PatternFill("solid", fgColor="F6F8FA")
            cell.alignment = Alignment(wrap_text=True)
        for row in rows:
            ws.append([row.get(k) for k in COLUMNS])
            ws.cell(ws.max_row, 3).number_format = "@"  # "12(1)" and "2" stay text
        for letter, width in zip("ABCDEFGHIJ", (10, 7, 9, 36, 14, 7, 50, 30, 10, 18)):
            ws.column_dimensions[letter].width = width
        ws.freeze_panes = "A2"
        wb.save(out)
    elif suffix == ".csv":
        with open(out, "w", encoding="utf-8-sig", newline="") as f:
            w = csv.writer(f)
            w.writerow(COLUMNS.values())
            w.writerows([["" if row.get(k) is None else row.get(k) for k in COLUMNS]
                         for row in rows])
    elif suffix in (".yaml", ".yml"):
        import yaml

        doc = {"region_code": region_code or None, "year": year,
               "items": [{k: ("" if k in ("evidence", "entered_by") else None)
                          for k in ("indicator_code", "name", "value", "score", "evidence",
                                    "attachments", "entered_by")} | {
                             "indicator_code": r["indicator_code"], "name": r["name"],
                             "attachments": []} for r in rows]}
        out.write_text(yaml.safe_dump(doc, allow_unicode=True, sort_keys=False), "utf-8")
    else:
        raise UsageError(f"{out}: write the template as .xlsx, .csv or .yaml")
    return out


# --- reading a filled-in file ---------------------------------------------------------


def _records(path: Path) -> list[tuple[int, dict]]:
    """(line or row number, {column: raw value}) of the file's rows."""
    suffix = path.suffix.lower()
    if suffix == ".xlsx":
        from openpyxl import load_workbook

        wb = load_workbook(path, read_only=True, data_only=True)
        try:
            got = list(wb.worksheets[0].iter_rows(values_only=True))
        finally:
            wb.close()
        return _table(path, got)
    if suffix == ".csv":
        text = path.read_text(encoding="utf-8-sig")
        return _table(path, list(csv.reader(io.StringIO(text))))
    if suffix in (".yaml", ".yml"):
        import yaml

        try:
            doc = yaml.safe_load(path.read_text(encoding="utf-8"))
        except yaml.YAMLError as e:
            raise UsageError(f"{path}: not valid YAML ({str(e).splitlines()[0]})") from None
        defaults = {}
        if isinstance(doc, dict):
            defaults = {k: doc[k] for k in ("region_code", "year") if doc.get(k) is not None}
            doc = doc.get("items")
        if not isinstance(doc, list) or not all(isinstance(d, dict) for d in doc):
            raise UsageError(f"{path}: expected a list of rows, or a mapping with items: [...]")
        return [(n, {**defaults, **{_column(path, k): v for k, v in d.items()}})
                for n, d in enumerate(doc, 1)]
    raise UsageError(f"{path}: read .xlsx, .csv or .yaml files (yibao evidence template)")


def _column(path: Path, header) -> str:
    key = _HEADERS.get(str(header or "").strip())
    if key is None:
        raise UsageError(f"{path}: unknown column {header!r} — use the template's headers"
                         f" ({', '.join(COLUMNS.values())})")
    return key


def _table(path: Path, got: list) -> list[tuple[int, dict]]:
    if not got:
        raise UsageError(f"{path}: the file is empty — fill in the template of yibao evidence"
                         " template")
    header = [_column(path, h) for h in got[0] if h not in (None, "")]
    return [(n, dict(zip(header, row))) for n, row in enumerate(got[1:], 2)
            if any(v not in (None, "") for v in row)]


def _blank(v) -> bool:
    return v is None or (isinstance(v, str) and not v.strip()) or v == []


def _number(where: str, field: str, v) -> float | None:
    if _blank(v):
        return None
    if isinstance(v, bool):
        raise UsageError(f"{where}: {field} {v!r} is not a number")
    text = str(v).strip()
    scale = Decimal(1)
    if text.endswith(("%", "%")):
        text, scale = text[:-1], Decimal("0.01")
    try:
        return float(Decimal(text.replace(",", "")) * scale)
    except InvalidOperation:
        raise UsageError(f"{where}: {field} {v!r} is not a number — write e.g. 0.95 or 95%")\
            from None


def normalise_code(v) -> str:
    """'12(1)', '12（1）', ' 12 (1) ' -> '12(1)'; 2.0 (a spreadsheet number) -> '2'."""
    if isinstance(v, float) and v.is_integer():
        v = int(v)
    text = str(v).strip().replace("（", "(").replace("）", ")")
    return re.sub(r"\s+", "", text)


def _attachments(v) -> list[str]:
    if _blank(v):
        return []
    if isinstance(v, list):
        return [str(a).strip() for a in v if str(a).strip()]
    return [a.strip() for a in re.split(r"[;；\n]", str(v)) if a.strip()]


def _instant(where: str, v, default: dt.datetime) -> dt.datetime:
    if _blank(v):
        return default
    if isinstance(v, dt.datetime):
        instant = v
    elif isinstance(v, dt.date):
        instant = dt.datetime.combine(v, dt.time())
    else:
        try:
            instant = dt.datetime.fromisoformat(str(v).strip())
        except ValueError:
            raise UsageError(f"{where}: entered_at {v!r} is not a date — write YYYY-MM-DD"
                             " or YYYY-MM-DD HH:MM") from None
    if instant.tzinfo is None:  # the agency writes Beijing time
        from zoneinfo import ZoneInfo

        instant = instant.replace(tzinfo=ZoneInfo("Asia/Shanghai"))
    return instant.astimezone(dt.UTC)


def read(path: str | Path, now: dt.datetime | None = None) -> list[dict]:
    """The manual_evidence rows of a filled-in file; UsageError naming the
    row for anything the agency must correct."""
    path = Path(path)
    if not path.is_file():
        raise UsageError(f"no file {path} — write one with yibao evidence template --out {path}")
    now = now or dt.datetime.now(dt.UTC)
    out, seen = [], {}
    for n, rec in _records(path):
        where = f"{path.name} row {n}"
        if all(_blank(rec.get(k)) for k in ("value", "score", "evidence", "attachments")):
            continue  # a template row not filled in
        code = normalise_code(rec.get("indicator_code") or "")
        if code not in CODES:
            raise UsageError(f"{where}: 方案序号 {code!r} is not an item needing manual evidence"
                             f" — use one of {', '.join(CODES)}")
        region = normalise_code(rec.get("region_code") or "")
        if not re.fullmatch(r"\d{6}", region):
            raise UsageError(f"{where}: 地区代码 {region!r} is not a 6-digit region code")
        try:
            year = int(_number(where, "year", rec.get("year")) or 0)
        except (TypeError, ValueError):
            year = 0
        if not 2000 <= year <= 2100:
            raise UsageError(f"{where}: 年度 {rec.get('year')!r} is not a year, e.g. 2023")
        key = (region, year, code)
        if key in seen:
            raise UsageError(f"{where}: {region} {year} {code} is already in row {seen[key]}")
        seen[key] = n
        out.append({
            "region_code": region,
            "year": year,
            "indicator_code": code,
            "value": _number(where, "数值", rec.get("value")),
            "score": _number(where, "得分", rec.get("score")),
            "evidence": None if _blank(rec.get("evidence")) else str(rec["evidence"]).strip(),
            "attachments": json.dumps(_attachments(rec.get("attachments")), ensure_ascii=False),
            "entered_by": None if _blank(rec.get("entered_by")) else str(rec["entered_by"]).strip(),
            "entered_at": _instant(where, rec.get("entered_at"), now),
        })
    if not out:
        raise UsageError(f"{path}: no row is filled in (value, score, evidence or attachments)")
    return out


def load(uri: str, path: str | Path) -> int:
    """Replace the file's rows in manual_evidence; returns how many."""
    import pyarrow as pa

    from warehouse import open_warehouse
    from warehouse.tables import arrow_schema

    rows = read(path)
    with open_warehouse(uri) as wh:
        wh.ensure_schema()
        known = _known_regions(wh)
        unknown = sorted({r["region_code"] for r in rows} - known) if known else []
        if unknown:
            raise UsageError(f"{Path(path).name}: region {', '.join(unknown)} not in dim_region"
                             " — check 地区代码 (a county, pooling region or province code)")
        wh.publish(str(uuid.uuid4()),
                   {"manual_evidence": pa.Table.from_pylist(rows, schema=arrow_schema(
                       "manual_evidence"))})
    return len(rows)


def _known_regions(wh) -> set[str]:
    try:
        return {r[0] for r in wh.con.execute("SELECT region_code FROM dim_region").fetchall()}
    except AttributeError:  # BigQuery: the rows are checked by the report instead
        return set()


# --- the report's view ------------------------------------------------------------------


def stored(con, region_code: str, year: int) -> list[dict] | None:
    """The region's manual_evidence rows of ``year``; None when the warehouse
    predates the table."""
    from report import data

    try:
        return data.rows(
            con,
            "SELECT region_code, year, indicator_code, value, score, evidence, attachments,"
            " entered_by, entered_at FROM manual_evidence WHERE region_code = ? AND year = ?",
            [region_code, year],
        )
    except Exception as e:  # noqa: BLE001 - only a missing table is expected here
        if "manual_evidence" in str(e):
            return None
        raise


def report_rows(con, region_code: str, year: int) -> list[dict]:
    """Every item in plan order with its stored row: status entered | missing
    | optional (an item with sub-items and no row of its own)."""
    got = {r["indicator_code"]: r for r in stored(con, region_code, year) or []}
    out = []
    for i in items():
        row = got.get(i["code"], {})
        status = "entered" if row else "missing" if i["required"] else "optional"
        attachments = json.loads(row["attachments"]) if row.get("attachments") else []
        out.append({
            **{k: row.get(k) for k in ("value", "score", "evidence", "entered_by", "entered_at")},
            "indicator_code": i["code"],
            "name": i["name"],
            "parent": i["parent"],
            "status": status,
            "status_name": {"entered": "已填报", "missing": "缺", "optional": "分项汇总"}[status],
            "attachments": attachments,
            "attachments_text": ";".join(attachments),
        })
    return out


# --- the command --------------------------------------------------------------------------


def evidence_main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="yibao evidence",
        description="Manual evidence (人工佐证) of the plan's indicators that data cannot compute.",
    )
    sub = parser.add_subparsers(dest="action", required=True)
    t = sub.add_parser("template", help="write the file the agency fills in")
    t.add_argument("--out", required=True, help="file to write: .xlsx, .csv or .yaml")
    t.add_argument("--region", default="", help="region code to fill in (e.g. 640100)")
    t.add_argument("--year", type=int, default=None, help="evaluation year to fill in")
    ld = sub.add_parser("load", help="load a filled-in file into manual_evidence")
    ld.add_argument("--warehouse", default="duckdb:///var/warehouse.duckdb",
                    help="duckdb:///path/file.duckdb or bigquery://PROJECT/DATASET")
    ld.add_argument("--file", required=True, help="the filled-in .xlsx, .csv or .yaml")
    args = parser.parse_args(argv)
    if args.action == "template":
        out = write_template(Path(args.out), args.region, args.year)
        print(f"template written: {out.resolve()} ({len(items())} items)")
        return 0
    n = load(args.warehouse, args.file)
    print(f"manual_evidence: {n} rows loaded from {args.file}")
    return 0
