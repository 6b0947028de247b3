"""The nightly as an operator meets it: mistakes answered in one line (exit 2,
no traceback), empty input refused instead of publishing zeros, a run that
ends with a summary (issues 14 "hardening" item 2 and 15 "operator
experience")."""
from __future__ import annotations

import json
import logging
import re

import pytest

from pipelines import cli, nightly
from pipelines.errors import UsageError
from tests.builders import (
    case,
    contribution,
    copy_reference,
    enrolment,
    settlement,
    settlement_list,
    utc,
    write_avro,
)
from warehouse.duckdb_store import connect

AS_OF = "2023-03-31T23:59:59+08:00"
MONTHS = "2023-01..2023-03"


def _all_streams(root):
    copy_reference(root)
    s1 = settlement("s1", utc(2023, 1, 10, 2))
    write_avro(root / "settlement" / "a.avro", "settlement", [s1, settlement("s2", utc(2023, 2, 3, 2))])
    write_avro(root / "settlement_list" / "a.avro", "settlement_list",
               [settlement_list("s1", utc(2023, 1, 12, 2))])
    write_avro(root / "enrolment" / "a.avro", "enrolment", [enrolment("P1", utc(2023, 1, 5, 2))])
    write_avro(root / "contribution" / "a.avro", "contribution",
               [contribution(utc(2023, 1, 6, 2), utc(2023, 1, 6, 3))])
    write_avro(root / "filing" / "a.avro", "filing",
               [case("c1", utc(2023, 1, 9, 2), utc(2023, 1, 9, 5))])
    return root


@pytest.fixture(scope="module")
def landing(tmp_path_factory):
    return _all_streams(tmp_path_factory.mktemp("landing"))


def _rows(path, sql):
    con = connect(str(path), read_only=True)
    try:
        return con.sql(sql).fetchall()
    finally:
        con.close()


def _nightly(root, wh, *extra):
    return nightly.run(["--input", str(root), "--warehouse", f"duckdb:///{wh}", "--as-of", AS_OF,
                        "--months", MONTHS, "--no_alerts", *extra])


def test_a_stream_without_files_does_not_overwrite_published_figures(landing, tmp_path):
    """Issue 14 item 2: "An empty input overwrites published figures" — a run
    with no settlement files used to exit 0 and replace I14's rows with 0/0."""
    wh = tmp_path / "w.duckdb"
    _nightly(landing, wh)
    sql = ("SELECT period_start, numerator, denominator FROM indicator_values "
           "WHERE indicator_code = 'I14' AND region_code = '640000' ORDER BY 1")
    before = _rows(wh, sql)
    assert any(den > 0 for _, _, den in before)

    partial = tmp_path / "partial"
    _all_streams(partial)
    for f in (partial / "settlement").iterdir():
        f.unlink()
    with pytest.raises(UsageError, match=r"no \*\.avro files for settlement.*--allow-empty settlement"):
        _nightly(partial, wh)
    assert _rows(wh, sql) == before
    status, error = _rows(wh, "SELECT status, error FROM pipeline_runs ORDER BY started_at DESC LIMIT 1")[0]
    assert status == "failed" and "no *.avro files for settlement" in error

    _nightly(partial, wh, "--allow-empty", "settlement")  # said explicitly: zeros are published
    assert all(den == 0 for _, _, den in _rows(wh, sql))


def test_no_files_at_all_is_refused(tmp_path):
    root = tmp_path / "in"
    copy_reference(root)
    with pytest.raises(UsageError, match="no \\*.avro file in any stream folder"):
        _nightly(root, tmp_path / "w.duckdb")


def test_files_that_decode_to_nothing_are_refused_too(landing, tmp_path):
    """All of a stream's files dead-lettered: 0 accepted records, no zeros published."""
    root = _all_streams(tmp_path / "in")
    (root / "filing" / "a.avro").write_bytes(b"not avro at all")
    wh = tmp_path / "w.duckdb"
    with pytest.raises(UsageError, match="no accepted record for filing"):
        _nightly(root, wh)
    assert _rows(wh, "SELECT count(*) FROM indicator_values") == [(0,)]
    assert _rows(wh, "SELECT status FROM pipeline_runs") == [("failed",)]


