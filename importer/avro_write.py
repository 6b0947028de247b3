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

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from isal import isal_zlib

import schemas

MAGIC = b"Obj\x01"
BLOCK_ROWS = 4096  # records per container block: what one damaged block can cost
# Raw deflate (RFC 1951, what Avro's "deflate" is) by ISA-L (python-isal),
# level 1: about 3x cramjam's level 1 and 5x zlib's, files as small as
# zlib's level 1 (benchmarks/import_throughput.py).
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
    matrix of which each row keeps its first ``nbytes`` bytes (its last,
    if ``right``; all of them if ``nbytes`` is None).  Adjacent fixed
    pieces are merged before the per-row concatenation (fewer pieces, much
    less work for ``binary_join_element_wise``); a run of pieces that keep
    every byte is the matrix's memory as is."""

    def __init__(self, mat: np.ndarray, nbytes: np.ndarray | None = None, right: bool = False):
        self.mat, self.nbytes, self.right = mat, nbytes, right

    def keep(self) -> np.ndarray:
        width = self.mat.shape[1]
        if self.nbytes is None:
            return np.ones((len(self.mat), width), dtype=bool)
        if self.right:
            return np.arange(width)[None, :] >= (width - self.nbytes)[:, None]
        return np.arange(width)[None, :] < self.nbytes[:, None]

    @staticmethod
    def merge(parts: list[_Fixed]) -> list[pa.Array]:
        """The pieces' bytes per row: one binary array for each run of pieces
        that keep every byte (the matrix as is) or of pieces that do not (a
        mask over their columns only)."""
        groups: list[list[_Fixed]] = []
        for p in parts:
            if groups and (groups[-1][0].nbytes is None) == (p.nbytes is None):
                groups[-1].append(p)
            else:
                groups.append([p])
        return [_Fixed._merge_group(g) for g in groups]

    @staticmethod
    def _merge_group(parts: list[_Fixed]) -> pa.Array:
        rows = len(parts[0].mat)
        edges = np.cumsum([0] + [p.mat.shape[1] for p in parts])
        mat = np.empty((rows, edges[-1]), dtype=np.uint8)
        for p, a, b in zip(parts, edges[:-1], edges[1:]):
            mat[:, a:b] = p.mat
        if parts[0].nbytes is None:
            return _binary(mat.reshape(-1), np.full(rows, edges[-1], dtype=np.int64))
        keep = np.empty(mat.shape, dtype=bool)
        lengths = np.zeros(rows, dtype=np.int64)
        for p, a, b in zip(parts, edges[:-1], edges[1:]):
            keep[:, a:b] = p.keep()
            lengths += p.nbytes
        return _binary(mat[keep], lengths)


