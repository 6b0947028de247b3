-- filing.sql: rules F01-F04, the completion rule (working days), and the case indicators
-- I21 I24 I25 I26 S02 S03 S04.
-- Inputs besides base.sql: cal(d DATE, is_wd BOOLEAN) built by oracle.py from
-- chinese_calendar (Monday-Friday outside its years).
-- Output: facts_filing(kind, code, stream, attr_code, period_type, period_start, period_end,
--         num, den)

-- working days to count forward from the submission date's working-day number:
-- deadline(d, 0) = d if d is a working day, else the next one; deadline(d, N > 0) = the
-- N-th working day after d (a negative promise is taken as 0)
CREATE OR REPLACE MACRO wd_advance(n, start_is_wd) AS
    CASE WHEN n > 0 THEN n WHEN start_is_wd THEN 0 ELSE 1 END;

-- working-day calendar: cum = number of working days up to and including d
CREATE OR REPLACE TEMP TABLE workdays AS
SELECT d, is_wd, sum(CASE WHEN is_wd THEN 1 ELSE 0 END) OVER (ORDER BY d) AS cum FROM cal;

-- one row per latest case version; one boolean per rule: true = FAILS the rule
CREATE OR REPLACE TEMP TABLE filing_verdicts AS
SELECT f.*,
       bd(f.submitted_time) AS submitted_date,
       bd(f.completed_time) AS completed_date,
       NOT (f.status IN ('SUBMITTED', 'ACCEPTED', 'COMPLETED', 'REJECTED')
            AND f.channel IN ('ONLINE', 'MOBILE', 'SMS', 'WINDOW', 'KIOSK', 'BANK', 'PHONE',
                              'MAIL')) AS F01,
       NOT ((f.status IN ('COMPLETED', 'REJECTED')) = (f.completed_time IS NOT NULL)
            AND coalesce(f.completed_time >= f.submitted_time, true)) AS F02,
       NOT EXISTS (SELECT 1 FROM applicable_matters m
                   WHERE m.code = f.insu_admdvs AND m.matter_code = f.matter_code) AS F03,
       coalesce(f.rating NOT BETWEEN 1 AND 5, false) AS F04
FROM filing_latest f;

-- business cases: passing every (blocking) filing rule, with their matter's applicable row
-- and the deadlines deadline(submitted date, N) for N = own promise, S03's and S04's N
CREATE OR REPLACE TEMP TABLE cases AS
WITH c AS (
    SELECT v.*, m.online_capable
    FROM filing_verdicts v
    LEFT JOIN applicable_matters m ON m.code = v.insu_admdvs AND m.matter_code = v.matter_code
    WHERE NOT (F01 OR F02 OR F03 OR F04)
),
n AS (          -- how many working days to advance from the submission date's count
    SELECT c.*, w.cum AS start_cum,
           w.cum + wd_advance(c.promised_working_days, w.is_wd) AS own_cum,
           w.cum + wd_advance((SELECT s03_n FROM params), w.is_wd) AS s03_cum,
           w.cum + wd_advance((SELECT s04_n FROM params), w.is_wd) AS s04_cum
    FROM c LEFT JOIN workdays w ON w.d = c.submitted_date
)
SELECT n.* EXCLUDE (start_cum, own_cum, s03_cum, s04_cum),
       -- a deadline beyond the calendar (null) is later than every date compared with it
       coalesce(d_own.d, DATE '9999-12-31') AS deadline_own,
       coalesce(d_s03.d, DATE '9999-12-31') AS deadline_s03,
       coalesce(d_s04.d, DATE '9999-12-31') AS deadline_s04
FROM n
LEFT JOIN workdays d_own ON d_own.is_wd AND d_own.cum = n.own_cum
LEFT JOIN workdays d_s03 ON d_s03.is_wd AND d_s03.cum = n.s03_cum
LEFT JOIN workdays d_s04 ON d_s04.is_wd AND d_s04.cum = n.s04_cum;

-- completion rule: completed cases by completion date (on time or not) plus cases still
-- open at as_of whose deadline is before as_of's business date, dated by their deadline
CREATE OR REPLACE TEMP TABLE completion AS
WITH variants AS (
    SELECT 'I21' AS code, c.*, deadline_own AS deadline FROM cases c
    WHERE matter_code = 'OFFSITE_FILING' AND cross_province AND channel IN ('ONLINE', 'MOBILE')
    UNION ALL
    SELECT 'I24', c.*, deadline_own FROM cases c
    UNION ALL
    SELECT 'S03', c.*, deadline_s03 FROM cases c WHERE matter_code = 'MANUAL_REIMB'
    UNION ALL
    SELECT 'S04', c.*, deadline_s04 FROM cases c WHERE matter_code = 'TRANSFER'
)
SELECT code, insu_admdvs AS attr_code, completed_date AS fact_date,
       CASE WHEN completed_date <= deadline THEN 1 ELSE 0 END AS num, 1 AS den
FROM variants WHERE status = 'COMPLETED'
UNION ALL
SELECT code, insu_admdvs, deadline, 0, 1
FROM variants
WHERE status IN ('SUBMITTED', 'ACCEPTED')
  AND deadline < (SELECT bd(as_of) FROM params);

CREATE OR REPLACE TEMP TABLE case_flow AS
SELECT code, attr_code, fact_date, num, den FROM completion
UNION ALL
-- I25: completed cases whose matter is online-capable; numerator online or mobile
SELECT 'I25', insu_admdvs, completed_date,
       CASE WHEN channel IN ('ONLINE', 'MOBILE') THEN 1 ELSE 0 END, 1
FROM cases WHERE status = 'COMPLETED' AND online_capable
UNION ALL
-- I26: completed cases with a rating; numerator rating >= 4
SELECT 'I26', insu_admdvs, completed_date, CASE WHEN rating >= 4 THEN 1 ELSE 0 END, 1
FROM cases WHERE status = 'COMPLETED' AND rating IS NOT NULL
UNION ALL
-- S02: completed cases; numerator online or mobile
SELECT 'S02', insu_admdvs, completed_date,
       CASE WHEN channel IN ('ONLINE', 'MOBILE') THEN 1 ELSE 0 END, 1
FROM cases WHERE status = 'COMPLETED';

CREATE OR REPLACE TEMP TABLE facts_filing AS
SELECT 'I' AS kind, f.code, CAST(NULL AS VARCHAR) AS stream, f.attr_code,
       p.period_type, p.period_start, p.period_end,
       CAST(sum(f.num) AS DECIMAL(38, 2)) AS num, CAST(sum(f.den) AS DECIMAL(38, 2)) AS den
FROM case_flow f JOIN periods p ON f.fact_date BETWEEN p.period_start AND p.period_end
GROUP BY ALL
UNION ALL BY NAME
-- filing rules: latest case versions with submitted_time in the period, by insu_admdvs
SELECT 'R' AS kind, u.rule_id AS code, 'filing' AS stream, u.insu_admdvs AS attr_code,
       p.period_type, p.period_start, p.period_end,
       CAST(count(*) FILTER (WHERE u.failed) AS DECIMAL(38, 2)) AS num,
       CAST(count(*) AS DECIMAL(38, 2)) AS den
FROM (UNPIVOT (SELECT insu_admdvs, submitted_date, F01, F02, F03, F04 FROM filing_verdicts)
      ON F01, F02, F03, F04 INTO NAME rule_id VALUE failed) u
JOIN periods p ON u.submitted_date BETWEEN p.period_start AND p.period_end
GROUP BY ALL;
