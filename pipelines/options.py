"""Pipeline options: every parameter of the nightly job, with help text
(the flex template's metadata.json describes the same ones)."""
from __future__ import annotations

from apache_beam.options.pipeline_options import PipelineOptions, StandardOptions

DEFAULT_WAREHOUSE = "duckdb:///var/warehouse.duckdb"


class NightlyOptions(PipelineOptions):
    @classmethod
    def _add_argparse_args(cls, parser):
        # Not argparse-required: Beam parses every PipelineOptions subclass for
        # any pipeline in the process, so run() checks it instead.
        parser.add_argument("--input", default=None,
                            help="Input root: <input>/<stream>/*.avro (local path or gs://)")
        parser.add_argument("--warehouse", default=DEFAULT_WAREHOUSE,
                            help="duckdb:///path/file.duckdb (relative to the working directory "
                                 "unless it starts with //) or bigquery://PROJECT/DATASET")
        parser.add_argument("--as_of", "--as-of", dest="as_of", default=None,
                            help="Cut-off instant, ISO 8601 (naive = Asia/Shanghai); default now")
        parser.add_argument("--months", default=None,
                            help="YYYY-MM..YYYY-MM; default January of as_of's year to as_of's month")
        parser.add_argument("--reference", default=None,
                            help="Reference CSV directory; default <input>/reference")
        parser.add_argument("--config", default=None,
                            help="YAML overriding the shipped targets and parameters")
        parser.add_argument("--no_alerts", "--no-alerts", dest="no_alerts", action="store_true",
                            help="Skip alert evaluation after the run (e.g. for a backfill)")
        parser.add_argument("--staging", default=None,
                            help="Where decoded batches are staged as Parquet during a run (local "
                                 "dir or gs:// prefix); default <warehouse dir>/staging; removed "
                                 "after the run")
        parser.add_argument("--compute_memory_limit", default=None,
                            help="DuckDB memory limit of the compute step (it spills beyond it); "
                                 "default 60%% of the worker's memory (--worker_machine_type "
                                 "under Dataflow, this machine's locally: pipelines/sizing.py)")
        parser.add_argument("--quarantine", default=None,
                            help="Where dead letters' raw bytes go; default <warehouse dir>/quarantine")
        parser.add_argument("--allow_empty", "--allow-empty", dest="allow_empty", default=None,
                            help="Streams (comma-separated, or 'all') allowed to have no files or no "
                                 "accepted record; otherwise such a run is refused instead of "
                                 "publishing zeros")
        parser.add_argument("--allow_demo_key", "--allow-demo-key", dest="allow_demo_key",
                            action="store_true",
                            help="Local trials only: pseudonymise with the public demo key when "
                                 "YIBAO_PSEUDONYM_KEY is not set")
        parser.add_argument("--quiet", action="store_true",
                            help="No progress and no summary on success (warnings still on stderr)")
        parser.add_argument("--json", action="store_true",
                            help="Print the run's summary as one JSON object on stdout")
        parser.add_argument("--run_id", default=None,
                            help="Id of the run's pipeline_runs row (default: a new UUID); an "
                                 "orchestrator passes its own so that it can close the row and "
                                 "delete <staging>/<run_id>/ when the job fails or is cancelled")
        parser.add_argument("--all_partitions", action="store_true",
                            help="With a dt=YYYY-MM-DD landing layout, read every partition "
                                 "instead of only those the run's months can need (re-validates "
                                 "the whole history)")
        parser.add_argument("--shards", type=int, default=None,
                            help="Key buckets the compute is split into (results never depend on "
                                 "it); default: enough that a bucket fits its DuckDB memory "
                                 "limit (or one per shard_mib MiB of Avro input, if configured), "
                                 "at least one per worker")


def resolve_runner(options: PipelineOptions):
    """The local default runner downloads nothing: Beam's DirectRunner may
    switch to the Prism runner, a binary fetched from the internet, so a
    missing or 'DirectRunner' runner means the in-process FnApiRunner
    (which honours --direct_num_workers and --direct_running_mode)."""
    name = options.view_as(StandardOptions).runner
    if name in (None, "DirectRunner", "FnApiRunner"):
        from apache_beam.runners.portability.fn_api_runner import FnApiRunner

        return FnApiRunner()
    return name
