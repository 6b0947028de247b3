"""Independent reference computation (oracle) of every indicator and quality rule.

Written from docs/INDICATORS.md, QUALITY_RULES.md and DATA_CONTRACT.md only; it imports
nothing from the project's packages.  Python does the parts SQL is bad at:

* reading Avro (fastavro, the contract ``.avsc`` as reader schema) into Arrow tables,
  keeping the records of the complete blocks of a damaged file and dropping a file
  whose writer schema does not resolve to the contract;
* loading the reference CSVs;
* the working-day calendar (``chinese_calendar``; Monday-Friday outside its years);
* C01's two quotients (exact Decimal arithmetic on the summed components).

Everything else is DuckDB SQL under ``sql/`` (one file per stream / indicator family),
run in this order: ``base.sql`` (dedupe, as_of, latest versions, regions, periods),
``enrolment.sql``, ``contribution.sql``, ``settlement.sql``, ``filing.sql``,
``catalogue.sql``, ``rollup.sql`` (region attribution and the output grids).

API::

    compute(input_dir, reference_dir, as_of, months) -> {"indicators": DataFrame,
                                                          "rules": DataFrame}

See README.md in this folder for the interpretations taken where the docs leave room.
"""
from __future__ import annotations

import csv
import datetime as dt
import decimal
import json
import os
from decimal import Decimal
from pathlib import Path

import chinese_calendar
import duckdb
import fastavro
import pandas as pd
import pyarrow as pa

HERE = Path(__file__).resolve().parent
SQL_DIR = HERE / "sql"
SCHEMA_DIR = HERE.parent.parent / "schemas"

STREAMS = ("enrolment", "contribution", "settlement", "settlement_list", "filing")

INDICATORS = (
    "I04 I07 I08 I09 I10 I13 I14 I17 I19 I21 I22 I24 I25 I26 "
    "R01 R02 R03 R04 R05 S01 S02 S03 S04 S05 C01"
).split()
# indicators whose numerator / denominator are money sums (Decimal); the rest are counts
MONEY_INDICATORS = {"I17", "R01", "R02", "R03", "R04", "R05"}

RULES = (
    [(f"E0{i}", "enrolment") for i in range(1, 10)]
    + [(f"T0{i}", "settlement") for i in range(1, 10)]
    + [(f"F0{i}", "filing") for i in range(1, 5)]
)


# ----------------------------------------------------------------------------- Avro


def _load_schema(stream: str) -> dict:
    with open(SCHEMA_DIR / f"{stream}.avsc", encoding="utf-8") as f:
        return json.load(f)


def _arrow_type(avro_type):
    """Arrow type of one contract field type (nullable unions map to their branch)."""
    if isinstance(avro_type, list):
        (branch,) = [t for t in avro_type if t != "null"]
        return _arrow_type(branch)
    if isinstance(avro_type, dict):
        logical = avro_type.get("logicalType")
        if logical == "timestamp-millis":
            return pa.timestamp("ms", tz="UTC")
        if logical == "date":
            return pa.date32()
        if logical == "decimal":
            return pa.decimal128(avro_type["precision"], avro_type["scale"])
        if avro_type["type"] == "array":
            return pa.list_(_arrow_type(avro_type["items"]))
        return _arrow_type(avro_type["type"])
    return {
        "string": pa.string(),
        "boolean": pa.bool_(),
        "int": pa.int64(),
        "long": pa.int64(),
        "bytes": pa.binary(),
    }[avro_type]


_EPOCH_DATE = dt.date(1970, 1, 1)
_EPOCH_TS = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


def _normalise(values: list, arrow_type) -> list:
    """Values fastavro returns, made acceptable to Arrow (tolerates writers without
    logical types: ints for timestamps/dates, raw bytes or other scales for decimals)."""
    if pa.types.is_timestamp(arrow_type):
        if any(isinstance(v, int) for v in values):
            return [_EPOCH_TS + dt.timedelta(milliseconds=v) if isinstance(v, int) else v
                    for v in values]
    elif pa.types.is_date32(arrow_type):
        if any(isinstance(v, int) for v in values):
            return [_EPOCH_DATE + dt.timedelta(days=v) if isinstance(v, int) else v
                    for v in values]
    elif pa.types.is_decimal(arrow_type):
        try:
            return pa.array(values, type=arrow_type)  # Decimals of the contract's scale
        except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError):
            exp = -arrow_type.scale

            def fix(v):
                if isinstance(v, bytes | bytearray):
                    v = Decimal(int.from_bytes(v, "big", signed=True)).scaleb(exp)
                return v.quantize(Decimal(1).scaleb(exp))
            return [None if v is None else fix(v) for v in values]
    elif pa.types.is_list(arrow_type):
        return [None if v is None else list(v) for v in values]
    return values


