"""One business day's indicator components from the records of a pane, with
the nightly job's own SQL (no indicator logic of its own).

A day pane of the streaming pipeline holds every record that can affect
that day: the versions of each business key with a version on that day,
the reversals naming those settlements and their settlement lists — but
also records that count on *other* days (a correction that moved a
settlement to another day, the reversal itself).  So the pane goes through
exactly what the nightly job runs (``transforms.prepare``: latest version
per business key, reversals, rule verdicts, derived columns), then the
prepared relations are cut down to the rows whose business date is the
pane's day, and the nightly component SQL (``transforms.indicators.
components``) runs over them: its "month" groups are then that day's
components.  Components are additive over days, so the streaming MONTH
value is the sum of its days and equals the nightly one.
"""
from __future__ import annotations

import datetime as dt
from typing import NamedTuple

import pyarrow as pa

from transforms import prepare, quality
from transforms.breakdown import member_components
from transforms.compute import connect, load_accepted
from transforms.context import RunContext
from transforms.decode import table_schema
from transforms.indicators import components as comp
from transforms.indicators.catalog import BREAKDOWN, INDICATORS

#: The groups of day panes, each with its own path in ``day_components``.
#: "i13" panes are the settlement family again, fired once the day's 30 days
#: for a settlement list have passed (INDICATORS.md I13); "settlement_list"
#: panes hold the lists uploaded that day, for their quality rules only.
GROUPS = ("settlement", "i13", "contribution", "filing", "settlement_list")
#: The flow indicators the stream keeps, per group: the catalogue's stream_group.
GROUP_CODES: dict[str, tuple[str, ...]] = {
    g: tuple(i.code for i in INDICATORS if i.stream_group == g) for g in GROUPS}
_unknown = {i.code: i.stream_group for i in INDICATORS if i.stream_group not in (None, *GROUPS)}
if _unknown:
    raise ValueError(f"catalogue stream_group not one of {GROUPS}: {_unknown}")
STREAMED_CODES = tuple(c for codes in GROUP_CODES.values() for c in codes)

#: Streams whose records each group's SQL reads.
GROUP_STREAMS: dict[str, tuple[str, ...]] = {
    "settlement": ("settlement", "settlement_list"),
    "i13": ("settlement", "settlement_list"),
    "contribution": ("contribution",),
    "filing": ("filing",),
    "settlement_list": ("settlement_list",),
}
#: Whose quality rules each group's pane checks, on the records of its day
#: (QUALITY_RULES.md "Results"; the enrolment rules check a month-end stock:
#: the nightly's alone).
GROUP_RULE_STREAM: dict[str, str] = {"settlement": "settlement", "contribution": "contribution",
                                      "filing": "filing", "settlement_list": "settlement_list"}

#: as_of of the streaming SQL: every version received counts (the stream has
#: no cut-off; lateness is the windows' business).
FOREVER = dt.datetime(9000, 1, 1, tzinfo=dt.UTC)


def stream_context(ctx: RunContext, day: dt.date) -> RunContext:
    """The nightly context for one day's SQL: no as_of cut-off, the day's month."""
    return RunContext(ref=ctx.ref, config=ctx.config, as_of=FOREVER,
                      months=[day.replace(day=1)], extra=ctx.extra)


def pane_tables(records: list[tuple[str, dict]]) -> dict[str, pa.Table]:
    """(stream, record) pairs -> one normalised table per stream, one copy per
    event_id (a record routed to a day twice, e.g. a reversal that is both a
    version of its own key and the context of the settlement it names)."""
    by_stream: dict[str, dict[str, dict]] = {}
    for stream, rec in records:
        by_stream.setdefault(stream, {}).setdefault(rec["event_id"], rec)
    return {stream: pa.Table.from_pylist(list(recs.values()), schema=table_schema(stream))
            for stream, recs in by_stream.items()}


class DayParts(NamedTuple):
    """What one pane computes for its day."""
    components: list  # indicator components of the group's codes
    rules: list  # quality rule components (checked / failed per rule, region, month)
    failures: list  # quality_failures rows of the day's records (transforms.quality)


def day_components(group: str, day: dt.date, records: list[tuple[str, dict]],
                   ctx: RunContext) -> DayParts:
    """Components of ``group``'s indicators and quality rules for business day
    ``day``, and the day's quality failures, with the nightly's SQL: the same
    relations, region and date columns as ``transforms.compute.compute_run``."""
    ctx = stream_context(ctx, day)
    con = connect()
    found, rules, failures = [], [], []
    quality_of = GROUP_RULE_STREAM.get(group)
    try:
        load_accepted(con, pane_tables(records))
        prepare.register_regions(con, ctx)
        on_day = f"DATE '{day.isoformat()}'"
        if group in ("settlement", "i13"):
            prepare.prepare_settlements(con, ctx)
            # setl_biz was cut from setl after the reversals were applied: cut both.
            con.execute(f"DELETE FROM setl WHERE _setl_date IS DISTINCT FROM {on_day}")
            con.execute(f"DELETE FROM setl_biz WHERE _setl_date IS DISTINCT FROM {on_day}")
            found = comp.settlement_components(con, ctx)
            if quality_of:
                rules = quality.rule_components(con, "settlement", "setl", "_i08_region", "month")
                failures = quality.failure_rows(con, "settlement", "setl", "[setl_id]", "_i08_region",
                                                "_setl_date", fixmedins="fixmedins_code")
        elif group == "contribution":
            prepare.prepare_contributions(con, ctx)
            con.execute(f"DELETE FROM contrib WHERE _clct_date IS DISTINCT FROM {on_day}")
            found = comp.contribution_components(con, ctx)
            rules = quality.rule_components(con, "contribution", "contrib", "insu_admdvs", "month")
            failures = quality.failure_rows(con, "contribution", "contrib", "[event_id]", "insu_admdvs",
                                            "_clct_date")
        elif group == "filing":
            prepare.prepare_cases(con, ctx, list(comp.case_n_values(ctx).values()))
            # Quality counts cases by the day they were submitted, the streamed
            # case indicators by the day they were completed.
            con.execute(f"CREATE TEMP TABLE cases_submitted AS SELECT * FROM cases "
                        f"WHERE _submitted_date = {on_day}")
            rules = quality.rule_components(con, "filing", "cases_submitted", "insu_admdvs",
                                            "_submitted_month")
            failures = quality.failure_rows(con, "filing", "cases_submitted", "[case_id]", "insu_admdvs",
                                            "_submitted_date", matter="matter_code")
            # cases_biz is a view over cases.
            con.execute(f"DELETE FROM cases WHERE _completed_date IS DISTINCT FROM {on_day}")
            found = comp.case_components(con, ctx)
        elif group == "settlement_list":
            prepare.prepare_lists(con, ctx)
            con.execute(f"DELETE FROM lists WHERE _upload_date IS DISTINCT FROM {on_day}")
            rules = quality.rule_components(con, "settlement_list", "lists", "_region", "month")
            failures = quality.failure_rows(con, "settlement_list", "lists", "[event_id]", "_region",
                                            "_upload_date", fixmedins="fixmedins_code")
        else:
            raise KeyError(f"unknown pane group {group!r}")
        # The split indicators' components per member: the day's and month's
        # indicator_breakdown come from them, and they add up to the values.
        split = [c for c in GROUP_CODES[group] if c in BREAKDOWN]
        found = [c for c in found if c.code not in split] + member_components(con, split)
    finally:
        con.close()
    codes = GROUP_CODES[group]
    return DayParts([c for c in found if c.code in codes], rules, failures)
