"""``yibao query`` is a sandbox (issue 14): "`yibao query` is not read-only.
It can write files (`COPY … TO`, `EXPORT DATABASE`), attach other databases
read-write and, with an ATTACH/DETACH trick, drop warehouse tables;
`read_blob` / `read_parquet` over the quarantine and staging folders return
raw certno and psn_name; `INSTALL` and `SET autoinstall_known_extensions`
are allowed."

A real DuckDB warehouse (published like a nightly run) lies beside a
quarantine and a staging folder holding a fake certno and psn_name. Every
hostile statement must end in one line, exit status 2, leave the warehouse
file byte for byte as it was and create no file. The engine-level tests run
the statements on report.sandbox.connect directly, so the guarantee does not
rest on the statement allowlist that only words the refusal.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import shutil
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from pipelines.cli import main
from report import sandbox
from tests.conftest_report import build_warehouse

CERTNO = "110101199003074258"
PSN_NAME = "王小明"
TABLES_SQL = (
    "SELECT table_name, estimated_size FROM duckdb_tables() ORDER BY 1"
)


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    """var/: warehouse.duckdb, quarantine/ and staging/ with personal data,
    and another DuckDB file to attach."""
    root = tmp_path_factory.mktemp("var")
    build_warehouse(root / "warehouse.duckdb")
    (root / "quarantine" / "settlement").mkdir(parents=True)
    (root / "quarantine" / "settlement" / "bad.csv").write_text(
        f"certno,psn_name\n{CERTNO},{PSN_NAME}\n", encoding="utf-8"
    )
    (root / "quarantine" / "settlement" / "bad.json").write_text(
        json.dumps({"certno": CERTNO, "psn_name": PSN_NAME}), encoding="utf-8"
    )
    (root / "staging").mkdir()
    pq.write_table(
        pa.table({"certno": [CERTNO], "psn_name": [PSN_NAME]}), root / "staging" / "s.parquet"
    )
    other = duckdb.connect(str(root / "other.duckdb"))
    other.execute("CREATE TABLE o AS SELECT 1 AS a")
    other.close()
    return root


@pytest.fixture
def var(site, monkeypatch) -> Path:
    monkeypatch.chdir(site)  # relative paths in SQL resolve beside the warehouse
    return site


def fingerprint(root: Path) -> dict[str, str]:
    """Every file under root with the sha256 of its bytes."""
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def tables_of(path: Path) -> list[tuple]:
    con = duckdb.connect(str(path), read_only=True)
    try:
        return con.execute(
            "SELECT table_name, estimated_size, (SELECT count(*) FROM indicator_values)"
            " FROM duckdb_tables() ORDER BY 1"
        ).fetchall()
    finally:
        con.close()


def yibao(capsys, *argv: str) -> tuple[int, str, str]:
    capsys.readouterr()
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


HOSTILE = {
    # writing files
    "copy": "COPY indicator_values TO 'out.csv'",
    "copy parquet": "COPY (SELECT 1 AS a) TO 'out.parquet' (FORMAT parquet)",
    "export": "EXPORT DATABASE 'exported'",
    # other databases, and the ATTACH/DETACH trick that dropped warehouse tables
    "attach other": "ATTACH 'other.duckdb' AS o (READ_WRITE)",
    "attach self": "ATTACH 'warehouse.duckdb' AS w2",
    "attach memory": "ATTACH ':memory:' AS m",
    "detach": "DETACH warehouse",
    "use": "USE o",
    "trick": "ATTACH 'other.duckdb' AS o (READ_WRITE); USE o; DETACH warehouse;"
    " ATTACH 'warehouse.duckdb' AS w (READ_WRITE); DROP TABLE w.indicator_values",
    # files beside the warehouse and the network
    "read_blob": "SELECT content FROM read_blob('quarantine/*/*')",
    "read_csv": "SELECT * FROM read_csv('quarantine/settlement/bad.csv')",
    "replacement scan": "SELECT * FROM 'quarantine/settlement/bad.csv'",
    "read_json": "SELECT * FROM read_json('quarantine/settlement/bad.json')",
    "read_text": "SELECT content FROM read_text('quarantine/settlement/bad.json')",
    "read_parquet": "SELECT * FROM read_parquet('staging/*.parquet')",
    "glob": "SELECT * FROM glob('**')",
    "http": "SELECT * FROM read_csv('https://example.com/x.csv')",
    # extensions and settings
    "install": "INSTALL httpfs",
    "load": "LOAD httpfs",
    "autoinstall": "SET autoinstall_known_extensions = true",
    "external access": "SET enable_external_access = true",
    "unlock": "SET lock_configuration = false",
    "reset": "RESET enable_external_access",
    "pragma setting": "PRAGMA enable_profiling",
    "secret": "CREATE SECRET s (TYPE s3, KEY_ID 'a', SECRET 'b')",
    # writing the warehouse
    "create": "CREATE TABLE x (a INTEGER)",
    "create view": "CREATE OR REPLACE VIEW v_indicator_latest AS SELECT 1 AS a",
    "drop": "DROP TABLE indicator_values",
    "insert": "INSERT INTO dim_region SELECT * FROM dim_region",
    "update": "UPDATE indicator_values SET value = 0",
    "delete": "DELETE FROM indicator_values",
    "alter": "ALTER TABLE dim_region ADD COLUMN x INTEGER",
}


@pytest.mark.parametrize("sql", HOSTILE.values(), ids=HOSTILE.keys())
def test_hostile_statement_fails_in_one_line_and_changes_nothing(var, capsys, sql):
    """"`yibao query` is not read-only": each statement is refused with one
    line on stderr and exit status 2; no file is written or changed."""
    before = fingerprint(var)
    code, out, err = yibao(capsys, "query", "--warehouse", str(var / "warehouse.duckdb"), sql)
    assert code == 2, (out, err)
    assert err.startswith("yibao query: ") and err.count("\n") == 1, err
    assert "Traceback" not in err
    assert CERTNO not in out + err and PSN_NAME not in out + err
    assert fingerprint(var) == before


@pytest.mark.parametrize(
    "sql, says",
    [
        ("COPY indicator_values TO 'out.csv'", "--format csv|json and --out FILE"),
        ("EXPORT DATABASE 'exported'", "--out FILE"),
        ("ATTACH 'other.duckdb' AS o", "reads only the warehouse"),
        ("SELECT * FROM read_blob('quarantine/*/*')", "files, network and extensions are off"),
        ("INSTALL httpfs", "extensions cannot be installed"),
        ("SET autoinstall_known_extensions = true", "settings are fixed"),
        ("PRAGMA enable_profiling", "configuration has been locked"),
        ("DROP TABLE indicator_values", "read-only"),
    ],
)
def test_refusal_says_why_and_what_to_do(var, capsys, sql, says):
    code, _, err = yibao(capsys, "query", "--warehouse", "warehouse.duckdb", sql)
    assert code == 2 and says in err, err


ENGINE_HOSTILE = [s for k, s in HOSTILE.items() if k not in ("trick", "attach self", "detach")]


@pytest.mark.parametrize("sql", ENGINE_HOSTILE)
def test_engine_itself_refuses_without_the_allowlist(var, sql):
    """The sandbox is DuckDB's configuration, not our statement filter."""
    before = fingerprint(var)
    con = sandbox.connect("warehouse.duckdb")
    try:
        with pytest.raises(duckdb.Error):
            con.execute(sql).fetchall()
    finally:
        con.close()
    assert fingerprint(var) == before