def _varints(values: np.ndarray, present: np.ndarray | None = None) -> _Fixed:
    """Avro longs (zigzag varints) of int64 ``values``; rows where
    ``present`` is False get no bytes."""
    v = values.astype(np.int64, copy=False)
    z = ((v << 1) ^ (v >> 63)).view(np.uint64)
    top = int(z.max()) if len(z) else 0
    width = max(1, -(-top.bit_length() // 7))
    if width == 1:  # every value below 128: one byte each (lengths, branch indexes)
        mat = z.astype(np.uint8).reshape(-1, 1)
        nbytes = None
    else:
        mat = np.empty((len(z), width), dtype=np.uint8)
        nbytes = np.ones(len(z), dtype=np.int64)
        rest = z
        for k in range(width):
            after = rest >> np.uint64(7)
            more = after != 0
            mat[:, k] = (rest & np.uint64(0x7F)).astype(np.uint8) | (more.view(np.uint8) << 7)
            if k < width - 1:
                nbytes += more
            rest = after
        if nbytes.min() == width:  # all as wide (times, dates): no mask
            nbytes = None
    if present is not None and not present.all():
        nbytes = np.where(present, width if nbytes is None else nbytes, 0)
    return _Fixed(mat, nbytes)


def varints(values: np.ndarray, present: np.ndarray | None = None) -> pa.Array:
    return _Fixed.merge([_varints(values, present)])[0]


def _ints(arr: pa.Array) -> np.ndarray:
    """Integer view of an int/date/timestamp column (nulls read as 0)."""
    storage = {pa.date32(): pa.int32()}.get(arr.type, pa.int64())
    if pa.types.is_integer(arr.type):
        storage = arr.type
    arr = arr.cast(storage)
    if arr.null_count:
        arr = arr.fill_null(0)
    return arr.to_numpy(zero_copy_only=False).astype(np.int64, copy=False)


def _decimal_unscaled(arr: pa.Array) -> np.ndarray:
    """The unscaled integers of a decimal128 column whose values fit in
    int64 (the contract's decimal(16,2) always does): the low 8 bytes."""
    arr = arr.fill_null(pa.scalar(0, arr.type)) if arr.null_count else arr
    words = np.frombuffer(arr.buffers()[1], dtype=np.int64)
    return words[2 * arr.offset: 2 * (arr.offset + len(arr)): 2].copy()


def _decimal_bytes(arr: pa.Array, present: np.ndarray | None) -> list[_Fixed]:
    """bytes-decimal: the varint length, then the big-endian two's-complement
    value, both in one piece: a row keeps the last ``1 + length`` bytes, the
    length written over the first sign byte it does not keep."""
    v = _decimal_unscaled(arr)
    mag = np.abs(v).astype(np.uint64)
    # fastavro's length: (bit_length(|v|) + 8) // 8, i.e. one byte more for
    # each threshold 2**7, 2**15, ... that |v| reaches
    top = int(mag.max()) if len(mag) else 0
    width = (top.bit_length() + 8) // 8
    nbytes = np.ones(len(v), dtype=np.int64)
    for m in range(2, width + 1):
        nbytes += mag >= np.uint64(1 << (8 * m - 9))
    # big-endian, the last ``width`` bytes (the others are sign bytes for every
    # row) after one more column for the length of the widest
    mat = np.empty((len(v), width + 1), dtype=np.uint8)
    mat[:, 1:] = v.astype(">i8").view(np.uint8).reshape(len(v), 8)[:, 8 - width:]
    mat[np.arange(len(v)), width - nbytes] = (2 * nbytes).astype(np.uint8)  # zigzag, < 128
    nbytes += 1
    if present is not None:
        nbytes = np.where(present, nbytes, 0)
    return [_Fixed(mat, nbytes, right=True)]


def _strings(arr: pa.Array, present: np.ndarray | None) -> list[pa.Array | _Fixed]:
    arr = arr.fill_null("") if arr.null_count else arr
    if pa.types.is_large_string(arr.type) or pa.types.is_large_binary(arr.type):
        arr = arr.cast(pa.string())
    offsets = _offsets(arr)
    lengths = np.diff(offsets)
    if len(arr) and lengths.min() == lengths.max() and (present is None or present.all()):
        # codes, ids, region numbers: one length for the whole batch, so the
        # bytes are a (rows x length) matrix, merged with their neighbours
        if not lengths[0]:
            return [_varints(lengths)]
        data = np.frombuffer(arr.buffers()[2], dtype=np.uint8)[offsets[0]:offsets[-1]]
        return [_varints(lengths), _Fixed(data.reshape(len(arr), -1))]
    return [_varints(lengths, present), arr.cast(pa.binary())]


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
        return [_Fixed(b[:, None], None if present is None else present.astype(np.int64))]
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
            arrays += _Fixed.merge(run)
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
            block = isal_zlib.compress(raw, DEFLATE_LEVEL, -15)  # wbits -15: raw deflate
            self._f.write(_long(end - start) + _long(len(block)) + block + self.sync)
            self.rows += end - start

    def close(self) -> None:
        self._f.close()
        os.replace(self.tmp, self.path)

    def abort(self) -> None:
        self._f.close()
        self.tmp.unlink(missing_ok=True)
