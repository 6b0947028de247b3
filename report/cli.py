"""``yibao report`` and ``yibao query`` (wired in pipelines/cli.py).

yibao report --warehouse duckdb:///var/warehouse.duckdb --region 640100 --period 2023-11
             [--format html|xlsx|csv|pdf] [--out report.html]
yibao query --warehouse duckdb:///var/warehouse.duckdb "SELECT count(*) FROM indicator_values"
            [--format table|csv|json] [--out FILE]
yibao query --warehouse duckdb:///var/warehouse.duckdb          # prompt; statements end with ;
yibao report|query --warehouse bigquery://PROJECT/DATASET …

Both read a DuckDB file through the sandbox of report/sandbox.py, and
BigQuery through warehouse/reader.py (the report's SQL translated by
warehouse/dialect.py; yibao query takes BigQuery's own SQL). Mistakes (a
missing warehouse, a malformed --period, an unknown region or month, a
refused statement, no access to BigQuery) raise UsageError: one line, exit
status 2.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
from pathlib import Path

import duckdb
from rich.console import Console

from pipelines.errors import UsageError
from report import data, export, query, sandbox
from warehouse.reader import DuckDBReader, Reader, bigquery_failure, open_reader

WAREHOUSE_HELP = (
    "duckdb:///path/file.duckdb (relative to the working directory unless the"
    " path starts with /, i.e. duckdb:////abs/path), a plain file path, or"
    " bigquery://PROJECT/DATASET"
)


def _console(file=None) -> Console:
    # Piped output or a file: no terminal width to respect, so never cut or wrap a cell.
    if file is None and sys.stdout.isatty():
        return Console()
    return Console(file=file, width=100_000, soft_wrap=True)


def _warehouse(uri: str) -> str:
    """The DuckDB file ``uri`` names, which must exist."""
    path = data.duckdb_path(uri)
    if not os.path.isfile(path):
        raise UsageError(
            f"no warehouse at {path} (from --warehouse {uri}) — run yibao nightly"
            f" --warehouse {uri} first, or point --warehouse at an existing .duckdb file"
        )
    return path


def _not_the_warehouse(uri: str, out: str) -> None:
    """``--out`` naming the DuckDB warehouse (or its WAL) would replace every
    published figure with a CSV."""
    if uri.startswith("bigquery://") or "://" in out:
        return
    wh = Path(_warehouse(uri)).resolve()
    if Path(out).resolve() in (wh, wh.with_name(wh.name + ".wal")):
        raise UsageError(f"--out {out} is the warehouse itself — write to another file")


def _open(path: str) -> duckdb.DuckDBPyConnection:
    """A sandboxed read-only connection to the warehouse file at ``path``."""
    try:
        return sandbox.connect(path)
    except duckdb.Error as e:
        if "lock" in str(e).lower():  # a pipeline is writing it
            raise UsageError(
                f"{path} is being written by another process (a nightly or stream run?)"
                " — try again when it has finished"
            ) from None
        raise UsageError(f"cannot open {path} read-only: {query.one_line(e)}") from None


def _reader(uri: str) -> Reader:
    """A read-only Reader on --warehouse: the DuckDB sandbox or BigQuery."""
    if not str(uri).startswith("bigquery://"):
        return DuckDBReader(_open(_warehouse(uri)), owned=True, uri=uri)
    try:
        return open_reader(uri)
    except UsageError:
        raise
    except Exception as e:  # no credentials: the client cannot even be made
        raise _bigquery_usage(uri, e) from None


def _bigquery_usage(uri: str, e: Exception) -> Exception:
    """UsageError for what an operator can fix on BigQuery; ``e`` itself otherwise."""
    why = bigquery_failure(e)
    if why is None:
        return e
    if "Not found: Dataset" in why or "Not found: Table" in why:
        why += (f" — point --warehouse at the dataset yibao nightly writes ({uri} holds no"
                " yibao warehouse)")
    return UsageError(why)


def _what_exists(con) -> str:
    """The months and regions a report can be made for, as a hint."""
    span = data.rows(
        con,
        "SELECT min(period_start) AS first, max(period_start) AS last FROM indicator_values"
        " WHERE pipeline = ? AND period_type = 'MONTH'",
        [data.NIGHTLY],
    )[0]
    if span["first"] is None:
        return "the warehouse holds no nightly values yet: run yibao nightly first"
    regions = [r["region_code"] for r in data.rows(
        con,
        "SELECT DISTINCT region_code FROM indicator_values"
        " WHERE pipeline = ? AND region_level <> 'county' ORDER BY region_code",
        [data.NIGHTLY],
    )]
    months = f"{span['first']:%Y-%m}..{span['last']:%Y-%m}"
    return f"nightly values cover {months}, regions {', '.join(regions)} and their counties"


def report_main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="yibao report",
        description="Self-evaluation report (自评报告) of a region and month, one offline HTML file.",
    )
    parser.add_argument("--warehouse", default=data.DEFAULT_WAREHOUSE, help=WAREHOUSE_HELP)
    parser.add_argument(
        "--region",
        required=True,
        help="region code: county, pooling region or province (e.g. 640000)",
    )
    parser.add_argument(
        "--period", required=True, help="report month YYYY-MM; the year to date ends with it"
    )
    parser.add_argument(
        "--format",
        choices=export.FORMATS,
        default="html",
        help="html (default, one offline page), xlsx (scorecard, one sheet per indicator,"
        " quality, manual evidence), csv (the scorecard rows) or pdf (the page printed by"
        " headless Chromium)",
    )
    parser.add_argument(
        "--out", default=None, help="file to write (default report-REGION-PERIOD.FORMAT)"
    )
    parser.add_argument(
        "--data-docs",
        dest="data_docs",
        default=None,
        help="folder or URL of the Data Docs written by yibao quality-docs: the quality"
        " section links to the page of the region and month (html, pdf; xlsx on its 说明 sheet)",
    )
    args = parser.parse_args(argv)
    try:
        period = data.Period.parse(args.period)
    except ValueError:
        raise UsageError(
            f"--period {args.period!r} is not a month — write YYYY-MM, e.g. 2023-11"
        ) from None
    _check_data_docs(args.data_docs, args.region, period.label)
    if args.out:
        _not_the_warehouse(args.warehouse, args.out)
    # gs:// (any Beam FileSystems path): written locally, then copied there.
    remote = args.out if args.out and "://" in args.out else None
    staging = tempfile.TemporaryDirectory(prefix="yibao-report-") if remote else None
    out = (Path(staging.name) / remote.rsplit("/", 1)[-1] if remote
           else Path(args.out or f"report-{args.region}-{period.label}.{args.format}"))
    if args.format == "pdf":
        export.chromium()  # no browser: said before the warehouse is read

    con = _reader(args.warehouse)
    try:
        export.write(con, args.region, period.label, out, args.format, args.data_docs)
    except LookupError as e:  # region or month not in the warehouse
        raise UsageError(f"{e} — {_what_exists(con)}") from None
    except duckdb.CatalogException as e:
        raise UsageError(
            f"{data.duckdb_path(args.warehouse)} is not a yibao warehouse ({query.one_line(e)})"
            " — point --warehouse at the file yibao nightly writes"
        ) from None
    except OSError as e:
        raise UsageError(f"cannot write {out}: {e.strerror or e}") from None
    except Exception as e:
        raise _bigquery_usage(args.warehouse, e) from None
    finally:
        con.close()
    if remote:
        try:
            _copy_to(out, remote)
        except Exception as e:  # noqa: BLE001 - one line for the operator
            raise UsageError(f"cannot write {remote}: {e}") from None
        finally:
            staging.cleanup()
    Console(stderr=True).print(f"report written: {remote or out.resolve()}")
    return 0


def _check_data_docs(data_docs: str | None, region: str, period: str) -> None:
    """A local --data-docs folder must hold the page the report links to."""
    if not data_docs or "://" in data_docs:
        return
    from expectations.docs_pages import page_path

    if not (Path(data_docs) / page_path(region, period)).is_file():
        raise UsageError(
            f"--data-docs {data_docs} has no page {page_path(region, period)} — run yibao"
            f" quality-docs --out {data_docs} with --months covering {period}"
        )


def _copy_to(local: Path, target: str) -> None:
    from apache_beam.io.filesystem import CompressionTypes
    from apache_beam.io.filesystems import FileSystems

    with local.open("rb") as src, FileSystems.create(
            target, compression_type=CompressionTypes.UNCOMPRESSED) as dst:
        shutil.copyfileobj(src, dst, 1 << 20)


def query_main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="yibao query",
        description="Run SQL read-only against the warehouse. DuckDB: in a sandbox (no"
        " writes, no files, no network, no extensions, no SET). BigQuery: BigQuery's SQL,"
        " the dataset the default one, one SELECT at a time (others refused after a dry run).",
    )
    parser.add_argument("--warehouse", default=data.DEFAULT_WAREHOUSE, help=WAREHOUSE_HELP)
    parser.add_argument(
        "--limit", type=int, default=1000, help="rows shown per statement by --format table"
    )
    parser.add_argument(
        "--format",
        choices=query.FORMATS,
        default="table",
        help="table (default), csv (header, NULL empty) or json (an array of objects);"
        " csv and json write every row",
    )
    parser.add_argument(
        "--out", default=None, help="write the result to this file instead of stdout"
    )
    parser.add_argument(
        "sql", nargs="?", help="SQL to run; without it, a prompt reads statements ending with ;"
    )
    args = parser.parse_args(argv)
    # A missing file, a malformed URI or no credentials: said up front, not at the prompt.
    if args.warehouse.startswith("bigquery://"):
        _reader(args.warehouse).close()
    else:
        _warehouse(args.warehouse)
    if args.sql is None:
        if args.out or args.format != "table":
            raise UsageError("--out and --format need the SQL as an argument, not at the prompt")
        return query.repl(
            lambda: _reader(args.warehouse), _console(), Console(stderr=True), args.limit
        )
    if args.out is None:
        _query(args.warehouse, args, _console())
        return 0
    out = Path(args.out)
    _not_the_warehouse(args.warehouse, args.out)
    part = out.with_name(f".{out.name}.part")  # renamed when complete: never a half file
    try:
        with open(part, "w", encoding="utf-8", newline="") as f:
            _query(args.warehouse, args, _console(f))
        os.replace(part, out)
    except OSError as e:
        raise UsageError(f"cannot write {out}: {e.strerror or e}") from None
    finally:
        part.unlink(missing_ok=True)
    return 0


def _query(uri: str, args, console: Console) -> None:
    reader = _reader(uri)
    try:
        query.run(reader, args.sql, args.format, console, args.limit)
    finally:
        reader.close()


if __name__ == "__main__":
    sys.exit(report_main())
