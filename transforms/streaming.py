"""The streaming steps, in the order the records meet them (pipelines/stream.py
wires them; ARCHITECTURE.md "stream").

1. ``DecodeDeliveries``: a Pub/Sub message (one schemaless Avro record, its
   ``schema`` attribute the contract fingerprint) or a landed Avro file ->
   records stamped with their event time (contribution clct_time, settlement
   setl_time, settlement_list upload_time, filing completed_time or
   submitted_time while open, enrolment event_time); bad bytes, values the
   contract's types cannot hold (transforms/decode.py) and event times too
   near the end of the calendar for the day windows -> dead letters.
2. ``DropTooLate``: a record whose business day closed more than the allowed
   lateness ago is counted ``late_dropped`` and goes no further.
3. ``LinkVersions``: state per business key (setl_id, case_id; event_id for
   contributions and enrolments) drops duplicate event_ids and routes each
   record to the business days it can change: a settlement's versions to
   every day any of them falls on (a correction may move it), a reversal and
   the settlement lists of a setl_id to the days of that settlement, whichever
   arrives first.
4. ``DayPanes``: fixed one-day windows aligned on Asia/Shanghai midnight,
   accumulating panes: early every N seconds of processing time, on time at
   the watermark, late as corrections arrive.  I13 (list within 30 days) has
   its own panes, windowed by the day its 30 days run out, that never fire
   early.
5. ``ComputeDays``: each pane -> the day's components with the nightly SQL
   (transforms/streaming_compute.py) -> DAY rows.
6. ``MonthTotals``: state per month keeps the latest components of each of
   its days -> MONTH rows (components add over days).
7. ``CountRecords``: read / accepted / duplicates / dead-lettered / late
   counts per stream -> pipeline_run_streams.
"""
from __future__ import annotations

import datetime as dt
import typing
from collections import Counter
from dataclasses import dataclass
from typing import NamedTuple

import apache_beam as beam
from apache_beam.coders import PickleCoder
from apache_beam.transforms import trigger
from apache_beam.transforms.timeutil import TimeDomain
from apache_beam.transforms.userstate import (
    BagStateSpec,
    ReadModifyWriteStateSpec,
    TimerSpec,
    on_timer,
)
from apache_beam.transforms.window import FixedWindows, GlobalWindows, TimestampedValue
from apache_beam.utils.timestamp import Timestamp

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
from transforms.streaming_compute import GROUP_CODES, GROUP_RULE_STREAM, day_components
from transforms.timeutil import BUSINESS_TZ, business_date
from transforms.versions import encode_record

DAY_SECONDS = 24 * 3600
#: Asia/Shanghai midnight is 16:00 UTC: one-day windows offset by 16 hours.
BUSINESS_DAYS = FixedWindows(DAY_SECONDS, offset=16 * 3600)
#: The windows keep a day more than the allowed lateness, so that DropTooLate
#: (which counts what it drops) and not the runner (which drops silently)
#: decides what is too late.
WINDOW_SLACK_DAYS = 1
#: I13's panes close this many days after the settlement day.
LIST_DAYS = 30
COUNT_KINDS = ("read", "accepted", "duplicates", "dead_lettered", "late_dropped")

DEAD_LETTERS = "dead_letters"
TALLIES = "tallies"
DUE = "due"
TaggedOutput = beam.pvalue.TaggedOutput


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
# State and timers are declared once per module (Beam binds them by spec).
_KNOWN = ReadModifyWriteStateSpec("known_watermark", PickleCoder())
_ARMED = ReadModifyWriteStateSpec("armed_days", PickleCoder())
_EXPIRY = TimerSpec("day_expiry", TimeDomain.WATERMARK)
KNOWN, ARMED, EXPIRY = (beam.DoFn.StateParam(_KNOWN), beam.DoFn.StateParam(_ARMED),
                        beam.DoFn.TimerParam(_EXPIRY))


class LateGate(beam.DoFn):
    """Keyed by stream.  A Python DoFn cannot read the watermark, so the gate
    learns it from its own event-time timers: one per business day it has let
    through, set at that day's expiry.  Once a day's timer has fired, its
    records (and those of every earlier day) are too late."""

    def __init__(self, lateness_days: int):
        self.lateness_days = lateness_days

    def process(self, element, ts=beam.DoFn.TimestampParam, known=KNOWN, armed=ARMED,
                expiry=EXPIRY):
        stream, _ = element
        day = day_of(ts)
        closes = day_expiry(day, self.lateness_days)
        watermark = known.read()
        if watermark is not None and watermark >= closes:
            yield _tally(stream, late_dropped=1)
            return
        days = armed.read() or set()
        if day.toordinal() not in days:
            expiry.set(closes, dynamic_timer_tag=str(day.toordinal()))
            armed.write(days | {day.toordinal()})
        yield element

    @on_timer(_EXPIRY)
    def day_closed(self, ts=beam.DoFn.TimestampParam, tag=beam.DoFn.DynamicTimerTagParam,
                   known=KNOWN, armed=ARMED):
        if known.read() is None or ts > known.read():
            known.write(ts)
        armed.write((armed.read() or set()) - {int(tag)})