def test_attach_detach_trick_cannot_reach_write_access(var):
    """"with an ATTACH/DETACH trick, drop warehouse tables": on the sandboxed
    connection every route to a read-write attach of the warehouse fails."""
    before, tables = fingerprint(var), tables_of(var / "warehouse.duckdb")
    con = sandbox.connect("warehouse.duckdb")
    try:
        for step in ("ATTACH 'other.duckdb' AS o (READ_WRITE)", "ATTACH ':memory:' AS m"):
            with pytest.raises(duckdb.Error):
                con.execute(step)
        # Re-attaching the same file is allowed by DuckDB, but only read-only.
        con.execute("ATTACH 'warehouse.duckdb' AS w2")
        con.execute("USE w2")
        con.execute("DETACH warehouse")
        for step in (
            "ATTACH 'warehouse.duckdb' AS w (READ_WRITE)",
            "ATTACH './warehouse.duckdb' AS w (READ_WRITE)",
            "DROP TABLE indicator_values",
            "DROP VIEW v_indicator_latest",
            "DETACH w2",
        ):
            with pytest.raises(duckdb.Error):
                con.execute(step)
    finally:
        con.close()
    assert fingerprint(var) == before
    assert tables_of(var / "warehouse.duckdb") == tables


def test_sandbox_settings_are_locked(var):
    con = sandbox.connect("warehouse.duckdb")
    try:
        settings = dict(
            con.execute(
                "SELECT name, value FROM duckdb_settings() WHERE name IN ('access_mode',"
                " 'enable_external_access', 'autoinstall_known_extensions',"
                " 'autoload_known_extensions', 'allow_community_extensions',"
                " 'lock_configuration', 'TimeZone')"
            ).fetchall()
        )
    finally:
        con.close()
    assert settings == {
        "access_mode": "read_only",
        "enable_external_access": "false",
        "autoinstall_known_extensions": "false",
        "autoload_known_extensions": "false",
        "allow_community_extensions": "false",
        "lock_configuration": "true",
        "TimeZone": "UTC",
    }


