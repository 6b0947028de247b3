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
the parent's pages).  Per-process peak RSS: the largest single process of the tree
at any sample (``peak_rss_process_bytes``) and the largest Beam SDK worker
(``peak_rss_worker_bytes``: a child process in multi_processing, the launcher itself
when the workers run in-process) — what one machine of a distributed run must hold.  CPU seconds: user + system of the subprocess and its reaped
descendants (wait4).  The tree's cumulative CPU time is also sampled with the RSS
(CPU_METHOD: utime+stime+cutime+cstime of its live processes), so the CPU seconds
inside the compute phase are known: ``compute_cores`` = those / the phase's wall
seconds, ``cores`` = CPU seconds / wall seconds of the whole run.  A one-worker run
whose compute phase uses X cores bounds the speed-up of any run on C CPUs by C / X
(printed).  ``--cpus 1,2`` runs every configuration pinned to the first N CPUs
(sched_setaffinity; N workers never on fewer than N CPUs): the nightly then gives
each bucket's DuckDB the CPUs it may use (pipelines/nightly.py ``_threads``), so a
one-CPU one-worker run is the true one-core reference of per-core scale-out.
Others on the machine: /proc/stat before and after each run gives the machine's busy
cores, ``others_cores`` (busy minus the run's tree and the harness) and the
hypervisor's ``steal_cores`` on the run's CPUs; a run beside others' work is slower.
records/s counts the records written to every stream.  Each
measurement also records the commit and a hash of the uncommitted diff it ran on.

Scale-out (issue 17): ``--shards N`` passes a fixed bucket count, ``--shard-records R``
passes ``ceil(settlement records / R)`` so a shard holds the same data at every size;
neither leaves the pipeline's default (one per 64 MiB of Avro, at least one per
worker).  The run's summary (``--json``, last line of stdout) gives ``stage_seconds``
per step; the launcher is started through a few lines (``LAUNCH``) that add each
step's absolute first start / last end and its number of timed calls, so the
compute phase (ResolveDeliveries' first start to Finalize's last end) is measured
as a wall time.  ``--compare-tree DIR`` also runs every single-worker configuration
from another checkout (e.g. a worktree of the previous release, without --shards),
interleaved with the others.  ``--modes`` picks the modes of N > 1 workers.

Run it (from the repository root)::

    .venv/bin/python benchmarks/nightly_throughput.py [--sizes 100k,1m,5m] [--workers 1,2]
        [--data-dir var/bench] [--seed 1] [--json out.json] [--skip-baseline] [--repeat N]
        [--shards N | --shard-records R] [--modes multi_processing] [--compare-tree /tmp/old]
        [--cpus 1,2]
"""
from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

from rich.console import Console
from rich.table import Table

ROOT = Path(__file__).resolve().parents[1]
PYTHON = sys.executable
STREAMS = ("enrolment", "contribution", "settlement", "settlement_list", "filing")
CALIBRATION_PERSONS = 3_000
PAGE = os.sysconf("SC_PAGE_SIZE")
CLK_TCK = os.sysconf("SC_CLK_TCK")
# the oracle holds every stream in memory: measured 11.6 GiB at 5.0M records (2m settlements)
BASELINE_BYTES_PER_RECORD = 2_500

console = Console(width=190)

try:
    import avro_baseline
except ImportError as exc:  # jetliner / polars-avro: only the baseline needs them
    avro_baseline, BASELINE_MISSING = None, f"{exc.name} is not installed"

#: Key of the pseudonym HMAC for benchmark runs when the environment sets none
#: (the data sets are synthetic); the same for every tree compared.
BENCH_KEY = "bench-only-pseudonym-key-not-a-secret-0123456789"

#: Starts the nightly as ``python -m pipelines.nightly`` would, with the summary's
#: stage_seconds (transforms/timing.py) computed over every PTransform of a step:
#: Beam keys a metric by (PTransform, name), and Decode and RouteDeliveries run in
#: one PTransform per stream, of which transforms.timing.stage_seconds keeps the
#: last it meets (about a fifth of those steps' time).  Also each step's absolute
#: first start / last end, its number of timed calls and PTransforms, and the
#: counters' attempted values beside the committed ones (to check that the metrics
#: of worker processes arrive complete); "reported" is what timing.stage_seconds says.
LAUNCH = """
import runpy, sys
from transforms import timing
plain = timing.stage_seconds
def stage_seconds(result):
    reported = plain(result)
    from apache_beam.metrics.metric import MetricsFilter
    found = result.metrics().query(MetricsFilter().with_namespace(timing.NAMESPACE))
    out = {}
    for c in found["counters"]:
        o = out.setdefault(c.key.metric.name, {"worker": 0.0, "worker_attempted": 0.0,
                                               "steps": 0})
        o["worker"] += (c.committed if c.committed is not None else c.attempted or 0) / 1000
        o["worker_attempted"] += (c.attempted or 0) / 1000
        o["steps"] += 1
    for d in found["distributions"]:
        v = d.committed if d.committed is not None else d.attempted
        if v is not None and v.count:
            o = out.setdefault(d.key.metric.name.removesuffix(".span"), {})
            o["start"] = min(o.get("start", v.min / 1000), v.min / 1000)
            o["end"] = max(o.get("end", v.max / 1000), v.max / 1000)
            o["calls"] = o.get("calls", 0) + v.count // 2
    for step, o in out.items():
        if "start" in o:
            o["wall"] = round(o["end"] - o["start"], 3)
        o["reported"] = reported.get(step)
    return dict(sorted(out.items()))
