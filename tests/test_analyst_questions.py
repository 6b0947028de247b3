"""docs/ANALYST_QUESTIONS.md: each of the analyst's five questions is one
SQL query, for DuckDB and for BigQuery; both run on the warehouse of a
generated data set with every defect kind (tests/breakdown_data.py) and
answer with names. The BigQuery text is parsed as BigQuery SQL by sqlglot,
its dataset dropped, and run on the same DuckDB file: both give the same rows.

Issue 18: "which pooling regions missed the settlement-list upload rate (I13)
in 2023-05, and which institutions caused it?" — "the warehouse cannot
answer" — is question 1.
"""
from __future__ import annotations

import re
from pathlib import Path

import pytest
import sqlglot
from sqlglot import exp

from tests.breakdown_data import breakdown_warehouse  # noqa: F401
from warehouse.duckdb_store import connect

DOC = Path(__file__).resolve().parents[1] / "docs" / "ANALYST_QUESTIONS.md"


def questions() -> list[tuple[str, str, str]]:
    """(title, DuckDB SQL, BigQuery SQL) per question, in order."""
    text = DOC.read_text(encoding="utf-8")
    out = []
    for section in re.split(r"^## ", text, flags=re.M)[1:]:
        title = section.splitlines()[0]
        duck = re.findall(r"```sql duckdb\n(.*?)```", section, flags=re.S)
        bq = re.findall(r"```sql bigquery\n(.*?)```", section, flags=re.S)
        assert len(duck) == 1 and len(bq) == 1, f"one query per engine in {title!r}"
        out.append((title, duck[0], bq[0]))
    return out


def bigquery_on_duckdb(sql: str) -> str:
    """BigQuery SQL -> DuckDB SQL on the same table names (dataset dropped)."""
    tree = sqlglot.parse_one(sql, read="bigquery")
    for table in tree.find_all(exp.Table):
        assert table.args.get("db") is not None and table.db == "yibao", table.sql()
        table.set("db", None)
    return tree.sql(dialect="duckdb")


def test_the_doc_has_five_questions():
    assert len(questions()) == 5


@pytest.fixture(scope="module")
def answers(breakdown_warehouse):  # noqa: F811
    _, wh = breakdown_warehouse
    con = connect(str(wh), read_only=True)
    try:
        out = []
        for title, duck, bq in questions():
            cur = con.execute(duck)
            cols = [d[0] for d in cur.description]
            rows = cur.fetchall()
            assert con.execute(bigquery_on_duckdb(bq)).fetchall() == rows, title
            out.append((cols, [dict(zip(cols, r)) for r in rows]))
        return out
    finally:
        con.close()


def test_q1_pooling_regions_that_missed_i13_and_the_institutions_behind(answers):
    _, rows = answers[0]
    assert rows
    for r in rows:
        assert r["region_value"] < r["target"] and r["region_shortfall"] > 0
        assert r["institution"] and 1 <= r["shortfall_rank"] <= 3 and r["shortfall"] > 0
    by_region: dict = {}
    for r in rows:
        by_region.setdefault(r["region_code"], []).append(r["shortfall"])
    assert all(s == sorted(s, reverse=True) for s in by_region.values())


def test_q2_missed_indicators_with_their_top_contributor(answers):
    _, rows = answers[1]
    assert len({r["indicator_code"] for r in rows}) >= 3
    assert all(r["top_member_name"] and r["top_member_share"] > 0 for r in rows)
    assert {r["dimension"] for r in rows} == {"institution", "matter"}


def test_q3_failing_rules_per_institution(answers):
    _, rows = answers[2]
    assert rows and all(r["failing_records"] > 0 and r["rule"] for r in rows)
    assert any(r["institution"] for r in rows)


def test_q4_one_institution_month_by_month(answers):
    _, rows = answers[3]
    assert len(rows) >= 3  # the months it had inpatient settlements (1,500 persons)
    assert all(r["institution"] == "宁夏医科大学总医院" for r in rows)
    assert [r["month"].month for r in rows] == sorted(r["month"].month for r in rows)


def test_q5_matters_behind_on_time_completion(answers):
    _, rows = answers[4]
    assert rows and all(r["matter"] for r in rows)
    assert all(r["cases"] == r["on_time"] + r["late"] for r in rows)
