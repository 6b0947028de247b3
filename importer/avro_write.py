"""Arrow batches of a contract table -> an Avro object container file.

Why not fastavro's writer: it takes one Python dict per record, and
``to_pylist`` + ``fastavro.writer`` run at roughly 40k settlement rows/s,
a fifth of the import's target (benchmarks/import_throughput.py).  The
Avro binary encoding of the contract's types is simple, so each column is
encoded here with numpy and Arrow compute, a batch at a time:

* long / int / date / timestamp-millis: zigzag varints, built for the
  whole column in a (rows x 10) byte matrix;
* string: a varint length, then the UTF-8 bytes (the Arrow string data as is);
* decimal (bytes): the big-endian two's-complement unscaled integer, as
  many bytes as fastavro uses (``(bit_length(|v|) + 8) // 8``), after a
  varint length;
* boolean: one byte; ``["null", T]``: branch index 0 or 1 (a varint), then T;
* array of strings: the item count, the items, then a 0 (fastavro's layout).

Each field gives one or more per-row byte pieces as Arrow binary arrays;
``binary_join_element_wise`` concatenates them per row into the records,
whose data buffer is a block's payload.  tests/test_import.py checks the
bytes are exactly fastavro's for every stream, and fastavro reads the
files back against the contract.
"""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import cramjam
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

import schemas

MAGIC = b"Obj\x01"
BLOCK_ROWS = 4096  # records per container block: what one damaged block can cost
# Raw deflate (RFC 1951, what Avro's "deflate" is) by cramjam, level 1: about
# 2.5x zlib's level 1 and 10x its default 6, for files ~15% larger.
DEFLATE_LEVEL = 1

_EMPTY = pa.array([b""], pa.binary())


def _binary(data: np.ndarray, lengths: np.ndarray) -> pa.Array:
    """A binary array whose row i is the next ``lengths[i]`` bytes of ``data``."""
    offsets = np.zeros(len(lengths) + 1, dtype=np.int32)
    np.cumsum(lengths, out=offsets[1:])
    return pa.Array.from_buffers(pa.binary(), len(lengths),
                                 [None, pa.py_buffer(offsets), pa.py_buffer(data)])


def _offsets(arr: pa.Array) -> np.ndarray:
    """The int32 offsets of a binary array, as int64 (length + 1)."""
    raw = np.frombuffer(arr.buffers()[1], dtype=np.int32)
    return raw[arr.offset: arr.offset + len(arr) + 1].astype(np.int64)


class _Fixed:
    """A piece of at most ``width`` bytes a row: a (rows x width) byte
    matrix and the mask of the bytes that belong to the record.  Adjacent
    fixed pieces are merged before the per-row concatenation (fewer pieces,
    much less work for ``binary_join_element_wise``)."""

    def __init__(self, mat: np.ndarray, keep: np.ndarray):
        self.mat, self.keep = mat, keep

    @staticmethod
    def merge(parts: list[_Fixed]) -> pa.Array:
        mat = np.hstack([p.mat for p in parts]) if len(parts) > 1 else parts[0].mat
        keep = np.hstack([p.keep for p in parts]) if len(parts) > 1 else parts[0].keep
        return _binary(mat[keep], keep.sum(axis=1))


def _varints(values: np.ndarray, present: np.ndarray | None = None) -> _Fixed:
    """Avro longs (zigzag varints) of int64 ``values``; rows where
    ``present`` is False get no bytes."""
    v = values.astype(np.int64, copy=False)
    z = ((v << 1) ^ (v >> 63)).view(np.uint64)
    nbytes = np.ones(len(z), dtype=np.int64)
    for k in range(1, 10):
        nbytes += z >= np.uint64(1 << (7 * k))
    width = int(nbytes.max()) if len(z) else 1
    mat = np.empty((len(z), width), dtype=np.uint8)
    for k in range(width):
        mat[:, k] = ((z >> np.uint64(7 * k)) & np.uint64(0x7F)).astype(np.uint8)
        mat[:, k] |= np.where(k < nbytes - 1, 0x80, 0).astype(np.uint8)
    if present is not None:
        nbytes = np.where(present, nbytes, 0)
    return _Fixed(mat, np.arange(width)[None, :] < nbytes[:, None])


