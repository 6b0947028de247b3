"""gs:// through a storage emulator (``STORAGE_EMULATOR_HOST``).

Every path the nightly reads or writes goes through Beam's FileSystems, whose
gs:// client honours ``STORAGE_EMULATOR_HOST`` (fake-gcs-server in the tests,
an operator's dry run on a laptop). An emulator takes no credentials, but
Beam looks for Google's default credentials before its first gs:// access and
retries that lookup with backoff for ≈ 20 s before it connects anonymously.
With the variable set, :func:`configure` tells Beam there are none to find.
Without it nothing changes: Dataflow workers and launchers use their service
account as always.
"""
from __future__ import annotations

import logging
import os

log = logging.getLogger(__name__)

EMULATOR_ENV = "STORAGE_EMULATOR_HOST"


def configure() -> str | None:
    """Anonymous gs:// access when an emulator is set; returns its address."""
    host = os.environ.get(EMULATOR_ENV)
    if not host:
        return None
    # Beam has no option for an anonymous GCS client: its credential cache
    # (apache_beam.internal.gcp.auth) is filled with "none found", which is
    # exactly the state its own lookup ends in after the retries.
    from apache_beam.internal.gcp import auth

    with auth._Credentials._credentials_lock:
        if not auth._Credentials._credentials_init:
            auth._Credentials._credentials = None
            auth._Credentials._credentials_init = True
            log.info("gs:// goes to the storage emulator at %s (no credentials)", host)
    return host
