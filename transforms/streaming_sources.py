"""Where the streaming job's deliveries come from.

On Dataflow: one Pub/Sub subscription per stream, each message one Avro
record (``ReadSubscriptions``).

Locally: a landing directory, ``<landing>/<stream>/*.avro``, watched for new
files (``LandingWatch``).  Which files are deliveries is decided by
transforms/landing.py (no dot- or underscore-names; symbolic links followed,
a broken one delivered so that it becomes a dead letter).  When a file is
complete (issue 14 item 9):

* A file is picked up once it is *settled*: its size and modification time
  are the same at two listings in a row and the modification time is at
  least ``SETTLE_SECONDS`` old.  A file still being written keeps changing,
  so it waits; a file renamed into place (mtime kept) goes at once.
* The reliable convention for writers is still write-then-rename: write
  ``.name.avro`` (or ``name.avro.tmp``) and rename it to ``name.avro`` when
  complete.  The settle time only guards writers that do not.
* A file read once and changed afterwards (a writer that paused longer than
  the settle time, or a file replaced in place) is read again once it
  settles: what the first read took counts again as duplicates by event_id,
  the rest is new.  Nothing is skipped silently.

Beam's own watchers cannot run on the local
streaming runner of Beam 2.77: ``MatchContinuously`` is built on
``PeriodicImpulse``, and every splittable DoFn fails there (checked: the
streaming DirectRunner's override check rejects the SDF's GroupByKey, and
with that bypassed its SDF invoker rejects the deferred remainder), while
the FnApiRunner has no processing-time triggers.  So the watch runs beside
the pipeline: a poller with its own dedupe of seen files feeds a
``TestStream`` through its service endpoint — the mechanism Interactive
Beam uses for live streams — advancing processing time with the wall clock
(early panes fire as in production) and holding the watermark at its start
until the watch ends, as the DirectRunner does for splittable sources: a
local run is a replay, nothing it reads is late; at the end the watermark
jumps to +inf and every window fires its final pane.
"""
from __future__ import annotations

import logging
import os
import time
from collections.abc import Iterator

import apache_beam as beam
from apache_beam import coders
from apache_beam.io.filesystems import FileSystems
from apache_beam.portability.api import beam_runner_api_pb2
from apache_beam.testing.test_stream import TestStream
from apache_beam.testing.test_stream_service import TestStreamServiceController

import schemas
from pipelines.errors import UsageError
from transforms.landing import list_landed
from transforms.streaming import LandedFile, Message

log = logging.getLogger(__name__)

_Event = beam_runner_api_pb2.TestStreamPayload.Event
_Element = beam_runner_api_pb2.TestStreamPayload.TimestampedElement
FILE_CODER = coders.TupleCoder([coders.StrUtf8Coder(), coders.StrUtf8Coder()])
#: The DirectRunner gives up on a TestStream service silent for 30 s.
MAX_POLL_SECONDS = 10.0
#: A landed file is complete once unchanged for this long (module docstring).
SETTLE_SECONDS = 2.0
#: Seconds between listings while draining.
DRAIN_POLL_SECONDS = 0.25


def parse_subscriptions(spec: str) -> dict[str, str]:
    """'settlement=projects/p/subscriptions/s,…' -> {stream: subscription}."""
    out = {}
    for part in filter(None, (p.strip() for p in spec.split(","))):
        stream, sep, sub = part.partition("=")
        if not sep or stream not in schemas.STREAMS or not sub.startswith("projects/"):
            raise UsageError(f"--subscriptions: expected stream=projects/P/subscriptions/S, got {part!r}")
        out[stream] = sub
    return out


class ReadSubscriptions(beam.PTransform):
    """One ReadFromPubSub per stream -> Messages (bytes, attributes, source).

    ``timestamp_attribute``: the message attribute producers set to the
    record's event time (RFC 3339, or milliseconds since the epoch).  With it
    the runner's watermark follows event time (Dataflow estimates it from
    the backlog's attribute values); without it, publish time, so a backlog
    published late would look on time.  Each record is re-stamped with its
    own event time on decode either way."""

    def __init__(self, subscriptions: dict[str, str], timestamp_attribute: str | None = None):
        super().__init__()
        self.subscriptions = subscriptions
        self.timestamp_attribute = timestamp_attribute

    def expand(self, pbegin):
        from apache_beam.io.gcp.pubsub import ReadFromPubSub

        reads = []
        for stream, sub in sorted(self.subscriptions.items()):
            label = stream.title().replace("_", "")
            reads.append(
                pbegin
                | f"Read{label}" >> ReadFromPubSub(subscription=sub, with_attributes=True,
                                               timestamp_attribute=self.timestamp_attribute)
                | f"Tag{label}" >> beam.Map(
                    lambda m, stream=stream, sub=sub: Message(
                        stream, m.data, dict(m.attributes or {}), f"{sub}#message={m.message_id}")))
        return tuple(reads) | "AllMessages" >> beam.Flatten()


