"""Avro object container files -> the normalised stream table (Arrow).

One file of a stream becomes Arrow record batches whose columns are exactly
``schemas.load(stream).arrow`` followed by ``_source`` (the path as given)
and ``_index`` (0-based record index in the file); whatever cannot be read
becomes a dead letter (DATA_CONTRACT.md "Delivery semantics"):

* The file cannot be opened, is not Avro (bad magic, damaged header), its
  codec is unsupported, or its writer schema cannot be resolved to the
  contract -> one dead letter for the whole file (source = path, payload =
  the whole file); none of its records is read.  Resolvability is decided
  from the header alone (``check_resolvable``), so a file without records
  is judged too.
* Otherwise blocks are read in order.  A block is intact when its count and
  size parse, its data is all there, its sync marker matches the header's
  and *every* record in it decodes to a valid contract value.  The records
  of the intact blocks before the first damaged one are emitted; the
  damaged block and everything after it is one dead letter (source =
  ``path#block=N``, N 0-based; payload = the raw bytes from that block's
  start to EOF).  A single undecodable record (decimal beyond
  decimal(16,2), invalid UTF-8, data shorter than the block's count, …)
  therefore damages its whole block: compressed block bytes cannot be split
  into good and bad records, and the contract reads only complete blocks.
  A file cut exactly at a block boundary looks complete (Avro has no
  trailer); damage that still decodes to valid values goes unnoticed.

Decoding speed (ARCHITECTURE.md): we parse the container framing ourselves
(two varints and a sync check per block) and hand the bytes of header +
intact blocks to a decoder, about ``BATCH_ROWS`` records at a time (bounded
memory).  If the writer schema is the contract (same canonical form and
logical types) and the codec is null/deflate/snappy, polars' built-in Avro
reader decodes them (≈15x fastavro + from_pylist); otherwise fastavro
decodes them with the contract as reader schema (Avro schema resolution)
and ``pa.Table.from_pylist`` builds the columns.  Both give the same table.
polars-avro and jetliner are faster but were rejected: on randomly damaged
blocks polars-avro can loop forever and jetliner can abort the process.
polars' reader is lenient in one way: a ``["null", T]`` union index other
than 0 reads as T, where fastavro rejects an index beyond the union.
"""
from __future__ import annotations

import functools
import io
import json
from collections.abc import Iterator
from dataclasses import dataclass

import apache_beam as beam
import fastavro
import numpy as np
import polars as pl
import pyarrow as pa
from apache_beam.io import fileio
from apache_beam.io.filesystem import CompressionTypes
from apache_beam.io.filesystems import FileSystems
from apache_beam.metrics import Metrics
from fastavro.schema import to_parsing_canonical_form

import schemas
from transforms.quarantine import DeadLetter, quarantine

__all__ = [
    "BATCH_ROWS",
    "DEAD_LETTERS",
    "DeadLetter",
    "DecodeAvroFile",
    "ReadStream",
    "SchemaMismatch",
    "check_resolvable",
    "decode_message",
    "iter_avro_batches",
    "quarantine",
    "read_avro_file",
    "table_schema",
]

MAGIC = b"Obj\x01"
SYNC_SIZE = 16
BATCH_ROWS = 65_536  # records per emitted batch (whole blocks, so a little more)
DEAD_LETTERS = "dead_letters"  # tag of the DoFn's dead-letter output

# Block codecs each decoder reads: polars' reader knows null/deflate/snappy;
# fastavro knows null/deflate/bzip2/xz with the standard library alone (snappy
# and zstandard would need cramjam / backports.zstd, not installed).
NATIVE_CODECS = {"null", "deflate", "snappy"}
FASTAVRO_CODECS = {"null", "deflate", "bzip2", "xz"}

# Avro's primitive promotions (writer type, reader type).
_PROMOTIONS = {
    ("int", "long"), ("int", "float"), ("int", "double"), ("long", "float"),
    ("long", "double"), ("float", "double"), ("string", "bytes"), ("bytes", "string"),
}
_READ_CHUNK = 1 << 24  # never ask the file for more than 16 MiB at once
_MAX_INFLATE = 1032  # deflate's maximum compression ratio

