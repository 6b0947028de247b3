"""The BigQuery warehouse: DuckDBWarehouse's API and semantics on BigQuery.

``bigquery://PROJECT/DATASET``. The same tables and views, generated from
warehouse/tables.py (``table_ddl`` / ``view_ddl`` also write deploy/bigquery/),
and the same methods: ``ensure_schema``, ``begin_run``, ``publish``,
``finish_run``, ``fail_run``.

A publish first loads each table's new rows into a staging table (a Parquet
load job: exact decimals, no streaming buffer that DML would trip over), then
replaces them in ONE multi-statement transaction: MERGE on the key, DELETE
by the Scope + INSERT for the scoped tables, DELETE + INSERT for the
dimensions. When a statement fails, BigQuery rolls the whole transaction
back, so a failed publish leaves the previous state. Staging tables are
dropped afterwards, and expire after a day should the process die first.

Credentials: Application Default Credentials (google.auth.default: the
Dataflow worker's service account, ``gcloud auth application-default login``
on a laptop). ``YIBAO_BIGQUERY_ENDPOINT`` sends every call to another
endpoint with anonymous credentials (the local emulator in tests).

The dataset must exist: creating it here would pick its location (data
residency) by accident; deploy/RUNBOOK.md creates it.
"""
from __future__ import annotations

import datetime as dt
import io
import json
import logging
import os
import re
import tempfile
import uuid
from collections.abc import Iterable, Mapping, Sequence
from contextlib import nullcontext
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from warehouse.base import RunLog, abandoned_error, check_publish
from warehouse.base import calendar_json as _calendar_json
from warehouse.base import instant as _instant
from warehouse.base import now as _now
from warehouse.files import ParquetFiles, open_parquet
from warehouse.scope import Scope
from warehouse.tables import (
    BACKFILL,
    BIGQUERY_TYPES,
    TABLES,
    Column,
    Table,
    appended_columns,
    arrow_schema,
    bigquery_column_ddl,
    bigquery_ddl,
    bigquery_schema,
    bigquery_type_sql,
    views,
)

log = logging.getLogger(__name__)

ENDPOINT_ENV = "YIBAO_BIGQUERY_ENDPOINT"
_URI = re.compile(r"^bigquery://(?P<project>[a-z](?:[a-z0-9.:-]*[a-z0-9])?)/(?P<dataset>\w+)/?$")

# tables.get reports INT64, FLOAT64 and BOOL by their legacy names.
_LEGACY_NAMES = {"INTEGER": "INT64", "FLOAT": "FLOAT64", "BOOLEAN": "BOOL"}
# (type, precision, scale) declared -> as the server reports it, where they
# differ. BigQuery reports what was declared, so this stays empty in
# production; tests/conftest_bigquery.py fills it for the emulator.
REPORTED_TYPES: dict[tuple, tuple] = {}
# Suffix of the table a migration rebuilds a table into (``_rebuild``).
MIGRATING = "__migrating"


def parse_uri(uri: str) -> tuple[str, str]:
    """``bigquery://PROJECT/DATASET`` -> (project, dataset)."""
    m = _URI.match(uri)
    if not m:
        raise ValueError(f"{uri!r} is not bigquery://PROJECT/DATASET")
    return m["project"], m["dataset"]


def make_client(project: str):
    from google.cloud import bigquery

    endpoint = os.environ.get(ENDPOINT_ENV)
    if endpoint:
        from google.api_core.client_options import ClientOptions
        from google.auth.credentials import AnonymousCredentials

        return bigquery.Client(project=project, credentials=AnonymousCredentials(),
                               client_options=ClientOptions(api_endpoint=endpoint))
    return bigquery.Client(project=project)  # credentials from google.auth.default()


def table_ddl(dataset: str) -> dict[str, str]:
    """CREATE TABLE IF NOT EXISTS per table; ``dataset`` is ``project.dataset`` or ``dataset``."""
    return {name: bigquery_ddl(name, dataset) for name in TABLES}


def view_ddl(dataset: str, indicator_codes: Sequence[str]) -> dict[str, str]:
    return {name: f"CREATE OR REPLACE VIEW `{dataset}.{name}` AS\n{sql}"
            for name, sql in views(lambda t: f"`{dataset}.{t}`", indicator_codes).items()}




def _type(field) -> tuple:
    return (_LEGACY_NAMES.get(field.field_type, field.field_type), field.precision, field.scale)


