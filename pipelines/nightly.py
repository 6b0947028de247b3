"""The nightly indicator refresh (batch, bounded).

What arrives: five Avro streams under ``--input`` (enrolment, contribution,
settlement, settlement_list, filing; ``<input>/<stream>/*.avro``) and the
reference CSVs.  What happens, top to bottom (ARCHITECTURE.md's picture):

1. ``Read<stream>``: match the files, decode each into Arrow record batches;
   what cannot be decoded becomes a dead letter (bytes to quarantine).
2. ``Gather<stream>`` + ``Resolve<stream>``: one copy per event_id —
   identical copies are duplicates, differing ones conflicting duplicates
   (dead letters); the stream's read/accepted/duplicate counts.
3. ``ComputeIndicators``: as_of, latest version per business key,
   reversals, rule verdicts from the compiled GE suites, indicator
   components per attribution region and month, roll-up county → pooling
   region → province, MONTH and YTD rows (DuckDB SQL over Arrow).
4. ``Publish``: every table of the run replaced by key in one warehouse
   transaction; the run's pipeline_runs row says how it ended.

Run it::

    yibao nightly --input var/demo --warehouse duckdb:///var/warehouse.duckdb \
        --as-of 2023-12-31T23:59:59+08:00 --months 2023-01..2023-12
    python -m pipelines.nightly --input gs://bucket/landing --warehouse bigquery://p/d \
        --runner DataflowRunner --project p --region asia-east2 --temp_location gs://bucket/tmp \
        --setup_file ./setup.py
"""
from __future__ import annotations

import argparse
import datetime as dt
import logging
import os
import tempfile
import uuid

import apache_beam as beam
import pyarrow as pa
from apache_beam.io.filesystems import FileSystems
from apache_beam.options.pipeline_options import PipelineOptions, SetupOptions, StandardOptions

import reference
import schemas
from pipelines.config import load_config
from pipelines.options import NightlyOptions, resolve_runner
from transforms.compute import compute_run, connect
from transforms.context import RunContext, default_months, month_range
from transforms.decode import ReadStream
from transforms.quarantine import quarantine
from transforms.staging import StageBatches, local_paths
from transforms.staging import remove as remove_staging
from transforms.timeutil import parse_instant
from transforms.versions import encode_record, resolve_deliveries

log = logging.getLogger(__name__)


class ComputeIndicators(beam.DoFn):
    """From every stream's staged batches (side inputs: Parquet paths) to the
    run's rows.

    Versions and duplicates need every copy of a key together, so a
    stream's batches meet here in one DuckDB database (on local disk, with a
    memory limit, so large inputs spill instead of exhausting memory): one
    copy per event_id (conflicting copies quarantined as dead letters), then
    every indicator, rule result and failure of the run.  Outputs: the
    RunResult, ``dead_letters`` and per-stream ``stats``."""

    def __init__(self, ctx: RunContext, quarantine_dir: str, memory_limit: str):
        self.ctx, self.quarantine_dir, self.memory_limit = ctx, quarantine_dir, memory_limit

    def process(self, _, **staged):
        with tempfile.TemporaryDirectory(prefix="yibao-compute-") as work:
            con = connect(os.path.join(work, "compute.duckdb"), memory_limit=self.memory_limit)
            try:
                for stream in schemas.STREAM_NAMES:
                    parts = staged.get(stream) or []
                    paths = local_paths([p for p, _ in parts], work)
                    if paths:
                        con.execute(f"CREATE OR REPLACE TEMP VIEW {stream}_raw AS "
                                    f"SELECT * FROM read_parquet({paths!r})")
                    else:
                        con.register(f"{stream}_raw", schemas.load(stream).table.empty_table())
                    result = resolve_deliveries(con, stream, f"{stream}_raw")
                    yield from self._conflicts(stream, result["conflicts"])
                    yield beam.pvalue.TaggedOutput("stats", {
                        "stream": stream, "decoded": sum(n for _, n in parts),
                        "duplicates": result["duplicates"],
                        "conflicts": result["conflicts"].num_rows})
                yield compute_run(con, self.ctx)
            finally:
                con.close()

    def _conflicts(self, stream: str, conflicts: pa.Table):
        for row in conflicts.to_pylist():
            source = f"{row.pop('_source')}#record={row.pop('_index')}"
            dl = quarantine(self.quarantine_dir, stream, source,
                            f"conflicting duplicate of event_id {row['event_id']!r}: differs from "
                            "the copy kept", encode_record(stream, row))
            yield beam.pvalue.TaggedOutput("dead_letters", dl.as_dict())


