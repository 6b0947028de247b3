"""Key buckets of the sharded nightly (ARCHITECTURE.md "Scale-out").

Records are routed by the hash of a key into ``n`` buckets, so every record
a computation needs together lands in the same bucket whatever ``n`` is:

* deliveries by event_id (duplicates and conflicting copies);
* the families by their business keys: settlements with their settlement
  lists by setl_id, contributions by event_id, filing by case_id,
  enrolment by (psn_no, insutype);
* enrolment versions re-keyed by certno (``person``) for the rules and
  counts that compare one person's enrolments (E09, I09);
* the setl_ids named by reversals by those setl_ids (``reversed_ids``).

The hash is DuckDB's ``hash()`` on the key columns: the same on every worker
of a run (one pinned DuckDB), and a key and the ids naming it hash alike
because they are the same VARCHAR values.  Each writer writes one
Parquet file sorted by bucket into the run's staging prefix, and each
bucket reads its row groups of it; only paths cross the shuffle
(transforms/staging.py says why, and who deletes them).
"""
from __future__ import annotations

import uuid
from collections.abc import Iterator

import duckdb
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from apache_beam.io.filesystem import CompressionTypes
from apache_beam.io.filesystems import FileSystems

from transforms.privacy import open_private

#: The family each stream's accepted records belong to, and its key.
FAMILY = {"settlement": "settlement", "settlement_list": "settlement", "contribution": "contribution",
          "filing": "filing", "enrolment": "enrolment"}
BUSINESS_KEY = {"settlement": ("setl_id",), "settlement_list": ("setl_id",),
                "contribution": ("event_id",), "filing": ("case_id",),
                "enrolment": ("psn_no", "insutype")}
DELIVERY_KEY = ("event_id",)
PERSON_KEY = ("certno",)


def bucket_sql(columns: tuple[str, ...], n: int) -> str:
    return f"hash({', '.join(columns)}) % {int(n)}"


#: Row-group size of the bucketed files: a bucket's reader skips the other row
#: groups by their ``_bucket`` statistics, reading little more than its rows.
ROW_GROUP_ROWS = 16_384


def bucketed(con: duckdb.DuckDBPyConnection, relation: str, columns: tuple[str, ...],
             n: int) -> pa.Table:
    """``relation``'s rows with their bucket (``_bucket``), sorted by it."""
    if n == 1:
        return con.sql(f"SELECT *, CAST(0 AS UBIGINT) AS _bucket FROM {relation}").to_arrow_table()
    return con.sql(f"SELECT *, {bucket_sql(columns, n)} AS _bucket FROM {relation} "
                   "ORDER BY _bucket").to_arrow_table()


def _runs(table: pa.Table) -> list[tuple[int, int, int]]:
    """(bucket, first row, end row) of each bucket of a table sorted by ``_bucket``."""
    if table.num_rows == 0:
        return []
    runs = pc.run_end_encode(table.column("_bucket").combine_chunks())
    ends = runs.run_ends.to_pylist()
    return [(int(b), start, end) for b, start, end in zip(runs.values.to_pylist(), [0, *ends[:-1]], ends,
                                                           strict=True)]


def split_sorted(table: pa.Table) -> Iterator[tuple[int, pa.Table]]:
    """Slices of a table sorted by its ``_bucket`` column (dropped): small
    tables that travel as elements (the reversed setl_ids)."""
    body = table.drop_columns(["_bucket"])
    for bucket, start, end in _runs(table):
        yield bucket, body.slice(start, end - start)


def write_buckets(table: pa.Table, folder: str) -> tuple[str | None, dict[int, int]]:
    """A table sorted by ``_bucket`` -> one private Parquet file under
    ``folder`` (local or gs://) that every bucket reads its part of
    (``read_bucket``), and the rows of each bucket in it.  One file per
    writer, not one per (writer, bucket): N buckets cost N files a step, not N²."""
    if table.num_rows == 0:
        return None, {}
    rows = {bucket: end - start for bucket, start, end in _runs(table)}
    return write(table, folder, row_group_size=ROW_GROUP_ROWS), rows


def read_bucket(paths: list[str], bucket: int, empty: pa.Table | None = None) -> pa.Table:
    """The rows of ``bucket`` in bucketed files (``_bucket`` dropped): only the
    row groups whose statistics can hold it are read (remote files by range
    reads through FileSystems, never copied whole)."""
    parts = []
    for path in dict.fromkeys(paths):
        with (open(path, "rb") if "://" not in path else
              FileSystems.open(path, compression_type=CompressionTypes.UNCOMPRESSED)) as fh:
            pf = pq.ParquetFile(fh)
            col = pf.schema_arrow.get_field_index("_bucket")
            groups = [i for i in range(pf.num_row_groups)
                      if _may_hold(pf.metadata.row_group(i).column(col).statistics, bucket)]
            table = pf.read_row_groups(groups)
        parts.append(table.filter(pc.equal(table.column("_bucket"), bucket)).drop_columns(["_bucket"]))
    if not parts:
        return empty
    return pa.concat_tables(parts)


def _may_hold(stats, bucket: int) -> bool:
    return stats is None or not stats.has_min_max or stats.min <= bucket <= stats.max


def write(table: pa.Table, folder: str, row_group_size: int | None = None) -> str:
    """One private Parquet file under ``folder`` (local or gs://)."""
    path = FileSystems.join(folder, f"{uuid.uuid4().hex}.parquet")
    with open_private(path) as fh:
        pq.write_table(table, fh, compression="lz4", row_group_size=row_group_size)
    return path


def default_shards(input_bytes: int, workers: int, shard_bytes: int) -> int:
    """Enough buckets that one holds about ``shard_bytes`` of Avro input, and
    at least one per worker (docs/PERFORMANCE.md "Scale-out")."""
    return max(1, int(workers), -(-int(input_bytes) // max(1, int(shard_bytes))))
