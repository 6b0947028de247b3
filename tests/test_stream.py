"""The streaming pipeline on the local streaming runner, driven by TestStream
(issue 11, acceptance): early, on-time and late panes; a duplicate in
another pane; a reversal after its day fired; a settlement list before its
settlement; a record later than the allowed lateness; bad bytes.

Each script starts processing time at the wall clock (the local runner's
test clock starts at 0, and its trigger code compares processing time with
window ends) and lets the pipeline settle after every step: the runner
reads the next TestStream event while earlier elements are still on their
way, so a processing-time advance could otherwise overtake them.
"""
from __future__ import annotations

import datetime as dt
import hashlib
import io
import itertools
import typing
import uuid
from collections import defaultdict
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

import apache_beam as beam
import fastavro
import pytest
from apache_beam.coders import PickleCoder
from apache_beam.options.pipeline_options import PipelineOptions
from apache_beam.runners.direct.direct_runner import BundleBasedDirectRunner
from apache_beam.testing.test_stream import TestStream as BeamTestStream

import reference
import schemas
from pipelines.config import load_config
from pipelines.stream import begin_stream, build
from tests.builders import D, reversal, settlement, settlement_list, utc
from transforms.context import RunContext
from transforms.decode import decode_message
from transforms.streaming import (
    Change,
    ComputeChanges,
    DayRows,
    Message,
    StreamSettings,
    Totals,
    Write,
)
from transforms.streaming import instant as instant_of
from transforms.streaming_compute import FOREVER
from transforms.streaming_sink import WriteLatest
from warehouse.duckdb_store import connect

DAY = dt.timedelta(days=1)
WALL_CLOCK = 1.7e9  # seconds: where the scripts start processing time
_sources = itertools.count(1)


def message(stream: str, rec: dict, fingerprint: str | None = None) -> Message:
    """One Pub/Sub message as the contract says: a schemaless Avro record
    with the schema fingerprint in the ``schema`` attribute."""
    buf = io.BytesIO()
    fastavro.schemaless_writer(buf, schemas.load(stream).parsed, rec)
    return Message(stream, buf.getvalue(), {"schema": fingerprint or schemas.load(stream).fingerprint},
                   f"projects/p/subscriptions/{stream}#message={next(_sources)}")


class Script:
    """A TestStream of deliveries, in the order a test tells them."""

    SETTLE_STEPS = 40

    def __init__(self, watermark: dt.datetime):
        self.events = BeamTestStream(coder=PickleCoder()).advance_processing_time(WALL_CLOCK)
        self.watermark(watermark)

    def _settle(self) -> Script:
        for _ in range(self.SETTLE_STEPS):
            self.events.advance_processing_time(0.001)
        return self

    def send(self, *deliveries) -> Script:
        self.events.add_elements(list(deliveries))
        return self._settle()

    def watermark(self, when: dt.datetime) -> Script:
        self.events.advance_watermark_to(instant_of(when))
        return self._settle()

    def tick(self, seconds: float = 31) -> Script:
        """Processing time passes: early and late panes fire."""
        self.events.advance_processing_time(seconds)
        return self._settle()

    def end(self) -> BeamTestStream:
        return self.events.advance_watermark_to_infinity()


# DoFns run in this process on the local runner: collect what fired here.
COLLECTED: dict[str, list] = defaultdict(list)


class Collect(beam.DoFn):
    def __init__(self, key: str):
        self.key = key

    def process(self, element):
        COLLECTED[self.key].append(element)


