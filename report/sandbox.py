"""A DuckDB connection that can read the warehouse and nothing else.

``yibao query`` runs SQL typed by analysts, and ``yibao report`` reads with
the same connection. The engine itself is the sandbox (DuckDB's own levers,
not a SQL filter we would have to keep complete):

- ``access_mode = READ_ONLY``: no write to the warehouse, and no ``ATTACH
  ':memory:'`` (the first step of the ATTACH/DETACH trick);
- ``enable_external_access = false``: no file or network access beyond the
  warehouse file itself: no ``COPY … TO``, ``EXPORT DATABASE``, ``ATTACH``
  of another file, ``read_csv``/``read_blob``/``read_parquet``/``glob`` of
  the quarantine or staging folders, ``INSTALL``, secrets;
- extensions neither auto-installed, auto-loaded nor community ones allowed
  (json, parquet and icu are built into the wheel);
- ``lock_configuration = true`` once the time zone is set: no ``SET`` or
  ``RESET`` can undo any of the above.

:func:`refusal` adds a statement-type allowlist on top, only to explain a
refusal in one line (and because each prompt statement gets a fresh
connection, so ``SET``/temporary objects could not carry over anyway).
"""

from __future__ import annotations

import duckdb

from warehouse.duckdb_store import NO_DOWNLOADS

SANDBOX = {
    "access_mode": "READ_ONLY",
    "enable_external_access": False,
    **NO_DOWNLOADS,
    "allow_community_extensions": False,
    "allow_unsigned_extensions": False,
}

#: Statement types that only read: SELECT covers WITH, FROM-first, VALUES,
#: DESCRIBE, SHOW, SUMMARIZE; PRAGMA and CALL cover table_info, show_tables, ….
ALLOWED = frozenset(
    {
        duckdb.StatementType.SELECT,
        duckdb.StatementType.EXPLAIN,
        duckdb.StatementType.PRAGMA,
        duckdb.StatementType.CALL,
    }
)
_FILES = "yibao query writes no files from SQL — use --format csv|json and --out FILE"
_WHY = {
    duckdb.StatementType.COPY: _FILES,
    duckdb.StatementType.EXPORT: _FILES,
    duckdb.StatementType.COPY_DATABASE: _FILES,
    duckdb.StatementType.ATTACH: "yibao query reads only the warehouse it opened",
    duckdb.StatementType.DETACH: "yibao query reads only the warehouse it opened",
    duckdb.StatementType.LOAD: "extensions cannot be installed or loaded"
    " (json, parquet and icu are built in)",
    duckdb.StatementType.SET: "settings are fixed in yibao query",
    duckdb.StatementType.VARIABLE_SET: "settings are fixed in yibao query",
}
_VERB = {
    duckdb.StatementType.LOAD: "INSTALL/LOAD",
    duckdb.StatementType.SET: "SET/RESET/USE",
    duckdb.StatementType.VARIABLE_SET: "SET VARIABLE",
    duckdb.StatementType.COPY_DATABASE: "COPY FROM DATABASE",
    duckdb.StatementType.MERGE_INTO: "MERGE",
    duckdb.StatementType.CREATE_FUNC: "CREATE FUNCTION",
}
_READ_ONLY = "the warehouse is read-only here; only the pipelines write it"


def connect(path: str) -> duckdb.DuckDBPyConnection:
    """The warehouse at ``path``, read-only, with files, network and
    extensions off and the configuration locked; instants shown in UTC."""
    con = duckdb.connect(path, read_only=True, config=dict(SANDBOX))
    try:
        # TimeZone exists only once icu is loaded, so it cannot go in config.
        con.execute("SET TimeZone = 'UTC'")
        con.execute("SET lock_configuration = true")
    except BaseException:
        con.close()
        raise
    return con


def refusal(statement) -> str | None:
    """Why ``statement`` (from ``con.extract_statements``) may not run here,
    or None when it only reads."""
    if statement.type in ALLOWED:
        return None
    kind = statement.type
    verb = _VERB.get(kind, kind.name.replace("_", " "))
    return f"{verb} refused: {_WHY.get(kind, _READ_ONLY)}"
