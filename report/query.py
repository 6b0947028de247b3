"""SQL against the warehouse in the sandbox (report/sandbox.py), results as
a rich table, CSV or JSON.

On BigQuery (``--warehouse bigquery://PROJECT/DATASET``) the SQL is
BigQuery's own (GoogleSQL) with the dataset as the default one, so ``FROM
indicator_values`` works as in DuckDB. A dry run tells the statement's type
first; anything but one SELECT is refused (DML, DDL, scripts, EXPORT DATA)
before it runs. Values are written as DuckDB writes them
(warehouse/dialect.py), so the same SELECT gives the same CSV from both.

Analysts who need a file get ``--format csv|json --out FILE``: Python writes
it, DuckDB never touches a file. A statement that fails or is refused ends in
one line (:class:`pipelines.errors.UsageError`).
"""

from __future__ import annotations

import csv
import sys
from collections.abc import Callable, Iterable
from typing import TextIO

import duckdb
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from pipelines.errors import UsageError
from report import sandbox
from warehouse import dialect
from warehouse.reader import BigQueryReader, DuckDBReader, Result, bigquery_failure

FORMATS = ("table", "csv", "json")
NUMERIC = (
    "INTEGER",
    "BIGINT",
    "HUGEINT",
    "SMALLINT",
    "TINYINT",
    "DOUBLE",
    "FLOAT",
    "DECIMAL",
    "UBIGINT",
    "UINTEGER",
)
_FILES_WHY = "yibao query writes no files from SQL — use --format csv|json and --out FILE"
SANDBOXED = "yibao query reads only the warehouse's tables; files, network and extensions are off"


def one_line(e: duckdb.Error) -> str:
    """DuckDB's message without the ``LINE 1: …`` / caret excerpt, on one line."""
    lines: list[str] = []
    for line in str(e).splitlines():
        if line.startswith("LINE "):
            break
        if line.strip():
            lines.append(line.strip())
    text = " ".join(lines) or type(e).__name__
    if isinstance(e, duckdb.PermissionException):
        text += f" — {SANDBOXED}"
    return text


def parse(con: duckdb.DuckDBPyConnection, sql: str) -> list:
    """The statements of ``sql``; UsageError for a syntax error or a statement
    that would do more than read."""
    try:
        found = con.extract_statements(sql)
    except duckdb.Error as e:
        raise UsageError(one_line(e)) from None
    if not found:
        raise UsageError("no SQL statement given")
    for statement in found:
        why = sandbox.refusal(statement)
        if why:
            raise UsageError(why)
    return found


def run(con, sql: str, fmt: str, console: Console, limit: int) -> None:
    """Run every statement of ``sql``, writing its result to ``console`` in
    ``fmt`` (csv and json: to ``console.file``, exactly one statement).
    ``con``: a sandboxed DuckDB connection or a Reader (warehouse/reader.py)."""
    if isinstance(con, BigQueryReader):
        run_bigquery(con, sql, fmt, console, limit)
        return
    if isinstance(con, DuckDBReader):
        con = con.con
    found = parse(con, sql)
    if fmt != "table" and len(found) != 1:
        raise UsageError(f"--format {fmt} writes one result: give one statement, not {len(found)}")
    for statement in found:
        try:
            rel = con.sql(statement)
            if fmt == "table":
                console.print(result_table(rel, limit) if rel is not None else "[dim]OK[/dim]")
            elif rel is not None:
                (write_csv if fmt == "csv" else write_json)(rel, console.file)
        except duckdb.Error as e:
            raise UsageError(one_line(e)) from None


def result_table(rel: duckdb.DuckDBPyRelation, limit: int) -> Table:
    """The first ``limit`` rows of ``rel`` as a rich Table."""
    fetched = rel.limit(limit + 1).fetchall()
    table = Table(show_lines=False, header_style="bold")
    for name, type_ in zip(rel.columns, rel.types):
        numeric = str(type_).upper().startswith(NUMERIC)
        table.add_column(name, justify="right" if numeric else "left", no_wrap=numeric)
    for row in fetched[:limit]:
        table.add_row(*("[dim]NULL[/dim]" if v is None else escape(str(v)) for v in row))
    if len(fetched) > limit:
        table.caption = f"first {limit} rows shown (--limit)"
    return table


def write_csv(rel: duckdb.DuckDBPyRelation, out: TextIO) -> None:
    """Every row, a header first; values as DuckDB prints them, NULL empty."""
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(rel.columns)
    # DuckDB's own text for every type (exact decimals, ISO dates, JSON as is).
    writer.writerows(rel.query("_r", "SELECT COLUMNS(*)::VARCHAR FROM _r").iter_rows())


def write_json(rel: duckdb.DuckDBPyRelation, out: TextIO) -> None:
    """A JSON array, one object per row and line; DuckDB encodes the values
    (decimals stay exact numbers, JSON columns stay JSON)."""
    out.write("[")
    sep = "\n"
    for (obj,) in rel.query("_r", "SELECT to_json(_r)::VARCHAR FROM _r").iter_rows():
        out.write(sep + obj)
        sep = ",\n"
    out.write("\n]\n" if sep != "\n" else "]\n")


