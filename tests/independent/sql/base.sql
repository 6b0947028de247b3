-- base.sql: business dates, regions, the local province, region attribution and the
-- record versions that take part (dedupe by event_id, as_of cut, latest per business key).
-- Inputs (created by oracle.py): raw_<stream>, regions, institutions, population, matters,
-- periods(period_type, period_start, period_end), params(as_of, i13_days, s03_n, s04_n).

-- Asia/Shanghai business date of a UTC instant
CREATE OR REPLACE MACRO bd(ts) AS CAST(timezone('Asia/Shanghai', ts) AS DATE);

-- characters with the Unicode White_Space property
CREATE OR REPLACE MACRO ws_class() AS
    '[\t\n\x0B\f\r \x{85}\x{A0}\x{1680}\x{2000}-\x{200A}\x{2028}\x{2029}\x{202F}\x{205F}\x{3000}]';

------------------------------------------------------------------------------ regions
-- the local province = the parent of the city rows (Ningxia: 640000)
CREATE OR REPLACE TEMP TABLE local_province AS
SELECT DISTINCT parent_code AS prov, substr(parent_code, 1, 2) AS prefix
FROM regions WHERE level = 'city';

-- every regions.csv row of the local province (its counties, cities and itself)
CREATE OR REPLACE TEMP TABLE local_regions AS
SELECT r.* FROM regions r, local_province l WHERE substr(r.code, 1, 2) = l.prefix;

CREATE OR REPLACE TEMP TABLE local_county_city AS          -- "local institution" codes
SELECT code FROM local_regions WHERE level IN ('county', 'city');

CREATE OR REPLACE TEMP TABLE local_insured AS              -- "locally insured" codes
SELECT code FROM local_regions WHERE level IN ('county', 'city', 'province');

CREATE OR REPLACE TEMP TABLE province_prefixes AS          -- first two digits of the 34
SELECT DISTINCT substr(code, 1, 2) AS prefix FROM regions WHERE level = 'province';

CREATE OR REPLACE TEMP TABLE other_province_prefixes AS
SELECT prefix FROM province_prefixes WHERE prefix <> (SELECT prefix FROM local_province);

-- attribution of a region code to the output regions: county -> county + pooling +
-- province; city (市本级) -> pooling + province; province's own code -> province.
-- (Unknown codes with the local prefix -> province only: see rollup.sql.)
CREATE OR REPLACE TEMP TABLE attr_map AS
SELECT code, code AS region_code, 'county' AS region_level
FROM local_regions WHERE level = 'county'
UNION ALL
SELECT code, pooling_code, 'pooling' FROM local_regions WHERE level IN ('county', 'city')
UNION ALL
SELECT code, (SELECT prov FROM local_province), 'province' FROM local_regions;

-- the regions that get output rows
CREATE OR REPLACE TEMP TABLE out_regions AS
SELECT code AS region_code, 'county' AS region_level FROM local_regions WHERE level = 'county'
UNION
SELECT pooling_code, 'pooling' FROM local_regions
WHERE level IN ('county', 'city') AND pooling_code IS NOT NULL
UNION
SELECT prov, 'province' FROM local_province;

-- matters.csv rows that apply to a code: rows without region_code (specificity 0), rows of
-- the province when the code has the local prefix (1), of the code's pooling region (2),
-- of the code itself (3); the most specific row per matter_code wins.  Computed for the
-- codes of filings and for the output regions.
CREATE OR REPLACE TEMP TABLE scope_codes AS
SELECT DISTINCT insu_admdvs AS code FROM raw_filing
UNION SELECT region_code FROM out_regions;

CREATE OR REPLACE TEMP TABLE code_scope AS
SELECT code, code AS scope_code, 3 AS specificity FROM scope_codes
UNION ALL
SELECT s.code, r.pooling_code, 2
FROM scope_codes s JOIN local_regions r ON r.code = s.code AND r.level IN ('county', 'city')
UNION ALL
SELECT s.code, l.prov, 1 FROM scope_codes s, local_province l WHERE substr(s.code, 1, 2) = l.prefix;

CREATE OR REPLACE TEMP TABLE applicable_matters AS
WITH candidates AS (
    SELECT cs.code, m.*, cs.specificity
    FROM code_scope cs JOIN matters m ON m.region_code = cs.scope_code
    UNION ALL
    SELECT s.code, m.*, 0 FROM scope_codes s, matters m WHERE m.region_code IS NULL
)
SELECT * FROM candidates
QUALIFY row_number() OVER (PARTITION BY code, matter_code ORDER BY specificity DESC) = 1;

------------------------------------------------------------------------------ versions
-- dedupe by event_id: the copy with the smallest (source path, record index) wins, then
-- the as_of cut on event_time (the copy is chosen first; as_of applies after)
CREATE OR REPLACE MACRO accepted_copies(t) AS TABLE
SELECT * EXCLUDE (_src, _file_ord, _rec_idx) FROM query_table(t)
QUALIFY row_number() OVER (PARTITION BY event_id ORDER BY _file_ord, _rec_idx) = 1;

CREATE OR REPLACE TEMP TABLE enrolment_v AS
SELECT * FROM accepted_copies('raw_enrolment') WHERE event_time <= (SELECT as_of FROM params);
CREATE OR REPLACE TEMP TABLE contribution_v AS
SELECT * FROM accepted_copies('raw_contribution') WHERE event_time <= (SELECT as_of FROM params);
CREATE OR REPLACE TEMP TABLE settlement_v AS
SELECT * FROM accepted_copies('raw_settlement') WHERE event_time <= (SELECT as_of FROM params);
CREATE OR REPLACE TEMP TABLE settlement_list_v AS
SELECT * FROM accepted_copies('raw_settlement_list') WHERE event_time <= (SELECT as_of FROM params);
CREATE OR REPLACE TEMP TABLE filing_v AS
SELECT * FROM accepted_copies('raw_filing') WHERE event_time <= (SELECT as_of FROM params);

-- latest version per business key (ties: the greater event_id)
CREATE OR REPLACE TEMP TABLE settlement_latest AS
SELECT * FROM settlement_v
QUALIFY row_number() OVER (PARTITION BY setl_id ORDER BY event_time DESC, event_id DESC) = 1;

CREATE OR REPLACE TEMP TABLE filing_latest AS
SELECT * FROM filing_v
QUALIFY row_number() OVER (PARTITION BY case_id ORDER BY event_time DESC, event_id DESC) = 1;
-- enrolment: latest per (psn_no, insutype) at each period end, in enrolment.sql
-- contribution: business key event_id, so contribution_v already holds one version each
