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
because they are the same VARCHAR values.  A bucket's pieces travel as
Parquet files in the run's staging prefix; only their paths cross the
shuffle (transforms/staging.py says why, and who deletes them).
"""
from __future__ import annotations

import uuid
from collections.abc import Iterator

import duckdb
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
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


def split(con: duckdb.DuckDBPyConnection, relation: str, columns: tuple[str, ...],
          n: int) -> Iterator[tuple[int, pa.Table]]:
    """``relation``'s rows, one table per non-empty bucket of ``columns``."""
    if n == 1:
        table = con.sql(f"SELECT * FROM {relation}").to_arrow_table()
        if table.num_rows:
            yield 0, table
        return
    table = con.sql(f"SELECT *, {bucket_sql(columns, n)} AS _bucket FROM {relation} "
                    "ORDER BY _bucket").to_arrow_table()
    yield from split_sorted(table)


def split_sorted(table: pa.Table) -> Iterator[tuple[int, pa.Table]]:
    """Slices of a table sorted by its ``_bucket`` column (dropped)."""
    if table.num_rows == 0:
        return
    runs = pc.run_end_encode(table.column("_bucket").combine_chunks())
    body = table.drop_columns(["_bucket"])
    start = 0
    for bucket, end in zip(runs.values.to_pylist(), runs.run_ends.to_pylist(), strict=True):
        yield int(bucket), body.slice(start, end - start)
        start = end


def write(table: pa.Table, folder: str) -> str:
    """One private Parquet file under ``folder`` (local or gs://)."""
    path = FileSystems.join(folder, f"{uuid.uuid4().hex}.parquet")
    with open_private(path) as fh:
        pq.write_table(table, fh, compression="lz4")
    return path


def default_shards(input_bytes: int, workers: int, shard_bytes: int) -> int:
    """Enough buckets that one holds about ``shard_bytes`` of Avro input, and
    at least one per worker (docs/PERFORMANCE.md "Scale-out")."""
    return max(1, int(workers), -(-int(input_bytes) // max(1, int(shard_bytes))))
