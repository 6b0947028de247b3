"""Where DuckDB and BigQuery differ for readers: the one place that knows.

The report, the alert checks and ``yibao quality-docs`` write their SQL once,
in DuckDB's dialect with ``?`` parameters and bare table names.
:func:`to_bigquery` turns that text into BigQuery's with sqlglot (a
maintained SQL transpiler): tables qualified as ``project.dataset.table``
(``information_schema.columns`` becomes the dataset's
``INFORMATION_SCHEMA.COLUMNS``), ``?`` -> ``@p0, @p1, …`` named
parameters, functions and NULL ordering (DuckDB sorts NULLs last,
BigQuery first: sqlglot writes ``NULLS LAST`` out) translated.

Values coming back are made what DuckDB gives (:func:`from_bigquery`):
BIGNUMERIC at the warehouse's 6 places; JSON from both engines as one
canonical text (:func:`json_canonical`). :func:`duckdb_text`
writes a value as DuckDB's ``CAST(… AS VARCHAR)`` does, so ``yibao query
--format csv`` prints the same text from both engines.
"""
from __future__ import annotations

import datetime as dt
import functools
import json
import logging
import math
from decimal import Decimal
from typing import Any

# sqlglot warns on stderr about syntax it passes through as is: not for users.
logging.getLogger("sqlglot").setLevel(logging.ERROR)

SCALE = Decimal("0.000001")  # DECIMAL(38,6) / BIGNUMERIC(38, 6): warehouse/tables.py


@functools.lru_cache(maxsize=512)
def to_bigquery(sql: str, dataset_ref: str) -> str:
    """``sql`` (DuckDB dialect, ``?`` parameters, bare table names) as BigQuery
    SQL on the dataset ``dataset_ref`` (``project.dataset``)."""
    import sqlglot
    from sqlglot import exp

    tree = sqlglot.parse_one(sql, read="duckdb")
    ctes = {c.alias_or_name.lower() for c in tree.find_all(exp.CTE)}
    counter = iter(range(1_000_000))

    def rewrite(node):
        if isinstance(node, exp.Placeholder):
            return exp.Parameter(this=exp.var(f"p{next(counter)}"))
        if isinstance(node, exp.Table) and isinstance(node.this, exp.Identifier):
            name, db = node.name, node.db.lower()
            if db == "information_schema":
                path = f"{dataset_ref}.INFORMATION_SCHEMA.{name.upper()}"
            elif not db and name.lower() not in ctes:
                path = f"{dataset_ref}.{name}"
            else:
                return node
            qualified = exp.Table(this=exp.Identifier(this=path, quoted=True))
            alias = node.args.get("alias")
            if alias is not None:
                qualified.set("alias", alias)
            return qualified
        return node

    return tree.transform(rewrite).sql(dialect="bigquery")


def bigquery_statement_count(sql: str) -> int | None:
    """How many statements BigQuery SQL holds, by sqlglot's parse; None when
    sqlglot cannot parse it (BigQuery may still accept it)."""
    import sqlglot

    try:
        return len([t for t in sqlglot.parse(sql, read="bigquery") if t is not None])
    except sqlglot.errors.SqlglotError:
        return None


def bigquery_type(value: Any) -> str:
    """The BigQuery parameter type of a Python value."""
    if isinstance(value, bool):
        return "BOOL"
    if isinstance(value, int):
        return "INT64"
    if isinstance(value, float):
        return "FLOAT64"
    if isinstance(value, Decimal):
        return "BIGNUMERIC"
    if isinstance(value, dt.datetime):
        return "TIMESTAMP" if value.tzinfo else "DATETIME"
    if isinstance(value, dt.date):
        return "DATE"
    return "STRING"  # str, and None (a typed NULL is needed; no query here passes one)


def bigquery_params(params) -> list:
    """``?`` values in order -> ScalarQueryParameter @p0, @p1, …"""
    from google.cloud.bigquery import ScalarQueryParameter

    return [ScalarQueryParameter(f"p{i}", bigquery_type(v), v) for i, v in enumerate(params)]


def json_canonical(value: Any) -> str | None:
    """A JSON column's value as one text from both engines: compact, keys
    sorted (DuckDB returns the text as stored, BigQuery a parsed document)."""
    if value is None:
        return None
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            return value
    return json.dumps(value, ensure_ascii=False, sort_keys=True, separators=(",", ":"))


def from_bigquery(value: Any, field_type: str | None) -> Any:
    """A BigQuery result value as the DuckDB reader returns the same
    warehouse column: JSON as canonical text, an exact decimal at the
    warehouse's 6 places (BigQuery gives 0.953, the emulator 0.953000000,
    DuckDB 0.953000)."""
    if value is None:
        return None
    if field_type == "JSON" or isinstance(value, dict | list) and field_type != "RECORD":
        return json_canonical(value)
    if isinstance(value, Decimal):
        fixed = value.quantize(SCALE) if value.is_finite() else value
        return fixed if fixed == value else value  # never round a computed decimal
    return value


def duckdb_text(value: Any) -> str | None:
    """``value`` as DuckDB's ``CAST(value AS VARCHAR)`` writes it (with the
    TimeZone UTC of report/sandbox.py); None stays None."""
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return repr(value)  # shortest round trip, as DuckDB: 0.1, 1e-05, 1e+20, nan, inf
    if isinstance(value, dt.datetime):
        if value.tzinfo is not None:
            value = value.astimezone(dt.UTC)
        text = value.strftime("%Y-%m-%d %H:%M:%S")
        if value.microsecond:
            text += f".{value.microsecond:06d}".rstrip("0")
        return text + ("+00" if value.tzinfo is not None else "")
    if isinstance(value, dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, list):
        return "[" + ", ".join("NULL" if v is None else duckdb_text(v) for v in value) + "]"
    if isinstance(value, dict):
        inner = ", ".join(f"'{k}': {'NULL' if v is None else duckdb_text(v)}"
                          for k, v in value.items())
        return "{" + inner + "}"
    if isinstance(value, bytes):
        return "".join(chr(b) if 32 <= b < 127 and b != 92 else f"\\x{b:02X}" for b in value)
    return str(value)


def json_text(value: Any, is_json: bool = False) -> str:
    """``value`` as a JSON value, as DuckDB's ``to_json`` writes it for
    ``yibao query --format json``: exact decimals as numbers digit for digit,
    dates and instants as their text, a JSON column's text as it is."""
    if value is None:
        return "null"
    if is_json and isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, Decimal) and value.is_finite():
        return str(value)
    if isinstance(value, float):
        return repr(value) if math.isfinite(value) else {"nan": "NaN"}.get(
            repr(value), "Infinity" if value > 0 else "-Infinity")
    if isinstance(value, dt.date | dt.time):
        return json.dumps(duckdb_text(value))
    if isinstance(value, list):
        return "[" + ",".join(json_text(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ",".join(f"{json.dumps(str(k), ensure_ascii=False)}:{json_text(v)}"
                              for k, v in value.items()) + "}"
    if isinstance(value, int):
        return str(value)
    return json.dumps(str(value), ensure_ascii=False)
