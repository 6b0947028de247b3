"""Worker size of the nightly job: machine type, disk and the compute step's
memory limit, derived from one another (docs/PERFORMANCE.md "Dataflow").

Each key bucket of the sharded compute is a DuckDB database over the
bucket's staged Parquet (copied to the worker's disk), spilling to that disk
beyond its memory limit; a worker runs one bucket per vCPU at a time (one
SDK process per vCPU on Dataflow; ``--direct_num_workers`` locally). So:

* memory limit of the worker's DuckDBs together = ``MEMORY_FRACTION`` of its
  memory (the rest is the Beam harness, Python and the result rows), shared
  by its concurrent buckets (``per_bucket``);
* disk = room for the staged copies plus the spill: ``DISK_PER_MEMORY`` × the
  worker's memory, at least ``MIN_DISK_GB``.

The deploy files (Airflow DAG, Workflows) name ``DEPLOY_MACHINE_TYPE`` and
its disk; the pipeline derives the limit from ``--worker_machine_type`` (the
flex template's ``machineType``), so nobody keeps the three in step by hand.
"""
from __future__ import annotations

import math
import os
import re

MEMORY_FRACTION = 0.6
DISK_PER_MEMORY = 2
MIN_DISK_GB = 50
DEPLOY_MACHINE_TYPE = "n2-highmem-8"  # 8 vCPU, 64 GB: PERFORMANCE.md's "≥ 8 vCPU, highmem"
DATAFLOW_DEFAULT_MACHINE_TYPE = "n1-standard-1"  # Dataflow's batch worker when none is named

# GB of memory per vCPU of Compute Engine's predefined machine families.
_GB_PER_VCPU = {
    ("n1", "standard"): 3.75, ("n1", "highmem"): 6.5, ("n1", "highcpu"): 0.9,
    ("n2", "standard"): 4, ("n2", "highmem"): 8, ("n2", "highcpu"): 1,
    ("n2d", "standard"): 4, ("n2d", "highmem"): 8, ("n2d", "highcpu"): 1,
    ("n4", "standard"): 4, ("n4", "highmem"): 8, ("n4", "highcpu"): 2,
    ("e2", "standard"): 4, ("e2", "highmem"): 8, ("e2", "highcpu"): 1,
    ("c2", "standard"): 4, ("c2d", "standard"): 4, ("c2d", "highmem"): 8,
    ("c3", "standard"): 4, ("c3", "highmem"): 8, ("c3", "highcpu"): 2,
    ("c3d", "standard"): 4, ("c3d", "highmem"): 8, ("c3d", "highcpu"): 2,
    ("t2d", "standard"): 4, ("m1", "ultramem"): 24.025,
}
_PREDEFINED = re.compile(r"^([a-z]\d+[a-z]?)-(standard|highmem|highcpu|ultramem)-(\d+)$")
_CUSTOM = re.compile(r"^(?:([a-z]\d+[a-z]?)-)?custom-(\d+)-(\d+)(?:-ext)?$")  # MB of memory


def machine_memory_gb(machine_type: str) -> float:
    """Memory of a Compute Engine machine type, in GB (as Google counts: 2^30 bytes)."""
    name = machine_type.strip().lower().rsplit("/", 1)[-1]
    if m := _CUSTOM.match(name):
        return int(m[3]) / 1024
    m = _PREDEFINED.match(name)
    if not m or (m[1], m[2]) not in _GB_PER_VCPU:
        raise ValueError(f"unknown machine type {machine_type!r}: give --compute_memory_limit "
                         "explicitly, or a predefined type such as n2-highmem-8")
    return _GB_PER_VCPU[(m[1], m[2])] * int(m[3])


def local_memory_gb() -> float:
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30


def memory_limit(memory_gb: float) -> str:
    """DuckDB memory_limit for a worker of ``memory_gb``, in whole MB."""
    return f"{int(memory_gb * MEMORY_FRACTION * 1024)}MB"


def disk_size_gb(machine_type: str) -> int:
    """Worker boot disk for the compute step: staged copies plus spill."""
    return max(MIN_DISK_GB, 10 * math.ceil(DISK_PER_MEMORY * machine_memory_gb(machine_type) / 10))


def compute_memory_limit(given: str | None, runner: str | None, machine_type: str | None) -> str:
    """``--compute_memory_limit`` if given; else the fraction of the memory of
    the machine the compute step runs on: the Dataflow worker (its machine
    type, or Dataflow's default one), or this machine for a local run."""
    if given:
        return given
    if str(runner or "") == "DataflowRunner":
        return memory_limit(machine_memory_gb(machine_type or DATAFLOW_DEFAULT_MACHINE_TYPE))
    return memory_limit(local_memory_gb())


_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(KB|MB|GB|TB|KIB|MIB|GIB|TIB)\s*$", re.IGNORECASE)


def vcpus(machine_type: str | None) -> int:
    """vCPUs of a Compute Engine machine type (1 when unknown)."""
    name = (machine_type or DATAFLOW_DEFAULT_MACHINE_TYPE).strip().lower().rsplit("/", 1)[-1]
    if m := _CUSTOM.match(name):
        return int(m[2])
    m = _PREDEFINED.match(name)
    return int(m[3]) if m else 1


#: DuckDB working set of the compute per byte of Avro input (≈ 1.14 KB per record,
#: ≈ 61 bytes of Avro per record, docs/PERFORMANCE.md), with room to spare (× 2).
WORKING_SET_PER_AVRO_BYTE = 38
#: Avro input per bucket when the memory limit is not a size (a percentage).
FALLBACK_SHARD_BYTES = 64 * 2**20


def limit_bytes(limit: str) -> int | None:
    """A DuckDB memory limit ("4915MB", "12GB") in bytes; None for another form."""
    m = _SIZE.match(limit)
    if not m:
        return None
    unit = m[2].upper().replace("I", "")
    return int(float(m[1]) * {"KB": 2**10, "MB": 2**20, "GB": 2**30, "TB": 2**40}[unit])


def shard_bytes(bucket_limit: str) -> int:
    """Avro input one bucket can take so that its working set fits its memory limit."""
    limit = limit_bytes(bucket_limit)
    return max(2**20, limit // WORKING_SET_PER_AVRO_BYTE) if limit else FALLBACK_SHARD_BYTES


def per_bucket(limit: str, concurrent: int) -> str:
    """A worker's DuckDB budget shared by ``concurrent`` buckets computed at
    once, in whole MB (a limit DuckDB understands but this does not parse —
    a percentage — is kept as given)."""
    total = limit_bytes(limit)
    if total is None or concurrent <= 1:
        return limit
    return f"{max(1, total // concurrent // 2**20)}MB"