@dataclass
class Outcome:
    panes: list  # DayResult per fired pane, in firing order
    warehouse: Path
    run_id: str

    def sql(self, query: str, *params):
        con = connect(str(self.warehouse), read_only=True)
        try:
            return con.execute(query, list(params)).fetchall()
        finally:
            con.close()

    def value(self, code: str, region: str, period_type: str, start: dt.date):
        rows = self.sql("""SELECT numerator, denominator FROM indicator_values
                           WHERE indicator_code = ? AND region_code = ? AND period_type = ?
                             AND period_start = ? AND pipeline = 'stream'""",
                        code, region, period_type, start)
        assert len(rows) == 1, rows
        return tuple(int(x) if x == int(x) else x for x in rows[0])

    def counts(self, stream: str) -> dict:
        cols = ["read", "accepted", "duplicates", "dead_lettered", "late_dropped"]
        row = self.sql(f"SELECT {', '.join(cols)} FROM pipeline_run_streams WHERE run_id = ? "
                       "AND stream = ?", self.run_id, stream)[0]
        return dict(zip(cols, row))

    def sequence(self, group: str, day: dt.date, code: str, attr: str = "640104") -> list:
        """The (numerator, denominator) of ``code`` in each fired pane of the
        day, consecutive repeats folded (an on-time pane may repeat the last
        early one)."""
        seq = []
        for pane in self.panes:
            if pane.group == group and pane.day == day:
                value = parts(pane.components, code, attr)
                if not seq or seq[-1] != value:
                    seq.append(value)
        return seq


def parts(components, code: str, attr: str) -> tuple:
    num = sum((c.parts["num"] for c in components if c.code == code and c.attr == attr), Decimal(0))
    den = sum((c.parts["den"] for c in components if c.code == code and c.attr == attr), Decimal(0))
    return int(num) if num == int(num) else num, int(den) if den == int(den) else den


def settings_for(warehouse: Path, quarantine: Path, lateness_days: int = 7,
                 early_seconds: float = 30, retention_days: int | None = None) -> StreamSettings:
    ctx = RunContext(ref=reference.load(), config=load_config(), as_of=FOREVER, months=[])
    if retention_days is None:
        retention_days = ctx.config.parameters["stream_retention_days"]
    return StreamSettings(ctx=ctx, warehouse=f"duckdb:///{warehouse}", run_id=str(uuid.uuid4()),
                          quarantine_dir=str(quarantine), early_firing_seconds=early_seconds,
                          allowed_lateness_days=lateness_days, retention_days=retention_days)


def run_stream(events: BeamTestStream, tmp_path: Path, **kwargs) -> Outcome:
    settings = settings_for(tmp_path / "warehouse.duckdb", tmp_path / "quarantine", **kwargs)
    begin_stream(settings, "BundleBasedDirectRunner", {})
    key = settings.run_id
    with beam.Pipeline(runner=BundleBasedDirectRunner(),
                       options=PipelineOptions(["--streaming"])) as p:
        out = build(p | "Script" >> events, settings)
        _ = out.day_results | "CollectPanes" >> beam.ParDo(Collect(key))
    return Outcome(COLLECTED.pop(key, []), tmp_path / "warehouse.duckdb", settings.run_id)


def start_of(day: dt.date) -> dt.datetime:
    """00:00 Asia/Shanghai of ``day`` as a UTC instant."""
    return dt.datetime.combine(day, dt.time(), tzinfo=dt.UTC) - dt.timedelta(hours=8)


DAY1 = dt.date(2023, 3, 6)  # a Monday; 02:00 UTC is 10:00 in Shanghai
MARCH = dt.date(2023, 3, 1)


def test_early_on_time_and_late_panes_correct_the_day(tmp_path):
    s1 = settlement("a1", utc(2023, 3, 6, 2))
    s2 = settlement("a2", utc(2023, 3, 6, 3), psn_cash_pay=D(261))  # fails T04: not qualified
    s2_fixed = dict(s2, event_id="a2-v2", event_time=utc(2023, 3, 7, 9), psn_cash_pay=D(260))
    script = (Script(start_of(DAY1))
              .send(message("settlement", s1)).tick()                # early pane
              .send(message("settlement", s2)).tick()                # early pane
              .watermark(start_of(DAY1 + DAY) + dt.timedelta(hours=1))  # on-time pane
              .send(message("settlement", s2_fixed)).tick())         # late pane
    out = run_stream(script.end(), tmp_path)

    assert out.sequence("settlement", DAY1, "I08") == [(1, 1), (1, 2), (2, 2)]
    assert out.value("I08", "640104", "DAY", DAY1) == (2, 2)
    assert out.value("I08", "640104", "MONTH", MARCH) == (2, 2)
    assert out.value("I08", "640000", "MONTH", MARCH) == (2, 2)  # rolled up to the province
    assert out.value("R01", "640104", "DAY", DAY1) == (1280, 1600)
    assert out.counts("settlement") == {"read": 3, "accepted": 3, "duplicates": 0,
                                        "dead_lettered": 0, "late_dropped": 0}
    run = out.sql("SELECT pipeline, status FROM pipeline_runs WHERE run_id = ?", out.run_id)
    assert run == [("stream", "running")]


