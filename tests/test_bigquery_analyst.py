"""Analysts and alerts on BigQuery (issue 16, item 4): "Analysts and alerts do
not reach BigQuery. `yibao report --warehouse bigquery://p/d` ends in
`ValueError … is a BigQuery warehouse, not a DuckDB file`; alert evaluation
is skipped for BigQuery runs; `yibao query` and `yibao quality-docs` read
DuckDB only".

The same generated landing data goes through the nightly pipeline into a
DuckDB file and into a local BigQuery (bqemulator, tests/conftest_bigquery.py),
alerts on. Then ``yibao report``, ``yibao query``, ``yibao alerts evaluate``
and ``yibao quality-docs`` run against both warehouses through the real CLI
and must give the same results. The two runs differ only in their run ids,
timestamps and options (the warehouse URI): those are masked.
"""
from __future__ import annotations

import csv
import io
import json
import re
import shutil
from pathlib import Path

import pytest
from rich.console import Console

from datagen.generate import generate
from pipelines import nightly
from pipelines.cli import main
from report import data, render
from tests.conftest_bigquery import (  # noqa: F401 - fixtures
    PROJECT,
    bigquery_emulator,
    bigquery_endpoint,
    emulator_client,
    new_dataset,
)
from warehouse import dialect
from warehouse.reader import open_reader

REGION, PERIOD = "640100", "2023-06"
ENGINES = ("duckdb", "bigquery")


@pytest.fixture(scope="module")
def runs(bigquery_endpoint, tmp_path_factory):  # noqa: F811 - the imported fixture
    """One nightly run of the same small landing data into each engine, alerts on."""
    work = tmp_path_factory.mktemp("analyst")
    landing = work / "landing"
    generate(landing, persons=300, months="2023-01..2023-06", console=Console(file=io.StringIO()))
    uris = {"duckdb": f"duckdb:///{work}/warehouse.duckdb",
            "bigquery": f"bigquery://{PROJECT}/{new_dataset('analyst')}"}
    as_of = (landing / "as_of.txt").read_text().strip()
    for uri in uris.values():
        # One quarantine for both: dead_letters.quarantine_path is content.
        nightly.run(["--input", str(landing), "--warehouse", uri, "--as-of", as_of,
                     "--quarantine", str(work / "quarantine"), "--staging", str(work / "staging")])
    run_ids = {}
    for engine, uri in uris.items():
        with open_reader(uri) as r:
            run_ids[engine] = r.rows("SELECT run_id FROM pipeline_runs")[0]["run_id"]
    # What the nightly's own alert evaluation wrote, before any test evaluates again.
    alerts = {e: _alerts(uris[e], run_ids[e]) for e in ENGINES}
    return {"uris": uris, "work": work, "landing": landing, "as_of": as_of, "run_ids": run_ids,
            "alerts": alerts}


def _mask(text: str, run_id: str) -> str:
    return text.replace(run_id, "RUN").replace(run_id[:8], "RUN")


def cli(capsys, *argv: str) -> tuple[int, str, str]:
    capsys.readouterr()
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


# --- yibao report -------------------------------------------------------------------

VOLATILE_RUN = ("run_id", "started_at", "finished_at", "options")


def _report_data(uri: str, run_id: str) -> dict:
    """What data.py gives the report, run ids and run times masked."""
    period = data.Period.parse(PERIOD)
    with data.reading(uri) as con:
        r = data.region(con, REGION)
        codes = [r.code, *(p.code for p in data.peers(con, r))]
        values = {t: data.values(con, codes, period, t) for t in ("MONTH", "YTD")}
        rules = data.rule_results(con, REGION, period, "YTD")
        got = {
            "region": r,
            "peers": data.peers(con, r),
            "values": values,
            "trend": data.trend(con, REGION, 2023),
            "rules": rules,
            "examples": data.failure_examples(
                con, r, [q["rule_id"] for q in rules if q["failed"]], period),
            "streams": data.run_streams(con, [run_id]),
            "runs": [{k: v for k, v in x.items() if k not in VOLATILE_RUN}
                     for x in data.runs(con, [run_id])],
        }
    for rows in (*got["values"].values(), got["trend"]):
        for row in rows:
            assert row.pop("run_id") == run_id
            row.pop("computed_at")
    for row in got["rules"]:
        assert row.pop("run_id") == run_id
    for row in got["streams"]:
        assert row.pop("run_id") == run_id
    for row in got["examples"]:
        row["details"] = json.loads(row["details"])
    return got


