"""The Avro data contract (DATA_CONTRACT.md): one ``.avsc`` per stream.

Everything that needs a schema — the generator, the decoder, the
validation suites, the Pub/Sub fingerprint check — gets it from here, so
the ``.avsc`` files stay the single source of truth.  Each schema is
parsed once (``functools.cache``).
"""
from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from pathlib import Path

import fastavro
import pyarrow as pa
from fastavro.schema import fingerprint, to_parsing_canonical_form

SCHEMA_DIR = Path(__file__).resolve().parent

#: Stream name -> (business key columns, event-time column for streaming).
#: contribution is keyed by event_id (each record is one payment);
#: settlement_list is not versioned (every list counts).
STREAMS: dict[str, tuple[tuple[str, ...], str]] = {
    "enrolment": (("psn_no", "insutype"), "event_time"),
    "contribution": (("event_id",), "clct_time"),
    "settlement": (("setl_id",), "setl_time"),
    "settlement_list": (("event_id",), "upload_time"),
    "filing": (("case_id",), "completed_time"),
}
STREAM_NAMES = tuple(STREAMS)

MONEY = pa.decimal128(16, 2)
TIMESTAMP = pa.timestamp("ms", tz="UTC")


@dataclass(frozen=True)
class StreamSchema:
    stream: str
    avro: dict  # the raw JSON schema
    parsed: dict  # fastavro-parsed (named types resolved)
    arrow: pa.Schema
    business_key: tuple[str, ...]
    event_time_field: str

    @property
    def fingerprint(self) -> str:
        """CRC-64-AVRO (Rabin) fingerprint of the canonical form, hex: the
        Pub/Sub ``schema`` attribute."""
        return fingerprint(to_parsing_canonical_form(self.parsed), "CRC-64-AVRO")

    @property
    def table(self) -> pa.Schema:
        """The normalised stream table (docs/DESIGN.md): the contract columns
        plus provenance, ``_source`` (file or message id) and ``_index``."""
        return self.arrow.append(pa.field("_source", pa.string())).append(
            pa.field("_index", pa.int64()))

    @property
    def field_names(self) -> list[str]:
        return [f["name"] for f in self.avro["fields"]]

    @property
    def money_fields(self) -> list[str]:
        return [f.name for f in self.arrow if f.type == MONEY]


def _arrow_type(avro_type) -> tuple[pa.DataType, bool]:
    """Arrow type of an Avro field type, and whether it is nullable."""
    if isinstance(avro_type, list):  # ["null", T]
        inner = [t for t in avro_type if t != "null"]
        return _arrow_type(inner[0])[0], True
    if isinstance(avro_type, dict):
        logical = avro_type.get("logicalType")
        if logical == "timestamp-millis":
            return TIMESTAMP, False
        if logical == "date":
            return pa.date32(), False
        if logical == "decimal":
            return pa.decimal128(avro_type["precision"], avro_type["scale"]), False
        if avro_type["type"] == "array":
            return pa.list_(_arrow_type(avro_type["items"])[0]), False
        return _arrow_type(avro_type["type"])
    return {
        "string": pa.string(),
        "int": pa.int32(),
        "long": pa.int64(),
        "boolean": pa.bool_(),
        "double": pa.float64(),
        "bytes": pa.binary(),
    }[avro_type], False


@functools.cache
def load(stream: str) -> StreamSchema:
    if stream not in STREAMS:
        raise KeyError(f"unknown stream {stream!r}; expected one of {STREAM_NAMES}")
    raw = json.loads((SCHEMA_DIR / f"{stream}.avsc").read_text(encoding="utf-8"))
    fields = []
    for f in raw["fields"]:
        typ, nullable = _arrow_type(f["type"])
        fields.append(pa.field(f["name"], typ, nullable=nullable))
    key, event_field = STREAMS[stream]
    return StreamSchema(
        stream=stream,
        avro=raw,
        parsed=fastavro.parse_schema(raw, _write_hint=False),
        arrow=pa.schema(fields),
        business_key=key,
        event_time_field=event_field,
    )


def all_schemas() -> dict[str, StreamSchema]:
    return {s: load(s) for s in STREAM_NAMES}
