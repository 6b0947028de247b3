"""Nightly pipeline throughput: wall time, records/s and peak memory of
``python -m pipelines.nightly`` on the local runner (FnApiRunner), against a
baseline that computes the same indicators and rule counts in plain DuckDB SQL.

For each size (settlement records: 100k, 1m, 5m, ...):

1. a data set from the generator (``python -m datagen``) with the other streams at
   the generator's proportions, under ``--data-dir``, kept and reused (keyed by size
   and seed).  --persons comes from a small calibration run (settlements per
   person).  Generation is not measured.
2. the nightly pipeline, each measurement in a fresh subprocess, for every
   ``--workers`` N: N = 1 in Beam's default mode; N > 1 once with
   ``--direct_running_mode multi_threading`` and once with ``multi_processing``.
   --as-of is the data set's as_of.txt, --months its business year up to as_of.
3. the baseline (unless --skip-baseline): first every Avro reader on the smallest
   data set (rec/s, skipped files, equality with fastavro), then for each size the
   independent oracle (tests/independent/oracle.py) with the fastest reader plugged
   in, in a subprocess (benchmarks/avro_baseline.py).  The oracle holds every
   stream in memory (about 2.4 KB per record): a size where that would not fit in
   the machine's free memory runs without baseline (said so on the console).

Wall time is the subprocess's, start-up included; with --repeat N every
configuration runs N times (round robin) and the fastest attempt is reported.
Peak RSS is the largest sum of the resident set sizes of the subprocess and all
its descendants, sampled every 0.1 s from /proc (Linux); wait4's ru_maxrss is not
used (it counts only the largest single process, and a forked child starts with
the parent's pages).  CPU seconds: user + system of the subprocess and its reaped
descendants.  records/s counts the records written to every stream.  Each
measurement also records the commit and a hash of the uncommitted diff it ran on.

Run it (from the repository root)::

    .venv/bin/python benchmarks/nightly_throughput.py [--sizes 100k,1m,5m] [--workers 1,2]
        [--data-dir var/bench] [--seed 1] [--json out.json] [--skip-baseline] [--repeat N]
"""
from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import avro_baseline
from rich.console import Console
from rich.table import Table

ROOT = Path(__file__).resolve().parents[1]
PYTHON = sys.executable
STREAMS = ("enrolment", "contribution", "settlement", "settlement_list", "filing")
CALIBRATION_PERSONS = 3_000
PAGE = os.sysconf("SC_PAGE_SIZE")
# the oracle holds every stream in memory: measured 11.6 GiB at 5.0M records (2m settlements)
BASELINE_BYTES_PER_RECORD = 2_500

console = Console(width=150)


# ---------------------------------------------------------------------- data sets


def parse_size(text: str) -> int:
    """'100k' -> 100_000, '1m' -> 1_000_000, '2500' -> 2500."""
    text = text.strip().lower()
    scale = {"k": 1_000, "m": 1_000_000}.get(text[-1:], 1)
    return int(float(text.rstrip("km")) * scale)


def generate(out: Path, seed: int, persons: int) -> dict:
    """Runs the generator once into ``out`` (unless bench.json says it already did)."""
    marker = out / "bench.json"
    if marker.exists():
        return json.loads(marker.read_text())
    console.print(f"generating {out} (--persons {persons:,}) …")
    start = time.perf_counter()
    subprocess.run([PYTHON, "-m", "datagen", "--out", str(out), "--seed", str(seed),
                    "--persons", str(persons)], cwd=ROOT, check=True,
                   stderr=subprocess.DEVNULL)
    truth = json.loads((out / "truth.json").read_text())
    info = {"seed": seed, "persons": persons,
            "generate_seconds": round(time.perf_counter() - start, 1),
            "records": {s: truth["streams"][s]["records_written"] for s in STREAMS},
            "readable_records": {s: truth["streams"][s]["readable_records"] for s in STREAMS}}
    marker.write_text(json.dumps(info, indent=2))
    return info


def settlements_per_person(data_dir: Path, seed: int) -> float:
    info = generate(data_dir / f"calibration-seed{seed}", seed, CALIBRATION_PERSONS)
    return info["records"]["settlement"] / info["persons"]


def data_set(data_dir: Path, label: str, seed: int, rate: float) -> tuple[Path, dict]:
    out = data_dir / f"settlements-{label}-seed{seed}"
    return out, generate(out, seed, max(50, round(parse_size(label) / rate)))