class DropTooLate(beam.PTransform):
    """(stream, record) -> the records not later than the allowed lateness;
    ``tallies`` counts the others."""

    def __init__(self, lateness_days: int):
        super().__init__()
        self.lateness_days = lateness_days

    def expand(self, records):
        return records | "LateGate" >> beam.ParDo(LateGate(self.lateness_days)).with_outputs(
            TALLIES, main="records")


# --- 3. versions, duplicates, joins -------------------------------------------------
#: The pane group each stream's records are counted in; enrolment feeds no
#: streamed indicator (I07 and I09 are stocks), it is only deduplicated and counted.
FAMILY = {"settlement": "settlement", "settlement_list": "settlement",
          "contribution": "contribution", "filing": "filing", "enrolment": None}
#: The state of a settlement key lives until its I13 panes have closed.
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


_RECORDS = BagStateSpec("records", PickleCoder())
_DAYS = ReadModifyWriteStateSpec("days", PickleCoder())
_GC_AT = ReadModifyWriteStateSpec("gc_at", PickleCoder())
_LINK_GC = TimerSpec("gc", TimeDomain.WATERMARK)
RECORDS, DAYS, GC_AT, LINK_GC = (beam.DoFn.StateParam(_RECORDS), beam.DoFn.StateParam(_DAYS),
                                 beam.DoFn.StateParam(_GC_AT), beam.DoFn.TimerParam(_LINK_GC))


class LinkRecords(beam.DoFn):
    """Keyed by business key, in the global window.  State: every record of
    the key (its versions and context), the business days its versions fall
    on, and a garbage-collection timer once all those days' windows have
    closed (which also bounds the event_id dedupe in time).

    Each new record goes to every day of the key; a day the key reaches for
    the first time gets all of the key's records, so that the day's SQL sees
    the latest version, its reversals and its lists."""

    def __init__(self, quarantine_dir: str, lateness_days: int):
        self.quarantine_dir = quarantine_dir
        self.lateness_days = lateness_days

    def process(self, element, records=RECORDS, days_state=DAYS, gc_at=GC_AT, gc=LINK_GC):
        (family, _), (role, stream, rec) = element
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
        group = FAMILY[stream]
        day = business_date(event_time(stream, rec))
        days = days_state.read() or set()
        # A version puts its key on its days; a list or a reversal only follows.
        fresh = own_days(stream, rec) - days if group and own else set()
        if own and stream == "settlement_list":  # its quality rules, on its own upload day
            yield TimestampedValue((("settlement_list", day.toordinal()), (stream, rec)), day_start(day))
        if fresh:
            days_state.write(days | fresh)
        everything = [*kept, (stream, rec)]
        for target in sorted(days | fresh) if group else []:
            for item in (everything if target in fresh else [(stream, rec)]):
                yield from _route(group, target, item)
        retain = self.lateness_days + WINDOW_SLACK_DAYS + RETENTION_EXTRA_DAYS.get(group, 0)
        until = day_expiry(max(days | fresh | {day}), retain)
        if gc_at.read() is None or until > gc_at.read():
            gc_at.write(until)
            gc.set(until)

    @on_timer(_LINK_GC)
    def forget(self, records=RECORDS, days_state=DAYS, gc_at=GC_AT):
        records.clear()
        days_state.clear()
        gc_at.clear()


def own_days(stream: str, rec: dict) -> set[dt.date]:
    """The business days a version of a key puts the key on: its event day,
    and for a case also the day it was submitted (its quality rules count it
    there).  A settlement list or a reversal only follows its settlement."""
    if stream == "settlement_list":
        return set()
    days = {business_date(event_time(stream, rec))}
    if stream == "filing":
        days.add(business_date(rec["submitted_time"]))
    return days


def _route(group: str, day: dt.date, item):
    """One record for one day's panes (timestamped inside that day's window)."""
    yield TimestampedValue(((group, day.toordinal()), item), day_start(day))
    if group == "settlement":  # I13 panes: windowed by the day the 30 days run out
        yield TaggedOutput(DUE, TimestampedValue(
            (("i13", day.toordinal()), item), day_start(day + dt.timedelta(days=LIST_DAYS))))


class LinkVersions(beam.PTransform):
    """(stream, record) -> ((group, day), (stream, record)) for the day panes,
    ``due`` for the I13 panes, plus ``tallies`` and ``dead_letters``."""

    def __init__(self, settings: StreamSettings):
        super().__init__()
        self.settings = settings

    def expand(self, records):
        return (
            records
            | "KeyByBusinessKey" >> beam.FlatMap(link_keys).with_output_types(
                tuple[tuple[str, str], typing.Any])
            | "LinkRecords" >> beam.ParDo(LinkRecords(
                self.settings.quarantine_dir, self.settings.allowed_lateness_days)).with_outputs(
                DUE, TALLIES, DEAD_LETTERS, main="days")
        )


