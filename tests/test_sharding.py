"""Scale-out (issue 17): "results never depend on N".  The same generated
data (every defect kind: rule violations, corrections, reversals, late
lists, duplicate and conflicting deliveries, damaged files) with --shards
1, 7 and 64 and with the two-process local runner gives identical
warehouse tables; hand-made records that cross buckets give the figures of
the one-bucket run (transforms/shard_steps.py)."""
from __future__ import annotations

import datetime as dt
import time
from pathlib import Path

import apache_beam as beam
import duckdb
import pytest
from apache_beam.runners.portability.fn_api_runner import FnApiRunner

from datagen.generate import generate
from pipelines import nightly, sizing
from pipelines.cli import main as yibao
from tests.builders import (
    copy_reference,
    enrolment,
    resident_id,
    reversal,
    settlement,
    settlement_list,
    write_avro,
)
from transforms.shard_steps import RouteDeliveries
from transforms.shards import bucket_sql, default_shards
from transforms.timing import stage_seconds, timed
from warehouse.duckdb_store import connect

#: Per-run columns (who and when), not figures.
RUN_COLUMNS = {"run_id", "computed_at", "received_at", "started_at", "finished_at", "options"}
TABLES = ("indicator_values", "quality_rule_results", "quality_failures", "dead_letters",
          "pipeline_run_streams", "indicator_breakdown", "dim_institution", "dim_matter")
AS_OF = "2030-01-01T00:00:00+08:00"


def snapshot(path: Path) -> dict[str, list[tuple]]:
    """Every table's rows (per-run columns left out, the quarantine folder
    made relative), sorted."""
    con = connect(str(path), read_only=True)
    try:
        out = {}
        for table in TABLES:
            cols = [c for (c,) in con.execute(
                "SELECT column_name FROM information_schema.columns WHERE table_name = ? "
                "ORDER BY ordinal_position", [table]).fetchall() if c not in RUN_COLUMNS]
            select = ", ".join(f"replace(CAST({c} AS VARCHAR), '{path.parent}', '')" for c in cols)
            out[table] = sorted(con.execute(f"SELECT {select} FROM {table}").fetchall(),
                                key=lambda r: tuple("" if v is None else v for v in r))
        return out
    finally:
        con.close()


def run(root: Path, wh: Path, *extra: str, months: str = "2023-01..2023-12") -> dict:
    nightly.run(["--input", str(root), "--warehouse", f"duckdb:///{wh}", "--as-of", AS_OF,
                 "--months", months, "--no_alerts", "--quiet", *extra])
    return snapshot(wh)


@pytest.fixture(scope="module")
def generated(tmp_path_factory):
    root = tmp_path_factory.mktemp("landing")
    # Every rule of QUALITY_RULES.md is broken at least 3 times (datagen.context.scaled),
    # with duplicates, conflicting copies, corrections, reversals and damaged files.
    generate(str(root), seed=17, persons=300, months="2023-02..2023-04")
    return root


@pytest.fixture(scope="module")
def one_shard(generated, tmp_path_factory):
    return run(generated, tmp_path_factory.mktemp("n1") / "w.duckdb", "--shards", "1")


def test_generated_data_covers_every_table(one_shard):
    for table in ("indicator_values", "quality_rule_results", "quality_failures", "dead_letters",
                  "indicator_breakdown"):
        assert one_shard[table], table
    errors = [d[2] for d in one_shard["dead_letters"]]  # (stream, source, error, …)
    assert any(e.startswith("conflicting duplicate") for e in errors), "no conflicting copy generated"


@pytest.mark.parametrize("shards", [7, 64])
def test_any_shard_count_gives_identical_tables(generated, one_shard, tmp_path, shards):
    assert run(generated, tmp_path / "w.duckdb", "--shards", str(shards)) == one_shard


def test_flushing_routed_pieces_mid_bundle_changes_nothing(generated, one_shard, tmp_path, monkeypatch):
    """RouteDeliveries buffers a bundle's pieces per bucket; flushed every 50
    records (many files per bucket) the tables are the same."""
    monkeypatch.setattr(RouteDeliveries, "FLUSH_ROWS", 50)
    assert run(generated, tmp_path / "w.duckdb", "--shards", "7") == one_shard


def test_two_process_runner_gives_identical_tables(generated, one_shard, tmp_path):
    got = run(generated, tmp_path / "w.duckdb", "--shards", "7", "--direct_num_workers", "2",
              "--direct_running_mode", "multi_processing")
    assert got == one_shard


# -- hand-made records that cross buckets ------------------------------------------------
SH = dt.timezone(dt.timedelta(hours=8))
N = 7


def sh(*args) -> dt.datetime:
    return dt.datetime(*args, tzinfo=SH).astimezone(dt.UTC)


def bucket(value: str) -> int:
    return duckdb.sql(f"SELECT {bucket_sql(('k',), N)} FROM (SELECT '{value}' AS k)").fetchall()[0][0]


def apart(prefix: str, other: str) -> str:
    """An id starting with ``prefix`` whose bucket differs from ``other``'s."""
    return next(f"{prefix}{i}" for i in range(100) if bucket(f"{prefix}{i}") != bucket(other))


