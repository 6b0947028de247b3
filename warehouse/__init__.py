"""The warehouse (WAREHOUSE.md): one table definition, idempotent writers.

Warehouse URIs (the one parser; SQLAlchemy's convention, which data
engineers know from ``sqlite:///``):

- ``duckdb:///var/warehouse.duckdb`` -> ``var/warehouse.duckdb`` relative to
  the working directory (the default);
- ``duckdb:////abs/path.duckdb`` -> ``/abs/path.duckdb``;
- a plain file path is taken as is;
- ``bigquery://PROJECT/DATASET`` is BigQuery.
"""

from warehouse.duckdb_store import DEFAULT_PATH, DuckDBWarehouse
from warehouse.scope import Scope

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


def open_warehouse(uri: str | None = None) -> DuckDBWarehouse:
    """The warehouse at ``uri``; call ``ensure_schema`` before writing."""
    return DuckDBWarehouse(duckdb_path(uri))