# Any error a decoder raises on damaged bytes.  Rust panics in polars surface
# as PanicException, a BaseException: caught too, so bad data never kills a worker.
_DECODE_ERRORS = (Exception, pl.exceptions.PanicException)


class SchemaMismatch(ValueError):
    """The writer schema cannot be resolved to the contract (reader) schema."""


class _Damaged(Exception):
    """The container framing is broken (truncated, bad sync, bad varint)."""


def table_schema(stream: str) -> pa.Schema:
    """Schema of the normalised stream table: the contract columns + provenance."""
    return schemas.load(stream).table


# --- schema resolution -------------------------------------------------------


@functools.cache
def _contract(stream: str) -> tuple[dict, dict, str]:
    """The contract as reader: parsed schema, its named types, canonical form."""
    names: dict = {}
    parsed = fastavro.parse_schema(schemas.load(stream).avro, names, _write_hint=False)
    return parsed, names, to_parsing_canonical_form(parsed)


def _type_name(t) -> str:
    return t["type"] if isinstance(t, dict) else t


def _logical(t) -> tuple:
    if not isinstance(t, dict):
        return (None, None, 0)
    return (t.get("logicalType"), t.get("precision"), t.get("scale", 0))


def check_resolvable(writer, reader, writer_names=None, reader_names=None, where="record"):
    """Raise SchemaMismatch unless data written with ``writer`` can always be
    read as ``reader`` (both fastavro-parsed).

    Avro's resolution rules, checked statically like Java's SchemaCompatibility:
    every branch of a writer union must resolve (so a nullable writer field
    cannot feed a required contract field); logical types (timestamp-millis,
    date, decimal precision/scale) must be equal, because reading e.g.
    decimal(16,4) bytes as decimal(16,2) would silently scale the amounts.
    """
    writer_names, reader_names = writer_names or {}, reader_names or {}
    if isinstance(writer, str):
        writer = writer_names.get(writer, writer)
    if isinstance(reader, str):
        reader = reader_names.get(reader, reader)

    def check(w, r, at):
        check_resolvable(w, r, writer_names, reader_names, at)

    if isinstance(writer, list):
        for branch in writer:
            check(branch, reader, where)
        return
    if isinstance(reader, list):
        for branch in reader:
            try:
                return check(writer, branch, where)
            except SchemaMismatch:
                continue
        raise SchemaMismatch(
            f"{where}: writer type {_type_name(writer)} matches no branch of "
            f"{[_type_name(b) for b in reader]}"
        )
    wt, rt = _type_name(writer), _type_name(reader)
    if wt != rt and (wt, rt) not in _PROMOTIONS:
        raise SchemaMismatch(f"{where}: writer type {wt} cannot be read as {rt}")
    if _logical(writer) != _logical(reader):
        raise SchemaMismatch(
            f"{where}: writer logical type {_logical(writer)} is not {_logical(reader)}"
        )
    if rt == "record":
        w_name, r_name = writer["name"].split(".")[-1], reader["name"].split(".")[-1]
        if w_name != r_name and w_name not in reader.get("aliases", []):
            raise SchemaMismatch(f"{where}: writer record {w_name} is not {r_name}")
        w_fields = {f["name"]: f for f in writer["fields"]}
        for field in reader["fields"]:
            names = [field["name"], *field.get("aliases", [])]
            w_field = next((w_fields[n] for n in names if n in w_fields), None)
            if w_field is not None:
                check(w_field["type"], field["type"], f"field {field['name']}")
            elif "default" not in field:
                raise SchemaMismatch(
                    f"field {field['name']}: missing in the writer schema and has no default"
                )
    elif rt == "array":
        check(writer["items"], reader["items"], f"{where}[]")
    elif rt == "map":
        check(writer["values"], reader["values"], f"{where}{{}}")
    elif rt == "enum":
        if not set(writer["symbols"]) <= set(reader["symbols"]) and "default" not in reader:
            raise SchemaMismatch(f"{where}: writer enum has symbols the reader lacks")
    elif rt == "fixed" and writer["size"] != reader["size"]:
        raise SchemaMismatch(f"{where}: fixed size {writer['size']} is not {reader['size']}")


# --- container framing -------------------------------------------------------


