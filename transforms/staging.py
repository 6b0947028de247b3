"""Staging: decoded record batches spill to Parquet files instead of
travelling through the runner as elements.

A stream's batches must meet in one compute step (versions need every copy
of a key), but a province-year does not fit comfortably in memory as
pickled Beam elements. So each batch is written once to
``<staging>/<stream>/<uuid>.parquet`` (a local folder, or a gs:// prefix
on Dataflow) and only its path travels; the compute step reads the files
with DuckDB, which streams them and spills to disk within its memory limit.
"""
from __future__ import annotations

import os
import shutil
import uuid

import apache_beam as beam
import pyarrow as pa
import pyarrow.parquet as pq
from apache_beam.io.filesystem import CompressionTypes
from apache_beam.io.filesystems import FileSystems


class StageBatches(beam.DoFn):
    """RecordBatch -> (parquet path, rows)."""

    def __init__(self, stream: str, staging_dir: str):
        self.stream, self.staging_dir = stream, staging_dir

    def process(self, batch):
        table = batch if isinstance(batch, pa.Table) else pa.Table.from_batches([batch])
        path = FileSystems.join(self.staging_dir, self.stream, f"{uuid.uuid4().hex}.parquet")
        with FileSystems.create(path, compression_type=CompressionTypes.UNCOMPRESSED) as fh:
            pq.write_table(table, fh, compression="lz4")
        yield path, table.num_rows


def local_paths(paths: list[str], local_dir: str) -> list[str]:
    """DuckDB reads local files only (no extension downloads): remote staged
    files are copied next to the compute step's database first."""
    out = []
    for path in paths:
        if "://" not in path:
            out.append(path)
            continue
        target = os.path.join(local_dir, uuid.uuid4().hex + ".parquet")
        with FileSystems.open(path, compression_type=CompressionTypes.UNCOMPRESSED) as src, \
                open(target, "wb") as dst:
            shutil.copyfileobj(src, dst, 1 << 20)
        out.append(target)
    return out


def remove(staging_dir: str) -> None:
    """Drop a run's staging area (best effort: it holds only copies)."""
    try:
        if "://" in staging_dir:
            FileSystems.delete([staging_dir])
        else:
            shutil.rmtree(staging_dir, ignore_errors=True)
    except Exception:  # noqa: BLE001 - leftover copies never fail a run
        pass
