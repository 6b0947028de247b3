-- contribution.sql: I10 contribution upload timeliness (T+1 in business dates).
-- Contributions have no blocking rules; business key event_id (one version each).
CREATE OR REPLACE TEMP TABLE facts_contribution AS
SELECT 'I' AS kind, 'I10' AS code, CAST(NULL AS VARCHAR) AS stream,
       c.insu_admdvs AS attr_code, p.period_type, p.period_start, p.period_end,
       CAST(count(*) FILTER (WHERE bd(c.upld_time) <= bd(c.clct_time) + 1)
            AS DECIMAL(38, 2)) AS num,
       CAST(count(*) AS DECIMAL(38, 2)) AS den
FROM contribution_v c
JOIN periods p ON bd(c.clct_time) BETWEEN p.period_start AND p.period_end
GROUP BY ALL;
