"""Indicator components at attribution level, as DuckDB SQL.

Each function reads the prepared relations of one stream family and
returns ``Component`` rows: (indicator, attribution code, month, parts,
member).  The attribution code is the raw region column named by
INDICATORS.md ("region by"); ``rollup`` maps it to county / pooling region /
province and builds MONTH and YTD rows.  Parts are exact (Decimal / int).
The SQL of the indicators catalog.BREAKDOWN splits groups by one more key,
the member (fixmedins_code or matter_code); those rows stay in DuckDB, in
the temp table ``member_parts``, and the Components returned are their exact
sums per attribution code and month: indicator_values and
indicator_breakdown (transforms.breakdown) add up the same rows.

Relations expected on the connection (``transforms.prepare`` makes them):
``setl`` (latest settlement versions at as_of with verdicts and derived
columns), ``setl_biz`` (the "Settlements" of business indicators),
``lists_first`` (earliest list upload per setl_id), ``contrib`` (latest
contributions), ``cases`` / ``cases_biz`` (latest filing versions) and
``deadlines`` (submitted date, N, deadline).
"""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal

import duckdb

from transforms.context import RunContext
from transforms.indicators.catalog import BREAKDOWN

INPATIENT_CATEGORIES = ("21", "22", "23", "24", "25", "26", "28", "52")
ONLINE_CHANNELS = ("ONLINE", "MOBILE")


@dataclass(frozen=True)
class Component:
    code: str
    attr: str | None  # raw region code the record is attributed by
    month: dt.date  # first day of the business month (or the stock's snapshot month)
    parts: dict  # {"num": …, "den": …} or C01's four parts
    member: str | None = None  # fixmedins_code / matter_code (NO_MEMBER if null); None = all members


#: The member of records whose fixmedins_code / matter_code is null (a key
#: column of indicator_breakdown cannot be null; dim_institution names it).
NO_MEMBER = "(none)"
#: Temp table of the member-level components (code, attr, month, member, num, den).
MEMBER_PARTS = "member_parts"


def reset_member_parts(con: duckdb.DuckDBPyConnection) -> None:
    """An empty ``member_parts``: call before computing a run's (or a pane's) components."""
    con.execute(f"CREATE OR REPLACE TEMP TABLE {MEMBER_PARTS} (code VARCHAR, attr VARCHAR, month DATE, "
                "member VARCHAR, num DECIMAL(38,6), den DECIMAL(38,6))")


def sql_list(values) -> str:
    return ", ".join("'" + str(v).replace("'", "''") + "'" for v in values) or "NULL"


def member_sql(column: str) -> str:
    return f"coalesce({column}, '{NO_MEMBER}') AS member"


def _rows(con: duckdb.DuckDBPyConnection, code: str, sql: str) -> list[Component]:
    """Run ``sql`` (columns attr, month, num, den, and member for a split
    indicator) into Components; a split indicator's rows go to
    ``member_parts`` and come back summed over members."""
    if code in BREAKDOWN:
        con.execute(f"CREATE TEMP TABLE IF NOT EXISTS {MEMBER_PARTS} (code VARCHAR, attr VARCHAR, "
                    "month DATE, member VARCHAR, num DECIMAL(38,6), den DECIMAL(38,6))")
        con.execute(f"INSERT INTO {MEMBER_PARTS} SELECT '{code}', attr, month, member, "
                    f"coalesce(num, 0), coalesce(den, 0) FROM ({sql})")
        sql = f"SELECT attr, month, sum(num), sum(den) FROM {MEMBER_PARTS} WHERE code = '{code}' GROUP BY ALL"
    out = []
    for attr, month, num, den in con.sql(sql).fetchall():
        out.append(Component(code, attr, month, {"num": Decimal(num or 0), "den": Decimal(den or 0)}))
    return out


def _ratio(attr: str, where: str, num: str, den: str, relation: str = "setl_biz") -> str:
    """Per institution: every settlement indicator is split by fixmedins_code."""
    return f"""SELECT {attr} AS attr, month, {num} AS num, {den} AS den, {member_sql('fixmedins_code')}
               FROM {relation} WHERE {where} GROUP BY ALL"""


