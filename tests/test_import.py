"""``yibao import`` (issue 21: "Import the platform's extracts: CSV, Excel and
Parquet exports into contract Avro, nothing lost").

The acceptance test exports generated Avro to every format the issue names
(UTF-8 and GB18030 CSV with Chinese labels, XLSX, Parquet), imports the
exports, and runs the nightly on both landings: the figures must be
exactly the same.  The hostile files are rejected row by row or file by
file, each with its reason.
"""
from __future__ import annotations

import csv
import datetime as dt
import io
import json
import os
import shutil
import stat
from decimal import Decimal
from pathlib import Path

import fastavro
import openpyxl
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pcsv
import pyarrow.parquet as pq
import pytest
import yaml

import schemas
from datagen.generate import generate
from importer import read as read_mod
from importer.avro_write import ContainerWriter, encode_records
from importer.cli import import_main
from importer.mapping import SHIPPED
from pipelines import nightly
from pipelines.cli import main as yibao
from transforms.decode import read_avro_file
from warehouse.duckdb_store import connect

SHANGHAI = dt.timezone(dt.timedelta(hours=8))
ZH = {s: yaml.safe_load((SHIPPED / f"zh_{s}.yaml").read_text(encoding="utf-8"))["columns"]
      for s in schemas.STREAM_NAMES}


# --- exporters: a contract table written the way platform exports write it ----


def as_text(table: pa.Table, stream: str, *, bools=("1", "0"), sep=";", dates="%Y-%m-%d",
            offset=False) -> pa.Table:
    """Every column as text: times naive Shanghai (or UTC with an offset),
    money as decimal text, lists joined by ``sep``, null as ""."""
    cols = {}
    for f in schemas.load(stream).arrow:
        if f.name not in table.column_names:
            continue
        col = table.column(f.name)
        if f.type == schemas.TIMESTAMP:
            if offset:  # %S prints the milliseconds of a ms timestamp
                txt = pc.strftime(col, "%Y-%m-%dT%H:%M:%S%z")
            else:
                local = pc.local_timestamp(col.cast(pa.timestamp("ms", tz="Asia/Shanghai")))
                txt = pc.strftime(local, "%Y-%m-%d %H:%M:%S")
        elif f.type == pa.date32():
            txt = pc.strftime(col, dates)
        elif f.type == pa.bool_():
            txt = pc.if_else(col, bools[0], bools[1])
        elif pa.types.is_list(f.type):
            txt = pa.array([sep.join(v) for v in col.to_pylist()], pa.string())
        else:
            txt = col.cast(pa.string())
        cols[f.name] = txt.fill_null("")
    return pa.table(cols)


def write_csv(table: pa.Table, path: Path, encoding="utf-8", labels=None, bom=False) -> Path:
    if labels:
        table = table.rename_columns([labels.get(n, n) for n in table.column_names])
    buf = io.BytesIO()
    pcsv.write_csv(table, buf, pcsv.WriteOptions(quoting_style="needed"))
    data = buf.getvalue().decode("utf-8").encode(encoding)
    path.write_bytes((b"\xef\xbb\xbf" if bom else b"") + data)
    return path


def write_xlsx(table: pa.Table, path: Path, stream: str, labels=None) -> Path:
    """Native cells as a spreadsheet holds them: date-times naive Shanghai,
    money as numbers (floats), booleans, lists joined by commas."""
    wb = openpyxl.Workbook(write_only=True)
    ws = wb.create_sheet("导出")
    fields = [f for f in schemas.load(stream).arrow if f.name in table.column_names]
    ws.append([(labels or {}).get(f.name, f.name) for f in fields])
    for rec in table.to_pylist():
        row = []
        for f in fields:
            v = rec[f.name]
            if isinstance(v, dt.datetime):
                v = v.astimezone(SHANGHAI).replace(tzinfo=None)
            elif isinstance(v, Decimal):
                v = float(v)
            elif isinstance(v, list):
                v = ",".join(v)
            row.append(v)
        ws.append(row)
    wb.save(path)
    return path


def contract_table(batches, stream: str) -> pa.Table:
    return pa.Table.from_batches(batches).select(schemas.load(stream).field_names)


# --- the acceptance test: nightly on imports == nightly on the originals ----


@pytest.fixture(scope="module")
def generated(tmp_path_factory):
    root = tmp_path_factory.mktemp("generated")
    generate(str(root), seed=21, persons=300)
    return root


