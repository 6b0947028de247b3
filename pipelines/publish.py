"""A run's rows -> the warehouse tables of WAREHOUSE.md, in one publish.

Scopes of the keyless tables: a nightly run owns the quality_failures of
the streams it validates (they are evaluated at as_of over all input), and
the dead_letters whose source lies under its input root.
"""
from __future__ import annotations

import datetime as dt
import os
from collections import Counter

import pyarrow as pa

import expectations
import schemas
from pipelines import summary
from pipelines.errors import UsageError
from transforms import members
from transforms.compute import RunResult
from transforms.context import RunContext, month_end
from transforms.indicators.catalog import INDICATORS
from warehouse import ParquetFiles, duckdb_path, open_warehouse
from warehouse.scope import Scope
from warehouse.tables import arrow_schema

VALIDATED_STREAMS = schemas.STREAM_NAMES


def warehouse_dir(uri: str) -> str:
    """Directory next to a DuckDB warehouse file (for the local quarantine)."""
    if not uri.startswith("bigquery://"):
        return os.path.dirname(os.path.abspath(duckdb_path(uri)))
    return os.path.abspath("var")


def begin(uri: str, run_id: str, pipeline: str, runner: str, as_of: dt.datetime, options: dict,
          calendar_sources: dict[int, str] | None = None) -> None:
    """Opens the run's pipeline_runs row (before the reference and the input
    are checked, so a refused run is recorded with its reason), with the
    working-day calendar source of each year in scope."""
    with open_warehouse(uri) as wh:
        wh.ensure_schema([i.code for i in INDICATORS])
        wh.begin_run(run_id, pipeline, runner, dt.datetime.now(dt.UTC), as_of, options,
                     calendar_sources=calendar_sources)


def end(uri: str, run_id: str, status: str, error: str | None = None) -> None:
    with open_warehouse(uri) as wh:
        if status == "failed":
            wh.fail_run(run_id, error or "failed")
        else:
            wh.finish_run(run_id, status)


def _table(name: str, rows: list[dict]) -> pa.Table:
    schema = arrow_schema(name)
    present = [f for f in schema if rows and f.name in rows[0]] if rows else [
        f for f in schema if f.name not in ("run_id", "computed_at")]
    return pa.Table.from_pylist(rows, schema=pa.schema(present))


def _with_pipeline(breakdown: pa.Table | None, pipeline: str) -> pa.Table:
    """transforms.breakdown's Arrow rows with their pipeline."""
    if breakdown is None:
        return _table("indicator_breakdown", [])
    return breakdown.append_column(arrow_schema("indicator_breakdown").field("pipeline"),
                                   pa.array([pipeline] * breakdown.num_rows, pa.string()))


def dims(ctx: RunContext) -> dict[str, pa.Table]:
    ref = ctx.ref
    level = {"county": "county", "city": "pooling", "province": "province"}
    regions = [{"region_code": r.code, "name": r.name, "level": level[r.level],
                "parent_code": r.parent_code or None, "pooling_code": r.pooling_code or None}
               for r in sorted(ref.regions.values(), key=lambda r: r.code)]
    year = ctx.months[-1].year
    indicators = [{"indicator_code": i.code, "name_zh": i.name_zh, "name_en": i.name_en,
                   "plan_number": i.plan_number, "population": i.population,
                   "numerator_def": i.numerator, "denominator_def": i.denominator,
                   "region_column": i.region_column, "direction": i.direction,
                   "default_target": ctx.config.target(i.code, year), "family": i.family}
                  for i in INDICATORS]
    rules = [{"rule_id": r.rule_id, "stream": r.stream, "severity": r.severity,
              "description": r.description}
             for s in schemas.STREAM_NAMES for r in expectations.rules(s)]
    return {"dim_region": _table("dim_region", regions),
            "dim_indicator": _table("dim_indicator", indicators),
            "dim_quality_rule": _table("dim_quality_rule", rules)}


