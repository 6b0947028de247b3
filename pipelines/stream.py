"""The streaming indicator pipeline (unbounded).

What arrives: the five streams of the data contract as they happen — on
Dataflow one Pub/Sub subscription per stream, each message one Avro record
(schemaless, contract schema) whose ``schema`` attribute is the contract's
fingerprint; locally a landing directory (``<landing>/<stream>/*.avro``)
watched for new files.  Delivery is at least once, out of order and late.

What happens (transforms/streaming.py tells each step's story):

1. ``Decode``: bytes -> records at their event time (settlement setl_time,
   contribution clct_time, settlement_list upload_time, filing
   completed_time or submitted_time while open, enrolment event_time);
   undecodable or mismatched bytes -> dead_letters, the stream goes on.
2. ``DropTooLate``: records later than ``--allowed_lateness_days`` after
   their business day are dropped by the runner (business-day windows with
   that lateness, keyed by stream and shard of event_id) and counted
   late_dropped (records into the gate minus records out of it).
3. ``LinkVersions``: state per business key drops duplicate event_ids and
   turns each new record into a change of its key (records before, after).
4. ``BatchChanges`` / ``ComputeChanges``: batches of changes; each changed
   key's old contribution is retracted and its new one added, computed with
   the nightly job's SQL (latest versions, reversals, rule verdicts,
   components) over the changed keys' records only.
5. ``Totals``: CombinePerKey sums per (group, day) and (group, month), in
   business-day and business-month windows kept ``stream_retention_days``
   after the period ends (then garbage-collected; an older period's
   correction is left to the nightly), early every
   ``--early_firing_seconds``, on time and at the end of a drain: DAY and
   MONTH rows of I08 I10 I14 I17 I22 I25 I26 R01–R05
   S02, pipeline = 'stream', upserted on every firing (the warehouse key
   includes pipeline: nightly rows are never touched).  I13 is published
   per day once the day's 30 days for a settlement list have passed.
   Quality: the changed keys' records are checked with the nightly's rules
   (settlement, settlement_list by upload day, contribution, filing by
   submitted day; enrolment rules check a month-end stock: nightly only):
   their quality_failures replaced per key, quality_rule_results MONTH
   rows, both pipeline = 'stream'.
6. ``CountRecords``: pipeline_run_streams of the job's one pipeline_runs row
   (status running) as panes fire: read = accepted + duplicates +
   dead_lettered + late_dropped.

Run it::

    yibao stream --landing var/landing --warehouse duckdb:///var/warehouse.duckdb \
        --max_runtime_seconds 600
    yibao stream --landing var/backfill --drain --warehouse duckdb:///var/warehouse.duckdb
    python -m pipelines.stream --warehouse bigquery://p/d --runner DataflowRunner \
        --subscriptions settlement=projects/p/subscriptions/settlement,filing=projects/p/subscriptions/filing \
        --timestamp_attribute event_time \
        --project p --region asia-east2 --temp_location gs://bucket/tmp --setup_file ./setup.py
"""
from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import logging
import os
import threading
import typing
import uuid
from typing import NamedTuple

import apache_beam as beam
from apache_beam.options.pipeline_options import PipelineOptions, SetupOptions, StandardOptions

import reference
import schemas
from pipelines.config import load_config
from pipelines.errors import UsageError
from pipelines.options import DEFAULT_WAREHOUSE
from transforms import privacy
from transforms.context import RunContext
from transforms.indicators.catalog import INDICATORS
from transforms.streaming import (
    DEAD_LETTERS,
    DUE,
    TALLIES,
    BatchChanges,
    ComputeChanges,
    CountRecords,
    DayRows,
    DecodeDeliveries,
    DropTooLate,
    LinkVersions,
    MonthOfDueDays,
    MonthRows,
    StreamSettings,
    Totals,
    Write,
    count_row,
    min_retention_days,
    to_global,
)
from transforms.streaming_compute import FOREVER
from transforms.streaming_sink import WriteLatest, WriteToWarehouse, upsert, with_warehouse
from transforms.streaming_sources import LandingWatch, ReadSubscriptions, parse_subscriptions

log = logging.getLogger(__name__)


def _add_shared(parser, *args, **kwargs):
    """--warehouse, --reference, --config, --quarantine mean what they mean in
    NightlyOptions; Beam parses every options class with one parser, so a
    flag both declare is added once (pipelines.options is imported above,
    so NightlyOptions always comes first)."""
    try:
        parser.add_argument(*args, **kwargs)
    except argparse.ArgumentError:
        pass