def read_avro_dir(stream_dir: str, reader_schema: dict) -> tuple[list[dict], list[str]]:
    """Every decodable record of every ``*.avro`` file of one stream directory.

    Returns (records, paths); each record carries ``_src`` (the path string as listed),
    ``_file_ord`` (rank of the path in code-point order) and ``_rec_idx`` (index of the
    record in its file).  A file whose writer schema cannot be resolved to the contract
    contributes nothing; a damaged file contributes the records of its complete blocks
    before the damage.
    """
    if not os.path.isdir(stream_dir):
        return [], []
    paths = sorted(
        os.path.join(stream_dir, name)
        for name in os.listdir(stream_dir)
        if name.endswith(".avro") and os.path.isfile(os.path.join(stream_dir, name))
    )  # Python str order = code-point order
    records: list[dict] = []
    for ord_, path in enumerate(paths):
        file_records: list[dict] = []
        try:
            with open(path, "rb") as fo:
                idx = 0
                for block in fastavro.block_reader(fo, reader_schema=reader_schema):
                    # block_reader yields a block only after its sync marker was checked
                    block_records = []
                    try:
                        for rec in block:
                            block_records.append(rec)
                    except fastavro.read.SchemaResolutionError:
                        raise
                    except Exception:  # undecodable block: it and the rest are damage
                        break
                    for rec in block_records:
                        rec["_src"] = path
                        rec["_file_ord"] = ord_
                        rec["_rec_idx"] = idx
                        idx += 1
                        file_records.append(rec)
        except fastavro.read.SchemaResolutionError:
            continue  # writer schema does not resolve to the contract: nothing read
        except Exception:
            pass  # cannot be opened / truncated: keep the complete blocks read so far
        records.extend(file_records)
    return records, paths


def avro_to_arrow(records: list[dict], schema: dict) -> pa.Table:
    fields = [(f["name"], _arrow_type(f["type"])) for f in schema["fields"]]
    fields += [("_src", pa.string()), ("_file_ord", pa.int64()), ("_rec_idx", pa.int64())]
    columns = {}
    for name, typ in fields:
        values = _normalise([r.get(name) for r in records], typ)
        columns[name] = values if isinstance(values, pa.Array) else pa.array(values, type=typ)
    return pa.table(columns, schema=pa.schema(fields))


# ----------------------------------------------------------------------- reference


def _read_csv(path: Path, columns: list[str]) -> dict[str, list]:
    """Columns of a reference CSV (UTF-8 with header); blank cells are None."""
    out: dict[str, list] = {c: [] for c in columns}
    if not path.exists():
        return out
    with open(path, encoding="utf-8-sig", newline="") as f:
        for row in csv.DictReader(f):
            for c in columns:
                v = row.get(c)
                out[c].append(None if v is None or v.strip() == "" else v.strip())
    return out


def _truthy(v) -> bool:
    return v is not None and str(v).strip().lower() in ("true", "1", "t", "yes", "y")


def load_reference(reference_dir) -> dict[str, pa.Table]:
    ref = Path(reference_dir)
    regions = _read_csv(ref / "regions.csv", ["code", "name", "level", "parent_code", "pooling_code"])
    institutions = _read_csv(ref / "institutions.csv",
                             ["fixmedins_code", "name", "admdvs", "kind", "grade"])
    population = _read_csv(ref / "population.csv", ["county_code", "year", "registered_population"])
    matters = _read_csv(ref / "matters.csv", ["matter_code", "name", "online_capable",
                                              "statutory_working_days", "promised_working_days",
                                              "region_code"])
    for i, (promised, statutory) in enumerate(zip(matters["promised_working_days"],
                                                  matters["statutory_working_days"])):
        if int(promised) > int(statutory):
            raise ValueError(f"matters.csv row {i + 2}: promised days exceed statutory days "
                             f"({matters['matter_code'][i]}, {matters['region_code'][i]})")

    def strings(cols: dict) -> pa.Table:
        return pa.table({c: pa.array(v, pa.string()) for c, v in cols.items()})

    def ints(values) -> pa.Array:
        return pa.array([int(v) for v in values], pa.int64())

    return {
        "regions": strings(regions),
        "institutions": strings(institutions),
        "population": pa.table({
            "county_code": pa.array(population["county_code"], pa.string()),
            "year": ints(population["year"]),
            "registered_population": ints(population["registered_population"]),
        }),
        "matters": pa.table({
            "matter_code": pa.array(matters["matter_code"], pa.string()),
            "online_capable": pa.array([_truthy(v) for v in matters["online_capable"]], pa.bool_()),
            "statutory_working_days": ints(matters["statutory_working_days"]),
            "promised_working_days": ints(matters["promised_working_days"]),
            "region_code": pa.array(matters["region_code"], pa.string()),
        }),
    }


