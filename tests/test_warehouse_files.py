"""A table's new rows given as Parquet files (warehouse.ParquetFiles), issue 17
"Scale-out": "quality_failures and other large outputs written as files by
the shards and committed with the run's other tables in one warehouse
transaction — never one element holding everything".

Publishing files is publishing an Arrow table of the same rows: the same
table afterwards, the same refusals, the same all-or-nothing, on a real
DuckDB file, on the BigQuery emulator, from local paths and from gs://."""
from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys
import tempfile
import textwrap
import uuid
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tests.conftest_bigquery import (  # noqa: F401 - fixtures
    PROJECT,
    bigquery_emulator,
    bigquery_endpoint,
    emulator_client,
    new_dataset,
)
from tests.conftest_gcs import gcs_emulator, gcs_server  # noqa: F401 - fixtures
from tests.test_bigquery import bq, bq_content, bq_uri  # noqa: F401 - fixtures
from tests.test_warehouse import CODES, SCOPES, YTD, content, rows, snapshot
from warehouse import DuckDBWarehouse, ParquetFiles, Scope, open_warehouse

ROOT = Path(__file__).resolve().parents[1]
QF_SCOPE = {"quality_failures": SCOPES["quality_failures"]}


def failures(n: int = 9) -> pa.Table:
    """quality_failures rows in the nightly's scope, with NULLs where a file
    will lack the column (as_files): details of i = 2, 5, 8, fixmedins_code
    but of i = 3, 6, 9, matter_code always."""
    return rows("quality_failures", [
        {"stream": "settlement", "record_key": f"S{i}", "rule_id": "T01" if i % 2 else "T04",
         "region_code": None if i == 4 else "640104", "business_date": dt.date(2023, 11, i),
         "details": None if i % 3 == 2 else json.dumps(
             {"fixmedins_code": "H***", "医保区划": "640104", "amount": 12.5, "items": [i, None]},
             ensure_ascii=False),
         "fixmedins_code": f"H64010{i}" if i % 3 == 0 else None, "matter_code": None}
        for i in range(1, n + 1)])


def as_files(directory: Path, data: pa.Table, parts: int = 3, run_id: str | None = None,
             stem: str = "part") -> ParquetFiles:
    """``data``'s rows spread over ``parts`` files as shards write them: each
    file without the columns that are all NULL in its rows, every other file
    with its columns in reverse order, the first one with the run's run_id,
    plus a file of no rows at all."""
    directory.mkdir(parents=True, exist_ok=True)
    paths = []
    for k in range(parts):
        part = data.take(list(range(k, data.num_rows, parts)))
        part = part.select([c for c in part.column_names if part[c].null_count < part.num_rows])
        if k % 2:
            part = part.select(part.column_names[::-1])
        if k == 0 and run_id:
            part = part.append_column("run_id", pa.array([run_id] * part.num_rows))
        paths.append(str(directory / f"{stem}-{k}.parquet"))
        pq.write_table(part, paths[-1])
    paths.append(str(directory / f"{stem}-empty.parquet"))
    pq.write_table(data.select(data.column_names[:3]).slice(0, 0), paths[-1])
    return ParquetFiles(paths)


def arrow_and_files(directory: Path, run_id: str) -> tuple[dict, dict]:
    """One run's content twice: all Arrow, and with quality_failures and
    indicator_values (decimals, instants, JSON; a key table) as files."""
    arrow = {**content(), "quality_failures": failures()}
    files = dict(arrow)
    files["quality_failures"] = as_files(directory / "qf", arrow["quality_failures"], 3, run_id)
    files["indicator_values"] = as_files(directory / "iv", arrow["indicator_values"], 2)
    # Some columns really are missing from some files, and run_id from most.
    shapes = {tuple(sorted(pq.read_schema(p).names)) for p in files["quality_failures"].paths}
    assert len(shapes) == 4 and not all("run_id" in s for s in shapes)
    return arrow, files


def duckdb_warehouse(path: Path) -> DuckDBWarehouse:
    wh = DuckDBWarehouse(path)
    wh.ensure_schema(CODES)
    return wh


# --- DuckDB ----------------------------------------------------------------------


def test_files_publish_the_same_table_as_arrow_duckdb(tmp_path):
    arrow, files = arrow_and_files(tmp_path / "out", "r1")
    with duckdb_warehouse(tmp_path / "arrow.duckdb") as a, \
            duckdb_warehouse(tmp_path / "files.duckdb") as f:
        assert a.publish("r1", arrow, SCOPES) == f.publish("r1", files, SCOPES)
        assert f.con.execute("SELECT count(*) FROM quality_failures").fetchone() == (9,)
        assert snapshot(a, drop=("computed_at",)) == snapshot(f, drop=("computed_at",))
        # Republished (key replaced, scope replaced): still the same table.
        assert f.publish("r2", files | {"quality_failures": as_files(
            tmp_path / "again", arrow["quality_failures"], 2, "r2")}, SCOPES)["indicator_values"] == 7
        a.publish("r2", arrow, SCOPES)
        assert snapshot(a, drop=("computed_at",)) == snapshot(f, drop=("computed_at",))


