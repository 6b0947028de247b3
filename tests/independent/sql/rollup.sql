-- rollup.sql: region attribution of the facts and the output grids.
-- A fact's attr_code -> county + pooling + province (county code), pooling + province
-- (city code), province (its own code, or an unknown code with the local prefix); any
-- other code -> nowhere.  Components add across regions.
CREATE OR REPLACE TEMP TABLE facts AS
SELECT * FROM facts_enrolment
UNION ALL BY NAME SELECT * FROM facts_contribution
UNION ALL BY NAME SELECT * FROM facts_settlement
UNION ALL BY NAME SELECT * FROM facts_filing;

CREATE OR REPLACE TEMP TABLE facts_by_region AS
WITH attributed AS (
    SELECT f.*, m.region_code, m.region_level
    FROM facts f JOIN attr_map m ON m.code = f.attr_code
    UNION ALL BY NAME
    SELECT f.*, l.prov AS region_code, 'province' AS region_level
    FROM facts f, local_province l
    WHERE substr(f.attr_code, 1, 2) = l.prefix
      AND f.attr_code NOT IN (SELECT code FROM local_regions)
)
SELECT kind, code, region_code, region_level, period_type, period_start, period_end,
       sum(num) AS num, sum(den) AS den,
       sum(cur_sum) AS cur_sum, sum(cur_cnt) AS cur_cnt,
       sum(prev_sum) AS prev_sum, sum(prev_cnt) AS prev_cnt
FROM attributed
GROUP BY ALL;

-- every indicator x output region x period, 0/0 where nothing was counted
CREATE OR REPLACE TEMP TABLE out_indicators AS
WITH grid AS (
    SELECT i.code AS indicator_code, o.region_code, o.region_level,
           p.period_type, p.period_start, p.period_end
    FROM (SELECT unnest(['I04', 'I07', 'I08', 'I09', 'I10', 'I13', 'I14', 'I17', 'I19', 'I21',
                         'I22', 'I24', 'I25', 'I26', 'R01', 'R02', 'R03', 'R04', 'R05', 'S01',
                         'S02', 'S03', 'S04', 'S05', 'C01']) AS code) i
    CROSS JOIN out_regions o CROSS JOIN periods p
)
SELECT g.*,
       coalesce(f.num, c.num, 0) AS num, coalesce(f.den, c.den, 0) AS den,
       coalesce(f.cur_sum, 0) AS cur_sum, coalesce(f.cur_cnt, 0) AS cur_cnt,
       coalesce(f.prev_sum, 0) AS prev_sum, coalesce(f.prev_cnt, 0) AS prev_cnt
FROM grid g
LEFT JOIN facts_by_region f
  ON f.kind = 'I' AND f.code = g.indicator_code AND f.region_code = g.region_code
 AND f.period_type = g.period_type AND f.period_end = g.period_end
LEFT JOIN catalogue_values c
  ON c.code = g.indicator_code AND c.region_code = g.region_code
 AND c.period_type = g.period_type AND c.period_end = g.period_end;

-- every rule x output region x period, 0-checked rows included
CREATE OR REPLACE TEMP TABLE out_rules AS
WITH rules AS (
    SELECT 'E0' || i AS rule_id, 'enrolment' AS stream FROM range(1, 10) t(i)
    UNION ALL SELECT 'T0' || i, 'settlement' FROM range(1, 10) t(i)
    UNION ALL SELECT 'F0' || i, 'filing' FROM range(1, 5) t(i)
),
grid AS (
    SELECT r.rule_id, r.stream, o.region_code, o.region_level,
           p.period_type, p.period_start, p.period_end
    FROM rules r CROSS JOIN out_regions o CROSS JOIN periods p
)
SELECT g.*, coalesce(f.den, 0) AS checked, coalesce(f.num, 0) AS failed
FROM grid g
LEFT JOIN facts_by_region f
  ON f.kind = 'R' AND f.code = g.rule_id AND f.region_code = g.region_code
 AND f.period_type = g.period_type AND f.period_end = g.period_end;