def test_report_data_is_the_same_from_bigquery_and_duckdb(runs):
    got = {e: _report_data(runs["uris"][e], runs["run_ids"][e]) for e in ENGINES}
    assert got["bigquery"] == got["duckdb"]
    duck = got["duckdb"]  # not vacuous
    assert duck["peers"] and duck["values"]["MONTH"] and duck["values"]["YTD"]
    assert duck["examples"] and duck["streams"] and duck["runs"][0]["status"] == "succeeded"
    # Exact decimals come back as DuckDB's DECIMAL(38,6) from both engines, digit for
    # digit (Decimal equality alone would let 0.95 equal 0.950000).
    assert [str(r["numerator"]) for r in got["bigquery"]["trend"]] == [
        str(r["numerator"]) for r in duck["trend"]]


_FIELD = re.compile(r"<(\w+)\s([^>]*\bdata-field=[^>]*)>([^<]*)<")


def _figures(html: str, run_id: str) -> list[tuple[str, str]]:
    """Every number the report shows (elements with data-field) with its attributes."""
    return [(_mask(attrs, run_id), text) for _, attrs, text in _FIELD.findall(html)]


def _without_run_times(html: str, run_id: str) -> str:
    """The page with what differs between the two runs by design masked: run
    id, generation and run times (every date-time: the as_of ones are equal
    anyway), the options (the warehouse URI)."""
    html = _mask(html, run_id)
    html = re.sub(r"\d{4}-\d\d-\d\d[ T]\d\d:\d\d(:\d\d(\.\d+)?)?", "INSTANT", html)
    return re.sub(r"<pre>.*?</pre>", "<pre>OPTIONS</pre>", html, flags=re.S)


def test_yibao_report_reads_bigquery(runs, capsys, tmp_path):
    pages = {}
    for engine in ENGINES:
        out = tmp_path / f"{engine}.html"
        code, _, err = cli(capsys, "report", "--warehouse", runs["uris"][engine],
                           "--region", REGION, "--period", PERIOD, "--out", str(out))
        assert code == 0, err
        pages[engine] = out.read_text(encoding="utf-8")
    figures = {e: _figures(pages[e], runs["run_ids"][e]) for e in ENGINES}
    assert figures["bigquery"] == figures["duckdb"] and len(figures["duckdb"]) > 500
    masked = {e: _without_run_times(pages[e], runs["run_ids"][e]) for e in ENGINES}
    assert masked["bigquery"] == masked["duckdb"]


def test_report_mistakes_on_bigquery_end_in_one_line(runs, capsys, tmp_path):
    uri = runs["uris"]["bigquery"]
    code, _, err = cli(capsys, "report", "--warehouse", uri, "--region", "999999",
                       "--period", PERIOD, "--out", str(tmp_path / "r.html"))
    assert code == 2 and err.count("\n") == 1, err
    assert "region 999999" in err and "nightly values cover 2023-01..2023-06" in err
    code, _, err = cli(capsys, "report", "--warehouse", f"bigquery://{PROJECT}/no_such_dataset",
                       "--region", REGION, "--period", PERIOD, "--out", str(tmp_path / "r.html"))
    assert code == 2 and err.count("\n") == 1 and "Traceback" not in err, err
    assert "no_such_dataset" in err and "yibao nightly writes" in err
    assert not (tmp_path / "r.html").exists()


def test_render_context_reads_a_bigquery_reader(runs):
    """Notebook use: the report's functions take a bigquery:// URI as they take a path."""
    from report import charts

    fig = charts.trend_chart(runs["uris"]["bigquery"], "I08", REGION)
    assert fig.count == charts.trend_chart(runs["uris"]["duckdb"], "I08", REGION).count > 0
    with data.reading(runs["uris"]["bigquery"]) as con:
        ctx = render.context(con, REGION, data.Period.parse(PERIOD))
    assert ctx["summary"]["MONTH"]["met"] + ctx["summary"]["MONTH"]["missed"] > 0


# --- yibao query --------------------------------------------------------------------

# Valid in both dialects; every warehouse type: string, date, exact decimal,
# float, bool, timestamp, JSON, integer, NULLs.
SAME_SQL = [
    "SELECT indicator_code, region_code, period_type, period_start, period_end, numerator,"
    " denominator, value, target, direction, meets_target, as_of, pipeline"
    " FROM indicator_values WHERE region_code = '640100'"
    " ORDER BY indicator_code, period_type, period_start, period_end",
    "SELECT rule_id, stream, region_code, period_type, period_start, checked, failed, pass_rate"
    " FROM quality_rule_results ORDER BY rule_id, region_code, period_type, period_start,"
    " period_end",
    "SELECT stream, read, accepted, duplicates, dead_lettered, late_dropped, quality_failures"
    " FROM pipeline_run_streams ORDER BY stream",
    "SELECT stream, record_key, rule_id, region_code, business_date, details"
    " FROM quality_failures ORDER BY stream, record_key, rule_id",
    "SELECT region_code, count(*) AS n, sum(numerator) AS numerators FROM indicator_values"
    " WHERE period_type = 'MONTH' GROUP BY region_code ORDER BY region_code",
]


