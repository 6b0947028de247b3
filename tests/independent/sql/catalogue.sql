-- catalogue.sql: I04 S01 S05, computed directly at each output region from the matters.csv
-- rows that apply there (base.sql applicable_matters: most specific row per matter_code).
-- They do not depend on the period: the same values for every MONTH and YTD row.
CREATE OR REPLACE TEMP TABLE catalogue_values AS
WITH m AS (
    SELECT o.region_code, o.region_level, a.*
    FROM out_regions o JOIN applicable_matters a ON a.code = o.region_code
),
v AS (
    SELECT region_code, region_level, 'I04' AS code,
           count(*) FILTER (WHERE online_capable) AS num, count(*) AS den
    FROM m GROUP BY ALL
    UNION ALL
    SELECT region_code, region_level, 'S01',
           count(*) FILTER (WHERE promised_working_days = 0), count(*)
    FROM m GROUP BY ALL
    UNION ALL
    SELECT region_code, region_level, 'S05',
           sum(statutory_working_days - promised_working_days), sum(statutory_working_days)
    FROM m WHERE statutory_working_days > 0 GROUP BY ALL
)
SELECT v.code, v.region_code, v.region_level, p.period_type, p.period_start, p.period_end,
       CAST(v.num AS DECIMAL(38, 2)) AS num, CAST(v.den AS DECIMAL(38, 2)) AS den
FROM v CROSS JOIN periods p;
