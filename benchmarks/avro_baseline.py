"""The baseline for the nightly throughput benchmark: the independent oracle's
DuckDB SQL (tests/independent/oracle.py) fed by a fast Avro reader.

The oracle decodes Avro record by record with fastavro; everything else it does
is DuckDB SQL over Arrow tables.  Here its two reading functions
(``read_avro_dir`` and ``avro_to_arrow``) are replaced by one that reads each
file with a columnar reader straight into Arrow, so the same SQL computes the
same indicators and rule counts, and the measured time is "fast decode + SQL".

Readers (all from PyPI): ``fastavro`` (the oracle's own, the reference),
``polars`` (``polars.read_avro``), ``polars-avro`` and ``jetliner``.  Each file
is read with its writer schema and conformed to the contract (``schemas/*.avsc``):

* a field the file lacks (an older schema) becomes a null column when the contract
  gives it a default, otherwise the file is dropped;
* a field of another type (e.g. a string where the contract has an int) drops the
  file, as the oracle drops a file whose schema does not resolve;
* a file the reader cannot read is skipped.  jetliner (``ignore_errors``) and
  polars-avro keep the complete blocks of a truncated file, as the oracle does;
  polars.read_avro skips the whole file.  (jetliner's ignore_errors skips a bad
  block and reads on, where the oracle stops; the comparison below would show it.)

Command line (the benchmark runs it in a subprocess to measure time and memory)::

    python benchmarks/avro_baseline.py compare DIR            # reader table, equality
    python benchmarks/avro_baseline.py run DIR --reader jetliner [--as-of T]
                                       [--months YYYY-MM..YYYY-MM] [--result out.json]
"""
from __future__ import annotations

import argparse
import datetime as dt
import importlib
import json
import os
import sys
import time
from pathlib import Path
from unittest import mock

import fastavro
import jetliner
import polars as pl
import polars_avro
import pyarrow as pa

ROOT = Path(__file__).resolve().parents[1]
READERS = ("fastavro", "polars", "polars-avro", "jetliner")
BOOKKEEPING = ("_src", "_file_ord", "_rec_idx")  # the oracle's provenance columns


def load_oracle():
    """tests.independent.oracle, importable from the repository root."""
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    return importlib.import_module("tests.independent.oracle")


# ----------------------------------------------------------------------------- readers


def _read_fastavro(path: str, schema: dict) -> pa.Table | None:
    """Record by record with the contract as reader schema, complete blocks only
    (the oracle's own reading, file by file)."""
    oracle = load_oracle()
    records = []
    with open(path, "rb") as fo:
        try:
            for block in fastavro.block_reader(fo, reader_schema=schema):
                records.extend(list(block))
        except fastavro.read.SchemaResolutionError:
            return None
        except Exception:  # noqa: BLE001 - damaged: keep the complete blocks read so far
            if not records:
                return None
    return oracle.avro_to_arrow(records, schema).drop_columns(list(BOOKKEEPING))


def _read_polars(path: str, schema: dict) -> pa.Table:
    return pl.read_avro(path).to_arrow()


def _read_polars_avro(path: str, schema: dict) -> pa.Table:
    return polars_avro.read_avro(path).to_arrow()


def _read_jetliner(path: str, schema: dict) -> pa.Table:
    return jetliner.read_avro(path, ignore_errors=True).to_arrow()


_READ = {"fastavro": _read_fastavro, "polars": _read_polars,
         "polars-avro": _read_polars_avro, "jetliner": _read_jetliner}


def _kind(t: pa.DataType) -> str:
    if pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_string_view(t):
        return "string"
    if pa.types.is_integer(t):
        return "integer"
    if pa.types.is_list(t) or pa.types.is_large_list(t) or pa.types.is_list_view(t):
        return f"list<{_kind(t.value_type)}>"
    return str(t)  # timestamp[ms, tz=UTC], date32[day], decimal128(16, 2), bool: exact


def conform(table: pa.Table, target: pa.Schema, avsc: dict) -> pa.Table | None:
    """``table`` with the contract's columns and Arrow types, or None when the file's
    schema does not resolve: a column of another type, or a missing field that has
    no default in the contract."""
    defaults = {f["name"] for f in avsc["fields"] if "default" in f}
    columns = []
    for field in target:
        if field.name not in table.column_names:
            if field.name not in defaults:
                return None
            columns.append(pa.nulls(table.num_rows, field.type))
            continue
        column = table.column(field.name)
        if _kind(column.type) != _kind(field.type):
            return None
        columns.append(column.cast(field.type))
    return pa.table(columns, schema=target)


