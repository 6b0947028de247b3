"""Scaling model of the sharded nightly on Dataflow, from measured per-record costs.

Reads results JSON of benchmarks/nightly_throughput.py (runs with the run
summary's ``stage_seconds``) and prints, for 10^7, 10^8 and 10^9 settlements a
year (the other streams at the generator's proportions), a table of workers ×
vCPUs → estimated wall time, and the recommended ``--shards`` for each.

Measured (from the JSON):

* each step's worker seconds per record of all streams (one vCPU busy on it):
  ``stage_seconds[step]["worker"] / records``, from the single-worker runs, fitted
  as fixed + per-record seconds when two sizes were measured (else per record);
* the rest of the run that no step times (launcher, Beam start-up and shuffles of
  file paths, Publish): elapsed − decode phase − Σ compute step walls, fitted the
  same way;
* records of each stream per settlement, and Avro bytes per record.

Assumed (printed with the table; each one a command-line option):

* the machine: n2-highmem-8, 8 vCPU, 64 GB;
* DuckDB working set ≈ 1.14 KB per record (issue 17), of which a shard must fit
  in one vCPU's share of the worker's memory (64 GB / 8) at ``--memory-headroom``;
* Dataflow start-up per job (VMs booted, SDK container pulled) ``--startup-s``;
* GCS read throughput per worker ``--gcs-mbps`` (the Avro input, and the staged
  Parquet written once and read once by each of Route, Resolve, Rekey at
  ``--staged-ratio`` × the Avro size);
* shuffle throughput per worker ``--shuffle-mbps`` (the shuffled elements are file
  paths and per-key decimal sums: ``--shuffle-bytes-per-record``);
* a parallel efficiency ``--efficiency`` for every parallel step (stragglers,
  autoscaling lag, hot keys), none for Finalize (one element, one vCPU);
* a sharded step cannot use more vCPUs than it has elements: shards × the number
  of streams (ResolveDeliveries) or families (Rekey, ComputeShards) — measured as
  calls per shard.

Run it::

    .venv/bin/python benchmarks/dataflow_model.py benchmarks/results/<date>-nightly-scale-out.json
        [--workers 1,4,16,64,256] [--vcpus 8] [--markdown]
"""
from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

#: Steps that run in parallel (by Avro block, or by key bucket).
PARALLEL = ("Decode", "RouteDeliveries", "ResolveDeliveries", "Rekey", "ComputeShards")
#: Steps with one element: one vCPU whatever the workers.
SERIAL = ("Finalize",)
#: Steps whose elements are key buckets (their parallelism is capped by --shards).
SHARDED = ("ResolveDeliveries", "Rekey", "ComputeShards")
SETTLEMENTS = (10**7, 10**8, 10**9)


def fit(points: list[tuple[float, float]]) -> tuple[float, float]:
    """Fixed seconds and seconds per record through the measured (records, seconds):
    a line through two or more sizes (fixed part clipped at ≥ 0), else per record."""
    if len(points) == 1 or len({x for x, _ in points}) == 1:
        x, y = points[0]
        return 0.0, y / x
    n = len(points)
    mx, my = sum(x for x, _ in points) / n, sum(y for _, y in points) / n
    slope = (sum((x - mx) * (y - my) for x, y in points)
             / sum((x - mx) ** 2 for x, _ in points))
    fixed = my - slope * mx
    if fixed < 0 or slope <= 0:  # noise: all of it per record, through the largest size
        x, y = max(points)
        return 0.0, y / x
    return fixed, slope


def other_seconds(run: dict) -> float:
    """The run's time outside the timed steps: its elapsed seconds less the decode
    phase (Decode and RouteDeliveries overlap: their joint span) and the walls of
    the compute steps (what is left: start-up, the shuffles between steps, Publish)."""
    stages = run["stage_seconds"]
    decode = [stages[s] for s in ("Decode", "RouteDeliveries") if "start" in stages.get(s, {})]
    spent = (max(s["end"] for s in decode) - min(s["start"] for s in decode)) if decode else 0.0
    spent += sum(stages[s].get("wall", 0) for s in (*SHARDED, *SERIAL) if s in stages)
    return max(0.0, (run.get("elapsed_seconds") or run["seconds"]) - spent)