class StreamOptions(PipelineOptions):
    @classmethod
    def _add_argparse_args(cls, parser):
        _add_shared(parser, "--warehouse", default=DEFAULT_WAREHOUSE,
                    help="duckdb:///path/file.duckdb or bigquery://PROJECT/DATASET")
        _add_shared(parser, "--reference", default=None,
                    help="Reference CSV directory; default <landing>/reference if it exists, "
                         "else the shipped Ningxia set")
        _add_shared(parser, "--config", default=None,
                    help="YAML overriding the shipped targets and parameters")
        _add_shared(parser, "--quarantine", default=None,
                    help="Where dead letters' raw bytes go; default <warehouse dir>/quarantine")
        parser.add_argument("--landing", default=None,
                            help="Local landing directory watched for <stream>/*.avro files")
        parser.add_argument("--subscriptions", default=None,
                            help="stream=projects/P/subscriptions/S,… (one Pub/Sub subscription "
                                 "per stream; messages are single Avro records)")
        parser.add_argument("--poll_interval", "--poll-interval", dest="poll_interval", type=float, default=5.0,
                            help="Seconds between two listings of the landing directory")
        parser.add_argument("--early_firing_seconds", "--early-firing-seconds", dest="early_firing_seconds", type=int, default=None,
                            help="Early panes every N seconds of processing time; default "
                                 "parameters.early_firing_seconds (30)")
        parser.add_argument("--allowed_lateness_days", "--allowed-lateness-days", dest="allowed_lateness_days", type=int, default=None,
                            help="Records later than this after their business day are dropped "
                                 "and counted; default parameters.allowed_lateness_days (7)")
        parser.add_argument("--batch_shards", "--batch-shards", dest="batch_shards", type=int, default=1,
                            help="Batches of changes computed side by side per stream family "
                                 "(about the number of workers; 1 on the local runner)")
        parser.add_argument("--max_runtime_seconds", "--max-runtime-seconds", dest="max_runtime_seconds", type=float, default=None,
                            help="Stop after N seconds (bounded local runs, demos, benchmarks)")
        parser.add_argument("--drain", action="store_true",
                            help="Bounded mode (with --landing): read every file present (waiting "
                                 "for files still being written), advance the watermark to the "
                                 "end, fire every final pane, write, exit 0")
        parser.add_argument("--timestamp_attribute", "--timestamp-attribute", dest="timestamp_attribute",
                            default=None,
                            help="Pub/Sub attribute holding each message's event time (RFC 3339 "
                                 "or milliseconds since the epoch; README 'Streaming'); the "
                                 "watermark follows it instead of the publish time")
        _add_shared(parser, "--allow_demo_key", "--allow-demo-key", dest="allow_demo_key",
                    action="store_true",
                    help="Local trials only: pseudonymise with the public demo key when "
                         "YIBAO_PSEUDONYM_KEY is not set")


class StreamOutputs(NamedTuple):
    """What ``build`` leaves for callers (tests) to look at."""
    day_results: beam.PCollection  # DayResult per fired pane
    month_rows: beam.PCollection  # MonthResult per update
    counts: beam.PCollection  # pipeline_run_streams rows as they fire
    dead_letters: beam.PCollection  # dead_letters rows


