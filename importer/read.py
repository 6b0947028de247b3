"""Export files -> batches of source columns, each row with its line number.

* CSV: pyarrow's streaming CSV reader, every column as text, a block at a
  time.  The bytes pass through a decoder first (``_Transcoder``: UTF-8,
  GB18030, GBK, UTF-16, ... in blocks, not rows); a byte sequence that is
  not valid in the encoding becomes U+FFFD, and a row holding one is
  rejected, so one bad line costs that line and not the file.  A row with
  too few or too many fields is rejected by pyarrow's invalid-row handler.
  Line numbers are the file's: the header is line 1, and blank lines
  (skipped) are counted.  A value cannot span lines (quoted newlines end
  the row, which is then ragged and rejected).
* Parquet: ``iter_batches`` of the needed columns, native types.
* XLSX: openpyxl in read-only mode streams the first sheet (or the
  mapping's ``sheet``) row by row — the one path with Python per row:
  an XLSX sheet holds at most 1,048,576 rows.  Cells become text: a
  date-time cell ``YYYY-MM-DD HH:MM:SS.fff`` (Asia/Shanghai wall time,
  rounded to the millisecond: Excel keeps a fraction of a day), a number
  its 15 significant digits (all Excel keeps), a boolean true/false.
"""
from __future__ import annotations

import codecs
import csv
import datetime as dt
import io
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pcsv
import pyarrow.parquet as pq

from pipelines.errors import UsageError

BATCH_ROWS = 65_536
CSV_BLOCK = 1 << 22  # bytes of the file per block (a batch of some 11k settlement rows)
_SAMPLE = 1 << 20  # bytes read to detect the encoding and find the header
REPLACEMENT = "\ufffd"
_REPLACEMENT_UTF8 = REPLACEMENT.encode()

FORMATS = {".csv": "csv", ".txt": "csv", ".tsv": "csv", ".parquet": "parquet", ".pq": "parquet",
           ".xlsx": "xlsx", ".xlsm": "xlsx"}


class FileRejected(Exception):
    """The whole file cannot be imported (one line says why)."""


@dataclass
class Batch:
    lines: np.ndarray  # int64 line (CSV), sheet row (XLSX) or record number (Parquet), 1-based
    columns: dict[int, pa.Array]  # source column index -> values
    native: bool  # typed values (Parquet) rather than text
    # whether a value may hold U+FFFD (an undecodable byte): if not, no
    # column needs searching for one
    replaced: bool = True


@dataclass
class Source:
    path: Path
    kind: str
    header: list[str]
    encoding: str | None = None
    rejects: list[tuple[int, str, str]] = field(default_factory=list)  # (line, reason, raw)

    def batches(self, wanted: list[int]) -> Iterator[Batch]:
        raise NotImplementedError


def format_of(path: Path) -> str:
    kind = FORMATS.get(path.suffix.lower())
    if kind is None:
        raise UsageError(f"{path}: unknown file type {path.suffix!r} — expected one of "
                         f"{', '.join(sorted(FORMATS))}")
    return kind


def open_source(path: Path, encoding: str | None, options: dict) -> Source:
    kind = format_of(path)
    if kind == "csv":
        return CsvSource.open(path, encoding, options)
    if kind == "parquet":
        return ParquetSource.open(path)
    return XlsxSource.open(path, options)


# --- CSV -------------------------------------------------------------------------


def detect_encoding(sample: bytes) -> str:
    """BOM, else UTF-8 if the sample decodes as UTF-8, else GB18030 (a
    superset of GBK and GB2312, what Chinese Windows exports write)."""
    if sample.startswith(codecs.BOM_UTF8):
        return "utf-8-sig"
    if sample.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return "utf-16"
    try:
        codecs.getincrementaldecoder("utf-8")().decode(sample, final=False)
        return "utf-8"
    except UnicodeDecodeError:
        return "gb18030"