@pytest.fixture(scope="module")
def crossing(tmp_path_factory):
    root = tmp_path_factory.mktemp("crossing")
    copy_reference(root)
    # A reversal in another bucket than its original: the original is out of every
    # business indicator (I14's 1/1 becomes 0/0 at the county of s-orig).
    orig = settlement("s-orig", sh(2023, 3, 10, 9), smart_audit=True)
    rev = reversal(orig, apart("s-rev", "s-orig"), sh(2023, 3, 12, 9))
    kept = settlement("s-kept", sh(2023, 3, 11, 9), smart_audit=False)
    # A conflicting duplicate whose copies differ in setl_id: the first copy (by file
    # and index) is kept, the other is a dead letter, whatever buckets the setl_ids use.
    first = settlement(apart("s-dup-a", "s-dup-b"), sh(2023, 3, 13, 9))
    second = dict(first, setl_id="s-dup-b")
    # A settlement list arriving before its settlement (earlier file and event_time).
    early = settlement_list("s-late", sh(2023, 3, 14, 8))
    late = settlement("s-late", sh(2023, 3, 14, 9), med_type="2101")
    write_avro(root / "settlement_list" / "a.avro", "settlement_list", [early])
    write_avro(root / "settlement" / "a.avro", "settlement", [orig, first, kept])
    write_avro(root / "settlement" / "b.avro", "settlement", [second, rev, late])
    # One certno under two psn_no (both active 310 and 390 types: E09 and one I09 person).
    certno = resident_id("640104", dt.date(1980, 5, 17), 99)
    psn_a, psn_b = "PA-1", apart("PB-", "PA-1")
    write_avro(root / "enrolment" / "a.avro", "enrolment", [
        enrolment(psn_a, sh(2023, 1, 5, 9), certno=certno, insutype="310"),
        enrolment(psn_b, sh(2023, 2, 5, 9), certno=certno, insutype="390"),
    ])
    out = {}
    for shards in (1, N):
        out[shards] = run(root, tmp_path_factory.mktemp(f"x{shards}") / "w.duckdb", "--shards",
                          str(shards), "--allow-empty", "contribution,filing",
                          months="2023-01..2023-03")
    return out


def value(snap: dict, code: str, region: str, month: str) -> tuple:
    rows = [r for r in snap["indicator_values"] if r[0] == code and r[1] == region
            and r[3] == "MONTH" and r[4] == month]
    assert len(rows) == 1, rows
    return rows[0][6], rows[0][7]


def test_crossing_records_give_the_one_bucket_figures(crossing):
    assert crossing[N] == crossing[1]


def test_crossing_records_expected_figures(crossing):
    snap = crossing[N]
    # I14 at 640104, March: s-orig reversed (out), s-kept 0/1, s-dup-a 1/1, s-late 1/1.
    assert value(snap, "I14", "640104", "2023-03-01") == ("2.000000", "3.000000")
    # The conflicting copy with the other setl_id is a dead letter, not a settlement.
    assert sum(1 for d in snap["dead_letters"] if d[2].startswith("conflicting duplicate")) == 1
    # E09 fails for both enrolments of the certno held under two psn_no at March's end.
    e09 = [r for r in snap["quality_rule_results"] if r[0] == "E09" and r[2] == "640104"
           and r[4] == "MONTH" and r[5] == "2023-03-01"]
    assert e09 and e09[0][7:9] == ("2", "2"), e09


# -- the shard count and each bucket's memory --------------------------------------------
def test_default_shards_follow_the_input_size_and_the_workers():
    mib = 2**20
    assert default_shards(0, 1, 64 * mib) == 1
    assert default_shards(64 * mib, 1, 64 * mib) == 1
    assert default_shards(64 * mib + 1, 1, 64 * mib) == 2
    assert default_shards(10 * mib, 8, 64 * mib) == 8  # at least one per worker
    assert default_shards(640 * 1024 * mib, 256, 64 * mib) == 10240


def test_zero_shards_is_refused_in_one_line(generated, tmp_path, capsys):
    """``--shards 0`` → "yibao nightly: --shards 0: must be a whole number ≥ 1", exit 2."""
    code = yibao(["nightly", "--input", str(generated), "--warehouse", f"duckdb:///{tmp_path}/w.duckdb",
                  "--as-of", AS_OF, "--shards", "0"])
    assert code == 2
    assert capsys.readouterr().err.strip().endswith("--shards 0: must be a whole number ≥ 1")


def test_a_workers_duckdb_budget_is_shared_by_its_concurrent_buckets():
    assert sizing.vcpus("n2-highmem-8") == 8 and sizing.vcpus("custom-6-30720") == 6
    assert sizing.per_bucket("39321MB", 8) == "4915MB"
    assert sizing.per_bucket("12GB", 2) == "6144MB"
    assert sizing.per_bucket("60%", 4) == "60%"  # DuckDB's own form: kept
    assert sizing.per_bucket("4GB", 1) == "4GB"
    # The default bucket size: what fits a bucket's limit (working set ≈ 38 × the Avro bytes).
    assert sizing.shard_bytes("3800MB") == 100 * 2**20
    assert sizing.shard_bytes("60%") == sizing.FALLBACK_SHARD_BYTES


def test_stage_seconds_add_up_every_streams_step():
    """Was: "Decode reported 3.0 s, true total 52.5 s": Decode runs as one Beam
    step per stream, and only one step's counter survived."""
    def slow(_):
        time.sleep(0.3)
        yield 1

    p = beam.Pipeline(runner=FnApiRunner())
    for stream in ("Enrolment", "Settlement"):
        _ = (p | f"Start{stream}" >> beam.Create([None])
             | f"Decode{stream}" >> beam.FlatMap(lambda x: timed("Decode", slow(x))))
    result = p.run()
    result.wait_until_finish()
    stages = stage_seconds(result)
    assert stages["Decode"]["worker"] >= 0.6, stages  # both steps' 0.3 s
    assert stages["Decode"]["wall"] >= 0.3, stages
