"""Derived columns the rules read: business dates of timestamps.

Defined once here and used twice — by the compiler (``verdict_sql`` adds
them before evaluating the rules) and to build the pandas DataFrame Great
Expectations validates (``ge_frame``, computed by the same DuckDB SQL) — so
both paths see the same Asia/Shanghai dates.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass

import duckdb
import pyarrow as pa

import schemas
from transforms.timeutil import business_date_sql


@dataclass(frozen=True)
class Derived:
    name: str
    source: str  # the contract column it is computed from
    sql: str  # DuckDB expression over the contract columns


def _business_date(name: str, column: str) -> Derived:
    return Derived(name, column, business_date_sql(f'"{column}"'))


DERIVED: dict[str, tuple[Derived, ...]] = {
    "enrolment": (_business_date("_event_date", "event_time"),),
    "settlement": (_business_date("_setl_date", "setl_time"),),
    "filing": (),
    "contribution": (),
    "settlement_list": (),
}


def with_derived_sql(stream: str, relation: str) -> str:
    """SELECT every column of ``relation`` plus the stream's derived columns."""
    extra = "".join(f', {d.sql} AS "{d.name}"' for d in DERIVED[stream])
    return f"SELECT *{extra} FROM {relation}"


def _duckdb_type(t: pa.DataType) -> str:
    if pa.types.is_decimal(t):
        return f"DECIMAL({t.precision}, {t.scale})"
    if pa.types.is_timestamp(t):
        return "TIMESTAMPTZ"
    if pa.types.is_list(t):
        return _duckdb_type(t.value_type) + "[]"
    return {pa.string(): "VARCHAR", pa.date32(): "DATE", pa.int32(): "INTEGER",
            pa.int64(): "BIGINT", pa.bool_(): "BOOLEAN", pa.float64(): "DOUBLE"}[t]


def ge_frame(stream: str, data):
    """The pandas DataFrame Great Expectations validates: the contract columns
    of ``data`` (an Arrow table or a pandas DataFrame) cast to their contract
    types, plus the derived columns, in the input's row order.  Going through
    Arrow keeps money exact (``Decimal`` objects; DuckDB's ``.df()`` would give
    floats) and dates as ``datetime.date``."""
    if isinstance(data, pa.Table):
        table = data
    else:
        with warnings.catch_warnings():  # pyarrow reads tz-aware columns through a deprecated pandas path
            warnings.filterwarnings("ignore", message="Series.values returning an ndarray")
            table = pa.Table.from_pandas(data, preserve_index=False)
    fields = [f for f in schemas.load(stream).arrow if f.name in table.column_names]
    casts = ", ".join(f'CAST("{f.name}" AS {_duckdb_type(f.type)}) AS "{f.name}"' for f in fields)
    con = duckdb.connect()
    try:
        con.register("_input", table)
        # insertion order is preserved (DuckDB's default), so row positions match the input
        return con.sql(with_derived_sql(stream, f"(SELECT {casts} FROM _input)")).to_arrow_table().to_pandas()
    finally:
        con.close()