@pytest.mark.parametrize("args, message", [
    (["--input", "/nonexistent/landing"], "--input /nonexistent/landing: no such directory"),
    (["--as-of", ""], "--as-of is empty"),
    (["--as-of", "31/12/2023"], "is not an ISO 8601 instant"),
    (["--months", "2023-12..2023-01"], "is reversed"),
    (["--months", "1900-01..2100-12"], "spans 2412 months"),
    (["--months", "2023-1"], "write YYYY-MM..YYYY-MM"),
    # was "failed: ValueError: year 0 is out of range", exit 1
    (["--months", "0000-01..0001-01"], "0000-01 is outside the years 1-9998"),
    (["--months", "9999-01..9999-12"], "9999-01 is outside the years 1-9998"),
    # were "failed: OverflowError: date value out of range", exit 1
    (["--as-of", "0001-01-01T00:00:00"], "is outside the years 1-9998"),
    (["--as-of", "9999-12-31T23:59:59"], "is outside the years 1-9998"),
    (["--warehouse", "postgres://x/y"], "unknown scheme 'postgres'"),
    (["--allow-empty", "settlements"], "unknown stream settlements"),
    # Beam logged "Discarding unparseable args: ['--asof', …]" and the run
    # published a year of 0/0 with as_of = now
    (["--asof", "2023-04-30T23:59:59+08:00"], "unknown option or stray argument '--asof 2023"),
    (["--month", "2023-01..2023-04"], "unknown option or stray argument '--month 2023-01"),
    (["--direct_running_mode", "fast"], "argument --direct_running_mode: invalid choice: 'fast'"),
])
def test_mistakes_end_in_one_line_and_exit_2(landing, tmp_path, capsys, monkeypatch, args, message):
    """Issue 15: "Mistakes end in tracebacks or silent surprises" (e.g.
    `--warehouse postgres://x/y` created a DuckDB file named ./postgres:/x/y)."""
    monkeypatch.chdir(tmp_path)
    base = {"--input": str(landing), "--warehouse": "duckdb:///w.duckdb", "--as-of": AS_OF,
            "--months": MONTHS}
    base.update(dict(zip(args[::2], args[1::2])))
    argv = ["nightly", *[x for kv in base.items() for x in kv]]
    assert cli.main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("yibao nightly: ") and message in err[0], err
    assert not (tmp_path / "postgres:").exists()


def test_summary_on_stdout_and_as_json(landing, tmp_path, capsys):
    """Issue 15: "The nightly is silent" — it now ends with the per-stream
    counts of pipeline_run_streams, rows written, months, run_id, warehouse."""
    root = _all_streams(tmp_path / "in")
    (root / "settlement" / "notes.csv").write_text("setl_id\ns1\n")
    wh = tmp_path / "w.duckdb"
    run_id = nightly.run(["--input", str(root), "--warehouse", f"duckdb:///{wh}", "--as-of", AS_OF,
                          "--months", "2023-01..2023-04", "--no_alerts", "--json"])
    out = capsys.readouterr().out.strip().splitlines()
    summary = json.loads(out[-1])
    assert summary["run_id"] == run_id and summary["warehouse"] == f"duckdb:///{wh}"
    counts = _rows(wh, f"SELECT stream, read, accepted, duplicates, dead_lettered FROM "
                       f"pipeline_run_streams WHERE run_id = '{run_id}'")
    assert {s: tuple(c.values()) for s, c in summary["streams"].items()} == {
        s: tuple(c) for s, *c in counts}
    assert summary["indicator_rows"] == _rows(
        wh, f"SELECT count(*) FROM indicator_values WHERE run_id = '{run_id}'")[0][0]
    assert summary["months"] == "2023-01..2023-04"
    assert summary["months_without_data"] == ["2023-03", "2023-04"]
    assert summary["ignored_files"] == [str(root / "settlement" / "notes.csv")]
    assert summary["targets_missed"] == _rows(
        wh, f"SELECT count(*) FROM indicator_values WHERE run_id = '{run_id}' AND NOT meets_target")[0][0]

    nightly.run(["--input", str(root), "--warehouse", f"duckdb:///{wh}", "--as-of", AS_OF,
                 "--months", MONTHS, "--no_alerts"])
    text = capsys.readouterr().out
    assert "settlement" in text and "indicator rows" in text and "warning: no data in any stream for 2023-03" in text
    assert "not *.avro and were not read" in text

    nightly.run(["--input", str(root), "--warehouse", f"duckdb:///{wh}", "--as-of", AS_OF,
                 "--months", MONTHS, "--no_alerts", "--quiet"])
    captured = capsys.readouterr()
    assert captured.out == "" and "warning: no data in any stream" in captured.err


