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
import pyarrow.compute as pc

import schemas


def _cols(stream: str, alias: str = "") -> str:
    prefix = f"{alias}." if alias else ""
    return ", ".join(f'{prefix}"{c}"' for c in schemas.load(stream).field_names)


def resolve_deliveries(con: duckdb.DuckDBPyConnection, stream: str, raw: str) -> dict:
    """Creates table ``{stream}_accepted`` from relation ``raw``; returns the
    number of identical duplicates and the conflicting copies (Arrow, with
    _source and _index).  Only event_ids delivered more than once are ranked,
    so the common case is one hash aggregate and an anti-join."""
    con.execute(f"""CREATE OR REPLACE TEMP TABLE {stream}_copies AS
        SELECT *, row_number() OVER (PARTITION BY event_id ORDER BY _source, _index) AS _copy
        FROM {raw}
        WHERE event_id IN (SELECT event_id FROM {raw} GROUP BY event_id HAVING count(*) > 1)""")
    con.execute(f"""CREATE OR REPLACE TEMP TABLE {stream}_accepted AS
        SELECT * FROM {raw} WHERE event_id NOT IN (SELECT event_id FROM {stream}_copies)
        UNION ALL
        SELECT * EXCLUDE (_copy) FROM {stream}_copies WHERE _copy = 1""")
    later = con.sql(
        f"""SELECT r.* EXCLUDE (_copy),
                   struct_pack({_cols(stream, 'r')}) IS NOT DISTINCT FROM
                   struct_pack({_cols(stream, 'w')}) AS _identical
            FROM {stream}_copies r JOIN {stream}_copies w
              ON r.event_id = w.event_id AND w._copy = 1
            WHERE r._copy > 1
            ORDER BY r._source, r._index"""
    ).to_arrow_table()
    identical = pc.fill_null(later.column("_identical"), False)
    con.execute(f"DROP TABLE {stream}_copies")
    return {
        "duplicates": pc.sum(identical).as_py() or 0,
        "conflicts": later.filter(pc.invert(identical)).drop_columns(["_identical"]),
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