class _Tape:
    """Reads a binary file and keeps what it read until ``take()``, so the
    raw bytes of a header or block are at hand for quarantine."""

    def __init__(self, f, already_read: bytes = b""):
        self._f = f
        self._buf = bytearray(already_read)

    def read(self, n: int) -> bytes:
        start = len(self._buf)
        while len(self._buf) - start < n:
            chunk = self._f.read(min(n - (len(self._buf) - start), _READ_CHUNK))
            if not chunk:
                raise _Damaged(f"unexpected end of file ({n - len(self._buf) + start} bytes missing)")
            self._buf += chunk
        return bytes(self._buf[start:])

    def long(self, eof_ok: bool = False) -> int | None:
        """A zigzag varint; None at a clean end of file when ``eof_ok``."""
        result = shift = 0
        while shift < 70:
            byte = self._f.read(1)
            if not byte:
                if eof_ok and shift == 0:
                    return None
                raise _Damaged("unexpected end of file inside a varint")
            self._buf += byte
            result |= (byte[0] & 0x7F) << shift
            if byte[0] < 0x80:
                return (result >> 1) ^ -(result & 1)
            shift += 7
        raise _Damaged("malformed varint")

    def take(self) -> bytes:
        raw = bytes(self._buf)
        self._buf.clear()
        return raw

    def rest(self) -> bytes:
        """What was read but not taken, plus the rest of the file."""
        return self.take() + self._f.read()


@dataclass
class _Header:
    raw: bytes  # magic .. sync: prefixed to blocks to make a valid file for a decoder
    writer_schema: dict  # fastavro-parsed
    writer_names: dict
    codec: str
    sync: bytes


def _read_header(tape: _Tape, magic: bytes) -> _Header:
    """The header after the (already read) magic."""
    if magic != MAGIC:
        start = f"starts with {magic!r}" if magic else "empty file"
        raise _Damaged(f"not an Avro object container file ({start})")
    meta = {}
    try:
        while count := tape.long():
            if count < 0:  # negative count: a byte size follows
                count = -count
                tape.long()
            for _ in range(count):
                key = tape.read(tape.long()).decode("utf-8", "replace")
                meta[key] = tape.read(tape.long())
        sync = tape.read(SYNC_SIZE)
    except _Damaged as err:
        raise _Damaged(f"damaged Avro header: {err}") from None
    try:
        names: dict = {}
        writer = fastavro.parse_schema(json.loads(meta["avro.schema"]), names, _write_hint=False)
    except Exception as err:  # missing key, bad JSON, invalid schema
        raise _Damaged(f"no valid writer schema in the header ({err!r})") from None
    codec = meta.get("avro.codec", b"null").decode("utf-8", "replace")
    return _Header(tape.take(), writer, names, codec, sync)


@dataclass
class _Block:
    count: int
    raw: bytes  # count, size, data and sync, as in the file


def _read_block(tape: _Tape, sync: bytes) -> _Block | None:
    """The next block, None at a clean end of file; _Damaged if broken."""
    count = tape.long(eof_ok=True)
    if count is None:
        return None
    size = tape.long()
    if count < 0 or size < 0:
        raise _Damaged(f"invalid block header (count {count}, size {size})")
    if tape.read(size + SYNC_SIZE)[-SYNC_SIZE:] != sync:
        raise _Damaged("sync marker does not match the header's")
    return _Block(count, tape.take())


def _runs(tape: _Tape, sync: bytes, batch_rows: int) -> Iterator[tuple[list[_Block], tuple | None]]:
    """Runs of framed blocks of about ``batch_rows`` records, each with None,
    or for the last one (error, raw bytes to EOF) if the framing broke."""
    run, rows = [], 0
    while True:
        try:
            block = _read_block(tape, sync)
        except _Damaged as err:
            yield run, (str(err), tape.rest())
            return
        if block is None:
            if run:
                yield run, None
            return
        run.append(block)
        rows += block.count
        if rows >= batch_rows:
            yield run, None
            run, rows = [], 0


# --- decoders: header + blocks -> contract columns ---------------------------


