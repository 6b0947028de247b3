"""Throughput of the two ways of executing the settlement suite.

    python -m expectations.benchmark [--rows 1000000] [--ge-rows 50000]

Synthetic settlements (plausible values mixed with broken ones, built by
DuckDB SQL) against the shipped reference data; prints rows/s of the
compiled verdicts (``verdict_sql`` materialised into a table) and of Great
Expectations (``ge_failures``, per-row unexpected index lists).
"""
from __future__ import annotations

import argparse
import time

import duckdb

import reference
from expectations import ge_failures, verdict_sql


def _pick(values: list[str], salt: int) -> str:
    items = ", ".join(f"'{v}'" for v in values)
    return f"[{items}][1 + CAST(hash(i, {salt}) % {len(values)} AS BIGINT)]"


def synthetic_settlements(con: duckdb.DuckDBPyConnection, rows: int, ref) -> None:
    local = [r.code for r in ref.counties]
    insts = [i["fixmedins_code"] for i in ref.institutions][:50]
    cents = "CAST(CAST(hash(i, {s}) % {m} AS BIGINT) AS DECIMAL(16, 2)) / 100"
    con.execute(f"""
        CREATE OR REPLACE TABLE settlement AS
        WITH base AS (
          SELECT i, TIMESTAMPTZ '2024-01-01 00:00:00+00' + to_seconds(CAST(hash(i, 1) % (365 * 86400) AS BIGINT)) AS setl_time,
                 {cents.format(s=2, m=500000)} AS hifp, {cents.format(s=3, m=50000)} AS acct,
                 {cents.format(s=4, m=200000)} AS cash,
                 CASE WHEN hash(i, 5) % 20 = 0 THEN 0.01 ELSE 0 END AS off,
                 CASE WHEN hash(i, 6) % 10 = 0 THEN -1 ELSE 1 END AS sign
          FROM range({rows}) t(i))
        SELECT 'e' || i AS event_id, setl_time AS event_time, 's' || i AS setl_id, 'm' || i AS mdtrt_id,
               'p' || (i % 100000) AS psn_no, {_pick(['310', '390', '391', '300'], 7)} AS insutype,
               {_pick(local + ['110105', '640199'], 8)} AS insu_admdvs,
               {_pick(local + ['310101'], 9)} AS fix_blng_admdvs,
               {_pick(insts + ['H64010499999', 'X1'], 10)} AS fixmedins_code,
               {_pick(['11', '1401', '2101', '21', '52', '28', '41', '99'], 11)} AS med_type,
               CAST(setl_time AT TIME ZONE 'Asia/Shanghai' AS DATE) - CAST(hash(i, 12) % 5 AS INTEGER) AS begndate,
               CAST(setl_time AT TIME ZONE 'Asia/Shanghai' AS DATE) - CAST(hash(i, 13) % 2 AS INTEGER) AS enddate,
               setl_time,
               CAST(sign * (hifp + acct + cash + off) AS DECIMAL(16, 2)) AS medfee_sumamt,
               CAST(sign * (hifp + cash) AS DECIMAL(16, 2)) AS inscp_scp_amt,
               CAST(sign * hifp AS DECIMAL(16, 2)) AS hifp_pay,
               0::DECIMAL(16, 2) AS cvlserv_pay, 0::DECIMAL(16, 2) AS hifes_pay,
               0::DECIMAL(16, 2) AS hifmi_pay, 0::DECIMAL(16, 2) AS hifob_pay,
               0::DECIMAL(16, 2) AS hifdm_pay, 0::DECIMAL(16, 2) AS maf_pay, 0::DECIMAL(16, 2) AS oth_pay,
               CAST(sign * hifp AS DECIMAL(16, 2)) AS fund_pay_sumamt,
               CAST(sign * acct AS DECIMAL(16, 2)) AS acct_pay, 0::DECIMAL(16, 2) AS acct_mulaid_pay,
               CAST(sign * cash AS DECIMAL(16, 2)) AS psn_cash_pay, 0::DECIMAL(16, 2) AS hosp_part_amt,
               nullif({_pick(['I10', 'J18.9', 'I10.x00x002', 'i10', '-'], 14)}, '-') AS dscg_maindiag_code,
               NULL::VARCHAR AS dise_codg, {_pick(['DRG', 'DIP', 'ITEM'], 15)} AS pay_method,
               {_pick(['1', '2', '2', '2'], 16)} AS setl_type, TRUE AS smart_audit,
               {_pick(['NONE', 'NONE', 'TEKUN', 'DIBAO'], 17)} AS assist_grp,
               CASE WHEN sign < 0 THEN '1' ELSE '0' END AS refd_setl_flag,
               CASE WHEN sign < 0 THEN 's0' END AS init_setl_id
        FROM base""")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--ge-rows", type=int, default=50_000)
    args = parser.parse_args(argv)
    ref = reference.load()
    con = duckdb.connect()
    synthetic_settlements(con, args.rows, ref)

    start = time.perf_counter()
    con.execute(f"CREATE TABLE verdicts AS {verdict_sql('settlement', ref, 'settlement')}")
    compiled = time.perf_counter() - start
    failed = con.sql("SELECT count(*) FILTER (T01 OR T02 OR T03 OR T04 OR T05 OR T06 OR T07 OR T08 OR T09) "
                     "FROM verdicts").fetchall()[0][0]
    print(f"compiled verdicts: {args.rows:,} rows in {compiled:.2f} s = {args.rows / compiled:,.0f} rows/s "
          f"({failed:,} rows fail some rule)")

    sample = con.sql(f"SELECT * FROM settlement LIMIT {args.ge_rows}").to_arrow_table()
    start = time.perf_counter()
    import great_expectations  # noqa: F401 - timed separately from validation

    imported = time.perf_counter() - start
    ge_failures("settlement", sample.slice(0, 100), ref)  # warm up: context, custom expectations
    start = time.perf_counter()
    ge_failures("settlement", sample, ref)
    ge = time.perf_counter() - start
    print(f"great expectations: import {imported:.1f} s; {args.ge_rows:,} rows in {ge:.2f} s = "
          f"{args.ge_rows / ge:,.0f} rows/s")


if __name__ == "__main__":
    main()