def varints(values: np.ndarray, present: np.ndarray | None = None) -> pa.Array:
    return _Fixed.merge([_varints(values, present)])


def _ints(arr: pa.Array) -> np.ndarray:
    """Integer view of an int/date/timestamp column (nulls read as 0)."""
    storage = {pa.date32(): pa.int32()}.get(arr.type, pa.int64())
    if pa.types.is_integer(arr.type):
        storage = arr.type
    return arr.cast(storage).fill_null(0).to_numpy(zero_copy_only=False).astype(np.int64)


def _decimal_unscaled(arr: pa.Array) -> np.ndarray:
    """The unscaled integers of a decimal128 column whose values fit in
    int64 (the contract's decimal(16,2) always does): the low 8 bytes."""
    arr = arr.fill_null(pa.scalar(0, arr.type)) if arr.null_count else arr
    words = np.frombuffer(arr.buffers()[1], dtype=np.int64)
    return words[2 * arr.offset: 2 * (arr.offset + len(arr)): 2].copy()


def _decimal_bytes(arr: pa.Array, present: np.ndarray | None) -> list[_Fixed]:
    v = _decimal_unscaled(arr)
    mag = np.abs(v).astype(np.uint64)
    # fastavro's length: (bit_length(|v|) + 8) // 8, i.e. one byte more for
    # each threshold 2**7, 2**15, ... that |v| reaches
    nbytes = np.ones(len(v), dtype=np.int64)
    for m in range(2, 9):
        nbytes += mag >= np.uint64(1 << (8 * m - 9))
    mat = v.astype(">i8").view(np.uint8).reshape(len(v), 8)
    if present is not None:
        nbytes = np.where(present, nbytes, 0)
    keep = np.arange(8)[None, :] >= (8 - nbytes)[:, None]
    return [_varints(nbytes, present), _Fixed(mat, keep)]


def _strings(arr: pa.Array, present: np.ndarray | None) -> list[pa.Array | _Fixed]:
    arr = arr.fill_null("") if arr.null_count else arr
    data = arr.cast(pa.binary())
    lengths = pc.binary_length(data).to_numpy(zero_copy_only=False).astype(np.int64)
    return [_varints(lengths, present), data]


def _string_list(arr: pa.Array) -> list[pa.Array | _Fixed]:
    """array<string>: the item count (if > 0), the items, a 0."""
    if arr.null_count:
        raise ValueError("a list field holds a null; the contract's arrays are not nullable")
    counts = pc.list_value_length(arr).to_numpy(zero_copy_only=False).astype(np.int64)
    items = arr.flatten()
    if len(items):
        item_bytes = _join(_strings(items, None))
        offsets = _offsets(item_bytes)
        data = np.frombuffer(item_bytes.buffers()[2], dtype=np.uint8)[offsets[0]:offsets[-1]]
        ends = offsets - offsets[0]
    else:
        data, ends = np.zeros(0, np.uint8), np.zeros(1, np.int64)
    list_offsets = arr.offsets.to_numpy().astype(np.int64)
    per_row = np.diff(ends[list_offsets - list_offsets[0]])
    return [_varints(counts, counts > 0), _binary(data, per_row),
            _varints(np.zeros(len(arr), np.int64))]


def _field_pieces(arr: pa.Array, avro_type) -> list[pa.Array | _Fixed]:
    present = None
    if isinstance(avro_type, list):  # ["null", T]: branch index, then T where present
        present = arr.is_valid().to_numpy(zero_copy_only=False)
        branch = [t for t in avro_type if t != "null"][0]
        return [_varints(present.astype(np.int64))] + _value_pieces(arr, branch, present)
    return _value_pieces(arr, avro_type, None)


