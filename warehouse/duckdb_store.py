"""The DuckDB warehouse: one file, every publish one transaction.

A run is recorded in pipeline_runs before any output (``begin_run``,
committed at once, so a crash still leaves a trace), its outputs are
published together (``publish``: all tables or none), then the run is
closed (``finish_run`` / ``fail_run``). Re-publishing the same content
replaces it, so re-runs are idempotent (WAREHOUSE.md "Semantics").

No connection may download an extension: json, icu and parquet are built
into the duckdb wheel, and auto-install / auto-load are switched off.

One process at a time may write the file. A writer finding it locked (an
idle ``yibao query`` session, a report) waits with backoff up to
``YIBAO_LOCK_WAIT_SECONDS`` (default 60), then stops naming the holder.
"""
from __future__ import annotations

import datetime as dt
import json
import logging
import os
import re
import time
from collections.abc import Callable, Mapping, Sequence
from contextlib import ExitStack, contextmanager, suppress
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq

from warehouse.base import RunLog, abandoned_error, check_publish
from warehouse.base import calendar_json as _calendar_json
from warehouse.base import instant as _instant
from warehouse.base import now as _now
from warehouse.files import ParquetFiles, local_copies
from warehouse.scope import Scope
from warehouse.tables import (
    BACKFILL,
    DUCKDB_TYPES,
    TABLES,
    appended_columns,
    duckdb_comments,
    duckdb_ddl,
    views,
)

log = logging.getLogger(__name__)

DEFAULT_PATH = "var/warehouse.duckdb"
NO_DOWNLOADS = {"autoinstall_known_extensions": False, "autoload_known_extensions": False}


LOCK_WAIT_ENV = "YIBAO_LOCK_WAIT_SECONDS"
DEFAULT_LOCK_WAIT = 60.0


def connect(path: str = ":memory:", read_only: bool = False,
            lock_wait: float | None = None) -> duckdb.DuckDBPyConnection:
    """A connection that never fetches extensions; instants shown in UTC.

    Writing (not ``read_only``), a file locked by another process is retried
    for up to ``lock_wait`` seconds (default: $YIBAO_LOCK_WAIT_SECONDS, else
    60); then a UsageError names the process holding it. A reader fails at
    once, as DuckDB says.
    """
    if lock_wait is None:
        lock_wait = _lock_wait_from_env()
    deadline, pause = time.monotonic() + lock_wait, 0.1
    while True:
        try:
            con = duckdb.connect(path, read_only=read_only, config=dict(NO_DOWNLOADS))
            break
        except duckdb.IOException as e:
            if read_only or "Could not set lock" not in str(e):
                raise
            if time.monotonic() + pause > deadline:
                raise _locked(path, str(e), lock_wait) from None
            if pause == 0.1:
                log.warning("%s is locked by %s: waiting up to %.0f s", path, _holder(str(e)),
                            lock_wait)
            time.sleep(pause)
            pause = min(pause * 2, 2.0)
    con.execute("SET TimeZone = 'UTC'")
    return con


def _lock_wait_from_env() -> float:
    raw = os.environ.get(LOCK_WAIT_ENV, "")
    try:
        return float(raw) if raw else DEFAULT_LOCK_WAIT
    except ValueError:
        from pipelines.errors import UsageError

        raise UsageError(f"{LOCK_WAIT_ENV}={raw!r}: give a number of seconds") from None


def _holder(message: str) -> str:
    """'PID 1234 (its command line)' from DuckDB's lock error, when it says."""
    m = re.search(r"\(PID (\d+)\)", message)
    if not m:
        return "another process"
    pid = m[1]
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            cmd = " ".join(f.read().decode("utf-8", "replace").replace("\0", " ").split())
    except OSError:  # gone, another machine's /proc, or not Linux
        cmd = ""
    if len(cmd) > 160:
        cmd = cmd[:157] + "..."
    return f"PID {pid} ({cmd})" if cmd else f"PID {pid}"


def _locked(path: str, message: str, waited: float):
    from pipelines.errors import UsageError

    return UsageError(f"the warehouse {path} is locked by {_holder(message)}, still after "
                      f"{waited:.0f} s: end that session (e.g. leave `yibao query`) and run again, "
                      f"or wait longer with {LOCK_WAIT_ENV}")




