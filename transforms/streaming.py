"""The streaming steps, in the order the records meet them (pipelines/stream.py
wires them; ARCHITECTURE.md "stream", "Scale-out").

1. ``DecodeDeliveries``: a Pub/Sub message (one schemaless Avro record, its
   ``schema`` attribute the contract fingerprint) or a landed Avro file ->
   records stamped with their event time (contribution clct_time, settlement
   setl_time, settlement_list upload_time, filing completed_time or
   submitted_time while open, enrolment event_time); bad bytes, values the
   contract's types cannot hold (transforms/decode.py) and event times too
   near the end of the calendar for the day windows -> dead letters.
2. ``DropTooLate``: records keyed by (stream, shard of event_id), "spread
   keys so no single worker carries a stream" (issue 20), in business-day
   windows with the allowed lateness: the runner drops a record whose day
   closed more than the allowed lateness ago (its window expired behind
   the watermark); what went in and did not come out is ``late_dropped``.
3. ``LinkVersions``: state per business key (setl_id with its reversals and
   settlement lists, case_id; event_id for contributions and enrolments)
   drops duplicate event_ids and turns each new record into a ``Change``:
   the key's records before and after it.
4. ``BatchChanges``: changes batched per (family, shard) for a fraction of a
   second of processing time.
5. ``ComputeChanges``: a batch -> the retraction of each changed key's old
   contribution and its new one, with the nightly SQL over the changed keys'
   records only (transforms/streaming_compute.py), summed per (group, day,
   indicator or rule, region, member); the changed keys' quality_failures.
6. ``Totals``: CombinePerKey sums of the changes per (group, day) and per
   (group, month), exact decimals, in business-day and business-month
   windows kept ``stream_retention_days`` after they end (then the runner
   garbage-collects them), early every N seconds, on time, and late as
   corrections arrive -> DAY and MONTH rows.  I13 (list within 30 days) is
   summed in business-day windows at the day its 30 days run out, never
   early; its months add up its due days.
7. ``CountRecords``: read / accepted / duplicates / dead-lettered / late
   counts and the quality_failures rows per stream -> pipeline_run_streams.

A firing costs what arrived: the changed keys' records go through the SQL,
and the totals are sums over (indicator, region, member), whatever the
number of records behind them.
"""
from __future__ import annotations

import datetime as dt
import typing
import zlib
from collections import Counter, defaultdict
from dataclasses import dataclass
from typing import NamedTuple

import apache_beam as beam
from apache_beam.coders import PickleCoder
from apache_beam.coders.coders import IntervalWindowCoder
from apache_beam.transforms import trigger
from apache_beam.transforms.timeutil import TimeDomain
from apache_beam.transforms.userstate import (
    BagStateSpec,
    ReadModifyWriteStateSpec,
    TimerSpec,
    on_timer,
)
from apache_beam.transforms.window import (
    FixedWindows,
    GlobalWindows,
    IntervalWindow,
    NonMergingWindowFn,
    TimestampCombiner,
    TimestampedValue,
)
from apache_beam.utils.timestamp import Timestamp
from apache_beam.utils.windowed_value import WindowedValue

import expectations
import schemas
from transforms.breakdown import breakdown_table, load_member_components
from transforms.compute import connect
from transforms.context import RunContext, month_end
from transforms.decode import DeadLetter, decode_message, iter_avro_batches
from transforms.indicators.catalog import BREAKDOWN
from transforms.provisional import provisional
from transforms.quarantine import quarantine
from transforms.rollup import indicator_rows, rule_rows
from transforms.streaming_compute import (
    GROUP_CODES,
    GROUP_RULE_STREAM,
    change_deltas,
    parts_components,
)
from transforms.timeutil import BUSINESS_TZ, business_date
from transforms.versions import encode_record

DAY_SECONDS = 24 * 3600
#: Asia/Shanghai midnight is 16:00 UTC: one-day windows offset by 16 hours.
BUSINESS_DAYS = FixedWindows(DAY_SECONDS, offset=16 * 3600)
#: The windows after the lateness gate keep a day more than the allowed
#: lateness, so that the gate (DropTooLate, whose drops are counted) and no
#: later window (whose drops would not be) decides what is too late.
WINDOW_SLACK_DAYS = 1
#: I13's panes close this many days after the settlement day.
LIST_DAYS = 30

COUNT_KINDS = ("read", "accepted", "duplicates", "dead_lettered", "late_dropped")

DEAD_LETTERS = "dead_letters"
TALLIES = "tallies"
DUE = "due"
TaggedOutput = beam.pvalue.TaggedOutput


def min_retention_days(lateness_days: int) -> int:
    """The shortest ``stream_retention_days`` for ``lateness_days``: a day's
    totals must outlive the windows of every change that can reach them (the
    gate's lateness, the slack day, I13's 30 days and the day itself)."""
    return lateness_days + WINDOW_SLACK_DAYS + LIST_DAYS + 1