FORMATS = ("csv_utf8", "csv_gb18030_zh", "xlsx_zh", "parquet")


@pytest.fixture(scope="module")
def imported(generated, tmp_path_factory):
    """Every readable original file exported in one of the four formats
    (rotating, so each stream has every format) and imported back."""
    exports = tmp_path_factory.mktemp("exports")
    landing = tmp_path_factory.mktemp("imported")
    shutil.copytree(generated / "reference", landing / "reference")
    quarantine = tmp_path_factory.mktemp("q")
    codes = {}
    for stream in schemas.STREAM_NAMES:
        for i, path in enumerate(sorted((generated / stream).glob("*.avro"))):
            batches, _, _ = read_avro_file(str(path), stream, str(quarantine))
            if not batches:
                continue  # wholly unreadable: the nightly dead-letters it, nothing to export
            table = contract_table(batches, stream)
            if stream == "settlement" and "init_setl_id" not in _writer_fields(path):
                table = table.drop_columns(["init_setl_id"])  # an older export: no such column
            kind = FORMATS[i % len(FORMATS)]
            d = exports / kind / stream
            d.mkdir(parents=True, exist_ok=True)
            if kind == "csv_utf8":
                src = write_csv(as_text(table, stream, offset=True), d / f"{path.stem}.csv",
                                bom=True)
                args = []
            elif kind == "csv_gb18030_zh":
                text = as_text(table, stream, bools=("是", "否"), sep="|", dates="%Y%m%d")
                src = write_csv(text, d / f"{path.stem}.csv", "gb18030", ZH[stream])
                args = ["--mapping", "zh"]
            elif kind == "xlsx_zh":
                src = write_xlsx(table, d / f"{path.stem}.xlsx", stream, ZH[stream])
                args = ["--mapping", "zh"]
            else:
                src = d / f"{path.stem}.parquet"
                pq.write_table(table, src)
                args = []
            code = import_main(["--stream", stream, "--out", str(landing), *args, str(src)])
            codes[(stream, path.name, kind)] = code
    return landing, codes


def _writer_fields(path: Path) -> set[str]:
    with path.open("rb") as f:
        return {fl["name"] for fl in fastavro.reader(f).writer_schema["fields"]}


def _figures(warehouse: Path) -> dict:
    con = connect(str(warehouse), read_only=True)
    try:
        return {
            "indicators": con.execute(
                "SELECT indicator_code, region_code, period_type, period_start, numerator, "
                "denominator, value FROM indicator_values ORDER BY ALL").fetchall(),
            "rules": con.execute(
                "SELECT rule_id, stream, region_code, period_type, period_start, checked, failed "
                "FROM quality_rule_results ORDER BY ALL").fetchall(),
        }
    finally:
        con.close()


def _nightly(landing: Path, warehouse: Path, as_of: str) -> None:
    nightly.run(["--input", str(landing), "--warehouse", f"duckdb:///{warehouse}",
                 "--as-of", as_of, "--months", "2023-01..2023-12"])


def test_nightly_on_imported_exports_gives_the_original_figures(generated, imported, tmp_path):
    """Round trip Avro -> CSV (UTF-8, GB18030 + Chinese labels) / XLSX / Parquet
    -> yibao import -> nightly: "exactly the figures of the nightly on the
    original Avro"."""
    landing, codes = imported
    assert set(codes.values()) == {0}, codes  # every row of every export written
    assert {kind for (_, _, kind) in codes} == set(FORMATS)
    as_of = (generated / "as_of.txt").read_text().strip()
    _nightly(generated, tmp_path / "original.duckdb", as_of)
    _nightly(landing, tmp_path / "imported.duckdb", as_of)
    original, again = _figures(tmp_path / "original.duckdb"), _figures(tmp_path / "imported.duckdb")
    assert len(original["indicators"]) > 1000 and len(original["rules"]) > 1000
    assert again == original


def test_imported_records_equal_the_originals(generated, imported, tmp_path):
    """Field by field, every stream: the imported files hold the original records."""
    landing, _ = imported
    for stream in schemas.STREAM_NAMES:
        for path in sorted((generated / stream).glob("*.avro")):
            batches, _, _ = read_avro_file(str(path), stream, str(tmp_path))
            if not batches:
                continue
            with (landing / stream / path.name).open("rb") as f:
                back = list(fastavro.reader(f, reader_schema=schemas.load(stream).parsed))
            expected = contract_table(batches, stream).to_pylist()
            # a text cell cannot tell "" from null: empty is null for a nullable field
            nullable = [f.name for f in schemas.load(stream).arrow
                        if f.nullable and f.type == pa.string()]
            expected = [{k: (None if k in nullable and v == "" else v) for k, v in r.items()}
                        for r in expected]
            back = [{k: (None if k in nullable and v == "" else v) for k, v in r.items()}
                    for r in back]
            assert back == expected, (stream, path.name)


