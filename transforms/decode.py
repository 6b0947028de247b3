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
* Otherwise blocks are read in order.  A block's *framing* is intact when
  its count and size parse, its data is all there and its sync marker
  matches the header's; then the next block's start is certain.  Its
  *content* is intact when it decompresses (and, for snappy, its CRC-32
  matches), every record decodes, the records fill the block exactly, and
  every value is one the contract's logical types can hold: a decimal
  within its precision, a timestamp-millis or a date within the years
  1-9999 (``TIME_RANGE``, ``DATE_RANGE``: Python's datetime and BigQuery's
  TIMESTAMP and DATE; DuckDB's microsecond TIMESTAMP holds more).  The
  records of intact blocks are emitted, ``_index`` counting every record
  the blocks' headers announce.
* A block with intact framing but damaged content (a "poison" value such as
  a timestamp in nanoseconds, invalid UTF-8, a bad compressed payload, …)
  is one dead letter by itself (source = ``path#block=N``, N 0-based;
  payload = that block's bytes) and reading goes on with the next block:
  compressed block bytes cannot be split into good and bad records, so the
  block is the unit.
* Broken framing (a bad varint, a short read, a wrong sync marker, a
  record count beyond ``MAX_BLOCK_RECORDS``) leaves no certain next block:
  that block and everything after it is one dead letter (source =
  ``path#block=N``; payload = the raw bytes from that block's start to
  EOF).  A file cut exactly at a block boundary looks complete (Avro has no
  trailer); damage that still decodes to valid values goes unnoticed.

Splitting (so the largest file does not set the decode time): ``ReadStream``
plans each file larger than ``split_bytes`` (``SPLIT_BYTES``) into
``FileRange``s of whole blocks (``plan_ranges``): it reads the header and
walks the block framing only (two varints, a seek past the data, the sync
check), so each range knows its first block's number and the record index
of its first record; a Reshuffle spreads the ranges, and each is read by
``iter_avro_batches`` from its offset.  The outputs are exactly the unsplit
read's: a file whose header is not accepted is planned as one whole range
(its one dead letter), and planning stops at broken framing, the last range
reading on to the end of the file, so the same ``path#block=N`` dead letter
comes out.

Codecs: every codec of the Avro specification — null, deflate, snappy,
bzip2, xz, zstandard — and lz4 as fastavro writes it (not in the
specification, but fastavro writes it and it costs one line to read), under
schema resolution alike.  We decompress each block ourselves (``CODECS``:
the standard library and cramjam) and hand the decoders null-codec
containers, so both decoders read every codec; an unknown codec makes the
whole file one dead letter naming it.

Decoding speed (ARCHITECTURE.md): we parse the container framing ourselves
(two varints and a sync check per block) and hand the header + intact
blocks to a decoder, about ``BATCH_ROWS`` records at a time (bounded
memory).  If the writer schema is the contract (same canonical form and
logical types), polars' built-in Avro reader decodes them (≈15x fastavro +
from_pylist); otherwise fastavro decodes them with the contract as reader
schema (Avro schema resolution) and ``pa.Table.from_pylist`` builds the
columns.  Both give the same table.  When a run of blocks fails, it is
halved until the failing blocks are found (few decodes for one bad block).
polars-avro and jetliner are faster but were rejected: on randomly damaged
blocks polars-avro can loop forever and jetliner can abort the process.
polars' reader is lenient in one way: a ``["null", T]`` union index other
than 0 reads as T, where fastavro rejects an index beyond the union.
"""
from __future__ import annotations

import bz2
import datetime as dt
import functools
import io
import json
import lzma
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import NamedTuple

import apache_beam as beam
import cramjam
import fastavro
import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.compute as pc
from apache_beam.io.filesystem import CompressionTypes
from apache_beam.io.filesystems import FileSystems
from apache_beam.metrics import Metrics
from fastavro.schema import to_parsing_canonical_form

import schemas
from pipelines import progress
from transforms.landing import list_landed
from transforms.quarantine import DeadLetter, quarantine
from transforms.timing import timed

__all__ = [
    "BATCH_ROWS",
    "CODECS",
    "DATE_RANGE",
    "DEAD_LETTERS",
    "DeadLetter",
    "DecodeAvroFile",
    "FileRange",
    "PlanRanges",
    "ReadStream",
    "SPLIT_BYTES",
    "SchemaMismatch",
    "TIME_RANGE",
    "check_resolvable",
    "decode_message",
    "iter_avro_batches",
    "plan_ranges",
    "quarantine",
    "read_avro_file",
    "table_schema",
]

MAGIC = b"Obj\x01"
SYNC_SIZE = 16
BATCH_ROWS = 65_536  # records per emitted batch (whole blocks, so a little more)
DEAD_LETTERS = "dead_letters"  # tag of the DoFn's dead-letter output
#: ReadStream splits a file larger than this into ranges of whole blocks of
#: about this size, read in parallel.
SPLIT_BYTES = 64 << 20
#: A larger block count is broken framing, not a damaged block: writers buffer
#: a block whole, so none holds 2**31 records; and ``_index`` stays an int64.
MAX_BLOCK_RECORDS = 2**31 - 1

#: What the contract's timestamp-millis and date can hold here: the years
#: 1-9999 of Python's datetime and of BigQuery's TIMESTAMP and DATE (DuckDB's
#: microsecond TIMESTAMP and its DATE hold more).  A value outside is a poison
#: value: its block is a dead letter.
TIME_RANGE = (dt.datetime(1, 1, 1, tzinfo=dt.UTC),
              dt.datetime(9999, 12, 31, 23, 59, 59, 999000, tzinfo=dt.UTC))
DATE_RANGE = (dt.date(1, 1, 1), dt.date(9999, 12, 31))
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
_MS_RANGE = tuple((t - _EPOCH) // dt.timedelta(milliseconds=1) for t in TIME_RANGE)
_DAY_RANGE = tuple((d - _EPOCH.date()).days for d in DATE_RANGE)

# Avro's primitive promotions (writer type, reader type).
_PROMOTIONS = {
    ("int", "long"), ("int", "float"), ("int", "double"), ("long", "float"),
    ("long", "double"), ("float", "double"), ("string", "bytes"), ("bytes", "string"),
}
_READ_CHUNK = 1 << 24  # never ask the file for more than 16 MiB at once

# Any error a decoder raises on damaged bytes.  Rust panics in polars surface
# as PanicException, a BaseException: caught too, so bad data never kills a worker.
_DECODE_ERRORS = (Exception, pl.exceptions.PanicException)


class SchemaMismatch(ValueError):
    """The writer schema cannot be resolved to the contract (reader) schema."""


class _Damaged(Exception):
    """The container cannot be read: a damaged header, an unknown codec, or
    broken framing (truncated, bad sync, bad varint)."""


def table_schema(stream: str) -> pa.Schema:
    """Schema of the normalised stream table: the contract columns + provenance."""
    return schemas.load(stream).table


# --- codecs ------------------------------------------------------------------


def _claimed(size: int, data: bytes, ratio: int, codec: str) -> None:
    """A damaged size prefix must not make the decompressor allocate gigabytes."""
    if size > ratio * len(data) + 64:
        raise ValueError(f"{codec} block claims {size} bytes from {len(data)}")


def _snappy(data: bytes) -> bytes:
    """Avro's snappy: a raw snappy block, then the big-endian CRC-32 of the
    uncompressed bytes (checked: polars and fastavro skip it)."""
    body, crc = data[:-4], data[-4:]
    _claimed(cramjam.snappy.decompress_raw_len(body), body, 32, "snappy")
    out = bytes(cramjam.snappy.decompress_raw(body))
    if len(crc) != 4 or zlib.crc32(out) != int.from_bytes(crc, "big"):
        raise ValueError("snappy block fails its CRC-32 check")
    return out


def _lz4(data: bytes) -> bytes:
    """lz4 as fastavro writes it (``lz4.block.compress``): the uncompressed
    size (4 bytes, little-endian), then an lz4 block."""
    _claimed(int.from_bytes(data[:4], "little"), data, 255, "lz4")
    return bytes(cramjam.lz4.decompress_block(data))


#: Block decompressors by ``avro.codec``: the Avro specification's six, plus
#: lz4 (fastavro's extension).  The decoders then read null-codec containers.
CODECS: dict[str, Callable[[bytes], bytes]] = {
    "null": bytes,
    "deflate": lambda data: zlib.decompress(data, -15),  # raw RFC 1951, no zlib header
    "snappy": _snappy,
    "bzip2": bz2.decompress,
    "xz": lzma.decompress,
    "zstandard": lambda data: bytes(cramjam.zstd.decompress(data)),
    "lz4": _lz4,
}


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


def _long(n: int) -> bytes:
    """Avro's long: zigzag, then a base-128 varint."""
    n, out = (n << 1) ^ (n >> 63), bytearray()
    while n > 0x7F:
        out.append(n & 0x7F | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def _plain_header(schema_json: bytes, sync: bytes) -> bytes:
    """A header for the same schema and sync marker with the null codec."""
    meta = [(b"avro.schema", schema_json), (b"avro.codec", b"null")]
    items = b"".join(_long(len(k)) + k + _long(len(v)) + v for k, v in meta)
    return MAGIC + _long(len(meta)) + items + _long(0) + sync


@dataclass
class _Header:
    raw: bytes  # magic .. sync, as in the file
    plain: bytes  # the same with the null codec: prefixed to decompressed blocks for a decoder
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
    return _Header(tape.take(), _plain_header(meta["avro.schema"], sync), writer, names, codec, sync)


def _accept(header: _Header, stream: str) -> bool:
    """Raise SchemaMismatch or _Damaged unless the file's records can be read
    as the contract; True if the writer schema is the contract itself (same
    canonical form, and resolvable so logical types match, whatever docs or
    defaults the writer added)."""
    reader, reader_names, reader_canonical = _contract(stream)
    check_resolvable(header.writer_schema, reader, header.writer_names, reader_names)
    if header.codec not in CODECS:
        raise _Damaged(f"unsupported codec {header.codec!r} (readable: {', '.join(CODECS)})")
    return to_parsing_canonical_form(header.writer_schema) == reader_canonical


@dataclass
class _Block:
    count: int
    raw: bytes  # count, size, data and sync, as in the file
    data: bytes  # the (compressed) data alone


_BAD_SYNC = "sync marker does not match the header's"


def _block_head(tape: _Tape) -> tuple[int, int] | None:
    """The next block's (record count, data size), None at a clean end of file."""
    count = tape.long(eof_ok=True)
    if count is None:
        return None
    size = tape.long()
    if not 0 <= count <= MAX_BLOCK_RECORDS or size < 0:
        raise _Damaged(f"invalid block header (count {count}, size {size})")
    return count, size


def _read_block(tape: _Tape, sync: bytes) -> _Block | None:
    """The next block, None at a clean end of file; _Damaged if broken."""
    head = _block_head(tape)
    if head is None:
        return None
    count, size = head
    framed = tape.read(size + SYNC_SIZE)
    if framed[-SYNC_SIZE:] != sync:
        raise _Damaged(_BAD_SYNC)
    return _Block(count, tape.take(), framed[:-SYNC_SIZE])


def _skip_block(f, tape: _Tape, sync: bytes) -> int | None:
    """Planning: the next block's record count, its data seeked past unread;
    None at a clean end of file; _Damaged if the framing is broken."""
    head = _block_head(tape)
    if head is None:
        return None
    count, size = head
    tape.take()
    f.seek(f.tell() + size)  # past the end: the sync read below comes up short
    if tape.read(SYNC_SIZE) != sync:
        raise _Damaged(_BAD_SYNC)
    tape.take()
    return count


def _runs(tape: _Tape, sync: bytes, batch_rows: int,
          max_blocks: int | None = None) -> Iterator[tuple[list[_Block], tuple | None]]:
    """Runs of framed blocks (at most ``max_blocks`` in all) of about
    ``batch_rows`` records, each with None, or for the last one (error, raw
    bytes to EOF) if the framing broke."""
    run, rows, n = [], 0, 0
    while max_blocks is None or n < max_blocks:
        try:
            block = _read_block(tape, sync)
        except _Damaged as err:
            yield run, (str(err), tape.rest())
            return
        if block is None:
            break
        run.append(block)
        rows += block.count
        n += 1
        if rows >= batch_rows:
            yield run, None
            run, rows = [], 0
    if run:
        yield run, None


# --- decoders: header + blocks -> contract columns ---------------------------


def _plain(header: _Header, blocks: list[_Block], min_record_bytes: int = 0) -> bytes:
    """The blocks decompressed, as one null-codec container: what both
    decoders read.  ``min_record_bytes``: the least a record can take."""
    decompress = CODECS[header.codec]
    parts = [header.plain]
    for block in blocks:
        data = decompress(block.data)
        if block.count * min_record_bytes > len(data):
            raise ValueError(f"record count {block.count} is impossible in {len(data)} bytes")
        parts += (_long(block.count), _long(len(data)), data, header.sync)
    return b"".join(parts)


def _check_ranges(table: pa.Table, schema: schemas.StreamSchema) -> None:
    """Raise ValueError on a timestamp or date outside TIME_RANGE / DATE_RANGE."""
    for field in schema.arrow:
        if field.type == schemas.TIMESTAMP:
            storage, (lo, hi), unit = pa.int64(), _MS_RANGE, "ms"
        elif field.type == pa.date32():
            storage, (lo, hi), unit = pa.int32(), _DAY_RANGE, "days"
        else:
            continue
        low, high = pc.min_max(table.column(field.name).cast(storage)).values()
        for value in (low.as_py(), high.as_py()):
            if value is not None and not lo <= value <= hi:
                raise ValueError(f"{field.name} = {value} {unit} since 1970-01-01 is outside "
                                 "the years 1-9999 the contract's types can hold")


def _decode_native(header: _Header, blocks: list[_Block], schema: schemas.StreamSchema) -> pa.Table:
    """polars' Avro reader; only for files written with the contract itself."""
    # polars allocates by a block's record count before decoding: a damaged
    # count (say 2**40) would abort the process.  A contract record takes at
    # least one byte per field.
    data = _plain(header, blocks, min_record_bytes=len(schema.arrow))
    table = pl.read_avro(io.BytesIO(data)).to_arrow().cast(schema.arrow)
    for name in schema.money_fields:  # polars does not check decimal precision; Arrow does
        table.column(name).validate(full=True)
    _check_ranges(table, schema)  # nor the range of dates and timestamps (fastavro does)
    return table


def _decode_fastavro(header: _Header, blocks: list[_Block], schema: schemas.StreamSchema) -> pa.Table:
    """fastavro with the contract as reader schema (Avro schema resolution);
    its datetime and date raise on values outside the years 1-9999."""
    data = _plain(header, blocks)
    records = list(fastavro.reader(io.BytesIO(data), reader_schema=_contract(schema.stream)[0]))
    return pa.Table.from_pylist(records, schema=schema.arrow)


def _decode_checked(decode, header, blocks, schema) -> pa.Table:
    table = decode(header, blocks, schema)
    expected = sum(b.count for b in blocks)
    if table.num_rows != expected:
        raise ValueError(f"decoded {table.num_rows} records, the block headers say {expected}")
    return table


def _decode_blocks(decode, header, blocks, schema) -> Iterator[tuple[list[_Block], object]]:
    """Decode a run of framed blocks, in file order: (blocks, table) for
    each intact stretch, (one block, error) for each damaged block.  A run
    that fails is halved until the failing blocks are alone."""
    if not blocks:
        return
    try:
        result = _decode_checked(decode, header, blocks, schema)
    except _DECODE_ERRORS as err:
        if len(blocks) == 1:
            result = err
        else:
            mid = len(blocks) // 2
            yield from _decode_blocks(decode, header, blocks[:mid], schema)
            yield from _decode_blocks(decode, header, blocks[mid:], schema)
            return
    yield blocks, result


def _with_provenance(table: pa.Table, source: str, first_index: int) -> pa.Table:
    n = table.num_rows
    return table.append_column("_source", pa.repeat(pa.scalar(source, pa.string()), n)).append_column(
        "_index", pa.array(np.arange(first_index, first_index + n, dtype=np.int64))
    )


# --- public API -------------------------------------------------------------


class FileRange(NamedTuple):
    """Whole blocks of one file, for ``iter_avro_batches``."""

    path: str
    start_offset: int | None = None  # byte offset of the first block; None: right after the header
    first_block: int = 0  # its block number in the file
    first_index: int = 0  # the record index of its first record in the file
    max_blocks: int | None = None  # None: on to the end of the file


def plan_ranges(path: str, stream: str, split_bytes: int = SPLIT_BYTES,
                size: int | None = None) -> list[FileRange]:
    """Cut ``path`` at block starts into ranges of about ``split_bytes``.

    Only the header and the block framing are read (data is seeked past).
    A file that is small (``size``, if known), cannot be opened, or whose
    header ``iter_avro_batches`` would not accept is one whole range: its
    reader makes the one dead letter.  Planning stops at broken framing;
    the last range reads on to the end of the file, so the reader of that
    range makes the same dead letter as a reader of the whole file."""
    whole = [FileRange(path)]
    if size is not None and size <= split_bytes:
        return whole
    try:
        f = FileSystems.open(path, compression_type=CompressionTypes.UNCOMPRESSED)
    except Exception:
        return whole
    with f:
        try:
            magic = f.read(len(MAGIC))
            tape = _Tape(f, magic)
            header = _read_header(tape, magic)
            _accept(header, stream)
        except Exception:  # whatever it is, the whole file's reader says it
            return whole
        ranges = []
        start = f.tell()
        first_block = first_index = blocks = records = 0
        while True:
            try:
                count = _skip_block(f, tape, header.sync)
            except Exception:  # broken framing (or I/O): the last range reads it
                count = None
            if count is None:
                break
            blocks += 1
            records += count
            if f.tell() - start >= split_bytes:
                ranges.append(FileRange(path, start, first_block, first_index, blocks))
                start, first_block, first_index = f.tell(), first_block + blocks, first_index + records
                blocks = records = 0
    if not ranges:
        return whole
    return [*ranges, FileRange(path, start, first_block, first_index, None)]


def iter_avro_batches(
    path: str,
    stream: str,
    quarantine_dir: str,
    batch_rows: int = BATCH_ROWS,
    fast: bool = True,
    start_offset: int | None = None,
    first_block: int = 0,
    first_index: int = 0,
    max_blocks: int | None = None,
) -> Iterator[pa.RecordBatch | DeadLetter]:
    """Stream one file, in file order: record batches of the normalised
    table, a DeadLetter for each damaged block, and at most one for broken
    framing (always last).  ``fast=False`` forces the fastavro decoder (for
    tests and benchmarks).

    A range of the file (``FileRange``, from ``plan_ranges``): read the
    header, then at most ``max_blocks`` blocks from ``start_offset``,
    numbered from ``first_block``, their records indexed from ``first_index``."""
    schema = schemas.load(stream)
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
            native = _accept(header, stream) and fast
        except _Damaged as err:
            error = str(err)
        except SchemaMismatch as err:
            error = f"writer schema cannot be resolved to the {stream} contract: {err}"
        if error is not None:  # the whole file, header included, is the dead letter
            raw = (header.raw if header else b"") + tape.rest()
            yield quarantine(quarantine_dir, stream, path, error, raw)
            return
        decode = _decode_native if native else _decode_fastavro
        if start_offset is not None:
            f.seek(start_offset)
            tape = _Tape(f)

        block_no, record_no = first_block, first_index  # the next block / record of the file
        damage = None  # (error, raw bytes from the first broken block to EOF)
        for run, broken in _runs(tape, header.sync, batch_rows, max_blocks):
            damage = broken  # set on the last run only
            for blocks, result in _decode_blocks(decode, header, run, schema):
                if isinstance(result, pa.Table):
                    if result.num_rows:
                        yield from _with_provenance(result, path, record_no).to_batches()
                else:  # one block whose framing holds: the next one is read
                    yield quarantine(
                        quarantine_dir,
                        stream,
                        f"{path}#block={block_no}",
                        f"undecodable block data (block {block_no}, from record {record_no}): {result}",
                        blocks[0].raw,
                    )
                block_no += len(blocks)
                record_no += sum(b.count for b in blocks)
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


class PlanRanges(beam.DoFn):
    """File path (str) or anything with ``.path`` (and ``.size``: a
    ``landing.Landed``) -> its ``FileRange``s (``plan_ranges``)."""

    def __init__(self, stream: str, split_bytes: int = SPLIT_BYTES):
        self.stream = stream
        self.split_bytes = split_bytes
        self.ranges = Metrics.counter("decode", f"{stream}_ranges")

    def process(self, element):
        path = element if isinstance(element, str) else element.path
        ranges = plan_ranges(path, self.stream, self.split_bytes, getattr(element, "size", None))
        self.ranges.inc(len(ranges))
        yield from ranges


class DecodeAvroFile(beam.DoFn):
    """File path (str), fileio FileMetadata or ``FileRange`` ->
    RecordBatches of the normalised table on the main output, dead letters
    (dicts) on ``DEAD_LETTERS``."""

    def __init__(self, stream: str, quarantine_dir: str, batch_rows: int = BATCH_ROWS):
        schemas.load(stream)  # fail at construction on an unknown stream
        self.stream = stream
        self.quarantine_dir = quarantine_dir
        self.batch_rows = batch_rows
        self.records = Metrics.counter("decode", f"{stream}_records")
        self.dead_letters = Metrics.counter("decode", f"{stream}_dead_letters")

    def process(self, element):
        if not isinstance(element, FileRange):
            element = FileRange(element if isinstance(element, str) else element.path)
        span = element._asdict()
        path = span.pop("path")
        batches = iter_avro_batches(path, self.stream, self.quarantine_dir, self.batch_rows, **span)
        for item in timed("Decode", batches):
            if isinstance(item, DeadLetter):
                self.dead_letters.inc()
                yield beam.pvalue.TaggedOutput(DEAD_LETTERS, item.as_dict())
            else:
                self.records.inc(item.num_rows)
                progress.note_records(self.stream, item.num_rows)  # no-op off the local runner
                yield item


class ReadStream(beam.PTransform):
    """All deliveries matching ``pattern`` (or any of a list of patterns:
    pipelines/partitions.py) (transforms/landing.py: no dot- or
    underscore-names; links followed, broken ones dead-lettered) -> tagged
    result with ``batches`` (RecordBatches) and ``dead_letters`` (dicts).
    A file larger than ``split_bytes`` is read as several block ranges."""

    def __init__(self, stream: str, pattern: str | list[str], quarantine_dir: str,
                 batch_rows: int = BATCH_ROWS, split_bytes: int = SPLIT_BYTES):
        super().__init__()
        self.stream = stream
        self.patterns = [pattern] if isinstance(pattern, str) else list(pattern)
        self.quarantine_dir = quarantine_dir
        self.batch_rows = batch_rows
        self.split_bytes = split_bytes

    def expand(self, pbegin):
        return (
            pbegin
            | "Pattern" >> beam.Create(self.patterns)
            | "MatchFiles" >> beam.FlatMap(list_landed)
            | "SpreadFiles" >> beam.Reshuffle()  # plan files in parallel, not in one bundle
            | "PlanRanges" >> beam.ParDo(PlanRanges(self.stream, self.split_bytes))
            | "SpreadRanges" >> beam.Reshuffle()  # decode a large file's ranges in parallel
            | "DecodeAvro"
            >> beam.ParDo(DecodeAvroFile(self.stream, self.quarantine_dir, self.batch_rows)).with_outputs(
                DEAD_LETTERS, main="batches"
            )
        )
