"""``yibao report`` mistakes end in one line (issue 15): "a report for a
region or period that does not exist: gets one line that says what is wrong
and what to do, exit status 2, no traceback". The same for a missing
warehouse file, a malformed --period, a file that is no warehouse.

The warehouse is a real DuckDB file published like a nightly run
(tests/conftest_report.py); the CLI runs through ``pipelines.cli.main``.
"""

from __future__ import annotations

from pathlib import Path

import duckdb
import pytest

from pipelines.cli import main
from tests.conftest_report import build_warehouse


@pytest.fixture(scope="module")
def warehouse(tmp_path_factory) -> Path:
    return build_warehouse(tmp_path_factory.mktemp("wh") / "warehouse.duckdb")


def report(capsys, tmp_path, *argv: str) -> tuple[int, str]:
    capsys.readouterr()
    code = main(["report", *argv, "--out", str(tmp_path / "r.html")])
    out, err = capsys.readouterr()
    assert out == ""
    assert "Traceback" not in err
    return code, err


def one_line(code: int, err: str, tmp_path: Path) -> str:
    assert code == 2, err
    assert err.startswith("yibao report: ") and err.count("\n") == 1, err
    assert not (tmp_path / "r.html").exists()
    return err


@pytest.mark.parametrize("period", ["2023-13", "2023/11", "Nov 2023", "2023-1", ""])
def test_malformed_period(warehouse, capsys, tmp_path, period):
    code, err = report(
        capsys, tmp_path, "--warehouse", str(warehouse), "--region", "640100", "--period", period
    )
    err = one_line(code, err, tmp_path)
    assert f"--period {period!r} is not a month — write YYYY-MM, e.g. 2023-11" in err


def test_period_without_values(warehouse, capsys, tmp_path):
    code, err = report(
        capsys, tmp_path, "--warehouse", str(warehouse), "--region", "640100", "--period", "2022-11"
    )
    err = one_line(code, err, tmp_path)
    assert "no nightly indicator values for region 640100 in 2022-11" in err
    assert "nightly values cover 2023-01..2023-11" in err  # what to do: pick one of these


def test_unknown_region(warehouse, capsys, tmp_path):
    code, err = report(
        capsys, tmp_path, "--warehouse", str(warehouse), "--region", "999999", "--period", "2023-11"
    )
    err = one_line(code, err, tmp_path)
    assert "region 999999" in err and "regions 640000, 640100, 640200 and their counties" in err


def test_missing_warehouse(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code, err = report(
        capsys, tmp_path, "--warehouse", "duckdb:///var/none.duckdb", "--region", "640100",
        "--period", "2023-11",
    )
    err = one_line(code, err, tmp_path)
    assert "no warehouse at var/none.duckdb" in err and "run yibao nightly" in err
    assert not (tmp_path / "var").exists()  # reading never creates a warehouse


def test_bigquery_uri_is_read_not_refused(capsys, tmp_path, monkeypatch):
    """Issue 16: "`yibao report --warehouse bigquery://p/d` ends in `ValueError
    … is a BigQuery warehouse, not a DuckDB file`". BigQuery is read now
    (tests/test_bigquery_analyst.py); here, without credentials, one line says so."""
    monkeypatch.delenv("YIBAO_BIGQUERY_ENDPOINT", raising=False)
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(tmp_path / "no-such-key.json"))
    code, err = report(
        capsys, tmp_path, "--warehouse", "bigquery://p/d", "--region", "640100",
        "--period", "2023-11",
    )
    err = one_line(code, err, tmp_path)
    assert "no Google credentials for BigQuery" in err and "not a DuckDB file" not in err


def test_file_that_is_no_warehouse(capsys, tmp_path):
    other = tmp_path / "other.duckdb"
    duckdb.connect(str(other)).close()
    code, err = report(
        capsys, tmp_path, "--warehouse", str(other), "--region", "640100", "--period", "2023-11"
    )
    assert "is not a yibao warehouse" in one_line(code, err, tmp_path)


def test_file_that_is_not_duckdb(capsys, tmp_path):
    other = tmp_path / "notes.duckdb"
    other.write_text("not a database\n")
    code, err = report(
        capsys, tmp_path, "--warehouse", str(other), "--region", "640100", "--period", "2023-11"
    )
    assert f"cannot open {other} read-only" in one_line(code, err, tmp_path)


def test_a_good_report_still_works(warehouse, capsys, tmp_path):
    code, err = report(
        capsys, tmp_path, "--warehouse", str(warehouse), "--region", "640100", "--period", "2023-11"
    )
    assert code == 0 and "report written" in err
    assert "<html" in (tmp_path / "r.html").read_text(encoding="utf-8").lower()


def test_out_cannot_overwrite_the_warehouse(warehouse, capsys, tmp_path):
    """Probe: `yibao report --format csv --out <the warehouse file>` said
    "report written" and replaced the 8.9 MB warehouse with an 8 KB CSV."""
    import shutil

    wh = tmp_path / "w.duckdb"
    shutil.copy(warehouse, wh)
    before = wh.read_bytes()
    capsys.readouterr()
    code = main(["report", "--warehouse", str(wh), "--region", "640100", "--period", "2023-11",
                 "--format", "csv", "--out", str(wh)])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("yibao report: --out ") and err.count("\n") == 1, err
    assert "is the warehouse" in err
    assert wh.read_bytes() == before
