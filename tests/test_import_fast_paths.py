"""``yibao import`` fast and bounded (issue 21: "Fast and bounded: columnar
readers ..., batches, no per-row Python on the CSV and Parquet paths").

The speed comes from shortcuts: a column in an export's usual shape is
cast by Arrow directly (importer/convert.py ``_plain_*``), the Avro
encoder writes runs of fixed-width values as byte matrices, the CSV
transcoder scans for blank lines with numpy.  Each shortcut must give
exactly what the general path gives: these tests put the two side by side
on generated hostile values, and the encoder against fastavro on extreme
values.
"""
from __future__ import annotations

import datetime as dt
import io
import random
from decimal import Decimal

import fastavro
import pyarrow as pa
import pytest

import schemas
from importer import convert
from importer import read as read_mod
from importer.avro_write import encode_records
from tests.test_import import SETTLEMENT_ROW, _csv, _read, _rejects, _run

FAST = ("_plain_money", "_plain_timestamp", "_plain_date")


def _both(values: list[str], field: pa.Field, monkeypatch) -> tuple:
    """(fast, general) results of one column: values and reasons as lists."""
    col = pa.array(values, pa.string())
    fast = convert.convert_text(col, field, {})
    with monkeypatch.context() as m:
        for name in FAST:
            m.setattr(convert, name, lambda *a: None)
        general = convert.convert_text(col, field, {})
    def plain(values: pa.Array) -> list:  # dates of year 0 are beyond Python's
        if pa.types.is_date32(values.type):
            values = values.cast(pa.int32())
        return values.to_pylist()

    return ((plain(fast.values), fast.reasons.to_pylist()),
            (plain(general.values), general.reasons.to_pylist()))


def _money_texts(rnd: random.Random) -> list[str]:
    texts = ["0", "5.", ".5", "-.5", "+.5", ".", "+", "-", "1.234", "1.230", "1e5", "1E5",
             "000000000000001", "00000000000001", "99999999999999", "99999999999999.99",
             "999999999999999", "+-1", "1-2", "1..2", "-0.00", "12.5000000", "1,234.56", ""]
    for _ in range(300):
        n = rnd.randint(1, 16)
        texts.append("".join(rnd.choice("0123456789.+-") if rnd.random() < 0.3
                             else rnd.choice("0123456789") for _ in range(n)))
    return texts


def _time_texts(rnd: random.Random) -> list[str]:
    texts = ["2023-03-01 08:30:00", "2023-03-01T08:30:00.250", "2023-02-30 10:00:00",
             "2023-03-01 24:00:00", "2023-12-31 23:59:60", "2023-03-01 08:30", "2023-03-01 08",
             "2023-03-01", "08:30:00", "2023-03-01 08:30:00.1230", "2023-03-01 08:30:00.1234",
             "2023-03-01 08:30:00+08:00", "2023-03-01 08:30:00+19:00", "2023-03-01 08:30+08:00",
             "2023-03-01 08+08:00", "2023-03-01 08:30:00z", "2023-03-01t08:30:00", ""]
    offsets = ["", "", "", "Z", "z", "+08:00", "+0800", "+08", "-03:30", "+18:00", "+19:00",
               "+08:60", "+8", " +08:00", "+08:0"]
    for _ in range(300):
        y, mo, d = rnd.choice(["2023", "1990", "0001", "20x3"]), rnd.randint(0, 13), rnd.randint(0, 32)
        h, mi, s = rnd.randint(0, 25), rnd.randint(0, 61), rnd.randint(0, 61)
        frac = rnd.choice(["", "", ".", "." + "".join(rnd.choice("0123456789")
                                                    for _ in range(rnd.randint(1, 10)))])
        sep = rnd.choice("  T t")
        text = f"{y}-{mo:02d}-{d:02d}{sep}{h:02d}:{mi:02d}:{s:02d}{frac}{rnd.choice(offsets)}"
        if rnd.random() < 0.1:
            text = text[:rnd.randint(0, len(text))]
        texts.append(text)
    return texts


def _date_texts(rnd: random.Random) -> list[str]:
    texts = ["2023-03-01", "20230301", "2023-02-29", "20230229", "2024-02-29", "2023-3-1",
             "2023-03-01 00:00:00", "2023/03/01", "202303011", "2023030", "x0230301", ""]
    for _ in range(400):
        y, mo, d = rnd.choice(["2023", "2024", "1900", "0000"]), rnd.randint(0, 13), rnd.randint(0, 32)
        texts.append(rnd.choice([f"{y}-{mo:02d}-{d:02d}", f"{y}{mo:02d}{d:02d}"]))
    return texts


@pytest.mark.parametrize("field,texts", [
    (pa.field("medfee_sumamt", pa.decimal128(16, 2), nullable=False), _money_texts),
    (pa.field("setl_time", schemas.TIMESTAMP, nullable=False), _time_texts),
    (pa.field("completed_time", schemas.TIMESTAMP, nullable=True), _time_texts),
    (pa.field("begndate", pa.date32(), nullable=False), _date_texts),
    (pa.field("paus_insu_date", pa.date32(), nullable=True), _date_texts),
])
def test_fast_path_converts_every_value_as_the_general_path(field, texts, monkeypatch):
    """Value by value (a one-value column takes the fast path whenever that
    value is in the plain shape), then whole columns of plain values."""
    values = texts(random.Random(21))
    for v in values:
        fast, general = _both([v], field, monkeypatch)
        assert fast == general, v
    plain = [v for v in values if _both([v], field, monkeypatch)[1][1] == [None] and v]
    assert len(plain) > 20  # the generators make good values too
    fast, general = _both(plain + [""], field, monkeypatch)
    assert fast == general


