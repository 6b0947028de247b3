"""The streaming job's writes: each firing upserts its rows into the warehouse.

indicator_values and pipeline_run_streams are replaced by key (a later pane
of a day replaces the earlier one; the key includes ``pipeline``, so stream
rows never touch nightly ones); dead_letters are replaced by source, so a
message delivered twice leaves one row.

DuckDB allows one writer per file: writes from the job's threads take turns
on a process-wide lock, and a write that finds the file locked by another
process (an analyst's open connection) is retried, never dropped.
"""
from __future__ import annotations

import logging
import threading
import time
from collections import defaultdict
from collections.abc import Callable

import apache_beam as beam
import duckdb
import pyarrow as pa

from warehouse import open_warehouse
from warehouse.scope import Scope
from warehouse.tables import arrow_schema

log = logging.getLogger(__name__)

_LOCKS: dict[str, threading.Lock] = defaultdict(threading.Lock)
RETRIES = 20
RETRY_SECONDS = 0.25


def arrow_rows(name: str, rows: list[dict]) -> pa.Table:
    """Rows -> an Arrow table of the warehouse table's columns they carry."""
    present = [f for f in arrow_schema(name) if f.name in rows[0]]
    return pa.Table.from_pylist(rows, schema=pa.schema(present))


def with_warehouse(uri: str, action: Callable) -> None:
    """``action(warehouse)`` in its own connection, taking turns with the
    job's other writes and retrying while another process holds the file."""
    with _LOCKS[uri]:
        for attempt in range(RETRIES):
            try:
                with open_warehouse(uri) as wh:
                    action(wh)
                return
            except duckdb.IOException as err:  # the file is locked by another process
                if attempt == RETRIES - 1:
                    raise
                log.info("warehouse busy (%s); retrying", err)
                time.sleep(RETRY_SECONDS)


def upsert(uri: str, run_id: str, name: str, rows: list[dict]) -> None:
    if not rows:
        return
    scopes = ({"dead_letters": Scope(values={"source": sorted({r["source"] for r in rows})})}
              if name == "dead_letters" else None)
    tables = {name: arrow_rows(name, rows)}
    with_warehouse(uri, lambda wh: wh.publish(run_id, tables, scopes))


class WriteToWarehouse(beam.DoFn):
    """(table name, rows) -> upserted; yields (table name, row count)."""

    def __init__(self, uri: str, run_id: str):
        self.uri, self.run_id = uri, run_id

    def process(self, element):
        name, rows = element
        rows = [dict(r, run_id=self.run_id) for r in rows]
        upsert(self.uri, self.run_id, name, rows)
        yield name, len(rows)
