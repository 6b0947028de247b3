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
    """Indicators x (province, pooling regions) for the latest period of the
    latest nightly run; misses in red."""
    from warehouse.duckdb_store import connect

    con = connect(warehouse_path, read_only=True)
    try:
        end = con.sql("SELECT max(period_end) FROM indicator_values WHERE pipeline = 'nightly'"
                      ).fetchall()[0][0]
        rows = con.execute(
            """SELECT v.region_code, r.name, v.indicator_code, v.value, v.meets_target
               FROM indicator_values v JOIN dim_region r USING (region_code)
               WHERE v.pipeline = 'nightly' AND v.period_type = ? AND v.period_end = ?
                 AND v.region_level IN ('province', 'pooling')""", [period_type, end]).fetchall()
    finally:
        con.close()
    regions = sorted({(code, name) for code, name, *_ in rows}, key=lambda r: (r[0][2:] != "0000", r[0]))
    values = {(code, ind): (value, meets) for code, _, ind, value, meets in rows}
    table = Table(title=f"{period_type} to {end} (red ✗ = misses its target)")
    table.add_column("indicator")
    for _, name in regions:
        table.add_column(name.removesuffix("回族自治区"), justify="right")
    for ind in INDICATORS:
        cells = []
        for code, _ in regions:
            value, meets = values.get((code, ind.code), (None, None))
            text = "–" if value is None else f"{value:.1%}"
            cells.append(f"[red]{text}✗[/red]" if meets is False else text)
        table.add_row(f"{ind.code} {ind.name_zh}", *cells)
    return table


def demo_main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="yibao demo")
    parser.add_argument("--out", default="var/demo", help="where the generated data goes")
    parser.add_argument("--warehouse", default=DEFAULT_WAREHOUSE)
    parser.add_argument("--seed", default="1")
    parser.add_argument("--persons", default=None, help="generator size (default: its demo size)")
    args = parser.parse_args(argv)
    console = Console(width=max(Console().width, 120))
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
    # Alerts are evaluated separately below: on two-year-old demo data every
    # stream looks silent, and the log channel would drown the scorecard.
    run_id = nightly.run(["--input", str(out), "--warehouse", args.warehouse, "--as-of", as_of,
                          "--months", f"{year}-01..{as_of[:7]}", "--no_alerts",
                          "--allow-demo-key"])
    from warehouse import duckdb_path

    path = duckdb_path(args.warehouse)
    console.print(scorecard(path))
    console.print(f"run {run_id}; warehouse: {os.path.abspath(path)}")
    from report.cli import report_main

    report = os.path.abspath(os.path.join(os.path.dirname(path) or ".", f"report-640000-{as_of[:7]}.html"))
    report_main(["--warehouse", args.warehouse, "--region", "640000", "--period", as_of[:7],
                 "--out", report])
    console.print(f"data-quality alerts: .venv/bin/yibao alerts evaluate --warehouse {args.warehouse}")
    console.print(f"try: .venv/bin/yibao query --warehouse {args.warehouse} "
                  "\"SELECT region_code, I08, I13, missed FROM v_region_scorecard "
                  "WHERE period_type = 'YTD' ORDER BY period_end DESC, region_code LIMIT 10\"")
    return 0