def test_read_statements_still_work(var, capsys):
    code, out, err = yibao(
        capsys,
        "query",
        "--warehouse",
        "warehouse.duckdb",
        "DESCRIBE dim_region; SHOW TABLES; SUMMARIZE dim_region; PRAGMA table_info('dim_region');"
        " EXPLAIN SELECT 1; FROM v_indicator_latest LIMIT 1; CALL pragma_version()",
    )
    assert code == 0, err
    assert "region_code" in out and "indicator_values" in out and "physical_plan" in out


# --- --format and --out ----------------------------------------------------------

SQL = (
    "SELECT region_code, indicator_code, period_start, value, components"
    " FROM indicator_values WHERE pipeline = 'nightly' AND period_type = 'MONTH'"
    " ORDER BY region_code, indicator_code, period_start LIMIT 7"
)


def expected(var) -> list[tuple]:
    con = duckdb.connect(str(var / "warehouse.duckdb"), read_only=True)
    try:
        return con.execute(SQL).fetchall()
    finally:
        con.close()


def test_format_csv_prints_every_row_with_a_header(var, capsys):
    code, out, err = yibao(capsys, "query", "--warehouse", "warehouse.duckdb", "--format", "csv", SQL)
    assert code == 0, err
    got = list(csv.reader(io.StringIO(out)))
    assert got[0] == ["region_code", "indicator_code", "period_start", "value", "components"]
    want = expected(var)
    assert len(got) == 1 + len(want) == 8
    for row, (region, code_, start, value, components) in zip(got[1:], want):
        assert row[:3] == [region, code_, start.isoformat()]
        assert float(row[3]) == value and row[4] == (components or "")


def test_format_json_is_an_array_of_objects(var, capsys):
    code, out, err = yibao(
        capsys, "query", "--warehouse", "warehouse.duckdb", "--format", "json", SQL
    )
    assert code == 0, err
    got = json.loads(out)
    want = expected(var)
    assert [
        (r["region_code"], r["indicator_code"], r["period_start"], r["value"]) for r in got
    ] == [(r[0], r[1], r[2].isoformat(), r[3]) for r in want]


def test_decimals_stay_exact_and_nulls_empty(var, capsys):
    sql = "SELECT 12345678901234567.123456::DECIMAL(38,6) AS d, NULL AS n, '张三' AS s"
    _, out, _ = yibao(capsys, "query", "--warehouse", "warehouse.duckdb", "--format", "json", sql)
    assert json.loads(out, parse_float=Decimal) == [
        {"d": Decimal("12345678901234567.123456"), "n": None, "s": "张三"}
    ]
    _, out, _ = yibao(capsys, "query", "--warehouse", "warehouse.duckdb", "--format", "csv", sql)
    assert out == "d,n,s\n12345678901234567.123456,,张三\n"
    _, out, _ = yibao(capsys, "query", "--warehouse", "warehouse.duckdb", "--format", "json",
                      "SELECT 1 AS a WHERE false")
    assert json.loads(out) == []


def test_format_table_shows_the_rows(var, capsys):
    code, out, _ = yibao(capsys, "query", "--warehouse", "warehouse.duckdb", SQL)
    assert code == 0
    for region, indicator, *_ in expected(var):
        assert region in out and indicator in out
    _, out, _ = yibao(capsys, "query", "--warehouse", "warehouse.duckdb", "--limit", "2", SQL)
    assert "first 2 rows shown" in out


@pytest.mark.parametrize("fmt", ["csv", "json", "table"])
def test_out_writes_the_file_and_nothing_to_stdout(var, capsys, tmp_path, fmt):
    target = tmp_path / f"result.{fmt}"
    code, out, err = yibao(
        capsys, "query", "--warehouse", "warehouse.duckdb", "--format", fmt, "--out", str(target), SQL
    )
    assert code == 0 and out == "" and err == "", err
    assert [p.name for p in tmp_path.iterdir()] == [target.name]  # no .part left
    text = target.read_text(encoding="utf-8")
    want = expected(var)
    if fmt == "csv":
        assert len(list(csv.reader(io.StringIO(text)))) == 1 + len(want)
    elif fmt == "json":
        assert [r["value"] for r in json.loads(text)] == [r[3] for r in want]
    else:
        assert all(r[1] in text for r in want) and "\x1b[" not in text