def measured(report: dict) -> dict:
    """Per-stage costs, proportions and bytes from single-worker pipeline runs."""
    runs = [r for r in report["runs"] if r.get("run") == "pipeline" and r.get("workers") == 1
            and r.get("returncode") == 0 and r.get("stage_seconds")]
    fastest = {}  # per size, the least disturbed attempt (several result files)
    for r in runs:
        if r["size"] not in fastest or r["seconds"] < fastest[r["size"]]["seconds"]:
            fastest[r["size"]] = r
    runs = list(fastest.values())
    if not runs:
        sys.exit("dataflow_model: no successful single-worker pipeline run with stage_seconds "
                 "in the results (run nightly_throughput.py with --workers 1,…)")
    steps = [s for s in (*PARALLEL, *SERIAL) if all(s in r["stage_seconds"] for r in runs)]
    costs = {s: fit([(r["records"], r["stage_seconds"][s]["worker"]) for r in runs])
             for s in steps}
    costs["other"] = fit([(r["records"], other_seconds(r)) for r in runs])
    largest = max(runs, key=lambda r: r["records"])
    data = report["data_sets"][largest["size"]]
    per_settlement = {s: n / data["records"]["settlement"] for s, n in data["records"].items()}
    shards = largest.get("shards") or 1
    calls = {s: largest["stage_seconds"][s].get("calls", shards) / shards for s in SHARDED
             if s in largest["stage_seconds"]}
    return {"costs": costs, "per_settlement": per_settlement,
            "records_per_settlement": sum(per_settlement.values()),
            "avro_bytes_per_record": data.get("avro_bytes", 0) / sum(data["records"].values()),
            "elements_per_shard": calls, "runs": [(r["size"], r["records"], r["seconds"],
                                                   r.get("load_average_before")) for r in runs]}


def shards_for(records: float, vcpus_total: int, a: argparse.Namespace) -> int:
    """Enough buckets that one bucket's DuckDB working set fits one vCPU's share of
    a worker's memory (with headroom), and at least two per vCPU (load balance)."""
    share = a.memory_gb * 1e9 / a.vcpus * a.memory_headroom
    by_memory = math.ceil(records * a.kb_per_record * 1e3 / share)
    return max(by_memory, 2 * vcpus_total)


def estimate(records: float, workers: int, a: argparse.Namespace, m: dict) -> dict:
    """Seconds of one run: start-up + Σ parallel steps + serial steps + I/O."""
    vcpus = workers * a.vcpus
    shards = shards_for(records, vcpus, a)
    seconds = a.startup_s
    for step, (fixed, per_record) in m["costs"].items():
        if step in SERIAL:
            seconds += fixed + per_record * records
            continue
        # "other" (launcher, Publish, path shuffles) is spread like a parallel step:
        # on Dataflow the shards write their own files and BigQuery loads them
        usable = vcpus
        if step in SHARDED:
            usable = min(vcpus, shards * m["elements_per_shard"].get(step, 1))
        seconds += fixed + per_record * records / (usable * a.efficiency)
    avro = records * m["avro_bytes_per_record"]
    gcs_bytes = avro * (1 + 2 * 3 * a.staged_ratio)  # read; Route/Resolve/Rekey write+read
    seconds += gcs_bytes / (workers * a.gcs_mbps * 1e6)
    seconds += records * a.shuffle_bytes_per_record / (workers * a.shuffle_mbps * 1e6)
    working_set = records * a.kb_per_record * 1e3 / shards
    return {"seconds": seconds, "shards": shards, "shard_working_set_gb": working_set / 1e9}


