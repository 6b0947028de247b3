"""The warehouse (WAREHOUSE.md): one table definition, idempotent writers.

``open_warehouse(uri)`` picks the store from a URI. Everything after
``duckdb://`` is a file path, so:

- ``duckdb:///abs/path.duckdb`` -> ``/abs/path.duckdb`` (absolute);
- ``duckdb://relative/path.duckdb`` -> ``relative/path.duckdb`` under the
  current directory;
- ``duckdb://`` or no URI -> ``var/warehouse.duckdb`` under the current
  directory; ``duckdb://:memory:`` -> an in-memory database.

``bigquery://PROJECT/DATASET`` is not implemented yet; it is refused. The
BigQuery DDL and SchemaFields are generated (warehouse/tables.py) for
deployment.
"""

from urllib.parse import unquote

from warehouse.duckdb_store import DEFAULT_PATH, DuckDBWarehouse
from warehouse.scope import Scope

DEFAULT_URI = f"duckdb://{DEFAULT_PATH}"

__all__ = ["DEFAULT_URI", "DuckDBWarehouse", "Scope", "open_warehouse"]


def open_warehouse(uri: str | None = None) -> DuckDBWarehouse:
    """The warehouse at ``uri``; call ``ensure_schema`` before writing."""
    uri = uri or DEFAULT_URI
    scheme, sep, rest = uri.partition("://")
    if sep and scheme == "duckdb":
        return DuckDBWarehouse(unquote(rest) or DEFAULT_PATH)
    raise ValueError(
        f"unsupported warehouse URI {uri!r}: use duckdb:///abs/path.duckdb or"
        " duckdb://relative/path.duckdb (bigquery:// is not implemented yet)"
    )