def _csv(capsys, uri: str, sql: str) -> list[list[str]]:
    code, out, err = cli(capsys, "query", "--warehouse", uri, "--format", "csv", sql)
    assert code == 0, err
    return list(csv.reader(io.StringIO(out)))


@pytest.mark.parametrize("sql", SAME_SQL, ids=lambda s: s.split("FROM ")[1].split()[0])
def test_query_csv_is_the_same_from_bigquery_and_duckdb(runs, capsys, sql):
    got = {e: _csv(capsys, runs["uris"][e], sql) for e in ENGINES}
    duck, bq = got["duckdb"], got["bigquery"]
    assert len(duck) > 1
    if "details" in duck[0]:  # JSON: the same document, each engine's own spacing
        i = duck[0].index("details")
        for rows in (duck, bq):
            for row in rows[1:]:
                row[i] = json.loads(row[i]) if row[i] else None
    assert bq == duck


def test_query_json_and_table_formats_on_bigquery(runs, capsys):
    uri = runs["uris"]["bigquery"]
    sql = ("SELECT indicator_code, numerator, value, period_start, as_of, meets_target"
           " FROM indicator_values WHERE region_code = '640100' ORDER BY indicator_code,"
           " period_type, period_start LIMIT 3")
    code, out, err = cli(capsys, "query", "--warehouse", uri, "--format", "json", sql)
    assert code == 0, err
    rows = json.loads(out)
    duck = json.loads(cli(capsys, "query", "--warehouse", runs["uris"]["duckdb"],
                          "--format", "json", sql)[1])
    assert rows == duck and len(rows) == 3
    code, out, err = cli(capsys, "query", "--warehouse", uri, "--limit", "2", sql)
    assert code == 0 and "first 2 rows shown" in out and "indicator_code" in out, err


@pytest.mark.parametrize("sql, why", [
    ("DELETE FROM indicator_values WHERE TRUE", "DELETE refused"),
    ("UPDATE dim_region SET name = 'x' WHERE TRUE", "UPDATE refused"),
    ("INSERT INTO dim_region (region_code, name, level) VALUES ('1', 'x', 'county')",
     "INSERT refused"),
    ("DROP TABLE indicator_values", "DROP TABLE refused"),
    ("CREATE TABLE copy AS SELECT * FROM indicator_values", "CREATE TABLE AS SELECT refused"),
    ("SELECT 1; DELETE FROM indicator_values WHERE TRUE", "script"),
    ("SELEC 1", "Syntax error"),
    ("SELECT * FROM no_such_table", "no_such_table"),
])
def test_query_refuses_all_but_one_select_on_bigquery(runs, capsys, sql, why):
    """Only one SELECT runs; the rest is refused after a dry run, before it runs."""
    uri = runs["uris"]["bigquery"]
    before = _csv(capsys, uri, "SELECT count(*) AS n FROM indicator_values")
    code, out, err = cli(capsys, "query", "--warehouse", uri, sql)
    assert code == 2 and out == "" and err.count("\n") == 1, err
    assert err.startswith("yibao query: ") and why in err and "Traceback" not in err
    assert _csv(capsys, uri, "SELECT count(*) AS n FROM indicator_values") == before
    assert _csv(capsys, uri, "SELECT count(*) AS n FROM dim_region WHERE name = 'x'")[1] == ["0"]


def test_query_prompt_on_bigquery(runs, capsys, monkeypatch):
    lines = iter(["SELECT count(*) AS n", "FROM dim_region;", "DELETE FROM dim_region WHERE TRUE;"])

    def fake_input(prompt=""):
        try:
            return next(lines)
        except StopIteration:
            raise EOFError from None

    monkeypatch.setattr("builtins.input", fake_input)
    code, out, err = cli(capsys, "query", "--warehouse", runs["uris"]["bigquery"])
    assert code == 2 and "DELETE refused" in err  # piped: a failed statement fails the script
    with open_reader(runs["uris"]["duckdb"]) as r:
        n = r.rows("SELECT count(*) AS n FROM dim_region")[0]["n"]
    assert re.search(rf"\b{n}\b", out)


# --- the one query layer --------------------------------------------------------------