def _value_pieces(arr: pa.Array, avro_type, present) -> list[pa.Array | _Fixed]:
    kind = avro_type["type"] if isinstance(avro_type, dict) else avro_type
    logical = avro_type.get("logicalType") if isinstance(avro_type, dict) else None
    if logical == "decimal":
        return _decimal_bytes(arr, present)
    if kind in ("int", "long"):
        return [_varints(_ints(arr), present)]
    if kind == "string":
        return _strings(arr, present)
    if kind == "boolean":
        b = arr.fill_null(False).to_numpy(zero_copy_only=False).astype(np.uint8)
        keep = np.ones(len(b), bool) if present is None else present
        return [_Fixed(b[:, None], keep[:, None])]
    if kind == "array":
        return _string_list(arr)
    raise TypeError(f"no encoder for Avro type {avro_type!r}")


def _join(pieces: list[pa.Array | _Fixed]) -> pa.Array:
    """Per-row concatenation of the pieces, runs of fixed pieces merged first."""
    arrays, run = [], []
    for piece in [*pieces, None]:
        if isinstance(piece, _Fixed):
            run.append(piece)
            continue
        if run:
            arrays.append(_Fixed.merge(run))
            run = []
        if piece is not None:
            arrays.append(piece)
    if len(arrays) == 1:
        return arrays[0]
    return pc.binary_join_element_wise(*arrays, _EMPTY[0])


def _records(batch: pa.RecordBatch | pa.Table, stream: str) -> tuple[pa.Buffer, np.ndarray]:
    """Every row's Avro encoding: the data buffer and the records' offsets."""
    pieces: list[pa.Array | _Fixed] = []
    for field in schemas.load(stream).avro["fields"]:
        col = batch.column(field["name"])
        if isinstance(col, pa.ChunkedArray):
            col = col.combine_chunks()
        pieces += _field_pieces(col, field["type"])
    records = _join(pieces)
    return records.buffers()[2], _offsets(records)


def encode_records(batch: pa.RecordBatch | pa.Table, stream: str) -> bytes:
    """The Avro binary encoding of every row of ``batch`` (contract
    columns, contract types), concatenated."""
    if not batch.num_rows:
        return b""
    data, offsets = _records(batch, stream)
    return data[offsets[0]:offsets[-1]].to_pybytes()


def _long(n: int) -> bytes:
    return varints(np.array([n], np.int64)).buffers()[2].to_pybytes()


class ContainerWriter:
    """Writes ``path`` through a dot-named temporary file (the landing
    ignores dot-names) renamed into place by ``close()``: the same input
    imported again replaces the file whole.  The sync marker comes from
    ``path``, so the same rows give the same bytes."""

    def __init__(self, path: Path, stream: str):
        self.path, self.stream = Path(path), stream
        self.tmp = self.path.with_name(f".{self.path.name}.tmp")
        self.sync = hashlib.md5(f"yibao-import/{stream}/{self.path.name}".encode()).digest()
        self.rows = 0
        self._f = self.tmp.open("wb")
        meta = {"avro.schema": json.dumps(schemas.load(stream).avro).encode(),
                "avro.codec": b"deflate"}
        header = bytearray(MAGIC + _long(len(meta)))
        for k, v in meta.items():
            header += _long(len(k)) + k.encode() + _long(len(v)) + v
        self._f.write(bytes(header + _long(0) + self.sync))

    def write(self, batch: pa.RecordBatch | pa.Table) -> None:
        """Encode the whole batch at once (the per-call cost of the column
        operations is paid once), then cut it into blocks."""
        if not batch.num_rows:
            return
        data, offsets = _records(batch, self.stream)
        for start in range(0, batch.num_rows, BLOCK_ROWS):
            end = min(start + BLOCK_ROWS, batch.num_rows)
            raw = data[offsets[start]:offsets[end]]
            block = bytes(cramjam.deflate.compress(raw, level=DEFLATE_LEVEL))
            self._f.write(_long(end - start) + _long(len(block)) + block + self.sync)
            self.rows += end - start

    def close(self) -> None:
        self._f.close()
        os.replace(self.tmp, self.path)

    def abort(self) -> None:
        self._f.close()
        self.tmp.unlink(missing_ok=True)
