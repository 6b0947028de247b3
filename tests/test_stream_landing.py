"""A bounded local demo of the streaming job (issue 11, acceptance): the job
watches a landing directory for ``--max_runtime_seconds``; Avro files copied
into it while it runs appear in the warehouse while it runs (early panes),
a junk file becomes a dead letter, and the job ends with its run closed."""
from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import duckdb

from tests.builders import settlement, utc, write_avro
from warehouse.duckdb_store import connect

ROOT = Path(__file__).resolve().parent.parent


def land(landing: Path, stream: str, name: str, records: list[dict]) -> None:
    """Copy a file in the way landing zones expect: written aside, then renamed."""
    tmp = write_avro(landing / f".{name}.part", stream, records)
    (landing / stream).mkdir(parents=True, exist_ok=True)
    tmp.rename(landing / stream / name)


def query(path: Path, sql: str, *params):
    """Read the warehouse while the job may hold it for a write."""
    for _ in range(100):
        try:
            con = connect(str(path), read_only=True)
        except (duckdb.IOException, duckdb.CatalogException):
            time.sleep(0.1)
            continue
        try:
            return con.execute(sql, list(params)).fetchall()
        except duckdb.CatalogException:  # tables not created yet
            return []
        finally:
            con.close()
    raise TimeoutError(f"warehouse {path} stayed locked")


def test_files_landing_while_the_job_runs_reach_the_warehouse(tmp_path):
    landing, warehouse = tmp_path / "landing", tmp_path / "w.duckdb"
    landing.mkdir()
    job = subprocess.Popen(
        [sys.executable, "-m", "pipelines.stream", "--landing", str(landing),
         "--warehouse", f"duckdb:///{warehouse}", "--max_runtime_seconds", "12",
         "--poll_interval", "0.5", "--early_firing_seconds", "1"],
        cwd=ROOT, env=dict(os.environ, PYTHONPATH=str(ROOT)),
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        land(landing, "settlement", "a.avro",
             [settlement(f"L{i}", utc(2023, 3, 6, 2 + i)) for i in range(3)])
        (landing / "settlement" / "junk.avro").write_bytes(b"not an Avro file")
        seen = None
        deadline = time.time() + 20
        while time.time() < deadline and job.poll() is None:
            seen = query(warehouse, """SELECT numerator, denominator FROM indicator_values
                WHERE indicator_code = 'I08' AND region_code = '640104' AND period_type = 'DAY'
                  AND pipeline = 'stream'""")
            if seen:
                break
            time.sleep(0.3)
        assert job.poll() is None, "the job ended before the file's values appeared"
        assert seen == [(3, 3)]
        land(landing, "settlement", "b.avro", [settlement("L9", utc(2023, 3, 6, 9))])
        _, err = job.communicate(timeout=60)
    finally:
        if job.poll() is None:
            job.kill()
    assert job.returncode == 0, err[-3000:]

    assert query(warehouse, """SELECT numerator, denominator FROM indicator_values
        WHERE indicator_code = 'I08' AND region_code = '640104' AND period_type = 'MONTH'""") == [(4, 4)]
    assert query(warehouse, "SELECT pipeline, status FROM pipeline_runs") == [("stream", "succeeded")]
    assert query(warehouse, """SELECT read, accepted, dead_lettered FROM pipeline_run_streams
        WHERE stream = 'settlement'""") == [(5, 4, 1)]
    (source,), = query(warehouse, "SELECT source FROM dead_letters")
    assert source.endswith("junk.avro")
