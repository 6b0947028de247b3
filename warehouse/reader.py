"""Read-only SQL on either warehouse engine: the one query layer behind the
report, the alert checks, ``yibao query`` and ``yibao quality-docs``.

    from warehouse.reader import open_reader

    with open_reader("bigquery://PROJECT/DATASET") as r:  # or duckdb:///var/warehouse.duckdb
        r.rows("SELECT indicator_code, value FROM indicator_values"
               " WHERE region_code = ? ORDER BY indicator_code", ["640100"])

``rows(sql, params)`` takes SQL in DuckDB's dialect with ``?`` parameters
and bare table names, and returns a list of dicts with the same Python values
from both engines (warehouse/dialect.py holds every difference). A DuckDB
file is opened in report/sandbox.py's read-only sandbox; BigQuery is reached
with google-cloud-bigquery (Application Default Credentials, or
``YIBAO_BIGQUERY_ENDPOINT``: warehouse/bigquery_store.py), so reading needs
only BigQuery Data Viewer on the dataset and Job User on the project.
"""
from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from warehouse import dialect, duckdb_path


class Reader:
    """``rows`` and ``close``; a borrowed connection or client is left open."""

    engine = ""
    uri = ""

    def __init__(self, owned: bool):
        self._owned = owned

    def rows(self, sql: str, params: Sequence[Any] = ()) -> list[dict]:
        raise NotImplementedError

    def columns(self, table: str) -> set[str]:
        """The table's column names; empty when it does not exist (an older
        warehouse, or a table a later release adds)."""
        raise NotImplementedError

    def _close(self) -> None:
        raise NotImplementedError

    def close(self) -> None:
        if self._owned:
            self._owned = False
            self._close()

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class DuckDBReader(Reader):
    engine = "duckdb"

    def __init__(self, con, owned: bool = False, uri: str = ""):
        super().__init__(owned)
        self.con, self.uri = con, uri

    def rows(self, sql: str, params: Sequence[Any] = ()) -> list[dict]:
        cur = self.con.execute(sql, list(params))
        names = [d[0] for d in cur.description]
        found = [dict(zip(names, r)) for r in cur.fetchall()]
        for name, type_, *_ in cur.description:
            if str(type_) == "JSON":  # as BigQuery's: dialect.json_canonical
                for row in found:
                    row[name] = dialect.json_canonical(row[name])
        return found

    def columns(self, table: str) -> set[str]:
        return {r["column_name"] for r in self.rows(
            "SELECT column_name FROM information_schema.columns WHERE table_name = ?", [table])}

    def _close(self) -> None:
        self.con.close()


class Result:
    """A BigQuery result: column names, BigQuery types, rows as DuckDB's values."""

    def __init__(self, names: list[str], types: list[str], rows: list[tuple]):
        self.names, self.types, self.rows = names, types, rows


class BigQueryReader(Reader):
    engine = "bigquery"

    def __init__(self, project: str, dataset: str, client=None):
        from warehouse.bigquery_store import make_client

        super().__init__(owned=client is None)
        self.project, self.dataset = project, dataset
        self.ref = f"{project}.{dataset}"
        self.uri = f"bigquery://{project}/{dataset}"
        self.client = client or make_client(project)

    def rows(self, sql: str, params: Sequence[Any] = ()) -> list[dict]:
        result = self.query(dialect.to_bigquery(sql, self.ref), dialect.bigquery_params(params))
        return [dict(zip(result.names, r)) for r in result.rows]

    def columns(self, table: str) -> set[str]:
        # The tables API, not INFORMATION_SCHEMA: no query job (nor its 10 MB
        # minimum bill), and bqemulator's COLUMNS view breaks on our descriptions.
        from google.api_core.exceptions import NotFound

        try:
            return {f.name for f in self.client.get_table(f"{self.ref}.{table}").schema}
        except NotFound:
            return set()

    def _config(self, **kwargs):
        from google.cloud import bigquery

        # The dataset is the default one: an analyst writes FROM indicator_values.
        return bigquery.QueryJobConfig(default_dataset=self.ref, use_legacy_sql=False, **kwargs)

    def statement_type(self, sql: str) -> str:
        """SELECT, INSERT, SCRIPT, … of BigQuery SQL, from a dry run (nothing runs)."""
        job = self.client.query(sql, job_config=self._config(dry_run=True,
                                                              use_query_cache=False))
        return job.statement_type or ""

    def query(self, sql: str, params: Sequence = (), max_rows: int | None = None) -> Result:
        """BigQuery SQL run to completion (its first ``max_rows`` rows fetched);
        values as DuckDB gives them."""
        result = self.client.query(sql, job_config=self._config(
            query_parameters=list(params))).result(max_results=max_rows)
        fields = list(result.schema or [])
        names = [f.name for f in fields]
        types = [f.field_type for f in fields]
        return Result(names, types, [tuple(dialect.from_bigquery(v, t)
                                           for v, t in zip(row.values(), types))
                                     for row in result])

    def _close(self) -> None:
        self.client.close()


def open_reader(target: Any) -> Reader:
    """A Reader on ``target``: a warehouse URI or DuckDB path (opened here,
    closed by ``close``), or a Reader, DuckDB connection, DuckDBWarehouse or
    BigQueryWarehouse (borrowed: the caller closes it)."""
    if isinstance(target, Reader):
        if isinstance(target, BigQueryReader):
            return BigQueryReader(target.project, target.dataset, target.client)
        return DuckDBReader(target.con, uri=target.uri)
    if hasattr(target, "client") and hasattr(target, "dataset"):  # BigQueryWarehouse
        return BigQueryReader(target.project, target.dataset, target.client)
    if hasattr(target, "con"):  # DuckDBWarehouse
        return DuckDBReader(target.con)
    if not isinstance(target, str | Path):  # a DuckDB connection
        return DuckDBReader(target)
    uri = str(target)
    if uri.startswith("bigquery://"):
        from pipelines.errors import UsageError
        from warehouse import check_uri
        from warehouse.bigquery_store import parse_uri

        try:
            project, dataset = parse_uri(check_uri(uri))
        except ValueError as e:
            raise UsageError(f"--warehouse {uri}: {e}") from None
        return BigQueryReader(project, dataset)
    path = duckdb_path(uri)
    if not os.path.isfile(path):
        from pipelines.errors import UsageError

        raise UsageError(f"no warehouse at {path} (from --warehouse {uri}) — run yibao nightly"
                         " first, or point --warehouse at an existing .duckdb file")
    from report.sandbox import connect  # the read-only sandbox (imported late: report imports us)

    return DuckDBReader(connect(path), owned=True, uri=uri)


def bigquery_failure(e: BaseException) -> str | None:
    """One line for a BigQuery failure an operator can act on (no access, no
    credentials, a missing dataset or table, a bad statement), else None."""
    from google.api_core import exceptions as api
    from google.auth import exceptions as auth

    if isinstance(e, auth.DefaultCredentialsError | auth.RefreshError):
        return ("no Google credentials for BigQuery — run gcloud auth application-default"
                " login, or run where a service account is attached")
    if isinstance(e, api.GoogleAPICallError):
        # errors[0]["message"]: the server's sentence, without the job's reason/location tail.
        first = (e.errors or [{}])[0]
        text = first.get("message") if isinstance(first, dict) else None
        text = " ".join((text or e.message or str(e)).split())
        if isinstance(e, api.Forbidden):
            text += (" — reading needs BigQuery Data Viewer on the dataset and BigQuery Job"
                     " User on the project (deploy/RUNBOOK.md)")
        return text
    return None