# -- settlements --------------------------------------------------------------
def settlement_components(con: duckdb.DuckDBPyConnection, ctx: RunContext) -> list[Component]:
    days = int(ctx.param("settlement_list_days"))
    as_of = f"TIMESTAMPTZ '{ctx.as_of.isoformat()}'"
    out: list[Component] = []
    out += _rows(con, "I08", _ratio("_i08_region", "TRUE", "count(*) FILTER (_pass_all)",
                                    "count(*)", relation="setl"))
    out += _rows(con, "I14", _ratio("fix_blng_admdvs", "_local_inst",
                                    "count(*) FILTER (smart_audit)", "count(*)"))
    out += _rows(con, "I17", _ratio("fix_blng_admdvs", "_inpatient AND _local_inst AND _local_insured",
                                    "sum(hifp_pay) FILTER (pay_method IN ('DRG', 'DIP'))",
                                    "sum(hifp_pay)"))
    out += _rows(con, "I22", _ratio("insu_admdvs",
                                    "_inpatient AND _local_insured AND _inst_other_province "
                                    "AND setl_type IN ('1', '2')",
                                    "count(*) FILTER (setl_type = '2')", "count(*)"))
    out += _rows(con, "R01", _ratio("insu_admdvs", "_inpatient AND insutype = '310'",
                                    "sum(hifp_pay + hifob_pay)", "sum(inscp_scp_amt)"))
    out += _rows(con, "R02", _ratio("insu_admdvs", "_inpatient AND insutype = '390'",
                                    "sum(hifp_pay)", "sum(inscp_scp_amt)"))
    out += _rows(con, "R03", _ratio("insu_admdvs", "_category = '11' AND insutype = '390'",
                                    "sum(hifp_pay)", "sum(inscp_scp_amt)"))
    out += _rows(con, "R04", _ratio("insu_admdvs", "hifmi_pay > 0",
                                    "sum(hifmi_pay)", "sum(inscp_scp_amt - hifp_pay)"))
    out += _rows(con, "R05", _ratio("insu_admdvs", "assist_grp IN ('TEKUN', 'DIBAO')",
                                    "sum(maf_pay)",
                                    "sum(inscp_scp_amt - hifp_pay - hifob_pay - hifmi_pay)"))
    # I13: a settlement still inside its 30 days at as_of without a list is not yet due.
    out += _rows(con, "I13", f"""
        SELECT s.fix_blng_admdvs AS attr, s.month,
               count(*) FILTER (l.first_upload <= s.setl_time + INTERVAL {days} DAY) AS num,
               count(*) AS den, {member_sql('s.fixmedins_code')}
        FROM setl_biz s LEFT JOIN lists_first l USING (setl_id)
        WHERE s.setl_type = '2' AND (s._inpatient OR s._category = '14') AND s._local_inst
          AND NOT (s.setl_time + INTERVAL {days} DAY > {as_of} AND l.first_upload IS NULL)
        GROUP BY ALL""")
    # I19: presence of a county (one row per county and month with activity).
    for county, month in con.sql(
        """SELECT DISTINCT fix_blng_admdvs, month FROM setl_biz
           WHERE setl_type = '2' AND _category = '14' AND _insured_other_province
             AND fix_blng_admdvs IN (SELECT code FROM local_counties)"""
    ).fetchall():
        out.append(Component("I19", county, month, {"active": 1}))
    # C01: monthly sums; rollup pairs each month with the same month a year earlier.
    for attr, month, total, cnt in con.sql(
        """SELECT fix_blng_admdvs, month, sum(medfee_sumamt), count(*) FROM setl_biz
           WHERE _inpatient AND _local_inst GROUP BY ALL"""
    ).fetchall():
        out.append(Component("C01", attr, month, {"sum": Decimal(total), "cnt": Decimal(cnt)}))
    return out


# -- contributions ------------------------------------------------------------
def contribution_components(con: duckdb.DuckDBPyConnection, ctx: RunContext) -> list[Component]:
    return _rows(con, "I10", """
        SELECT insu_admdvs AS attr, month,
               count(*) FILTER (_upld_date <= _clct_date + 1) AS num, count(*) AS den
        FROM contrib GROUP BY ALL""")


# -- cases --------------------------------------------------------------------
def _completion(where: str, n_expr: str, as_of_date: dt.date) -> str:
    """Case-completion rule: completed in period (on time or not) plus cases
    open at as_of whose deadline falls in the period before as_of's date."""
    return f"""
        SELECT insu_admdvs AS attr, month, sum(on_time) AS num, count(*) AS den,
               {member_sql('matter_code')} FROM (
          SELECT c.insu_admdvs, CAST(date_trunc('month', c._completed_date) AS DATE) AS month,
                 CAST(c._completed_date <= d.deadline AS INT) AS on_time, c.matter_code
          FROM cases_biz c JOIN deadlines d ON d.start = c._submitted_date AND d.n = {n_expr}
          WHERE c.status = 'COMPLETED' AND {where}
          UNION ALL
          SELECT c.insu_admdvs, CAST(date_trunc('month', d.deadline) AS DATE), 0, c.matter_code
          FROM cases_biz c JOIN deadlines d ON d.start = c._submitted_date AND d.n = {n_expr}
          WHERE c.status IN ('SUBMITTED', 'ACCEPTED') AND {where}
            AND d.deadline < DATE '{as_of_date.isoformat()}'
        ) GROUP BY ALL"""


