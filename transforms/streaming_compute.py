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

import pyarrow as pa

from transforms import prepare
from transforms.compute import connect, load_accepted
from transforms.context import RunContext
from transforms.decode import table_schema
from transforms.indicators import components as comp

#: The flow indicators the stream keeps, per group of day panes.  "i13"
#: panes are the settlement family again, fired once the day's 30 days for
#: a settlement list have passed (INDICATORS.md I13).
GROUP_CODES: dict[str, tuple[str, ...]] = {
    "settlement": ("I08", "I14", "I17", "I22", "R01", "R02", "R03", "R04", "R05"),
    "i13": ("I13",),
    "contribution": ("I10",),
    "filing": ("I25", "I26", "S02"),
}
STREAMED_CODES = tuple(c for codes in GROUP_CODES.values() for c in codes)

#: Streams whose records each group's SQL reads.
GROUP_STREAMS: dict[str, tuple[str, ...]] = {
    "settlement": ("settlement", "settlement_list"),
    "i13": ("settlement", "settlement_list"),
    "contribution": ("contribution",),
    "filing": ("filing",),
}

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


def day_components(group: str, day: dt.date, records: list[tuple[str, dict]],
                   ctx: RunContext) -> list[comp.Component]:
    """Components of ``group``'s indicators for business day ``day``."""
    ctx = stream_context(ctx, day)
    con = connect()
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
        elif group == "contribution":
            prepare.prepare_contributions(con, ctx)
            con.execute(f"DELETE FROM contrib WHERE _clct_date IS DISTINCT FROM {on_day}")
            found = comp.contribution_components(con, ctx)
        elif group == "filing":
            prepare.prepare_cases(con, ctx, list(comp.case_n_values(ctx).values()))
            # cases_biz is a view over cases: the streamed case indicators count
            # cases by the business date they were completed.
            con.execute(f"DELETE FROM cases WHERE _completed_date IS DISTINCT FROM {on_day}")
            found = comp.case_components(con, ctx)
        else:
            raise KeyError(f"unknown pane group {group!r}")
    finally:
        con.close()
    codes = GROUP_CODES[group]
    return [c for c in found if c.code in codes]