class _Transcoder(io.RawIOBase):
    """A binary file in ``encoding`` read as UTF-8, whole lines at a time
    (each ``read`` hands out what one block of the file decodes to, cut
    after its last newline).  Undecodable bytes become U+FFFD (valid UTF-8
    passes through as is, checked by Arrow's validator, not decoded).
    Remembers the physical line numbers of blank lines, which pyarrow
    skips without counting."""

    def __init__(self, raw, encoding: str):
        self.raw = raw
        name = codecs.lookup(encoding).name
        self.utf8 = name in ("utf-8", "utf-8-sig")
        self.bom = codecs.BOM_UTF8 if name == "utf-8-sig" else b""
        # a newline byte is a newline in UTF-8, GB18030, GBK, ...; not in UTF-16/32
        self.by_line = not name.startswith(("utf-16", "utf-32"))
        self.decoder = None if self.by_line else \
            codecs.getincrementaldecoder(encoding)(errors="replace")
        self.encoding = encoding
        self.carry = b""  # an incomplete last line, kept for the next read
        self.pending = b""  # converted, not yet handed out
        self.eof = False
        self.lines_before = 0  # newlines handed out so far
        self.last = b"\n"  # the last byte handed out
        self.blank_lines: list[int] = []  # 1-based physical line numbers
        self.replaced = False  # a U+FFFD handed out so far (made here or in the file)

    def readable(self) -> bool:
        return True

    def _convert(self, data: bytes) -> bytes:
        if self.utf8:
            if data.isascii():
                return data
            if _valid_utf8(data):
                # a U+FFFD written in the file: treated as one made here
                if (np.frombuffer(data, dtype=np.uint8) == 0xEF).any():
                    self.replaced = self.replaced or _REPLACEMENT_UTF8 in data
                return data
            self.replaced = True
            return data.decode("utf-8", "replace").encode("utf-8")
        return self._encode(data.decode(self.encoding, "replace"))

    def _encode(self, text: str) -> bytes:
        self.replaced = self.replaced or REPLACEMENT in text
        return text.encode("utf-8")

    def _next(self) -> bytes:
        chunk = self.raw.read(CSV_BLOCK)
        if self.bom and chunk.startswith(self.bom):
            chunk = chunk[len(self.bom):]
        self.bom = b""
        if not chunk:
            self.eof = True
            if self.decoder is not None:
                return self._encode(self.decoder.decode(b"", final=True))
            data, self.carry = self.carry, b""
            return self._convert(data) if data else b""
        if self.decoder is not None:
            return self._encode(self.decoder.decode(chunk))
        cut = chunk.rfind(b"\n") + 1
        if not cut:
            self.carry += chunk
            return b""
        data = self.carry + chunk[:cut] if self.carry else chunk[:cut]
        self.carry = chunk[cut:]
        return self._convert(data)

    def _note_blank_lines(self, data: bytes) -> None:
        """Counts the newlines and notes the blank lines ("\n\n", "\n\r\n")
        with numpy: Python's bytes search is several times slower."""
        a = np.frombuffer(data, dtype=np.uint8)
        nl = np.flatnonzero(a == ord("\n"))
        after_newline = self.last == b"\n"
        if after_newline:  # the previous block's last newline, at -1
            nl = np.concatenate(([-1], nl))
        gap = np.diff(nl)
        blank = gap == 1
        two = np.flatnonzero(gap == 2)
        if len(two):
            blank[two] |= a[nl[two] + 1] == ord("\r")
        if blank.any():  # the line after nl[k] is blank; nl[k] ends line (k + 1 - after_newline)
            k = np.flatnonzero(blank)
            self.blank_lines += (self.lines_before + k + 2 - after_newline).tolist()
        self.lines_before += len(nl) - after_newline
        self.last = data[-1:]

    def read(self, size: int = -1) -> bytes:
        while not self.pending and not self.eof:
            data = self._next()
            if data:
                self._note_blank_lines(data)
                self.pending = data
        if size is None or size < 0 or size >= len(self.pending):
            out, self.pending = self.pending, b""
        else:
            out, self.pending = self.pending[:size], self.pending[size:]
        return out

    def readinto(self, buf) -> int:
        data = self.read(len(buf))
        buf[:len(data)] = data
        return len(data)


def _valid_utf8(data: bytes) -> bool:
    """Arrow's (vectorised) UTF-8 validation of ``data``, without decoding it."""
    one = pa.Array.from_buffers(pa.string(), 1, [
        None, pa.py_buffer(np.array([0, len(data)], dtype=np.int32)), pa.py_buffer(data)])
    try:
        one.validate(full=True)
        return True
    except pa.ArrowInvalid:
        return False


