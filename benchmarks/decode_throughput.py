"""Avro -> Arrow decoding throughput: the fastavro fallback vs the polars
fast path of transforms/decode.py, on N settlement records (deflate).

    .venv/bin/python benchmarks/decode_throughput.py [N=200000]
"""
from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

import fastavro
import pyarrow as pa

import schemas
from tests.test_decode import fake_record
from transforms.decode import read_avro_file


def main(n: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "settlement.avro"
        with open(path, "wb") as f:
            records = (fake_record("settlement", i) for i in range(n))
            fastavro.writer(f, schemas.load("settlement").parsed, records, codec="deflate")
        tables = {}
        for label, fast in [("fastavro + from_pylist", False), ("polars (fast path)", True)]:
            best = float("inf")
            for _ in range(3):  # best of 3: the machine may be busy
                start = time.perf_counter()
                batches, dead, count = read_avro_file(str(path), "settlement", f"{tmp}/q", fast=fast)
                best = min(best, time.perf_counter() - start)
            assert dead == [] and count == n
            tables[fast] = pa.Table.from_batches(batches)
            print(f"{label:>24}: {n:,} records in {best:.2f} s = {n / best:,.0f} rec/s")
        assert tables[True].equals(tables[False]), "the two paths must decode identically"


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 200_000)