def test_translation_qualifies_tables_and_numbers_parameters():
    sql = dialect.to_bigquery(
        "WITH x AS (SELECT * FROM indicator_values WHERE region_code = ?)"
        " SELECT x.value, d.name FROM x JOIN dim_region AS d ON d.region_code = x.region_code"
        " WHERE x.period_start BETWEEN ? AND ? ORDER BY x.value", "p-1.ds")
    assert "`p-1.ds.indicator_values`" in sql and "`p-1.ds.dim_region` AS d" in sql
    assert "FROM x JOIN" in sql and "@p0" in sql and "@p2" in sql and "?" not in sql
    assert "NULLS LAST" in sql  # DuckDB's NULL order kept on BigQuery
    assert "`p-1.ds.INFORMATION_SCHEMA.COLUMNS`" in dialect.to_bigquery(
        "SELECT column_name FROM information_schema.columns WHERE table_name = ?", "p-1.ds")


# --- alerts ---------------------------------------------------------------------------

ALERT_COLUMNS = "kind, subject, region_code, period, observed, threshold, message, channels, suppressed"


def _alerts(uri: str, run_id: str) -> list[tuple]:
    """dq_alerts without its ids and times, the run id masked in the messages."""
    with open_reader(uri) as r:
        found = r.rows(f"SELECT {ALERT_COLUMNS} FROM dq_alerts")
    return sorted((tuple(_mask(v, run_id) if isinstance(v, str) else v for v in row.values())
                   for row in found), key=repr)


def test_nightly_into_bigquery_evaluates_alerts_like_one_into_duckdb(runs):
    """Issue 16: "alert evaluation is skipped for BigQuery runs"."""
    got = runs["alerts"]
    assert got["bigquery"] == got["duckdb"]
    kinds = {row[0] for row in got["duckdb"]}
    assert {"target_miss", "dead_letters"} <= kinds and len(got["duckdb"]) > 50
    assert all(json.loads(row[7])[0]["ok"] for row in got["duckdb"])  # delivered to the log


def test_yibao_alerts_evaluate_on_bigquery(runs, capsys):
    """A second evaluation through the CLI: the same rows from both engines."""
    now = "2030-01-01T00:00:00+00:00"  # long after the nightly: open alerts are due again
    printed = {}
    for engine in ENGINES:
        code, out, err = cli(capsys, "alerts", "evaluate", "--warehouse", runs["uris"][engine],
                             "--run-id", runs["run_ids"][engine], "--now", now)
        assert code == 0, err
        printed[engine] = sorted(_mask(out, runs["run_ids"][engine]).splitlines())
    assert printed["bigquery"] == printed["duckdb"]
    assert any("alert rows written to dq_alerts" in line for line in printed["duckdb"])
    after = {e: _alerts(runs["uris"][e], runs["run_ids"][e]) for e in ENGINES}
    assert after["bigquery"] == after["duckdb"] and len(after["duckdb"]) > len(
        runs["alerts"]["duckdb"])
    code, _, err = cli(capsys, "alerts", "evaluate", "--warehouse",
                       f"bigquery://{PROJECT}/no_such_dataset", "--now", now)
    assert code == 2 and err.count("\n") == 1 and "no_such_dataset" in err, err


# --- yibao quality-docs ----------------------------------------------------------------


def test_quality_docs_take_as_of_from_either_warehouse(runs, capsys, tmp_path):
    """``--warehouse`` gives the pages the as_of of the latest nightly run, read
    the same way from both engines (the input here has no as_of.txt)."""
    landing = tmp_path / "landing"
    shutil.copytree(runs["landing"], landing)
    (landing / "as_of.txt").unlink()
    printed = {}
    for engine in ENGINES:
        out_dir = tmp_path / engine
        code, out, err = cli(capsys, "quality-docs", "--input", str(landing), "--warehouse",
                             runs["uris"][engine], "--out", str(out_dir), "--sample", "100")
        assert code == 0, err
        assert (out_dir / "index.html").is_file()
        printed[engine] = out.replace(out_dir.as_uri(), "OUT")
    assert printed["bigquery"] == printed["duckdb"]
    assert "at as_of 2023-06-30T23:59:59.999000+08:00" in printed["duckdb"]
    assert "expectations failed" in printed["duckdb"]


# --- the runbook's analyst commands ------------------------------------------------------


def test_runbook_analyst_commands_run_against_bigquery(runs, capsys, tmp_path, monkeypatch):
    """deploy/RUNBOOK.md "Analysts": its yibao report / query commands, on the
    test dataset (the month moved to one the test data holds)."""
    from tests.test_deploy import runbook_commands

    monkeypatch.chdir(tmp_path)
    commands = runbook_commands(("yibao report", "yibao query"))
    assert {c[1] for c in commands} == {"report", "query"}
    for words in commands:
        argv = [runs["uris"]["bigquery"] if w.startswith("bigquery://") else w for w in words[1:]]
        if "--period" in argv:
            argv[argv.index("--period") + 1] = PERIOD
        code, _, err = cli(capsys, *argv)
        assert code == 0, (words, err)
        out = Path(argv[argv.index("--out") + 1])
        assert out.stat().st_size > 0
