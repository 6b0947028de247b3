"""Issue 18, "From a missed target to the institutions, matters and records
behind it": asked "which pooling regions missed the settlement-list upload
rate (I13) in 2023-05, and which institutions caused it?", the warehouse
could not answer — "no table has an institution column; the best single
query reaches county level".

On a generated data set with every defect kind (tests/breakdown_data.py),
through the real nightly pipeline into a real DuckDB warehouse:
indicator_breakdown's members add up exactly to indicator_values, every
member resolves to a name, quality failures carry the institution / matter,
and the shortfall is the fewest records that bring the region to its target.
"""
from __future__ import annotations

import shutil
from collections import defaultdict
from decimal import ROUND_CEILING, Decimal

from pipelines import nightly
from tests.breakdown_data import breakdown_warehouse  # noqa: F401
from transforms.indicators.catalog import BREAKDOWN, MONEY
from warehouse.duckdb_store import connect
from warehouse.tables import bigquery_ddl

KEY = "indicator_code, region_code, period_type, period_start, period_end, pipeline"


def _sums_mismatches(con) -> tuple[list, int]:
    """Rows of indicator_values (breakdown indicators) whose members do not
    add up to them, per dimension; and the number of rows checked."""
    codes = ", ".join(f"'{c}'" for c in BREAKDOWN)
    rows = con.execute(f"""
        WITH s AS (SELECT {KEY}, dimension, sum(numerator) AS n, sum(denominator) AS d, count(*) AS k
                   FROM indicator_breakdown GROUP BY ALL)
        SELECT v.indicator_code, v.region_code, v.period_type, v.period_end, v.pipeline,
               v.numerator, v.denominator, s.dimension, s.n, s.d
        FROM indicator_values v FULL JOIN s USING ({KEY})
        WHERE coalesce(v.indicator_code, s.indicator_code) IN ({codes})""").fetchall()
    bad = []
    for code, region, ptype, end, pipeline, num, den, dim, n, d in rows:
        if num is None:  # members without an indicator_values row
            bad.append(("orphan members", code, region, ptype, end, pipeline))
            continue
        if dim is not None and dim != BREAKDOWN[code]:
            bad.append(("dimension", code, dim))
        # a region with no member at all is 0/0 (or, for money, 0 over 0)
        if (n or 0) != (num or 0) or (d or 0) != (den or 0):
            bad.append((code, region, ptype, end, pipeline, (num, den), (n, d)))
    return bad, len(rows)


def test_members_add_up_exactly_to_every_indicator_values_row(breakdown_warehouse):  # noqa: F811
    _, wh = breakdown_warehouse
    con = connect(str(wh), read_only=True)
    try:
        bad, checked = _sums_mismatches(con)
        assert checked > 10_000
        assert not bad, f"{len(bad)} rows differ, e.g. {bad[:5]}"
        # Every split indicator has members at every level, MONTH and YTD, and
        # a member for every non-empty region row.
        have = set(con.execute("SELECT DISTINCT indicator_code, region_level, period_type "
                           "FROM indicator_breakdown").fetchall())
        for code in BREAKDOWN:
            for level in ("county", "pooling", "province"):
                for ptype in ("MONTH", "YTD"):
                    assert (code, level, ptype) in have, (code, level, ptype)
        empty = con.execute(f"""
            SELECT count(*) FROM indicator_values v
            WHERE v.indicator_code IN ({", ".join(f"'{c}'" for c in BREAKDOWN)}) AND v.denominator > 0
              AND NOT EXISTS (SELECT 1 FROM indicator_breakdown b WHERE
                  {" AND ".join(f"b.{k.strip()} = v.{k.strip()}" for k in KEY.split(","))})""").fetchone()[0]
        assert empty == 0
        # One row per key: the documented key is unique.
        dup = con.execute(f"SELECT count(*) FROM (SELECT {KEY}, dimension, member_code FROM indicator_breakdown "
                      "GROUP BY ALL HAVING count(*) > 1)").fetchone()[0]
        assert dup == 0
    finally:
        con.close()


