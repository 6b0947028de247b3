"""What a change of one business key does to the streamed figures, with the
nightly job's own SQL (no indicator logic of its own).

A business key (setl_id, case_id, a contribution's event_id) holds the
records that decide how it counts: its versions, and for a settlement the
reversals naming it and its settlement lists.  When a record arrives, the
key's records before (``old``) and after (``new``) are known; the key's
contribution is what the nightly SQL (``transforms.prepare`` then
``transforms.indicators.components`` / ``transforms.quality``) makes of
those records alone, and the change is ``new - old``: the retraction of the
old contribution and the new one.  Contributions are additive over keys and
days, so the sums of the changes per (indicator, region, day, member) are
the day's components, and per month the month's: the same figures as the
nightly, at a cost proportional to what arrived.

Many keys are computed in one DuckDB run (``snapshot_parts``): their records
are loaded together, and ``month`` is replaced by the business day so that
the component SQL groups by day.  Two keys may not share a record or an id
in one run (a reversal is a record of its own key and context of the
settlement it names; the settlement must not see the reversal key's other
versions), so a batch is split into rounds of keys sharing no id
(``rounds``), and each run keeps only the rows of its own keys.
"""
from __future__ import annotations

import datetime as dt
from collections import Counter
from decimal import Decimal
from typing import NamedTuple

import pyarrow as pa

from transforms import prepare, quality
from transforms.breakdown import member_components
from transforms.compute import connect, load_accepted
from transforms.context import RunContext
from transforms.decode import table_schema
from transforms.indicators import components as comp
from transforms.indicators.catalog import BREAKDOWN, INDICATORS

#: The groups of streamed figures.  "i13" is the settlement family's I13,
#: published once a day's 30 days for a settlement list have passed
#: (INDICATORS.md I13); "settlement_list" holds the lists' quality rules.
GROUPS = ("settlement", "i13", "contribution", "filing", "settlement_list")
#: The flow indicators the stream keeps, per group: the catalogue's stream_group.
GROUP_CODES: dict[str, tuple[str, ...]] = {
    g: tuple(i.code for i in INDICATORS if i.stream_group == g) for g in GROUPS}
_unknown = {i.code: i.stream_group for i in INDICATORS if i.stream_group not in (None, *GROUPS)}
if _unknown:
    raise ValueError(f"catalogue stream_group not one of {GROUPS}: {_unknown}")
STREAMED_CODES = tuple(c for codes in GROUP_CODES.values() for c in codes)

#: Whose quality rules each group counts, on the records of its day
#: (QUALITY_RULES.md "Results"; the enrolment rules check a month-end stock:
#: the nightly's alone).
GROUP_RULE_STREAM: dict[str, str] = {"settlement": "settlement", "contribution": "contribution",
                                      "filing": "filing", "settlement_list": "settlement_list"}
#: The groups of each family's indicators (a family = the streams of one business key).
FAMILY_GROUPS: dict[str, tuple[str, ...]] = {
    "settlement": ("settlement", "i13"), "contribution": ("contribution",), "filing": ("filing",)}

#: as_of of the streaming SQL: every version received counts (the stream has
#: no cut-off; lateness is the gate's business).
FOREVER = dt.datetime(9000, 1, 1, tzinfo=dt.UTC)

#: One summed figure: (group, day, kind, code or rule_id, attribution code, member).
#: kind "ind": parts num/den; kind "rule": checked/failed.  A figure whose
#: parts add up to 0 is left out: its records moved away (a group of records
#: whose sums are all 0 gets no member row from the stream).
Entry = tuple


def pane_tables(records: list[tuple[str, dict]]) -> dict[str, pa.Table]:
    """(stream, record) pairs -> one normalised table per stream, one copy per event_id."""
    by_stream: dict[str, dict[str, dict]] = {}
    for stream, rec in records:
        by_stream.setdefault(stream, {}).setdefault(rec["event_id"], rec)
    return {stream: pa.Table.from_pylist(list(recs.values()), schema=table_schema(stream))
            for stream, recs in by_stream.items()}


class RunParts(NamedTuple):
    """What one run over some keys' records yields."""
    entries: dict  # Entry -> parts
    failures: list  # quality_failures rows


