"""Prepared relations: latest versions at as_of, rule verdicts and the
derived columns the indicators share (INDICATORS.md "Common rules").

Input: ``{stream}_accepted`` tables on the connection (one copy per
event_id, ``transforms.versions.resolve_deliveries``).  Output: the
relations ``transforms.indicators.components`` documents.
"""
from __future__ import annotations

import datetime as dt

import duckdb
import pyarrow as pa

import expectations
import schemas
from transforms.context import RunContext
from transforms.indicators.components import INPATIENT_CATEGORIES, sql_list
from transforms.timeutil import business_date_sql
from transforms.versions import latest_sql


def rule_ids(stream: str, severity: str | None = None) -> list[str]:
    return [r.rule_id for r in expectations.rules(stream) if severity in (None, r.severity)]


def _any(rules: list[str]) -> str:
    return " OR ".join(f'"{r}"' for r in rules) or "FALSE"


def local_codes(ctx: RunContext) -> dict[str, list[str]]:
    ref = ctx.ref
    return {
        "counties": [r.code for r in ref.counties],
        "cities": [r.code for r in ref.cities],
        "province": [ref.province.code],
    }


def register_regions(con: duckdb.DuckDBPyConnection, ctx: RunContext) -> None:
    codes = local_codes(ctx)
    con.execute(
        "CREATE OR REPLACE TEMP TABLE local_counties AS SELECT unnest($1::VARCHAR[]) AS code",
        [codes["counties"]],
    )


def _table(con: duckdb.DuckDBPyConnection, name: str, columns: dict, schema: pa.Schema) -> None:
    """A small lookup table built in Python, handed to DuckDB as Arrow."""
    con.register(f"{name}_arrow", pa.table(columns, schema=schema))
    con.execute(f"CREATE OR REPLACE TEMP TABLE {name} AS SELECT * FROM {name}_arrow")
    con.unregister(f"{name}_arrow")


def reversed_ids_sql(ctx: RunContext, relation: str = "settlement_accepted") -> str:
    """The setl_ids named by a reversal: init_setl_id of every setl_id whose
    latest version at as_of is a reversal (column ``init_setl_id``).  The
    sharded nightly evaluates it in the reversal's bucket and sends the ids to
    the buckets of the settlements they reverse (transforms/shard_steps.py)."""
    return f"""SELECT DISTINCT init_setl_id FROM ({latest_sql('settlement', relation, ctx.as_of)})
               WHERE refd_setl_flag = '1' AND init_setl_id IS NOT NULL"""


