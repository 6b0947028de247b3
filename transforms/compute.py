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


def records_by_month(con: duckdb.DuckDBPyConnection, ctx: RunContext) -> dict[str, dict[str, int]]:
    first, last = ctx.months[0], month_end(ctx.months[-1])
    out = {}
    for stream, column in BUSINESS_TIME.items():
        day = business_date_sql(column)
        rows = con.execute(f"SELECT strftime({day}, '%Y-%m'), count(*) FROM {stream}_accepted "
                           f"WHERE {day} BETWEEN ? AND ? GROUP BY 1", [first, last]).fetchall()
        out[stream] = dict(sorted(rows))
    return out


def connect(path: str = ":memory:", memory_limit: str | None = None) -> duckdb.DuckDBPyConnection:
    """A DuckDB that never downloads an extension and never uses the
    machine's time zone; a file-backed one spills next to its file."""
    config = dict(NO_DOWNLOADS)
    if memory_limit:
        config["memory_limit"] = memory_limit
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


def compute_run(con: duckdb.DuckDBPyConnection, ctx: RunContext) -> RunResult:
    """``{stream}_accepted`` tables must be on ``con`` (``load_accepted`` or
    ``versions.resolve_deliveries``)."""
    components: list[comp.Component] = []
    rule_parts: list[comp.Component] = []
    failures: list[dict] = []
    prepare.register_regions(con, ctx)
    comp.reset_member_parts(con)

    prepare.prepare_settlements(con, ctx)
    components += comp.settlement_components(con, ctx)
    rule_parts += quality.rule_components(con, "settlement", "setl", "_i08_region", "month")
    failures += quality.failure_rows(con, "settlement", "setl", "[setl_id]", "_i08_region", "_setl_date",
                                     fixmedins="fixmedins_code")

    prepare.prepare_contributions(con, ctx)
    components += comp.contribution_components(con, ctx)
    rule_parts += quality.rule_components(con, "contribution", "contrib", "insu_admdvs", "month")
    failures += quality.failure_rows(con, "contribution", "contrib", "[event_id]", "insu_admdvs",
                                     "_clct_date")
    prepare.prepare_lists(con, ctx)
    rule_parts += quality.rule_components(con, "settlement_list", "lists", "_region", "month")
    failures += quality.failure_rows(con, "settlement_list", "lists", "[event_id]", "_region",
                                     "_upload_date", fixmedins="fixmedins_code")

    n_values = comp.case_n_values(ctx)
    prepare.prepare_cases(con, ctx, list(n_values.values()))
    components += comp.case_components(con, ctx)
    rule_parts += quality.rule_components(con, "filing", "cases", "insu_admdvs", "_submitted_month")
    failures += quality.failure_rows(con, "filing", "cases", "[case_id]", "insu_admdvs", "_submitted_date",
                                     matter="matter_code")

    blocking = prepare.rule_ids("enrolment", "blocking")
    every = prepare.rule_ids("enrolment")
    prepare.enrolment_record_verdicts(con, ctx)
    for month in ctx.months:
        prepare.enrolment_snapshot(con, ctx, "enrol_snap", month_end(month))
        components += comp.enrolment_components(con, "enrol_snap", month, blocking, every)
        rule_parts += quality.rule_components(con, "enrolment", "enrol_snap", "insu_admdvs",
                                              f"DATE '{month.isoformat()}'", "psn_insu_stas = '1'")
    components += comp.population_components(ctx)
    prepare.enrolment_snapshot(con, ctx, "enrol_now", None)
    failures += quality.failure_rows(con, "enrolment", "enrol_now", "[psn_no, insutype]", "insu_admdvs",
                                     business_date_sql("event_time"))

    rules = [r for s in schemas.STREAM_NAMES for r in expectations.rules(s)]
    by_month = records_by_month(con, ctx)
    return RunResult(
        records_by_month=by_month,
        indicator_values=indicator_rows(components, ctx),
        indicator_breakdown=breakdown_table(con, ctx),
        members_seen=members.seen_codes(con),
        quality_rule_results=rule_rows(rule_parts, ctx, rules),
        quality_failures=failures,
    )
