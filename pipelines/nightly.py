r"""The nightly indicator refresh (batch, bounded).

What arrives: five Avro streams under ``--input`` (enrolment, contribution,
settlement, settlement_list, filing; ``<input>/<stream>/*.avro``) and the
reference CSVs.  What happens, top to bottom (ARCHITECTURE.md's picture):

1. ``Read<stream>``: match the files, decode each (a large one by block
   ranges) into Arrow record batches; what cannot be decoded becomes a
   dead letter (bytes to quarantine).
2. ``Route<stream>`` + ``ResolveDeliveries``: records routed into
   ``--shards`` buckets by hash(event_id); per bucket one copy per event_id
   — identical copies are duplicates, differing ones conflicting duplicates
   (dead letters) — and the stream's counts.
3. ``Rekey`` + ``ComputeShards``: accepted records re-routed by their
   business key (settlements with their lists by setl_id, reversals linked
   to what they reverse, enrolment re-keyed by certno); per bucket as_of,
   latest versions, rule verdicts from the compiled GE suites, indicator
   components and rule counts, quality_failures as a Parquet file.
4. ``SumParts`` + ``Finalize``: exact decimal sums per indicator and rule,
   then one small step: roll-up county → pooling region → province, MONTH
   and YTD rows, targets, C01, I19, the breakdown by member.
5. ``Publish``: every table of the run replaced by key in one warehouse
   transaction (the shards' files included), then the run's pipeline_runs
   row closed as succeeded — by the job itself, so a launcher that returns
   before the job ends (a flex template launch) never writes the outcome.
6. ``RemoveStaging``: after the publish, the run's staged Parquet files
   (they hold personal data) are deleted by the job. A job that fails or is
   cancelled before that is closed by its orchestrator, which also deletes
   ``<staging>/<run_id>/`` (deploy/RUNBOOK.md "Run bookkeeping"); a local
   launcher deletes it itself; a bucket lifecycle rule is the backstop.

Results never depend on the number of shards (transforms/shard_steps.py).

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
import json
import logging
import os
import signal
import socket
import sys
import threading
import time
import uuid

import apache_beam as beam
from apache_beam.io.filesystem import CompressionTypes
from apache_beam.io.filesystems import FileSystems
from apache_beam.options.pipeline_options import (
    DebugOptions,
    PipelineOptions,
    SetupOptions,
    StandardOptions,
    TestOptions,
    WorkerOptions,
)
from rich.console import Console

import reference
import schemas
from pipelines import checks, progress, sizing, storage, summary
from pipelines.config import calendar_sources, load_config
from pipelines.errors import UsageError
from pipelines.options import NightlyOptions, resolve_runner
from transforms import privacy, shards
from transforms import shard_steps as steps
from transforms.context import RunContext
from transforms.decode import ReadStream
from transforms.staging import remove as remove_staging
from transforms.staging import sweep_staging
from transforms.timeutil import business_date, calendar_years
from transforms.timing import stage_seconds
from warehouse import check_uri

log = logging.getLogger(__name__)


class RemoveStaging(beam.DoFn):
    """Deletes the run's staging prefix (after the publish: the shards'
    quality_failures files are committed from it)."""

    def __init__(self, staging_dir: str):
        self.staging_dir = staging_dir

    def process(self, _):
        remove_staging(self.staging_dir)
        log.info("removed the staged files of the run (%s)", self.staging_dir)
        yield self.staging_dir


class Publish(beam.DoFn):
    """Writes the run's tables in one warehouse transaction and closes the
    run's row, then writes the run's summary (a small JSON file the launcher
    prints, outside the staging prefix that RemoveStaging deletes)."""

    def __init__(self, warehouse_uri: str, run_id: str, ctx: RunContext, input_root: str,
                 summary_path: str | None = None):
        self.warehouse_uri, self.run_id, self.ctx, self.input_root = (
            warehouse_uri, run_id, ctx, input_root)
        self.summary_path = summary_path

    def process(self, result, dead_letters, stats):
        from pipelines.publish import publish_run

        progress.note_stage("publishing")
        done = publish_run(self.warehouse_uri, self.run_id, self.ctx, self.input_root, result,
                           dead_letters, stats)
        if self.summary_path:
            summary.write(self.summary_path, done)
        yield self.run_id


def build(p: beam.Pipeline, input_root: str, ctx: RunContext, warehouse_uri: str, run_id: str,
          quarantine_dir: str, staging_dir: str, memory_limit: str | None = None,
          summary_path: str | None = None, patterns: dict[str, list[str]] | None = None,
          shards: int = 1, threads: int | None = None) -> None:
    """The job's graph (transforms/shard_steps.py). ``patterns``: per stream,
    what to read (the input listing's, pruned by partition); default
    ``<input>/<stream>/*.avro``; ``shards``: the key buckets."""
    limits = steps.Limits(memory_limit, threads)
    routed, dead = [], []
    for stream in schemas.STREAM_NAMES:
        label = stream.title().replace("_", "")
        pattern = (patterns or {}).get(stream) or FileSystems.join(input_root, stream, "*.avro")
        read = p | f"Read{label}" >> ReadStream(stream, pattern, quarantine_dir)
        routed.append(read.batches | f"Route{label}" >> beam.ParDo(
            steps.RouteDeliveries(stream, staging_dir, shards)))
        dead.append(read.dead_letters)
    resolved = (
        routed
        | "AllDeliveries" >> beam.Flatten()
        | "GroupByEventId" >> beam.GroupByKey()
        | "ResolveDeliveries" >> beam.ParDo(steps.ResolveDeliveries(
            ctx, staging_dir, quarantine_dir, shards, limits))
        .with_outputs("dead_letters", "meta", main="records")
    )
    computed = (
        resolved.records
        | "GroupByBusinessKey" >> beam.GroupByKey()
        | "Rekey" >> beam.ParDo(steps.Rekey(ctx, staging_dir, shards, limits))
        | "GroupForCompute" >> beam.GroupByKey()
        | "ComputeShards" >> beam.ParDo(steps.ComputeShard(ctx, staging_dir, limits))
        .with_outputs("failures", "members", main="parts")
    )
    summed = computed.parts | "SumParts" >> beam.CombinePerKey(steps.SumParts())
    breakdown = (
        computed.members
        | "GroupMembersByCode" >> beam.GroupByKey()
        | "BreakdownByCode" >> beam.ParDo(steps.BreakdownByCode(ctx, staging_dir, limits))
    )
    meta = beam.pvalue.AsList(resolved.meta)
    result = (
        p
        | "Start" >> beam.Create([None])
        | "Finalize" >> beam.ParDo(steps.Finalize(ctx, staging_dir), beam.pvalue.AsList(summed), meta,
                                   beam.pvalue.AsList(computed.failures),
                                   beam.pvalue.AsList(breakdown))
    )
    dead_letters = (*dead, resolved.dead_letters) | "AllDeadLetters" >> beam.Flatten()
    published = result | "Publish" >> beam.ParDo(
        Publish(warehouse_uri, run_id, ctx, input_root, summary_path),
        beam.pvalue.AsList(dead_letters), meta)
    # Only a token crosses the shuffle: the staged files go once the publish
    # has committed the shards' quality_failures files.
    _ = (published
         | "AfterPublish" >> beam.Reshuffle()
         | "RemoveStaging" >> beam.ParDo(RemoveStaging(staging_dir)))


def _when(opts: NightlyOptions):
    """as_of, config and months of a run, checked (one line per mistake)."""
    as_of = checks.as_of(opts.as_of)
    config = load_config(opts.config)
    return as_of, config, checks.months(opts.months, as_of, int(config.parameters.get("max_months", 60)))


def make_context(opts: NightlyOptions) -> RunContext:
    """The run's context from its options (reference and config loaded)."""
    as_of, config, months = _when(opts)
    ref = reference.load(opts.reference or FileSystems.join(opts.input, "reference"))
    return RunContext(ref=ref, config=config, as_of=as_of, months=months)


def _help() -> str:
    parser = argparse.ArgumentParser(
        prog="yibao nightly", description=__doc__, epilog="Any Beam pipeline option is accepted too.",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    NightlyOptions._add_argparse_args(parser)
    return parser.format_help()


def run(argv: list[str] | None = None) -> str:
    """Parses options, records the run, builds and runs the pipeline, prints
    the summary; returns the run_id.  Mistakes raise UsageError (one line,
    exit 2); a run refused after its row was opened is recorded as failed.

    The job closes its own row (``Publish``) and deletes its staged files
    (``RemoveStaging``). When the runner returns before the job ends (a flex
    template launch, any non-blocking run) the launcher says "submitted" and
    leaves both to the job and to the orchestrator; it never writes the
    outcome of a job it did not see end. ``--dry_run`` (DataflowRunner)
    builds the job without running anything: no row, and the job is written
    to ``--dataflow_job_file`` if given."""
    from pipelines.publish import begin, end, warehouse_dir

    if argv and {"-h", "--help"} & set(argv):
        print(_help())
        return ""
    started = time.monotonic()
    _exit_on_sigterm()
    _quiet_step_failures()
    storage.configure()
    checks.known_options(sys.argv[1:] if argv is None else argv)
    options = PipelineOptions(argv)
    opts = options.view_as(NightlyOptions)
    if not opts.input:
        raise UsageError("--input DIR is required: the folder holding <stream>/*.avro "
                         "(and reference/)")
    if "://" not in opts.input:
        opts.input = os.path.abspath(opts.input)  # dead letters' sources are under it
    options.view_as(SetupOptions).save_main_session = False
    runner_name = str(options.view_as(StandardOptions).runner or "FnApiRunner")
    dry_run = bool(options.view_as(TestOptions).dry_run)
    as_of, config, months = _when(opts)
    allowed = checks.allow_empty(opts.allow_empty)
    privacy.require_key(allow_demo=opts.allow_demo_key)
    check_uri(opts.warehouse)  # an unknown scheme fails here, before any row
    checks.remote_paths(runner_name, opts.warehouse, opts.staging, opts.quarantine)
    run_id = checks.run_id(opts.run_id) if opts.run_id else str(uuid.uuid4())
    memory_limit = _memory_limit(opts, runner_name, options)
    listing = checks.list_input(opts.input, months, opts.all_partitions)
    n_shards = _shards(opts, options, config, listing.bytes, memory_limit)
    quarantine_dir = opts.quarantine or os.path.join(warehouse_dir(opts.warehouse), "quarantine")
    staging_root = opts.staging or os.path.join(warehouse_dir(opts.warehouse), "staging")
    staging_dir = FileSystems.join(staging_root, run_id)
    # Beside the run's prefix, not in it: RemoveStaging deletes that prefix.
    summary_path = FileSystems.join(staging_root, f"{run_id}.summary.json")
    runner = resolve_runner(options)
    recorded = options.get_all_options(drop_default=True)
    # Who runs it: the next run can tell a killed local run from a running one.
    recorded.update(launcher_host=socket.gethostname(), launcher_pid=os.getpid())
    if reference.synthetic(opts.reference or FileSystems.join(opts.input, "reference")):
        recorded["synthetic_population"] = True  # a generated data set's: the report says so
    if not dry_run:
        begin(opts.warehouse, run_id, "nightly", runner_name, as_of, recorded,
              calendar_sources(config, calendar_years(months, business_date(as_of))))
        _sweep(opts.warehouse, staging_root, config)
    job_ended, result = True, None
    try:
        ref = reference.load(opts.reference or FileSystems.join(opts.input, "reference"))
        checks.refuse_empty(listing, allowed)
        ctx = RunContext(ref=ref, config=config, as_of=as_of, months=months,
                         extra={"allow_empty": allowed, "ignored_files": listing.ignored})
        with progress.Progress(enabled=not (opts.quiet or opts.json or dry_run)):
            p = beam.Pipeline(runner=runner, options=options)
            build(p, opts.input, ctx, opts.warehouse, run_id, quarantine_dir, staging_dir,
                  memory_limit, summary_path, patterns=listing.patterns, shards=n_shards,
                  threads=_threads(runner_name, options))
            result = p.run()
            result.wait_until_finish()
        if dry_run:
            return _dry_run(result, options, run_id)
        done = summary.read(summary_path)
        job_ended = done is not None or _ended(result)
    except BaseException as exc:
        if result is not None and not _ended(result):
            # Interrupted while waiting for a remote job that runs on: it
            # still records itself, and still needs its staged files.
            job_ended = False
            raise
        if _TERMINATED.is_set():
            if not dry_run:
                end(opts.warehouse, run_id, "failed", error="terminated (SIGTERM) while running")
            print(f"yibao nightly: terminated (SIGTERM): run {run_id} closed as failed, its staged "
                  "files removed", file=sys.stderr)
            raise SystemExit(143) from None
        if not dry_run:
            end(opts.warehouse, run_id, "failed", error=_reason(exc))
        usage = _usage_error(exc)
        if usage is not None:
            raise usage from None
        raise
    finally:
        if job_ended and not dry_run:
            remove_staging(staging_dir)
    if done is None:
        # Submitted, not seen to end: the job and its orchestrator record it.
        done = {"run_id": run_id, "status": "submitted", "job_id": _job_id(result)}
        log.info("nightly run %s submitted; the job closes its pipeline_runs row", run_id)
    else:
        _delete_quietly(summary_path)
        log.info("nightly run %s succeeded", run_id)
        done["stage_seconds"] = stage_seconds(result)  # worker-seconds per step
        if not opts.no_alerts:
            done["alerts"] = _alert(opts, run_id)
    skipped = {s: len(v) for s, v in listing.skipped_partitions.items() if v}
    if skipped:
        done["partitions_skipped"] = skipped
    done.update(warehouse=opts.warehouse, elapsed_seconds=round(time.monotonic() - started, 1))
    _print_summary(done, opts)
    return run_id


def _shards(opts: NightlyOptions, options: PipelineOptions, config, input_bytes: int,
            memory_limit: str) -> int:
    """--shards, else enough buckets that one's working set fits its DuckDB
    memory limit (``shard_mib`` of Avro input per bucket when configured),
    and at least one per worker (docs/PERFORMANCE.md "Scale-out")."""
    if opts.shards is not None:
        if opts.shards < 1:
            raise UsageError(f"--shards {opts.shards}: must be a whole number ≥ 1")
        return opts.shards
    from apache_beam.options.pipeline_options import DirectOptions

    workers = (options.view_as(WorkerOptions).max_num_workers
               or options.view_as(WorkerOptions).num_workers
               or options.view_as(DirectOptions).direct_num_workers or 1)
    mib = config.parameters.get("shard_mib")
    shard_bytes = int(float(mib) * 2**20) if mib else sizing.shard_bytes(memory_limit)
    return shards.default_shards(input_bytes, workers, shard_bytes)


def _concurrent_buckets(runner_name: str, options: PipelineOptions) -> int:
    """Buckets one worker computes at once: one per vCPU on Dataflow (one SDK
    process each), --direct_num_workers locally."""
    from apache_beam.options.pipeline_options import DirectOptions

    if runner_name == "DataflowRunner":
        return sizing.vcpus(options.view_as(WorkerOptions).machine_type)
    return options.view_as(DirectOptions).direct_num_workers or 1


def _threads(runner_name: str, options: PipelineOptions) -> int | None:
    """DuckDB threads of one bucket: its share of the CPUs this process may run
    on (one on a Dataflow worker's SDK process); None: every core (one local
    worker on an unrestricted machine).  DuckDB sizes its pool by the machine's
    cores, not the process's affinity (taskset, cpusets): pinned to 1 CPU it
    would still start a thread per core, so a restricted run sets it."""
    if runner_name == "DataflowRunner":
        return 1
    concurrent = _concurrent_buckets(runner_name, options)
    cpus = _usable_cpus()
    if concurrent == 1 and cpus >= (os.cpu_count() or 1):
        return None
    return max(1, cpus // concurrent)


def _usable_cpus() -> int:
    """CPUs this process may run on (its affinity mask, where the OS has one)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        return os.cpu_count() or 1


def _memory_limit(opts: NightlyOptions, runner_name: str, options: PipelineOptions) -> str:
    """One bucket's DuckDB memory limit: the worker's budget (pipelines/sizing.py)
    shared by the buckets it computes at once."""
    machine = options.view_as(WorkerOptions).machine_type
    try:
        budget = sizing.compute_memory_limit(opts.compute_memory_limit, runner_name, machine)
    except ValueError as e:
        raise UsageError(str(e)) from None
    return sizing.per_bucket(budget, _concurrent_buckets(runner_name, options))


def _sweep(uri: str, staging_root: str, config) -> None:
    """Rows of runs that died still ``running`` (past ``run_max_age_hours``,
    or a local launcher that is gone) become ``abandoned``; local staging
    folders of ended runs go."""
    from warehouse import open_warehouse

    hours = float(config.parameters.get("run_max_age_hours", 24))
    with open_warehouse(uri) as wh:
        abandoned = wh.abandon_stale_runs(dt.timedelta(hours=hours))
        if hasattr(wh, "abandon_dead_local_runs"):  # a local warehouse: its runs are local processes
            abandoned += wh.abandon_dead_local_runs(socket.gethostname(), _alive)
        if abandoned:
            log.warning("marked %d run(s) abandoned (killed, or running for over %g h): %s",
                        len(abandoned), hours, ", ".join(abandoned))
        sweep_staging(staging_root, wh.run_statuses, hours)


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process: alive
        return True
    return True


def _ended(result) -> bool:
    """Did the runner see the job end? A template launch has no job here,
    and a non-blocking runner's job may still be running."""
    from apache_beam.runners.runner import PipelineState

    if getattr(result, "has_job", True) is False:
        return False
    try:
        return PipelineState.is_terminal(result.state)
    except Exception:  # noqa: BLE001 - the job's state could not be read: not seen to end
        return False


def _job_id(result) -> str | None:
    try:
        return result.job_id() if getattr(result, "has_job", False) else None
    except Exception:  # noqa: BLE001
        return None


def _dry_run(result, options: PipelineOptions, run_id: str) -> str:
    """``--dry_run``: Beam builds the Dataflow job and returns it on the result
    without writing ``--dataflow_job_file``; write it there (job and graph)."""
    from google.protobuf import json_format

    job = getattr(result, "job", None)
    path = options.view_as(DebugOptions).dataflow_job_file
    if job is not None and path:
        text = json.dumps({"job": json.loads(job.json()),
                           "pipeline": json_format.MessageToDict(job.proto_pipeline)})
        with FileSystems.create(path, compression_type=CompressionTypes.UNCOMPRESSED) as fh:
            fh.write(text.encode("utf-8"))
    print(f"nightly run {run_id}: dry run, job built and not submitted"
          + (f" → {path}" if path else ""))
    return run_id


def _delete_quietly(path: str) -> None:
    try:
        FileSystems.delete([path])
    except Exception:  # noqa: BLE001 - a leftover summary holds no personal data
        log.debug("could not delete %s", path, exc_info=True)


_TERMINATED = threading.Event()


def _exit_on_sigterm() -> None:
    """A scheduler's kill (SIGTERM) unwinds like Ctrl-C: the run's row is
    closed as failed and its staging (personal data) removed.  The runner's
    worker threads may never stop on their own, so a watchdog ends the
    process once the unwinding has had its time."""
    def on_term(*_):
        _TERMINATED.set()
        threading.Thread(target=_exit_later, daemon=True).start()
        sys.exit(143)

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, on_term)


def _exit_later(seconds: float = 30) -> None:
    time.sleep(seconds)
    os._exit(143)


class _SaidInOneLine(logging.Filter):
    """Beam logs a step's exception with its traceback before re-raising it;
    a refusal (UsageError) or a kill reaches the operator as one line anyway."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        return not isinstance(exc, (UsageError, SystemExit, KeyboardInterrupt))


def _quiet_step_failures() -> None:
    step_log = logging.getLogger("apache_beam.runners.common")
    if not any(isinstance(f, _SaidInOneLine) for f in step_log.filters):
        step_log.addFilter(_SaidInOneLine())


def _reason(exc: BaseException) -> str:
    usage = _usage_error(exc)
    return str(usage) if usage is not None else f"{type(exc).__name__}: {exc}"


def _usage_error(exc: BaseException) -> UsageError | None:
    """A UsageError raised inside a step reaches the launcher wrapped by the
    runner: find it in the chain (or in the runner's message)."""
    seen = exc
    while seen is not None:
        if isinstance(seen, UsageError):  # Beam's copy carries " [while running '<step>']"
            return UsageError(str(seen).split(" [while running")[0])
        seen = seen.__cause__ or seen.__context__
    text = str(exc)
    if "UsageError: " in text:
        return UsageError(text.split("UsageError: ", 1)[1].splitlines()[0].split(" [while running")[0])
    return None


def _print_summary(done: dict, opts: NightlyOptions) -> None:
    if opts.json:
        print(json.dumps(done, ensure_ascii=False, default=str))
        return
    if opts.quiet:
        for line in summary.warnings(done):
            print(f"warning: {line}", file=sys.stderr)
        return
    if "streams" in done:
        summary.render(done, Console(highlight=False, soft_wrap=True))
    else:
        print(f"nightly run {done['run_id']} {done['status']} → {done['warehouse']}")


def _alert(opts: NightlyOptions, run_id: str) -> str:
    """Data-quality alerts after a published run; alerting never fails a run
    whose results are already in the warehouse.  Returns one line for the
    summary.  DuckDB and BigQuery alike (alerting/store.py reads through
    warehouse/reader.py)."""
    try:
        import alerting
        from alerting.summary import summarize

        alerts = alerting.evaluate(opts.warehouse, run_id, config=opts.config)
    except Exception as e:  # noqa: BLE001 - logged, the run itself succeeded
        log.error("alert evaluation after run %s failed: %s", run_id, type(e).__name__)
        log.debug("alert evaluation failed", exc_info=True)
        return "evaluation failed (see the log)"
    return summarize(run_id, 0, alerts or []).line().split(": ", 1)[-1]


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO)
    run()