def test_a_file_row_outside_its_scope_rolls_back_the_whole_publish_duckdb(tmp_path):
    with duckdb_warehouse(tmp_path / "wh.duckdb") as wh:
        wh.publish("r1", content(), SCOPES)
        before = snapshot(wh, drop=())
        stray = failures().to_pylist()
        stray[4]["business_date"] = YTD[0] - dt.timedelta(days=1)  # December of last year
        data = {**content(), "quality_failures": as_files(
            tmp_path / "qf", pa.Table.from_pylist(stray, failures().schema))}
        data["dim_region"] = data["dim_region"].slice(0, 1)  # would be written first
        with pytest.raises(ValueError, match="quality_failures: 1 new rows lie outside their scope"):
            wh.publish("r2", data, SCOPES)
        assert snapshot(wh, drop=()) == before


def test_files_get_arrows_refusals_and_change_nothing_duckdb(tmp_path):
    with duckdb_warehouse(tmp_path / "wh.duckdb") as wh:
        wh.publish("r1", content(), SCOPES)
        before = snapshot(wh, drop=())
        iv = content()["indicator_values"]
        for data, message in (
            # The same key in two files (each file alone is fine).
            ({"indicator_values": ParquetFiles(
                [*as_files(tmp_path / "a", iv, 1).paths, *as_files(tmp_path / "b", iv, 1).paths])},
             "appears twice in new rows"),
            ({"quality_failures": as_files(tmp_path / "c", failures(), 2, run_id="r0")},
             "quality_failures: 5 new rows carry a run_id other than r2"),  # part-0's rows
            ({"quality_failures": as_files(tmp_path / "d", failures().append_column(
                "certno", pa.array(["x"] * 9)), 2)}, r"columns not in the table: \['certno'\]"),
            ({"quality_failures": as_files(tmp_path / "e", failures().drop_columns(["pipeline"]))},
             "NOT NULL constraint failed: _stage_quality_failures.pipeline"),
        ):
            with pytest.raises(Exception, match=message):
                wh.publish("r2", {**content(), **data}, SCOPES)
            assert snapshot(wh, drop=()) == before, message


def test_no_paths_is_zero_rows_duckdb(tmp_path):
    with duckdb_warehouse(tmp_path / "wh.duckdb") as wh:
        wh.publish("r1", content(), SCOPES)
        other = rows("quality_failures", [{"stream": "enrolment", "record_key": "E1", "rule_id": "E02",
                                           "business_date": YTD[0]}])
        wh.publish("r1", {"quality_failures": other},
                   {"quality_failures": Scope(values={"stream": ["enrolment"]})})
        assert wh.publish("r2", {"quality_failures": ParquetFiles(())}, QF_SCOPE) == {
            "quality_failures": 0}
        assert wh.con.execute("SELECT stream, record_key FROM quality_failures").fetchall() == [
            ("enrolment", "E1")]
        # A key table given no rows keeps its rows.
        assert wh.publish("r2", {"indicator_values": ParquetFiles([])}) == {"indicator_values": 0}
        assert wh.con.execute("SELECT count(*) FROM indicator_values").fetchone() == (7,)


def test_paths_must_be_a_sequence():
    with pytest.raises(TypeError, match="not one path"):
        ParquetFiles("out/part-0.parquet")
    assert ParquetFiles(["a", Path("b")]) == ParquetFiles(("a", "b"))


def test_duckdb_never_holds_the_files_rows_in_python_memory(tmp_path):
    """150,000 failures (20 MB in Arrow) published in a fresh process:
    Arrow's allocations there never come near the rows' size."""
    big = failures(9)
    big = pa.concat_tables([big] * 16_667).slice(0, 150_000)
    keys = pa.array([f"S{i:07d}" for i in range(big.num_rows)])
    big = big.set_column(big.schema.get_field_index("record_key"), "record_key", keys)
    files = as_files(tmp_path / "qf", big, 4)
    with duckdb_warehouse(tmp_path / "wh.duckdb"):
        pass
    script = textwrap.dedent(f"""
        import json, pyarrow as pa
        from tests.test_warehouse import SCOPES
        from warehouse import DuckDBWarehouse, ParquetFiles
        with DuckDBWarehouse({str(tmp_path / "wh.duckdb")!r}) as wh:
            n = wh.publish("r1", {{"quality_failures": ParquetFiles({list(files.paths)!r})}},
                           {{"quality_failures": SCOPES["quality_failures"]}})
        print(json.dumps([n["quality_failures"], pa.default_memory_pool().max_memory()]))
    """)
    out = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True,
                         check=True)
    written, peak = json.loads(out.stdout.splitlines()[-1])
    assert written == 150_000
    assert big.nbytes > 15_000_000 and peak < big.nbytes / 20, (peak, big.nbytes)


# --- BigQuery (the emulator) ----------------------------------------------------------