def _decode_native(header: _Header, blocks: list[_Block], schema: schemas.StreamSchema) -> pa.Table:
    """polars' Avro reader; only for files written with the contract itself."""
    # polars allocates by a block's record count before decoding: a damaged
    # count (say 2**40) would abort the process.  A contract record is at least
    # one byte per field, and null/deflate/snappy expand at most 1032-fold.
    for block in blocks:
        if block.count > len(block.raw) * _MAX_INFLATE // len(schema.arrow) + 1:
            raise ValueError(f"record count {block.count} is impossible in {len(block.raw)} bytes")
    data = b"".join([header.raw, *(b.raw for b in blocks)])
    table = pl.read_avro(io.BytesIO(data)).to_arrow().cast(schema.arrow)
    for name in schema.money_fields:  # polars does not check decimal precision; Arrow does
        table.column(name).validate(full=True)
    return table


def _decode_fastavro(header: _Header, blocks: list[_Block], schema: schemas.StreamSchema) -> pa.Table:
    """fastavro with the contract as reader schema (Avro schema resolution)."""
    data = b"".join([header.raw, *(b.raw for b in blocks)])
    records = list(fastavro.reader(io.BytesIO(data), reader_schema=_contract(schema.stream)[0]))
    return pa.Table.from_pylist(records, schema=schema.arrow)


def _decode_checked(decode, header, blocks, schema) -> pa.Table:
    table = decode(header, blocks, schema)
    expected = sum(b.count for b in blocks)
    if table.num_rows != expected:
        raise ValueError(f"decoded {table.num_rows} records, the block headers say {expected}")
    return table


def _decode_intact(decode, header, blocks, schema) -> tuple[pa.Table | None, int, Exception | None]:
    """Decode a run of framed blocks: (table of the intact prefix, number of
    intact blocks, error of the first damaged block or None)."""
    if not blocks:
        return None, 0, None
    try:
        return _decode_checked(decode, header, blocks, schema), len(blocks), None
    except _DECODE_ERRORS:  # damaged data somewhere: find the first bad block
        pass
    tables = []
    for i, block in enumerate(blocks):
        try:
            tables.append(_decode_checked(decode, header, [block], schema))
        except _DECODE_ERRORS as err:
            return (pa.concat_tables(tables) if tables else None), i, err
    return pa.concat_tables(tables), len(blocks), None


def _with_provenance(table: pa.Table, source: str, first_index: int) -> pa.Table:
    n = table.num_rows
    return table.append_column("_source", pa.repeat(pa.scalar(source, pa.string()), n)).append_column(
        "_index", pa.array(np.arange(first_index, first_index + n, dtype=np.int64))
    )


# --- public API -------------------------------------------------------------


def iter_avro_batches(
    path: str,
    stream: str,
    quarantine_dir: str,
    batch_rows: int = BATCH_ROWS,
    fast: bool = True,
) -> Iterator[pa.RecordBatch | DeadLetter]:
    """Stream one file: record batches of the normalised table, in file
    order, and at most one DeadLetter (always last).  ``fast=False`` forces
    the fastavro decoder (for tests and benchmarks)."""
    schema = schemas.load(stream)
    reader, reader_names, reader_canonical = _contract(stream)
    f = None
    try:
        f = FileSystems.open(path, compression_type=CompressionTypes.UNCOMPRESSED)
        magic = f.read(len(MAGIC))  # gs:// opens lazily: a missing object fails here
    except Exception as err:
        if f is not None:
            f.close()
        yield quarantine(quarantine_dir, stream, path, f"cannot open file: {err}", b"")
        return
    with f:
        tape = _Tape(f, magic)
        header = error = None
        try:
            header = _read_header(tape, magic)
            check_resolvable(header.writer_schema, reader, header.writer_names, reader_names)
            # Resolvable (so logical types match) and the same canonical form: the
            # contract itself, whatever docs or defaults the writer added.
            same = to_parsing_canonical_form(header.writer_schema) == reader_canonical
            native = fast and same and header.codec in NATIVE_CODECS
            if not native and header.codec not in FASTAVRO_CODECS:
                error = f"unsupported codec {header.codec!r} for this writer schema"
        except _Damaged as err:
            error = str(err)
        except SchemaMismatch as err:
            error = f"writer schema cannot be resolved to the {stream} contract: {err}"
        if error is not None:  # the whole file, header included, is the dead letter
            raw = (header.raw if header else b"") + tape.rest()
            yield quarantine(quarantine_dir, stream, path, error, raw)
            return
        decode = _decode_native if native else _decode_fastavro

        block_no = record_no = 0  # the next block / record to emit
        damage = None  # (error, raw bytes from the first damaged block to EOF)
        for run, damage in _runs(tape, header.sync, batch_rows):
            table, intact, err = _decode_intact(decode, header, run, schema)
            if table is not None and table.num_rows:
                yield from _with_provenance(table, path, record_no).to_batches()
                record_no += table.num_rows
            block_no += intact
            if err is not None:  # the damage starts inside this run
                rest = damage[1] if damage else tape.rest()
                damage = (f"undecodable block data: {err}", b"".join(b.raw for b in run[intact:]) + rest)
                break
        if damage is not None:
            error, raw = damage
            yield quarantine(
                quarantine_dir,
                stream,
                f"{path}#block={block_no}",
                f"damaged from block {block_no} (record {record_no}) to end of file: {error}",
                raw,
            )


