-- settlement.sql: rules T01-T09, I08, the business settlements, and the settlement
-- indicators I13 I14 I17 I19 I22 R01-R05 C01.
-- Output: facts_settlement(kind, code, stream, attr_code, period_type, period_start,
--         period_end, num, den, cur_sum, cur_cnt, prev_sum, prev_cnt)

-- one row per latest settlement version; one boolean per rule: true = FAILS the rule
CREATE OR REPLACE TEMP TABLE setl_verdicts AS
WITH s AS (
    SELECT *,
           bd(setl_time) AS setl_date,
           substr(med_type, 1, 2) AS category,
           substr(med_type, 1, 2) IN ('21', '22', '23', '24', '25', '26', '28', '52') AS inpatient,
           refd_setl_flag = '1' AS is_reversal,
           fix_blng_admdvs IN (SELECT code FROM local_county_city) AS fix_local,
           insu_admdvs IN (SELECT code FROM local_insured) AS insu_local,
           substr(fix_blng_admdvs, 1, 2) IN (SELECT prefix FROM other_province_prefixes) AS fix_other,
           substr(insu_admdvs, 1, 2) IN (SELECT prefix FROM other_province_prefixes) AS insu_other,
           [medfee_sumamt, inscp_scp_amt, hifp_pay, cvlserv_pay, hifes_pay, hifmi_pay, hifob_pay,
            hifdm_pay, maf_pay, oth_pay, fund_pay_sumamt, acct_pay, acct_mulaid_pay,
            psn_cash_pay, hosp_part_amt] AS money
    FROM settlement_latest
)
SELECT s.* EXCLUDE (money),
       NOT regexp_full_match(fixmedins_code, '[HP][0-9]{11}')
       OR (fix_local AND fixmedins_code NOT IN (SELECT fixmedins_code FROM institutions
                                                WHERE fixmedins_code IS NOT NULL)) AS T01,
       NOT (length(med_type) BETWEEN 2 AND 6
            AND category IN ('11', '12', '13', '14', '15', '16', '21', '22', '23', '24', '25',
                             '26', '28', '41', '51', '52')
            AND insutype IN ('310', '320', '330', '340', '350', '360', '370', '380', '390',
                             '391', '392', '399', '410', '510')
            AND setl_type IN ('1', '2', '3')
            AND refd_setl_flag IN ('0', '1')
            AND pay_method IN ('DRG', 'DIP', 'ITEM', 'BED_DAY', 'CAPITATION', 'DISEASE')
            AND assist_grp IN ('NONE', 'TEKUN', 'DIBAO', 'DIBIAN', 'RETURN_POOR')) AS T02,
       (refd_setl_flag = '0' AND list_min(money) < 0)
       OR (refd_setl_flag = '1' AND list_max(money) > 0) AS T03,
       abs(fund_pay_sumamt + acct_pay + acct_mulaid_pay + psn_cash_pay + hosp_part_amt
           - medfee_sumamt) > 0.01 AS T04,
       abs(hifp_pay + cvlserv_pay + hifes_pay + hifmi_pay + hifob_pay + hifdm_pay + maf_pay
           + oth_pay - fund_pay_sumamt) > 0.01 AS T05,
       CASE WHEN is_reversal THEN abs(inscp_scp_amt) > abs(medfee_sumamt)
            ELSE inscp_scp_amt > medfee_sumamt END AS T06,
       NOT (begndate <= enddate AND enddate <= setl_date) AS T07,
       inpatient AND NOT coalesce(regexp_full_match(
           dscg_maindiag_code, '[A-Z][0-9]{2}(\.[0-9A-Za-z]{1,3}(x[0-9]{3})?)?'), false) AS T08,
       NOT ((insu_local OR insu_other) AND (fix_local OR fix_other) AND (insu_local OR fix_local))
           AS T09
FROM s;