def stream_counts(run_id: str, dead_letters: list[dict], stats: list[dict],
                  failures: list[dict] | dict[str, int]) -> list[dict]:
    """read = accepted + duplicates + dead-lettered, per stream.  ``stats``
    may hold several entries of a stream (one per bucket): they add up;
    ``failures``: the rows, or their count per stream."""
    dead = Counter(d["stream"] for d in dead_letters)
    fails = Counter(failures) if isinstance(failures, dict) else Counter(f["stream"] for f in failures)
    by_stream: dict[str, Counter] = {}
    for s in stats:
        by_stream.setdefault(s["stream"], Counter()).update(
            {k: s[k] for k in ("decoded", "duplicates", "conflicts")})
    rows = []
    for stream in schemas.STREAM_NAMES:
        s = by_stream.get(stream, Counter())
        decode_dead = dead[stream] - s["conflicts"]
        rows.append({"run_id": run_id, "stream": stream, "read": s["decoded"] + decode_dead,
                     "accepted": s["decoded"] - s["duplicates"] - s["conflicts"],
                     "duplicates": s["duplicates"], "dead_lettered": dead[stream],
                     "late_dropped": 0, "quality_failures": fails[stream]})
    return rows


def refuse_empty_streams(counts: list[dict], ctx: RunContext) -> None:
    """Files that decode to nothing must not publish zeros either (the input
    listing already refused streams without files)."""
    allowed = ctx.extra.get("allow_empty", set())
    empty = [c["stream"] for c in counts if c["accepted"] == 0 and c["stream"] not in allowed]
    if empty:
        raise UsageError(f"no accepted record for {', '.join(empty)} (every file was empty or "
                         "dead-lettered): nothing published; check dead_letters, or pass "
                         f"--allow-empty {','.join(empty)} to publish zeros")


def publish_run(uri: str, run_id: str, ctx: RunContext, input_root: str, result: RunResult,
                dead_letters: list[dict], stats: list[dict]) -> dict:
    """Writes the run's tables; returns the run's summary (pipelines/summary.py)."""
    now = dt.datetime.now(dt.UTC)
    values = [dict(r, as_of=ctx.as_of, pipeline="nightly") for r in result.indicator_values]
    dead = [dict(d, received_at=d.get("received_at") or now, run_id=run_id) for d in dead_letters]
    by_stream = result.failures_by_stream()
    if result.failure_files is not None:  # the shards' files, committed as they are
        failures = ParquetFiles(tuple(result.failure_files))
    else:
        failures = _table("quality_failures",
                          [dict(f, run_id=run_id, pipeline="nightly") for f in result.quality_failures])
    counts = stream_counts(run_id, dead_letters, stats, by_stream)
    refuse_empty_streams(counts, ctx)
    tables = {
        "indicator_values": _table("indicator_values", values),
        "quality_rule_results": _table("quality_rule_results",
                                       [dict(r, pipeline="nightly") for r in result.quality_rule_results]),
        "quality_failures": failures,
        "dead_letters": _table("dead_letters", dead),
        "pipeline_run_streams": _table("pipeline_run_streams", counts),
        "indicator_breakdown": (ParquetFiles(tuple(result.breakdown_files))
                                if result.breakdown_files is not None
                                else _with_pipeline(result.indicator_breakdown, "nightly")),
        "dim_institution": _table("dim_institution", members.institution_rows(
            ctx.ref, result.members_seen.get("institution", []))),
        "dim_matter": _table("dim_matter", members.matter_rows(ctx.ref, result.members_seen.get("matter", []))),
        **dims(ctx),
    }
    scopes = {
        # The run's periods (MONTH and YTD of each month end only by its month
        # end): every member row of them is replaced, so none outlives a re-run.
        "indicator_breakdown": Scope(values={"pipeline": ["nightly"],
                                             "period_end": [month_end(m) for m in ctx.months]}),
        # The stream's own quality rows (pipeline = 'stream') are not the nightly's to replace.
        "quality_failures": Scope(values={"stream": list(VALIDATED_STREAMS), "pipeline": ["nightly"]}),
        "dead_letters": Scope(under={"source": input_root}),
    }
    with open_warehouse(uri) as wh:
        wh.publish(run_id, tables, scopes)
        # Closed here, inside the job: a Dataflow launcher may not wait for the
        # job to finish, and the driver's own close is then never reached.
        wh.finish_run(run_id, "succeeded")
    return summary.build(run_id, ctx, counts, values, sum(by_stream.values()), result.records_by_month,
                         ctx.extra.get("ignored_files", []))
