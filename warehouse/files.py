"""A table's new rows as Parquet files, for outputs too large to hold in memory.

``publish(run_id, {"quality_failures": ParquetFiles(paths)}, scopes)`` is
the same publish as with an Arrow table of the files' rows (same checks,
same transaction), but the rows never meet in one Python object: DuckDB
reads the files straight into its staging table, BigQuery gets them through
a load job. The shards of a run write the files; only their paths travel.

A file holds some of the table's columns (any order; files may differ):
missing run_id and computed_at are filled with the run and the publish
time, other missing columns are NULL, a column the table lacks is an
error. Paths are local files or remote URIs Beam's FileSystems reads
(gs://); no paths at all is zero rows.
"""
from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import pyarrow.parquet as pq


@dataclass(frozen=True)
class ParquetFiles:
    paths: tuple[str, ...]

    def __post_init__(self):
        if isinstance(self.paths, (str, bytes, os.PathLike)):
            raise TypeError("ParquetFiles takes a sequence of paths, not one path")
        object.__setattr__(self, "paths", tuple(str(p) for p in self.paths))


def is_remote(path: str) -> bool:
    return "://" in path


@contextlib.contextmanager
def local_copies(paths: Sequence[str]) -> Iterator[list[str]]:
    """``paths`` as local files: remote ones copied (streamed) to a private
    temporary folder, removed on exit; local ones as they are."""
    if not any(is_remote(p) for p in paths):
        yield list(paths)
        return
    from transforms.staging import local_paths  # Beam's FileSystems; only for remote files

    with tempfile.TemporaryDirectory(prefix="yibao-publish-") as tmp:  # 0700
        yield local_paths(list(paths), tmp)


@contextlib.contextmanager
def open_parquet(path: str) -> Iterator[pq.ParquetFile]:
    """A Parquet file, local or remote, read lazily (footer, then row groups)."""
    if not is_remote(path):
        with pq.ParquetFile(path) as f:
            yield f
        return
    from apache_beam.io.filesystem import CompressionTypes
    from apache_beam.io.filesystems import FileSystems

    with FileSystems.open(path, compression_type=CompressionTypes.UNCOMPRESSED) as fh, \
            pq.ParquetFile(fh) as f:
        yield f