def test_duplicate_delivered_in_another_pane_counts_once(tmp_path):
    s1 = settlement("b1", utc(2023, 3, 6, 2), smart_audit=False)
    script = (Script(start_of(DAY1))
              .send(message("settlement", s1)).tick()
              .watermark(start_of(DAY1 + DAY) + dt.timedelta(hours=1))
              .send(message("settlement", s1), message("settlement", s1)).tick())
    out = run_stream(script.end(), tmp_path)

    assert out.sequence("settlement", DAY1, "I08") == [(1, 1)]
    assert out.sequence("settlement", DAY1, "I14") == [(0, 1)]
    assert out.value("I14", "640104", "DAY", DAY1) == (0, 1)
    assert out.value("I08", "640104", "MONTH", MARCH) == (1, 1)
    assert out.counts("settlement") == {"read": 3, "accepted": 1, "duplicates": 2,
                                        "dead_lettered": 0, "late_dropped": 0}


def test_reversal_after_its_day_fired_takes_the_settlement_out(tmp_path):
    day3 = DAY1 + 2 * DAY
    s5 = settlement("c5", utc(2023, 3, 6, 2))
    r5 = reversal(s5, "c5-r", utc(2023, 3, 8, 2))
    script = (Script(start_of(DAY1))
              .send(message("settlement", s5)).tick()
              .watermark(start_of(DAY1 + DAY) + dt.timedelta(hours=1))  # DAY1 fired on time
              .send(message("settlement", r5)).tick())
    out = run_stream(script.end(), tmp_path)

    assert out.sequence("settlement", DAY1, "I14") == [(1, 1), (0, 0)]
    assert out.sequence("settlement", DAY1, "I08") == [(1, 1)]  # I08 still counts both records
    assert out.value("I14", "640104", "DAY", DAY1) == (0, 0)
    assert out.value("R01", "640104", "DAY", DAY1) == (0, 0)
    assert out.value("I08", "640104", "DAY", day3) == (1, 1)
    assert out.value("I14", "640104", "MONTH", MARCH) == (0, 0)
    assert out.value("I08", "640104", "MONTH", MARCH) == (2, 2)
    value = out.sql("SELECT value FROM indicator_values WHERE indicator_code = 'I14' AND "
                    "region_code = '640104' AND period_type = 'DAY' AND period_start = ?", DAY1)
    assert value == [(None,)]


def test_list_uploaded_before_its_settlement_arrives(tmp_path):
    s7 = settlement("d7", utc(2023, 3, 6, 2))
    s8 = settlement("d8", utc(2023, 3, 6, 3))  # never gets a list
    s9 = settlement("d9", utc(2023, 3, 6, 4))  # its list comes after 30 days
    l7 = settlement_list("d7", utc(2023, 3, 8, 1))
    l9 = settlement_list("d9", utc(2023, 4, 20, 1))
    script = (Script(start_of(DAY1))
              .send(message("settlement_list", l7)).tick()  # the list first
              .send(message("settlement", s7), message("settlement", s8),
                    message("settlement", s9)).tick()
              .watermark(start_of(DAY1 + 20 * DAY))
              .send(message("settlement_list", l9)).tick())
    out = run_stream(script.end(), tmp_path)

    # I13 is published only once the day's 30 days have passed (the end here).
    i13 = [p for p in out.panes if p.group == "i13"]
    assert i13 and all(p.day == DAY1 for p in i13)
    assert out.sequence("i13", DAY1, "I13") == [(1, 3)]
    assert out.value("I13", "640104", "DAY", DAY1) == (1, 3)
    assert out.value("I13", "640104", "MONTH", MARCH) == (1, 3)
    assert out.counts("settlement_list") == {"read": 2, "accepted": 2, "duplicates": 0,
                                             "dead_lettered": 0, "late_dropped": 0}


