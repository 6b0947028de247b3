"""``yibao import`` throughput and peak memory on settlement exports.

    .venv/bin/python benchmarks/import_throughput.py [ROWS=1000000 2000000 ...]

For each size: a settlement CSV (UTF-8, naive Shanghai times, money as
decimal text: what an export writes) of ROWS rows is made from generated
data, then imported in a fresh process pinned to one CPU (Linux
``sched_setaffinity``: the issue's target is "on one core").  We report
rows per CPU second (``time.process_time`` around the import: every
thread of the process, start-up excluded), rows per wall-clock second,
and the process's peak RSS.  The same for GB18030 with Chinese labels,
and for Parquet.  Two sizes (1M and 2M rows by default) show that peak
memory does not depend on the file size: the reader, the conversion and
the writer hold one block at a time.  On a shared machine the CPU figure
is the honest one; the wall figure and the load average say how busy
the neighbours were.
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
import os, resource, sys, time
if hasattr(os, "sched_setaffinity"):  # one core, before pyarrow starts its threads
    os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
from pathlib import Path
from importer.cli import import_file
from importer import mapping
stream, src, out, spec = sys.argv[1:5]
m = mapping.load(spec or None, stream)
cpu0, t0 = time.process_time(), time.perf_counter()
r = import_file(Path(src), stream, Path(out), m, None)
cpu, secs = time.process_time() - cpu0, time.perf_counter() - t0
assert r.error is None and r.rejected == 0, (r.error, r.rejected)
cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
print(r.written, secs, cpu, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, cpus)
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
    written, secs, cpu, rss_kb, cpus = res.stdout.split()
    rows = int(written)
    return {"rows": rows, "cpu_seconds": round(float(cpu), 2),
            "rows_per_cpu_s": round(rows / float(cpu)), "seconds": round(float(secs), 2),
            "rows_per_s": round(rows / float(secs)), "peak_rss_mb": round(int(rss_kb) / 1024),
            "cpus": int(cpus), "load_avg_1m": round(os.getloadavg()[0], 2)}


def _table(results: list[dict]) -> str:
    head = ("format", "rows", "MB", "CPU s", "rows/CPU-s", "wall s", "rows/s", "peak RSS MB",
            "load")
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in results:
        lines.append(f"| {r['format']} | {r['rows']:,} | {r['mb']} | {r['cpu_seconds']} | "
                     f"{r['rows_per_cpu_s']:,} | {r['seconds']} | {r['rows_per_s']:,} | "
                     f"{r['peak_rss_mb']} | {r['load_avg_1m']} |")
    return "\n".join(lines)


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
    print(_table(results))
    print(f"wrote {out}")


if __name__ == "__main__":
    args = [int(a) for a in sys.argv[1:]] or [1_000_000, 2_000_000]
    main(args)
