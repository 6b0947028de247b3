"""From the accepted stream tables to the warehouse rows of one run:
indicator_values, quality_rule_results and quality_failures.

All record-level work runs as vectorised DuckDB SQL over Arrow tables (no
Python object per record); Python only sees small aggregates.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import duckdb
import pyarrow as pa

import expectations
import schemas
from transforms import members, prepare, quality
from transforms.breakdown import breakdown_table
from transforms.context import RunContext, month_end
from transforms.indicators import components as comp
from transforms.rollup import indicator_rows, rule_rows
from transforms.timeutil import business_date_sql
from warehouse.duckdb_store import NO_DOWNLOADS

#: The business time of each stream's records (DECISIONS.md "business_date").
BUSINESS_TIME = {"enrolment": "event_time", "contribution": "clct_time", "settlement": "setl_time",
                 "settlement_list": "upload_time", "filing": "submitted_time"}


@dataclass
class RunResult:
    indicator_values: list[dict]
    quality_rule_results: list[dict]
    quality_failures: list[dict]
    #: stream -> {"YYYY-MM": accepted records} for the run's months (the summary
    #: names months without data)
    records_by_month: dict = field(default_factory=dict)
    #: indicator_values split by institution / matter (transforms.breakdown; Arrow: ~0.5 M rows
    #: at 1 M settlements never become Python objects)
    indicator_breakdown: pa.Table | None = None
    #: dimension -> codes seen in the accepted records (transforms.members.seen_codes)
    members_seen: dict = field(default_factory=dict)
    #: The sharded nightly's quality_failures: Parquet files written by its shards
    #: (transforms/shard_steps.py), with their counts per stream; None: the rows are
    #: ``quality_failures``.
    failure_files: list[str] | None = None
    failure_counts: dict = field(default_factory=dict)
    #: The sharded nightly's indicator_breakdown: Parquet files (with pipeline);
    #: None: the rows are ``indicator_breakdown``.
    breakdown_files: list[str] | None = None

    def failures_by_stream(self) -> dict[str, int]:
        if self.failure_files is not None:
            return dict(self.failure_counts)
        counts: dict[str, int] = {}
        for f in self.quality_failures:
            counts[f["stream"]] = counts.get(f["stream"], 0) + 1
        return counts


def records_by_month(con: duckdb.DuckDBPyConnection, ctx: RunContext, stream: str) -> dict[str, int]:
    """{"YYYY-MM": accepted records of ``stream``} for the run's months."""
    first, last = ctx.months[0], month_end(ctx.months[-1])
    day = business_date_sql(BUSINESS_TIME[stream])
    rows = con.execute(f"SELECT strftime({day}, '%Y-%m'), count(*) FROM {stream}_accepted "
                       f"WHERE {day} BETWEEN ? AND ? GROUP BY 1", [first, last]).fetchall()
    return dict(sorted(rows))


def connect(path: str = ":memory:", memory_limit: str | None = None,
            threads: int | None = None) -> duckdb.DuckDBPyConnection:
    """A DuckDB that never downloads an extension and never uses the
    machine's time zone; a file-backed one spills next to its file."""
    config = dict(NO_DOWNLOADS)
    if memory_limit:
        config["memory_limit"] = memory_limit
    if threads:
        config["threads"] = int(threads)
    con = duckdb.connect(path, config=config)
    con.execute("SET TimeZone = 'UTC'")
    con.execute("SET enable_progress_bar = false")
    return con


def load_accepted(con: duckdb.DuckDBPyConnection, tables: dict[str, pa.Table]) -> None:
    for stream in schemas.STREAM_NAMES:
        table = tables.get(stream)
        con.register(f"{stream}_arrow", table if table is not None else schemas.load(stream).table.empty_table())
        con.execute(f"CREATE OR REPLACE TEMP TABLE {stream}_accepted AS SELECT * FROM {stream}_arrow")
        con.unregister(f"{stream}_arrow")


@dataclass
class FamilyOutput:
    """What one family's records yield (on one connection, or one shard)."""
    components: list[comp.Component] = field(default_factory=list)  # indicator components
    rule_parts: list[comp.Component] = field(default_factory=list)  # quality rule checked/failed
    failures: list[dict] = field(default_factory=list)  # quality_failures rows

    def __iadd__(self, other: FamilyOutput) -> FamilyOutput:
        self.components += other.components
        self.rule_parts += other.rule_parts
        self.failures += other.failures
        return self