def case_n_values(ctx: RunContext) -> dict[str, str]:
    """The N of each completion-rate indicator: a SQL expression over ``c``."""
    return {
        "I21": "c.promised_working_days",
        "I24": "c.promised_working_days",
        "S03": str(int(ctx.param("manual_reimb_working_days"))),
        "S04": str(int(ctx.param("transfer_working_days"))),
    }


def case_components(con: duckdb.DuckDBPyConnection, ctx: RunContext) -> list[Component]:
    n = case_n_values(ctx)
    online = sql_list(ONLINE_CHANNELS)
    out: list[Component] = []
    out += _rows(con, "I21", _completion(f"c.matter_code = 'OFFSITE_FILING' AND c.cross_province AND c.channel IN ({online})",
        n["I21"], ctx.as_of_date))
    out += _rows(con, "I24", _completion("TRUE", n["I24"], ctx.as_of_date))
    out += _rows(con, "S03", _completion("c.matter_code = 'MANUAL_REIMB'", n["S03"], ctx.as_of_date))
    out += _rows(con, "S04", _completion("c.matter_code = 'TRANSFER'", n["S04"], ctx.as_of_date))
    matter = member_sql("matter_code")
    completed = "SELECT *, CAST(date_trunc('month', _completed_date) AS DATE) AS month FROM cases_biz WHERE status = 'COMPLETED'"
    out += _rows(con, "I25", f"""
        SELECT insu_admdvs AS attr, month, count(*) FILTER (channel IN ({online})) AS num,
               count(*) AS den, {matter}
        FROM ({completed}) WHERE _online_capable GROUP BY ALL""")
    out += _rows(con, "I26", f"""
        SELECT insu_admdvs AS attr, month, count(*) FILTER (rating >= 4) AS num, count(*) AS den,
               {matter}
        FROM ({completed}) WHERE rating IS NOT NULL GROUP BY ALL""")
    out += _rows(con, "S02", f"""
        SELECT insu_admdvs AS attr, month, count(*) FILTER (channel IN ({online})) AS num,
               count(*) AS den, {matter}
        FROM ({completed}) GROUP BY ALL""")
    return out


# -- enrolment (stocks, one snapshot per month end) ---------------------------
def enrolment_components(con: duckdb.DuckDBPyConnection, snapshot: str, month: dt.date,
                         blocking: list[str], all_rules: list[str]) -> list[Component]:
    """I07 and I09 numerators at one period-end snapshot (relation with verdicts)."""
    passes = " AND ".join(f'NOT "{r}"' for r in all_rules) or "TRUE"
    passes_blocking = " AND ".join(f'NOT "{r}"' for r in blocking) or "TRUE"
    m = f"DATE '{month.isoformat()}'"
    out = _rows(con, "I07", f"""
        SELECT insu_admdvs AS attr, {m} AS month, count(*) FILTER ({passes}) AS num, count(*) AS den
        FROM {snapshot} WHERE psn_insu_stas = '1' GROUP BY ALL""")
    out += _rows(con, "I09", f"""
        SELECT insu_admdvs AS attr, {m} AS month, count(*) AS num, 0 AS den FROM (
          SELECT * FROM {snapshot}
          WHERE psn_insu_stas = '1' AND insutype IN ('310', '390') AND {passes_blocking}
          QUALIFY row_number() OVER (PARTITION BY certno ORDER BY event_time DESC, event_id DESC) = 1
        ) GROUP BY ALL""")
    return out


def population_components(ctx: RunContext) -> list[Component]:
    """I09's denominator: registered population of each county for the period's year."""
    pop = {(p["county_code"], p["year"]): p["registered_population"] for p in ctx.ref.population}
    out = []
    for month in ctx.months:
        for county in ctx.ref.counties:
            value = pop.get((county.code, month.year))
            if value is not None:
                out.append(Component("I09", county.code, month, {"num": Decimal(0), "den": Decimal(value)}))
    return out
