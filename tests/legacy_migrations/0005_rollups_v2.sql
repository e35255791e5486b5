-- Rollups v2: sized so that REFRESH ... CONCURRENTLY stays well under a minute at millions of events.
--
-- A per-(profile, day) rollup over two years is nearly as large as the events themselves (most profiles
-- have at most one event a day), and CONCURRENTLY's duplicate check sorts every row: at 7M events it took
-- over 100 s. So: whole months come from activity_monthly, the days of the last three months (and the
-- current one) from activity_recent_daily, and anything else - older loose days, partial days - from the
-- event tables by their time indexes. Search reads the session rows themselves.
DROP MATERIALIZED VIEW IF EXISTS activity_profile_totals;
DROP MATERIALIZED VIEW IF EXISTS activity_daily;
DROP MATERIALIZED VIEW IF EXISTS activity_sessions;

CREATE MATERIALIZED VIEW activity_monthly AS
WITH events AS (
    SELECT profile_id, created_at AS at, CASE WHEN active THEN 'a' ELSE 's' END::"char" AS kind FROM sessions
    UNION ALL
    SELECT profile_id, logged_in_at, 'l'::"char" FROM logins
    UNION ALL
    SELECT profile_id, created_at, CASE WHEN kind = 'emulation' THEN 'e' ELSE 'g' END::"char" FROM grants
    UNION ALL
    SELECT profile_id, created_at, 'p'::"char" FROM problems WHERE profile_id IS NOT NULL
)
SELECT profile_id,
       date_trunc('month', at AT TIME ZONE 'UTC')::date       AS month,
       count(*) FILTER (WHERE kind IN ('s', 'a'))::integer     AS sessions,
       count(*) FILTER (WHERE kind = 'a')::integer             AS active_sessions,
       count(*) FILTER (WHERE kind = 'l')::integer             AS logins,
       count(*) FILTER (WHERE kind IN ('g', 'e'))::integer     AS grants,
       count(*) FILTER (WHERE kind = 'e')::integer             AS emulations,
       count(*) FILTER (WHERE kind = 'p')::integer             AS problems,
       min((at AT TIME ZONE 'UTC')::date) FILTER (WHERE kind IN ('s', 'a', 'l')) AS first_active_day,
       max((at AT TIME ZONE 'UTC')::date) FILTER (WHERE kind IN ('s', 'a', 'l')) AS last_active_day
FROM events
GROUP BY profile_id, month
ORDER BY profile_id, month;  -- one profile's rows together: few pages per profile lookup
CREATE UNIQUE INDEX activity_monthly_uidx ON activity_monthly (profile_id, month);
CREATE INDEX activity_monthly_month_idx ON activity_monthly (month);

-- Days of the current month and the three before it (as of the refresh).
CREATE MATERIALIZED VIEW activity_recent_daily AS
WITH since AS (SELECT (date_trunc('month', now() AT TIME ZONE 'UTC') - interval '3 months') AT TIME ZONE 'UTC' AS at),
events AS (
    SELECT profile_id, created_at AS at, CASE WHEN active THEN 'a' ELSE 's' END::"char" AS kind
    FROM sessions WHERE created_at >= (SELECT at FROM since)
    UNION ALL
    SELECT profile_id, logged_in_at, 'l'::"char" FROM logins WHERE logged_in_at >= (SELECT at FROM since)
    UNION ALL
    SELECT profile_id, created_at, CASE WHEN kind = 'emulation' THEN 'e' ELSE 'g' END::"char"
    FROM grants WHERE created_at >= (SELECT at FROM since)
    UNION ALL
    SELECT profile_id, created_at, 'p'::"char" FROM problems
    WHERE profile_id IS NOT NULL AND created_at >= (SELECT at FROM since)
)
SELECT profile_id,
       (at AT TIME ZONE 'UTC')::date                           AS day,
       count(*) FILTER (WHERE kind IN ('s', 'a'))::integer     AS sessions,
       count(*) FILTER (WHERE kind = 'a')::integer             AS active_sessions,
       count(*) FILTER (WHERE kind = 'l')::integer             AS logins,
       count(*) FILTER (WHERE kind IN ('g', 'e'))::integer     AS grants,
       count(*) FILTER (WHERE kind = 'e')::integer             AS emulations,
       count(*) FILTER (WHERE kind = 'p')::integer             AS problems
FROM events
GROUP BY profile_id, day
ORDER BY profile_id, day;
CREATE UNIQUE INDEX activity_recent_daily_uidx ON activity_recent_daily (profile_id, day);
CREATE INDEX activity_recent_daily_day_idx ON activity_recent_daily (day);

CREATE MATERIALIZED VIEW activity_profile_totals AS
SELECT profile_id,
       sum(sessions)::bigint        AS sessions,
       sum(active_sessions)::bigint AS active_sessions,
       sum(logins)::bigint          AS logins,
       sum(grants)::bigint          AS grants,
       sum(emulations)::bigint      AS emulations,
       sum(problems)::bigint        AS problems,
       min(first_active_day)        AS first_active_day,
       max(last_active_day)         AS last_active_day
FROM activity_monthly
GROUP BY profile_id;
CREATE UNIQUE INDEX activity_profile_totals_uidx ON activity_profile_totals (profile_id);

-- Loose days and partial days are counted from the event tables by time.
CREATE INDEX IF NOT EXISTS grants_created_idx ON grants (created_at);
CREATE INDEX IF NOT EXISTS problems_created_idx ON problems (created_at);

INSERT INTO refresh_runs (started_at, finished_at, trigger, views, outcome)
VALUES (now(), clock_timestamp(), 'migration',
        ARRAY['activity_monthly', 'activity_recent_daily', 'activity_profile_totals'], 'success');

-- Planner statistics for the new views (each refresh analyzes them again).
ANALYZE activity_monthly, activity_recent_daily, activity_profile_totals;
