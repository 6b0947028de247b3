"""``yibao import``: the platform's table exports -> contract Avro.

    yibao import --stream STREAM --out DIR [--mapping FILE|zh] [--encoding ENC] FILE...

Each input file becomes ``DIR/<stream>/<stem>.avro`` (the contract schema,
deflate), replaced whole when the same file is imported again.  Rows that
cannot be converted go to ``DIR/_rejected/<stream>/<stem>.csv`` (mode
0600: they hold the rows' values, personal data included) with their line
number and reason; neither ``_rejected`` nor a dot-named temporary file is
read by the pipelines.  Exit 0: every row written; 3: some rows or files
rejected; 2: a usage error.  docs/IMPORT.md has the details.
"""
from __future__ import annotations

import argparse
import codecs
import csv
import json
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

import schemas
from importer import mapping as mapping_mod
from importer.avro_write import ContainerWriter
from importer.convert import convert_native, convert_text, first_reason
from importer.read import REPLACEMENT, FileRejected, format_of, open_source
from pipelines.errors import UsageError

EXIT_REJECTED = 3


@dataclass
class FileResult:
    path: Path
    out: Path | None = None
    encoding: str | None = None
    read: int = 0
    written: int = 0
    rejected: int = 0
    error: str | None = None  # the whole file was rejected
    unknown: list[str] = field(default_factory=list)
    defaulted: list[str] = field(default_factory=list)
    rejects_path: Path | None = None


class _Rejects:
    """``DIR/_rejected/<stream>/<stem>.csv``: line, reason, the row's values.
    Created (0600) at the first reject; UTF-8 with a BOM so Excel shows the
    Chinese text."""

    def __init__(self, path: Path):
        self.path, self._f, self._w = path, None, None

    def add(self, line: int, reason: str, values: str) -> None:
        if self._f is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            os.chmod(self.path, 0o600)  # an existing file keeps its mode otherwise
            self._f = os.fdopen(fd, "w", encoding="utf-8-sig", newline="")
            self._w = csv.writer(self._f)
            self._w.writerow(["line", "reason", "values"])
        self._w.writerow([line, reason, values])

    def close(self) -> bool:
        """True if anything was written; otherwise a stale file is removed."""
        if self._f is None:
            self.path.unlink(missing_ok=True)
            return False
        self._f.close()
        return True


def _prefixed(name: str, reasons: pa.Array) -> pa.Array:
    return pc.binary_join_element_wise(pa.scalar(f"{name}: "), reasons, "")


def _convert(batch, plan, header, stream: str, mapping) -> tuple[pa.Table, pa.Array]:
    """One batch -> (contract table of every row, reason per row or null)."""
    schema = schemas.load(stream)
    n = len(batch.lines)
    columns, reasons = [], []
    if not batch.native and batch.replaced:  # undecodable bytes: say so, not a type error
        for idx, col in batch.columns.items():
            bad = pc.match_substring(col, REPLACEMENT)
            if pc.any(bad).as_py():
                reasons.append(pc.if_else(bad, pa.scalar(
                    f"{header[idx]}: bytes that are not valid in the file's encoding "
                    "(wrong --encoding?)"), pa.scalar(None, pa.string())))
    for f in schema.arrow:
        idx = plan.sources.get(f.name)
        if idx is None:  # absent: the contract's default (null)
            columns.append(pa.nulls(n, f.type))
            continue
        col = batch.columns[idx]
        if isinstance(col, pa.ChunkedArray):
            col = col.combine_chunks()
        fmt = mapping.formats.get(f.name, {})
        try:
            res = convert_native(col, f, fmt) if batch.native else convert_text(col, f, fmt)
        except ValueError as err:
            raise FileRejected(f"column {header[idx]!r} -> {f.name}: {err}") from err
        columns.append(res.values)
        if res.reasons.null_count < n:  # some value of this field is bad
            reasons.append(_prefixed(f.name, res.reasons))
    table = pa.Table.from_arrays(columns, schema=schema.arrow)
    return table, first_reason(*reasons) if reasons else pa.nulls(n, pa.string())


def _values_json(batch, header, rows: np.ndarray) -> list[str]:
    """The rejected rows' source values (only for rejects: Python per row is fine)."""
    cols = {header[i]: col.take(pa.array(rows)).to_pylist() for i, col in batch.columns.items()}
    return [json.dumps({k: (v if isinstance(v, str) or v is None else str(v))
                        for k, v in zip(cols, vals)}, ensure_ascii=False)
            for vals in zip(*cols.values())] if cols else ["{}"] * len(rows)