def duration(seconds: float) -> str:
    if seconds >= 86_400:
        return f"{seconds / 86_400:.1f} d"
    if seconds >= 3_600:
        return f"{seconds / 3_600:.1f} h"
    return f"{seconds / 60:.0f} min"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("results", type=Path, nargs="+",
                   help="results JSON of nightly_throughput.py (several: their runs together)")
    p.add_argument("--workers", default="1,4,16,64,256", help="Dataflow worker counts")
    p.add_argument("--vcpus", type=int, default=8, help="vCPUs per worker (n2-highmem-8: 8)")
    p.add_argument("--memory-gb", type=float, default=64, help="memory per worker (64)")
    p.add_argument("--kb-per-record", type=float, default=1.14,
                   help="DuckDB working set per record, KB (issue 17: 1.14)")
    p.add_argument("--memory-headroom", type=float, default=0.5,
                   help="share of a vCPU's memory a shard may fill (0.5: Python, Arrow "
                        "buffers and the SDK harness hold the rest)")
    p.add_argument("--startup-s", type=float, default=240,
                   help="job start-up: VMs booted, SDK container pulled, graph staged (240 s)")
    p.add_argument("--gcs-mbps", type=float, default=200,
                   help="GCS read/write throughput per worker, MB/s (200)")
    p.add_argument("--staged-ratio", type=float, default=1.5,
                   help="staged Parquet (lz4) bytes per Avro (deflate) byte, each pass (1.5)")
    p.add_argument("--shuffle-mbps", type=float, default=50,
                   help="Dataflow Shuffle throughput per worker, MB/s (50)")
    p.add_argument("--shuffle-bytes-per-record", type=float, default=16,
                   help="bytes crossing the shuffle per record (file paths, decimal sums: 16)")
    p.add_argument("--efficiency", type=float, default=0.7,
                   help="parallel efficiency of the parallel steps (0.7)")
    p.add_argument("--markdown", action="store_true", help="print Markdown tables")
    a = p.parse_args(argv)
    reports = [json.loads(f.read_text()) for f in a.results]
    report = {"runs": [r for rep in reports for r in rep["runs"]],
              "data_sets": {k: v for rep in reports for k, v in rep["data_sets"].items()}}
    m = measured(report)
    workers = [int(w) for w in a.workers.split(",")]

    md = a.markdown
    print(("## " if md else "") + "Dataflow scaling model from "
          + ", ".join(str(f) for f in a.results))
    print()
    print("Measured on this machine (single-worker runs: size, records, wall s, load average):")
    for size, records, seconds, load in m["runs"]:
        print(f"- {size}: {records:,} records in {seconds:.1f} s (load {load and load[0]:.2f})"
              if load else f"- {size}: {records:,} records in {seconds:.1f} s")
    print()
    print("| step | fixed s | µs per record per vCPU |" if md else
          "step                 fixed s   µs/record/vCPU")
    if md:
        print("|---|---:|---:|")
    for step, (fixed, per) in m["costs"].items():
        kind = " (serial)" if step in SERIAL else ""
        print(f"| {step}{kind} | {fixed:.1f} | {per * 1e6:.1f} |" if md else
              f"{step + kind:20} {fixed:8.1f}   {per * 1e6:10.1f}")
    print()
    print(f"Records per settlement: {m['records_per_settlement']:.2f} ("
          + ", ".join(f"{s} {v:.2f}" for s, v in m["per_settlement"].items())
          + f"); Avro {m['avro_bytes_per_record']:.0f} bytes per record.")
    print()
    print("Assumptions: " + "; ".join([
        f"{a.vcpus} vCPU / {a.memory_gb:g} GB per worker (n2-highmem-8)",
        f"DuckDB working set {a.kb_per_record} KB per record, a shard within "
        f"{a.memory_headroom:.0%} of one vCPU's memory share",
        f"start-up {a.startup_s:g} s", f"GCS {a.gcs_mbps:g} MB/s per worker",
        f"staged Parquet {a.staged_ratio:g}× the Avro bytes per pass (3 passes, written and read)",
        f"shuffle {a.shuffle_mbps:g} MB/s per worker at {a.shuffle_bytes_per_record:g} B/record",
        f"parallel efficiency {a.efficiency:g}",
        "Finalize on one vCPU",
        "--shards ≥ 2 per vCPU"]) + ".")
    print()
    head = ["workers × vCPU"] + [f"{n:.0e} settlements ({n * m['records_per_settlement']:.1e} "
                                 "records)" for n in SETTLEMENTS]
    print("| " + " | ".join(head) + " |" if md else "  ".join(head))
    if md:
        print("|---" + "|---:" * len(SETTLEMENTS) + "|")
    for w in workers:
        cells = []
        for n in SETTLEMENTS:
            e = estimate(n * m["records_per_settlement"], w, a, m)
            cells.append(f"{duration(e['seconds'])}, --shards {e['shards']:,} "
                         f"({e['shard_working_set_gb']:.1f} GB/shard)")
        row = [f"{w} × {a.vcpus}"] + cells
        print("| " + " | ".join(row) + " |" if md else "  ".join(row))
    return 0


if __name__ == "__main__":
    sys.exit(main())