# --- 4. day panes -----------------------------------------------------------------
class DayPanes(beam.PTransform):
    """Business-day windows, accumulating panes; ``early=False`` for panes
    that only fire at the watermark and on late data (I13)."""

    def __init__(self, settings: StreamSettings, early: bool = True):
        super().__init__()
        self.settings, self.early = settings, early

    def expand(self, routed):
        every = trigger.AfterProcessingTime(self.settings.early_firing_seconds)
        return (
            routed
            | "BusinessDays" >> beam.WindowInto(
                BUSINESS_DAYS,
                trigger=trigger.AfterWatermark(early=every if self.early else None, late=every),
                accumulation_mode=trigger.AccumulationMode.ACCUMULATING,
                allowed_lateness=(self.settings.allowed_lateness_days + WINDOW_SLACK_DAYS)
                * DAY_SECONDS)
            | "GroupByDay" >> beam.GroupByKey().with_input_types(tuple[tuple[str, int], typing.Any])
        )


# --- 5. day values -----------------------------------------------------------------
class DayResult(NamedTuple):
    """One fired pane: its day's components.  Panes accumulate, so a later
    pane of a day holds more records; ``pane_size`` orders them (the local
    runner's pane timing labels are not reliable for processing-time
    firings, and the order of arrival downstream is not guaranteed)."""
    group: str
    day: dt.date
    pane_size: int
    components: list
    rules: list  # quality rule components of the day (streaming_compute.DayParts)


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
        # The run's as_of is FOREVER here: provisional is judged at the pane's time.
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


class ComputeDays(beam.DoFn):
    """A pane -> DayResult; its DAY rows on ``rows``."""

    def __init__(self, ctx: RunContext):
        self.ctx = ctx

    def process(self, element):
        (group, ordinal), items = element
        items = list(items)
        day = dt.date.fromordinal(ordinal)
        parts = day_components(group, day, items, self.ctx)
        yield DayResult(group, day, len(items), parts.components, parts.rules)
        if GROUP_CODES[group]:
            yield TaggedOutput("rows", Write("indicator_values", stream_rows(
                group, parts.components, self.ctx, day, "DAY")))
            if split := stream_breakdown(group, parts.components, self.ctx, day, "DAY"):
                yield TaggedOutput("rows", split)
        if rule_stream := GROUP_RULE_STREAM.get(group):
            # The day's failures replace what earlier panes of the day wrote.
            yield TaggedOutput("rows", Write(
                "quality_failures", [dict(f, pipeline="stream") for f in parts.failures],
                {"pipeline": ["stream"], "stream": [rule_stream], "business_date": [day]}))


class Write(NamedTuple):
    """Rows for one warehouse table; ``scope`` (column -> values) for the
    scoped tables: the rows it covers are replaced (warehouse.scope)."""
    table: str
    rows: list
    scope: dict | None = None


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


class MonthTotals(beam.PTransform):
    """DayResults -> MonthResult whenever one of the month's days changes."""

    def __init__(self, settings: StreamSettings):
        super().__init__()
        self.settings = settings

    def expand(self, day_results):
        return (
            day_results
            | "IntoGlobalWindow" >> beam.WindowInto(GlobalWindows())
            | "KeyByMonth" >> beam.Map(
                lambda r: ((r.group, r.day.replace(day=1).toordinal()), r)).with_output_types(
                tuple[tuple[str, int], typing.Any])
            | "AddUpDays" >> beam.ParDo(AddUpDays(self.settings))
        )


_LATEST = ReadModifyWriteStateSpec("latest_by_day", PickleCoder())
_MONTH_GC = TimerSpec("gc", TimeDomain.WATERMARK)
LATEST, MONTH_GC = beam.DoFn.StateParam(_LATEST), beam.DoFn.TimerParam(_MONTH_GC)


class AddUpDays(beam.DoFn):
    """Keyed by (group, month): the latest components of each day (the pane
    with most records: panes accumulate) -> the month's components."""

    def __init__(self, settings: StreamSettings):
        self.settings = settings

    def process(self, element, latest=LATEST, gc=MONTH_GC):
        (group, ordinal), result = element
        month = dt.date.fromordinal(ordinal)
        by_day = latest.read() or {}
        # An older pane overtaken on the way changes nothing.
        if result.day not in by_day or by_day[result.day][0] <= result.pane_size:
            by_day[result.day] = (result.pane_size, result.components, result.rules)
            latest.write(by_day)
            keep = self.settings.allowed_lateness_days + WINDOW_SLACK_DAYS + LIST_DAYS + 1
            gc.set(day_expiry(month_end(month), keep))
            ctx = self.settings.ctx
            components = [c for _, comps, _ in by_day.values() for c in comps]
            rules = [c for _, _, parts in by_day.values() for c in parts]
            yield MonthResult(group, month,
                              stream_rows(group, components, ctx, month, "MONTH") if GROUP_CODES[group] else [],
                              stream_rule_rows(group, rules, ctx, month),
                              stream_breakdown(group, components, ctx, month, "MONTH"))

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
    row = {"run_id": run_id, "stream": stream, "quality_failures": 0}
    row.update({k: int(counts.get(k, 0)) for k in COUNT_KINDS})
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
