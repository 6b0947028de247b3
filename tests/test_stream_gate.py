"""The lateness gate spread over (stream, shard) keys (issue 20: "spread keys
so no single worker carries a stream").  The gate used to be a stateful DoFn
keyed by stream alone, learning the watermark from its own per-day timers;
now the runner's late-data handling decides, whatever key a record lands on.

Driven by TestStream on the local streaming runner (tests/test_stream.py's
Script): the gate's own GroupByKey in the built graph is watched, so the
tests see which keys carried which records.
"""
from __future__ import annotations

import datetime as dt
import itertools
from collections import defaultdict

import apache_beam as beam
from apache_beam.options.pipeline_options import PipelineOptions
from apache_beam.pipeline import PipelineVisitor
from apache_beam.runners.direct.direct_runner import BundleBasedDirectRunner

from pipelines.stream import begin_stream, build
from tests.builders import contribution, settlement, utc
from tests.test_stream import DAY, DAY1, Outcome, Script, message, settings_for, start_of
from transforms.streaming import GATE_SHARDS, day_expiry, event_time, gate_shard, instant

LATENESS = 2
IDS = (f"g{i}" for i in itertools.count())  # distinct settlements
SEEN: dict[str, list] = defaultdict(list)


class Watch(beam.DoFn):
    def __init__(self, key: str):
        self.key = key

    def process(self, element, ts=beam.DoFn.TimestampParam):
        SEEN[self.key].append((element, ts))


class FindGate(PipelineVisitor):
    """The output PCollections of the gate's GroupByKey and of the gate."""

    def __init__(self):
        self.found: dict[str, beam.PCollection] = {}

    def enter_composite_transform(self, node):
        self.visit_transform(node)

    def visit_transform(self, node):
        if node.full_label in ("DropTooLate/GateGroup", "DropTooLate/GateOutputGlobal"):
            self.found[node.full_label.split("/")[1]] = node.outputs[None]


def run_gate(script: Script, tmp_path) -> tuple[Outcome, list, list]:
    """Runs the stream; returns the outcome, the gate's groups ((stream,
    shard), [record]) and the gate's output ((stream, record), timestamp)."""
    settings = settings_for(tmp_path / "warehouse.duckdb", tmp_path / "quarantine",
                            lateness_days=LATENESS)
    begin_stream(settings, "BundleBasedDirectRunner", {})
    key = settings.run_id
    with beam.Pipeline(runner=BundleBasedDirectRunner(),
                       options=PipelineOptions(["--streaming"])) as p:
        build(p | "Script" >> script.end(), settings)
        finder = FindGate()
        p.visit(finder)
        assert set(finder.found) == {"GateGroup", "GateOutputGlobal"}, (
            f"the built graph has no keyed lateness gate: {sorted(finder.found)}")
        _ = finder.found["GateGroup"] | "WatchGroups" >> beam.ParDo(Watch(key + "groups"))
        _ = finder.found["GateOutputGlobal"] | "WatchOutput" >> beam.ParDo(Watch(key + "out"))
    groups = [(k, [rec for rec, _ in items]) for (k, items), _ in SEEN.pop(key + "groups", [])]
    return (Outcome([], tmp_path / "warehouse.duckdb", settings.run_id), groups,
            SEEN.pop(key + "out", []))


def records_on(shards: set[int], n: int, make) -> list[dict]:
    """``n`` records from ``make()`` whose gate shards are in ``shards``,
    one shard after the other (builders number event_ids, so retry)."""
    out, cycle = [], itertools.cycle(sorted(shards))
    want = next(cycle)
    while len(out) < n:
        rec = make()
        if gate_shard(rec) == want:
            out.append(rec)
            want = next(cycle)
    return out