def test_plain_columns_take_the_fast_path():
    """The shortcut is taken for what exports write (else it buys nothing)."""
    money = pa.array(["1234.50", "-0.01", "0", "12.5"])
    assert convert._plain_money(money, pa.decimal128(16, 2)).to_pylist() == \
        [Decimal("1234.50"), Decimal("-0.01"), Decimal("0.00"), Decimal("12.50")]
    times = pa.array(["2023-03-01 08:30:00", "2023-03-01T08:30:00.250"])
    assert convert._plain_timestamp(times).to_pylist() == [1677630600000, 1677630600250]
    assert convert._plain_timestamp(pa.array(["2023-03-01 00:30:00Z"])).to_pylist() == \
        [1677630600000]
    assert convert._plain_date(pa.array(["20230301", "20240229"])).to_pylist() == \
        [dt.date(2023, 3, 1), dt.date(2024, 2, 29)]
    assert convert._plain_money(pa.array(["1e5"]), pa.decimal128(16, 2)) is None


# --- the encoder: fastavro's bytes on extreme values --------------------------


def _extremes(f: pa.Field, n: int, fixed: bool) -> list:
    t = f.type
    if t == pa.string():
        vals = ["abc", "", "医保结算", "x" * 200, "Z"] if not fixed else ["abcd", "医保", "wxyz"]
    elif t == schemas.TIMESTAMP:
        vals = [dt.datetime(1970, 1, 1, tzinfo=dt.UTC), dt.datetime(1900, 1, 1, tzinfo=dt.UTC),
                dt.datetime(2999, 12, 31, 23, 59, 59, 999000, tzinfo=dt.UTC),
                dt.datetime(2023, 3, 1, 0, 30, 0, 250000, tzinfo=dt.UTC)]
    elif t == pa.date32():
        vals = [dt.date(1970, 1, 1), dt.date(1, 1, 1), dt.date(9999, 12, 31), dt.date(1969, 12, 31)]
    elif pa.types.is_decimal(t):
        vals = [Decimal(s) for s in ("99999999999999.99", "-99999999999999.99", "0.00", "0.01",
                                     "-0.01", "1.27", "1.28", "-1.28", "-1.29", "327.67",
                                     "327.68", "-327.68", "-327.69", "83886.07", "83886.08")]
    elif t == pa.int32():
        vals = [0, -1, 1, 63, 64, -64, -65, 2**31 - 1, -2**31]
    elif t == pa.bool_():
        vals = [True, False]
    elif pa.types.is_list(t):
        vals = [[], ["a"], ["医保", "", "x" * 130]]
    else:
        raise AssertionError(t)
    out = [vals[i % len(vals)] for i in range(n)]
    if f.nullable and not fixed:
        out = [None if i % 3 == 1 else v for i, v in enumerate(out)]
    return out


@pytest.mark.parametrize("fixed", [False, True])
@pytest.mark.parametrize("stream", schemas.STREAM_NAMES)
def test_encoder_writes_fastavros_bytes_on_extreme_values(stream, fixed):
    """Every width of varint and decimal, empty and long strings, nulls; and
    ``fixed``: strings of one length a column (the byte-matrix path)."""
    schema = schemas.load(stream)
    table = pa.table({f.name: pa.array(_extremes(f, 60, fixed), f.type) for f in schema.arrow},
                     schema=schema.arrow)
    expected = io.BytesIO()
    for rec in table.to_pylist():
        fastavro.schemaless_writer(expected, schema.parsed, rec)
    assert encode_records(table, stream) == expected.getvalue()


# --- the CSV transcoder -------------------------------------------------------


@pytest.mark.parametrize("newline", ["\n", "\r\n"])
def test_blank_lines_keep_line_numbers_across_blocks(tmp_path, monkeypatch, newline):
    """Blank lines (skipped, counted) anywhere, a block boundary included."""
    monkeypatch.setattr(read_mod, "CSV_BLOCK", 1024)
    rows = [dict(SETTLEMENT_ROW, setl_id=f"s{i}", medfee_sumamt="x" if i % 7 == 3 else "1.00")
            for i in range(120)]
    path = _csv(tmp_path / "blank.csv", rows)
    lines = path.read_text().splitlines()
    rnd = random.Random(5)
    out_lines, bad = [lines[0]], []
    for i, line in enumerate(lines[1:]):
        while rnd.random() < 0.3:
            out_lines.append("")
        out_lines.append(line)
        if i % 7 == 3:
            bad.append(len(out_lines))
    out_lines += ["", ""]
    path.write_bytes(newline.join(out_lines).encode() + newline.encode())
    code, out = _run(tmp_path, "settlement", path)
    assert code == 3
    assert sorted(int(r["line"]) for r in _rejects(out, "settlement", "blank")) == bad
    assert len(_read(out, "settlement", "blank")) == 120 - len(bad)


def test_a_replacement_character_in_valid_utf8_is_still_rejected(tmp_path):
    """U+FFFD written in a valid UTF-8 file marks bytes lost upstream: the
    row is rejected, as an undecodable one is (the transcoder's flag)."""
    rows = [dict(SETTLEMENT_ROW, setl_id="s1"), dict(SETTLEMENT_ROW, setl_id="s2", assist_grp="低\ufffd")]
    code, out = _run(tmp_path, "settlement", _csv(tmp_path / "fffd.csv", rows))
    assert code == 3
    [reject] = _rejects(out, "settlement", "fffd")
    assert reject["line"] == "3" and "not valid in the file's encoding" in reject["reason"]