# --- the Avro encoder ---------------------------------------------------------


def test_encoder_writes_fastavros_bytes_for_every_stream(generated, tmp_path):
    for stream in schemas.STREAM_NAMES:
        batches = []
        for path in sorted((generated / stream).glob("*.avro")):
            batches += read_avro_file(str(path), stream, str(tmp_path))[0]
        table = contract_table(batches, stream)
        expected = io.BytesIO()
        for rec in table.to_pylist():
            fastavro.schemaless_writer(expected, schemas.load(stream).parsed, rec)
        assert encode_records(table, stream) == expected.getvalue(), stream


def test_container_reads_back_with_the_contract_and_replaces_whole(tmp_path):
    stream = "settlement_list"
    table = pa.table({
        "event_id": ["a", "b"], "event_time": pa.array([0, -1], pa.int64()).cast(schemas.TIMESTAMP),
        "setl_id": ["s", ""], "fixmedins_code": ["H", "P"],
        "upload_time": pa.array([2**40, 0], pa.int64()).cast(schemas.TIMESTAMP),
        "diag_codes": [["I10.x00", ""], []], "oprn_codes": [[], ["中文"]]})
    out = tmp_path / "x.avro"
    for _ in range(2):
        w = ContainerWriter(out, stream)
        w.write(table)
        w.close()
    with out.open("rb") as f:
        recs = list(fastavro.reader(f, reader_schema=schemas.load(stream).parsed))
    assert [r["diag_codes"] for r in recs] == [["I10.x00", ""], []]
    assert recs[1]["event_time"] == dt.datetime(1969, 12, 31, 23, 59, 59, 999000, tzinfo=dt.UTC)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x.avro"]  # no temporary left


# --- values as exports write them ---------------------------------------------


SETTLEMENT_ROW = {
    "event_id": "e1", "event_time": "2023-03-01 08:00:00", "setl_id": "s1", "mdtrt_id": "m1",
    "psn_no": "p1", "insutype": "310", "insu_admdvs": "640104", "fix_blng_admdvs": "640104",
    "fixmedins_code": "H64010400001", "med_type": "11", "begndate": "2023-03-01",
    "enddate": "20230301", "setl_time": "2023-03-01T08:30:00.250+08:00",
    **{m: "0" for m in schemas.load("settlement").money_fields},
    "medfee_sumamt": "1234.50", "hifp_pay": "-0.01", "dscg_maindiag_code": "",
    "dise_codg": "", "pay_method": "ITEM", "setl_type": "2", "smart_audit": "是",
    "assist_grp": "NONE", "refd_setl_flag": "0", "init_setl_id": "",
}


def _run(tmp_path, stream, *files, extra=()):
    out = tmp_path / "landing"
    code = import_main(["--stream", stream, "--out", str(out), *extra, *map(str, files)])
    return code, out


def _read(out: Path, stream: str, stem: str) -> list[dict]:
    with (out / stream / f"{stem}.avro").open("rb") as f:
        return list(fastavro.reader(f, reader_schema=schemas.load(stream).parsed))


def _rejects(out: Path, stream: str, stem: str) -> list[dict]:
    with (out / "_rejected" / stream / f"{stem}.csv").open(encoding="utf-8-sig") as f:
        return list(csv.DictReader(f))


def _csv(path: Path, rows: list[dict], encoding="utf-8") -> Path:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=list(rows[0]), lineterminator="\n")
    w.writeheader()
    w.writerows(rows)
    path.write_bytes(buf.getvalue().encode(encoding))
    return path