def test_every_member_resolves_to_a_name(breakdown_warehouse):  # noqa: F811
    """dim_institution has a row for every code seen in the data, the
    generator's codes missing from institutions.csv included."""
    _, wh = breakdown_warehouse
    con = connect(str(wh), read_only=True)
    try:
        unresolved = con.execute("""
            SELECT DISTINCT b.dimension, b.member_code FROM indicator_breakdown b
            LEFT JOIN dim_institution i ON b.dimension = 'institution' AND i.fixmedins_code = b.member_code
            LEFT JOIN dim_matter m ON b.dimension = 'matter' AND m.matter_code = b.member_code
            WHERE coalesce(i.name, m.name) IS NULL""").fetchall()
        assert unresolved == []
        failing = con.execute("""SELECT DISTINCT f.fixmedins_code FROM quality_failures f
                             LEFT JOIN dim_institution i USING (fixmedins_code)
                             WHERE f.fixmedins_code IS NOT NULL AND i.name IS NULL""").fetchall()
        assert failing == []
        outside = con.execute("SELECT fixmedins_code, name, type FROM dim_institution "
                          "WHERE NOT in_reference").fetchall()
        assert outside, "the data set has codes missing from institutions.csv"
        assert all(name.endswith("(not in institutions.csv)") or code == "(none)"
                   for code, name, _ in outside)
        # The reference rows carry their level, type, region and pooling region.
        row = con.execute("SELECT name, level, type, region_code, pooling_code FROM dim_institution "
                      "WHERE fixmedins_code = 'H64010400001'").fetchone()
        assert row == ("宁夏医科大学总医院", "三级甲等", "H", "640104", "640100")
        # Institution members of I08 in the province are mostly reference institutions.
        share = con.execute("""SELECT avg(CAST(i.in_reference AS INT)) FROM indicator_breakdown b
                           JOIN dim_institution i ON i.fixmedins_code = b.member_code
                           WHERE b.indicator_code = 'I08' AND b.region_level = 'province'""").fetchone()[0]
        assert share > 0.8
    finally:
        con.close()


def test_quality_failures_lead_to_the_institutions_behind_an_i08_miss(breakdown_warehouse):  # noqa: F811
    """I08's failing records of an institution (denominator - numerator) are
    exactly its distinct failing settlements in quality_failures, and each
    names its rules; filing failures carry the matter."""
    _, wh = breakdown_warehouse
    con = connect(str(wh), read_only=True)
    try:
        from_breakdown = dict(con.execute("""
            SELECT member_code, CAST(denominator - numerator AS INT) FROM indicator_breakdown
            WHERE indicator_code = 'I08' AND region_level = 'province' AND period_type = 'YTD'
              AND period_end = DATE '2023-12-31' AND numerator < denominator""").fetchall())
        from_failures = dict(con.execute("""
            SELECT coalesce(fixmedins_code, '(none)'), count(DISTINCT record_key) FROM quality_failures
            WHERE stream = 'settlement' AND starts_with(region_code, '64')
              AND business_date BETWEEN DATE '2023-01-01' AND DATE '2023-12-31'
            GROUP BY 1""").fetchall())
        assert from_breakdown and from_breakdown == from_failures
        rules = con.execute("""SELECT count(DISTINCT rule_id) FROM quality_failures
                           WHERE stream = 'settlement' AND fixmedins_code IS NOT NULL""").fetchone()[0]
        assert rules >= 2
        assert con.execute("""SELECT count(*) FILTER (matter_code IS NULL), count(*) FROM quality_failures
                          WHERE stream = 'filing'""").fetchone()[0] == 0
        assert con.execute("""SELECT count(*) FROM quality_failures WHERE stream IN ('enrolment', 'contribution')
                          AND (fixmedins_code IS NOT NULL OR matter_code IS NOT NULL)""").fetchone()[0] == 0
    finally:
        con.close()


def _ceil(x: Decimal, money: bool) -> Decimal:
    return x.quantize(Decimal("0.01") if money else Decimal(1), rounding=ROUND_CEILING)


def test_shortfall_is_the_fewest_records_that_meet_the_target(breakdown_warehouse):  # noqa: F811
    _, wh = breakdown_warehouse
    con = connect(str(wh), read_only=True)
    try:
        rows = con.execute("""
            SELECT indicator_code, region_code, period_type, period_end, pipeline, dimension,
                   region_numerator, region_denominator, target, region_shortfall, member_code,
                   numerator, denominator, shortfall, shortfall_share, shortfall_rank, member_name
            FROM v_indicator_shortfall""").fetchall()
        assert len({r[:6] for r in rows}) > 100, "many missed (indicator, region, period)"
        shares: dict = defaultdict(float)
        ranked: dict = defaultdict(list)
        for (code, _r, _p, _e, _pl, _d, num, den, target, need, _member, m_num, m_den, m_short,
             share, rank, name) in rows:
            money = code in MONEY
            t = Decimal(str(target))
            assert num < t * den, "listed only when the region misses"
            step = Decimal("0.01") if money else Decimal(1)
            assert num + need >= t * den > num + need - step, (code, num, den, target, need)
            assert need == _ceil(t * den - num, money)
            assert m_short == _ceil(t * m_den - m_num, money) and m_short > 0
            assert name
            shares[(code, _r, _p, _e, _pl, _d)] += share
            ranked[(code, _r, _p, _e, _pl, _d)].append((rank, m_short))
        assert all(abs(s - 1) < 1e-9 for s in shares.values())
        for members in ranked.values():
            members.sort()
            assert [r for r, _ in members] == list(range(1, len(members) + 1))
            assert [s for _, s in members] == sorted((s for _, s in members), reverse=True)
        # Exactly the missed indicator_values rows of split indicators are listed.
        codes = ", ".join(f"'{c}'" for c in BREAKDOWN)
        missed = con.execute(f"""SELECT count(*) FROM indicator_values WHERE meets_target = FALSE
                             AND indicator_code IN ({codes})""").fetchone()[0]
        assert missed == len({r[:5] for r in rows})
    finally:
        con.close()