def test_too_late_dropped_and_counted_bad_bytes_and_conflicts_dead_lettered(tmp_path):
    day9 = DAY1 + 8 * DAY
    s1 = settlement("e1", utc(2023, 3, 6, 2))
    too_late = settlement("e2", utc(2023, 3, 6, 5))  # arrives 8 days after its day ended
    later = settlement("e3", utc(2023, 3, 14, 2))
    garbage = Message("settlement", b"\x02not avro at all", {"schema": schemas.load("settlement").fingerprint},
                      "projects/p/subscriptions/settlement#message=garbage")
    other_schema = message("settlement", settlement("e4", utc(2023, 3, 14, 3)), fingerprint="deadbeef")
    conflicting = message("settlement", dict(later, hifp_pay=D(1)))  # same event_id, other content
    script = (Script(start_of(DAY1))
              .send(message("settlement", s1)).tick()
              .watermark(start_of(DAY1 + 8 * DAY) + dt.timedelta(hours=1))  # DAY1 closed
              .send(message("settlement", too_late), garbage, other_schema,
                    message("settlement", later)).tick()
              .send(conflicting).tick())
    out = run_stream(script.end(), tmp_path)

    assert out.value("I08", "640104", "DAY", DAY1) == (1, 1)
    assert out.value("I08", "640104", "DAY", day9) == (1, 1)  # the stream went on
    assert out.value("R01", "640104", "DAY", day9) == (640, 800)  # the copy kept is the first
    counts = out.counts("settlement")
    assert counts == {"read": 6, "accepted": 2, "duplicates": 0, "dead_lettered": 3,
                      "late_dropped": 1}
    assert counts["read"] == sum(v for k, v in counts.items() if k != "read")
    letters = out.sql("SELECT source, error, size, sha256, quarantine_path FROM dead_letters "
                      "ORDER BY source")
    assert [s for s, *_ in letters] == sorted([other_schema.source, garbage.source,
                                               conflicting.source])
    errors = {s: e for s, e, *_ in letters}
    assert "fingerprint" in errors[other_schema.source]
    assert "conflicting duplicate" in errors[conflicting.source]
    for _, _, size, sha, path in letters:
        raw = Path(path).read_bytes()
        assert len(raw) == size and hashlib.sha256(raw).hexdigest() == sha


@pytest.mark.parametrize("lateness", [2])
def test_lateness_is_a_parameter(tmp_path, lateness):
    s1 = settlement("f1", utc(2023, 3, 6, 2))
    s2 = settlement("f2", utc(2023, 3, 6, 3))
    script = (Script(start_of(DAY1))
              .send(message("settlement", s1)).tick()
              .watermark(start_of(DAY1 + 3 * DAY) + dt.timedelta(hours=1))
              .send(message("settlement", s2)).tick())
    out = run_stream(script.end(), tmp_path, lateness_days=lateness)
    assert out.value("I08", "640104", "DAY", DAY1) == (1, 1)
    assert out.counts("settlement")["late_dropped"] == 1


def test_reversal_after_its_day_window_closed_still_changes_the_day(tmp_path):
    """Issue 20: "Late corrections are dropped on Dataflow ... A reversal or
    settlement list that arrives after its day's window closed is not
    applied.  Within the allowed lateness every correction must update the
    rows it changes, on every runner."  The reversal is within the allowed
    lateness of its own day, but the watermark is past the end of the
    settlement's day plus the lateness (and the old windows' slack day):
    the settlement's day still loses it."""
    lateness = 2
    s5 = settlement("g5", utc(2023, 3, 6, 2))
    r5 = reversal(s5, "g5-r", utc(2023, 3, 10, 2))  # 4 days later
    closed = start_of(DAY1 + (1 + lateness + 1) * DAY) + dt.timedelta(hours=6)
    script = (Script(start_of(DAY1))
              .send(message("settlement", s5)).tick()
              .watermark(closed)  # DAY1 + lateness + slack has passed
              .send(message("settlement", r5)).tick())
    out = run_stream(script.end(), tmp_path, lateness_days=lateness)

    assert out.counts("settlement")["late_dropped"] == 0
    assert out.sequence("settlement", DAY1, "I14") == [(1, 1), (0, 0)]
    assert out.value("I14", "640104", "DAY", DAY1) == (0, 0)
    assert out.value("R01", "640104", "DAY", DAY1) == (0, 0)
    assert out.value("I14", "640104", "MONTH", MARCH) == (0, 0)
    assert out.value("I08", "640104", "MONTH", MARCH) == (2, 2)