def settlement_family(con: duckdb.DuckDBPyConnection, ctx: RunContext,
                      reversed_ids: str | None = None) -> FamilyOutput:
    """Settlements with their settlement lists (one setl_id's records together);
    ``reversed_ids``: prepare.prepare_settlements'."""
    out = FamilyOutput()
    prepare.prepare_settlements(con, ctx, reversed_ids)
    out.components += comp.settlement_components(con, ctx)
    out.rule_parts += quality.rule_components(con, "settlement", "setl", "_i08_region", "month")
    out.failures += quality.failure_rows(con, "settlement", "setl", "[setl_id]", "_i08_region",
                                         "_setl_date", fixmedins="fixmedins_code")
    prepare.prepare_lists(con, ctx)
    out.rule_parts += quality.rule_components(con, "settlement_list", "lists", "_region", "month")
    out.failures += quality.failure_rows(con, "settlement_list", "lists", "[event_id]", "_region",
                                         "_upload_date", fixmedins="fixmedins_code")
    return out


def contribution_family(con: duckdb.DuckDBPyConnection, ctx: RunContext) -> FamilyOutput:
    out = FamilyOutput()
    prepare.prepare_contributions(con, ctx)
    out.components += comp.contribution_components(con, ctx)
    out.rule_parts += quality.rule_components(con, "contribution", "contrib", "insu_admdvs", "month")
    out.failures += quality.failure_rows(con, "contribution", "contrib", "[event_id]", "insu_admdvs",
                                         "_clct_date")
    return out


def filing_family(con: duckdb.DuckDBPyConnection, ctx: RunContext) -> FamilyOutput:
    out = FamilyOutput()
    prepare.prepare_cases(con, ctx, list(comp.case_n_values(ctx).values()))
    out.components += comp.case_components(con, ctx)
    out.rule_parts += quality.rule_components(con, "filing", "cases", "insu_admdvs", "_submitted_month")
    out.failures += quality.failure_rows(con, "filing", "cases", "[case_id]", "insu_admdvs",
                                         "_submitted_date", matter="matter_code")
    return out


def enrolment_family(con: duckdb.DuckDBPyConnection, ctx: RunContext,
                     versions: str = "enrolment_versions") -> FamilyOutput:
    """Month-end snapshots and the as_of snapshot from ``versions``
    (prepare.enrolment_versions; one certno's versions together: I09 counts
    persons and E09 compares a person's enrolments)."""
    out = FamilyOutput()
    blocking = prepare.rule_ids("enrolment", "blocking")
    every = prepare.rule_ids("enrolment")
    for month in ctx.months:
        prepare.enrolment_snapshot(con, ctx, "enrol_snap", month_end(month), versions)
        out.components += comp.enrolment_components(con, "enrol_snap", month, blocking, every)
        out.rule_parts += quality.rule_components(con, "enrolment", "enrol_snap", "insu_admdvs",
                                                  f"DATE '{month.isoformat()}'", "psn_insu_stas = '1'")
    prepare.enrolment_snapshot(con, ctx, "enrol_now", None, versions)
    out.failures += quality.failure_rows(con, "enrolment", "enrol_now", "[psn_no, insutype]",
                                         "insu_admdvs", business_date_sql("event_time"))
    return out


def compute_run(con: duckdb.DuckDBPyConnection, ctx: RunContext) -> RunResult:
    """Every family on one connection (the sharded nightly runs the same
    family functions per key bucket: transforms/shard_steps.py).
    ``{stream}_accepted`` tables must be on ``con`` (``load_accepted`` or
    ``versions.resolve_deliveries``)."""
    prepare.register_regions(con, ctx)
    comp.reset_member_parts(con)
    out = settlement_family(con, ctx)
    out += contribution_family(con, ctx)
    out += filing_family(con, ctx)
    prepare.enrolment_versions(con, ctx)
    out += enrolment_family(con, ctx)
    out.components += comp.population_components(ctx)
    rules = [r for s in schemas.STREAM_NAMES for r in expectations.rules(s)]
    return RunResult(
        records_by_month={s: records_by_month(con, ctx, s) for s in schemas.STREAM_NAMES},
        indicator_values=indicator_rows(out.components, ctx),
        indicator_breakdown=breakdown_table(con, ctx),
        members_seen=members.seen_codes(con),
        quality_rule_results=rule_rows(out.rule_parts, ctx, rules),
        quality_failures=out.failures,
    )
