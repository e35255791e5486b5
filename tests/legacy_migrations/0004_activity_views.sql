-- Rollups that get and search read. `refresh` keeps them current (REFRESH ... CONCURRENTLY needs the
-- unique indexes on plain columns below).

-- One row per profile and UTC day with its counts, plus the exact instants of that day's events so
-- that a window whose ends fall inside a day is still counted exactly.
CREATE MATERIALIZED VIEW IF NOT EXISTS activity_daily AS
WITH events AS (
    SELECT profile_id, created_at AS at, 's'::"char" AS kind FROM sessions
    UNION ALL
    SELECT profile_id, logged_in_at, 'l'::"char" FROM logins
    UNION ALL
    SELECT profile_id, created_at, CASE WHEN kind = 'emulation' THEN 'e' ELSE 'g' END::"char" FROM grants
    UNION ALL
    SELECT profile_id, created_at, 'p'::"char" FROM problems WHERE profile_id IS NOT NULL
)
SELECT profile_id,
       (at AT TIME ZONE 'UTC')::date                                   AS day,
       count(*) FILTER (WHERE kind = 's')::integer                     AS sessions,
       count(*) FILTER (WHERE kind = 'l')::integer                     AS logins,
       count(*) FILTER (WHERE kind IN ('g', 'e'))::integer             AS grants,
       count(*) FILTER (WHERE kind = 'e')::integer                     AS emulations,
       count(*) FILTER (WHERE kind = 'p')::integer                     AS problems,
       array_agg(at ORDER BY at) FILTER (WHERE kind = 's')             AS session_times,
       array_agg(at ORDER BY at) FILTER (WHERE kind = 'l')             AS login_times,
       array_agg(at ORDER BY at) FILTER (WHERE kind IN ('g', 'e'))     AS grant_times,
       array_agg(at ORDER BY at) FILTER (WHERE kind = 'e')             AS emulation_times,
       array_agg(at ORDER BY at) FILTER (WHERE kind = 'p')             AS problem_times
FROM events
GROUP BY profile_id, day;
CREATE UNIQUE INDEX IF NOT EXISTS activity_daily_profile_day_uidx ON activity_daily (profile_id, day);
CREATE INDEX IF NOT EXISTS activity_daily_day_idx ON activity_daily (day);

-- All-time totals per profile: the unbounded window without touching the daily rows.
CREATE MATERIALIZED VIEW IF NOT EXISTS activity_profile_totals AS
SELECT profile_id,
       sum(sessions)::bigint   AS sessions,
       sum(logins)::bigint     AS logins,
       sum(grants)::bigint     AS grants,
       sum(emulations)::bigint AS emulations,
       sum(problems)::bigint   AS problems,
       min(day) FILTER (WHERE sessions > 0 OR logins > 0) AS first_active_day,
       max(day) FILTER (WHERE sessions > 0 OR logins > 0) AS last_active_day
FROM activity_daily
GROUP BY profile_id;
CREATE UNIQUE INDEX IF NOT EXISTS activity_profile_totals_uidx ON activity_profile_totals (profile_id);

-- The session history that search pages through, with each session's problem count.
CREATE MATERIALIZED VIEW IF NOT EXISTS activity_sessions AS
SELECT s.id AS session_id, s.profile_id, s.created_at, s.updated_at, s.active,
       s.group_count, s.run_count, s.chat_count, s.attempt_count, s.message_count,
       s.total_tokens, s.total_cost,
       coalesce(pc.problem_count, 0)::integer AS problem_count
FROM sessions s
LEFT JOIN (
    SELECT session_id, count(*) AS problem_count FROM problems WHERE session_id IS NOT NULL GROUP BY session_id
) pc ON pc.session_id = s.id;
CREATE UNIQUE INDEX IF NOT EXISTS activity_sessions_uidx ON activity_sessions (session_id);
CREATE INDEX IF NOT EXISTS activity_sessions_created_idx ON activity_sessions (created_at, session_id);
CREATE INDEX IF NOT EXISTS activity_sessions_profile_created_idx
    ON activity_sessions (profile_id, created_at, session_id);

-- The views were just built from the tables: that counts as a refresh for X-Data-As-Of.
INSERT INTO refresh_runs (started_at, finished_at, trigger, views, outcome)
VALUES (now(), clock_timestamp(), 'migration',
        ARRAY['activity_daily', 'activity_profile_totals', 'activity_sessions'], 'success');