class DuckDBWarehouse(RunLog):
    def __init__(self, path: str | Path = DEFAULT_PATH, lock_wait: float | None = None):
        self.path = str(path)
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        self.con = connect(self.path, lock_wait=lock_wait)

    def __repr__(self) -> str:
        return f"DuckDBWarehouse({self.path!r})"

    def close(self) -> None:
        self.con.close()

    def __enter__(self) -> DuckDBWarehouse:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # --- schema ----------------------------------------------------------

    def ensure_schema(self, indicator_codes: Sequence[str] | None = None) -> None:
        """Create missing tables, (re)create the views; safe to repeat.

        The scorecard gets one column per code of ``indicator_codes``
        (default: the codes in dim_indicator, so call again after the dims
        are published). An existing table whose columns differ from
        tables.py is an error, never silently altered.
        """
        with self._transaction():
            for name in TABLES:
                self.con.execute(duckdb_ddl(name))
            self._add_new_columns()
            self._check_columns()
            for name in TABLES:
                for stmt in duckdb_comments(name):
                    self.con.execute(stmt)
            if indicator_codes is None:
                indicator_codes = [
                    r[0]
                    for r in self.con.execute(
                        "SELECT indicator_code FROM dim_indicator ORDER BY indicator_code"
                    ).fetchall()
                ]
            for name, sql in views(lambda t: t, indicator_codes).items():
                self.con.execute(f"CREATE OR REPLACE VIEW {name} AS\n{sql}")

    def _add_new_columns(self) -> None:
        """The one migration done silently: nullable columns that tables.py
        appends to a table (a newer release) are added to an older file, so
        an upgrade keeps its history.  Anything else still fails the check."""
        have: dict[str, list[str]] = {}
        for table, column in self.con.execute(
            "SELECT table_name, column_name FROM information_schema.columns"
            " WHERE table_schema = 'main' ORDER BY table_name, ordinal_position"
        ).fetchall():
            have.setdefault(table, []).append(column)
        for name in TABLES:
            for c in appended_columns(name, have.get(name, ())):
                fill = BACKFILL.get((name, c.name))
                add = f"ALTER TABLE {name} ADD COLUMN {c.name} {DUCKDB_TYPES[c.type]}"
                if fill is None:
                    self.con.execute(add)
                    continue
                # A NOT NULL column: older rows get the value as the column's
                # default (an UPDATE before SET NOT NULL fails in one transaction:
                # "Cannot create index with outstanding updates"), dropped after.
                default = "'" + fill.replace("'", "''") + "'"
                self.con.execute(f"{add} DEFAULT {default}")
                self.con.execute(f"ALTER TABLE {name} ALTER COLUMN {c.name} SET NOT NULL")
                self.con.execute(f"ALTER TABLE {name} ALTER COLUMN {c.name} DROP DEFAULT")

    def _check_columns(self) -> None:
        rows = self.con.execute(
            "SELECT table_name, column_name, data_type, is_nullable = 'YES'"
            " FROM information_schema.columns WHERE table_schema = 'main'"
            " ORDER BY table_name, ordinal_position"
        ).fetchall()
        for name, t in TABLES.items():
            have = [r[1:] for r in rows if r[0] == name]
            want = [(c.name, DUCKDB_TYPES[c.type], c.nullable) for c in t.columns]
            if have != want:
                raise RuntimeError(
                    f"{self.path}: table {name} differs from warehouse/tables.py;"
                    f" have {have}, want {want} (migrate or use a new file)"
                )

    # --- runs --------------------------------------------------------------

    def begin_run(
        self,
        run_id: str,
        pipeline: str,
        runner: str,
        started_at: dt.datetime,
        as_of: dt.datetime | None,
        options: Mapping[str, Any] | None = None,
        calendar_sources: Mapping[int, str] | None = None,
    ) -> None:
        """Record the run as running; committed at once. ``calendar_sources``:
        year -> the working-day calendar serving it (pipelines.config)."""
        _instant(started_at, "started_at")
        _instant(as_of, "as_of")
        with self._transaction():
            if self.con.execute(
                "SELECT 1 FROM pipeline_runs WHERE run_id = ?", [run_id]
            ).fetchone():
                raise ValueError(f"run {run_id} already exists")
            self.con.execute(
                "INSERT INTO pipeline_runs (run_id, pipeline, runner, started_at, status,"
                " as_of, options, calendar_sources) VALUES (?, ?, ?, ?, 'running', ?, ?, ?)",
                [
                    run_id,
                    pipeline,
                    runner,
                    started_at,
                    as_of,
                    None if options is None else json.dumps(options, default=str, sort_keys=True),
                    _calendar_json(calendar_sources),
                ],
            )

    def _close_run(self, run_id, status, finished_at, error) -> None:
        with self._transaction():
            done = self.con.execute(
                "UPDATE pipeline_runs SET status = ?, finished_at = ?, error = ?"
                " WHERE run_id = ? RETURNING run_id",
                [status, finished_at, error, run_id],
            ).fetchall()
            if not done:
                raise KeyError(f"no pipeline_runs row for run {run_id}")

    def abandon_stale_runs(self, max_age: dt.timedelta) -> list[str]:
        """Batch runs still ``running`` that started more than ``max_age`` ago
        become ``abandoned`` (their process died); returns their run_ids.
        A streaming job's row stays running: it runs for as long as it runs."""
        now = _now()
        with self._transaction():
            rows = self.con.execute(
                "UPDATE pipeline_runs SET status = 'abandoned', finished_at = ?, error = ?"
                " WHERE status = 'running' AND pipeline <> 'stream' AND started_at < ?"
                " RETURNING run_id",
                [now, abandoned_error(max_age), now - max_age],
            ).fetchall()
        return sorted(r[0] for r in rows)

    def abandon_dead_local_runs(self, host: str, alive: Callable[[int], bool]) -> list[str]:
        """Batch runs still ``running`` whose launcher ran on ``host`` (recorded
        in options as launcher_host / launcher_pid) and whose process is gone
        (a SIGKILL, a power cut) become ``abandoned`` now, not after max_age:
        a local run is its launcher's process."""
        rows = self.con.execute(
            "SELECT run_id, CAST(json_extract_string(options, '$.launcher_pid') AS BIGINT)"
            " FROM pipeline_runs WHERE status = 'running' AND pipeline <> 'stream'"
            " AND json_extract_string(options, '$.launcher_host') = ?", [host]).fetchall()
        dead = sorted(run_id for run_id, pid in rows if pid is not None and not alive(pid))
        if dead:
            with self._transaction():
                self.con.execute(
                    "UPDATE pipeline_runs SET status = 'abandoned', finished_at = ?, error = ?"
                    " WHERE status = 'running' AND list_contains(?, run_id)",
                    [_now(), "abandoned: its launcher process is gone (killed); marked by a later run",
                     dead])
        return dead

    def run_statuses(self, run_ids: Sequence[str]) -> dict[str, str]:
        """run_id -> status for those of ``run_ids`` this warehouse knows."""
        rows = self.con.execute(
            "SELECT run_id, status FROM pipeline_runs WHERE list_contains(?, run_id)",
            [list(run_ids)],
        ).fetchall()
        return dict(rows)

    # --- publish -----------------------------------------------------------

    def publish(
        self,
        run_id: str,
        tables: Mapping[str, pa.Table | ParquetFiles],
        scopes: Mapping[str, Scope] | None = None,
    ) -> dict[str, int]:
        """Write a run's outputs in one transaction; returns rows written per table.

        key tables: rows whose key is in the new data are replaced (a key
        twice in the new data is an error). Scoped tables (quality_failures,
        dead_letters): every row in ``scopes[name]`` is deleted, then the new
        rows inserted; a scope without a table just deletes (a clean re-run),
        and a new row outside its scope is an error (a later re-run would not
        replace it). Dimensions: replaced wholesale. Missing run_id and
        computed_at columns are filled with the run and the publish time;
        other missing columns are NULL. Any error rolls everything back.

        A table's rows may come as ``ParquetFiles`` (warehouse/files.py):
        DuckDB reads them straight into the staging table, never into Python.
        """
        scopes = dict(scopes or {})
        check_publish(tables, scopes)
        computed_at = _now()
        written = {}
        with ExitStack() as copies:
            # Remote files are copied before the transaction: the file stays
            # locked for the inserts only, not for the downloads.
            data = {name: ParquetFiles(copies.enter_context(local_copies(d.paths)))
                    if isinstance(d, ParquetFiles) else d for name, d in tables.items()}
            with self._transaction():
                for name in TABLES:  # fixed order: deterministic, easy to reason about
                    if name in data or name in scopes:
                        written[name] = self._write_table(
                            name, data.get(name), scopes.get(name), run_id, computed_at
                        )
        log.info("published run %s to %s: %s", run_id, self.path, written)
        return written

    def _write_table(
        self,
        name: str,
        data: pa.Table | ParquetFiles | None,
        scope: Scope | None,
        run_id: str,
        computed_at: dt.datetime,
    ) -> int:
        t, con = TABLES[name], self.con
        stage = f"_stage_{name}"
        # Staging table with the target's column types, so keys compare exactly.
        # Explicit DDL, not CREATE TABLE AS … LIMIT 0: in duckdb 2.0.0 such a
        # table, created in a transaction and filled from Arrow with ≥ 122,880
        # rows (one row group), looks empty to filters and aggregates.
        con.execute(duckdb_ddl(name, stage=stage))
        if data is not None:
            self._stage(t, stage, data, run_id, computed_at)
        if t.write == "key":
            keys = ", ".join(t.key)
            dup = con.execute(
                f"SELECT {keys} FROM {stage} GROUP BY ALL HAVING count(*) > 1 LIMIT 1"
            ).fetchone()
            if dup:
                raise ValueError(f"{name}: key {dict(zip(t.key, dup))} appears twice in new rows")
            on = " AND ".join(f"{name}.{k} = s.{k}" for k in t.key)
            con.execute(f"DELETE FROM {name} USING {stage} AS s WHERE {on}")
        elif t.write == "scope":
            params: list[Any] = []
            pred = scope.predicate(t, lambda _col, v: params.append(v) or "?")
            outside = con.execute(
                f"SELECT count(*) FROM {stage} WHERE ({pred}) IS NOT TRUE", params
            ).fetchone()[0]
            if outside:
                raise ValueError(f"{name}: {outside} new rows lie outside their scope {scope}")
            con.execute(f"DELETE FROM {name} WHERE {pred}", params)
        else:
            con.execute(f"DELETE FROM {name}")
        count = con.execute(f"INSERT INTO {name} SELECT * FROM {stage}").fetchone()[0]
        con.execute(f"DROP TABLE {stage}")
        return count

    def _stage(self, t, stage: str, data: pa.Table | ParquetFiles, run_id: str,
               computed_at) -> None:
        if isinstance(data, ParquetFiles):
            # One INSERT per set of columns: a file without run_id gets the
            # run's, while a file's own run_id is checked like an Arrow one.
            groups: dict[tuple[str, ...], list[str]] = {}
            for path in data.paths:
                groups.setdefault(tuple(sorted(pq.read_schema(path).names)), []).append(path)
            for names, paths in groups.items():
                self._insert_stage(t, stage, list(names), run_id, computed_at,
                                   "read_parquet(?, union_by_name = true, hive_partitioning = false)",
                                   [paths])
            given = {n for names in groups for n in names}
        else:
            self.con.register("_incoming", data)
            try:
                self._insert_stage(t, stage, data.column_names, run_id, computed_at, "_incoming", [])
            finally:
                self.con.unregister("_incoming")
            given = set(data.column_names)
        if "run_id" in given:
            other = self.con.execute(
                f"SELECT count(*) FROM {stage} WHERE run_id IS DISTINCT FROM ?", [run_id]
            ).fetchone()[0]
            if other:
                raise ValueError(f"{t.name}: {other} new rows carry a run_id other than {run_id}")

    def _insert_stage(self, t, stage: str, names: Sequence[str], run_id: str, computed_at,
                      source: str, source_params: list) -> None:
        """INSERT INTO the staging table the columns ``names`` of ``source``."""
        extra = set(names) - set(t.column_names)
        if extra:
            raise ValueError(f"{t.name}: columns not in the table: {sorted(extra)}")
        cols, exprs, params = [], [], []
        for c in t.column_names:
            if c in names:
                cols.append(c)
                exprs.append(f'"{c}"')
            elif c in ("run_id", "computed_at"):
                cols.append(c)
                exprs.append("?")
                params.append(run_id if c == "run_id" else computed_at)
        self.con.execute(
            f"INSERT INTO {stage} ({', '.join(cols)}) SELECT {', '.join(exprs)} FROM {source}",
            params + source_params,
        )

    def _transaction(self):
        return _transaction(self.con)


@contextmanager
def _transaction(con: duckdb.DuckDBPyConnection):
    """BEGIN … COMMIT, or ROLLBACK on any exception (which propagates)."""
    con.begin()
    try:
        yield
        con.commit()
    except BaseException:
        # A failed COMMIT has already ended the transaction.
        with suppress(duckdb.TransactionException):
            con.rollback()
        raise
