"""``yibao stream --landing DIR --drain`` (issue 20): the bounded mode reads
every file present, advances the watermark to the end, fires every final
pane, writes and exits 0.  After a drain with lateness covering the data,
"the stream's MONTH rows equal the nightly's for an as_of after every
event" — indicator values and quality rule results — on generated data with
every defect kind (rule violations, corrections, reversals, late lists,
duplicate and conflicting deliveries, truncated / legacy / unresolvable /
non-Avro files), and the stream's quality_failures are the nightly's."""
from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import duckdb
import pytest

from datagen import defects
from datagen.generate import generate
from pipelines import nightly
from pipelines.cli import main as yibao
from tests.test_stream_convergence import assert_months_equal
from transforms.streaming_compute import GROUP_RULE_STREAM
from warehouse.duckdb_store import connect

ROOT = Path(__file__).resolve().parent.parent
STREAMED_RULE_STREAMS = sorted(set(GROUP_RULE_STREAM.values()))


def sql(path: Path, query: str, *params) -> list:
    con = connect(str(path), read_only=True)
    try:
        return con.execute(query, list(params)).fetchall()
    finally:
        con.close()


def sql_retry(path: Path, query: str):
    """Read the warehouse while the job may hold it for a write (0 until it can)."""
    try:
        return sql(path, query)[0][0]
    except duckdb.Error:
        return 0


@pytest.fixture(scope="module")
def drained(tmp_path_factory):
    root = tmp_path_factory.mktemp("landing")
    # Every rule of QUALITY_RULES.md is broken at least 3 times (datagen.context.scaled).
    generate(str(root), seed=7, persons=300, months="2023-02..2023-03")
    nightly_wh = tmp_path_factory.mktemp("nightly") / "w.duckdb"
    nightly.run(["--input", str(root), "--warehouse", f"duckdb:///{nightly_wh}",
                 "--as-of", "2030-01-01T00:00:00+08:00", "--months", "2023-01..2023-12"])
    stream_wh = tmp_path_factory.mktemp("stream") / "w.duckdb"
    code = yibao(["stream", "--landing", str(root), "--drain", "--warehouse", f"duckdb:///{stream_wh}",
                  "--allowed_lateness_days", "100000", "--poll_interval", "0.2"])
    return root, nightly_wh, stream_wh, code


def test_drain_exits_0_with_its_run_closed(drained):
    _, _, stream_wh, code = drained
    assert code == 0
    assert sql(stream_wh, "SELECT pipeline, status FROM pipeline_runs") == [("stream", "succeeded")]


def test_generated_data_has_every_defect_kind(drained):
    root, nightly_wh, _, _ = drained
    failed = {r for (r,) in sql(nightly_wh, "SELECT DISTINCT rule_id FROM quality_failures")}
    assert set(defects.RATES) <= failed
    names = {p.name for p in root.glob("*/*.avro")}
    assert {"2023-03-b.avro", "2023-03-legacy.avro", "2023-02-b.avro"} <= names


def test_drained_month_values_equal_the_nightly_ones(drained):
    _, nightly_wh, stream_wh, _ = drained
    night = assert_months_equal(nightly_wh, stream_wh)
    assert any(v != (0, 0) for v in night.values())


