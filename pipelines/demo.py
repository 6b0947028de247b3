"""``yibao demo``: generated data -> nightly pipeline (DirectRunner's
in-process runner, DuckDB) -> a scorecard in the terminal."""
from __future__ import annotations

import argparse
import os
from pathlib import Path

from rich.console import Console
from rich.table import Table

from pipelines.options import DEFAULT_WAREHOUSE
from transforms.indicators.catalog import INDICATORS


def scorecard(warehouse_path: str, period_type: str = "YTD") -> Table:
    """Regions x indicators for the latest period of the latest nightly run; misses in red."""
    from warehouse.duckdb_store import connect

    con = connect(warehouse_path, read_only=True)
    try:
        end = con.sql("SELECT max(period_end) FROM indicator_values WHERE pipeline = 'nightly'").fetchone()[0]
        rows = con.execute(
            """SELECT v.region_code, r.name, v.indicator_code, v.value, v.meets_target
               FROM indicator_values v JOIN dim_region r USING (region_code)
               WHERE v.pipeline = 'nightly' AND v.period_type = ? AND v.period_end = ?
                 AND v.region_level IN ('province', 'pooling')
               ORDER BY v.region_level DESC, v.region_code""", [period_type, end]).fetchall()
    finally:
        con.close()
    codes = [i.code for i in INDICATORS]
    table = Table(title=f"{period_type} to {end}: value (red = misses target)", show_lines=False)
    table.add_column("region")
    for code in codes:
        table.add_column(code, justify="right")
    by_region: dict[tuple, dict] = {}
    for region, name, code, value, meets in rows:
        by_region.setdefault((region, name), {})[code] = (value, meets)
    for (region, name), vals in by_region.items():
        cells = []
        for code in codes:
            value, meets = vals.get(code, (None, None))
            text = "–" if value is None else f"{value:.1%}"
            cells.append(f"[red]{text}✗[/red]" if meets is False else text)
        table.add_row(f"{name} {region}", *cells)
    return table


def demo_main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="yibao demo")
    parser.add_argument("--out", default="var/demo", help="where the generated data goes")
    parser.add_argument("--warehouse", default=DEFAULT_WAREHOUSE)
    parser.add_argument("--seed", default="1")
    parser.add_argument("--persons", default=None, help="generator size (default: its demo size)")
    args = parser.parse_args(argv)
    console = Console()
    out = Path(args.out)
    if not (out / "as_of.txt").exists():
        from datagen.cli import generate_main

        gen_args = ["--out", str(out), "--seed", args.seed]
        if args.persons:
            gen_args += ["--persons", args.persons]
        generate_main(gen_args)
    as_of = (out / "as_of.txt").read_text().strip()
    year = as_of[:4]
    from pipelines import nightly

    console.print(f"[bold]nightly[/bold] --input {out} --as-of {as_of} --months {year}-01..{as_of[:7]}")
    run_id = nightly.run(["--input", str(out), "--warehouse", args.warehouse, "--as-of", as_of,
                          "--months", f"{year}-01..{as_of[:7]}"])
    from warehouse import duckdb_path

    path = duckdb_path(args.warehouse)
    console.print(scorecard(path))
    console.print(f"run {run_id}; warehouse: {os.path.abspath(path)}")
    from report.cli import report_main

    report = os.path.abspath(os.path.join(os.path.dirname(path) or ".", f"report-640000-{as_of[:7]}.html"))
    report_main(["--warehouse", args.warehouse, "--region", "640000", "--period", as_of[:7],
                 "--out", report])
    console.print(f"self-evaluation report: {report}")
    console.print("try: .venv/bin/python -c \"import duckdb; print(duckdb.connect("
                  f"'{path}', read_only=True).sql('SELECT * FROM v_region_scorecard LIMIT 5'))\"")
    return 0
