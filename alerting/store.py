"""Reading the warehouse and appending to dq_alerts (DuckDB).

The checks need only ``query`` (SQL common to DuckDB and BigQuery, ``?``
parameters) and ``append_alerts``; a BigQuery store would implement the
same two methods.
"""
from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import duckdb

from warehouse import duckdb_path
from warehouse.duckdb_store import DuckDBWarehouse, connect

DQ_ALERTS_COLUMNS = ("alert_id", "raised_at", "kind", "subject", "region_code", "period",
                     "observed", "threshold", "message", "channels", "suppressed")


class Store:
    def __init__(self, con: duckdb.DuckDBPyConnection, owned: bool):
        self.con, self._owned = con, owned

    @classmethod
    def open(cls, target: Any) -> Store:
        """A path or URI (opened here, closed by ``close``), a DuckDBWarehouse
        or a connection (borrowed: the caller closes it)."""
        if isinstance(target, DuckDBWarehouse):
            return cls(target.con, owned=False)
        if isinstance(target, duckdb.DuckDBPyConnection):
            return cls(target, owned=False)
        path = duckdb_path(str(target))
        if path != ":memory:" and not Path(path).exists():
            raise FileNotFoundError(f"no warehouse at {path}")
        return cls(connect(path), owned=True)

    def close(self) -> None:
        if self._owned:
            self.con.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[dict]:
        cur = self.con.execute(sql, list(params))
        names = [d[0] for d in cur.description]
        return [dict(zip(names, row)) for row in cur.fetchall()]

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
            raise LookupError(f"no pipeline run {run_id or '(succeeded or running)'} to evaluate")
        return rows[0]

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