class BusinessMonths(NonMergingWindowFn):
    """Calendar months of the business time zone (Asia/Shanghai):
    [00:00 on the 1st, 00:00 on the next month's 1st)."""

    def assign(self, context):
        month = day_of(context.timestamp).replace(day=1)
        return [IntervalWindow(day_start(month), day_start(month_end(month) + dt.timedelta(days=1)))]

    def get_window_coder(self):
        return IntervalWindowCoder()

    def __eq__(self, other):
        return type(self) is type(other)

    def __hash__(self):
        return hash(type(self))


def to_global(label: str, pcoll):
    """``pcoll`` back in the global window with the default trigger (after a
    windowed step, for steps that keep their own state or triggers)."""
    return pcoll | label >> beam.WindowInto(GlobalWindows(), trigger=trigger.DefaultTrigger(),
                                            accumulation_mode=trigger.AccumulationMode.DISCARDING)


# --- deliveries and event time ------------------------------------------------
class Message(NamedTuple):
    """One Pub/Sub message: a schemaless Avro record of ``stream``."""
    stream: str
    data: bytes
    attributes: dict
    source: str  # subscription#message_id


class LandedFile(NamedTuple):
    """An Avro container file that appeared in the landing directory."""
    stream: str
    path: str


@dataclass(frozen=True)
class StreamSettings:
    """Everything the streaming steps need, built once by the pipeline."""
    ctx: RunContext  # reference data and config (as_of is not used)
    warehouse: str
    run_id: str
    quarantine_dir: str
    early_firing_seconds: int  # whole seconds: the runner API has no finer trigger delay
    allowed_lateness_days: int
    #: Days a period's totals (and WriteLatest's counter) are kept after the
    #: period ends (parameters.stream_retention_days, >= min_retention_days).
    retention_days: int
    #: Batches of changes per family computed side by side (step 4): about
    #: the number of workers; 1 on the local runner (one process).
    batch_shards: int = 1


def event_time(stream: str, rec: dict) -> dt.datetime:
    if stream == "filing":
        return rec["completed_time"] or rec["submitted_time"]
    return rec[schemas.load(stream).event_time_field]


_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