def build(deliveries: beam.PCollection, settings: StreamSettings) -> StreamOutputs:
    """The graph from deliveries (Message / LandedFile) to warehouse upserts."""
    decoded = deliveries | "Decode" >> beam.ParDo(
        DecodeDeliveries(settings.quarantine_dir, settings.allowed_lateness_days)).with_output_types(
        tuple[str, typing.Any]).with_outputs(DEAD_LETTERS, TALLIES, main="records")
    timely = decoded.records | "DropTooLate" >> DropTooLate(settings.allowed_lateness_days)
    linked = timely["records"] | "LinkVersions" >> LinkVersions(settings)
    changes = (linked.changes
               | "BatchChanges" >> BatchChanges()
               | "ComputeChanges" >> beam.ParDo(ComputeChanges(settings.ctx)).with_outputs(
                   DUE, "months", "rows", TALLIES, main="days"))

    days = (changes.days
            | "DayTotals" >> Totals(settings)
            | "DayRows" >> beam.ParDo(DayRows(settings.ctx)).with_outputs("rows", main="results"))
    due_days = (changes[DUE]
                | "DueDayTotals" >> Totals(settings, period="due")
                | "DueDayRows" >> beam.ParDo(DayRows(settings.ctx)).with_outputs("rows", main="results"))
    months = (changes.months
              | "MonthTotals" >> Totals(settings, period="month")
              | "MonthRows" >> beam.ParDo(MonthRows(settings.ctx)).with_outputs("rows", main="results"))
    due_months = due_days.results | "DueMonths" >> MonthOfDueDays(settings)
    day_results = (to_global("DayResultsGlobal", days.results),
                   to_global("DueResultsGlobal", due_days.results)) | "AllDayResults" >> beam.Flatten()
    month_rows = (to_global("MonthResultsGlobal", months.results),
                  to_global("DueMonthResultsGlobal", due_months.results)) | "AllMonthRows" >> beam.Flatten()
    # DAY and MONTH rows: each period's firings written in order (WriteLatest).
    _ = ((to_global("DayRowsGlobal", days.rows), to_global("DueRowsGlobal", due_days.rows),
          to_global("MonthRowsGlobal", months.rows), to_global("DueMonthRowsGlobal", due_months.rows))
         | "AllPeriodRows" >> beam.Flatten()
         | "WriteLatest" >> beam.ParDo(WriteLatest(
             settings.warehouse, settings.run_id, settings.retention_days)).with_input_types(
             tuple[tuple[str, str, int], typing.Any]))

    counts = ((decoded[TALLIES], timely[TALLIES], linked[TALLIES],
               to_global("FailureCountsGlobal", changes[TALLIES]))
              | "AllTallies" >> beam.Flatten()
              | "CountRecords" >> CountRecords(settings))
    dead_letters = (decoded[DEAD_LETTERS], linked[DEAD_LETTERS]) | "AllDeadLetters" >> beam.Flatten()

    writes = (
        to_global("FailureRowsGlobal", changes.rows),
        to_global("CountsGlobal", counts) | "CountRows" >> beam.Map(
            lambda row: Write("pipeline_run_streams", [row])),
        dead_letters | "DeadLetterRows" >> beam.Map(lambda d: Write("dead_letters", [d])),
    )
    _ = (writes
         | "AllWrites" >> beam.Flatten()
         | "Upsert" >> beam.ParDo(WriteToWarehouse(settings.warehouse, settings.run_id)))
    return StreamOutputs(day_results, month_rows, counts, dead_letters)


# --- running it -----------------------------------------------------------------
def resolve_stream_runner(options: PipelineOptions):
    """Locally the streaming DirectRunner (BundleBasedDirectRunner): the one
    local runner with processing-time triggers and TestStream; named
    explicitly so that Beam never switches to the Prism runner, a binary it
    would download."""
    name = options.view_as(StandardOptions).runner
    if name in (None, "DirectRunner", "BundleBasedDirectRunner"):
        from apache_beam.runners.direct.direct_runner import BundleBasedDirectRunner

        return BundleBasedDirectRunner()
    return name


def make_settings(opts: StreamOptions, run_id: str) -> StreamSettings:
    from pipelines.publish import warehouse_dir

    ref_dir = opts.reference
    if ref_dir is None and opts.landing and os.path.isdir(os.path.join(opts.landing, "reference")):
        ref_dir = os.path.join(opts.landing, "reference")
    config = load_config(opts.config)
    params = config.parameters
    ctx = RunContext(ref=reference.load(ref_dir), config=config, as_of=FOREVER, months=[])
    def whole(name: str, given: int | None = None) -> int:
        """A command-line value, else the config's parameter, as a whole number."""
        if given is not None:
            return given
        try:
            return int(params[name])
        except (TypeError, ValueError):
            raise UsageError(f"parameters.{name} {params[name]!r} is not a whole number — fix it "
                             f"in {opts.config or 'pipelines/defaults.yaml'}") from None

    early = whole("early_firing_seconds", opts.early_firing_seconds)
    lateness = whole("allowed_lateness_days", opts.allowed_lateness_days)
    retention = whole("stream_retention_days")
    if opts.drain:  # a bounded run frees its state at the end: a backfill's lateness is enough
        retention = max(retention, min_retention_days(lateness))
    if retention < min_retention_days(lateness):
        raise UsageError(
            f"parameters.stream_retention_days {retention} is below allowed_lateness_days "
            f"{lateness} + 32 = {min_retention_days(lateness)} (a day's totals must outlive its "
            "corrections and I13's 30 days) — raise stream_retention_days or lower "
            "--allowed_lateness_days")
    return StreamSettings(
        ctx=ctx,
        warehouse=opts.warehouse,
        run_id=run_id,
        quarantine_dir=opts.quarantine or os.path.join(warehouse_dir(opts.warehouse), "quarantine"),
        early_firing_seconds=max(1, early),
        allowed_lateness_days=lateness,
        retention_days=retention,
        batch_shards=max(1, opts.batch_shards),
    )