class LandingPoller:
    """Lists ``<landing>/<stream>/*.avro`` every ``poll_interval`` seconds and
    yields TestStream events: the files that settled in a state not read
    before (module docstring), and the processing time elapsed.  Stops after
    ``max_runtime`` seconds, if given; with ``drain``, as soon as every file
    listed has been read in its current state (bounded mode: what is present
    is read, files still being written are waited for, then the watermark
    goes to the end and every final pane fires)."""

    def __init__(self, landing: str, poll_interval: float, max_runtime: float | None = None,
                 settle_seconds: float = SETTLE_SECONDS, drain: bool = False):
        self.landing = landing
        # A drain lists often: it waits only for files to settle.
        self.poll_interval = min(poll_interval, MAX_POLL_SECONDS, DRAIN_POLL_SECONDS if drain else 1e9)
        self.max_runtime = max_runtime
        self.settle_seconds = settle_seconds
        self.drain = drain
        self.listed: dict[str, tuple[int, float]] = {}  # path -> (size, mtime) at the last listing
        self.read: dict[str, tuple[int, float]] = {}  # path -> (size, mtime) when delivered

    def new_files(self, now: float | None = None) -> list[tuple[str, str]]:
        """(stream, path) of the files to read now; ``now``: the wall clock."""
        now = time.time() if now is None else now
        found, listed = [], {}
        for stream in schemas.STREAM_NAMES:
            for f in list_landed(FileSystems.join(self.landing, stream, "*.avro")):
                state = listed[f.path] = (f.size, f.mtime)
                settled = self.listed.get(f.path) == state and now - f.mtime >= self.settle_seconds
                if not settled or self.read.get(f.path) == state:
                    continue
                if f.path in self.read:
                    log.warning("landing: %s changed after it was read; reading it again", f.path)
                self.read[f.path] = state
                found.append((stream, f.path))
        self.listed = listed
        return sorted(found)

    def drained(self) -> bool:
        """Every file of the last listing has been read as it is now."""
        return all(self.read.get(path) == state for path, state in self.listed.items())

    def events(self) -> Iterator[_Event]:
        start = last = time.time()
        while self.max_runtime is None or time.time() - start < self.max_runtime:
            time.sleep(self.poll_interval)
            now = time.time()
            yield _Event(processing_time_event=_Event.AdvanceProcessingTime(
                advance_duration=int((now - last) * 1e6)))
            last = now
            files = self.new_files()
            if files:
                log.info("landing: %d new file(s)", len(files))
                yield _Event(element_event=_Event.AddElements(tag="None", elements=[
                    _Element(encoded_element=FILE_CODER.encode(f), timestamp=int(now * 1e6))
                    for f in files]))
            if self.drain and self.drained():
                log.info("landing: drained")
                return

    def read_multiple(self, unused_specs):  # the TestStreamService reader interface
        return self.events()


class LandingWatch:
    """The landing poller served to a TestStream; use as a context manager
    around the pipeline run."""

    def __init__(self, landing: str, poll_interval: float, max_runtime: float | None = None,
                 settle_seconds: float = SETTLE_SECONDS, drain: bool = False):
        os.makedirs(landing, exist_ok=True)
        self.service = TestStreamServiceController(
            LandingPoller(landing, poll_interval, max_runtime, settle_seconds, drain))

    def __enter__(self) -> LandingWatch:
        self.service.start()
        return self

    def __exit__(self, *exc) -> None:
        self.service.stop()

    def read(self) -> beam.PTransform:
        return _ReadLanding(self.service.endpoint)


class _ReadLanding(beam.PTransform):
    def __init__(self, endpoint: str):
        super().__init__()
        self.endpoint = endpoint

    def expand(self, pbegin):
        return (
            pbegin
            | "WatchLanding" >> TestStream(coder=FILE_CODER, endpoint=self.endpoint)
            | "ToLandedFile" >> beam.MapTuple(LandedFile)
        )
