"""Issue 18: "The report's drill-down covers only I07/I08 quality rules
(three raw JSON examples with hashed keys)" — now under each missed
indicator it names the institutions or matters with the largest shortfall,
their own rate, numerator, denominator and trend, and counts the failing
records per institution and rule.  A real report rendered from the nightly
warehouse of a generated data set (tests/breakdown_data.py)."""
from __future__ import annotations

import re
from decimal import Decimal

from report import data
from report.data import Period
from report.render import render
from tests.breakdown_data import breakdown_warehouse  # noqa: F401
from warehouse.duckdb_store import connect


def test_report_names_the_members_behind_each_miss(breakdown_warehouse):  # noqa: F811
    _, wh = breakdown_warehouse
    con = connect(str(wh), read_only=True)
    try:
        region, = con.execute("""SELECT region_code FROM v_indicator_shortfall
            WHERE region_level = 'pooling' AND period_end = DATE '2023-05-31' AND pipeline = 'nightly'
            GROUP BY 1 ORDER BY count(*) DESC, 1 LIMIT 1""").fetchone()
        top = con.execute("""SELECT indicator_code, period_type, member_code, member_name, numerator, shortfall
            FROM v_indicator_shortfall WHERE region_code = ? AND period_end = DATE '2023-05-31'
            AND pipeline = 'nightly' AND shortfall_rank = 1""", [region]).fetchall()
        failing = con.execute("""SELECT fixmedins_code, count(DISTINCT record_key) FROM quality_failures
            WHERE fixmedins_code IS NOT NULL AND business_date BETWEEN DATE '2023-01-01' AND DATE '2023-05-31'
              AND (region_code = ? OR region_code IN (SELECT region_code FROM dim_region WHERE pooling_code = ?))
            GROUP BY 1""", [region, region]).fetchall()
    finally:
        con.close()
    with data.reading(f"duckdb:///{wh}") as reader:
        html = render(reader, region, Period(2023, 5))
    assert top, "the region missed something in May"
    for code, ptype, member, name, num, short in top:
        block = re.search(rf'<div class="drilldown" data-indicator="{code}" data-period-type="{ptype}">'
                          r'(.*?)</div>', html, re.S)
        assert block, (code, ptype)
        row = re.search(rf'<tr data-member="{re.escape(member)}".*?</tr>', block.group(1), re.S).group(0)
        assert name in row
        assert f'data-field="numerator" data-raw="{num}"' in row
        assert Decimal(re.search(r'data-field="shortfall" data-raw="([^"]*)"', row).group(1)) == short
        assert re.search(r'class="spark" title="1月', row)
    assert failing, "some failing records carry an institution"
    for inst, records in failing:
        assert re.search(rf'data-institution="{inst}".*?data-field="failed_records" data-raw="{records}"',
                         html, re.S), inst
