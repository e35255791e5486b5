-- A window's running totals by week instead of by month (issue 34, docs/PERFORMANCE.md "Ten times Glow").
--
-- A window's per-profile counts are the running totals at its end less those at its start. Kept by month, a start or
-- an end inside a month was made up from up to half a month of daily rows per profile, about 62,000 rows a day at ten
-- times Glow's size: more than the two running rows themselves. Kept by week (weeks begin on Monday, as
-- date_trunc('week') has them), an edge is at most three days from a week's start (rollups.plan_window): the
-- per-profile part of a 90-day get read 2 x 200,000 running rows and one day instead of seven, in half the time.
--
-- activity_weekly_running: for every profile, a row for every week from its first active week to the last week the
-- rollups hold (the week of activity_daily's last day), holding its counts of all days before that week's end. The
-- refresh keeps it (functions/refresh.sql, refresh_roll_running_totals), the first build writes it
-- (functions/build.sql, build_rollups_running). It takes the place of activity_monthly_running, which nothing reads
-- any more.

CREATE TABLE activity.activity_weekly_running (
    profile_id      uuid   NOT NULL,
    week            date   NOT NULL,
    sessions        bigint NOT NULL,
    active_sessions bigint NOT NULL,
    logins          bigint NOT NULL,
    grants          bigint NOT NULL,
    emulations      bigint NOT NULL,
    problems        bigint NOT NULL,
    CONSTRAINT activity_weekly_running_pkey PRIMARY KEY (profile_id, week)
);

-- Filled from the daily rows already there, unless a first build is under way: its own step writes the table when
-- its months are done. At ten times Glow's size: 21M rows, about two minutes, the platform's tables untouched.
INSERT INTO activity.activity_weekly_running
SELECT f.profile_id, g.week::date,
       sum(coalesce(w.sessions, 0)) OVER x, sum(coalesce(w.active_sessions, 0)) OVER x,
       sum(coalesce(w.logins, 0)) OVER x, sum(coalesce(w.grants, 0)) OVER x,
       sum(coalesce(w.emulations, 0)) OVER x, sum(coalesce(w.problems, 0)) OVER x
FROM (SELECT profile_id, date_trunc('week', min(day)::timestamp) AS first
      FROM activity.activity_daily GROUP BY profile_id) f
CROSS JOIN (SELECT date_trunc('week', max(day)::timestamp) AS week FROM activity.activity_daily) last
CROSS JOIN LATERAL generate_series(f.first, last.week, interval '7 days') g(week)
LEFT JOIN (SELECT profile_id, date_trunc('week', day::timestamp) AS week,
                  -- a week's sums as integers: their running sums are then bigint, not numeric
                  sum(sessions)::integer AS sessions, sum(active_sessions)::integer AS active_sessions,
                  sum(logins)::integer AS logins, sum(grants)::integer AS grants,
                  sum(emulations)::integer AS emulations, sum(problems)::integer AS problems
           FROM activity.activity_daily GROUP BY 1, 2) w ON w.profile_id = f.profile_id AND w.week = g.week
WHERE NOT EXISTS (SELECT 1 FROM activity.rollup_build)
WINDOW x AS (PARTITION BY f.profile_id ORDER BY g.week)
ORDER BY 2, 1;  -- a week's rows together

-- a window's two weeks, from the index alone
CREATE INDEX activity_weekly_running_week_idx ON activity.activity_weekly_running (week)
    INCLUDE (profile_id, sessions, active_sessions, logins, grants, emulations, problems);
GRANT SELECT ON activity.activity_weekly_running TO activity_runtime;
ALTER TABLE activity.activity_weekly_running SET (autovacuum_vacuum_scale_factor = 0.02);

DROP TABLE activity.activity_monthly_running;
ANALYZE activity.activity_weekly_running;
