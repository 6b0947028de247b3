"""Who a target miss comes from: the institutions or matters contributing
most to the shortfall (issue "drill-down": ``indicator_breakdown``).

The hook is in place before the table: until a warehouse has
``indicator_breakdown`` (WAREHOUSE.md), ``top_contributors`` returns [] and
the alert simply names no one.

A member's contribution to the shortfall is how many of its records would
have to change for it to meet the target on its own: target · denominator −
numerator for a ``>=`` indicator (numerator − target · denominator for
``<=``), when positive.  Those add up to at least the region's own
shortfall, so the ranking points at where the fixing has to happen.
"""
from __future__ import annotations

from dataclasses import dataclass

from alerting.store import Store

TOP = 3
KEY = ("indicator_code", "region_code", "period_type", "period_start", "period_end", "pipeline")


@dataclass(frozen=True)
class Contributor:
    dimension: str  # institution | matter
    code: str
    name: str | None
    shortfall: float  # records to change for this member to meet the target
    numerator: float
    denominator: float


def top_contributors(store: Store, row: dict, n: int = TOP) -> list[Contributor]:
    """The ``n`` members with the largest shortfall for one indicator_values
    row (its key columns, target and direction); [] without a breakdown."""
    if row.get("target") is None or not store.columns("indicator_breakdown"):
        return []
    key = tuple(row[k] for k in KEY)
    fetched = store.memo.get("breakdown", {})
    members = fetched[key] if key in fetched else store.query(
        "SELECT dimension, member_code, numerator, denominator FROM indicator_breakdown"
        " WHERE indicator_code = ? AND region_code = ? AND period_type = ?"
        " AND period_start = ? AND period_end = ? AND pipeline = ?", list(key))
    target, higher_is_better = float(row["target"]), row["direction"] != "<="
    ranked = []
    for m in members:
        num, den = float(m["numerator"] or 0), float(m["denominator"] or 0)
        gap = target * den - num if higher_is_better else num - target * den
        if gap > 1e-9:
            ranked.append((gap, m["dimension"], m["member_code"], num, den))
    ranked.sort(key=lambda t: (-t[0], t[2]))
    names = _institution_names(store, [t[2] for t in ranked[:n] if t[1] == "institution"])
    names.update(_matter_names(store, [t[2] for t in ranked[:n] if t[1] == "matter"]))
    return [Contributor(dim, code, names.get(code), gap, num, den)
            for gap, dim, code, num, den in ranked[:n]]


def prefetch(store: Store, rows: list[dict]) -> None:
    """The breakdown of every row of ``rows`` in one query, kept in
    ``store.memo``: on BigQuery each query is a job of its own (a second or
    so), so top_contributors must not ask once per row. The query selects a
    superset (the rows' indicators, regions, period ends and pipelines); the
    exact keys are picked here."""
    rows = [r for r in rows if r.get("target") is not None]
    if not rows or not store.columns("indicator_breakdown"):
        return
    values = {k: sorted({r[k] for r in rows})
              for k in ("indicator_code", "region_code", "period_end", "pipeline")}
    where = " AND ".join(f"{k} IN ({', '.join('?' for _ in v)})" for k, v in values.items())
    fetched = store.memo.setdefault("breakdown", {})
    for r in rows:
        fetched.setdefault(tuple(r[k] for k in KEY), [])
    for m in store.query(
            f"SELECT {', '.join(KEY)}, dimension, member_code, numerator, denominator"
            f" FROM indicator_breakdown WHERE {where}", [v for vs in values.values() for v in vs]):
        members = fetched.get(tuple(m[k] for k in KEY))
        if members is not None:
            members.append(m)


def _names(store: Store, table: str, code: str) -> dict[str, str]:
    """code -> name of a whole dimension table, read once per evaluation."""
    memo = f"names:{table}"
    if memo not in store.memo:
        store.memo[memo] = ({r["code"]: r["name"] for r in store.query(
            f"SELECT {code} AS code, name FROM {table}")}
            if "name" in store.columns(table) else {})
    return store.memo[memo]


def _matter_names(store: Store, codes: list[str]) -> dict[str, str]:
    names = _names(store, "dim_matter", "matter_code") if codes else {}
    return {c: names[c] for c in codes if c in names}


def _institution_names(store: Store, codes: list[str]) -> dict[str, str]:
    names = _names(store, "dim_institution", "fixmedins_code") if codes else {}
    return {c: names[c] for c in codes if c in names}
