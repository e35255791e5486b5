-- Whole months of a window as the difference of two running totals per profile, instead of a sum over every month
-- in it: an admin's ten months read 2 x 20k rows instead of 200k (docs/PERFORMANCE.md). Dense: every profile
-- has a row for every month from its first active month to the last month the rollups hold, so the two rows of
-- a window are found by month alone, from one index range each.
CREATE MATERIALIZED VIEW activity_monthly_running AS
WITH last AS (SELECT max(month) AS month FROM activity_monthly),
grid AS (
    SELECT f.profile_id, g.month::date AS month
    FROM (SELECT profile_id, min(month) AS first FROM activity_monthly GROUP BY profile_id) f
    CROSS JOIN last
    CROSS JOIN LATERAL generate_series(f.first, last.month, interval '1 month') g(month)
)
SELECT grid.profile_id, grid.month,
       (sum(coalesce(m.sessions, 0)) OVER w)::bigint        AS sessions,
       (sum(coalesce(m.active_sessions, 0)) OVER w)::bigint AS active_sessions,
       (sum(coalesce(m.logins, 0)) OVER w)::bigint          AS logins,
       (sum(coalesce(m.grants, 0)) OVER w)::bigint          AS grants,
       (sum(coalesce(m.emulations, 0)) OVER w)::bigint      AS emulations,
       (sum(coalesce(m.problems, 0)) OVER w)::bigint        AS problems
FROM grid LEFT JOIN activity_monthly m ON m.profile_id = grid.profile_id AND m.month = grid.month
WINDOW w AS (PARTITION BY grid.profile_id ORDER BY grid.month)
ORDER BY grid.month, grid.profile_id;  -- a month's rows together: one range per window end
CREATE UNIQUE INDEX activity_monthly_running_uidx ON activity_monthly_running (profile_id, month);
CREATE INDEX activity_monthly_running_month_idx ON activity_monthly_running (month)
    INCLUDE (profile_id, sessions, active_sessions, logins, grants, emulations, problems);
ANALYZE activity_monthly_running;