def test_values_as_exports_write_them(tmp_path):
    rows = [SETTLEMENT_ROW, dict(SETTLEMENT_ROW, setl_id="s2", smart_audit="false",
                                 event_time="2023-03-01T00:00:00Z", medfee_sumamt="7.5",
                                 dscg_maindiag_code="I10.x00x002", begndate="2023-03-01 00:00:00")]
    code, out = _run(tmp_path, "settlement", _csv(tmp_path / "x.csv", rows))
    assert code == 0
    a, b = _read(out, "settlement", "x")
    assert a["event_time"] == dt.datetime(2023, 3, 1, 0, 0, tzinfo=dt.UTC)  # naive: Shanghai
    assert a["setl_time"] == dt.datetime(2023, 3, 1, 0, 30, 0, 250000, tzinfo=dt.UTC)
    assert a["enddate"] == dt.date(2023, 3, 1)
    assert (a["medfee_sumamt"], a["hifp_pay"]) == (Decimal("1234.50"), Decimal("-0.01"))
    assert a["smart_audit"] is True and b["smart_audit"] is False
    assert a["dscg_maindiag_code"] is None and a["init_setl_id"] is None  # empty, nullable: null
    assert b["event_time"] == dt.datetime(2023, 3, 1, tzinfo=dt.UTC)
    assert b["medfee_sumamt"] == Decimal("7.50") and b["dscg_maindiag_code"] == "I10.x00x002"
    assert not (out / "_rejected").exists()


def test_missing_column_with_default_gets_it_and_unknown_columns_are_listed(tmp_path, capsys):
    row = {k: v for k, v in SETTLEMENT_ROW.items() if k != "init_setl_id"}
    row["备注"] = "x"
    code, out = _run(tmp_path, "settlement", _csv(tmp_path / "old.csv", [row]))
    assert code == 0
    assert _read(out, "settlement", "old")[0]["init_setl_id"] is None
    printed = capsys.readouterr().out
    assert "contract default: init_setl_id" in printed and "unknown columns ignored: 备注" in printed


def test_missing_required_column_rejects_the_file_with_one_line(tmp_path, capsys):
    row = {k: v for k, v in SETTLEMENT_ROW.items() if k != "setl_id"}
    code, out = _run(tmp_path, "settlement", _csv(tmp_path / "nokey.csv", [row]))
    assert code == 3
    lines = [ln for ln in capsys.readouterr().out.splitlines() if "nokey.csv" in ln]
    assert lines == [f"{tmp_path / 'nokey.csv'}: file rejected: missing required column setl_id"]
    assert not (out / "settlement" / "nokey.avro").exists()


def test_hostile_csv_rows_rejected_with_line_and_reason(tmp_path, capsys):
    """"hostile files (wrong encoding, ragged rows, a money value with a comma,
    a time without a date, a duplicated header) rejected row by row or file by
    file with clear reasons"."""
    good = SETTLEMENT_ROW
    rows = [good, dict(good, setl_id="comma", medfee_sumamt="1,234.50"),
            dict(good, setl_id="timeonly", setl_time="08:30:00"),
            dict(good, setl_id="ok2")]
    path = _csv(tmp_path / "bad.csv", rows)
    text = path.read_text(encoding="utf-8").splitlines()
    text.insert(3, "only,three,fields")  # ragged, line 4
    text.insert(4, "")  # a blank line is skipped but counted: the rows after keep their lines
    path.write_text("\n".join(text) + "\n", encoding="utf-8")
    code, out = _run(tmp_path, "settlement", path)
    assert code == 3
    assert [r["setl_id"] for r in _read(out, "settlement", "bad")] == ["s1", "ok2"]
    rejects = {int(r["line"]): r for r in _rejects(out, "settlement", "bad")}
    assert set(rejects) == {3, 4, 6}
    assert "medfee_sumamt: money with a comma" in rejects[3]["reason"]
    assert json.loads(rejects[3]["values"])["medfee_sumamt"] == "1,234.50"
    assert rejects[4]["reason"] == "3 fields, the header has 36"
    assert rejects[4]["values"] == "only,three,fields"
    assert rejects[6]["reason"].startswith("setl_time: not a date-time")
    mode = stat.S_IMODE(os.stat(out / "_rejected" / "settlement" / "bad.csv").st_mode)
    assert mode == 0o600
    summary = capsys.readouterr().out
    assert "read 5, written 2, rejected 3" in summary


def test_line_numbers_hold_across_csv_blocks(tmp_path, monkeypatch):
    monkeypatch.setattr(read_mod, "CSV_BLOCK", 4096)  # many pyarrow blocks
    rows = [dict(SETTLEMENT_ROW, setl_id=f"s{i}",
                 medfee_sumamt="x" if i % 37 == 5 else "1.00") for i in range(400)]
    code, out = _run(tmp_path, "settlement", _csv(tmp_path / "many.csv", rows))
    assert code == 3
    lines = sorted(int(r["line"]) for r in _rejects(out, "settlement", "many"))
    assert lines == [i + 2 for i in range(400) if i % 37 == 5]
    assert len(_read(out, "settlement", "many")) == 400 - len(lines)