def contract_schema(stream: str) -> tuple[dict, pa.Schema]:
    """The stream's .avsc and its Arrow schema as the oracle builds it."""
    oracle = load_oracle()
    avsc = oracle._load_schema(stream)
    return avsc, pa.schema([(f["name"], oracle._arrow_type(f["type"])) for f in avsc["fields"]])


def stream_paths(stream_dir: str) -> list[str]:
    """Every *.avro directly in the directory, in code-point order (as the oracle)."""
    if not os.path.isdir(stream_dir):
        return []
    return sorted(os.path.join(stream_dir, n) for n in os.listdir(stream_dir)
                  if n.endswith(".avro") and os.path.isfile(os.path.join(stream_dir, n)))


def read_file(reader: str, path: str, avsc: dict, target: pa.Schema) -> pa.Table | None:
    """One file in the contract's Arrow schema; None when the reader skips it."""
    try:
        table = _READ[reader](path, avsc)
    except Exception:  # noqa: BLE001 - unreadable with this reader: skipped
        return None
    return None if table is None else conform(table, target, avsc)


def read_stream(reader: str, stream_dir: str, avsc: dict) -> tuple[pa.Table, list[str], list[str]]:
    """(table with the oracle's provenance columns, paths, skipped paths)."""
    target = pa.schema([(f["name"], load_oracle()._arrow_type(f["type"])) for f in avsc["fields"]])
    paths = stream_paths(stream_dir)
    tables, skipped = [], []
    for ord_, path in enumerate(paths):
        table = read_file(reader, path, avsc, target)
        if table is None:
            skipped.append(path)
            continue
        n = table.num_rows
        tables.append(table
                      .append_column("_src", pa.array([path] * n, pa.string()))
                      .append_column("_file_ord", pa.array([ord_] * n, pa.int64()))
                      .append_column("_rec_idx", pa.array(range(n), pa.int64())))
    full = target.append(pa.field("_src", pa.string())).append(
        pa.field("_file_ord", pa.int64())).append(pa.field("_rec_idx", pa.int64()))
    return pa.concat_tables(tables) if tables else full.empty_table(), paths, skipped


# ------------------------------------------------------------------------- the oracle


def compute(input_dir: str, as_of: dt.datetime, months: list[str], reader: str) -> dict:
    """oracle.compute with ``reader`` in place of its fastavro reading; returns its
    output, the files the reader skipped and the seconds spent reading Avro."""
    oracle = load_oracle()
    skipped: list[str] = []
    read_seconds = 0.0
    original_read, original_to_arrow = oracle.read_avro_dir, oracle.avro_to_arrow

    def timed(function):
        def call(*args):
            nonlocal read_seconds
            start = time.perf_counter()
            try:
                return function(*args)
            finally:
                read_seconds += time.perf_counter() - start
        return call

    def read_avro_dir(stream_dir, reader_schema):
        if reader == "fastavro":  # the oracle's own reading
            return original_read(stream_dir, reader_schema)
        table, paths, missed = read_stream(reader, stream_dir, reader_schema)
        skipped.extend(missed)
        return table, paths

    def avro_to_arrow(records, schema):
        return records if isinstance(records, pa.Table) else original_to_arrow(records, schema)

    with mock.patch.object(oracle, "read_avro_dir", timed(read_avro_dir)), \
            mock.patch.object(oracle, "avro_to_arrow", timed(avro_to_arrow)):
        out = oracle.compute(input_dir, os.path.join(input_dir, "reference"), as_of, months)
    return {**out, "skipped": skipped, "read_seconds": read_seconds}


def parse_as_of(text: str) -> dt.datetime:
    as_of = dt.datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    return as_of if as_of.tzinfo else as_of.replace(tzinfo=dt.timezone(dt.timedelta(hours=8)))


def month_list(spec: str) -> list[str]:
    first, last = ((int(y), int(m)) for y, m in (p.split("-") for p in spec.split("..")))
    months = []
    while first <= last:
        months.append(f"{first[0]}-{first[1]:02d}")
        first = (first[0] + 1, 1) if first[1] == 12 else (first[0], first[1] + 1)
    return months