# ------------------------------------------------------------------------ calendar


def is_working_day(d: dt.date) -> bool:
    try:
        return bool(chinese_calendar.is_workday(d))
    except NotImplementedError:  # year outside the package's data: Monday-Friday
        return d.weekday() < 5


def calendar_table(first: dt.date, last: dt.date) -> pa.Table:
    days = [first + dt.timedelta(days=i) for i in range((last - first).days + 1)]
    return pa.table({
        "d": pa.array(days, pa.date32()),
        "is_wd": pa.array([is_working_day(d) for d in days], pa.bool_()),
    })


# ------------------------------------------------------------------------- periods


def periods_table(months: list[str]) -> pa.Table:
    rows = []
    for m in months:
        y, mo = (int(p) for p in m.split("-"))
        start = dt.date(y, mo, 1)
        end = (dt.date(y + (mo == 12), mo % 12 + 1, 1)) - dt.timedelta(days=1)
        rows.append(("MONTH", start, end))
        rows.append(("YTD", dt.date(y, 1, 1), end))
    rows = sorted(set(rows), key=lambda r: (r[2], r[0]))
    return pa.table({
        "period_type": pa.array([r[0] for r in rows], pa.string()),
        "period_start": pa.array([r[1] for r in rows], pa.date32()),
        "period_end": pa.array([r[2] for r in rows], pa.date32()),
    })


# ------------------------------------------------------------------------- compute


def _run_sql(con, name: str) -> None:
    con.execute((SQL_DIR / name).read_text(encoding="utf-8"))


def _c01(cur_sum, cur_cnt, prev_sum, prev_cnt):
    if not cur_cnt or not prev_cnt:
        return None, None
    with decimal.localcontext() as ctx:
        ctx.prec = 50
        avg = Decimal(cur_sum) / Decimal(cur_cnt)
        avg_prev = Decimal(prev_sum) / Decimal(prev_cnt)
        return avg - avg_prev, avg_prev


def _exact(v, money: bool):
    if v is None:
        return None
    v = Decimal(v)
    return v if money else int(v)


def compute(input_dir, reference_dir, as_of: dt.datetime, months: list[str], *,
            i13_days: int = 30, s03_n: int = 10, s04_n: int = 15,
            connection: duckdb.DuckDBPyConnection | None = None) -> dict[str, pd.DataFrame]:
    """Reference values of every indicator and quality rule (see module docstring)."""
    if as_of.tzinfo is None or as_of.utcoffset() is None:
        raise ValueError("as_of must be timezone-aware")
    con = connection or duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")

    # reference data, periods, parameters
    for name, table in load_reference(reference_dir).items():
        con.register(f"_ref_{name}", table)
        con.execute(f"CREATE OR REPLACE TEMP TABLE {name} AS SELECT * FROM _ref_{name}")
    con.register("_periods", periods_table(months))
    con.execute("CREATE OR REPLACE TEMP TABLE periods AS SELECT * FROM _periods")
    con.execute(
        "CREATE OR REPLACE TEMP TABLE params AS SELECT CAST(? AS TIMESTAMPTZ) AS as_of, "
        "CAST(? AS INTEGER) AS i13_days, CAST(? AS INTEGER) AS s03_n, CAST(? AS INTEGER) AS s04_n",
        [as_of.astimezone(dt.UTC), i13_days, s03_n, s04_n],
    )

    # streams
    for stream in STREAMS:
        schema = _load_schema(stream)
        records, _ = read_avro_dir(os.path.join(str(input_dir), stream), schema)
        con.register(f"_raw_{stream}", avro_to_arrow(records, schema))
        con.execute(f"CREATE OR REPLACE TEMP TABLE raw_{stream} AS SELECT * FROM _raw_{stream}")

    _run_sql(con, "base.sql")

    # working-day calendar covering every date a deadline can start from or be compared with
    lo, hi, max_n = con.execute("""
        SELECT least(min(bd(submitted_time)), (SELECT min(period_start) FROM periods)),
               greatest(max(bd(submitted_time)), max(bd(completed_time)),
                        (SELECT max(period_end) FROM periods),
                        (SELECT bd(as_of) FROM params)),
               greatest(max(promised_working_days), (SELECT greatest(s03_n, s04_n) FROM params))
        FROM filing_latest""").fetchall()[0]
    max_n = min(max(int(max_n or 0), 0), 5000)
    first = lo - dt.timedelta(days=7)
    last = hi + dt.timedelta(days=2 * max_n + 60)
    con.register("_cal", calendar_table(first, last))
    con.execute("CREATE OR REPLACE TEMP TABLE cal AS SELECT * FROM _cal")

    for name in ("enrolment.sql", "contribution.sql", "settlement.sql", "filing.sql",
                 "catalogue.sql", "rollup.sql"):
        _run_sql(con, name)

    # ---- indicators
    ind = con.execute("""
        SELECT indicator_code, region_code, region_level, period_type, period_start, period_end,
               num, den, cur_sum, cur_cnt, prev_sum, prev_cnt
        FROM out_indicators
        ORDER BY indicator_code, region_level, region_code, period_end, period_type""").fetchall()
    rows = []
    for (code, region, level, ptype, pstart, pend, num, den, cs, cc, ps, pc) in ind:
        components = None
        if code == "C01":
            cs, ps = Decimal(cs), Decimal(ps)
            cc, pc = int(cc), int(pc)
            num, den = _c01(cs, cc, ps, pc)
            components = {"cur_sum": cs, "cur_cnt": cc, "prev_sum": ps, "prev_cnt": pc}
        else:
            money = code in MONEY_INDICATORS
            num, den = _exact(num, money), _exact(den, money)
        rows.append({
            "indicator_code": code, "region_code": region, "region_level": level,
            "period_type": ptype, "period_start": pstart, "period_end": pend,
            "numerator": num, "denominator": den, "components": components,
        })
    indicators = pd.DataFrame(rows, columns=[
        "indicator_code", "region_code", "region_level", "period_type", "period_start",
        "period_end", "numerator", "denominator", "components"]).astype(object)

    # ---- rules
    rules = con.execute("""
        SELECT rule_id, stream, region_code, region_level, period_type, period_start, period_end,
               CAST(checked AS BIGINT), CAST(failed AS BIGINT)
        FROM out_rules
        ORDER BY rule_id, region_level, region_code, period_end, period_type""").fetchall()
    rules = pd.DataFrame(rules, columns=[
        "rule_id", "stream", "region_code", "region_level", "period_type", "period_start",
        "period_end", "checked", "failed"]).astype(object)
    return {"indicators": indicators, "rules": rules}


