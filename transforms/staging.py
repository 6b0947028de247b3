"""Staging: decoded records spill to Parquet files instead of travelling
through the runner as elements.

The sharded nightly (transforms/shard_steps.py) writes its pieces to
``<staging>/<run_id>/<step or family>/<uuid>.parquet`` (a local folder, or a
gs:// prefix on Dataflow): one file per writer sorted by key bucket, from
which each bucket reads its row groups (transforms/shards.py); only paths
cross the shuffle.

The files hold personal data (raw certno, psn_name, psn_no): local ones are
0600 in 0700 directories, a run removes its folder on every exit path
(``remove``), and the next run sweeps what a killed one left
(``sweep_staging``). A gs:// staging prefix relies on the bucket's lifecycle
rule for that (deploy/RUNBOOK.md).
"""
from __future__ import annotations

import logging
import os
import shutil
import time
import uuid
from collections.abc import Callable, Mapping

from apache_beam.io.filesystem import CompressionTypes
from apache_beam.io.filesystems import FileSystems

from transforms.privacy import open_private, private_dir

log = logging.getLogger(__name__)


def local_paths(paths: list[str], local_dir: str) -> list[str]:
    """DuckDB reads local files only (no extension downloads): remote staged
    files are copied next to the compute step's database first."""
    out = []
    for path in paths:
        if "://" not in path:
            out.append(path)
            continue
        target = os.path.join(local_dir, uuid.uuid4().hex + ".parquet")
        with FileSystems.open(path, compression_type=CompressionTypes.UNCOMPRESSED) as src, \
                open_private(target) as dst:
            shutil.copyfileobj(src, dst, 1 << 20)
        out.append(target)
    return out


def remove(staging_dir: str) -> None:
    """Drop a run's staging area (best effort: it holds only copies; the next
    run's sweep_staging retries what is left)."""
    try:
        if "://" in staging_dir:
            # A trailing "/" deletes everything under the prefix; without it
            # Beam deletes only an object of exactly that name (there is none).
            FileSystems.delete([staging_dir.rstrip("/") + "/"])
        else:
            shutil.rmtree(staging_dir, ignore_errors=True)
    except Exception:  # noqa: BLE001 - leftover copies never fail a run
        log.warning("could not remove the staging folder %s", staging_dir, exc_info=True)


def sweep_staging(staging_root: str, run_statuses: Callable[[list[str]], Mapping[str, str]],
                  max_age_hours: float) -> list[str]:
    """Remove the run folders ``<staging_root>/<run_id>`` that killed runs left
    behind; returns the run_ids removed.

    ``run_statuses`` is the warehouse's ``run_statuses``: a folder whose run
    is no longer ``running`` there goes. A folder the warehouse does not know
    (a run of another warehouse sharing the folder, or debris) goes only once
    untouched for ``max_age_hours``: it may be a live run elsewhere. Local
    staging only: a gs:// prefix is left to the bucket's lifecycle rule.
    """
    if "://" in staging_root or not os.path.isdir(staging_root):
        return []
    folders = {e.name: e.path for e in os.scandir(staging_root) if e.is_dir(follow_symlinks=False)}
    if not folders:
        return []
    statuses = run_statuses(sorted(folders))
    cutoff = time.time() - max_age_hours * 3600
    removed = []
    for run_id, path in sorted(folders.items()):
        status = statuses.get(run_id)
        if status == "running" or (status is None and os.stat(path).st_mtime >= cutoff):
            continue
        shutil.rmtree(path, ignore_errors=True)
        if not os.path.exists(path):
            removed.append(run_id)
    if removed:
        log.info("removed the staging folders of ended runs %s", ", ".join(removed))
    private_dir(staging_root)  # a root left open by an earlier version
    return removed
