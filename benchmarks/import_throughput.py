"""``yibao import`` throughput and peak memory on settlement CSV exports.

    .venv/bin/python benchmarks/import_throughput.py [ROWS=1000000 ...]

For each size: a settlement CSV (UTF-8, naive Shanghai times, money as
decimal text: what an export writes) of ROWS rows is made from generated
data, then imported in a fresh process; we report rows/s and that
process's peak RSS.  A second size (a quarter of the first by default)
shows whether peak memory depends on the file size (it should not: the
reader, the conversion and the writer hold one batch at a time).  The
same for GB18030 with Chinese labels, and for Parquet.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

import schemas
from datagen.generate import generate
from transforms.decode import read_avro_file

CHILD = """
import resource, sys, time
from pathlib import Path
from importer.cli import import_file
from importer import mapping
stream, src, out, spec = sys.argv[1:5]
t0 = time.perf_counter()
r = import_file(Path(src), stream, Path(out), mapping.load(spec or None, stream), None)
secs = time.perf_counter() - t0
assert r.error is None and r.rejected == 0, (r.error, r.rejected)
u = resource.getrusage(resource.RUSAGE_SELF)
print(r.written, secs, u.ru_utime + u.ru_stime, u.ru_maxrss)
"""


def _sample(tmp: Path) -> pa.Table:
    generate(str(tmp / "gen"), seed=1, persons=2000)
    batches = []
    for path in sorted((tmp / "gen" / "settlement").glob("*.avro")):
        batches += read_avro_file(str(path), "settlement", str(tmp / "q"))[0]
    return pa.Table.from_batches(batches).select(schemas.load("settlement").field_names)


def _as_text(table: pa.Table) -> pa.Table:
    cols = {}
    for f in schemas.load("settlement").arrow:
        col = table.column(f.name)
        if f.type == schemas.TIMESTAMP:
            col = pc.strftime(pc.local_timestamp(col.cast(pa.timestamp("ms", tz="Asia/Shanghai"))),
                              "%Y-%m-%d %H:%M:%S")
        elif f.type == pa.date32():
            col = pc.strftime(col, "%Y-%m-%d")
        elif f.type == pa.bool_():
            col = pc.if_else(col, "1", "0")
        cols[f.name] = col.cast(pa.string()).fill_null("")
    return pa.table(cols)


def _write(text: pa.Table, rows: int, path: Path, encoding: str, labels: dict | None) -> None:
    import pyarrow.csv as pcsv

    names = [(labels or {}).get(n, n) for n in text.column_names]
    with path.open("wb") as f:
        header = ",".join(names) + "\n"
        f.write(header.encode(encoding))
        done = 0
        while done < rows:
            part = text.slice(0, min(text.num_rows, rows - done))
            if encoding == "utf-8":
                pcsv.write_csv(part, f, pcsv.WriteOptions(include_header=False))
            else:
                import io
                buf = io.BytesIO()
                pcsv.write_csv(part, buf, pcsv.WriteOptions(include_header=False))
                f.write(buf.getvalue().decode("utf-8").encode(encoding))
            done += part.num_rows


def _run(stream: str, src: Path, out: Path, spec: str) -> dict:
    res = subprocess.run([sys.executable, "-c", CHILD, stream, str(src), str(out), spec],
                         check=True, capture_output=True, text=True)
    written, secs, cpu, rss_kb = res.stdout.split()
    # CPU seconds (the whole process, start-up included) as well as wall time:
    # on a shared machine the wall time says more about the neighbours
    return {"rows": int(written), "seconds": round(float(secs), 2),
            "rows_per_s": round(int(written) / float(secs)), "cpu_seconds": round(float(cpu), 2),
            "rows_per_cpu_s": round(int(written) / float(cpu)),
            "peak_rss_mb": round(int(rss_kb) / 1024), "load_avg_1m": os.getloadavg()[0]}


def main(sizes: list[int]) -> None:
    import yaml

    from importer.mapping import SHIPPED

    labels = yaml.safe_load((SHIPPED / "zh_settlement.yaml").read_text(encoding="utf-8"))["columns"]
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        sample = _sample(tmp)
        text = _as_text(sample)
        for rows in sizes:
            for label, encoding, spec in [("csv utf-8", "utf-8", ""),
                                          ("csv gb18030 zh", "gb18030", "zh")]:
                src = tmp / f"s{rows}.csv"
                _write(text, rows, src, encoding, labels if spec else None)
                r = _run("settlement", src, tmp / "out", spec)
                results.append({"format": label, **r, "mb": round(src.stat().st_size / 2**20)})
                print(json.dumps(results[-1]), flush=True)
                src.unlink()
            src = tmp / f"s{rows}.parquet"
            reps = -(-rows // sample.num_rows)
            pq.write_table(pa.concat_tables([sample] * reps).slice(0, rows), src)
            r = _run("settlement", src, tmp / "out", "")
            results.append({"format": "parquet", **r, "mb": round(src.stat().st_size / 2**20)})
            print(json.dumps(results[-1]), flush=True)
            src.unlink()
    out = Path(__file__).parent / "results" / f"{time.strftime('%Y-%m-%d')}-import-throughput.json"
    out.write_text(json.dumps(results, indent=1) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    args = [int(a) for a in sys.argv[1:]] or [1_000_000, 250_000]
    main(args)
