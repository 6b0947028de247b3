"""Freshness of the streaming job: time from an Avro file landing in the
watched directory to its values in the warehouse (median and p95).

The job runs as ``python -m pipelines.stream --landing DIR`` (what ``yibao
stream`` runs) in a subprocess.  Every few seconds a file of settlements of
a business day of its own is renamed into ``DIR/settlement``; the clock
stops when that day's I08 DAY row for the province counts all of the file's
records.  Latency = poll interval (a file is taken once its size held still
over two listings) + early firing delay + the day's SQL + the upsert.

    .venv/bin/python benchmarks/stream_freshness.py [--files 20] [--records 200]
        [--interval 2] [--early-firing-seconds 1] [--poll-interval 0.5]
        [--rate R] [--same-day]

``--rate R``: records per second (each file holds R x interval records),
e.g. 100, 1000, 5000.  ``--same-day``: every file is of the same business
day, so the day grows file by file: the latency of the first and the last
files shows the per-pane cost as the day grows.

``--pane-cost``: no job; in this process, the cost of one firing's work —
a batch of ``--records`` new settlements through the streaming steps
(transforms.streaming_compute.change_deltas, the day's sums, its DAY rows)
— when the day already holds 0, 1,000, 10,000 and 50,000 settlements
(issue 20: "a pane must cost what arrived, not what the day holds").
"""
from __future__ import annotations

import argparse
import datetime as dt
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import duckdb

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.builders import settlement, write_avro  # noqa: E402
from warehouse.duckdb_store import connect  # noqa: E402

FIRST_DAY = dt.date(2023, 3, 1)


def day_rows(warehouse: Path) -> dict[dt.date, int]:
    """Province I08 DAY denominators written so far (empty while the file is busy)."""
    try:
        con = connect(str(warehouse), read_only=True)
    except duckdb.Error:
        return {}
    try:
        rows = con.execute("""SELECT period_start, denominator FROM indicator_values
            WHERE indicator_code = 'I08' AND region_code = '640000' AND period_type = 'DAY'
              AND pipeline = 'stream'""").fetchall()
    except duckdb.Error:
        return {}
    finally:
        con.close()
    return {day: int(den) for day, den in rows}


def job_started(warehouse: Path) -> bool:
    try:
        con = connect(str(warehouse), read_only=True)
    except duckdb.Error:
        return False
    try:
        return bool(con.execute("SELECT count(*) FROM pipeline_runs").fetchone()[0])
    except duckdb.Error:
        return False
    finally:
        con.close()