# -------------------------------------------------------------------- measurement


def tree_rss(root: int) -> int:
    """Resident bytes of ``root`` and all its descendants (from /proc)."""
    children = defaultdict(list)
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            children[int(stat.rsplit(")", 1)[1].split()[1])].append(int(entry))
    total, todo = 0, [root]
    while todo:
        pid = todo.pop()
        try:
            total += int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * PAGE
        except OSError:
            pass
        todo += children.get(pid, [])
    return total


def measure(cmd: list[str], log: Path) -> dict:
    """Runs ``cmd`` from the repository root; wall seconds, peak RSS of its process tree."""
    log.parent.mkdir(parents=True, exist_ok=True)
    tree = git()  # the code measured: others may edit it between measurements
    start = time.perf_counter()
    with open(log, "wb") as out:
        proc = subprocess.Popen(cmd, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT)
    peak = 0
    while True:
        pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
        if pid:
            break
        peak = max(peak, tree_rss(proc.pid))
        time.sleep(0.1)
    seconds = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    return {"seconds": round(seconds, 2), "cpu_seconds": round(usage.ru_utime + usage.ru_stime, 2),
            "peak_rss_bytes": peak, "returncode": proc.returncode, "log": str(log), "tree": tree}


def run_pipeline(data: Path, as_of: str, months: str, workers: int, mode: str | None,
                 logs: Path, attempt: int = 1) -> dict:
    with tempfile.TemporaryDirectory(prefix="bench-nightly-") as tmp:
        warehouse = f"duckdb:///{tmp}/warehouse.duckdb"  # tmp is absolute: duckdb:////tmp/…
        cmd = [PYTHON, "-m", "pipelines.nightly", "--input", str(data), "--warehouse", warehouse,
               "--as-of", as_of, "--months", months, "--no_alerts",
               "--direct_num_workers", str(workers)]
        if mode:
            cmd += ["--direct_running_mode", mode]
        log = logs / f"{data.name}-nightly-{workers}-{mode or 'default'}-{attempt}.log"
        result = measure(cmd, log)
        result.update(run="pipeline", workers=workers, mode=mode or "default",
                      **_warehouse_rows(f"{tmp}/warehouse.duckdb"))
    return result


def _warehouse_rows(path: str) -> dict:
    """What the run left in the warehouse (a check that it did the work)."""
    import duckdb

    try:
        with duckdb.connect(path, read_only=True) as con:
            def one(sql):
                row = con.execute(sql).fetchone()
                return row[0] if row else None

            return {"status": one("SELECT status FROM pipeline_runs"),
                    "indicator_rows": one("SELECT count(*) FROM indicator_values"),
                    "rule_rows": one("SELECT count(*) FROM quality_rule_results"),
                    # issue 18: the split by institution / matter, published in the same run
                    "breakdown_rows": one("SELECT count(*) FROM indicator_breakdown")}
    except Exception as exc:  # noqa: BLE001 - a failed run may leave no warehouse
        return {"status": f"no warehouse ({type(exc).__name__})"}


def run_baseline(data: Path, as_of: str, months: str, reader: str, logs: Path,
                 attempt: int = 1) -> dict:
    with tempfile.TemporaryDirectory(prefix="bench-baseline-") as tmp:
        result_file = Path(tmp, "result.json")
        cmd = [PYTHON, str(Path(__file__).with_name("avro_baseline.py")), "run", str(data),
               "--reader", reader, "--as-of", as_of, "--months", months,
               "--result", str(result_file)]
        result = measure(cmd, logs / f"{data.name}-baseline-{reader}-{attempt}.log")
        inner = json.loads(result_file.read_text()) if result_file.exists() else {}
    result.update(run="baseline", workers=1, mode=f"{reader} + DuckDB",
                  compute_seconds=round(inner.get("seconds", 0), 2),
                  read_seconds=round(inner.get("read_seconds", 0), 2),
                  indicator_rows=inner.get("indicator_rows"), rule_rows=inner.get("rule_rows"),
                  skipped_files=inner.get("skipped"),
                  status="succeeded" if result["returncode"] == 0 else "failed")
    return result


