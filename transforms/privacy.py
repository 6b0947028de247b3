"""Personal data never reaches the warehouse or the logs (ARCHITECTURE.md):
psn_no is pseudonymised with HMAC-SHA256 under ``YIBAO_PSEUDONYM_KEY``;
certno is masked to its region code (first 6 characters); names are dropped.

The key is chosen explicitly: a run calls :func:`require_key` before it
starts (a production run refuses a missing, short or public key; ``yibao
demo`` and ``--allow-demo-key`` put the public demo key into the
environment, where Beam's worker processes inherit it), and
:func:`pseudonym_key` never falls back to anything.

Files holding personal data on a local disk (staged batches, quarantined
bytes) are written with :func:`open_private`: 0600 in 0700 directories.
"""
from __future__ import annotations

import functools
import hashlib
import hmac
import logging
import os
from typing import BinaryIO

log = logging.getLogger(__name__)

KEY_ENV = "YIBAO_PSEUDONYM_KEY"
SECRET_ENV = "YIBAO_PSEUDONYM_KEY_SECRET"  # the deployed image's secret name (deploy/)
MIN_KEY_BYTES = 32
#: Public, so pseudonyms made with it protect nothing: demo and local trials only.
DEMO_KEY = "yibao-public-demo-key-protects-nothing"
PERSONAL_FIELDS = ("certno", "psn_name", "psn_no")
#: Characters of certno kept by the mask: the region code only. The birth date
#: (brdy) sits next to it in E04's details, so any kept sequence or check
#: character would leave too few unknowns to stop a rebuild of the ID.
CERTNO_KEPT = 6


def require_key(allow_demo: bool = False) -> None:
    """Refuse to run without a real pseudonym key (call before a run starts).

    With ``allow_demo`` and no key set, the public demo key is put into the
    environment (so worker processes started afterwards see it) and a
    warning says so. A key that is set must be at least MIN_KEY_BYTES long,
    and the demo key is accepted only with ``allow_demo``.
    """
    from pipelines.errors import UsageError

    key = os.environ.get(KEY_ENV)
    if not key and os.environ.get(SECRET_ENV):
        # A Dataflow launcher: the workers read the key from Secret Manager
        # (deploy/worker_boot.sh) and pseudonym_key() checks it there.
        log.info("%s is read by the workers from the secret %s", KEY_ENV, os.environ[SECRET_ENV])
        return
    if not key and allow_demo:
        log.warning("%s is not set: using the public demo key (its pseudonyms protect nothing)",
                    KEY_ENV)
        os.environ[KEY_ENV] = DEMO_KEY
        pseudonym_key.cache_clear()
        return
    how = (f"set {KEY_ENV} to a secret of at least {MIN_KEY_BYTES} bytes"
           " (e.g. `openssl rand -hex 32`), or pass --allow-demo-key for a local trial")
    if not key:
        raise UsageError(f"{KEY_ENV} is not set: {how}")
    given = key.strip()  # a secret file's newline or a blank value adds no secrecy
    if given == DEMO_KEY and not allow_demo:
        raise UsageError(f"{KEY_ENV} is the public demo key: {how}")
    if len(given.encode("utf-8")) < MIN_KEY_BYTES:
        raise UsageError(f"{KEY_ENV} is {len(given.encode('utf-8'))} bytes long: {how}")
    pseudonym_key.cache_clear()


@functools.cache
def pseudonym_key() -> bytes:
    """The key from the environment; no fallback (require_key chose it)."""
    key = os.environ.get(KEY_ENV, "").encode("utf-8")
    if len(key) < MIN_KEY_BYTES:
        # A worker without the key (e.g. a Dataflow worker whose secret was not
        # read): stop rather than pseudonymise under a guessable key.
        raise RuntimeError(f"{KEY_ENV} is missing or shorter than {MIN_KEY_BYTES} bytes in this "
                           "process: no psn_no can be pseudonymised")
    return key


def pseudonymise(psn_no: str | None) -> str | None:
    if psn_no is None:
        return None
    return hmac.new(pseudonym_key(), psn_no.encode("utf-8"), hashlib.sha256).hexdigest()


def mask_certno(certno: str | None) -> str | None:
    """The region code (first 6) and the length; a value of 10 characters or
    fewer is masked entirely (its first 6 would be most of it)."""
    if certno is None:
        return None
    kept = CERTNO_KEPT if len(certno) > 10 else 0
    return certno[:kept] + "*" * (len(certno) - kept)


def masked(values: dict) -> dict:
    """A record's values made safe for the warehouse: pseudonymised psn_no,
    masked certno, no name."""
    out = {}
    for k, v in values.items():
        if k == "psn_name":
            continue
        out[k] = pseudonymise(v) if k == "psn_no" else mask_certno(v) if k == "certno" else v
    return out


# --- files with personal data -------------------------------------------------


def private_dir(path: str) -> None:
    """Create local directory ``path`` and its missing parents as 0700, and
    make ``path`` itself 0700 if it existed (a gs:// prefix has no modes)."""
    if "://" in path:
        return
    target = p = os.path.abspath(path)
    missing = []
    while not os.path.isdir(p):
        missing.append(p)
        p = os.path.dirname(p)
    for p in reversed(missing):
        try:
            os.mkdir(p, 0o700)
        except FileExistsError:  # another worker made it first
            pass
        os.chmod(p, 0o700)  # whatever the umask or the other worker's mkdir did
    if not missing and os.stat(target).st_mode & 0o077:
        os.chmod(target, 0o700)  # left open by an earlier version


def open_private(path: str) -> BinaryIO:
    """A new file for writing (truncated if it exists): a local one is 0600
    in 0700 directories; anything else through Beam's FileSystems."""
    if "://" in path:
        from apache_beam.io.filesystem import CompressionTypes
        from apache_beam.io.filesystems import FileSystems

        # UNCOMPRESSED: the bytes exactly as given (AUTO guesses from the suffix).
        return FileSystems.create(path, compression_type=CompressionTypes.UNCOMPRESSED)
    private_dir(os.path.dirname(os.path.abspath(path)))
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.fchmod(fd, 0o600)  # an existing file keeps its old mode otherwise
    return os.fdopen(fd, "wb")