def instant(value: dt.datetime) -> Timestamp:
    """A Beam timestamp of an aware datetime (whatever its UTC tzinfo object:
    Arrow's is not the one Beam's from_utc_datetime accepts)."""
    return Timestamp(micros=(value - _EPOCH) // dt.timedelta(microseconds=1))


def day_of(ts: Timestamp) -> dt.date:
    """The business day of a Beam timestamp."""
    return business_date(dt.datetime.fromtimestamp(ts.micros / 1e6, dt.UTC))


def day_start(day: dt.date) -> Timestamp:
    """The instant the business day begins (00:00 Asia/Shanghai)."""
    return instant(dt.datetime.combine(day, dt.time(), tzinfo=BUSINESS_TZ))


def day_expiry(day: dt.date, lateness_days: int) -> Timestamp:
    """When the day's window closes: its end plus the allowed lateness."""
    return day_start(day + dt.timedelta(days=1 + lateness_days))


def unwindowable(stream: str, rec: dict, lateness_days: int) -> str | None:
    """Why the record cannot be windowed, or None.  Its business day, that
    day's expiry and the month's state timer (the furthest date a record
    leads to: month end + lateness + slack + I13's 30 days) must be dates;
    an event time near 9999-12-31 is valid Avro but would crash the job."""
    when = event_time(stream, rec)
    horizon = 2 + lateness_days + WINDOW_SLACK_DAYS + LIST_DAYS
    try:
        day = business_date(when)
        day_start(month_end(day.replace(day=1)) + dt.timedelta(days=horizon))
    except (OverflowError, ValueError):
        return (f"event time {when.isoformat()} is too near the end of the calendar for the "
                f"streaming windows (they reach {horizon} days past its month)")
    return None


def _tally(stream: str, **counts) -> TaggedOutput:
    return TaggedOutput(TALLIES, (stream, Counter(counts)))


def _dead_letter(letter: DeadLetter) -> TaggedOutput:
    return TaggedOutput(DEAD_LETTERS, dict(letter.as_dict(), received_at=dt.datetime.now(dt.UTC)))


# --- 1. decode ----------------------------------------------------------------
class DecodeDeliveries(beam.DoFn):
    """Message / LandedFile -> (stream, record) at its event time; dead
    letters and read counts on tagged outputs.  A message whose ``schema``
    attribute is not the contract's fingerprint is never decoded: its bytes
    were written with another schema."""

    def __init__(self, quarantine_dir: str, lateness_days: int):
        self.quarantine_dir = quarantine_dir
        self.lateness_days = lateness_days

    def setup(self):
        self.fingerprints = {s: schemas.load(s).fingerprint for s in schemas.STREAM_NAMES}

    def process(self, delivery):
        if isinstance(delivery, LandedFile):
            yield from self._file(delivery)
            return
        stream, data, attributes, source = delivery
        yield _tally(stream, read=1)
        try:
            got = (attributes or {}).get("schema")
            if got != self.fingerprints[stream]:
                raise ValueError(f"schema attribute {got!r} is not the {stream} contract's "
                                 f"fingerprint {self.fingerprints[stream]}")
            rec = decode_message(data, stream)
            if why := unwindowable(stream, rec, self.lateness_days):
                raise ValueError(why)
        except ValueError as err:
            yield _tally(stream, dead_lettered=1)
            yield _dead_letter(quarantine(self.quarantine_dir, stream, source, str(err), data))
            return
        rec.update(_source=source, _index=None)  # a message is one record
        yield TimestampedValue((stream, rec), instant(event_time(stream, rec)))

    def _file(self, landed: LandedFile):
        for item in iter_avro_batches(landed.path, landed.stream, self.quarantine_dir):
            if isinstance(item, DeadLetter):
                yield _tally(landed.stream, read=1, dead_lettered=1)
                yield _dead_letter(item)
                continue
            yield _tally(landed.stream, read=item.num_rows)
            for rec in item.to_pylist():
                if why := unwindowable(landed.stream, rec, self.lateness_days):
                    yield _tally(landed.stream, dead_lettered=1)
                    yield _dead_letter(quarantine(
                        self.quarantine_dir, landed.stream, f"{rec['_source']}#record={rec['_index']}",
                        why, encode_record(landed.stream, rec)))
                    continue
                yield TimestampedValue((landed.stream, rec), instant(event_time(landed.stream, rec)))


# --- 2. lateness ----------------------------------------------------------------
#: Keys per stream the lateness gate spreads a stream's records over (issue
#: 20: "spread keys so no single worker carries a stream").  A constant, not
#: ``batch_shards``: that is 1 on the local runner and about the number of
#: workers on Dataflow, while the gate keeps no state of its own (the runner's
#: trigger state per key and day only), so more keys than workers cost little
#: and let Dataflow balance 5 x 16 keys over its workers.
GATE_SHARDS = 16


def gate_shard(rec: dict) -> int:
    """A record's shard of its stream's gate keys: stable across workers and
    retries (crc32, not the salted ``hash``), by event_id so that redeliveries
    of one event meet on one key."""
    return zlib.crc32(rec["event_id"].encode()) % GATE_SHARDS


class EnterGate(beam.DoFn):
    """(stream, record) -> ((stream, shard), (record, event time)); ``gated``
    tallies, one per stream and window a bundle saw, at its earliest record's
    time (count_row: late_dropped = gated - passed)."""

    def start_bundle(self):
        self.gated: dict = {}  # (stream, window) -> [records, earliest timestamp]

    def process(self, element, ts=beam.DoFn.TimestampParam, window=beam.DoFn.WindowParam):
        stream, rec = element
        seen = self.gated.setdefault((stream, window), [0, ts])
        seen[0] += 1
        seen[1] = min(seen[1], ts)
        yield (stream, gate_shard(rec)), (rec, ts.micros)

    def finish_bundle(self):
        for (stream, window), (n, earliest) in self.gated.items():
            yield TaggedOutput(TALLIES, WindowedValue((stream, Counter(gated=n)), earliest, [window]))


class LeaveGate(beam.DoFn):
    """A pane of a gate key -> its records again, each at its own event time
    (the pane's timestamp is its earliest record's); a ``passed`` tally."""

    def process(self, element):
        (stream, _), items = element
        n = 0
        for rec, micros in items:
            n += 1
            yield TimestampedValue((stream, rec), Timestamp(micros=micros))
        yield _tally(stream, passed=n)


class DropTooLate(beam.PTransform):
    """(stream, record) -> {"records": the records not later than the allowed
    lateness, TALLIES: what went in and what came out}.

    The runner decides: the records are keyed by (stream, shard) and
    grouped in business-day windows with the allowed lateness, each fired
    as it arrives (AfterCount(1), discarding).  A record whose day window
    has expired (window end + lateness behind the input watermark) is dropped
    by the runner's trigger driver (Beam's GeneralTriggerDriver on the local
    BundleBasedDirectRunner, its late-data dropping on Dataflow), whatever
    key it lands on: unlike a DoFn, the runner knows the watermark.  The
    runner drops silently, so the gate counts what enters and what leaves.

    The boundary is ``day_expiry`` (the day's end + lateness), as with the
    old per-stream gate, to within one tick: on Dataflow a record is too
    late once the watermark reaches it (window max timestamp, end - 1 ms, +
    lateness is before the watermark); Beam's Python trigger driver
    (trigger.py GeneralTriggerDriver.process_elements) once the watermark
    is past it, so locally a record arriving while the watermark stands
    exactly at the expiry still passes (tests/test_stream_gate.py)."""

    def __init__(self, lateness_days: int):
        super().__init__()
        self.lateness_days = lateness_days

    def expand(self, records):
        entered = records | "EnterGate" >> beam.ParDo(EnterGate()).with_output_types(
            tuple[tuple[str, int], typing.Any]).with_outputs(TALLIES, main="keyed")
        left = (
            entered.keyed
            | "GateWindows" >> beam.WindowInto(
                BUSINESS_DAYS, allowed_lateness=self.lateness_days * DAY_SECONDS,
                trigger=trigger.Repeatedly(trigger.AfterCount(1)),
                accumulation_mode=trigger.AccumulationMode.DISCARDING,
                timestamp_combiner=TimestampCombiner.OUTPUT_AT_EARLIEST)
            | "GateGroup" >> beam.GroupByKey().with_input_types(tuple[tuple[str, int], typing.Any])
            | "LeaveGate" >> beam.ParDo(LeaveGate()).with_outputs(TALLIES, main="records"))
        return {
            "records": to_global("GateOutputGlobal", left.records),
            TALLIES: ((entered[TALLIES], to_global("PassedGlobal", left[TALLIES]))
                      | "GateTallies" >> beam.Flatten()),
        }


# --- 3. versions, duplicates, joins -------------------------------------------------
#: The family (business key kind) each stream's records change; enrolment
#: feeds no streamed indicator (I07 and I09 are stocks), it is only
#: deduplicated and counted.
FAMILY = {"settlement": "settlement", "settlement_list": "settlement",
          "contribution": "contribution", "filing": "filing", "enrolment": None}
#: The state of a settlement key lives until its I13 figures have closed.
RETENTION_EXTRA_DAYS = {"settlement": LIST_DAYS + 1}


def link_keys(element):
    """(stream, record) -> (link key, (role, stream, record)).  "own": the
    record belongs to this key (a version of it, or one of its settlement
    lists) and is counted there; "context": a reversal naming another
    settlement, which changes how that settlement counts."""
    stream, rec = element
    if stream == "settlement":
        yield ("settlement", rec["setl_id"]), ("own", stream, rec)
        if rec["refd_setl_flag"] == "1" and rec["init_setl_id"] not in (None, rec["setl_id"]):
            yield ("settlement", rec["init_setl_id"]), ("context", stream, rec)
    elif stream == "settlement_list":
        yield ("settlement", rec["setl_id"]), ("own", stream, rec)
    elif stream == "filing":
        yield ("filing", rec["case_id"]), ("own", stream, rec)
    else:  # contribution, enrolment: each record is its own business key
        yield (stream, rec["event_id"]), ("own", stream, rec)


def _payload(rec: dict) -> dict:
    return {k: v for k, v in rec.items() if not k.startswith("_")}


class Change(NamedTuple):
    """A business key's records before and after one record arrived."""
    key: typing.Any
    old: list  # [(stream, record)]
    new: list


_RECORDS = BagStateSpec("records", PickleCoder())
_LAST_DAY = ReadModifyWriteStateSpec("last_day", PickleCoder())
_LINK_GC = TimerSpec("gc", TimeDomain.WATERMARK)
RECORDS, LAST_DAY, LINK_GC = (beam.DoFn.StateParam(_RECORDS), beam.DoFn.StateParam(_LAST_DAY),
                              beam.DoFn.TimerParam(_LINK_GC))


class LinkRecords(beam.DoFn):
    """Keyed by business key, in the global window.  State: every record of
    the key (its versions and context), and a garbage-collection timer once
    the windows of every day its records fall on have closed (which also
    bounds the event_id dedupe in time).  Each new record -> a ``Change``
    of the key (its records before and after), keyed by (family, shard)."""

    def __init__(self, quarantine_dir: str, lateness_days: int, shards: int):
        self.quarantine_dir = quarantine_dir
        self.lateness_days = lateness_days
        self.shards = shards

    def process(self, element, records=RECORDS, last_day=LAST_DAY, gc=LINK_GC):
        (_, key), (role, stream, rec) = element
        own = role == "own"
        kept = list(records.read())
        twin = next((r for s, r in kept if r["event_id"] == rec["event_id"] and s == stream), None)
        if twin is not None:  # at-least-once delivery: count an event_id once
            if not own:
                return
            if _payload(twin) == _payload(rec):
                yield _tally(stream, duplicates=1)
            else:  # the copy kept is the first delivered
                yield _tally(stream, dead_lettered=1)
                where = rec["_source"] if rec["_index"] is None else (
                    f"{rec['_source']}#record={rec['_index']}")
                yield _dead_letter(quarantine(
                    self.quarantine_dir, stream, where,
                    f"conflicting duplicate of event_id {rec['event_id']!r}: differs from the "
                    "copy kept", encode_record(stream, rec)))
            return
        records.add((stream, rec))
        if own:
            yield _tally(stream, accepted=1)
        family = FAMILY[stream]
        if family:
            # The shards spread a family over workers; a batch lets one DuckDB
            # run serve many keys.
            shard = zlib.crc32(repr(key).encode()) % self.shards
            yield (family, shard), Change(key, kept, [*kept, (stream, rec)])
        # Forget the key once its latest day (its versions' and what followed
        # them) and the I13 days after it have closed.
        day = max(own_days(stream, rec) | {business_date(event_time(stream, rec))})
        latest = last_day.read()
        if latest is None or day > latest:
            last_day.write(day)
            retain = self.lateness_days + WINDOW_SLACK_DAYS + RETENTION_EXTRA_DAYS.get(family, 0)
            gc.set(day_expiry(day, retain))

    @on_timer(_LINK_GC)
    def forget(self, records=RECORDS, last_day=LAST_DAY):
        records.clear()
        last_day.clear()


def own_days(stream: str, rec: dict) -> set[dt.date]:
    """The business days a record counts on: its event day, and for a case
    also the day it was submitted (its quality rules count it there)."""
    days = {business_date(event_time(stream, rec))}
    if stream == "filing" and rec["submitted_time"] is not None:
        days.add(business_date(rec["submitted_time"]))
    return days


class LinkVersions(beam.PTransform):
    """(stream, record) -> ((family, shard), Change) on ``changes``, plus
    ``tallies`` and ``dead_letters``."""

    def __init__(self, settings: StreamSettings):
        super().__init__()
        self.settings = settings

    def expand(self, records):
        return (
            records
            | "KeyByBusinessKey" >> beam.FlatMap(link_keys).with_output_types(
                tuple[tuple[str, str], typing.Any])
            | "LinkRecords" >> beam.ParDo(LinkRecords(
                self.settings.quarantine_dir, self.settings.allowed_lateness_days,
                self.settings.batch_shards)).with_outputs(
                TALLIES, DEAD_LETTERS, main="changes")
        )


# --- 4. batches of changes -----------------------------------------------------------


class _Seconds(float):
    """A trigger delay below a second: Beam's Python AfterProcessingTime
    writes ``delay * 1000`` into the runner API's integer milliseconds."""

    def __mul__(self, other):
        return round(float(self) * other)


#: A batch fires this long (processing time) after its first change.  (An
#: AfterAny with AfterCount would bound its size, but the local runner then
#: stops firing it early after the first batch.)
BATCH_SECONDS = _Seconds(0.25)


class BatchChanges(beam.PTransform):
    """((family, shard), Change) -> ((family, shard), [Change]) every
    ``BATCH_SECONDS`` of processing time and what is left when the
    input ends.  A batch's timestamp is its earliest change's and holds the
    watermark until it fires, so the I13 figures after it are never late
    for their windows."""

    def expand(self, changes):
        return (
            changes
            | "BatchWindow" >> beam.WindowInto(
                GlobalWindows(),
                trigger=trigger.AfterWatermark(early=trigger.AfterProcessingTime(BATCH_SECONDS)),
                accumulation_mode=trigger.AccumulationMode.DISCARDING,
                timestamp_combiner=TimestampCombiner.OUTPUT_AT_EARLIEST)
            | "GroupBatch" >> beam.GroupByKey().with_input_types(tuple[tuple[str, int], typing.Any])
        )


# --- 5. what the changes do ----------------------------------------------------------
class ComputeChanges(beam.DoFn):
    """A batch of one family's changes -> the summed retractions and new
    contributions (streaming_compute.change_deltas), per (group, day) on the
    main output stamped at the day's start, per (group, month) on ``months``
    stamped at the month's start (each inside the window it adds to: a
    batch's own time is its earliest change's, and a change can reach older
    days), I13's per day on ``due`` at the day its 30 days run out; the changed keys' quality_failures on
    ``rows`` and the change in their number on ``tallies``."""

    def __init__(self, ctx: RunContext):
        self.ctx = ctx

    def process(self, element):
        (family, _), changes = element
        deltas = change_deltas(family, [(c.key, c.old, c.new) for c in changes], self.ctx)
        by_day: dict = defaultdict(dict)
        by_month: dict = defaultdict(dict)
        for (group, day, kind, code, attr, member), parts in deltas.entries.items():
            by_day[(group, day)][(kind, code, attr, member)] = parts
            month = by_month[(group, day.replace(day=1))]
            have = month.setdefault((kind, code, attr, member), {})
            for name, value in parts.items():
                have[name] = have.get(name, 0) + value
        for (group, day), entries in by_day.items():
            if group == "i13":  # published once the day's 30 days have passed
                yield TaggedOutput(DUE, TimestampedValue(
                    (("i13", day.toordinal()), entries), day_start(day + dt.timedelta(days=LIST_DAYS))))
            else:  # in the day's window (the batch's time is its earliest change's)
                yield TimestampedValue(((group, day.toordinal()), entries), day_start(day))
        for (group, month), entries in by_month.items():
            if group != "i13":
                yield TaggedOutput("months", TimestampedValue(
                    ((group, month.toordinal()), entries), day_start(month)))
        for stream, keys in deltas.record_keys.items():
            rows = [dict(f, pipeline="stream") for f in deltas.failures.get(stream, [])]
            yield TaggedOutput("rows", Write("quality_failures", rows, {
                "pipeline": ["stream"], "stream": [stream], "record_key": keys}))
        for stream, n in deltas.failure_counts.items():
            if n:
                yield _tally(stream, quality_failures=n)


# --- 6. day and month totals -------------------------------------------------------
class SumParts(beam.CombineFn):
    """Exact sums of entries {(kind, code, attr, member): parts}; the output
    is (number of inputs, sums): firings accumulate, so the number orders them."""

    def create_accumulator(self):
        return 0, {}

    def add_input(self, acc, entries):
        n, sums = acc
        for entry, parts in entries.items():
            have = sums.setdefault(entry, {})
            for name, value in parts.items():
                have[name] = have.get(name, 0) + value
        return n + 1, sums

    def merge_accumulators(self, accs):
        n, sums = 0, {}
        for m, entries in accs:
            self.add_input((0, sums), entries)
            n += m
        return n, sums

    def extract_output(self, acc):
        return acc


class Totals(beam.PTransform):
    """Entries per (group, period) -> their running sums.  ``period`` "day"
    and "month": business-day and business-month windows (each entry is
    stamped at its period's start), early every N seconds of processing
    time, on time when the watermark passes the period's end (at the end of
    a drain: the watermark jumps to +inf) and late every N seconds as
    corrections arrive, for ``retention_days`` after the period's end.

    Bounded state: before, these sums lived in the global window, and "Day/
    month totals and the write counter are never garbage-collected while the
    job runs" (on Dataflow, indicators x institutions x regions entries more
    every day, forever).  Now the runner garbage-collects a period's
    accumulator once its window is ``retention_days`` behind the watermark
    (Dataflow; Beam's local trigger driver drops the late entries but keeps
    its in-memory panes), and a correction that reaches an older period
    (a key kept alive by later records, e.g. a reversal of a settlement
    whose lists kept arriving) is dropped by the runner: the nightly
    recomputes that period from the landed records.

    ``period`` "due": I13's business-day windows at the day its 30 days run
    out, on time at the watermark and late as corrections arrive, never
    early (their lateness: the gate's, plus the slack day)."""

    def __init__(self, settings: StreamSettings, period: str = "day"):
        super().__init__()
        if period not in ("day", "month", "due"):
            raise ValueError(f"period {period!r}: day, month or due")
        self.settings, self.period = settings, period

    def expand(self, entries):
        every = trigger.AfterProcessingTime(self.settings.early_firing_seconds)
        if self.period == "due":
            window = beam.WindowInto(
                BUSINESS_DAYS, trigger=trigger.AfterWatermark(late=every),
                accumulation_mode=trigger.AccumulationMode.ACCUMULATING,
                allowed_lateness=(self.settings.allowed_lateness_days + WINDOW_SLACK_DAYS) * DAY_SECONDS)
        else:
            window = beam.WindowInto(
                BUSINESS_DAYS if self.period == "day" else BusinessMonths(),
                trigger=trigger.AfterWatermark(early=every, late=every),
                accumulation_mode=trigger.AccumulationMode.ACCUMULATING,
                allowed_lateness=self.settings.retention_days * DAY_SECONDS)
        return (entries
                | "Window" >> window
                | "Sum" >> beam.CombinePerKey(SumParts()).with_input_types(
                    tuple[tuple[str, int], typing.Any]))


class DayResult(NamedTuple):
    """One firing of a day's totals.  Firings accumulate, so a later one
    has summed more changes; ``pane_size`` orders them (the order of arrival
    downstream is not guaranteed)."""
    group: str
    day: dt.date
    pane_size: int
    components: list
    rules: list  # quality rule components of the day


def stream_rows(group: str, components: list, ctx: RunContext, day: dt.date,
                period_type: str) -> list[dict]:
    """indicator_values rows of the group's indicators for ``day`` (DAY) or
    its month (MONTH), every region, 0/0 rows included (transforms.rollup)."""
    month = day.replace(day=1)
    run_ctx = RunContext(ref=ctx.ref, config=ctx.config, as_of=ctx.as_of, months=[month])
    codes = GROUP_CODES[group]
    now = dt.datetime.now(dt.UTC)
    rows = []
    for row in indicator_rows(components, run_ctx):
        if row["period_type"] != "MONTH" or row["indicator_code"] not in codes:
            continue
        if period_type == "DAY":
            row.update(period_type="DAY", period_start=day, period_end=day)
        # The run's as_of is FOREVER here: provisional is judged at the firing's time.
        rows.append(dict(row, as_of=now, pipeline="stream", provisional=provisional(
            row["indicator_code"], row["period_end"], business_date(now), ctx.config.parameters)))
    return rows


def stream_breakdown(group: str, components: list, ctx: RunContext, day: dt.date,
                     period_type: str) -> Write | None:
    """indicator_breakdown rows of the group's split indicators for ``day``
    (DAY) or its month (MONTH), from the same components as ``stream_rows``
    (so they add up to its rows); the write replaces every member row of
    those indicators and that period, so a member that dropped out leaves
    none behind.  None when the group splits no indicator."""
    codes = sorted(c for c in GROUP_CODES[group] if c in BREAKDOWN)
    if not codes:
        return None
    month = day.replace(day=1)
    start, end = (day, day) if period_type == "DAY" else (month, month_end(month))
    run_ctx = RunContext(ref=ctx.ref, config=ctx.config, as_of=ctx.as_of, months=[month])
    con = connect()
    try:
        load_member_components(con, components)
        table = breakdown_table(con, run_ctx, set(codes), catalogue=False)
    finally:
        con.close()
    rows = [dict(r, period_type=period_type, period_start=start, period_end=end, pipeline="stream")
            for r in table.to_pylist() if r["period_type"] == "MONTH"]
    return Write("indicator_breakdown", rows, {"pipeline": ["stream"], "indicator_code": codes,
                                               "period_type": [period_type], "period_start": [start]})


class Write(NamedTuple):
    """Rows for one warehouse table; ``scope`` (column -> values) for the
    scoped tables: the rows it covers are replaced (warehouse.scope)."""
    table: str
    rows: list
    scope: dict | None = None


class DayRows(beam.DoFn):
    """A firing of a day's totals -> DayResult; its DAY rows on ``rows``."""

    def __init__(self, ctx: RunContext):
        self.ctx = ctx

    def process(self, element):
        (group, ordinal), (n, entries) = element
        day = dt.date.fromordinal(ordinal)
        components, rules = parts_components(entries, day.replace(day=1))
        yield DayResult(group, day, n, components, rules)
        if GROUP_CODES[group]:
            split = stream_breakdown(group, components, self.ctx, day, "DAY")
            yield TaggedOutput("rows", ((group, "DAY", ordinal), (n, [
                Write("indicator_values", stream_rows(group, components, self.ctx, day, "DAY")),
                *([split] if split else [])])))


class MonthResult(NamedTuple):
    group: str
    month: dt.date
    values: list  # indicator_values MONTH rows
    rules: list  # quality_rule_results MONTH rows
    breakdown: Write | None = None  # indicator_breakdown MONTH rows (stream_breakdown)


def stream_rule_rows(group: str, rule_parts: list, ctx: RunContext, month: dt.date) -> list[dict]:
    """quality_rule_results MONTH rows of the group's rules, every region, 0/0
    rows included, as the nightly writes them (transforms.rollup.rule_rows)."""
    rule_stream = GROUP_RULE_STREAM.get(group)
    if not rule_stream:
        return []
    run_ctx = RunContext(ref=ctx.ref, config=ctx.config, as_of=ctx.as_of, months=[month])
    return [dict(r, pipeline="stream")
            for r in rule_rows(rule_parts, run_ctx, expectations.rules(rule_stream))
            if r["period_type"] == "MONTH"]


def month_result(group: str, month: dt.date, components: list, rules: list,
                 ctx: RunContext) -> MonthResult:
    return MonthResult(group, month,
                       stream_rows(group, components, ctx, month, "MONTH") if GROUP_CODES[group] else [],
                       stream_rule_rows(group, rules, ctx, month),
                       stream_breakdown(group, components, ctx, month, "MONTH"))


def month_writes(result: MonthResult, n: int) -> TaggedOutput:
    """A month's rows, keyed for streaming_sink.WriteLatest."""
    return TaggedOutput("rows", ((result.group, "MONTH", result.month.toordinal()), (n, [
        Write("indicator_values", result.values), Write("quality_rule_results", result.rules),
        *([result.breakdown] if result.breakdown else [])])))


class MonthRows(beam.DoFn):
    """A firing of a month's totals -> MonthResult; its rows on ``rows``."""

    def __init__(self, ctx: RunContext):
        self.ctx = ctx

    def process(self, element):
        (group, ordinal), (n, entries) = element
        month = dt.date.fromordinal(ordinal)
        result = month_result(group, month, *parts_components(entries, month), self.ctx)
        yield result
        yield month_writes(result, n)


class MonthOfDueDays(beam.PTransform):
    """I13's DayResults -> MonthResult whenever one of the month's due days
    changes (its days are published one by one as their 30 days run out)."""

    def __init__(self, settings: StreamSettings):
        super().__init__()
        self.settings = settings

    def expand(self, day_results):
        return (
            to_global("IntoGlobalWindow", day_results)
            | "KeyByMonth" >> beam.Map(
                lambda r: ((r.group, r.day.replace(day=1).toordinal()), r)).with_output_types(
                tuple[tuple[str, int], typing.Any])
            | "AddUpDays" >> beam.ParDo(AddUpDays(self.settings)).with_outputs("rows", main="results")
        )


_LATEST = ReadModifyWriteStateSpec("latest_by_day", PickleCoder())
_MONTH_GC = TimerSpec("gc", TimeDomain.WATERMARK)
LATEST, MONTH_GC = beam.DoFn.StateParam(_LATEST), beam.DoFn.TimerParam(_MONTH_GC)


class AddUpDays(beam.DoFn):
    """Keyed by (group, month): the latest firing of each day (the one that
    summed most changes) -> the month's components."""

    def __init__(self, settings: StreamSettings):
        self.settings = settings

    def process(self, element, latest=LATEST, gc=MONTH_GC):
        (group, ordinal), result = element
        month = dt.date.fromordinal(ordinal)
        by_day = latest.read() or {}
        # An older firing overtaken on the way changes nothing.
        if result.day not in by_day or by_day[result.day][0] <= result.pane_size:
            by_day[result.day] = (result.pane_size, result.components, result.rules)
            latest.write(by_day)
            keep = self.settings.allowed_lateness_days + WINDOW_SLACK_DAYS + LIST_DAYS + 1
            gc.set(day_expiry(month_end(month), keep))
            components = [c for _, comps, _ in by_day.values() for c in comps]
            rules = [c for _, _, parts in by_day.values() for c in parts]
            result = month_result(group, month, components, rules, self.settings.ctx)
            yield result
            # Every day's firings only grow: their sum orders the month's.
            yield month_writes(result, sum(size for size, _, _ in by_day.values()))

    @on_timer(_MONTH_GC)
    def forget(self, latest=LATEST):
        latest.clear()


# --- 7. counts -------------------------------------------------------------------
class SumCounts(beam.CombineFn):
    def create_accumulator(self):
        return Counter()

    def add_input(self, acc, counts):
        acc.update(counts)
        return acc

    def merge_accumulators(self, accs):
        out = Counter()
        for a in accs:
            out.update(a)
        return out

    def extract_output(self, acc):
        return dict(acc)


def count_row(run_id: str, stream: str, counts: dict) -> dict:
    """A pipeline_run_streams row of a stream's summed tallies.  late_dropped
    is what entered the lateness gate and did not leave it (the runner drops
    silently): exact at rest, after a drain or whenever no record is inside
    the gate; on the way a record inside the gate counts as late until it
    leaves (never below 0, should a ``passed`` tally overtake its ``gated``)."""
    row = {"run_id": run_id, "stream": stream}
    counts = dict(counts, late_dropped=max(0, counts.get("gated", 0) - counts.get("passed", 0)))
    # quality_failures: the stream's rows in quality_failures now (changes add and retract them).
    row.update({k: int(counts.get(k, 0)) for k in (*COUNT_KINDS, "quality_failures")})
    return row


class CountRecords(beam.PTransform):
    """(stream, Counter) tallies -> running pipeline_run_streams rows, every
    N seconds and once more when the input ends."""

    def __init__(self, settings: StreamSettings):
        super().__init__()
        self.settings = settings

    def expand(self, tallies):
        run_id = self.settings.run_id
        return (
            tallies
            | "RunningTotals" >> beam.WindowInto(
                GlobalWindows(),
                trigger=trigger.AfterWatermark(
                    early=trigger.AfterProcessingTime(self.settings.early_firing_seconds)),
                accumulation_mode=trigger.AccumulationMode.ACCUMULATING)
            | "SumPerStream" >> beam.CombinePerKey(SumCounts())
            | "ToRow" >> beam.MapTuple(lambda stream, counts: count_row(run_id, stream, counts))
        )