@dataclass
class CsvSource(Source):
    delimiter: str = ","

    @classmethod
    def open(cls, path: Path, encoding: str | None, options: dict) -> CsvSource:
        with path.open("rb") as f:
            sample = f.read(_SAMPLE)
        if encoding is None:
            encoding = detect_encoding(sample)
        elif encoding.replace("-", "").replace("_", "").lower() == "utf8" and \
                sample.startswith(codecs.BOM_UTF8):
            encoding = "utf-8-sig"  # a BOM is not part of the first column's name
        text = codecs.getincrementaldecoder(encoding)(errors="replace").decode(sample)
        first = text.splitlines()[0] if text else ""
        if not first.strip():
            raise FileRejected("no header line (the file is empty or starts with a blank line)")
        delimiter = options.get("delimiter") or max(",\t;|", key=first.count)
        header = next(csv.reader([first], delimiter=delimiter))
        header = [h.strip().lstrip("\ufeff") for h in header]
        return cls(path=path, kind="csv", header=header, encoding=encoding, delimiter=delimiter)

    def batches(self, wanted: list[int]) -> Iterator[Batch]:
        names = [f"c{i}" for i in range(len(self.header))]  # positions: headers may repeat
        skipped: list[int] = []  # pyarrow row numbers of rejected rows, sorted

        def invalid(row) -> str:
            skipped.append(row.number)
            self.rejects.append((row.number, f"{row.actual_columns} fields, the header has "
                                 f"{row.expected_columns}", row.text))
            return "skip"

        with self.path.open("rb") as raw:
            stream = _Transcoder(raw, self.encoding)
            reader = pcsv.open_csv(
                stream,
                # a block is what the transcoder hands out: one block of the
                # file decoded (UTF-8 from GB18030 or UTF-16 can be 1.5x longer)
                read_options=pcsv.ReadOptions(column_names=names, skip_rows=1,
                                              block_size=2 * CSV_BLOCK, use_threads=False),
                parse_options=pcsv.ParseOptions(delimiter=self.delimiter,
                                                invalid_row_handler=invalid),
                convert_options=pcsv.ConvertOptions(
                    column_types={names[i]: pa.string() for i in wanted},
                    include_columns=[names[i] for i in wanted],
                    strings_can_be_null=False, quoted_strings_can_be_null=False,
                    check_utf8=False),  # the transcoder hands out valid UTF-8 only
            )
            done = 0
            while True:
                try:
                    rb = reader.read_next_batch()
                except StopIteration:
                    break
                except pa.ArrowInvalid as err:
                    raise FileRejected(f"unreadable CSV after line {done + 1}: {err}") from err
                k = np.arange(done, done + rb.num_rows, dtype=np.int64)
                done += rb.num_rows
                # pyarrow numbers rows from the header (1) and skips blank lines;
                # rows it rejected are not in the batch: both give line numbers back
                adj = np.array(sorted(skipped), dtype=np.int64)
                adj = adj - 2 - np.arange(len(adj))
                rows = k + 2 + np.searchsorted(adj, k, side="right")
                # the reader has read this batch's bytes (and maybe more): if
                # none of them held a U+FFFD, no value of the batch does
                yield Batch(lines=self._physical(rows, stream.blank_lines),
                            columns={i: rb.column(names[i]) for i in wanted}, native=False,
                            replaced=stream.replaced)
            # rows rejected by the handler: physical line numbers too
            self.rejects = [(int(self._physical(np.array([n]), stream.blank_lines)[0]), why, raw)
                            for n, why, raw in self.rejects]

    @staticmethod
    def _physical(rows: np.ndarray, blank_lines: list[int]) -> np.ndarray:
        """pyarrow row numbers (blank lines not counted) -> file line numbers."""
        if not blank_lines:
            return rows
        blank = np.array(sorted(blank_lines), dtype=np.int64)
        adj = blank - 1 - np.arange(len(blank))  # non-blank lines before each blank one
        return rows + np.searchsorted(adj, rows - 1, side="right")


# --- Parquet -----------------------------------------------------------------------