@pytest.fixture
def bq_pair(bq, bq_uri):  # noqa: F811 - the imported fixtures
    """Two fresh datasets: ``bq`` and another."""
    other_uri = f"bigquery://{PROJECT}/{new_dataset()}"
    with open_warehouse(other_uri) as other:
        other.ensure_schema(CODES)
        yield (bq, bq_uri), (other, other_uri)


def test_files_publish_the_same_table_as_arrow_bigquery(bq_pair, tmp_path):
    (a, a_uri), (f, f_uri) = bq_pair
    arrow, files = arrow_and_files(tmp_path / "out", "r1")
    assert a.publish("r1", arrow, SCOPES) == f.publish("r1", files, SCOPES)
    got = bq_content(f_uri, drop={"computed_at"})
    assert len(got["quality_failures"]) == 9
    assert got == bq_content(a_uri, drop={"computed_at"})
    assert not [t for t in f.client.list_tables(f.ref) if t.table_id.startswith("_stage")]


def test_files_refusals_change_nothing_bigquery(bq, bq_uri, tmp_path):  # noqa: F811
    bq.publish("r1", content(), SCOPES)
    before = bq_content(bq_uri, drop=set())
    stray = failures().to_pylist()
    stray[4]["business_date"] = YTD[0] - dt.timedelta(days=1)
    iv = content()["indicator_values"]
    for data, message in (
        ({"quality_failures": as_files(tmp_path / "qf", pa.Table.from_pylist(stray, failures().schema))},
         "quality_failures: 1 new rows lie outside their scope"),
        ({"indicator_values": ParquetFiles(
            [*as_files(tmp_path / "a", iv, 1).paths, *as_files(tmp_path / "b", iv, 1).paths])},
         "appears twice in new rows"),
        ({"quality_failures": as_files(tmp_path / "d", failures().append_column(
            "certno", pa.array(["x"] * 9)), 2)}, r"columns not in the table: \['certno'\]"),
    ):
        with pytest.raises(ValueError, match=message):
            bq.publish("r2", {**content(), **data}, SCOPES)
        assert bq_content(bq_uri, drop=set()) == before, message
    assert not [t for t in bq.client.list_tables(bq.ref) if t.table_id.startswith("_stage")]
    assert bq.publish("r2", {"quality_failures": ParquetFiles(())}, QF_SCOPE) == {"quality_failures": 0}
    assert bq_content(bq_uri)["quality_failures"] == []


# --- gs:// (fake-gcs-server) ------------------------------------------------------------


def to_gcs(gcs, files: ParquetFiles, prefix: str) -> ParquetFiles:
    local = Path(files.paths[0]).parent
    gcs.upload_tree(local, prefix)
    return ParquetFiles([f"{prefix}/{Path(p).name}" for p in files.paths])


def gcs_content(gcs, tmp_path: Path, run_id: str) -> tuple[dict, dict]:
    arrow, files = arrow_and_files(tmp_path / "out", run_id)
    prefix = f"{gcs.bucket('shards')}/{uuid.uuid4().hex}"
    files["quality_failures"] = to_gcs(gcs, files["quality_failures"], f"{prefix}/qf")
    files["indicator_values"] = to_gcs(gcs, files["indicator_values"], f"{prefix}/iv")
    return arrow, files


def test_gs_files_publish_the_same_table_as_arrow_duckdb(gcs_emulator, tmp_path):  # noqa: F811
    arrow, files = gcs_content(gcs_emulator, tmp_path, "r1")
    assert all(p.startswith("gs://") for p in files["quality_failures"].paths)
    with duckdb_warehouse(tmp_path / "arrow.duckdb") as a, \
            duckdb_warehouse(tmp_path / "files.duckdb") as f:
        assert a.publish("r1", arrow, SCOPES) == f.publish("r1", files, SCOPES)
        assert snapshot(a, drop=("computed_at",)) == snapshot(f, drop=("computed_at",))


def test_gs_files_publish_the_same_table_as_arrow_bigquery(gcs_emulator, bq_pair, tmp_path):  # noqa: F811
    (a, a_uri), (f, f_uri) = bq_pair
    arrow, files = gcs_content(gcs_emulator, tmp_path, "r1")
    assert a.publish("r1", arrow, SCOPES) == f.publish("r1", files, SCOPES)
    assert bq_content(f_uri, drop={"computed_at"}) == bq_content(a_uri, drop={"computed_at"})


def test_remote_copies_are_removed_after_the_publish(gcs_emulator, tmp_path, monkeypatch):  # noqa: F811
    (tmp_path / "tmp").mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))
    _, files = gcs_content(gcs_emulator, tmp_path, "r1")
    with duckdb_warehouse(tmp_path / "wh.duckdb") as wh:
        wh.publish("r1", {"quality_failures": files["quality_failures"]}, QF_SCOPE)
        assert wh.con.execute("SELECT count(*) FROM quality_failures").fetchone() == (9,)
    assert list((tmp_path / "tmp").iterdir()) == []
