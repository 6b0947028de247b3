"""Which files under a landing pattern are deliveries (nightly and streaming).

The layout is ``<root>/<stream>/*.avro`` (DATA_CONTRACT.md).  The rules, one
place for both pipelines:

* A name starting with ``.`` or ``_`` is not a delivery: it is a file still
  being written (``.x.avro``, ``_tmp.avro``) or a marker, by the convention
  of Hadoop, Spark and rsync.  Writers that copy slowly should write such a
  name (or ``x.avro.tmp``, which ``*.avro`` does not match) and rename it
  when complete; a rename is atomic, so the reader never sees half a file.
* ``*`` matches one path segment (files in subfolders are not read).
* A symbolic link is followed: it is read as the file it points to, under
  its own path.  A broken link is listed anyway (with the link's own size
  and time), so that reading it fails and it becomes a dead letter instead
  of vanishing — Beam's own ``match`` skips it without a word.

Local paths are listed with ``glob``; other file systems (``gs://``) with
Beam's ``FileSystems.match`` (objects there have no links or partial writes).
"""
from __future__ import annotations

import glob
import os
import posixpath
from typing import NamedTuple

from apache_beam.io.filesystems import FileSystems

__all__ = ["Landed", "is_delivery_name", "list_landed"]


class Landed(NamedTuple):
    path: str
    size: int
    mtime: float  # seconds since the epoch
    broken_link: bool = False


def is_delivery_name(path: str) -> bool:
    name = posixpath.basename(path.rstrip("/"))
    return bool(name) and name[0] not in "._"


def list_landed(pattern: str) -> list[Landed]:
    """The deliveries matching ``pattern``, sorted by path."""
    if "://" in pattern:
        found = [Landed(m.path, m.size_in_bytes, getattr(m, "last_updated_in_seconds", 0.0) or 0.0)
                 for m in FileSystems.match([pattern])[0].metadata_list]
        return sorted(f for f in found if is_delivery_name(f.path))
    out = []
    for path in glob.glob(pattern):  # includes broken links; skips dot-names
        if not is_delivery_name(path) or os.path.isdir(path):
            continue
        try:
            st = os.stat(path)  # follows links
            out.append(Landed(path, st.st_size, st.st_mtime))
        except OSError:  # a broken link or a loop of links (or a file gone since the listing)
            try:
                st = os.lstat(path)
            except OSError:
                continue  # removed between glob and stat: it is not there any more
            out.append(Landed(path, st.st_size, st.st_mtime, broken_link=True))
    return sorted(out)
