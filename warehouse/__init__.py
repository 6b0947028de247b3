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
from warehouse.scope import Scope

if TYPE_CHECKING:
    from warehouse.bigquery_store import BigQueryWarehouse

DEFAULT_URI = f"duckdb:///{DEFAULT_PATH}"

__all__ = ["DEFAULT_URI", "DuckDBWarehouse", "Scope", "duckdb_path", "open_warehouse"]


def duckdb_path(uri: str | None) -> str:
    """The DuckDB file a URI names (see the module docstring)."""
    uri = str(uri or DEFAULT_URI)
    if uri.startswith("bigquery://"):
        raise ValueError(f"{uri!r} is a BigQuery warehouse, not a DuckDB file")
    if uri.startswith("duckdb:///"):
        return uri.removeprefix("duckdb:///") or DEFAULT_PATH
    if uri.startswith("duckdb://"):
        return uri.removeprefix("duckdb://") or DEFAULT_PATH
    return uri


def open_warehouse(uri: str | None = None) -> "DuckDBWarehouse | BigQueryWarehouse":
    """The warehouse at ``uri`` (a DuckDBWarehouse or a BigQueryWarehouse, same
    methods); call ``ensure_schema`` before writing."""
    if str(uri or "").startswith("bigquery://"):
        # Imported here: DuckDB users do not pay for the BigQuery client.
        from warehouse.bigquery_store import BigQueryWarehouse

        return BigQueryWarehouse.from_uri(uri)
    return DuckDBWarehouse(duckdb_path(uri))