def import_file(path: Path, stream: str, out: Path, mapping, encoding: str | None) -> FileResult:
    res = FileResult(path)
    target = out / stream / f"{path.stem}.avro"
    try:
        src = open_source(path, encoding or mapping.options.get("encoding"), mapping.options)
        res.encoding = src.encoding
        plan = mapping_mod.resolve(src.header, mapping)
        res.unknown, res.defaulted = plan.unknown, plan.defaulted
        if plan.error:
            raise FileRejected(plan.error)
    except FileRejected as err:
        res.error = str(err)
        return res
    target.parent.mkdir(parents=True, exist_ok=True)
    writer = ContainerWriter(target, stream)
    rejects = _Rejects(out / "_rejected" / stream / f"{path.stem}.csv")
    try:
        for batch in src.batches(sorted(set(plan.sources.values()))):
            table, reason = _convert(batch, plan, src.header, stream, mapping)
            bad = reason.is_valid()
            res.read += table.num_rows
            if pc.any(bad).as_py():
                rows = np.flatnonzero(bad.to_numpy(zero_copy_only=False))
                why = reason.take(pa.array(rows)).to_pylist()
                for line, r, values in zip(batch.lines[rows], why,
                                           _values_json(batch, src.header, rows)):
                    rejects.add(int(line), r, values)
                res.rejected += len(rows)
                table = table.filter(pc.invert(bad))
            writer.write(table)
            res.written += table.num_rows
        for line, why, raw in src.rejects:  # rows the reader could not split into fields
            rejects.add(line, why, raw)
            res.read += 1
            res.rejected += 1
    except FileRejected as err:
        writer.abort()
        rejects.close()
        res.error, res.written = str(err), 0
        return res
    except BaseException:
        writer.abort()
        rejects.close()
        raise
    writer.close()
    res.out = target
    if rejects.close():
        res.rejects_path = rejects.path
    return res


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="yibao import",
        description="Convert the platform's CSV / XLSX / Parquet exports into contract Avro: "
        "DIR/<stream>/<file stem>.avro per input file; rows that cannot be converted go to "
        "DIR/_rejected/<stream>/<file stem>.csv with their line and reason (docs/IMPORT.md).")
    p.add_argument("--stream", required=True, choices=schemas.STREAM_NAMES)
    p.add_argument("--out", required=True, help="landing directory (the nightly's --input)")
    p.add_argument("--mapping", help="YAML mapping of contract fields to source columns, or "
                   f"a shipped one: {', '.join(mapping_mod.shipped_names())} "
                   "(default: the contract's names)")
    p.add_argument("--encoding", help="CSV encoding, e.g. gb18030, gbk, utf-8 "
                   "(default: detected — BOM, UTF-8, else GB18030)")
    p.add_argument("files", nargs="+", metavar="FILE", help=".csv/.tsv/.txt, .xlsx, .parquet")
    return p


def import_main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    if args.encoding:
        try:
            codecs.lookup(args.encoding)
        except LookupError as err:
            raise UsageError(f"--encoding {args.encoding}: unknown encoding — "
                             "try utf-8 or gb18030") from err
    files = [Path(f) for f in args.files]
    stems: dict[str, Path] = {}
    for f in files:
        if not f.is_file():
            raise UsageError(f"{f}: no such file")
        format_of(f)
        if f.stem in stems:
            raise UsageError(f"{stems[f.stem]} and {f} would both be written to "
                             f"{args.stream}/{f.stem}.avro — rename one")
        stems[f.stem] = f
    mapping = mapping_mod.load(args.mapping, args.stream)
    out = Path(args.out)
    results = []
    for f in files:
        t0 = time.perf_counter()
        r = import_file(f, args.stream, out, mapping, args.encoding)
        results.append(r)
        print(_summary_line(r, time.perf_counter() - t0, out))
    read = sum(r.read for r in results)
    written = sum(r.written for r in results)
    rejected = sum(r.rejected for r in results)
    failed = sum(1 for r in results if r.error)
    print(f"{args.stream}: {len(results)} file(s), rows read {read:,}, written {written:,}, "
          f"rejected {rejected:,}" + (f"; {failed} file(s) rejected whole" if failed else ""))
    return EXIT_REJECTED if rejected or failed else 0


def _summary_line(r: FileResult, seconds: float, out: Path) -> str:
    if r.error:
        return f"{r.path}: file rejected: {r.error}"
    parts = [f"{r.path} -> {r.out}"]
    if r.encoding:
        parts.append(f"({r.encoding})")
    parts.append(f"read {r.read:,}, written {r.written:,}, rejected {r.rejected:,} "
                 f"in {seconds:.1f} s")
    line = " ".join(parts)
    if r.rejects_path:
        line += f"; rejects: {r.rejects_path}"
    if r.defaulted:
        line += f"; absent, contract default: {', '.join(r.defaulted)}"
    if r.unknown:
        line += f"; unknown columns ignored: {', '.join(r.unknown)}"
    return line


if __name__ == "__main__":
    sys.exit(import_main())