def _fields(schema) -> list[tuple]:
    """(name, mode, type, precision, scale) per field, as tables.get reports them."""
    return [(f.name, f.mode, *_type(f)) for f in schema]


def _wanted(name: str) -> list[tuple]:
    """``_fields`` of table ``name`` as tables.py declares it."""
    return [(f.name, f.mode, *REPORTED_TYPES.get(_type(f), _type(f))) for f in bigquery_schema(name)]


class BigQueryWarehouse(RunLog):
    def __init__(self, project: str, dataset: str, client=None):
        self.project, self.dataset = project, dataset
        self.ref = f"{project}.{dataset}"
        self.client = client or make_client(project)

    @classmethod
    def from_uri(cls, uri: str) -> BigQueryWarehouse:
        return cls(*parse_uri(uri))

    def __repr__(self) -> str:
        return f"BigQueryWarehouse('bigquery://{self.project}/{self.dataset}')"

    def close(self) -> None:
        self.client.close()

    def __enter__(self) -> BigQueryWarehouse:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # --- SQL ---------------------------------------------------------------

    def _query(self, sql: str, params: Iterable = ()):
        """Runs ``sql`` to completion; returns the finished job."""
        from google.cloud import bigquery

        job = self.client.query(sql, job_config=bigquery.QueryJobConfig(
            query_parameters=list(params)))
        job.result()
        return job

    def _rows(self, sql: str, params: Iterable = ()) -> list:
        return list(self._query(sql, params).result())

    def _t(self, name: str) -> str:
        return f"`{self.ref}.{name}`"

    # --- schema ------------------------------------------------------------

    def ensure_schema(self, indicator_codes: Sequence[str] | None = None) -> None:
        """Create missing tables, (re)create the views; safe to repeat.

        As DuckDBWarehouse.ensure_schema: the scorecard gets one column per
        code (default: dim_indicator's), and a table whose columns differ
        from tables.py is an error, never silently altered, but for the one
        migration (``_add_new_columns``).
        """
        from google.api_core.exceptions import NotFound

        try:
            self.client.get_dataset(self.ref)
        except NotFound:
            raise RuntimeError(
                f"dataset {self.ref} does not exist: create it in the data's location"
                " (bq mk --dataset --location=LOCATION PROJECT:DATASET, deploy/RUNBOOK.md)"
            ) from None
        self._finish_migrations()
        self._query(";\n".join(table_ddl(self.ref).values()))
        schemas = {name: self._schema(name) for name in TABLES}
        for name in self._add_new_columns(schemas):
            schemas[name] = self._schema(name)
        self._check_columns(schemas)
        if indicator_codes is None:
            indicator_codes = [r[0] for r in self._rows(
                f"SELECT indicator_code FROM {self._t('dim_indicator')} ORDER BY indicator_code")]
        self._query(";\n".join(view_ddl(self.ref, indicator_codes).values()))

    def _schema(self, name: str) -> list:
        return self.client.get_table(f"{self.ref}.{name}").schema

    def _add_new_columns(self, schemas: dict[str, list]) -> list[str]:
        """The one migration done silently, as DuckDBWarehouse's: columns
        tables.py appends to a table (tables.appended_columns) are added to
        an older dataset, so an upgrade keeps its history; anything else
        still fails ``_check_columns``.

        Nullable ones: ALTER TABLE ADD COLUMN.  BigQuery can neither add a
        REQUIRED column nor SET NOT NULL, so a table gaining one (with its
        tables.BACKFILL value) is rebuilt: ``<name>__migrating`` is created
        from tables.py's DDL and filled from the table, then replaces it
        (drop, copy job, drop; ``_finish_migrations`` resumes an interruption).
        A rebuilt table loses what a drop takes with it (table IAM bindings,
        row access policies; deploy/RUNBOOK.md); its rows and schema stay.
        ``schemas``: each table's fields now; returns the tables migrated.
        """
        migrated = []
        for name, fields in schemas.items():
            new = appended_columns(name, [f.name for f in fields])
            # Only a strict prefix, modes and types included, is migrated: a
            # retyped column must not be cast silently by the rebuild's INSERT.
            if not new or _fields(fields) != _wanted(name)[: len(fields)]:
                continue
            required = [c for c in new if not c.nullable]
            if required:
                self._rebuild(name, [f.name for f in fields], required)
            else:
                for f in bigquery_schema(name)[len(fields):]:
                    # One column a statement: the emulator (DuckDB) takes no more.
                    self._query(f"ALTER TABLE {self._t(name)} ADD COLUMN {bigquery_column_ddl(f)}")
            fills = {c.name: BACKFILL[(name, c.name)] for c in required}
            log.warning("%s: migrated table %s to this release: added columns %s%s", self.ref,
                        name, ", ".join(c.name for c in new),
                        f" (existing rows get {fills})" if fills else "")
            migrated.append(name)
        return migrated

    def _rebuild(self, name: str, old: list[str], required: list[Column]) -> None:
        """Table ``name`` with its columns ``old`` becomes tables.py's, the
        ``required`` columns filled with their BACKFILL value, the others null."""
        from google.cloud.bigquery import ScalarQueryParameter

        mig = f"{name}{MIGRATING}"
        self.client.delete_table(f"{self.ref}.{mig}", not_found_ok=True)
        self._query(bigquery_ddl(name, self.ref, mig))
        cols = [*old, *(c.name for c in required)]
        self._query(
            f"INSERT INTO {self._t(mig)} ({', '.join(f'`{c}`' for c in cols)})\n"
            f"SELECT {', '.join(f'`{c}`' for c in old)}, {', '.join(f'@fill{i}' for i in range(len(required)))}"
            f" FROM {self._t(name)}",
            [ScalarQueryParameter(f"fill{i}", _param_type(c), BACKFILL[(name, c.name)])
             for i, c in enumerate(required)])
        # Only a complete copy may replace the table (two processes migrating
        # at once could drop or double each other's copy: refuse, keep the old).
        count = "SELECT (SELECT COUNT(*) FROM {}), (SELECT COUNT(*) FROM {})"
        (have, copied), = self._rows(count.format(self._t(name), self._t(mig)))
        if copied != have:
            raise RuntimeError(f"{self.ref}: migrating table {name}: {copied} of its {have} rows"
                               f" copied (another process migrating it?); run again")
        # From here the rows live complete in the __migrating table.
        self.client.delete_table(f"{self.ref}.{name}")
        self._replace_with_migrating(name)

    def _replace_with_migrating(self, name: str) -> None:
        """``<name>__migrating`` (complete) becomes ``name`` (which is absent)."""
        from google.cloud import bigquery

        mig = f"{self.ref}.{name}{MIGRATING}"
        # A copy keeps schema, partitioning and clustering; the table's
        # description is set again (a copy need not carry it).
        self.client.copy_table(mig, f"{self.ref}.{name}", job_config=bigquery.CopyJobConfig(
            create_disposition=bigquery.CreateDisposition.CREATE_IF_NEEDED,
            write_disposition=bigquery.WriteDisposition.WRITE_EMPTY)).result()
        table = self.client.get_table(f"{self.ref}.{name}")
        table.description = TABLES[name].description
        self.client.update_table(table, ["description"])
        self.client.delete_table(mig)

    def _finish_migrations(self) -> None:
        """A rebuild interrupted by a previous run: with ``name`` still there
        the ``__migrating`` table may be incomplete, so it is dropped (and the
        rebuild redone); with ``name`` gone it was complete (the old table is
        dropped only after it is filled), so it replaces ``name`` now."""
        present = {t.table_id for t in self.client.list_tables(self.ref)}
        for name in TABLES:
            if f"{name}{MIGRATING}" not in present:
                continue
            if name in present:
                self.client.delete_table(f"{self.ref}.{name}{MIGRATING}")
            else:
                log.warning("%s: finishing the interrupted migration of table %s", self.ref, name)
                self._replace_with_migrating(name)

    def _check_columns(self, schemas: dict[str, list]) -> None:
        for name, fields in schemas.items():
            have = _fields(fields)
            want = _wanted(name)
            if have != want:
                raise RuntimeError(
                    f"{self.ref}: table {name} differs from warehouse/tables.py;"
                    f" have {have}, want {want} (migrate or use a new dataset)"
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
        """Record the run as running (committed at once, as in DuckDB)."""
        from google.cloud.bigquery import ScalarQueryParameter as P

        _instant(started_at, "started_at")
        _instant(as_of, "as_of")
        runs = self._t("pipeline_runs")
        if self._rows(f"SELECT 1 FROM {runs} WHERE run_id = @run_id", [P("run_id", "STRING", run_id)]):
            raise ValueError(f"run {run_id} already exists")
        self._query(
            f"INSERT INTO {runs} (run_id, pipeline, runner, started_at, status, as_of, options,"
            " calendar_sources) VALUES (@run_id, @pipeline, @runner, @started_at, 'running',"
            " @as_of, PARSE_JSON(@options, wide_number_mode => 'round'), PARSE_JSON(@calendar))",
            [P("run_id", "STRING", run_id), P("pipeline", "STRING", pipeline),
             P("runner", "STRING", runner), P("started_at", "TIMESTAMP", started_at),
             P("as_of", "TIMESTAMP", as_of),
             P("options", "STRING", None if options is None
               else json.dumps(options, default=str, sort_keys=True)),
             P("calendar", "STRING", _calendar_json(calendar_sources))],
        )

    def _close_run(self, run_id, status, finished_at, error) -> None:
        from google.cloud.bigquery import ScalarQueryParameter as P

        job = self._query(
            f"UPDATE {self._t('pipeline_runs')} SET status = @status,"
            " finished_at = @finished_at, error = @error WHERE run_id = @run_id",
            [P("status", "STRING", status), P("finished_at", "TIMESTAMP", finished_at),
             P("error", "STRING", error), P("run_id", "STRING", run_id)],
        )
        if not job.num_dml_affected_rows:
            raise KeyError(f"no pipeline_runs row for run {run_id}")

    def abandon_stale_runs(self, max_age: dt.timedelta) -> list[str]:
        """As DuckDBWarehouse.abandon_stale_runs: batch rows ``running`` past
        ``max_age`` become ``abandoned``; returns their run_ids."""
        from google.cloud.bigquery import ScalarQueryParameter as P

        now = _now()
        runs = self._t("pipeline_runs")
        stale = "status = 'running' AND pipeline <> 'stream' AND started_at < @cutoff"
        params = [P("cutoff", "TIMESTAMP", now - max_age)]
        # No RETURNING in BigQuery: read the ids, then update exactly those.
        ids = sorted(r[0] for r in self._rows(f"SELECT run_id FROM {runs} WHERE {stale}", params))
        if ids:
            self._query(
                f"UPDATE {runs} SET status = 'abandoned', finished_at = @now, error = @error"
                f" WHERE {stale} AND run_id IN UNNEST(@ids)",
                [*params, P("now", "TIMESTAMP", now), P("error", "STRING", abandoned_error(max_age)),
                 _array("ids", ids)])
        return ids

    def run_statuses(self, run_ids: Sequence[str]) -> dict[str, str]:
        """run_id -> status for those of ``run_ids`` this warehouse knows."""
        if not run_ids:
            return {}
        return dict(tuple(r) for r in self._rows(
            f"SELECT run_id, status FROM {self._t('pipeline_runs')} WHERE run_id IN UNNEST(@ids)",
            [_array("ids", list(run_ids))]))

    # --- publish -----------------------------------------------------------

    def publish(
        self,
        run_id: str,
        tables: Mapping[str, pa.Table | ParquetFiles],
        scopes: Mapping[str, Scope] | None = None,
    ) -> dict[str, int]:
        """Write a run's outputs in one transaction; returns rows written per table.

        Same contract as DuckDBWarehouse.publish (key tables replaced by key,
        a key twice in the new data is an error; scoped tables: the scope's
        rows deleted, new rows outside their scope refused; dimensions
        replaced wholesale; run_id / computed_at filled in; all or nothing),
        ``ParquetFiles`` included: their rows are conformed batch by batch
        into one local Parquet file per table, which one load job stages.
        """
        scopes = dict(scopes or {})
        check_publish(tables, scopes)
        computed_at = _now()
        names = [n for n in TABLES if n in tables or n in scopes]  # fixed order, as DuckDB
        files = any(isinstance(d, ParquetFiles) for d in tables.values())
        with tempfile.TemporaryDirectory(prefix="yibao-publish-") if files else nullcontext() as tmp:
            # Checks that need no staging come first, so a bad call loads nothing
            # (but a key repeated across files, found once they are staged).
            data: dict[str, pa.Table | str] = {}
            written: dict[str, int] = {}
            for n in names:
                if isinstance(tables.get(n), ParquetFiles):
                    data[n] = os.path.join(tmp, f"{n}.parquet")
                    written[n] = _conform_files(TABLES[n], tables[n], run_id, computed_at, data[n])
                elif n in tables:
                    data[n] = _unique(TABLES[n], _conform(TABLES[n], tables[n], run_id, computed_at))
                    written[n] = data[n].num_rows
                else:
                    written[n] = 0
            self._publish_staged(names, data, written, scopes)
        log.info("published run %s to %s: %s", run_id, self.ref, written)
        return written

    def _publish_staged(self, names: list[str], data: Mapping[str, pa.Table | str],
                        written: Mapping[str, int], scopes: Mapping[str, Scope]) -> None:
        """Stages ``data`` (conformed tables, or conformed local Parquet files),
        checks it, then runs the one transaction."""
        staged: dict[str, str] = {}
        try:
            statements, params = [], []
            for name in names:
                if written[name]:
                    staged[name] = self._stage(name, data[name])
                    if isinstance(data[name], str):
                        self._check_unique(name, staged[name])
                pred, pred_params = self._scope_predicate(name, scopes.get(name), len(params))
                if pred and name in staged:
                    outside = self._rows(
                        f"SELECT COUNT(*) FROM `{staged[name]}` WHERE ({pred}) IS NOT TRUE",
                        pred_params)[0][0]
                    if outside:
                        raise ValueError(f"{name}: {outside} new rows lie outside their scope"
                                         f" {scopes[name]}")
                params += pred_params
                statements += self._statements(name, staged.get(name), pred)
            if statements:
                self._query("BEGIN TRANSACTION;\n" + ";\n".join(statements)
                            + ";\nCOMMIT TRANSACTION", params)
        finally:
            for ref in staged.values():
                self.client.delete_table(ref, not_found_ok=True)

    def _check_unique(self, name: str, stage: str) -> None:
        """As ``_unique``, on rows staged from files (too many to check in memory)."""
        t = TABLES[name]
        if t.write != "key":
            return
        keys = ", ".join(f"`{k}`" for k in t.key)
        dup = self._rows(f"SELECT {keys} FROM `{stage}` GROUP BY {keys} HAVING COUNT(*) > 1 LIMIT 1")
        if dup:
            raise ValueError(f"{name}: key {dict(zip(t.key, dup[0]))} appears twice in new rows")

    def _stage(self, name: str, rows: pa.Table | str) -> str:
        """A staging table holding ``rows``, a conformed table or the path of a
        conformed local Parquet file (JSON as text, parsed on insert)."""
        from google.cloud import bigquery

        ref = f"{self.ref}._stage_{name}_{uuid.uuid4().hex[:12]}"
        cols = ",\n".join(f"  `{f.name}` {'STRING' if f.field_type == 'JSON' else bigquery_type_sql(f)}"
                          for f in bigquery_schema(name))
        self._query(f"CREATE TABLE `{ref}` (\n{cols}\n)\nOPTIONS(expiration_timestamp ="
                    " TIMESTAMP_ADD(CURRENT_TIMESTAMP(), INTERVAL 1 DAY))")
        if isinstance(rows, str):
            source = open(rows, "rb")  # streamed by the client's resumable upload
        else:
            source = io.BytesIO()
            pq.write_table(rows, source)
            source.seek(0)
        # APPEND into the table just created keeps its declared types (TRUNCATE
        # would take the file's); decimal128(38, 6) lands as BIGNUMERIC, exact.
        with source:
            self.client.load_table_from_file(source, ref, job_config=bigquery.LoadJobConfig(
                source_format=bigquery.SourceFormat.PARQUET,
                write_disposition=bigquery.WriteDisposition.WRITE_APPEND,
                create_disposition=bigquery.CreateDisposition.CREATE_NEVER,
                decimal_target_types=[bigquery.DecimalTargetType.BIGNUMERIC],
            )).result()
        return ref

    def _scope_predicate(self, name: str, scope: Scope | None, first: int) -> tuple[str, list]:
        """The scope as SQL with named parameters @p<first>, @p<first+1>, ..."""
        if scope is None:
            return "", []
        from google.cloud.bigquery import ScalarQueryParameter

        t, params = TABLES[name], []

        def bind(col: str, value) -> str:
            key = f"p{first + len(params)}"
            params.append(ScalarQueryParameter(key, _param_type(t.column(col)), value))
            return f"@{key}"

        return scope.predicate(t, bind), params

    def _statements(self, name: str, stage: str | None, scope_pred: str) -> list[str]:
        """This table's statements inside the publish transaction."""
        t, target = TABLES[name], self._t(name)
        cols = t.column_names
        values = [_value(t.column(c)) for c in cols]
        insert = (f"INSERT INTO {target} ({', '.join(f'`{c}`' for c in cols)})\n"
                  f"SELECT {', '.join(values)} FROM `{stage}` AS S")
        if t.write == "key":
            if stage is None:
                return []
            on = " AND ".join(f"T.`{k}` = S.`{k}`" for k in t.key)
            update = ", ".join(f"`{c}` = {v}" for c, v in zip(cols, values) if c not in t.key)
            return [f"MERGE {target} AS T USING `{stage}` AS S ON {on}\n"
                    f"WHEN MATCHED THEN UPDATE SET {update}\n"
                    f"WHEN NOT MATCHED THEN INSERT ({', '.join(f'`{c}`' for c in cols)})"
                    f" VALUES ({', '.join(values)})"]
        delete = f"DELETE FROM {target} WHERE {scope_pred if t.write == 'scope' else 'TRUE'}"
        return [delete] + ([insert] if stage else [])


def _array(name: str, values: list[str]):
    from google.cloud.bigquery import ArrayQueryParameter

    return ArrayQueryParameter(name, "STRING", values)


def _value(column: Column) -> str:
    # Staged JSON is text; 'round' keeps a float-like number from failing the run.
    if column.type == "JSON":
        return f"PARSE_JSON(S.`{column.name}`, wide_number_mode => 'round')"
    return f"S.`{column.name}`"


def _param_type(column: Column) -> str:
    type_ = BIGQUERY_TYPES[column.type][0]
    return "STRING" if type_ == "JSON" else type_


def _conform(t: Table, data: pa.Table, run_id: str, computed_at: dt.datetime) -> pa.Table:
    """``data`` with every column of ``t`` in order (missing ones NULL, run_id and
    computed_at filled in), after DuckDBWarehouse's checks on new rows (but
    the key's: ``_unique``)."""
    extra = set(data.column_names) - set(t.column_names)
    if extra:
        raise ValueError(f"{t.name}: columns not in the table: {sorted(extra)}")
    if "run_id" in data.column_names:
        other = pc.sum(pc.fill_null(pc.not_equal(data["run_id"], run_id), True)).as_py() or 0
        if other:
            raise ValueError(f"{t.name}: {other} new rows carry a run_id other than {run_id}")
    n = data.num_rows
    arrays = []
    schema = _stage_schema(t)
    for f in schema:
        if f.name in data.column_names:
            arrays.append(data[f.name].cast(f.type))
        elif f.name == "run_id":
            arrays.append(pa.array([run_id] * n, f.type))
        elif f.name == "computed_at":
            arrays.append(pa.array([computed_at] * n, f.type))
        else:
            arrays.append(pa.nulls(n, f.type))
    return pa.Table.from_arrays(arrays, schema=schema)


def _conform_files(t: Table, files: ParquetFiles, run_id: str, computed_at: dt.datetime,
                   target: str) -> int:
    """``files`` conformed into the one Parquet file ``target``, a batch at a
    time; returns the number of rows."""
    n = 0
    with pq.ParquetWriter(target, _stage_schema(t)) as out:
        for path in files.paths:
            with open_parquet(path) as f:
                _conform(t, f.schema_arrow.empty_table(), run_id, computed_at)  # even without rows
                for batch in f.iter_batches():
                    out.write_table(_conform(t, pa.Table.from_batches([batch]), run_id, computed_at))
                    n += batch.num_rows
    return n


def _stage_schema(t: Table) -> pa.Schema:
    """The Arrow schema of staged rows: NOT NULL is BigQuery's to enforce."""
    return pa.schema([f.with_nullable(True) for f in arrow_schema(t.name)])


def _unique(t: Table, rows: pa.Table) -> pa.Table:
    """``rows``, if no key occurs twice in them."""
    if t.write == "key" and rows.num_rows:
        counts = rows.select(list(t.key)).group_by(list(t.key)).aggregate([([], "count_all")])
        dup = counts.filter(pc.greater(counts["count_all"], 1))
        if dup.num_rows:
            key = {k: dup[k][0].as_py() for k in t.key}
            raise ValueError(f"{t.name}: key {key} appears twice in new rows")
    return rows