def test_spread_keys_so_no_single_worker_carries_a_stream(tmp_path):
    """One stream's records are grouped on several (stream, shard) keys, each
    record once, and leave the gate at its own event time."""
    sent = [settlement(f"s{i}", utc(2023, 3, 6, 2, i)) for i in range(24)]
    script = Script(start_of(DAY1)).send(*[message("settlement", r) for r in sent]).tick()
    out, groups, passed = run_gate(script, tmp_path)

    keys = {k for k, _ in groups}
    assert all(stream == "settlement" and 0 <= shard < GATE_SHARDS for stream, shard in keys)
    assert len(keys) > 1, f"one key carries the whole stream: {keys}"
    grouped = sorted(r["event_id"] for (_, shard), recs in groups for r in recs
                     if shard == gate_shard(r))
    assert grouped == sorted(r["event_id"] for r in sent)
    assert sorted((r["event_id"], ts) for (_, r), ts in passed) == sorted(
        (r["event_id"], instant(event_time("settlement", r))) for r in sent)
    assert out.counts("settlement") == {"read": 24, "accepted": 24, "duplicates": 0,
                                        "dead_lettered": 0, "late_dropped": 0}


def test_late_records_on_any_shard_are_dropped_and_counted(tmp_path):
    """After the watermark passed DAY1's end + lateness: late records of DAY1
    on shards that carried DAY1 records, on shards that saw no record of
    that day, of an older day no shard saw, and of a stream that had sent
    nothing yet (the old gate, knowing no watermark there, let it through)
    are all dropped and counted; on-time records on the same shards pass.
    The boundary (watermarks are whole milliseconds): a DAY1 record passes
    one millisecond before its expiry and is late one after it; at the
    expiry instant itself the local runner still lets it pass (Beam's Python
    trigger driver drops once the watermark is past window end + lateness;
    Dataflow, like the old gate, once it reaches it)."""
    expiry = start_of(DAY1 + (1 + LATENESS) * DAY)
    assert instant(expiry) == day_expiry(DAY1, LATENESS)
    today = DAY1 + (LATENESS + 1) * DAY  # the watermark's business day
    used = {0, 1, 2}
    fresh = set(range(3, GATE_SHARDS))  # shards no DAY1 record went through
    day1_on_time = records_on(used, 3, lambda: settlement(next(IDS), utc(2023, 3, 6, 3)))
    edge = settlement("edge", utc(2023, 3, 6, 4))
    at_expiry = settlement("at-expiry", utc(2023, 3, 6, 4, 30))
    late_seen = records_on(used, 3, lambda: settlement(next(IDS), utc(2023, 3, 6, 5)))
    late_fresh = records_on(fresh, 4, lambda: settlement(next(IDS), utc(2023, 3, 6, 6)))
    late_older = records_on(fresh | used, 3, lambda: settlement(next(IDS), utc(2023, 3, 4, 2)))
    late_contributions = [contribution(utc(2023, 3, 5, 2), utc(2023, 3, 9, 2)) for _ in range(3)]
    on_time = records_on(used | fresh, 5, lambda: settlement(next(IDS), start_of(today) + dt.timedelta(hours=2)))
    late = late_seen + late_fresh + late_older
    assert len({gate_shard(r) for r in late}) > 3

    script = (Script(start_of(DAY1))
              .send(*[message("settlement", r) for r in day1_on_time]).tick()
              .watermark(expiry - dt.timedelta(milliseconds=1))
              .send(message("settlement", edge)).tick()
              .watermark(expiry)
              .send(message("settlement", at_expiry)).tick()
              .watermark(expiry + dt.timedelta(milliseconds=1))
              .send(*[message("settlement", r) for r in late + on_time],
                    *[message("contribution", r) for r in late_contributions]).tick())
    out, _, passed = run_gate(script, tmp_path)

    assert sorted(r["event_id"] for _, r in (e for e, _ in passed)) == sorted(
        r["event_id"] for r in day1_on_time + [edge, at_expiry] + on_time)
    assert out.counts("settlement") == {"read": 20, "accepted": 10, "duplicates": 0,
                                        "dead_lettered": 0, "late_dropped": 10}
    assert out.counts("contribution") == {"read": 3, "accepted": 0, "duplicates": 0,
                                          "dead_lettered": 0, "late_dropped": 3}
    for stream in ("settlement", "contribution"):
        counts = out.counts(stream)
        assert counts["read"] == sum(v for k, v in counts.items() if k != "read")
    assert out.value("I08", "640104", "DAY", DAY1) == (5, 5)
    assert out.value("I08", "640104", "DAY", today) == (5, 5)