def last_year(as_of: dt.datetime) -> str:
    """January to as_of's month, in as_of's business year (Asia/Shanghai)."""
    local = as_of.astimezone(dt.timezone(dt.timedelta(hours=8)))
    return f"{local.year}-01..{local.year}-{local.month:02d}"


# ------------------------------------------------------------------------ comparison


def compare_readers(input_dir: str) -> list[dict]:
    """Every reader on every file of every stream: rec/s (best of 3 reads per file;
    fastavro, the slow reference, once), skipped files, and whether its table equals
    fastavro's file by file (values, decimals, instants, dates)."""
    oracle = load_oracle()
    for path in Path(input_dir).glob("*/*.avro"):  # warm the page cache once
        path.read_bytes()
    reference: dict[str, pa.Table | None] = {}
    results = []
    for reader in READERS:
        rows = {"reader": reader, "records": 0, "seconds": 0.0, "settlement_records": 0,
                "settlement_seconds": 0.0, "skipped": [], "differs": []}
        for stream in oracle.STREAMS:
            avsc, target = contract_schema(stream)
            for path in stream_paths(os.path.join(input_dir, stream)):
                seconds = float("inf")
                for _ in range(1 if reader == "fastavro" else 3):  # best of 3: less noise
                    start = time.perf_counter()
                    table = read_file(reader, path, avsc, target)
                    seconds = min(seconds, time.perf_counter() - start)
                name = os.path.relpath(path, input_dir)
                if reader == "fastavro":
                    reference[name] = table
                if table is None:
                    rows["skipped"].append(name)
                    continue
                rows["records"] += table.num_rows
                rows["seconds"] += seconds
                if stream == "settlement":
                    rows["settlement_records"] += table.num_rows
                    rows["settlement_seconds"] += seconds
                if reference.get(name) is not None and not table.equals(reference[name]):
                    rows["differs"].append(name)
        rows["rec_per_s"] = rows["records"] / rows["seconds"]
        rows["settlement_rec_per_s"] = rows["settlement_records"] / rows["settlement_seconds"]
        rows["equal_to_fastavro"] = not rows["differs"]
        results.append(rows)
    return results


def fastest(results: list[dict]) -> str:
    """The fastest reader that reads what fastavro reads (every file it reads, the
    complete blocks of a damaged one) into equal tables; failing that, the fastest
    whose tables are equal."""
    reference = next(r for r in results if r["reader"] == "fastavro")
    equal = [r for r in results if r["equal_to_fastavro"]]
    faithful = [r for r in equal if r["skipped"] == reference["skipped"]]
    return max(faithful or equal, key=lambda r: r["rec_per_s"])["reader"]


def same_output(a: dict, b: dict) -> bool:
    return a["indicators"].equals(b["indicators"]) and a["rules"].equals(b["rules"])


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="command", required=True)
    c = sub.add_parser("compare", help="reader table and equality on a data set")
    c.add_argument("input")
    r = sub.add_parser("run", help="the baseline computation on a data set")
    r.add_argument("input")
    r.add_argument("--reader", choices=READERS, default="jetliner")
    r.add_argument("--as-of", help="default: INPUT/as_of.txt")
    r.add_argument("--months", help="YYYY-MM..YYYY-MM; default: as_of's year up to as_of")
    r.add_argument("--result", help="write timings and row counts here (JSON)")
    args = p.parse_args(argv)

    if args.command == "compare":
        for row in compare_readers(args.input):
            print(f"{row['reader']:<12} {row['rec_per_s']:>10,.0f} rec/s  settlement "
                  f"{row['settlement_rec_per_s']:>10,.0f} rec/s  skipped {row['skipped']}  "
                  f"equal to fastavro: {row['equal_to_fastavro']}")
        return 0

    as_of = parse_as_of(args.as_of or Path(args.input, "as_of.txt").read_text())
    months = month_list(args.months or last_year(as_of))
    start = time.perf_counter()
    out = compute(args.input, as_of, months, args.reader)
    summary = {"reader": args.reader, "seconds": time.perf_counter() - start,
               "read_seconds": out["read_seconds"],
               "indicator_rows": len(out["indicators"]), "rule_rows": len(out["rules"]),
               "skipped": [os.path.relpath(s, args.input) for s in out["skipped"]]}
    print(json.dumps(summary))
    if args.result:
        Path(args.result).write_text(json.dumps(summary), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