def begin_stream(settings: StreamSettings, runner: str, options: dict) -> None:
    """The job's one pipeline_runs row (status running) and zero counts."""
    codes = [i.code for i in INDICATORS]

    def begin(wh):
        wh.ensure_schema(codes)
        wh.begin_run(settings.run_id, "stream", runner, dt.datetime.now(dt.UTC), None, options)

    with_warehouse(settings.warehouse, begin)
    upsert(settings.warehouse, settings.run_id, "pipeline_run_streams",
           [count_row(settings.run_id, s, {}) for s in schemas.STREAM_NAMES])


def end_stream(settings: StreamSettings, error: BaseException | None = None) -> None:
    """A bounded run that ended (or any run that failed) closes its row."""
    if error is None:
        with_warehouse(settings.warehouse, lambda wh: wh.finish_run(settings.run_id, "succeeded"))
    else:
        with_warehouse(settings.warehouse, lambda wh: wh.fail_run(settings.run_id, error))


def run(argv: list[str] | None = None) -> str:
    """Parses options, records the job, runs it (until cancelled, or for
    ``--max_runtime_seconds``); returns the run_id."""
    if argv and {"-h", "--help"} & set(argv):
        parser = argparse.ArgumentParser(prog="yibao stream", description=__doc__,
                                         formatter_class=argparse.RawDescriptionHelpFormatter)
        StreamOptions._add_argparse_args(parser)
        parser.print_help()
        return ""
    options = PipelineOptions(argv)
    opts = options.view_as(StreamOptions)
    options.view_as(StandardOptions).streaming = True
    options.view_as(SetupOptions).save_main_session = False
    if bool(opts.landing) == bool(opts.subscriptions):
        raise UsageError("give exactly one of --landing DIR or --subscriptions stream=projects/…")
    if opts.landing and "://" not in opts.landing and not os.path.isdir(opts.landing):
        raise UsageError(f"--landing {opts.landing}: no such directory (expected "
                         "<landing>/<stream>/*.avro); create it, or fix the path")
    if opts.drain and not opts.landing:
        raise UsageError("--drain reads a landing directory to its end; a Pub/Sub subscription "
                         "has none (drain the Dataflow job instead: gcloud dataflow jobs drain)")
    if opts.timestamp_attribute and not opts.subscriptions:
        raise UsageError("--timestamp_attribute names a Pub/Sub attribute: use it with --subscriptions")
    privacy.require_key(allow_demo=opts.allow_demo_key)
    run_id = str(uuid.uuid4())
    settings = make_settings(opts, run_id)
    runner = resolve_stream_runner(options)
    runner_name = runner if isinstance(runner, str) else type(runner).__name__
    begin_stream(settings, runner_name, options.get_all_options(drop_default=True))
    watch = (LandingWatch(opts.landing, opts.poll_interval, opts.max_runtime_seconds, drain=opts.drain)
             if opts.landing else contextlib.nullcontext())
    try:
        with watch:
            p = beam.Pipeline(runner=runner, options=options)
            source = (watch.read() if opts.landing
                      else ReadSubscriptions(parse_subscriptions(opts.subscriptions),
                                             opts.timestamp_attribute))
            build(p | "Deliveries" >> source, settings)
            result = p.run()
            if isinstance(runner, str) and not opts.max_runtime_seconds:
                log.info("stream job %s submitted to %s", run_id, runner)
                return run_id  # it runs on the service; its pipeline_runs row stays running
            if opts.max_runtime_seconds and not opts.landing:  # the landing watch ends by itself
                threading.Timer(opts.max_runtime_seconds, result.cancel).start()
            result.wait_until_finish()
    except KeyboardInterrupt:  # a local job stopped by its user ends normally
        log.info("stream job %s stopped", run_id)
    except BaseException as exc:
        end_stream(settings, exc)
        raise
    end_stream(settings)
    log.info("stream job %s ended", run_id)
    return run_id


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO)
    run()
