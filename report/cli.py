"""``yibao report`` and ``yibao query`` (wired in pipelines/cli.py).

yibao report --warehouse duckdb:///var/warehouse.duckdb --region 640100 --period 2023-11
             [--out report.html]
yibao query --warehouse duckdb:///var/warehouse.duckdb "SELECT count(*) FROM indicator_values"
yibao query --warehouse duckdb:///var/warehouse.duckdb          # prompt; statements end with ;
"""

from __future__ import annotations

import argparse
import os
import sys

import duckdb
from rich.console import Console

from report import data, query

WAREHOUSE_HELP = (
    "duckdb:///path/file.duckdb (relative to the working directory unless the"
    " path starts with /, i.e. duckdb:////abs/path) or a plain file path"
)


def _console() -> Console:
    # Piped output: no terminal width to respect, so never cut or wrap a cell.
    return Console() if sys.stdout.isatty() else Console(width=100_000, soft_wrap=True)


def _open(uri: str, console: Console) -> duckdb.DuckDBPyConnection | None:
    path = data.duckdb_path(uri)
    if not os.path.exists(path):
        console.print(f"[red]no warehouse at {path}[/red] (from --warehouse {uri})")
        return None
    from warehouse.duckdb_store import connect

    try:
        return connect(path, read_only=True)
    except duckdb.Error as e:  # e.g. a running pipeline holds the write lock
        console.print(f"[red]cannot open {path} read-only:[/red] {e}")
        return None


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
        "--out", default=None, help="HTML file to write (default report-REGION-PERIOD.html)"
    )
    args = parser.parse_args(argv)
    console = Console(stderr=True)
    try:
        period = data.Period.parse(args.period)
    except ValueError as e:
        parser.error(str(e))
    con = _open(args.warehouse, console)
    if con is None:
        return 2
    from report.render import write_report

    try:
        out = write_report(
            con, args.region, period.label, args.out or f"report-{args.region}-{period.label}.html"
        )
    except LookupError as e:
        console.print(f"[red]{e}[/red]")
        return 2
    finally:
        con.close()
    console.print(f"report written: {out.resolve()}")
    return 0


def query_main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="yibao query", description="Run SQL read-only against the DuckDB warehouse."
    )
    parser.add_argument("--warehouse", default=data.DEFAULT_WAREHOUSE, help=WAREHOUSE_HELP)
    parser.add_argument("--limit", type=int, default=1000, help="rows printed per statement")
    parser.add_argument(
        "sql", nargs="?", help="SQL to run; without it, a prompt reads statements ending with ;"
    )
    args = parser.parse_args(argv)
    console = _console()
    con = _open(args.warehouse, Console(stderr=True))
    if con is None:
        return 2
    try:
        if args.sql is not None:
            return 0 if query.run_one(con, console, args.sql, args.limit) else 1
        return query.repl(con, console, args.limit)
    finally:
        con.close()


if __name__ == "__main__":
    sys.exit(report_main())