def fastest_try(tries: list[dict]) -> dict:
    """The fastest successful attempt (the least disturbed on a shared machine), with
    every attempt's seconds."""
    ok = [t for t in tries if t["returncode"] == 0]
    best = dict(min(ok or tries, key=lambda t: t["seconds"]))
    best["attempt_seconds"] = [t["seconds"] for t in tries]
    return best


def mem_available() -> int:
    return next(int(line.split()[1]) * 1024 for line in
                Path("/proc/meminfo").read_text().splitlines() if line.startswith("MemAvailable"))


def baseline_fits(records: int) -> bool:
    """Whether the baseline's memory (measured: about 2.4 KB per record) fits."""
    return records * BASELINE_BYTES_PER_RECORD < 0.8 * mem_available()


# -------------------------------------------------------------------- environment


def machine() -> dict:
    cpu = next((line.split(":", 1)[1].strip() for line in
                Path("/proc/cpuinfo").read_text().splitlines() if line.startswith("model name")),
               platform.processor())
    mem_kb = next(int(line.split()[1]) for line in Path("/proc/meminfo").read_text().splitlines()
                  if line.startswith("MemTotal"))
    return {"nproc": len(os.sched_getaffinity(0)), "memory_gib": round(mem_kb / 2**20, 1), "cpu": cpu,
            "python": platform.python_version(), "kernel": platform.release()}


def git() -> dict:
    def out(*args):
        return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True).stdout

    changed = [line for line in out("status", "--porcelain").splitlines() if line]
    return {"commit": out("rev-parse", "HEAD").strip(), "changed_files": len(changed),
            # identifies uncommitted edits of tracked files (others edit while we measure)
            "diff_sha256": hashlib.sha256(out("diff", "HEAD").encode()).hexdigest()[:16]}


def versions() -> dict:
    from importlib.metadata import version

    return {p: version(p) for p in ("apache-beam", "duckdb", "pyarrow", "fastavro", "polars",
                                    "polars-avro", "jetliner")}


# ------------------------------------------------------------------------- output


def gib(n: int | None) -> str:
    return "" if not n else f"{n / 2**30:.2f} GiB"


def print_readers(rows: list[dict], data: str) -> None:
    table = Table(title=f"Avro readers on {data} (decode + conform to the contract's Arrow types)")
    for col in ("reader", "settlement rec/s", "all streams rec/s", "equal to fastavro",
                "files it cannot read"):
        table.add_column(col, justify="right" if "rec/s" in col else "left")
    for r in rows:
        table.add_row(r["reader"], f"{r['settlement_rec_per_s']:,.0f}", f"{r['rec_per_s']:,.0f}",
                      "yes" if r["equal_to_fastavro"] else f"no: {r['differs']}",
                      ", ".join(r["skipped"]))
    console.print(table)


def print_results(runs: list[dict]) -> None:
    table = Table(title="Nightly pipeline throughput (records of all streams)")
    for col in ("size", "records", "run", "workers", "mode", "seconds", "CPU s", "records/s",
                "peak RSS", "pipeline / baseline", "status"):
        table.add_column(col, justify="left" if col in ("size", "run", "mode", "status")
                         else "right")
    for r in runs:
        ratio = r.get("vs_baseline")
        table.add_row(r["size"], f"{r['records']:,}", r["run"], str(r["workers"]), r["mode"],
                      f"{r['seconds']:.1f}", f"{r['cpu_seconds']:.1f}",
                      f"{r['records_per_s']:,.0f}", gib(r["peak_rss_bytes"]),
                      "" if ratio is None else f"{ratio:.2f}", str(r.get("status")))
    console.print(table)


# --------------------------------------------------------------------------- main


def choose_reader(data: Path, label: str) -> tuple[list[dict], dict]:
    """Every reader on one data set; the fastest faithful one, checked: the oracle's
    indicators and rule counts with it equal the untouched oracle's."""
    readers = avro_baseline.compare_readers(str(data))
    print_readers(readers, f"{label} settlements")
    reader = avro_baseline.fastest(readers)
    as_of = avro_baseline.parse_as_of((data / "as_of.txt").read_text())
    months = avro_baseline.month_list(avro_baseline.last_year(as_of))
    same = avro_baseline.same_output(avro_baseline.compute(str(data), as_of, months, "fastavro"),
                                     avro_baseline.compute(str(data), as_of, months, reader))
    console.print(f"baseline reader: {reader}; with it the oracle's indicators and rule counts "
                  f"on {label} equal the untouched oracle's: {same}")
    return readers, {"reader": reader, "output_equals_oracle": same}