# --- BigQuery ---------------------------------------------------------------------

BIGQUERY_NUMERIC = ("INTEGER", "INT64", "FLOAT", "FLOAT64", "NUMERIC", "BIGNUMERIC")
_BIGQUERY_WHY = {
    "SCRIPT": "several statements (a script) refused: yibao query runs one SELECT at a time"
              " on BigQuery",
    "EXPORT_DATA": _FILES_WHY,
}


def bigquery_refusal(statement_type: str) -> str | None:
    """Why a statement of this type may not run on BigQuery, or None for SELECT."""
    if statement_type == "SELECT":
        return None
    kind = statement_type.replace("_", " ") or "statement"
    return _BIGQUERY_WHY.get(statement_type) or (
        f"{kind} refused: the warehouse is read-only here; only the pipelines write it")


def run_bigquery(reader: BigQueryReader, sql: str, fmt: str, console: Console,
                 limit: int) -> None:
    """One SELECT in BigQuery's dialect: dry run, refusal unless SELECT, run, write."""
    text = sql.strip().rstrip(";").strip()
    if not text:
        raise UsageError("no SQL statement given")
    # The dry run's SCRIPT type is the authority (BigQuery never executes a dry
    # run); sqlglot's count refuses earlier, and is what stops a script on
    # bqemulator, whose dry run of a script executes it.
    if (dialect.bigquery_statement_count(text) or 1) > 1:
        raise UsageError(_BIGQUERY_WHY["SCRIPT"])
    try:
        why = bigquery_refusal(reader.statement_type(text))
        if why:
            raise UsageError(why)
        result = reader.query(text, max_rows=limit + 1 if fmt == "table" else None)
    except UsageError:
        raise
    except Exception as e:
        why = bigquery_failure(e)
        if why is None:
            raise
        raise UsageError(why) from None
    if fmt == "table":
        console.print(bigquery_table(result, limit))
    elif fmt == "csv":
        writer = csv.writer(console.file, lineterminator="\n")
        writer.writerow(result.names)
        writer.writerows([dialect.duckdb_text(v) for v in row] for row in result.rows)
    else:
        _write_json_rows(result, console.file)


def bigquery_table(result: Result, limit: int) -> Table:
    table = Table(show_lines=False, header_style="bold")
    for name, type_ in zip(result.names, result.types):
        numeric = type_ in BIGQUERY_NUMERIC
        table.add_column(name, justify="right" if numeric else "left", no_wrap=numeric)
    for row in result.rows[:limit]:
        table.add_row(*("[dim]NULL[/dim]" if v is None else escape(dialect.duckdb_text(v))
                        for v in row))
    if len(result.rows) > limit:
        table.caption = f"first {limit} rows shown (--limit)"
    return table


def _write_json_rows(result: Result, out: TextIO) -> None:
    """As write_json: one object per row and line."""
    import json

    keys = [json.dumps(n, ensure_ascii=False) + ":" for n in result.names]
    out.write("[")
    sep = "\n"
    for row in result.rows:
        out.write(sep + "{" + ",".join(
            k + dialect.json_text(v, t == "JSON") for k, v, t in zip(keys, row, result.types))
            + "}")
        sep = ",\n"
    out.write("\n]\n" if sep != "\n" else "]\n")


def statements(lines: Iterable[str]) -> Iterable[str]:
    """Group input lines into statements ending with ';' (the last may lack it at EOF)."""
    buffer: list[str] = []
    for line in lines:
        buffer.append(line)
        if line.rstrip().endswith(";"):
            sql = "\n".join(buffer).strip()
            buffer = []
            if sql.strip(";").strip():
                yield sql
    rest = "\n".join(buffer).strip()
    if rest:
        yield rest


def _prompted_lines(console: Console) -> Iterable[str]:
    """Lines from stdin; prompts only on a terminal so piped output stays clean."""
    interactive = sys.stdin.isatty()
    first = True
    while True:
        try:
            line = input(("yibao> " if first else "   ..> ") if interactive else "")
        except (EOFError, KeyboardInterrupt):  # Ctrl-D / Ctrl-C end the session
            if interactive:
                console.print()
            return
        first = line.rstrip().endswith(";") or (first and not line.strip())
        yield line


def repl(
    open_con: Callable[[], duckdb.DuckDBPyConnection],
    console: Console,
    errors: Console,
    limit: int,
) -> int:
    """Statements from stdin, each on a connection of its own: an idle prompt
    holds no lock on the warehouse, so it never blocks the nightly run. Exit
    status 2 if one failed, but only for piped input (a script), not for a
    typo in an interactive session."""
    interactive = sys.stdin.isatty()
    if interactive:
        console.print(
            "SQL, read-only; end each statement with ';', exit with Ctrl-D."
            " Tables: indicator_values, v_indicator_latest, v_region_scorecard, …"
        )
    failures = 0
    for sql in statements(_prompted_lines(console)):
        try:
            con = open_con()
            try:
                run(con, sql, "table", console, limit)
            finally:
                con.close()
        except UsageError as e:
            failures += 1
            errors.print(f"[red]error:[/red] {escape(str(e))}", highlight=False, soft_wrap=True)
    return 2 if failures and not interactive else 0