def prepare_settlements(con: duckdb.DuckDBPyConnection, ctx: RunContext,
                        reversed_ids: str | None = None) -> None:
    """``reversed_ids``: a relation of the setl_ids named by reversals
    (``reversed_ids_sql``); default: the reversals among this connection's
    settlements."""
    codes = local_codes(ctx)
    prefix = ctx.ref.province_prefix
    local_inst = sql_list(codes["counties"] + codes["cities"])
    local_insured = sql_list(codes["counties"] + codes["cities"] + codes["province"])
    con.execute(f"CREATE OR REPLACE TEMP VIEW settlement_latest AS "
                f"{latest_sql('settlement', 'settlement_accepted', ctx.as_of)}")
    con.execute(f"CREATE OR REPLACE TEMP TABLE settlement_verdicts AS "
                f"{expectations.verdict_sql('settlement', ctx.ref, 'settlement_latest')}")
    setl_date = business_date_sql("setl_time")
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE setl AS
        SELECT *,
          {setl_date} AS _setl_date,
          CAST(date_trunc('month', {setl_date}) AS DATE) AS month,
          left(med_type, 2) AS _category,
          left(med_type, 2) IN ({sql_list(INPATIENT_CATEGORIES)}) AS _inpatient,
          fix_blng_admdvs IN ({local_inst}) AS _local_inst,
          insu_admdvs IN ({local_insured}) AS _local_insured,
          left(fix_blng_admdvs, 2) <> '{prefix}' AS _inst_other_province,
          left(insu_admdvs, 2) <> '{prefix}' AS _insured_other_province,
          CASE WHEN left(insu_admdvs, 2) = '{prefix}' THEN insu_admdvs ELSE fix_blng_admdvs END
            AS _i08_region,
          NOT ({_any(rule_ids('settlement'))}) AS _pass_all,
          NOT ({_any(rule_ids('settlement', 'blocking'))}) AS _pass_blocking
        FROM settlement_verdicts""")
    # A setl_id named by a reversal (latest version a reversal) is out, whatever
    # the reversal's own verdicts and even if the original has a later normal version.
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE setl_biz AS
        SELECT * FROM setl
        WHERE refd_setl_flag = '0' AND _pass_blocking
          AND setl_id NOT IN (SELECT init_setl_id FROM ({reversed_ids or reversed_ids_sql(ctx)}))""")
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE lists_first AS
        SELECT setl_id, min(upload_time) AS first_upload FROM settlement_list_accepted
        WHERE event_time <= TIMESTAMPTZ '{ctx.as_of.isoformat()}' GROUP BY setl_id""")


def prepare_contributions(con: duckdb.DuckDBPyConnection, ctx: RunContext) -> None:
    clct = business_date_sql("clct_time")
    con.execute(f"CREATE OR REPLACE TEMP VIEW contribution_latest AS "
                f"{latest_sql('contribution', 'contribution_accepted', ctx.as_of)}")
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE contrib AS
        SELECT *, {clct} AS _clct_date, {business_date_sql('upld_time')} AS _upld_date,
               CAST(date_trunc('month', {clct}) AS DATE) AS month
        FROM ({expectations.verdict_sql('contribution', ctx.ref, 'contribution_latest')})""")


def prepare_lists(con: duckdb.DuckDBPyConnection, ctx: RunContext) -> None:
    """Settlement lists at as_of with their structural verdicts; a list has no
    region column, so its rule results use the region embedded in
    fixmedins_code (characters 2-7)."""
    upload = business_date_sql("upload_time")
    con.execute(f"CREATE OR REPLACE TEMP VIEW settlement_list_latest AS "
                f"{latest_sql('settlement_list', 'settlement_list_accepted', ctx.as_of)}")
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE lists AS
        SELECT *, {upload} AS _upload_date, CAST(date_trunc('month', {upload}) AS DATE) AS month,
               substr(fixmedins_code, 2, 6) AS _region
        FROM ({expectations.verdict_sql('settlement_list', ctx.ref, 'settlement_list_latest')})""")


def prepare_cases(con: duckdb.DuckDBPyConnection, ctx: RunContext, n_values: list[str]) -> None:
    con.execute(f"CREATE OR REPLACE TEMP VIEW filing_latest AS "
                f"{latest_sql('filing', 'filing_accepted', ctx.as_of)}")
    con.execute(f"CREATE OR REPLACE TEMP TABLE filing_verdicts AS "
                f"{expectations.verdict_sql('filing', ctx.ref, 'filing_latest')}")
    # Online capability of a case's matter where the case is handled.
    pairs = con.sql("SELECT DISTINCT insu_admdvs, matter_code FROM filing_verdicts").fetchall()
    applicable = {}
    for region, matter in pairs:
        if region not in applicable:
            applicable[region] = ctx.ref.applicable_matters(region or "")
        row = applicable[region].get(matter)
        applicable[(region, matter)] = bool(row and row["online_capable"])
    _table(con, "case_matters", {"region": [r for r, _ in pairs], "matter": [m for _, m in pairs],
                                 "online": [applicable[p] for p in pairs]},
           pa.schema([("region", pa.string()), ("matter", pa.string()), ("online", pa.bool_())]))
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE cases AS
        SELECT f.*, {business_date_sql('f.submitted_time')} AS _submitted_date,
               {business_date_sql('f.completed_time')} AS _completed_date,
               CAST(date_trunc('month', {business_date_sql('f.submitted_time')}) AS DATE) AS _submitted_month,
               coalesce(m.online, FALSE) AS _online_capable,
               NOT ({_any(rule_ids('filing', 'blocking'))}) AS _pass_blocking
        FROM filing_verdicts f
        LEFT JOIN case_matters m ON m.region IS NOT DISTINCT FROM f.insu_admdvs
                                 AND m.matter IS NOT DISTINCT FROM f.matter_code""")
    con.execute("CREATE OR REPLACE TEMP VIEW cases_biz AS SELECT * FROM cases WHERE _pass_blocking")
    # Deadlines from the run's working-day calendar (config, else chinesecalendar,
    # else Monday-Friday: transforms.timeutil.WorkCalendar).
    starts = [r[0] for r in con.sql(
        "SELECT DISTINCT _submitted_date FROM cases_biz WHERE _submitted_date IS NOT NULL").fetchall()]
    ns = sorted({int(r[0]) for expr in n_values for r in con.sql(
        f"SELECT DISTINCT {expr} FROM cases_biz c WHERE {expr} IS NOT NULL"
    ).fetchall()})
    calendar = ctx.config.calendar
    rows = [(s, n, calendar.deadline(s, n)) for s in starts for n in ns]
    _table(con, "deadlines", {"start": [r[0] for r in rows], "n": [r[1] for r in rows],
                              "deadline": [r[2] for r in rows]},
           pa.schema([("start", pa.date32()), ("n", pa.int32()), ("deadline", pa.date32())]))


