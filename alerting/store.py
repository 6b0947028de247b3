"""Reading the warehouse and appending to dq_alerts, DuckDB or BigQuery.

The checks need only ``query`` and ``append_alerts``. ``query`` reads
through warehouse/reader.py: SQL in DuckDB's dialect with ``?`` parameters,
translated for BigQuery in one place (warehouse/dialect.py), so every check
runs the same SQL on both engines. ``append_alerts`` inserts into DuckDB,
and on BigQuery goes through BigQueryWarehouse.publish (load + MERGE on
alert_id in one transaction).
"""
from __future__ import annotations

import datetime as dt
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import duckdb

from pipelines.errors import UsageError
from warehouse import duckdb_path
from warehouse.duckdb_store import DuckDBWarehouse, connect
from warehouse.reader import open_reader

DQ_ALERTS_COLUMNS = ("alert_id", "raised_at", "kind", "subject", "region_code", "period",
                     "observed", "threshold", "message", "channels", "suppressed")


class Store:
    def __init__(self, con: duckdb.DuckDBPyConnection | None, owned: bool, bigquery=None):
        """``con``: DuckDB; ``bigquery``: a BigQueryWarehouse (then ``con`` is None)."""
        self.con, self._owned, self.bigquery = con, owned, bigquery
        self.reader = open_reader(bigquery if bigquery is not None else con)
        self._columns: dict[str, set[str]] = {}
        self.memo: dict[str, Any] = {}  # what checks read once per evaluation (contributors.py)

    @classmethod
    def open(cls, target: Any) -> Store:
        """A path or URI — ``duckdb:///…`` or ``bigquery://PROJECT/DATASET`` —
        (opened here, closed by ``close``), a DuckDBWarehouse,
        BigQueryWarehouse or DuckDB connection (borrowed: the caller closes it)."""
        bigquery_store = sys.modules.get("warehouse.bigquery_store")  # not imported: not BigQuery
        if bigquery_store and isinstance(target, bigquery_store.BigQueryWarehouse):
            return cls(None, owned=False, bigquery=target)
        if str(target).startswith("bigquery://"):
            from warehouse import open_warehouse

            return cls(None, owned=True, bigquery=open_warehouse(str(target)))
        if isinstance(target, DuckDBWarehouse):
            return cls(target.con, owned=False)
        if isinstance(target, duckdb.DuckDBPyConnection):
            return cls(target, owned=False)
        path = duckdb_path(str(target))
        if path != ":memory:" and not Path(path).exists():
            raise UsageError(f"no warehouse at {path} — pass the --warehouse a run wrote")
        return cls(connect(path), owned=True)

    def close(self) -> None:
        if self._owned:
            self._owned = False
            (self.bigquery or self.con).close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[dict]:
        """``sql`` in DuckDB's dialect, ``?`` parameters, on either engine."""
        return self.reader.rows(sql, params)

    def run(self, run_id: str | None) -> dict:
        """The run to evaluate; by default the latest one that succeeded or is
        still running (a streaming job)."""
        sql = "SELECT run_id, pipeline, status, started_at, as_of FROM pipeline_runs "
        if run_id:
            rows = self.query(sql + "WHERE run_id = ?", [run_id])
        else:
            rows = self.query(sql + "WHERE status IN ('succeeded', 'running')"
                              " ORDER BY started_at DESC LIMIT 1")
        if not rows:
            raise UsageError(f"no pipeline run {run_id or '(succeeded or running)'} to evaluate"
                             " — see pipeline_runs for the run ids")
        return rows[0]

    def columns(self, table: str) -> set[str]:
        """The table's column names; empty when the table does not exist (an
        older warehouse, or a table a later release adds)."""
        if table not in self._columns:  # asked once per checked row: a request each on BigQuery
            self._columns[table] = self.reader.columns(table)
        return self._columns[table]

    def region_names(self) -> dict[str, str]:
        return {r["region_code"]: r["name"]
                for r in self.query("SELECT region_code, name FROM dim_region")}

    def sent_rows(self) -> list[dict]:
        """dq_alerts rows that were (meant to be) sent, oldest first."""
        return self.query("SELECT kind, subject, region_code, period, raised_at, channels"
                          " FROM dq_alerts WHERE NOT suppressed ORDER BY raised_at, alert_id")

    def append_alerts(self, rows: list[dict]) -> None:
        if not rows:
            return
        if self.bigquery is not None:
            import pyarrow as pa

            from warehouse.tables import arrow_schema

            table = pa.Table.from_pylist([{c: r[c] for c in DQ_ALERTS_COLUMNS} for r in rows],
                                         schema=arrow_schema("dq_alerts"))
            self.bigquery.publish("alerts", {"dq_alerts": table})
            return
        cols = ", ".join(DQ_ALERTS_COLUMNS)
        marks = ", ".join("?" for _ in DQ_ALERTS_COLUMNS)
        self.con.begin()
        try:
            self.con.executemany(f"INSERT INTO dq_alerts ({cols}) VALUES ({marks})",
                                 [[r[c] for c in DQ_ALERTS_COLUMNS] for r in rows])
            self.con.commit()
        except BaseException:
            self.con.rollback()
            raise


def months_back(date: dt.date, n: int) -> dt.date:
    """First day of the month ``n`` months before ``date``'s month."""
    index = date.year * 12 + date.month - 1 - n
    return dt.date(index // 12, index % 12 + 1, 1)