timing.stage_seconds = stage_seconds
sys.argv = ["pipelines.nightly", *sys.argv[1:]]
runpy.run_module("pipelines.nightly", run_name="__main__", alter_sys=True)
"""


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


def tree_sample(root: int) -> tuple[int, int, int, float]:
    """Resident bytes of ``root`` and all its descendants (from /proc): their sum,
    the largest single process, the largest descendant (0 if none); and the tree's
    cumulative CPU seconds (CPU_METHOD)."""
    children, ticks = defaultdict(list), {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            fields = stat.rsplit(")", 1)[1].split()  # after "(comm)": state, ppid, …
            children[int(fields[1])].append(int(entry))
            # utime, stime (all its threads, living or ended), cutime, cstime
            ticks[int(entry)] = sum(int(f) for f in fields[11:15])
    total, largest, child, cpu, todo = 0, 0, 0, 0, [root]
    while todo:
        pid = todo.pop()
        try:
            rss = int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * PAGE
        except OSError:
            rss = 0
        total, largest, cpu = total + rss, max(largest, rss), cpu + ticks.get(pid, 0)
        if pid != root:
            child = max(child, rss)
        todo += children.get(pid, [])
    return total, largest, child, cpu / CLK_TCK


#: How the CPU time of a process tree is sampled (every 0.1 s, with the RSS).
CPU_METHOD = ("sum over the live processes of the tree (root and descendants, by ppid) of "
              "utime+stime+cutime+cstime from /proc/<pid>/stat: a process's own time covers "
              "all its threads, ended ones included; cutime/cstime hold its reaped children "
              "(and theirs), so a worker that ended stays counted in its parent; the last "
              "point is wait4's rusage of the root at exit.  A process reparented out of the "
              "tree (orphaned) would be lost: the pipeline's workers are reaped by the launcher. "
              "CPU seconds in [a, b]: the series linearly interpolated at a and b.")


def cpu_times() -> dict[str, tuple[float, float]]:
    """/proc/stat: {"cpu": …, "cpu0": …}: (busy, steal) seconds since boot; busy is
    user + nice + system + irq + softirq, steal the time the hypervisor gave away."""
    out = {}
    for line in Path("/proc/stat").read_text().splitlines():
        if line.startswith("cpu"):
            name, *f = line.split()
            user, nice, system, _idle, _iowait, irq, softirq, steal = map(int, f[:8])
            out[name] = ((user + nice + system + irq + softirq) / CLK_TCK, steal / CLK_TCK)
    return out


def machine_share(before: dict, after: dict, seconds: float, cpu_list: list[int],
                  ours: float) -> dict:
    """What the machine did during a run: busy cores (all, and on the run's own CPUs),
    the cores other processes used beside the run's tree and the harness (``ours``),
    and the hypervisor's steal on the run's CPUs."""
    def delta(names, i):
        return sum(after[n][i] - before[n][i] for n in names if n in before and n in after)

    mine = [f"cpu{c}" for c in cpu_list]
    return {"machine_busy_cores": round(delta(["cpu"], 0) / seconds, 2),
            "run_cpus_busy_cores": round(delta(mine, 0) / seconds, 2),
            "others_cores": round(max(0.0, delta(["cpu"], 0) - ours) / seconds, 2),
            "steal_cores": round(delta(mine, 1) / seconds, 2)}


def cpu_between(series: list[tuple[float, float]], start: float, end: float) -> float | None:
    """CPU seconds of a cumulative (epoch s, CPU s) series within [start, end]."""
    def at(t):
        for (t0, c0), (t1, c1) in zip(series, series[1:]):
            if t0 <= t <= t1:
                return c0 if t1 == t0 else c0 + (c1 - c0) * (t - t0) / (t1 - t0)
        return None

    a, b = at(start), at(end)
    return None if a is None or b is None else round(b - a, 2)


def thin(series: list[tuple[float, float]], seconds: float) -> list[tuple[float, float]]:
    """About one point a second (for the JSON: plenty to plot from), the last kept."""
    step = max(1, len(series) // max(1, round(seconds)))
    return [(round(t, 1), round(c, 1)) for t, c in series[::step] + series[-1:]]


def pin(cpus: int | None):
    """preexec_fn: the child may run on the first ``cpus`` CPUs the harness may use."""
    if not cpus:
        return None
    allowed = sorted(os.sched_getaffinity(0))[:cpus]
    return lambda: os.sched_setaffinity(0, allowed)


def measure(cmd: list[str], log: Path, cwd: Path = ROOT, stdout: Path | None = None,
            cpus: int | None = None) -> dict:
    """Runs ``cmd`` from ``cwd`` (the repository root), pinned to the first ``cpus``
    CPUs (None: unpinned); wall seconds, peak RSS of its process tree (the sum, the
    largest process, the largest descendant) and its cumulative CPU time over time
    (CPU_METHOD).  stderr goes to ``log``, stdout too unless ``stdout`` names its own file."""
    log.parent.mkdir(parents=True, exist_ok=True)
    tree = git(cwd)  # the code measured: others may edit it between measurements
    env = {**os.environ, "YIBAO_PSEUDONYM_KEY": os.environ.get("YIBAO_PSEUDONYM_KEY", BENCH_KEY)}
    load, started_at = os.getloadavg(), time.time()
    own, machine_before = resource.getrusage(resource.RUSAGE_SELF), cpu_times()
    start = time.perf_counter()
    with open(log, "wb") as err, open(stdout or os.devnull, "wb") as out:
        proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=out if stdout else err, stderr=err,
                                preexec_fn=pin(cpus))
    cpu_list = sorted(os.sched_getaffinity(proc.pid))
    peak = peak_process = peak_child = 0
    peak_at = {}  # when each peak was sampled (epoch s): which step it fell in
    series = [(started_at, 0.0)]  # (epoch s, cumulative CPU s of the tree)
    while True:
        pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
        if pid:
            break
        total, largest, child, cpu = tree_sample(proc.pid)
        series.append((time.time(), cpu))
        for name, value, best in (("total", total, peak), ("process", largest, peak_process),
                                  ("child", child, peak_child)):
            if value > best:
                peak_at[name] = round(time.time(), 1)
        peak, peak_process = max(peak, total), max(peak_process, largest)
        peak_child = max(peak_child, child)
        time.sleep(0.1)
    seconds = time.perf_counter() - start
    cpu_seconds = usage.ru_utime + usage.ru_stime
    series.append((started_at + seconds, cpu_seconds))
    mine, machine_after = resource.getrusage(resource.RUSAGE_SELF), cpu_times()
    harness = mine.ru_utime + mine.ru_stime - own.ru_utime - own.ru_stime
    proc.returncode = os.waitstatus_to_exitcode(status)
    return {"seconds": round(seconds, 2), "cpu_seconds": round(cpu_seconds, 2),
            "cores": round(cpu_seconds / seconds, 2), "cpus": len(cpu_list),
            "cpu_list": cpu_list, "cpu_series": series,
            # the sampling's own cost, on the same CPUs when the run is not pinned
            "harness_cpu_seconds": round(harness, 2),
            **machine_share(machine_before, machine_after, seconds, cpu_list,
                            cpu_seconds + harness),
            "peak_rss_bytes": peak, "peak_rss_process_bytes": peak_process,
            "peak_rss_child_bytes": peak_child, "peak_rss_at": peak_at,
            "load_average_before": load,
            "started_at": started_at, "ended_at": started_at + seconds,
            "returncode": proc.returncode, "log": str(log), "tree": tree}


def run_pipeline(data: Path, as_of: str, months: str, workers: int, mode: str | None,
                 logs: Path, attempt: int = 1, shards: int | None = None,
                 tree: Path | None = None, cpus: int | None = None) -> dict:
    """One nightly run; ``shards``: --shards (None: the pipeline's default);
    ``tree``: another checkout to run instead of this one (plain, without --shards);
    ``cpus``: pinned to the first N CPUs (None: unpinned)."""
    with tempfile.TemporaryDirectory(prefix="bench-nightly-") as tmp:
        warehouse = f"duckdb:///{tmp}/warehouse.duckdb"  # tmp is absolute: duckdb:////tmp/…
        args = ["--input", str(data), "--warehouse", warehouse, "--as-of", as_of,
                "--months", months, "--no_alerts", "--json", "--direct_num_workers", str(workers)]
        if mode:
            args += ["--direct_running_mode", mode]
        if tree is None:
            cmd = [PYTHON, "-c", LAUNCH, *args, *(["--shards", str(shards)] if shards else [])]
        else:
            cmd = [PYTHON, "-m", "pipelines.nightly", *args]
        name = (f"{data.name}-nightly-{'previous-' if tree else ''}{workers}-{mode or 'default'}"
                f"-{shards or 'auto'}{f'-{cpus}cpu' if cpus else ''}-{attempt}")
        result = measure(cmd, logs / f"{name}.log", cwd=tree or ROOT,
                         stdout=logs / f"{name}.stdout", cpus=cpus)
        summary = _summary(logs / f"{name}.stdout")
        result.update(run="previous" if tree else "pipeline", workers=workers,
                      mode=mode or "default", shards=None if tree else shards,
                      tree_dir=str(tree or ROOT), **_warehouse_rows(f"{tmp}/warehouse.duckdb"),
                      **_stages(summary))
        if "compute_starts_at" in result:  # start-up + decode, and Publish + clean-up
            result["before_compute_seconds"] = round(result["compute_starts_at"]
                                                     - result["started_at"], 2)
            result["after_compute_seconds"] = round(result["ended_at"]
                                                    - result["compute_ends_at"], 2)
        if result.get("compute_wall_seconds"):
            used = cpu_between(result["cpu_series"], result["compute_starts_at"],
                               result["compute_ends_at"])
            if used is not None:
                result["compute_cpu_seconds"] = used
                result["compute_cores"] = round(used / result["compute_wall_seconds"], 2)
        result["cpu_series"] = thin(result["cpu_series"], result["seconds"])
        # the Beam worker: a child process in multi_processing, else the launcher
        worker = "child" if mode == "multi_processing" else "process"
        result["peak_rss_worker_bytes"] = result[f"peak_rss_{worker}_bytes"]
        result["peak_rss_worker_step"] = _step_at(result.get("stage_seconds") or {},
                                                  result["peak_rss_at"].get(worker))
    return result


def _step_at(stages: dict, when: float | None) -> str | None:
    """The step(s) running at ``when`` (by their spans), else "outside the steps"."""
    if when is None:
        return None
    names = [k for k, s in stages.items() if s.get("start", 1e18) - 0.5 <= when <= s.get("end", 0) + 0.5]
    return "+".join(names) or "outside the steps"


def _summary(stdout: Path) -> dict:
    """The run summary: the last JSON line the nightly printed on stdout."""
    for line in reversed(stdout.read_text(errors="replace").splitlines()):
        if line.startswith("{"):
            try:
                return json.loads(line)
            except ValueError:
                continue
    return {}


#: The compute phase: after every record is decoded and routed.
COMPUTE_FIRST, COMPUTE_LAST = "ResolveDeliveries", "Finalize"


def _stages(summary: dict) -> dict:
    """stage_seconds of the summary, and the compute phase's wall time from the
    steps' absolute spans (first start of ResolveDeliveries to last end of Finalize)."""
    stages = summary.get("stage_seconds") or {}
    read = [v.get("read") for v in (summary.get("streams") or {}).values()]
    out = {"stage_seconds": stages, "elapsed_seconds": summary.get("elapsed_seconds"),
           "records_read": sum(read) if read and None not in read else None}
    first, last = stages.get(COMPUTE_FIRST, {}), stages.get(COMPUTE_LAST, {})
    if "start" in first and "end" in last:
        out["compute_wall_seconds"] = round(last["end"] - first["start"], 2)
        out["compute_worker_seconds"] = round(sum(
            s.get("worker", 0) for k, s in stages.items() if k not in ("Decode", "RouteDeliveries")), 2)
    if "start" in first:  # from the launcher's start to the first key bucket
        out["compute_starts_at"] = first["start"]
    if "end" in last:
        out["compute_ends_at"] = last["end"]
    decode = [s for k, s in stages.items() if k in ("Decode", "RouteDeliveries") and "start" in s]
    if decode:
        out["decode_wall_seconds"] = round(max(s["end"] for s in decode)
                                           - min(s["start"] for s in decode), 2)
    return out


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
        result["cpu_series"] = thin(result["cpu_series"], result["seconds"])
        inner = json.loads(result_file.read_text()) if result_file.exists() else {}
    result.update(run="baseline", workers=1, mode=f"{reader} + DuckDB",
                  compute_seconds=round(inner.get("seconds", 0), 2),
                  read_seconds=round(inner.get("read_seconds", 0), 2),
                  indicator_rows=inner.get("indicator_rows"), rule_rows=inner.get("rule_rows"),
                  skipped_files=inner.get("skipped"),
                  status="succeeded" if result["returncode"] == 0 else "failed")
    return result


#: What the JSON keeps of every attempt, beside the fastest one's full record.
ATTEMPT_KEYS = ("started_at", "seconds", "cores", "compute_wall_seconds", "compute_cores",
                "load_average_before", "others_cores", "steal_cores", "returncode")


def fastest_try(tries: list[dict]) -> dict:
    """The fastest successful attempt (the least disturbed on a shared machine), with
    every attempt's seconds."""
    ok = [t for t in tries if t["returncode"] == 0]
    best = dict(min(ok or tries, key=lambda t: t["seconds"]))
    best["attempt_seconds"] = [t["seconds"] for t in tries]
    best["attempts"] = [{k: t.get(k) for k in ATTEMPT_KEYS} for t in tries]
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


def git(cwd: Path = ROOT) -> dict:
    def out(*args):
        return subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True).stdout

    changed = [line for line in out("status", "--porcelain").splitlines() if line]
    return {"commit": out("rev-parse", "HEAD").strip(), "changed_files": len(changed),
            # identifies uncommitted edits of tracked files (others edit while we measure)
            "diff_sha256": hashlib.sha256(out("diff", "HEAD").encode()).hexdigest()[:16]}


def versions() -> dict:
    from importlib.metadata import PackageNotFoundError, version

    def installed(p):
        try:
            return version(p)
        except PackageNotFoundError:
            return None

    return {p: installed(p) for p in ("apache-beam", "duckdb", "pyarrow", "fastavro", "polars",
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
    for col in ("size", "records", "run", "workers", "mode", "shards", "CPUs", "seconds",
                "cores", "compute s", "compute cores", "others' cores", "CPU s", "records/s",
                "peak RSS",
                "worker peak RSS", "pipeline / baseline", "status"):
        table.add_column(col, justify="left" if col in ("size", "run", "mode", "status")
                         else "right")
    for r in runs:
        ratio, compute = r.get("vs_baseline"), r.get("compute_wall_seconds")
        cores = r.get("compute_cores")
        table.add_row(r["size"], f"{r['records']:,}", r["run"], str(r["workers"]), r["mode"],
                      str(r.get("shards") or ""), str(r["cpus"]), f"{r['seconds']:.1f}",
                      f"{r['cores']:.2f}", "" if compute is None else f"{compute:.1f}",
                      "" if cores is None else f"{cores:.2f}",
                      "" if r.get("others_cores") is None else f"{r['others_cores']:.2f}",
                      f"{r['cpu_seconds']:.1f}",
                      f"{r['records_per_s']:,.0f}", gib(r["peak_rss_bytes"]),
                      gib(r.get("peak_rss_worker_bytes")),
                      "" if ratio is None else f"{ratio:.2f}", str(r.get("status")))
    console.print(table)


def scaling(runs: list[dict]) -> list[dict]:
    """Each one-worker run of this checkout against each run of more workers on the
    same size: the compute phase's and the whole run's speed-up, and the bound the
    one-worker run's cores set: a run on C CPUs is at most C / compute_cores faster."""
    ok = [r for r in runs if r["run"] == "pipeline" and r["returncode"] == 0
          and r.get("compute_wall_seconds")]
    machine_cpus = len(os.sched_getaffinity(0))
    out = []
    for one in (r for r in ok if r["workers"] == 1):
        for many in (r for r in ok if r["workers"] > 1 and r["size"] == one["size"]):
            out.append({
                "size": one["size"], "from": f"1 worker @ {one['cpus']} CPU",
                "to": f"{many['workers']} workers {many['mode']} @ {many['cpus']} CPU",
                "compute_speedup": round(one["compute_wall_seconds"]
                                         / many["compute_wall_seconds"], 2),
                "run_speedup": round(one["seconds"] / many["seconds"], 2),
                "bound": round(many["cpus"] / one["compute_cores"], 2)
                if one.get("compute_cores") else None})
        if one.get("compute_cores"):
            console.print(f"{one['size']}, 1 worker @ {one['cpus']} CPU: one worker used "
                          f"{one['compute_cores']:.2f} cores in the compute phase: no "
                          f"{machine_cpus}-core run can be more than {machine_cpus}/"
                          f"{one['compute_cores']:.2f} = "
                          f"{machine_cpus / one['compute_cores']:.2f}× faster (for the same "
                          f"CPU-seconds of work, which vary ±10 % between runs here)")
    for x in out:
        console.print(f"{x['size']}: {x['from']} → {x['to']}: compute phase ×"
                      f"{x['compute_speedup']:.2f} (bound ×{x['bound']}), whole run ×"
                      f"{x['run_speedup']:.2f}")
    return out


def print_stages(runs: list[dict]) -> None:
    """stage_seconds of every run: worker seconds (summed over workers) / wall."""
    steps = sorted({k for r in runs for k in r.get("stage_seconds") or {}})
    if not steps:
        return
    table = Table(title="Steps: worker s (summed over workers) / wall s, from stage_seconds")
    for col in ("size", "run", "workers", "mode", "CPUs", *steps):
        table.add_column(col, justify="left" if col in ("size", "run", "mode") else "right")
    for r in runs:
        st = r.get("stage_seconds") or {}
        table.add_row(r["size"], r["run"], str(r["workers"]), r["mode"], str(r["cpus"]), *(
            f"{st[k].get('worker', 0):.1f} / {st[k].get('wall', 0):.1f}" if k in st else ""
            for k in steps))
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


def business_year(as_of: str) -> str:
    """January to as_of's month, in as_of's business year (Asia/Shanghai); the same
    as avro_baseline.last_year, which needs the baseline's readers installed."""
    when = dt.datetime.fromisoformat(as_of.strip().replace("Z", "+00:00"))
    when = when if when.tzinfo else when.replace(tzinfo=dt.timezone(dt.timedelta(hours=8)))
    local = when.astimezone(dt.timezone(dt.timedelta(hours=8)))
    return f"{local.year}-01..{local.year}-{local.month:02d}"


def shard_count(settlements: int, shards: int | None, shard_records: int | None) -> int | None:
    """--shards for a data set: fixed, or one per ``shard_records`` settlements
    (a fixed shard size across sizes), or None (the pipeline's default)."""
    if shard_records:
        return max(1, -(-settlements // shard_records))
    return shards


def measure_size(label: str, data: Path, records: int, workers: list[int], reader: str | None,
                 repeat: int, logs: Path, modes: tuple[str, ...] = ("multi_threading",
                                                                     "multi_processing"),
                 shards: int | None = None, compare: Path | None = None,
                 cpus: tuple[int | None, ...] = (None,)) -> list[dict]:
    """The baseline (when a reader is given) and every pipeline configuration on one
    data set, each ``repeat`` times; the fastest attempt of each.  ``compare``:
    another checkout whose single-worker runs are measured alongside; ``cpus``: every
    configuration pinned to the first N CPUs for each N (None: unpinned), except N
    workers on fewer than N CPUs."""
    as_of = (data / "as_of.txt").read_text().strip()
    months = business_year(as_of)
    if reader and not baseline_fits(records):
        console.print(f"{label}: baseline skipped: it holds every stream in memory, about "
                      f"{gib(records * BASELINE_BYTES_PER_RECORD)} here, more than this machine "
                      f"has free ({gib(mem_available())})")
        reader = None
    configs = [(n, mode, None, c) for c in cpus for n in workers
               for mode in ([None] if n == 1 else modes) if c is None or n <= c]
    if compare:
        configs = [(1, None, compare, c) for c in cpus] * (1 in workers) + configs
    tries = defaultdict(list)
    for attempt in range(1, repeat + 1):  # round robin: drift hits every configuration alike
        if reader:
            tries["baseline"].append(run_baseline(data, as_of, months, reader, logs, attempt))
        for n, mode, tree, c in configs:
            console.print(f"{label}: nightly{f' from {tree}' if tree else ''}, {n} worker(s), "
                          f"{mode or 'default mode'}, shards {shards or 'default'}, "
                          f"{f'{c} CPU(s)' if c else 'all CPUs'}, attempt {attempt} "
                          f"(load average {os.getloadavg()[0]:.2f}) …")
            tries[(n, mode, tree, c)].append(run_pipeline(data, as_of, months, n, mode, logs,
                                                          attempt, shards, tree, c))
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
    p.add_argument("--modes", default="multi_threading,multi_processing",
                   help="--direct_running_mode values for N > 1 workers")
    fixed = p.add_mutually_exclusive_group()
    fixed.add_argument("--shards", type=int, help="pass --shards N to every run")
    fixed.add_argument("--shard-records", type=lambda t: parse_size(t),
                       help="pass --shards ceil(settlement records / R): a fixed shard size "
                            "across sizes (e.g. 250k)")
    p.add_argument("--cpus", default="all",
                   help="run every configuration pinned to the first N CPUs, for each N "
                        "(e.g. 1,2; 'all': unpinned); N workers never run on fewer CPUs")
    p.add_argument("--compare-tree", type=Path,
                   help="another checkout (e.g. a worktree of the previous release) whose "
                        "single-worker run is measured alongside, same data, without --shards")
    args = p.parse_args(argv)
    if not args.skip_baseline and avro_baseline is None:
        p.error(f"the baseline needs {BASELINE_MISSING}: install it, or pass --skip-baseline")
    data_dir = (ROOT / args.data_dir).resolve()
    logs = data_dir / "logs"
    sizes = [s.strip().lower() for s in args.sizes.split(",")]
    workers = [int(w) for w in args.workers.split(",")]
    cpus = tuple(None if c.strip() == "all" else int(c) for c in args.cpus.split(","))
    report = {"date": dt.datetime.now().astimezone().isoformat(timespec="seconds"),
              "machine": machine(), "git": git(), "versions": versions(), "seed": args.seed,
              "load_average_at_start": os.getloadavg(), "data_sets": {}, "readers": None,
              "baseline_reader": None, "runs": [], "shards": args.shards,
              "shard_records": args.shard_records, "cpu_method": CPU_METHOD,
              "compare_tree": {"dir": str(args.compare_tree), **git(args.compare_tree)}
              if args.compare_tree else None}
    console.print(report["machine"], report["git"])

    rate = settlements_per_person(data_dir, args.seed)
    console.print(f"calibration: {rate:.2f} settlements per person")
    sets = {}
    for label in sizes:
        path, info = data_set(data_dir, label, args.seed, rate)
        sets[label] = path
        report["data_sets"][label] = {"path": str(path), **info, "avro_bytes": sum(
            f.stat().st_size for s in STREAMS for f in (path / s).glob("*.avro"))}
        console.print(f"{label}: {path} --persons {info['persons']:,}: " + ", ".join(
            f"{s} {n:,}" for s, n in info["records"].items())
            + f" = {sum(info['records'].values()):,} records")

    reader = None
    if not args.skip_baseline:
        smallest = min(sizes, key=parse_size)
        report["readers"], report["baseline_reader"] = choose_reader(sets[smallest], smallest)
        reader = report["baseline_reader"]["reader"]

    for label in sizes:
        info = report["data_sets"][label]
        records = sum(info["records"].values())
        shards = shard_count(info["records"]["settlement"], args.shards, args.shard_records)
        runs = measure_size(label, sets[label], records, workers, reader, args.repeat, logs,
                            tuple(m.strip() for m in args.modes.split(",")), shards,
                            args.compare_tree and args.compare_tree.resolve(), cpus)
        report["runs"] += runs
        print_results(runs)
        print_stages(runs)
        report.setdefault("scaling", []).extend(scaling(runs))

    report["load_average_at_end"] = os.getloadavg()
    if len(sizes) > 1:
        print_results(report["runs"])
        print_stages(report["runs"])
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2, default=str), encoding="utf-8")
        console.print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