def value(df: pd.DataFrame, indicator_code: str, region_code: str, period_type: str,
          period_end) -> tuple:
    """(numerator, denominator) of one row of compute()['indicators'] (a test helper)."""
    if isinstance(period_end, str):
        period_end = dt.date.fromisoformat(period_end)
    row = df[(df.indicator_code == indicator_code) & (df.region_code == region_code)
             & (df.period_type == period_type) & (df.period_end == period_end)]
    assert len(row) == 1, (indicator_code, region_code, period_type, period_end, len(row))
    r = row.iloc[0]
    return r.numerator, r.denominator


def rule(df: pd.DataFrame, rule_id: str, region_code: str, period_type: str, period_end) -> tuple:
    """(checked, failed) of one row of compute()['rules'] (a test helper)."""
    if isinstance(period_end, str):
        period_end = dt.date.fromisoformat(period_end)
    row = df[(df.rule_id == rule_id) & (df.region_code == region_code)
             & (df.period_type == period_type) & (df.period_end == period_end)]
    assert len(row) == 1, (rule_id, region_code, period_type, period_end, len(row))
    r = row.iloc[0]
    return r.checked, r.failed


if __name__ == "__main__":  # python -m tests.independent.oracle DIR [AS_OF] [YYYY-MM..YYYY-MM]
    import sys

    d = sys.argv[1]
    as_of_s = sys.argv[2] if len(sys.argv) > 2 else open(os.path.join(d, "as_of.txt")).read().strip()
    a = dt.datetime.fromisoformat(as_of_s.replace("Z", "+00:00"))
    if a.tzinfo is None:
        a = a.replace(tzinfo=dt.timezone(dt.timedelta(hours=8)))
    if len(sys.argv) > 3:
        m0, m1 = sys.argv[3].split("..")
    else:
        local = a.astimezone(dt.timezone(dt.timedelta(hours=8)))
        m0, m1 = f"{local.year}-01", f"{local.year}-{local.month:02d}"
    y0, mo0 = map(int, m0.split("-"))
    y1, mo1 = map(int, m1.split("-"))
    ms = []
    while (y0, mo0) <= (y1, mo1):
        ms.append(f"{y0}-{mo0:02d}")
        y0, mo0 = (y0 + 1, 1) if mo0 == 12 else (y0, mo0 + 1)
    out = compute(d, os.path.join(d, "reference"), a, ms)
    with pd.option_context("display.max_rows", 200, "display.width", 200):
        print(out["indicators"][out["indicators"].region_level == "province"])
        print(out["rules"][out["rules"].region_level == "province"])