def test_help_keeps_the_examples_line_breaks(capsys):
    """Issue 15: "`nightly --help` collapses its example's line breaks"."""
    assert cli.main(["nightly", "--help"]) == 0
    out = capsys.readouterr().out
    assert "duckdb:///var/warehouse.duckdb \\\n        --as-of" in out
    assert cli.main(["--help"]) == 0
    out = capsys.readouterr().out
    for name, (_, help_) in cli.COMMANDS.items():
        assert f"{name}" in out and help_ in out


def test_progress_on_stderr_names_stages_and_records(landing, tmp_path, capsys, monkeypatch):
    """Issue 15: progress on stderr (stages, records read per stream, rate);
    here from the first second instead of after a few."""
    from pipelines import progress

    monkeypatch.setattr(progress.Progress, "QUIET_SECONDS", 0.0)
    _nightly(landing, tmp_path / "w.duckdb")
    err = capsys.readouterr().err
    assert "computing indicators" in err and "publishing" in err
    assert "settlement=2" in err and "records read" in err and "rec/s" in err


def _start_and_wait_for_staging(landing, wh, staging):
    """A nightly in its own process, returned once it has staged a batch
    (personal data on disk): the moment a kill costs the most."""
    import os
    import subprocess
    import sys
    import time

    proc = subprocess.Popen(
        [sys.executable, "-m", "pipelines.cli", "nightly", "--input", str(landing),
         "--warehouse", f"duckdb:///{wh}", "--as-of", AS_OF, "--months", MONTHS, "--no_alerts"],
        cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    while not any(staging.rglob("*.parquet")) and proc.poll() is None:
        assert time.monotonic() < deadline, "the run never staged anything"
        time.sleep(0.02)
    assert proc.poll() is None, proc.communicate()
    return proc


def test_a_killed_run_is_closed_and_leaves_no_staged_personal_data(landing, tmp_path):
    """Issue 14 item 6: a killed run's row "stays `running` forever" and its
    staged Parquet (raw certno, psn_name) stays: SIGTERM now unwinds the run."""
    import signal

    wh, staging = tmp_path / "w.duckdb", tmp_path / "staging"
    proc = _start_and_wait_for_staging(landing, wh, staging)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    # Probe: it used to end "failed: RuntimeError: SystemExit: 143 [while running …]", status 1.
    assert proc.returncode == 143 and b"terminated (SIGTERM)" in err, err
    assert _rows(wh, "SELECT status FROM pipeline_runs") == [("failed",)]
    assert not list(staging.rglob("*.parquet"))


def test_a_sigkilled_run_is_abandoned_and_swept_by_the_next_run(landing, tmp_path):
    """Probe: after SIGKILL the row stayed `running` and its staged Parquet
    (personal data) stayed on disk until run_max_age_hours had passed; the
    next run now sees that the launcher process is gone."""
    import signal

    wh, staging = tmp_path / "w.duckdb", tmp_path / "staging"
    proc = _start_and_wait_for_staging(landing, wh, staging)
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=60)
    (killed, status), = _rows(wh, "SELECT run_id, status FROM pipeline_runs")
    assert status == "running"
    assert list((staging / killed).rglob("*.parquet"))
    _nightly(landing, wh)
    assert _rows(wh, f"SELECT status FROM pipeline_runs WHERE run_id = '{killed}'") == [("abandoned",)]
    assert not (staging / killed).exists()


def test_a_refusal_inside_the_pipeline_is_one_line_without_traceback(tmp_path, capsys, caplog):
    """Probe: a refusal raised in the Publish step printed Beam's
    "ERROR apache_beam.runners.common: no accepted record for settlement …
    [while running 'Publish']" with a 20-line traceback before the one line,
    and the line itself ended in "[while running 'Publish']"."""
    root = _all_streams(tmp_path / "in")
    (root / "filing" / "a.avro").write_bytes(b"not avro at all")
    caplog.set_level(logging.WARNING)
    argv = ["nightly", "--input", str(root), "--warehouse", f"duckdb:///{tmp_path}/w.duckdb",
            "--as-of", AS_OF, "--months", MONTHS, "--no_alerts"]
    assert cli.main(argv) == 2
    # Progress lines ("[   4.0s] computing indicators: …") may come first on a slow run.
    err = [line for line in capsys.readouterr().err.strip().splitlines()
           if not re.match(r"^\[ *\d+\.\ds\] ", line)]
    assert len(err) == 1 and err[0].startswith("yibao nightly: no accepted record for filing"), err
    assert "[while running" not in err[0]
    assert [r.getMessage() for r in caplog.records if r.exc_info] == []
    (error,) = _rows(tmp_path / "w.duckdb", "SELECT error FROM pipeline_runs")[0]
    assert error.startswith("no accepted record for filing") and "[while running" not in error
