"""SQL against the warehouse, read-only, printed as rich tables.

The connection is opened read-only, so DuckDB itself refuses any write: an
analyst cannot damage the warehouse from here.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable

import duckdb
from rich.console import Console
from rich.markup import escape
from rich.table import Table

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


def result_table(con: duckdb.DuckDBPyConnection, sql: str, limit: int) -> Table | None:
    """Run ``sql``; a rich Table of its result (None for statements without rows)."""
    cur = con.execute(sql)
    if cur.description is None:
        return None
    fetched = cur.fetchmany(limit + 1)
    table = Table(show_lines=False, header_style="bold")
    for name, type_code, *_ in cur.description:
        numeric = str(type_code).upper().startswith(NUMERIC)
        table.add_column(name, justify="right" if numeric else "left", no_wrap=numeric)
    for row in fetched[:limit]:
        table.add_row(*("[dim]NULL[/dim]" if v is None else escape(str(v)) for v in row))
    if len(fetched) > limit:
        table.caption = f"first {limit} rows shown (--limit)"
    return table


def run_one(con, console: Console, sql: str, limit: int) -> bool:
    """Print the result of ``sql``; False (and the error printed) when it fails."""
    try:
        table = result_table(con, sql, limit)
    except duckdb.Error as e:
        console.print(f"[red]{type(e).__name__}:[/red] {e}", markup=True, highlight=False)
        return False
    console.print(table if table is not None else "[dim]OK[/dim]")
    return True


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


def repl(con, console: Console, limit: int) -> int:
    """Statements from stdin; exit status 1 if one failed, but only for piped
    input (a script), not for a typo in an interactive session."""
    interactive = sys.stdin.isatty()
    if interactive:
        console.print(
            "SQL, read-only; end each statement with ';', exit with Ctrl-D."
            " Tables: indicator_values, v_indicator_latest, v_region_scorecard, …"
        )
    failures = 0
    for sql in statements(_prompted_lines(console)):
        failures += not run_one(con, console, sql, limit)
    return 1 if failures and not interactive else 0
