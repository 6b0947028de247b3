"""Landing partitioned by arrival date: which partitions a nightly run reads.

Two layouts of a stream's folder, alone or together:

* flat: ``<input>/<stream>/*.avro`` — always read whole;
* by arrival date: ``<input>/<stream>/dt=YYYY-MM-DD/*.avro``, the day the
  files landed — read only from the earliest day the run's months can need.

A record lands on or after the day of its event (a file is delivered after
the events in it), so a partition older than every record a run needs holds
nothing it needs. What the months ``M1..Mn`` of a run need:

* enrolment: every partition. I07 and I09 are month-end snapshots of the
  latest version of each enrolment, however old (a person enrolled in 2015
  is still insured).
* the other streams: records of ``M1``'s year and of the year before it —
  C01 compares each period with the same period one year earlier, and YTD
  periods start in January. Cases still open at as_of count from their
  deadline, a few working weeks after submission, so the year before covers
  them too.
* corrections, reversals, late lists and late deliveries arrive after their
  month, up to as_of and beyond (a backfill's as_of lies in the past): no
  partition after the earliest needed one is ever left out.

``ARRIVAL_SLACK_DAYS`` absorbs a landing process that names partitions by UTC
date (up to 8 hours before the Beijing date). ``--all_partitions`` reads
everything (tests/test_production_path.py checks that pruning changes no
figure). What a pruned run does not read is not re-validated: its
quality_failures and dead_letters hold what the run read.
"""
from __future__ import annotations

import datetime as dt
import posixpath
import re
from dataclasses import dataclass, field

from apache_beam.io.filesystems import FileSystems

from transforms.landing import list_landed

PARTITION = re.compile(r"^dt=(\d{4}-\d{2}-\d{2})$")
FULL_HISTORY = frozenset({"enrolment"})
ARRIVAL_SLACK_DAYS = 1


@dataclass
class StreamLayout:
    """What a run reads of one stream's folder."""

    patterns: list[str]                               # for ReadStream
    files: list[str] = field(default_factory=list)    # *.avro in the partitions read
    bytes: int = 0                                     # their size
    other: list[str] = field(default_factory=list)    # not *.avro, in the partitions read
    read: list[str] = field(default_factory=list)     # partition names (dt=…) read
    skipped: list[str] = field(default_factory=list)  # partition names left out


def earliest_needed(stream: str, months: list[dt.date]) -> dt.date | None:
    """The earliest arrival day a run of ``months`` needs; None: every day."""
    if stream in FULL_HISTORY or not months:
        return None
    return dt.date(min(months).year - 1, 1, 1) - dt.timedelta(days=ARRIVAL_SLACK_DAYS)


def partition_day(path: str) -> dt.date | None:
    """The arrival day of a partition folder name or of a path's parent folder."""
    m = PARTITION.match(posixpath.basename(path.rstrip("/")))
    if not m:
        return None
    try:
        return dt.date.fromisoformat(m[1])
    except ValueError:
        return None


def layout(root: str, stream: str, months: list[dt.date], all_partitions: bool = False) -> StreamLayout:
    """The stream's flat pattern plus one pattern per partition the run reads."""
    folder = FileSystems.join(root, stream)
    out = StreamLayout(patterns=[FileSystems.join(folder, "*.avro")])
    by_partition: dict[str, list[str]] = {}
    sizes = {}
    for landed in list_landed(FileSystems.join(folder, "dt=*", "*")):
        part = posixpath.basename(posixpath.dirname(landed.path))
        if partition_day(part) is not None:
            by_partition.setdefault(part, []).append(landed.path)
            sizes[landed.path] = landed.size
    since = None if all_partitions else earliest_needed(stream, months)
    for part in sorted(by_partition):
        if since is not None and partition_day(part) < since:
            out.skipped.append(part)
            continue
        out.read.append(part)
        out.patterns.append(FileSystems.join(folder, part, "*.avro"))
        for path in sorted(by_partition[part]):
            (out.files if path.endswith(".avro") else out.other).append(path)
            out.bytes += sizes[path] if path.endswith(".avro") else 0
    return out