def measure_size(label: str, data: Path, records: int, workers: list[int], reader: str | None,
                 repeat: int, logs: Path) -> list[dict]:
    """The baseline (when a reader is given) and every pipeline configuration on one
    data set, each ``repeat`` times; the fastest attempt of each."""
    as_of = (data / "as_of.txt").read_text().strip()
    months = avro_baseline.last_year(avro_baseline.parse_as_of(as_of))
    if reader and not baseline_fits(records):
        console.print(f"{label}: baseline skipped: it holds every stream in memory, about "
                      f"{gib(records * BASELINE_BYTES_PER_RECORD)} here, more than this machine "
                      f"has free ({gib(mem_available())})")
        reader = None
    configs = [(n, mode) for n in workers
               for mode in ([None] if n == 1 else ["multi_threading", "multi_processing"])]
    tries = defaultdict(list)
    for attempt in range(1, repeat + 1):  # round robin: drift hits every configuration alike
        if reader:
            tries["baseline"].append(run_baseline(data, as_of, months, reader, logs, attempt))
        for n, mode in configs:
            console.print(f"{label}: nightly, {n} worker(s), {mode or 'default mode'}, "
                          f"attempt {attempt} …")
            tries[(n, mode)].append(run_pipeline(data, as_of, months, n, mode, logs, attempt))
    runs = [fastest_try(t) for t in tries.values()]
    base = runs[0] if reader and runs[0]["returncode"] == 0 else None
    for r in runs:
        r.update(size=label, records=records, months=months,
                 records_per_s=round(records / r["seconds"]))
        if base and r["returncode"] == 0:
            r["vs_baseline"] = round(r["records_per_s"] / base["records_per_s"], 3)
        if r["returncode"] != 0:
            r["status"] = f"failed (exit {r['returncode']}, see {r['log']})"
    return runs


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--sizes", default="100k,1m,5m", help="settlement records per data set")
    p.add_argument("--workers", default="1,2", help="--direct_num_workers values")
    p.add_argument("--data-dir", default="var/bench", help="where data sets are kept")
    p.add_argument("--seed", type=int, default=1, help="generator seed")
    p.add_argument("--json", help="also write the results here")
    p.add_argument("--skip-baseline", action="store_true", help="pipeline runs only")
    p.add_argument("--repeat", type=int, default=1,
                   help="measure every configuration N times, keep the fastest (default 1)")
    args = p.parse_args(argv)
    data_dir = (ROOT / args.data_dir).resolve()
    logs = data_dir / "logs"
    sizes = [s.strip().lower() for s in args.sizes.split(",")]
    workers = [int(w) for w in args.workers.split(",")]
    report = {"date": dt.datetime.now().astimezone().isoformat(timespec="seconds"),
              "machine": machine(), "git": git(), "versions": versions(), "seed": args.seed,
              "load_average_at_start": os.getloadavg(), "data_sets": {}, "readers": None,
              "baseline_reader": None, "runs": []}
    console.print(report["machine"], report["git"])

    rate = settlements_per_person(data_dir, args.seed)
    console.print(f"calibration: {rate:.2f} settlements per person")
    sets = {}
    for label in sizes:
        path, info = data_set(data_dir, label, args.seed, rate)
        sets[label] = path
        report["data_sets"][label] = {"path": str(path), **info}
        console.print(f"{label}: {path} --persons {info['persons']:,}: " + ", ".join(
            f"{s} {n:,}" for s, n in info["records"].items())
            + f" = {sum(info['records'].values()):,} records")

    reader = None
    if not args.skip_baseline:
        smallest = min(sizes, key=parse_size)
        report["readers"], report["baseline_reader"] = choose_reader(sets[smallest], smallest)
        reader = report["baseline_reader"]["reader"]

    for label in sizes:
        records = sum(report["data_sets"][label]["records"].values())
        runs = measure_size(label, sets[label], records, workers, reader, args.repeat, logs)
        report["runs"] += runs
        print_results(runs)

    report["load_average_at_end"] = os.getloadavg()
    if len(sizes) > 1:
        print_results(report["runs"])
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2, default=str), encoding="utf-8")
        console.print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