def decoded(stream: str, rec: dict) -> tuple[str, dict]:
    """(stream, record) as LinkVersions keeps it: through the contract's codec."""
    out = decode_message(message(stream, rec).data, stream)
    return stream, dict(out, _source="test", _index=None)


def _deltas(key: str, old: list, new: list, ctx: RunContext) -> list:
    """What ComputeChanges emits for one settlement change on its main
    output: day entries, each stamped in its day (the changes' SQL, real)."""
    return [v for v in ComputeChanges(ctx).process(
        (("settlement", 0), [Change(key, old, new)]))
        if not isinstance(v, beam.pvalue.TaggedOutput)]


def test_day_totals_and_write_counter_are_garbage_collected_after_the_retention(tmp_path):
    """Day/month totals and the write counter are never garbage-collected
    while the job runs: every day's and month's accumulator (and WriteLatest's
    counter per period) stayed in the global window forever.  Now a day's
    totals live ``retention_days`` after the day: a correction within them
    still changes the DAY row, one after them is dropped by the runner (left
    to the nightly).  Driven at the totals (DayTotals -> DayRows ->
    WriteLatest, as build wires them): on the local runner the watermark
    after BatchChanges stands at the first change until the input ends
    (Beam's Python trigger driver keeps the global window's hold while its
    on-time pane is due), so an end-to-end script cannot move it."""
    lateness, retention = 2, 34  # the least retention for a lateness of 2
    settings = settings_for(tmp_path / "warehouse.duckdb", tmp_path / "quarantine",
                            lateness_days=lateness, retention_days=retention)
    begin_stream(settings, "BundleBasedDirectRunner", {})
    ctx = settings.ctx
    s5, s6 = settlement("h5", utc(2023, 3, 6, 2)), settlement("h6", utc(2023, 3, 6, 3))
    r6 = reversal(s6, "h6-r", utc(2023, 4, 5, 2))   # DAY1 + 30: DAY1 is kept until DAY1 + 35
    r5 = reversal(s5, "h5-r", utc(2023, 4, 15, 2))  # DAY1 + 40: DAY1 has been collected
    s5, s6, r5, r6 = (decoded("settlement", r) for r in (s5, s6, r5, r6))
    script = (Script(start_of(DAY1))
              .send(*_deltas("h5", [], [s5], ctx), *_deltas("h6", [], [s6], ctx)).tick()
              .watermark(start_of(DAY1 + 30 * DAY) + dt.timedelta(hours=1))
              .send(*_deltas("h6", [s6], [s6, r6], ctx)).tick()
              .watermark(start_of(DAY1 + 40 * DAY) + dt.timedelta(hours=1))
              .send(*_deltas("h5", [s5], [s5, r5], ctx)).tick())
    key = settings.run_id
    with beam.Pipeline(runner=BundleBasedDirectRunner(),
                       options=PipelineOptions(["--streaming"])) as p:
        days = (p | "Script" >> script.end()
                | "DayTotals" >> Totals(settings)
                | "DayRows" >> beam.ParDo(DayRows(ctx)).with_outputs("rows", main="results"))
        _ = days.results | "CollectPanes" >> beam.ParDo(Collect(key))
        _ = (days.rows | "WriteLatest" >> beam.ParDo(WriteLatest(
            settings.warehouse, settings.run_id, retention)).with_input_types(
            tuple[tuple[str, str, int], typing.Any]))
    out = Outcome(COLLECTED.pop(key, []), tmp_path / "warehouse.duckdb", settings.run_id)

    assert out.sequence("settlement", DAY1, "I14") == [(2, 2), (1, 1)]
    assert out.value("I14", "640104", "DAY", DAY1) == (1, 1)  # r5 came after DAY1's retention