def make_file(staging: Path, i: int, records: int, same_day: bool = False) -> tuple[Path, dt.date]:
    day = FIRST_DAY + dt.timedelta(days=0 if same_day else i)
    noon = dt.datetime.combine(day, dt.time(4), tzinfo=dt.UTC)  # 12:00 in Shanghai
    recs = [settlement(f"f{i}-{n}", noon + dt.timedelta(seconds=n % 3600)) for n in range(records)]
    return write_avro(staging / f"day{i:03d}.avro", "settlement", recs), day


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def pane_cost(batch: int, sizes=(0, 1_000, 10_000, 50_000)) -> None:
    import reference
    from pipelines.config import load_config
    from transforms.context import RunContext
    from transforms.streaming import SumParts, stream_breakdown, stream_rows
    from transforms.streaming_compute import FOREVER, change_deltas, parts_components

    ctx = RunContext(ref=reference.load(), config=load_config(), as_of=FOREVER, months=[])
    noon = dt.datetime.combine(FIRST_DAY, dt.time(4), tzinfo=dt.UTC)
    sums, made = SumParts(), 0

    def feed(acc, n: int):
        nonlocal made
        recs = [dict(settlement(f"p{made + i}", noon + dt.timedelta(seconds=(made + i) % 3600)),
                     _source="bench", _index=made + i) for i in range(n)]
        made += n
        deltas = change_deltas("settlement", [(r["setl_id"], [], [("settlement", r)]) for r in recs], ctx)
        day = {e[2:]: p for e, p in deltas.entries.items() if e[0] == "settlement"}
        return sums.add_input(acc, day)

    acc = sums.create_accumulator()
    print(f"one firing: {batch} new settlements into a day that holds N")
    for size in sizes:
        while made < size:
            acc = feed(acc, min(5_000, size - made))
        times = []
        for _ in range(3):
            t0 = time.perf_counter()
            acc = feed(acc, batch)
            components, _ = parts_components(sums.extract_output(acc)[1], FIRST_DAY.replace(day=1))
            stream_rows("settlement", components, ctx, FIRST_DAY, "DAY")
            stream_breakdown("settlement", components, ctx, FIRST_DAY, "DAY")
            times.append(time.perf_counter() - t0)
        print(f"  N = {size:>6}: {statistics.median(times) * 1000:7.0f} ms per firing (median of 3)")


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--files", type=int, default=20)
    ap.add_argument("--records", type=int, default=200, help="settlements per file")
    ap.add_argument("--interval", type=float, default=2.0, help="seconds between two files")
    ap.add_argument("--early-firing-seconds", type=int, default=1)
    ap.add_argument("--poll-interval", type=float, default=0.5)
    ap.add_argument("--rate", type=float, default=None,
                    help="records per second (overrides --records: rate x interval per file)")
    ap.add_argument("--pane-cost", action="store_true",
                    help="measure one firing's work in this process as the day grows (no job)")
    ap.add_argument("--job-log", default=None, help="keep the job's log (stderr) in this file")
    ap.add_argument("--same-day", action="store_true",
                    help="every file of one business day: the day grows (per-pane cost)")
    args = ap.parse_args(argv)
    if args.rate:
        args.records = max(1, round(args.rate * args.interval))
    if args.pane_cost:
        pane_cost(args.records)
        return

    work = Path(tempfile.mkdtemp(prefix="stream_freshness_"))
    landing, staging, warehouse = work / "landing", work / "staging", work / "w.duckdb"
    (landing / "settlement").mkdir(parents=True)
    staging.mkdir()
    files = [make_file(staging, i, args.records, args.same_day) for i in range(args.files)]
    runtime = args.files * args.interval + 30
    job = subprocess.Popen(
        [sys.executable, "-m", "pipelines.stream", "--landing", str(landing),
         "--warehouse", f"duckdb:///{warehouse}", "--max_runtime_seconds", str(runtime),
         "--poll_interval", str(args.poll_interval),
         "--early_firing_seconds", str(args.early_firing_seconds), "--allow-demo-key"],
        cwd=ROOT, env=dict(os.environ, PYTHONPATH=str(ROOT)),
        stdout=subprocess.DEVNULL,
        stderr=open(args.job_log, "w") if args.job_log else subprocess.DEVNULL)
    try:
        while not job_started(warehouse):
            time.sleep(0.2)
        time.sleep(2)  # the pipeline is being built and the watch starts
        landed: dict[int, float] = {}  # file number -> when it landed
        latency: dict[int, float] = {}
        next_at = time.time()
        deadline = time.time() + runtime
        while len(latency) < len(files) and time.time() < deadline:
            if len(landed) < len(files) and time.time() >= next_at:
                path, _ = files[len(landed)]
                path.rename(landing / "settlement" / path.name)
                landed[len(landed)] = time.time()
                next_at += args.interval
            seen = day_rows(warehouse)
            now = time.time()
            for i, t0 in landed.items():
                day = files[i][1]
                # The file's records are in once its day counts them (and its predecessors').
                want = args.records * (i + 1 if args.same_day else 1)
                if i not in latency and seen.get(day, 0) >= want:
                    latency[i] = now - t0
            time.sleep(0.05)
    finally:
        job.terminate()
        job.wait(timeout=60)

    values = list(latency.values())
    print(f"files: {len(files)} x {args.records} settlements, one every {args.interval} s; "
          f"poll {args.poll_interval} s, early firing {args.early_firing_seconds} s")
    if not values:
        print("no file reached the warehouse")
        return
    print(f"reached the warehouse: {len(values)}/{len(files)}")
    print(f"landing -> warehouse latency: median {statistics.median(values):.2f} s, "
          f"p95 {percentile(values, 0.95):.2f} s, max {max(values):.2f} s")
    if args.same_day:
        ordered = [latency[i] for i in sorted(latency)]
        third = max(1, len(ordered) // 3)
        print(f"one growing day: first third median {statistics.median(ordered[:third]):.2f} s "
              f"(day <= {third * args.records} records), last third median "
              f"{statistics.median(ordered[-third:]):.2f} s (day up to {len(files) * args.records})")


if __name__ == "__main__":
    main()
