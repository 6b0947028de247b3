"""Scale-out (issue 17): a bucket's DuckDB uses the CPUs the process may run
on.  DuckDB sizes its thread pool by the machine's cores and ignores the
process's affinity (taskset, cpusets), so a one-worker run pinned to one CPU
would still start a DuckDB thread per core: the "one-core" baseline of the
"at least 1.6× faster than with one worker" measurement would not be one.
Each case runs in a subprocess pinned with os.sched_setaffinity, so this test
process keeps its own affinity."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

#: In a process pinned to the first ``cpus`` CPUs: nightly._threads for
#: ``workers`` local workers, and the threads of a bucket's real DuckDB
#: connection opened with it (transforms/shard_steps.py).
PROBE = """
import json, os, sys
cpus, workers = int(sys.argv[1]), int(sys.argv[2])
if cpus:
    os.sched_setaffinity(0, sorted(os.sched_getaffinity(0))[:cpus])
from apache_beam.options.pipeline_options import PipelineOptions
from pipelines import nightly
from transforms import shard_steps
threads = nightly._threads("FnApiRunner", PipelineOptions(["--direct_num_workers", str(workers)]))
with shard_steps._connection(shard_steps.Limits(None, threads)) as (con, _):
    duckdb_threads = con.execute("SELECT current_setting('threads')").fetchone()[0]
print(json.dumps({"threads": threads, "duckdb": duckdb_threads}))
"""


def probe(cpus: int, workers: int) -> dict:
    """``cpus`` 0: the process's affinity unchanged."""
    out = subprocess.run([sys.executable, "-c", PROBE, str(cpus), str(workers)], cwd=ROOT,
                         capture_output=True, text=True, check=True).stdout
    return json.loads(out.splitlines()[-1])


def test_one_worker_pinned_to_one_cpu_gets_one_duckdb_thread():
    assert probe(cpus=1, workers=1) == {"threads": 1, "duckdb": 1}


def test_workers_share_the_cpus_the_process_may_use():
    mine = len(os.sched_getaffinity(0))
    assert probe(cpus=1, workers=2) == {"threads": 1, "duckdb": 1}
    assert probe(cpus=0, workers=2)["duckdb"] == max(1, mine // 2)


def test_one_unrestricted_worker_keeps_duckdb_default_of_every_core():
    """None: DuckDB's own default, a thread per core of the machine."""
    if len(os.sched_getaffinity(0)) < (os.cpu_count() or 1):
        # this test process is itself pinned: the run is restricted too
        assert probe(cpus=0, workers=1)["duckdb"] == len(os.sched_getaffinity(0))
    else:
        assert probe(cpus=0, workers=1) == {"threads": None, "duckdb": os.cpu_count()}
