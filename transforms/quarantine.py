"""Dead letters: bytes the pipeline cannot use, kept instead of lost.

A dead letter is one row of the warehouse's ``dead_letters`` table (minus
``received_at`` / ``run_id``, which the sink adds).  The raw bytes never go
to the warehouse — they may hold personal data — but to a quarantine
location outside it, ``<quarantine_dir>/<stream>/<sha256>.bin``, a local
folder or a ``gs://`` prefix (written through Beam's ``FileSystems``).
Naming the file by its hash makes a re-run rewrite the same object instead
of piling up copies. A local file is 0600 in 0700 directories
(``privacy.open_private``).
"""
from __future__ import annotations

import dataclasses
import hashlib

from apache_beam.io.filesystems import FileSystems

from transforms.privacy import open_private


@dataclasses.dataclass(frozen=True)
class DeadLetter:
    stream: str
    source: str  # "path", "path#block=N", "path#record=I" or a Pub/Sub message id
    error: str
    size: int  # len(payload)
    sha256: str  # hex digest of payload
    quarantine_path: str

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)


def quarantine(
    quarantine_dir: str, stream: str, source: str, error: str, payload: bytes
) -> DeadLetter:
    """Write ``payload`` to the quarantine and return its dead letter."""
    digest = hashlib.sha256(payload).hexdigest()
    path = FileSystems.join(quarantine_dir, stream, f"{digest}.bin")
    with open_private(path) as f:
        f.write(payload)
    return DeadLetter(stream, source, error, len(payload), digest, path)