def enrolment_versions(con: duckdb.DuckDBPyConnection, ctx: RunContext) -> None:
    """``enrolment_versions``: every enrolment version at as_of that is the
    latest of its (psn_no, insutype) at some period end, with its record-level
    verdicts (they do not depend on the snapshot) and the business date
    ``_until`` from which a later version replaces it (NULL: the latest now).
    A version is in the snapshot at day D when ``_date <= D < _until``: business
    dates grow with event_time, so the next version in latest_sql's order is
    the first that can replace it.  Only the versions of one (psn_no,
    insutype) are needed here, so the sharded nightly computes this per
    key bucket and re-keys the result by certno (``enrolment_snapshot``)."""
    record_rules = [r.rule_id for r in expectations.rules("enrolment") if not r.cross_record]
    key = ", ".join(schemas.load("enrolment").business_key)
    day = business_date_sql("event_time")
    con.execute(f"""CREATE OR REPLACE TEMP VIEW enrolment_asof AS SELECT * FROM enrolment_accepted
                    WHERE event_time <= TIMESTAMPTZ '{ctx.as_of.isoformat()}'""")
    verdicts = expectations.verdict_sql("enrolment", ctx.ref, "enrolment_asof", only=record_rules)
    con.execute(f"""CREATE OR REPLACE TEMP TABLE enrolment_versions AS
        SELECT * FROM (
          SELECT *, {day} AS _date,
                 lead({day}) OVER (PARTITION BY {key} ORDER BY event_time, event_id) AS _until
          FROM ({verdicts}))
        WHERE _until IS NULL OR _until > _date""")


def enrolment_snapshot(con: duckdb.DuckDBPyConnection, ctx: RunContext, name: str,
                       until: dt.date | None, versions: str = "enrolment_versions") -> None:
    """Latest enrolment versions at a period end (stocks; ``until`` None: at
    as_of) with every verdict: the record-level ones from
    ``enrolment_versions``, the cross-record ones (E09) evaluated among this
    snapshot's versions."""
    cross = [r.rule_id for r in expectations.rules("enrolment") if r.cross_record]
    valid = "_until IS NULL" if until is None else (
        f"_date <= DATE '{until.isoformat()}' AND (_until IS NULL OR _until > DATE '{until.isoformat()}')")
    con.execute(f"CREATE OR REPLACE TEMP VIEW {name}_latest AS "
                f"SELECT * EXCLUDE (_date, _until) FROM {versions} WHERE {valid}")
    con.execute(f"CREATE OR REPLACE TEMP TABLE {name} AS "
                f"{expectations.verdict_sql('enrolment', ctx.ref, name + '_latest', only=cross)}")