def test_out_failures_leave_no_file(var, capsys, tmp_path):
    target = tmp_path / "x.csv"
    code, _, err = yibao(
        capsys, "query", "--warehouse", "warehouse.duckdb", "--format", "csv", "--out",
        str(target), "SELECT * FROM nowhere",
    )
    assert code == 2 and err.count("\n") == 1 and "nowhere" in err
    assert list(tmp_path.iterdir()) == []
    code, _, err = yibao(
        capsys, "query", "--warehouse", "warehouse.duckdb", "--out",
        str(tmp_path / "no" / "dir.csv"), "SELECT 1",
    )
    assert code == 2 and err.startswith("yibao query: cannot write") and err.count("\n") == 1
    code, _, err = yibao(
        capsys, "query", "--warehouse", "warehouse.duckdb", "--format", "csv", "SELECT 1; SELECT 2"
    )
    assert code == 2 and "one statement" in err


@pytest.mark.parametrize("target", ["warehouse.duckdb", "./warehouse.duckdb", "warehouse.duckdb.wal"])
def test_out_cannot_overwrite_the_warehouse(var, capsys, target):
    """Probe: `yibao query --format csv --out <the warehouse file>` replaced the
    warehouse with a 4-byte CSV (then "IO Error: The file … exists, but it is
    not a valid DuckDB database file!") — a read-only query destroyed every
    published figure."""
    before = fingerprint(var)
    code, _, err = yibao(capsys, "query", "--warehouse", "warehouse.duckdb", "--format", "csv",
                         "--out", target, "SELECT 1 AS a")
    assert code == 2 and err.count("\n") == 1, err
    assert err.startswith("yibao query: --out ") and "is the warehouse" in err
    assert fingerprint(var) == before


# --- the prompt and the lock -------------------------------------------------------


class WriterBetweenStatements(io.StringIO):
    """stdin whose second line is read only after another process opened the
    warehouse read-write (as the nightly does) and added a table."""

    def __init__(self, path: Path, text: str):
        super().__init__(text)
        self.path, self.lines, self.writer = path, 0, None

    def readline(self, *args):
        self.lines += 1
        if self.lines == 2:
            self.writer = subprocess.run(
                [
                    sys.executable,
                    "-c",
                    "import duckdb, sys; c = duckdb.connect(sys.argv[1]);"
                    " c.execute('CREATE TABLE written_meanwhile AS SELECT 42 AS answer'); c.close()",
                    str(self.path),
                ],
                capture_output=True,
                text=True,
            )
        return super().readline(*args)


def test_idle_prompt_holds_no_lock(var, capsys, monkeypatch, tmp_path):
    """"An idle `yibao query` session holding the DuckDB file makes the
    nightly fail at once": the prompt opens the warehouse per statement."""
    path = tmp_path / "warehouse.duckdb"
    shutil.copy(var / "warehouse.duckdb", path)
    stdin = WriterBetweenStatements(path, "SELECT 1 AS one;\nSELECT answer FROM written_meanwhile;\n")
    monkeypatch.setattr("sys.stdin", stdin)
    code, out, err = yibao(capsys, "query", "--warehouse", str(path))
    assert stdin.writer.returncode == 0, stdin.writer.stderr
    assert code == 0, err
    assert "42" in out.split()


def test_prompt_reports_each_failure_in_one_line_and_goes_on(var, capsys, monkeypatch):
    monkeypatch.setattr(
        "sys.stdin", io.StringIO("SELECT 1 AS a;\nCOPY dim_region TO 'x.csv';\nSELECT 2 AS b;")
    )
    code, out, err = yibao(capsys, "query", "--warehouse", "warehouse.duckdb")
    assert code == 2  # piped input is a script: a failed statement fails it
    assert "a" in out.split() and "b" in out.split()
    assert err.count("\n") == 1 and "COPY refused" in err
    assert not (var / "x.csv").exists()


def test_warehouse_being_written_is_one_line(var, capsys, tmp_path):
    path = tmp_path / "warehouse.duckdb"
    shutil.copy(var / "warehouse.duckdb", path)
    writer = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import duckdb, sys; c = duckdb.connect(sys.argv[1]); print('open', flush=True);"
            " sys.stdin.read()",
            str(path),
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert writer.stdout.readline() == "open\n"
        code, _, err = yibao(capsys, "query", "--warehouse", str(path), "SELECT 1")
    finally:
        writer.communicate("")
    assert code == 2 and err.count("\n") == 1
    assert "being written by another process" in err and "try again" in err


def test_missing_warehouse_is_one_line(var, capsys):
    code, out, err = yibao(capsys, "query", "--warehouse", "duckdb:///nowhere.duckdb", "SELECT 1")
    assert code == 2 and out == "" and err.count("\n") == 1
    assert "no warehouse at nowhere.duckdb" in err and "yibao nightly" in err
    assert not (var / "nowhere.duckdb").exists()
