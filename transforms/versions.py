"""Delivery semantics (DATA_CONTRACT.md): duplicates, conflicting copies,
as_of and the latest version per business key — as DuckDB SQL over the
normalised stream table (``docs/DESIGN.md``).

Duplicates of one event_id: the copy with the smallest (_source, _index)
wins (source compared by code points — DuckDB compares UTF-8 bytes, which
orders like code points); an identical later copy is a duplicate, a
different one a conflicting duplicate that goes to the dead letters.
"""
from __future__ import annotations

import datetime as dt
import io

import duckdb
import fastavro
import pyarrow as pa

import schemas


def _cols(stream: str, alias: str = "") -> str:
    prefix = f"{alias}." if alias else ""
    return ", ".join(f'{prefix}"{c}"' for c in schemas.load(stream).field_names)


def resolve_deliveries(con: duckdb.DuckDBPyConnection, stream: str, raw: str) -> dict:
    """Creates table ``{stream}_accepted`` from relation ``raw``; returns
    counts and the conflicting copies (an Arrow table with _source, _index)."""
    con.execute(
        f"""CREATE OR REPLACE TEMP TABLE {stream}_ranked AS
        SELECT *, row_number() OVER (PARTITION BY event_id ORDER BY _source, _index) AS _copy
        FROM {raw}"""
    )
    con.execute(
        f"""CREATE OR REPLACE TEMP TABLE {stream}_accepted AS
        SELECT * EXCLUDE (_copy) FROM {stream}_ranked WHERE _copy = 1"""
    )
    later = con.sql(
        f"""SELECT r.* EXCLUDE (_copy),
                   struct_pack({_cols(stream, 'r')}) IS NOT DISTINCT FROM
                   struct_pack({_cols(stream, 'w')}) AS _identical
            FROM {stream}_ranked r JOIN {stream}_ranked w
              ON r.event_id = w.event_id AND w._copy = 1
            WHERE r._copy > 1
            ORDER BY r._source, r._index"""
    ).to_arrow_table()
    identical = later.column("_identical").to_pylist() if later.num_rows else []
    conflicts = later.filter(pa.array([not x for x in identical], pa.bool_())) if later.num_rows else later
    return {
        "duplicates": sum(identical),
        "conflicts": conflicts.drop_columns(["_identical"]) if later.num_rows else None,
    }


def latest_sql(stream: str, relation: str, as_of: dt.datetime, until: dt.date | None = None) -> str:
    """Latest version per business key among versions with event_time <=
    as_of (and, for stocks, whose event_time's business date <= ``until``);
    ties on event_time go to the greater event_id."""
    key = ", ".join(schemas.load(stream).business_key)
    cond = f"event_time <= TIMESTAMPTZ '{as_of.isoformat()}'"
    if until is not None:
        cond += f" AND CAST(event_time AT TIME ZONE 'Asia/Shanghai' AS DATE) <= DATE '{until.isoformat()}'"
    return f"""SELECT * FROM {relation} WHERE {cond}
        QUALIFY row_number() OVER (PARTITION BY {key} ORDER BY event_time DESC, event_id DESC) = 1"""


def encode_record(stream: str, row: dict) -> bytes:
    """A decoded record re-encoded as schemaless Avro with the contract:
    the quarantined bytes of a conflicting duplicate."""
    buf = io.BytesIO()
    fastavro.schemaless_writer(buf, schemas.load(stream).parsed,
                               {k: v for k, v in row.items() if not k.startswith("_")})
    return buf.getvalue()
