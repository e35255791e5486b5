-- Every profile's activity a day, summed (issue 34, docs/PERFORMANCE.md "Ten times Glow").
--
-- An admin's search without filters counts the window's sessions of every profile but the deleted ones
-- (total_count). From the per-profile rollups that is a sum over every profile's rows: two running rows a profile
-- and the days at each edge, 200,000 profiles at ten times Glow's size. activity_platform_daily holds those sums a
-- day (730 rows for two years), so that the count is the window's days here plus the partial days from the event
-- tables (rollups.per_profile_counts_sql).
--
-- It leaves out the profiles deleted as of its last update (activity_platform_left_out); a reader sets it right for
-- those deleted or restored since from their own rollup rows (none or a few). Its rows are the sums of
-- activity_daily's rows of each day over the profiles not left out, always: the refresh brings both up to date
-- (functions/refresh.sql, refresh_sum_platform_days), the first build writes a month's days with the month
-- (functions/build.sql, build_rollups_month).

CREATE TABLE activity.activity_platform_left_out (
    profile_id uuid PRIMARY KEY
);
INSERT INTO activity.activity_platform_left_out SELECT id FROM public.profiles WHERE deleted_at IS NOT NULL;

CREATE TABLE activity.activity_platform_daily (
    day             date   PRIMARY KEY,
    sessions        bigint NOT NULL,
    active_sessions bigint NOT NULL,
    logins          bigint NOT NULL,
    grants          bigint NOT NULL,
    emulations      bigint NOT NULL,
    problems        bigint NOT NULL
);

-- From the daily rows already there (a first build under way adds its next months' days itself).
INSERT INTO activity.activity_platform_daily
SELECT d.day, sum(d.sessions), sum(d.active_sessions), sum(d.logins), sum(d.grants), sum(d.emulations),
       sum(d.problems)
FROM activity.activity_daily d
WHERE NOT EXISTS (SELECT 1 FROM activity.activity_platform_left_out o WHERE o.profile_id = d.profile_id)
GROUP BY d.day
ORDER BY d.day;

GRANT SELECT ON activity.activity_platform_daily, activity.activity_platform_left_out TO activity_runtime;
ANALYZE activity.activity_platform_daily, activity.activity_platform_left_out;