def test_a_rerun_leaves_no_stale_member(breakdown_warehouse, tmp_path):  # noqa: F811
    """A re-run with another as_of replaces every member row of its periods:
    a member that dropped out (settlements after the new as_of) must not keep
    its old row, or the sums would break."""
    data, wh = breakdown_warehouse
    copy = tmp_path / "w.duckdb"
    shutil.copy(wh, copy)
    con = connect(str(copy), read_only=True)
    before = con.execute("SELECT count(*) FROM indicator_breakdown WHERE period_end = DATE '2023-06-30' "
                     "AND indicator_code = 'I13'").fetchone()[0]
    con.close()
    nightly.run(["--input", str(data), "--warehouse", f"duckdb:///{copy}",
                 "--as-of", "2023-06-20T00:00:00+08:00", "--months", "2023-05..2023-06",
                 "--no_alerts"])
    con = connect(str(copy), read_only=True)
    try:
        bad, _ = _sums_mismatches(con)
        assert not bad, f"{len(bad)} rows differ after the re-run, e.g. {bad[:5]}"
        after = con.execute("SELECT count(*) FROM indicator_breakdown WHERE period_end = DATE '2023-06-30' "
                        "AND indicator_code = 'I13'").fetchone()[0]
        assert after < before, "June's members at an earlier as_of are fewer"
        runs = {r[0] for r in con.execute("SELECT DISTINCT run_id FROM indicator_breakdown "
                                      "WHERE period_end = DATE '2023-06-30'").fetchall()}
        assert len(runs) == 1
    finally:
        con.close()


def test_bigquery_ddl_partitions_and_clusters_like_indicator_values():
    ddl = bigquery_ddl("indicator_breakdown", "p.d")
    assert "PARTITION BY DATE_TRUNC(period_start, MONTH)" in ddl
    assert "CLUSTER BY indicator_code, region_code, member_code" in ddl
    assert "member_code STRING NOT NULL" in ddl and "numerator BIGNUMERIC(38, 6)" in ddl


def test_i13_in_may_by_pooling_region_and_institution(breakdown_warehouse):  # noqa: F811
    """The issue's own question, in one query, with names."""
    _, wh = breakdown_warehouse
    con = connect(str(wh), read_only=True)
    try:
        rows = con.execute("""
            SELECT region_name, member_code, member_name, numerator, denominator, shortfall
            FROM v_indicator_shortfall
            WHERE indicator_code = 'I13' AND region_level = 'pooling' AND period_type = 'MONTH'
              AND period_start = DATE '2023-05-01' AND pipeline = 'nightly'
            ORDER BY region_code, shortfall_rank""").fetchall()
        assert rows and all(r[0] and r[2] for r in rows)
        assert all(r[1].startswith("H") or r[1] == "(none)" for r in rows)
    finally:
        con.close()


def test_a_target_miss_alert_names_three_contributors_and_drills_down(breakdown_warehouse, tmp_path):  # noqa: F811
    """Issue 18: "a target-miss alert's drill-down SQL selects the same
    indicator row again" — now it lists the members behind the miss."""
    from alerting import evaluate

    _, wh = breakdown_warehouse
    copy = tmp_path / "w.duckdb"
    shutil.copy(wh, copy)
    checks = ("pass_rate", "target_miss", "anomaly", "silence", "dead_letters")
    config = {k: {"enabled": k == "target_miss"} for k in checks}
    config["target_miss"].update(indicators=["I13", "I24"], levels=["pooling"])
    alerts = [a for a in evaluate(str(copy), None, config) if a.kind == "target_miss"]
    assert {a.subject for a in alerts} >= {"I13"}
    con = connect(str(copy), read_only=True)
    try:
        for a in alerts:
            named = a.observation.context["contributors"]
            assert 1 <= len(named) <= 3 and all(m.name for m in named), a.text_en
            assert "Largest contributors to the shortfall" in a.text_en
            assert "v_indicator_shortfall" in a.sql
            drilled = con.execute(a.sql).fetchall()
            codes = [r[2] for r in drilled]
            assert {m.code for m in named} <= set(codes), (a.sql, codes)
            assert [r[0] for r in drilled] == list(range(1, len(drilled) + 1))
            if len(drilled) >= 3:
                assert len(named) == 3
    finally:
        con.close()