-- I08 population (and the settlement rules' population): every latest version, by
-- insu_admdvs when it has the local prefix, else fix_blng_admdvs
CREATE OR REPLACE TEMP TABLE setl_i08 AS
SELECT *,
       CASE WHEN substr(insu_admdvs, 1, 2) = (SELECT prefix FROM local_province)
            THEN insu_admdvs ELSE fix_blng_admdvs END AS i08_region,
       NOT (T01 OR T02 OR T03 OR T04 OR T05 OR T06 OR T07 OR T08 OR T09) AS passes
FROM setl_verdicts;

-- settlements named by a reversal (latest version with refd_setl_flag "1"), whatever the
-- reversal's own verdicts
CREATE OR REPLACE TEMP TABLE reversed_ids AS
SELECT DISTINCT init_setl_id AS setl_id FROM settlement_latest
WHERE refd_setl_flag = '1' AND init_setl_id IS NOT NULL;

-- business settlements: normal, not reversed, passing the blocking rules T02 T03 T09
CREATE OR REPLACE TEMP TABLE business_settlements AS
SELECT * FROM setl_verdicts
WHERE refd_setl_flag = '0'
  AND setl_id NOT IN (SELECT setl_id FROM reversed_ids)
  AND NOT (T02 OR T03 OR T09);

-- earliest list upload per setl_id (lists not versioned; duplicates once; event_time <= as_of)
CREATE OR REPLACE TEMP TABLE first_list AS
SELECT setl_id, min(upload_time) AS first_upload FROM settlement_list_v GROUP BY setl_id;

-- per-record flow facts (one row per record and indicator; num/den are the record's share)
CREATE OR REPLACE TEMP TABLE setl_flow AS
-- I13: direct inpatient and chronic-outpatient settlements at local institutions
SELECT 'I13' AS code, fix_blng_admdvs AS attr_code, setl_date,
       CAST(CASE WHEN l.first_upload <= b.setl_time + to_days((SELECT i13_days FROM params))
                 THEN 1 ELSE 0 END AS DECIMAL(38, 2)) AS num,
       CAST(1 AS DECIMAL(38, 2)) AS den
FROM business_settlements b LEFT JOIN first_list l USING (setl_id)
WHERE setl_type = '2' AND (inpatient OR category = '14') AND fix_local
  AND NOT (b.setl_time + to_days((SELECT i13_days FROM params)) > (SELECT as_of FROM params)
           AND l.first_upload IS NULL)
UNION ALL
-- I14: smart-audit coverage at local institutions
SELECT 'I14', fix_blng_admdvs, setl_date, CASE WHEN smart_audit THEN 1 ELSE 0 END, 1
FROM business_settlements WHERE fix_local
UNION ALL
-- I17: DRG/DIP share of inpatient fund spending, local institutions, locally insured
SELECT 'I17', fix_blng_admdvs, setl_date,
       CASE WHEN pay_method IN ('DRG', 'DIP') THEN hifp_pay ELSE 0 END, hifp_pay
FROM business_settlements WHERE inpatient AND fix_local AND insu_local
UNION ALL
-- I22: cross-province inpatient direct-settlement rate of locally insured persons
SELECT 'I22', insu_admdvs, setl_date, CASE WHEN setl_type = '2' THEN 1 ELSE 0 END, 1
FROM business_settlements
WHERE inpatient AND insu_local
  AND substr(fix_blng_admdvs, 1, 2) <> (SELECT prefix FROM local_province)
  AND setl_type IN ('1', '2')
UNION ALL
SELECT 'R01', insu_admdvs, setl_date, hifp_pay + hifob_pay, inscp_scp_amt
FROM business_settlements WHERE inpatient AND insutype = '310'
UNION ALL
SELECT 'R02', insu_admdvs, setl_date, hifp_pay, inscp_scp_amt
FROM business_settlements WHERE inpatient AND insutype = '390'
UNION ALL
SELECT 'R03', insu_admdvs, setl_date, hifp_pay, inscp_scp_amt
FROM business_settlements WHERE category = '11' AND insutype = '390'
UNION ALL
SELECT 'R04', insu_admdvs, setl_date, hifmi_pay, inscp_scp_amt - hifp_pay
FROM business_settlements WHERE hifmi_pay > 0
UNION ALL
SELECT 'R05', insu_admdvs, setl_date, maf_pay,
       inscp_scp_amt - hifp_pay - hifob_pay - hifmi_pay
FROM business_settlements WHERE assist_grp IN ('TEKUN', 'DIBAO');

-- I19: a county counts once per period when it had >= 1 direct category-14 settlement at
-- its own code by a person insured in another province
CREATE OR REPLACE TEMP TABLE i19_counties AS
SELECT r.code AS county, p.period_type, p.period_start, p.period_end,
       EXISTS (SELECT 1 FROM business_settlements b
               WHERE b.setl_type = '2' AND b.category = '14'
                 AND b.fix_blng_admdvs = r.code
                 AND substr(b.insu_admdvs, 1, 2) <> (SELECT prefix FROM local_province)
                 AND b.setl_date BETWEEN p.period_start AND p.period_end) AS active
FROM (SELECT code FROM local_regions WHERE level = 'county') r CROSS JOIN periods p;

-- C01: inpatient settlements at local institutions, this period and a year earlier
CREATE OR REPLACE TEMP TABLE c01_records AS
SELECT fix_blng_admdvs AS attr_code, setl_date, medfee_sumamt
FROM business_settlements WHERE inpatient AND fix_local;

CREATE OR REPLACE TEMP TABLE facts_settlement AS
-- I08 and the settlement rules
SELECT 'I' AS kind, 'I08' AS code, CAST(NULL AS VARCHAR) AS stream, s.i08_region AS attr_code,
       p.period_type, p.period_start, p.period_end,
       CAST(count(*) FILTER (WHERE s.passes) AS DECIMAL(38, 2)) AS num,
       CAST(count(*) AS DECIMAL(38, 2)) AS den
FROM setl_i08 s JOIN periods p ON s.setl_date BETWEEN p.period_start AND p.period_end
GROUP BY ALL
UNION ALL BY NAME
SELECT 'R' AS kind, u.rule_id AS code, 'settlement' AS stream, u.i08_region AS attr_code,
       p.period_type, p.period_start, p.period_end,
       CAST(count(*) FILTER (WHERE u.failed) AS DECIMAL(38, 2)) AS num,
       CAST(count(*) AS DECIMAL(38, 2)) AS den
FROM (UNPIVOT (SELECT i08_region, setl_date, T01, T02, T03, T04, T05, T06, T07, T08, T09
               FROM setl_i08)
      ON T01, T02, T03, T04, T05, T06, T07, T08, T09 INTO NAME rule_id VALUE failed) u
JOIN periods p ON u.setl_date BETWEEN p.period_start AND p.period_end
GROUP BY ALL
UNION ALL BY NAME
-- flow indicators
SELECT 'I' AS kind, f.code, f.attr_code, p.period_type, p.period_start, p.period_end,
       sum(f.num) AS num, sum(f.den) AS den
FROM setl_flow f JOIN periods p ON f.setl_date BETWEEN p.period_start AND p.period_end
GROUP BY ALL
UNION ALL BY NAME
SELECT 'I' AS kind, 'I19' AS code, county AS attr_code, period_type, period_start, period_end,
       CAST(CASE WHEN active THEN 1 ELSE 0 END AS DECIMAL(38, 2)) AS num,
       CAST(1 AS DECIMAL(38, 2)) AS den
FROM i19_counties
UNION ALL BY NAME
SELECT 'I' AS kind, 'C01' AS code, c.attr_code, p.period_type, p.period_start, p.period_end,
       sum(c.medfee_sumamt) FILTER (WHERE c.setl_date BETWEEN p.period_start AND p.period_end)
           AS cur_sum,
       count(*) FILTER (WHERE c.setl_date BETWEEN p.period_start AND p.period_end) AS cur_cnt,
       sum(c.medfee_sumamt) FILTER (WHERE c.setl_date NOT BETWEEN p.period_start AND p.period_end)
           AS prev_sum,
       count(*) FILTER (WHERE c.setl_date NOT BETWEEN p.period_start AND p.period_end) AS prev_cnt
FROM c01_records c
JOIN periods p
  ON c.setl_date BETWEEN p.period_start AND p.period_end
  OR c.setl_date BETWEEN CAST(p.period_start - INTERVAL 1 YEAR AS DATE)
                     AND last_day(CAST(p.period_end - INTERVAL 1 YEAR AS DATE))
GROUP BY ALL;