class Publish(beam.DoFn):
    """Writes the run's tables in one warehouse transaction."""

    def __init__(self, warehouse_uri: str, run_id: str, ctx: RunContext, input_root: str):
        self.warehouse_uri, self.run_id, self.ctx, self.input_root = (
            warehouse_uri, run_id, ctx, input_root)

    def process(self, result, dead_letters, stats):
        from pipelines.publish import publish_run

        publish_run(self.warehouse_uri, self.run_id, self.ctx, self.input_root, result,
                    dead_letters, stats)
        yield self.run_id


def build(p: beam.Pipeline, input_root: str, ctx: RunContext, warehouse_uri: str, run_id: str,
          quarantine_dir: str, staging_dir: str, memory_limit: str = "4GB") -> None:
    staged, dead = {}, []
    for stream in schemas.STREAM_NAMES:
        label = stream.title().replace("_", "")
        pattern = FileSystems.join(input_root, stream, "*.avro")
        read = p | f"Read{label}" >> ReadStream(stream, pattern, quarantine_dir)
        paths = read.batches | f"Stage{label}" >> beam.ParDo(StageBatches(stream, staging_dir))
        staged[stream] = beam.pvalue.AsList(paths)
        dead.append(read.dead_letters)
    computed = (
        p
        | "Start" >> beam.Create([None])
        | "ComputeIndicators" >> beam.ParDo(
            ComputeIndicators(ctx, quarantine_dir, memory_limit), **staged)
        .with_outputs("dead_letters", "stats", main="result")
    )
    dead_letters = (*dead, computed.dead_letters) | "AllDeadLetters" >> beam.Flatten()
    _ = computed.result | "Publish" >> beam.ParDo(
        Publish(warehouse_uri, run_id, ctx, input_root),
        beam.pvalue.AsList(dead_letters), beam.pvalue.AsList(computed.stats))


def make_context(opts: NightlyOptions) -> RunContext:
    as_of = parse_instant(opts.as_of) if opts.as_of else dt.datetime.now(dt.UTC)
    ref_dir = opts.reference or FileSystems.join(opts.input, "reference")
    ref = reference.load(ref_dir)  # a reference error stops the run before any stream is read
    months = month_range(opts.months) if opts.months else default_months(as_of)
    return RunContext(ref=ref, config=load_config(opts.config), as_of=as_of, months=months)


def run(argv: list[str] | None = None) -> str:
    """Parses options, records the run, builds and runs the pipeline; returns the run_id."""
    from pipelines.publish import begin, end, warehouse_dir

    if argv and {"-h", "--help"} & set(argv):
        parser = argparse.ArgumentParser(
            prog="yibao nightly", description=__doc__, epilog="Any Beam pipeline option is accepted too.",
            formatter_class=argparse.RawDescriptionHelpFormatter)
        NightlyOptions._add_argparse_args(parser)
        parser.print_help()
        return ""
    options = PipelineOptions(argv)
    opts = options.view_as(NightlyOptions)
    if not opts.input:
        raise SystemExit("yibao nightly: --input DIR is required")
    if "://" not in opts.input:
        opts.input = os.path.abspath(opts.input)  # dead letters' sources are under it
    options.view_as(SetupOptions).save_main_session = False
    ctx = make_context(opts)
    run_id = str(uuid.uuid4())
    quarantine_dir = opts.quarantine or os.path.join(warehouse_dir(opts.warehouse), "quarantine")
    staging_dir = FileSystems.join(opts.staging or os.path.join(warehouse_dir(opts.warehouse), "staging"),
                                   run_id)
    runner = resolve_runner(options)
    begin(opts.warehouse, run_id, "nightly", str(options.view_as(StandardOptions).runner or "FnApiRunner"),
          ctx, {k: v for k, v in options.get_all_options(drop_default=True).items()})
    try:
        with beam.Pipeline(runner=runner, options=options) as p:
            build(p, opts.input, ctx, opts.warehouse, run_id, quarantine_dir, staging_dir,
                  opts.compute_memory_limit)
    except BaseException as exc:
        end(opts.warehouse, run_id, "failed", error=f"{type(exc).__name__}: {exc}")
        raise
    finally:
        remove_staging(staging_dir)
    end(opts.warehouse, run_id, "succeeded")
    log.info("nightly run %s succeeded", run_id)
    if not opts.no_alerts:
        _alert(opts, run_id)
    return run_id


def _alert(opts: NightlyOptions, run_id: str) -> None:
    """Data-quality alerts after a published run; alerting never fails a run
    whose results are already in the warehouse."""
    if opts.warehouse.startswith("bigquery://"):
        log.info("alert evaluation reads DuckDB warehouses; run it against BigQuery's copy "
                 "with your monitoring instead (docs/DECISIONS.md)")
        return
    try:
        import alerting

        alerting.evaluate(opts.warehouse, run_id, config=opts.config)
    except Exception:  # noqa: BLE001 - logged, the run itself succeeded
        log.exception("alert evaluation after run %s failed", run_id)


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO)
    run()