@dataclass
class ParquetSource(Source):
    @classmethod
    def open(cls, path: Path) -> ParquetSource:
        try:
            names = pq.ParquetFile(path).schema_arrow.names
        except Exception as err:  # noqa: BLE001 - any damage: the file is rejected
            raise FileRejected(f"not a readable Parquet file: {err}") from err
        return cls(path=path, kind="parquet", header=list(names))

    def batches(self, wanted: list[int]) -> Iterator[Batch]:
        pf = pq.ParquetFile(self.path)
        done = 0
        try:
            for rb in pf.iter_batches(batch_size=BATCH_ROWS, columns=[self.header[i] for i in wanted]):
                lines = np.arange(done + 1, done + rb.num_rows + 1, dtype=np.int64)
                done += rb.num_rows
                yield Batch(lines=lines, columns={i: rb.column(j) for j, i in enumerate(wanted)},
                            native=True)
        except (OSError, pa.ArrowException) as err:
            raise FileRejected(f"unreadable Parquet after record {done}: {err}") from err


# --- XLSX --------------------------------------------------------------------------


def cell_text(v) -> str:
    """An Excel cell's value as the text an export would have written."""
    if v is None:
        return ""
    if isinstance(v, str):
        return v
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, dt.datetime):
        v = v + dt.timedelta(microseconds=500)  # to the nearest millisecond
        v = v.replace(microsecond=v.microsecond // 1000 * 1000)
        if v.hour == v.minute == v.second == v.microsecond == 0:
            return v.strftime("%Y-%m-%d 00:00:00")
        return v.isoformat(sep=" ", timespec="milliseconds")
    if isinstance(v, dt.date):
        return v.isoformat()
    if isinstance(v, dt.time):
        return v.isoformat()
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        return str(int(v)) if v.is_integer() and abs(v) < 1e15 else format(v, ".15g")
    return str(v)


@dataclass
class XlsxSource(Source):
    sheet: str | None = None

    @classmethod
    def open(cls, path: Path, options: dict) -> XlsxSource:
        import openpyxl

        try:
            wb = openpyxl.load_workbook(path, read_only=True, data_only=True)
        except Exception as err:  # noqa: BLE001 - not a workbook: the file is rejected
            raise FileRejected(f"not a readable XLSX workbook: {err}") from err
        try:
            ws = cls._sheet(wb, options.get("sheet"))
            first = next(ws.iter_rows(max_row=1, values_only=True), ())
            header = [cell_text(v).strip() for v in first]
            while header and not header[-1]:
                header.pop()
        finally:
            wb.close()
        return cls(path=path, kind="xlsx", header=header, sheet=options.get("sheet"))

    @staticmethod
    def _sheet(wb, name):
        if name is None:
            return wb.worksheets[0]
        if name not in wb.sheetnames:
            raise FileRejected(f"no sheet {name!r} (sheets: {', '.join(wb.sheetnames)})")
        return wb[name]

    def batches(self, wanted: list[int]) -> Iterator[Batch]:
        import openpyxl

        wb = openpyxl.load_workbook(self.path, read_only=True, data_only=True)
        try:
            ws = self._sheet(wb, self.sheet)
            width = len(self.header)
            cols: list[list[str]] = [[] for _ in wanted]
            lines: list[int] = []
            for number, row in enumerate(ws.iter_rows(min_row=2, values_only=True), start=2):
                if all(v is None or v == "" for v in row):
                    continue  # blank rows (and the empty tail of a sheet)
                extra = [v for v in row[width:] if v not in (None, "")]
                if extra:
                    self.rejects.append((number, f"{width + len(extra)}+ cells, the header has "
                                         f"{width}", repr(tuple(row))))
                    continue
                for c, i in zip(cols, wanted):
                    c.append(cell_text(row[i]) if i < len(row) else "")
                lines.append(number)
                if len(lines) == BATCH_ROWS:
                    yield self._batch(lines, cols, wanted)
                    cols, lines = [[] for _ in wanted], []
            if lines:
                yield self._batch(lines, cols, wanted)
        finally:
            wb.close()

    @staticmethod
    def _batch(lines, cols, wanted) -> Batch:
        return Batch(lines=np.array(lines, dtype=np.int64),
                     columns={i: pa.array(c, pa.string()) for c, i in zip(cols, wanted)},
                     native=False)