def test_wrong_encoding_rejects_the_rows_it_garbles(tmp_path):
    rows = [dict(SETTLEMENT_ROW, setl_id="s1", smart_audit="1"),
            dict(SETTLEMENT_ROW, setl_id="s2", smart_audit="1", assist_grp="低保")]
    path = _csv(tmp_path / "gbk.csv", rows, encoding="gb18030")
    code, out = _run(tmp_path, "settlement", path, extra=["--encoding", "utf-8"])
    assert code == 3
    [reject] = _rejects(out, "settlement", "gbk")
    assert reject["line"] == "3" and "not valid in the file's encoding" in reject["reason"]
    # detected without --encoding: GB18030, both rows
    code, out = _run(tmp_path / "again", "settlement", path)
    assert code == 0 and _read(out, "settlement", "gbk")[1]["assist_grp"] == "低保"


def test_duplicated_header_rejects_the_file(tmp_path, capsys):
    path = _csv(tmp_path / "dup.csv", [SETTLEMENT_ROW])
    lines = path.read_text().splitlines()
    lines[0] = lines[0].replace("mdtrt_id", "setl_id")
    path.write_text("\n".join(lines) + "\n")
    code, _ = _run(tmp_path, "settlement", path)
    assert code == 3
    assert "duplicated header 'setl_id' (columns 3 and 4)" in capsys.readouterr().out


def test_reimport_replaces_output_and_clears_old_rejects(tmp_path):
    path = _csv(tmp_path / "x.csv", [SETTLEMENT_ROW, dict(SETTLEMENT_ROW, medfee_sumamt="bad")])
    assert _run(tmp_path, "settlement", path)[0] == 3
    _csv(path, [SETTLEMENT_ROW])
    code, out = _run(tmp_path, "settlement", path)
    assert code == 0 and len(_read(out, "settlement", "x")) == 1
    assert not (out / "_rejected" / "settlement" / "x.csv").exists()


def test_parquet_native_types_and_naive_times(tmp_path):
    table = pa.table({
        "event_id": ["e1", "e2"],
        "event_time": pa.array([dt.datetime(2023, 1, 1, 8, 0)] * 2, pa.timestamp("us")),  # naive
        "case_id": ["c1", "c2"], "matter_code": pa.array([101, 102]),  # a code stored as a number
        "insu_admdvs": ["640104"] * 2, "channel": ["WINDOW"] * 2, "cross_province": [True, False],
        "status": ["COMPLETED", "SUBMITTED"],
        "submitted_time": pa.array([0, 1], pa.timestamp("ms", tz="UTC")),
        "completed_time": pa.array([dt.datetime(2023, 1, 2, tzinfo=dt.UTC), None],
                                   pa.timestamp("ns", tz="UTC")),
        "promised_working_days": pa.array([5, 0], pa.int64()), "rating": pa.array([None, 4.0]),
    })
    pq.write_table(table, tmp_path / "f.parquet")
    code, out = _run(tmp_path, "filing", tmp_path / "f.parquet")
    assert code == 0
    a, b = _read(out, "filing", "f")
    assert a["event_time"] == dt.datetime(2023, 1, 1, 0, 0, tzinfo=dt.UTC)
    assert a["matter_code"] == "101" and b["completed_time"] is None
    assert (a["rating"], b["rating"]) == (None, 4) and a["promised_working_days"] == 5


def test_usage_errors_exit_2(tmp_path, capsys):
    assert yibao(["import", "--stream", "settlement", "--out", str(tmp_path),
                  str(tmp_path / "nope.csv")]) == 2
    assert "nope.csv: no such file" in capsys.readouterr().err
    f = _csv(tmp_path / "x.csv", [SETTLEMENT_ROW])
    assert yibao(["import", "--stream", "settlement", "--out", str(tmp_path),
                  "--encoding", "klingon", str(f)]) == 2
    assert yibao(["import", "--stream", "settlement", "--out", str(tmp_path),
                  "--mapping", str(tmp_path / "none.yaml"), str(f)]) == 2
    (tmp_path / "y").mkdir()
    g = _csv(tmp_path / "y" / "x.csv", [SETTLEMENT_ROW])
    assert yibao(["import", "--stream", "settlement", "--out", str(tmp_path), str(f), str(g)]) == 2
    assert "rename one" in capsys.readouterr().err