def read_avro_file(
    path: str, stream: str, quarantine_dir: str, batch_rows: int = BATCH_ROWS, fast: bool = True
) -> tuple[list[pa.RecordBatch], list[DeadLetter], int]:
    """One file at once: (batches, dead letters, number of records decoded)."""
    batches, dead = [], []
    for item in iter_avro_batches(path, stream, quarantine_dir, batch_rows, fast):
        (dead if isinstance(item, DeadLetter) else batches).append(item)
    return batches, dead, sum(b.num_rows for b in batches)


def decode_message(payload: bytes, stream: str) -> dict:
    """One schemaless Avro record (a Pub/Sub message) written with the
    contract -> dict of Python values.  Raises ValueError if the bytes are
    not exactly one valid record (the caller dead-letters it)."""
    schema = schemas.load(stream)
    buf = io.BytesIO(payload)
    try:
        record = fastavro.schemaless_reader(buf, _contract(stream)[0])
    except Exception as err:
        raise ValueError(f"undecodable {stream} record: {err!r}") from err
    if buf.tell() != len(payload):
        raise ValueError(f"{len(payload) - buf.tell()} trailing bytes after the {stream} record")
    for field in schema.arrow:  # the same precision check Arrow applies to files
        value = record[field.name]
        if pa.types.is_decimal(field.type) and value is not None:
            if abs(value) >= 10 ** (field.type.precision - field.type.scale):
                raise ValueError(f"{field.name} = {value} does not fit {field.type}")
    return record


class DecodeAvroFile(beam.DoFn):
    """File path (str) or fileio FileMetadata -> RecordBatches of the
    normalised table on the main output, dead letters (dicts) on
    ``DEAD_LETTERS``."""

    def __init__(self, stream: str, quarantine_dir: str, batch_rows: int = BATCH_ROWS):
        schemas.load(stream)  # fail at construction on an unknown stream
        self.stream = stream
        self.quarantine_dir = quarantine_dir
        self.batch_rows = batch_rows
        self.records = Metrics.counter("decode", f"{stream}_records")
        self.dead_letters = Metrics.counter("decode", f"{stream}_dead_letters")

    def process(self, element):
        path = element if isinstance(element, str) else element.path
        for item in iter_avro_batches(path, self.stream, self.quarantine_dir, self.batch_rows):
            if isinstance(item, DeadLetter):
                self.dead_letters.inc()
                yield beam.pvalue.TaggedOutput(DEAD_LETTERS, item.as_dict())
            else:
                self.records.inc(item.num_rows)
                yield item


class ReadStream(beam.PTransform):
    """All files matching ``pattern`` -> tagged result with ``batches``
    (RecordBatches) and ``dead_letters`` (dicts)."""

    def __init__(self, stream: str, pattern: str, quarantine_dir: str, batch_rows: int = BATCH_ROWS):
        super().__init__()
        self.stream = stream
        self.pattern = pattern
        self.quarantine_dir = quarantine_dir
        self.batch_rows = batch_rows

    def expand(self, pbegin):
        return (
            pbegin
            | "MatchFiles" >> fileio.MatchFiles(self.pattern)
            | "SpreadFiles" >> beam.Reshuffle()  # decode files in parallel, not in one bundle
            | "DecodeAvro"
            >> beam.ParDo(DecodeAvroFile(self.stream, self.quarantine_dir, self.batch_rows)).with_outputs(
                DEAD_LETTERS, main="batches"
            )
        )