def test_drained_quality_results_equal_the_nightly_ones(drained):
    """The I08 qualification rate can be drilled into from the stream."""
    _, nightly_wh, stream_wh, _ = drained
    marks = ", ".join("?" for _ in STREAMED_RULE_STREAMS)
    query = (f"SELECT rule_id, region_code, period_start, checked, failed FROM quality_rule_results "
             f"WHERE period_type = 'MONTH' AND stream IN ({marks}) AND pipeline = ?")
    night = {r[:3]: r[3:] for r in sql(nightly_wh, query, *STREAMED_RULE_STREAMS, "nightly")}
    stream = {r[:3]: r[3:] for r in sql(stream_wh, query, *STREAMED_RULE_STREAMS, "stream")}
    assert stream and set(stream) <= set(night)
    assert {k: v for k, v in night.items() if v != (0, 0) and stream.get(k, (0, 0)) != v} == {}
    assert any(failed for _, failed in stream.values())

    fails = (f"SELECT stream, record_key, rule_id, region_code, business_date, details "
             f"FROM quality_failures WHERE stream IN ({marks}) AND pipeline = ?")
    night_f = sorted(sql(nightly_wh, fails, *STREAMED_RULE_STREAMS, "nightly"))
    stream_f = sorted(sql(stream_wh, fails, *STREAMED_RULE_STREAMS, "stream"))
    assert night_f and stream_f == night_f


def test_drain_waits_for_a_file_still_being_written(tmp_path):
    """A file that keeps growing is not read before it settles; then the
    drain ends by itself, and a Pub/Sub drain is refused in one line."""
    from tests.builders import settlement, utc, write_avro

    landing = tmp_path / "landing"
    path = write_avro(landing / "settlement" / "a.avro", "settlement",
                      [settlement(f"W{i}", utc(2023, 3, 6, 2 + i)) for i in range(3)])
    full = path.read_bytes()
    path.write_bytes(full[: len(full) // 2])  # half written
    wh = tmp_path / "w.duckdb"
    job = subprocess.Popen(
        [sys.executable, "-m", "pipelines.cli", "stream", "--landing", str(landing), "--drain",
         "--warehouse", f"duckdb:///{wh}", "--poll_interval", "0.2"],
        cwd=ROOT, env=dict(os.environ, PYTHONPATH=str(ROOT)),
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        # The file keeps growing (never unchanged for the settle time) until
        # the job has listed it a few times, then it is complete.
        n = 0
        while not (wh.exists() and sql_retry(wh, "SELECT count(*) FROM pipeline_runs")):
            n += 1
            path.write_bytes(full[: len(full) * (1 + n % 4) // 6])
            time.sleep(0.3)
        for n in range(6):
            path.write_bytes(full[: len(full) * (1 + n % 4) // 6])
            time.sleep(0.3)
        path.write_bytes(full)
        _, err = job.communicate(timeout=120)
    finally:
        if job.poll() is None:
            job.kill()
    assert job.returncode == 0, err[-3000:]
    assert sql(wh, "SELECT count(*) FROM dead_letters") == [(0,)]
    assert sql(wh, "SELECT numerator, denominator FROM indicator_values WHERE indicator_code = 'I08' "
                   "AND region_code = '640104' AND period_type = 'MONTH'") == [(3, 3)]

    code = yibao(["stream", "--subscriptions", "settlement=projects/p/subscriptions/s", "--drain",
                  "--warehouse", f"duckdb:///{tmp_path / 'x.duckdb'}"])
    assert code == 2


def test_stream_counts_its_quality_failures(drained):
    """Issue 20: pipeline_run_streams.quality_failures for the stream was
    written as 0; it is the number of the stream's quality_failures rows,
    as the nightly's is."""
    _, nightly_wh, stream_wh, _ = drained
    marks = ", ".join("?" for _ in STREAMED_RULE_STREAMS)
    counted = (f"SELECT stream, quality_failures FROM pipeline_run_streams "
               f"WHERE stream IN ({marks}) ORDER BY stream")
    rows = (f"SELECT stream, count(*) FROM quality_failures WHERE stream IN ({marks}) "
            f"GROUP BY stream ORDER BY stream")
    stream = dict(sql(stream_wh, counted, *STREAMED_RULE_STREAMS))
    assert set(stream) == set(STREAMED_RULE_STREAMS)
    assert stream == {s: 0 for s in stream} | dict(sql(stream_wh, rows, *STREAMED_RULE_STREAMS))
    assert stream == dict(sql(nightly_wh, counted, *STREAMED_RULE_STREAMS))
    assert any(stream.values())
