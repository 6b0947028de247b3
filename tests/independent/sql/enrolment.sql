-- enrolment.sql: period-end snapshots, rules E01-E09, I07 and I09.
-- Output: facts_enrolment(kind, code, stream, attr_code, period_type, period_start,
--         period_end, num, den)

-- ISO 7064 MOD 11-2 check character of the first 17 digits of a resident ID
CREATE OR REPLACE MACRO ric_check(c) AS substr(
    '10X98765432',
    1 + CAST(list_sum(list_transform(range(17), lambda i:
        TRY_CAST(substr(c, i + 1, 1) AS INTEGER)
        * [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2][i + 1])) % 11 AS BIGINT),
    1);

-- stock at each period end: latest version per (psn_no, insutype) among the versions whose
-- event_time's business date <= the period's last day (event_time <= as_of already applied)
CREATE OR REPLACE TEMP TABLE enr_snapshot AS
SELECT pe.period_end, e.*
FROM (SELECT DISTINCT period_end FROM periods) pe
JOIN enrolment_v e ON bd(e.event_time) <= pe.period_end
QUALIFY row_number() OVER (PARTITION BY pe.period_end, e.psn_no, e.insutype
                           ORDER BY e.event_time DESC, e.event_id DESC) = 1;

-- one row per snapshot record, one boolean per rule: true = the record FAILS the rule
CREATE OR REPLACE TEMP TABLE enr_verdicts AS
WITH ric AS (
    SELECT s.*,
           psn_cert_type = '01' AS is_ric,
           CASE WHEN regexp_full_match(certno, '[0-9]{17}[0-9X]')
                THEN CAST(try_strptime(substr(certno, 7, 8), '%Y%m%d') AS DATE) END AS ric_birth,
           regexp_full_match(certno, '[0-9]{17}[0-9X]')
           AND substr(certno, 1, 2) IN (SELECT prefix FROM province_prefixes)
           AND ric_birth IS NOT NULL
           AND ric_birth >= DATE '1900-01-01'
           AND ric_birth <= bd(event_time)
           AND substr(certno, 18, 1) = ric_check(certno) AS ric_valid
    FROM enr_snapshot s
),
double_enrolled AS (            -- 重复参保 within one snapshot, whatever the regions
    SELECT period_end, certno
    FROM enr_snapshot
    WHERE psn_insu_stas = '1' AND insutype IN ('310', '390')
    GROUP BY period_end, certno
    HAVING count(DISTINCT insutype) = 2
)
SELECT r.period_end, r.psn_no, r.insutype, r.insu_admdvs, r.certno, r.psn_insu_stas,
       r.event_time, r.event_id,
       coalesce(r.is_ric AND NOT r.ric_valid, false) AS E01,
       NOT coalesce(length(r.psn_name) BETWEEN 2 AND 30
                    AND NOT regexp_matches(r.psn_name, '\p{Nd}')
                    AND NOT regexp_matches(r.psn_name, '^' || ws_class() || '|' || ws_class() || '$'),
                    false) AS E02,
       NOT coalesce(r.gend IN ('0', '1', '2', '9')
                    AND (NOT (r.is_ric AND r.ric_valid)
                         OR (r.gend IN ('1', '2')
                             AND r.gend = CASE WHEN TRY_CAST(substr(r.certno, 17, 1) AS INTEGER) % 2 = 1
                                               THEN '1' ELSE '2' END)),
                    false) AS E03,
       NOT coalesce(NOT (r.is_ric AND r.ric_valid) OR r.brdy = r.ric_birth, false) AS E04,
       NOT coalesce(r.insutype IN ('310', '320', '330', '340', '350', '360', '370', '380', '390',
                                   '391', '392', '399', '410', '510')
                    AND r.psn_insu_stas IN ('0', '1', '2', '4')
                    AND r.psn_cert_type IN ('01', '02', '03', '04', '05', '06', '07', '08', '09',
                                            '10', '11', '12', '13', '14', '15', '16', '17',
                                            '90', '99'),
                    false) AS E05,
       r.insu_admdvs NOT IN (SELECT code FROM local_insured) AS E06,
       NOT coalesce((r.paus_insu_date IS NULL OR r.crt_insu_date <= r.paus_insu_date)
                    AND r.crt_insu_date <= bd(r.event_time), false) AS E07,
       r.insutype = '310'
       AND NOT coalesce(regexp_matches(r.emp_no, '[^' || substr(ws_class(), 2)), false) AS E08,
       r.psn_insu_stas = '1' AND r.insutype IN ('310', '390') AND d.certno IS NOT NULL AS E09
FROM ric r
LEFT JOIN double_enrolled d ON d.period_end = r.period_end AND d.certno = r.certno;

-- I07 population (and the enrolment rules' population): psn_insu_stas "1" at period end
CREATE OR REPLACE TEMP TABLE enr_i07 AS
SELECT *, NOT (E01 OR E02 OR E03 OR E04 OR E05 OR E06 OR E07 OR E08 OR E09) AS passes
FROM enr_verdicts WHERE psn_insu_stas = '1';

-- I09 persons: active 310/390 passing the blocking rules (E05, E06), each certno once, in
-- the insu_admdvs of its record with the greatest event_time (ties: event_id)
CREATE OR REPLACE TEMP TABLE enr_i09_persons AS
SELECT period_end, certno, insu_admdvs
FROM enr_verdicts
WHERE psn_insu_stas = '1' AND insutype IN ('310', '390') AND NOT E05 AND NOT E06
QUALIFY row_number() OVER (PARTITION BY period_end, certno
                           ORDER BY event_time DESC, event_id DESC) = 1;

CREATE OR REPLACE TEMP TABLE facts_enrolment AS
WITH i07 AS (
    SELECT 'I' AS kind, 'I07' AS code, insu_admdvs AS attr_code, period_end,
           count(*) FILTER (WHERE passes) AS num, count(*) AS den
    FROM enr_i07 GROUP BY ALL
),
rules AS (
    SELECT 'R' AS kind, rule_id AS code, insu_admdvs AS attr_code, period_end,
           count(*) FILTER (WHERE failed) AS num, count(*) AS den
    FROM (UNPIVOT enr_i07 ON E01, E02, E03, E04, E05, E06, E07, E08, E09
          INTO NAME rule_id VALUE failed)
    GROUP BY ALL
),
i09_num AS (
    SELECT 'I' AS kind, 'I09' AS code, insu_admdvs AS attr_code, period_end,
           count(*) AS num, 0 AS den
    FROM enr_i09_persons GROUP BY ALL
),
i09_den AS (                    -- registered population of each county for the period's year
    SELECT 'I' AS kind, 'I09' AS code, r.code AS attr_code, pe.period_end,
           0 AS num, coalesce(p.registered_population, 0) AS den
    FROM (SELECT DISTINCT period_end FROM periods) pe
    CROSS JOIN (SELECT code FROM local_regions WHERE level = 'county') r
    LEFT JOIN population p ON p.county_code = r.code AND p.year = year(pe.period_end)
),
stock AS (
    SELECT * FROM i07 UNION ALL SELECT * FROM rules
    UNION ALL SELECT * FROM i09_num UNION ALL SELECT * FROM i09_den
)
SELECT s.kind, s.code, CASE WHEN s.kind = 'R' THEN 'enrolment' END AS stream, s.attr_code,
       p.period_type, p.period_start, p.period_end,
       CAST(s.num AS DECIMAL(38, 2)) AS num, CAST(s.den AS DECIMAL(38, 2)) AS den
FROM stock s JOIN periods p ON p.period_end = s.period_end;   -- MONTH and YTD alike
