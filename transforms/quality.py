"""Rule verdicts -> quality_rule_results components and quality_failures rows
(QUALITY_RULES.md "Results").  The verdict columns come from the compiled
suites (``expectations.verdict_sql``); nothing here restates a rule."""
from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal

import duckdb

import expectations
from transforms.indicators.components import Component
from transforms.privacy import masked, pseudonymise


def rule_components(con: duckdb.DuckDBPyConnection, stream: str, relation: str, region: str,
                    month: str, where: str = "TRUE") -> list[Component]:
    """checked/failed per rule, attribution code and month over ``relation``."""
    rules = expectations.rules(stream)
    if not rules:
        return []
    cols = ", ".join(f'count(*) FILTER ("{r.rule_id}") AS "{r.rule_id}"' for r in rules)
    out = []
    for row in con.sql(f"""SELECT {region} AS attr, {month} AS month, count(*) AS checked, {cols}
                           FROM {relation} WHERE {where} GROUP BY ALL""").fetchall():
        attr, m, checked, *failed = row
        for rule, n in zip(rules, failed):
            out.append(Component(rule.rule_id, attr, m, {"checked": checked, "failed": n}))
    return out


def _jsonable(v):
    if isinstance(v, Decimal):
        return str(v)
    if isinstance(v, dt.datetime | dt.date):
        return v.isoformat()
    return v


def failure_rows(con: duckdb.DuckDBPyConnection, stream: str, relation: str, key_sql: str,
                 region: str, business_date: str, fixmedins: str = "NULL",
                 matter: str = "NULL") -> list[dict]:
    """One row per (record, failed rule), personal fields masked.  ``key_sql``
    may contain psn_no: the key's parts are pseudonymised here.  ``fixmedins``
    / ``matter``: the record's institution / matter column, so a failure
    leads to the institution or matter behind it (indicator_breakdown)."""
    out = []
    for rule in expectations.rules(stream):
        cols = [c for c in rule.columns if c != "psn_name"]
        select = ", ".join(f'"{c}"' for c in cols) or "NULL AS _none"
        cur = con.sql(f"""SELECT {key_sql} AS _key, {region} AS _region, {business_date} AS _date,
                                 {fixmedins} AS _fixmedins, {matter} AS _matter, {select}
                          FROM {relation} WHERE "{rule.rule_id}" ORDER BY 1""")
        names = cur.columns
        for row in cur.fetchall():
            values = dict(zip(names[5:], row[5:], strict=True)) if cols else {}
            key = row[0]
            out.append({
                "stream": stream,
                "record_key": "|".join(pseudonymise(p) if i == 0 and stream == "enrolment" else p
                                       for i, p in enumerate(key)),
                "rule_id": rule.rule_id,
                "region_code": row[1],
                "business_date": row[2],
                "fixmedins_code": row[3],
                "matter_code": row[4],
                "details": json.dumps({k: _jsonable(v) for k, v in masked(values).items()},
                                      ensure_ascii=False, sort_keys=True),
            })
    return out
