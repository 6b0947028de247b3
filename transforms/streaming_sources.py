"""Where the streaming job's deliveries come from.

On Dataflow: one Pub/Sub subscription per stream, each message one Avro
record (``ReadSubscriptions``).

Locally: a landing directory, ``<landing>/<stream>/*.avro``, watched for new
files (``LandingWatch``).  Beam's own watchers cannot run on the local
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
from transforms.streaming import LandedFile, Message

log = logging.getLogger(__name__)

_Event = beam_runner_api_pb2.TestStreamPayload.Event
_Element = beam_runner_api_pb2.TestStreamPayload.TimestampedElement
FILE_CODER = coders.TupleCoder([coders.StrUtf8Coder(), coders.StrUtf8Coder()])
#: The DirectRunner gives up on a TestStream service silent for 30 s.
MAX_POLL_SECONDS = 10.0


def parse_subscriptions(spec: str) -> dict[str, str]:
    """'settlement=projects/p/subscriptions/s,…' -> {stream: subscription}."""
    out = {}
    for part in filter(None, (p.strip() for p in spec.split(","))):
        stream, sep, sub = part.partition("=")
        if not sep or stream not in schemas.STREAMS or not sub.startswith("projects/"):
            raise ValueError(f"--subscriptions: expected stream=projects/P/subscriptions/S, got {part!r}")
        out[stream] = sub
    return out


class ReadSubscriptions(beam.PTransform):
    """One ReadFromPubSub per stream -> Messages (bytes, attributes, source)."""

    def __init__(self, subscriptions: dict[str, str]):
        super().__init__()
        self.subscriptions = subscriptions

    def expand(self, pbegin):
        from apache_beam.io.gcp.pubsub import ReadFromPubSub

        reads = []
        for stream, sub in sorted(self.subscriptions.items()):
            label = stream.title().replace("_", "")
            reads.append(
                pbegin
                | f"Read{label}" >> ReadFromPubSub(subscription=sub, with_attributes=True)
                | f"Tag{label}" >> beam.Map(
                    lambda m, stream=stream, sub=sub: Message(
                        stream, m.data, dict(m.attributes or {}), f"{sub}#message={m.message_id}")))
        return tuple(reads) | "AllMessages" >> beam.Flatten()


class LandingPoller:
    """Lists ``<landing>/<stream>/*.avro`` every ``poll_interval`` seconds and
    yields TestStream events: the files not seen before whose size held
    still since the previous poll (a file still being copied waits), and the
    processing time elapsed.  Stops after ``max_runtime`` seconds, if given."""

    def __init__(self, landing: str, poll_interval: float, max_runtime: float | None = None):
        self.landing = landing
        self.poll_interval = min(poll_interval, MAX_POLL_SECONDS)
        self.max_runtime = max_runtime
        self.seen: set[str] = set()
        self.sizes: dict[str, int] = {}

    def new_files(self) -> list[tuple[str, str]]:
        found = []
        for stream in schemas.STREAM_NAMES:
            pattern = FileSystems.join(self.landing, stream, "*.avro")
            for match in FileSystems.match([pattern])[0].metadata_list:
                path, size = match.path, match.size_in_bytes
                if path in self.seen:
                    continue
                if self.sizes.get(path) == size:
                    self.seen.add(path)
                    found.append((stream, path))
                else:
                    self.sizes[path] = size
        for _, path in found:
            self.sizes.pop(path, None)
        return sorted(found)

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

    def read_multiple(self, unused_specs):  # the TestStreamService reader interface
        return self.events()


class LandingWatch:
    """The landing poller served to a TestStream; use as a context manager
    around the pipeline run."""

    def __init__(self, landing: str, poll_interval: float, max_runtime: float | None = None):
        os.makedirs(landing, exist_ok=True)
        self.service = TestStreamServiceController(LandingPoller(landing, poll_interval, max_runtime))

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