def test_write_counter_is_forgotten_after_the_retention(tmp_path):
    """WriteLatest drops a firing older than the one written while the period
    is kept; once the watermark is past the period's end + retention + a
    slack day, its counter is gone (a firing then would be written again)."""
    settings = settings_for(tmp_path / "warehouse.duckdb", tmp_path / "quarantine",
                            lateness_days=2, retention_days=34)
    begin_stream(settings, "BundleBasedDirectRunner", {})
    key = ("settlement", "DAY", DAY1.toordinal())

    def firing(n: int, tag: str):
        row = {"run_id": settings.run_id, "stream": tag, "read": n, "accepted": 0, "duplicates": 0,
               "dead_lettered": 0, "late_dropped": 0, "quality_failures": 0}
        return key, (n, [Write("pipeline_run_streams", [row])])

    script = (Script(start_of(DAY1))
              .send(firing(5, "settlement")).send(firing(3, "filing"))  # older: dropped
              .watermark(start_of(DAY1 + (1 + 34 + 1) * DAY) + dt.timedelta(hours=1))
              .send(firing(2, "contribution")))  # the counter was forgotten: written
    with beam.Pipeline(runner=BundleBasedDirectRunner(),
                       options=PipelineOptions(["--streaming"])) as p:
        _ = (p | "Script" >> script.end()
             | "WriteLatest" >> beam.ParDo(WriteLatest(settings.warehouse, settings.run_id, 34))
             .with_input_types(tuple[tuple[str, str, int], typing.Any]))
    out = Outcome([], tmp_path / "warehouse.duckdb", settings.run_id)
    assert out.counts("settlement")["read"] == 5
    assert out.counts("filing")["read"] == 0
    assert out.counts("contribution")["read"] == 2


def test_retention_below_the_minimum_is_a_usage_error(tmp_path, capsys):
    """stream_retention_days must outlive the lateness, the slack day and
    I13's 30 days: 62 (the default) with --allowed_lateness_days 31 is not
    (a --drain, a bounded backfill, raises it to the least instead)."""
    from pipelines.cli import main as yibao

    (tmp_path / "landing").mkdir()
    code = yibao(["stream", "--landing", str(tmp_path / "landing"), "--max_runtime_seconds", "1",
                  "--allow_demo_key",
                  "--allowed_lateness_days", "31",
                  "--warehouse", f"duckdb:///{tmp_path / 'warehouse.duckdb'}"])
    err = capsys.readouterr().err
    assert code == 2
    assert err.strip().splitlines() == [
        "yibao stream: parameters.stream_retention_days 62 is below allowed_lateness_days 31 + 32 "
        "= 63 (a day's totals must outlive its corrections and I13's 30 days) — raise "
        "stream_retention_days or lower --allowed_lateness_days"]
    assert not (tmp_path / "warehouse.duckdb").exists()


@pytest.mark.parametrize("name", ["stream_retention_days", "allowed_lateness_days",
                                  "early_firing_seconds"])
def test_a_malformed_streaming_parameter_is_a_usage_error(tmp_path, capsys, name):
    """A config value that is not a whole number ended in "yibao stream:
    failed: ValueError: invalid literal for int() with base 10: 'abc'"
    (exit 1): an operator's mistake, so one line naming it and exit 2."""
    from pipelines.cli import main as yibao

    (tmp_path / "landing").mkdir()
    cfg = tmp_path / "config.yaml"
    cfg.write_text(f"parameters:\n  {name}: abc\n", encoding="utf-8")
    code = yibao(["stream", "--landing", str(tmp_path / "landing"), "--drain", "--allow_demo_key",
                  "--config", str(cfg), "--warehouse", f"duckdb:///{tmp_path / 'warehouse.duckdb'}"])
    err = capsys.readouterr().err
    assert code == 2
    assert err.strip().splitlines() == [
        f"yibao stream: parameters.{name} 'abc' is not a whole number — fix it in {cfg}"]
    assert not (tmp_path / "warehouse.duckdb").exists()