def _add(into: dict, key, parts: dict, sign: int = 1) -> None:
    have = into.setdefault(key, {})
    for name, value in parts.items():
        have[name] = have.get(name, 0) + sign * value


def _entries(out: dict, group: str, kind: str, found: list, day: dt.date | None = None) -> None:
    for c in found:
        when = day or c.month
        if when is not None:
            _add(out, (group, when, kind, c.code, c.attr, c.member), c.parts)


def _indicators(con, found: list, codes: tuple[str, ...]) -> list:
    """``found`` restricted to ``codes``, the split ones per member (as the
    nightly's breakdown: they add up to the values)."""
    split = [c for c in codes if c in BREAKDOWN]
    return ([c for c in found if c.code in codes and c.code not in split]
            + member_components(con, split))


def _keep_owners(con, relation: str, column: str) -> None:
    con.execute(f"DELETE FROM {relation} r WHERE NOT EXISTS "
                f"(SELECT 1 FROM owners o WHERE o.id IS NOT DISTINCT FROM r.{column})")


def snapshot_parts(family: str, snapshots: list[tuple], ctx: RunContext) -> RunParts:
    """The contribution of ``snapshots`` — [(key, [(stream, record), ...])],
    keys sharing no id (``rounds``) — with the nightly SQL, per business day."""
    records = [item for _, recs in snapshots for item in recs]
    owners = sorted({key for key, _ in snapshots}, key=lambda k: (k is None, k or ""))
    con = connect()
    out: dict = {}
    failures: list = []
    try:
        load_accepted(con, pane_tables(records))
        prepare.register_regions(con, ctx)
        comp.reset_member_parts(con)
        con.execute("CREATE TEMP TABLE owners AS SELECT unnest($1::VARCHAR[]) AS id", [owners])
        if family == "settlement":
            prepare.prepare_settlements(con, ctx)
            # A reversal is context of the settlement it names: only its own key counts it.
            for relation in ("setl", "setl_biz"):
                _keep_owners(con, relation, "setl_id")
                con.execute(f"UPDATE {relation} SET month = _setl_date")
            found = comp.settlement_components(con, ctx)
            _entries(out, "settlement", "ind", _indicators(con, found, GROUP_CODES["settlement"]))
            _entries(out, "i13", "ind", _indicators(con, found, GROUP_CODES["i13"]))
            _entries(out, "settlement", "rule", quality.rule_components(
                con, "settlement", "setl", "_i08_region", "month"))
            failures += quality.failure_rows(con, "settlement", "setl", "[setl_id]", "_i08_region",
                                             "_setl_date", fixmedins="fixmedins_code")
            prepare.prepare_lists(con, ctx)
            _entries(out, "settlement_list", "rule", quality.rule_components(
                con, "settlement_list", "lists", "_region", "_upload_date"))
            failures += quality.failure_rows(con, "settlement_list", "lists", "[event_id]", "_region",
                                             "_upload_date", fixmedins="fixmedins_code")
        elif family == "contribution":
            prepare.prepare_contributions(con, ctx)
            con.execute("UPDATE contrib SET month = _clct_date")
            found = comp.contribution_components(con, ctx)
            _entries(out, "contribution", "ind", _indicators(con, found, GROUP_CODES["contribution"]))
            _entries(out, "contribution", "rule", quality.rule_components(
                con, "contribution", "contrib", "insu_admdvs", "month"))
            failures += quality.failure_rows(con, "contribution", "contrib", "[event_id]",
                                             "insu_admdvs", "_clct_date")
        elif family == "filing":
            prepare.prepare_cases(con, ctx, list(comp.case_n_values(ctx).values()))
            # Quality counts cases by the day they were submitted, the streamed
            # case indicators by the day they were completed.
            _entries(out, "filing", "rule", quality.rule_components(
                con, "filing", "cases", "insu_admdvs", "_submitted_date"))
            failures += quality.failure_rows(con, "filing", "cases", "[case_id]", "insu_admdvs",
                                             "_submitted_date", matter="matter_code")
            # The case SQL derives its month from _completed_date: one pass per
            # completion day among these keys (cases_biz is a view over cases).
            con.execute("CREATE TEMP TABLE cases_all AS SELECT * FROM cases")
            days = [d for (d,) in con.execute("SELECT DISTINCT _completed_date FROM cases_all "
                                              "WHERE _completed_date IS NOT NULL ORDER BY 1").fetchall()]
            for day in days:
                con.execute("DELETE FROM cases")
                con.execute("INSERT INTO cases SELECT * FROM cases_all WHERE _completed_date = ?", [day])
                comp.reset_member_parts(con)
                found = comp.case_components(con, ctx)
                _entries(out, "filing", "ind", _indicators(con, found, GROUP_CODES["filing"]), day=day)
        else:
            raise KeyError(f"unknown stream family {family!r}")
    finally:
        con.close()
    return RunParts(out, failures)


