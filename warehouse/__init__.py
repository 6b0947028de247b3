"""The warehouse (WAREHOUSE.md): one table definition, idempotent writers.

Warehouse URIs (the one parser; SQLAlchemy's convention, which data
engineers know from ``sqlite:///``):

- ``duckdb:///var/warehouse.duckdb`` -> ``var/warehouse.duckdb`` relative to
  the working directory (the default);
- ``duckdb:////abs/path.duckdb`` -> ``/abs/path.duckdb``;
- a plain file path is taken as is;
- ``bigquery://PROJECT/DATASET`` is BigQuery.
"""

from typing import TYPE_CHECKING

from warehouse.duckdb_store import DEFAULT_PATH, DuckDBWarehouse
from warehouse.files import ParquetFiles
from warehouse.scope import Scope

if TYPE_CHECKING:
    from warehouse.bigquery_store import BigQueryWarehouse

DEFAULT_URI = f"duckdb:///{DEFAULT_PATH}"

__all__ = ["DEFAULT_URI", "DuckDBWarehouse", "ParquetFiles", "Scope", "check_uri", "duckdb_path", "open_warehouse"]


def duckdb_path(uri: str | None) -> str:
    """The DuckDB file a URI names (see the module docstring)."""
    uri = str(uri or DEFAULT_URI)
    if uri.startswith("bigquery://"):
        raise ValueError(f"{uri!r} is a BigQuery warehouse, not a DuckDB file")
    if uri.startswith("duckdb:///"):
        return uri.removeprefix("duckdb:///") or DEFAULT_PATH
    if uri.startswith("duckdb://"):
        return uri.removeprefix("duckdb://") or DEFAULT_PATH
    if "://" in uri:  # postgres://x/y once created a DuckDB file named ./postgres:/x/y
        from pipelines.errors import UsageError

        raise UsageError(f"--warehouse {uri}: unknown scheme {uri.split('://')[0]!r}; use "
                         "duckdb:///path/file.duckdb or bigquery://PROJECT/DATASET")
    return uri


def check_uri(uri: str) -> str:
    """``uri`` unchanged if it names a warehouse this package can open."""
    if str(uri).startswith("bigquery://"):
        if len(str(uri).removeprefix("bigquery://").strip("/").split("/")) != 2:
            from pipelines.errors import UsageError

            raise UsageError(f"--warehouse {uri}: write bigquery://PROJECT/DATASET")
    else:
        duckdb_path(uri)
    return uri


def open_warehouse(uri: str | None = None) -> "DuckDBWarehouse | BigQueryWarehouse":
    """The warehouse at ``uri`` (a DuckDBWarehouse or a BigQueryWarehouse, same
    methods); call ``ensure_schema`` before writing."""
    if str(uri or "").startswith("bigquery://"):
        check_uri(uri)
        # Imported here: DuckDB users do not pay for the BigQuery client.
        from warehouse.bigquery_store import BigQueryWarehouse

        return BigQueryWarehouse.from_uri(uri)
    return DuckDBWarehouse(duckdb_path(uri))