def key_ids(family: str, key, records: list[tuple[str, dict]]) -> set:
    """The ids a key's records join on: two keys sharing one go to separate runs."""
    ids = {key}
    if family == "settlement":
        ids |= {rec.get(c) for _, rec in records for c in ("setl_id", "init_setl_id")
                if rec.get(c) is not None}
    return ids


def rounds(family: str, snapshots: list[tuple]) -> list[list[tuple]]:
    """Snapshots -> groups of snapshots whose keys share no id (usually one)."""
    out: list[tuple[set, list]] = []
    for key, recs in snapshots:
        ids = key_ids(family, key, recs)
        for taken, members in out:
            if not taken & ids:
                taken |= ids
                members.append((key, recs))
                break
        else:
            out.append((set(ids), [(key, recs)]))
    return [members for _, members in out]


class Deltas(NamedTuple):
    """What a batch of changes does: summed entries (new - old); per stream
    the quality_failures rows of the changed keys' records now, the record
    keys whose rows they replace (those that failed before or fail now) and
    the change in the number of rows."""
    entries: dict  # Entry -> parts; parts all zero left out
    failures: dict  # stream -> rows
    record_keys: dict  # stream -> record_key values replaced
    failure_counts: Counter  # stream -> new rows - old rows


def change_deltas(family: str, changes: list[tuple], ctx: RunContext) -> Deltas:
    """``changes``: [(key, old records, new records)] of one family, old
    possibly empty; several changes of one key fold into one (records only
    accumulate, so the fewest are the oldest)."""
    olds: dict = {}
    news: dict = {}
    for key, old, new in changes:
        if key not in olds or len(old) < len(olds[key]):
            olds[key] = old
        if key not in news or len(new) > len(news[key]):
            news[key] = new
    entries: dict = {}
    failures: dict = {}
    record_keys: dict = {}
    counts: Counter = Counter()
    for sign, snapshots in ((-1, olds), (1, news)):
        present = [(k, recs) for k, recs in snapshots.items() if recs]
        for batch in rounds(family, present) if present else []:
            parts = snapshot_parts(family, batch, ctx)
            for entry, p in parts.entries.items():
                _add(entries, entry, p, sign)
            for row in parts.failures:
                counts[row["stream"]] += sign
                # The rows of a record that failed before or fails now are replaced.
                record_keys.setdefault(row["stream"], set()).add(row["record_key"])
                if sign > 0:
                    failures.setdefault(row["stream"], []).append(row)
    kept = {e: p for e, p in entries.items() if any(v != 0 for v in p.values())}
    return Deltas(kept, failures, {s: sorted(k) for s, k in record_keys.items()}, counts)


def parts_components(entries: dict, month: dt.date) -> tuple[list, list]:
    """Summed entries {(kind, code, attr, member): parts} of one period ->
    (indicator components, rule components) dated ``month`` for the roll-up;
    entries whose parts add up to 0 are left out (Entry)."""
    found, rules = [], []
    for (kind, code, attr, member), parts in entries.items():
        if not any(parts.values()):
            continue
        if kind == "ind":
            found.append(comp.Component(code, attr, month, {k: Decimal(v) for k, v in parts.items()},
                                        member))
        else:
            rules.append(comp.Component(code, attr, month, dict(parts), member))
    return found, rules
