-- The service's own objects, all in schema `activity` (the runner creates the schema and the NOLOGIN role
-- activity_runtime before this file runs). Each object is followed by what activity_runtime may do with it:
-- exactly what the seven functions and the schedule need, nothing more (tests/test_privileges.py lists it).
--
-- Every statement is idempotent, so that a standalone database built by the previous layout (these objects in
-- `public`, moved here by the runner's adoption step, see migrate.py) comes out of this file with its data and
-- its rollups as they were: nothing below rebuilds what already exists.

-- One row per call after authentication (success or not). The runtime adds rows; it never changes or deletes one.
CREATE TABLE IF NOT EXISTS activity.audit_log (
    id          bigserial   PRIMARY KEY,
    at          timestamptz NOT NULL DEFAULT now(),
    operation   text        NOT NULL,
    profile_id  uuid,
    api_key_id  uuid,
    channel     text        NOT NULL CHECK (channel IN ('api', 'mcp', 'schedule')),
    status_code integer     NOT NULL,
    request_id  text        NOT NULL
);
CREATE INDEX IF NOT EXISTS audit_log_at_idx ON activity.audit_log (at);
CREATE INDEX IF NOT EXISTS audit_log_request_idx ON activity.audit_log (request_id);
GRANT INSERT ON activity.audit_log TO activity_runtime;
GRANT USAGE ON SEQUENCE activity.audit_log_id_seq TO activity_runtime;

-- Every refresh of the rollups: what ran, when, why and how it ended (its finished_at is X-Data-As-Of).
CREATE TABLE IF NOT EXISTS activity.refresh_runs (
    id           bigserial   PRIMARY KEY,
    started_at   timestamptz NOT NULL DEFAULT clock_timestamp(),
    finished_at  timestamptz,
    trigger      text        NOT NULL CHECK (trigger IN ('api', 'mcp', 'schedule', 'migration', 'cli')),
    requested_by uuid,
    views        text[]      NOT NULL DEFAULT '{}',
    outcome      text        NOT NULL CHECK (outcome IN ('running', 'success', 'failed')),
    error        text
);
CREATE INDEX IF NOT EXISTS refresh_runs_success_idx ON activity.refresh_runs (id DESC) WHERE outcome = 'success';
GRANT SELECT, INSERT, UPDATE ON activity.refresh_runs TO activity_runtime;
GRANT USAGE ON SEQUENCE activity.refresh_runs_id_seq TO activity_runtime;

-- Powertools idempotency records (problem's Idempotency-Key); the schedule deletes expired ones.
CREATE TABLE IF NOT EXISTS activity.idempotency_records (
    id                     text    PRIMARY KEY,
    status                 text    NOT NULL,
    expiration             bigint  NOT NULL,
    in_progress_expiration bigint,
    response_data          text,
    payload_hash           text
);
CREATE INDEX IF NOT EXISTS idempotency_records_expiration_idx ON activity.idempotency_records (expiration);
GRANT SELECT, INSERT, UPDATE, DELETE ON activity.idempotency_records TO activity_runtime;

-- Exports written to S3 (a failed one leaves no row: the export deletes it).
CREATE TABLE IF NOT EXISTS activity.uploads (
    id           uuid        PRIMARY KEY,
    s3_key       text        NOT NULL,
    file_name    text        NOT NULL,
    status       text        NOT NULL CHECK (status IN ('running', 'succeeded', 'failed')),
    size_bytes   bigint,
    row_counts   jsonb,
    row_count    bigint,
    requested_by uuid        NOT NULL,
    filters      jsonb       NOT NULL DEFAULT '{}',
    created_at   timestamptz NOT NULL DEFAULT now(),
    completed_at timestamptz,
    expires_at   timestamptz,
    error        text
);
CREATE INDEX IF NOT EXISTS uploads_requested_by_idx ON activity.uploads (requested_by, created_at);
GRANT SELECT, INSERT, UPDATE, DELETE ON activity.uploads TO activity_runtime;

-- Every event of the platform as (id, profile, time, kind): one definition for the monthly view and the daily
-- table. kind: s session, a active session, l login, g grant, e emulation, p problem.
CREATE OR REPLACE VIEW activity.activity_events AS
    SELECT id, profile_id, created_at AS at, CASE WHEN active THEN 'a' ELSE 's' END::"char" AS kind FROM public.sessions
    UNION ALL
    SELECT id, profile_id, logged_in_at, 'l'::"char" FROM public.logins
    UNION ALL
    SELECT id, profile_id, created_at, CASE WHEN kind = 'emulation' THEN 'e' ELSE 'g' END::"char" FROM public.grants
    UNION ALL
    SELECT id, profile_id, created_at, 'p'::"char" FROM public.problems WHERE profile_id IS NOT NULL;

-- Per (profile, month) counts, with a checksum of which events, on which days, of which kinds: any change to
-- them changes the sum, which is how a refresh finds the months whose days it must recompute.
CREATE MATERIALIZED VIEW IF NOT EXISTS activity.activity_monthly AS
SELECT profile_id,
       date_trunc('month', at AT TIME ZONE 'UTC')::date       AS month,
       count(*) FILTER (WHERE kind IN ('s', 'a'))::integer     AS sessions,
       count(*) FILTER (WHERE kind = 'a')::integer             AS active_sessions,
       count(*) FILTER (WHERE kind = 'l')::integer             AS logins,
       count(*) FILTER (WHERE kind IN ('g', 'e'))::integer     AS grants,
       count(*) FILTER (WHERE kind = 'e')::integer             AS emulations,
       count(*) FILTER (WHERE kind = 'p')::integer             AS problems,
       min((at AT TIME ZONE 'UTC')::date) FILTER (WHERE kind IN ('s', 'a', 'l')) AS first_active_day,
       max((at AT TIME ZONE 'UTC')::date) FILTER (WHERE kind IN ('s', 'a', 'l')) AS last_active_day,
       sum(uuid_hash_extended(id, ((at AT TIME ZONE 'UTC')::date - DATE '2000-01-01') * 8 + ascii(kind::text)))
           AS checksum
FROM activity.activity_events
GROUP BY profile_id, month
ORDER BY profile_id, month  -- one profile's rows together: few pages per profile lookup
-- Created empty: 0002 replaces every rollup with a table built once from the events (a new database used to build
-- them here too, only for 0002 to drop them: half of a large attached migration's time). A database that already
-- has them keeps them (IF NOT EXISTS).
WITH NO DATA;
CREATE UNIQUE INDEX IF NOT EXISTS activity_monthly_uidx ON activity.activity_monthly (profile_id, month);
-- a window's months by time, from the index alone
CREATE INDEX IF NOT EXISTS activity_monthly_month_cover_idx ON activity.activity_monthly (month)
    INCLUDE (profile_id, sessions, active_sessions, logins, grants, emulations, problems);
GRANT SELECT ON activity.activity_monthly TO activity_runtime;

-- All-time totals per profile: the unbounded window, and get's date-range facet (walked in order by the two
-- day indexes, stopping at the first visible profile).
CREATE MATERIALIZED VIEW IF NOT EXISTS activity.activity_profile_totals AS
SELECT profile_id,
       sum(sessions)::bigint        AS sessions,
       sum(active_sessions)::bigint AS active_sessions,
       sum(logins)::bigint          AS logins,
       sum(grants)::bigint          AS grants,
       sum(emulations)::bigint      AS emulations,
       sum(problems)::bigint        AS problems,
       min(first_active_day)        AS first_active_day,
       max(last_active_day)         AS last_active_day
FROM activity.activity_monthly
GROUP BY profile_id
WITH NO DATA;  -- (see activity_monthly)
CREATE UNIQUE INDEX IF NOT EXISTS activity_profile_totals_uidx ON activity.activity_profile_totals (profile_id);
CREATE INDEX IF NOT EXISTS activity_profile_totals_first_day_idx
    ON activity.activity_profile_totals (first_active_day);
CREATE INDEX IF NOT EXISTS activity_profile_totals_last_day_idx
    ON activity.activity_profile_totals (last_active_day DESC NULLS LAST);
GRANT SELECT ON activity.activity_profile_totals TO activity_runtime;

-- Whole months of a window as the difference of two dense running totals per profile: every profile has a row for
-- every month from its first active month to the last month the rollups hold.
CREATE MATERIALIZED VIEW IF NOT EXISTS activity.activity_monthly_running AS
WITH last AS (SELECT max(month) AS month FROM activity.activity_monthly),
grid AS (
    SELECT f.profile_id, g.month::date AS month
    FROM (SELECT profile_id, min(month) AS first FROM activity.activity_monthly GROUP BY profile_id) f
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
FROM grid LEFT JOIN activity.activity_monthly m ON m.profile_id = grid.profile_id AND m.month = grid.month
WINDOW w AS (PARTITION BY grid.profile_id ORDER BY grid.month)
ORDER BY grid.month, grid.profile_id  -- a month's rows together: one range per window end
WITH NO DATA;  -- (see activity_monthly)
CREATE UNIQUE INDEX IF NOT EXISTS activity_monthly_running_uidx ON activity.activity_monthly_running (profile_id, month);
CREATE INDEX IF NOT EXISTS activity_monthly_running_month_idx ON activity.activity_monthly_running (month)
    INCLUDE (profile_id, sessions, active_sessions, logins, grants, emulations, problems);
GRANT SELECT ON activity.activity_monthly_running TO activity_runtime;

-- Per (profile, day) counts over all time: a table that each refresh maintains month by month (only the months
-- whose checksum changed have their days recomputed), with the checksums it was built from. Built here only when
-- it is new.
DO $$
BEGIN
    IF to_regclass('activity.activity_daily') IS NOT NULL THEN
        RETURN;
    END IF;
    CREATE TABLE activity.activity_daily (
        profile_id      uuid    NOT NULL,
        day             date    NOT NULL,
        sessions        integer NOT NULL,
        active_sessions integer NOT NULL,
        logins          integer NOT NULL,
        grants          integer NOT NULL,
        emulations      integer NOT NULL,
        problems        integer NOT NULL,
        PRIMARY KEY (profile_id, day)
    );
    -- an admin's window reads whole days of every profile by day, from this index alone
    CREATE INDEX activity_daily_day_idx ON activity.activity_daily (day)
        INCLUDE (profile_id, sessions, active_sessions, logins, grants, emulations, problems);
    CREATE TABLE activity.activity_daily_months (
        profile_id uuid    NOT NULL,
        month      date    NOT NULL,
        checksum   numeric NOT NULL,
        PRIMARY KEY (profile_id, month)
    );
    IF NOT (SELECT relispopulated FROM pg_class WHERE oid = 'activity.activity_monthly'::regclass) THEN
        RETURN;  -- a new database: the first build (functions/build.sql) counts the days with everything else, once
    END IF;
    INSERT INTO activity.activity_daily
    SELECT profile_id,
           (at AT TIME ZONE 'UTC')::date,
           count(*) FILTER (WHERE kind IN ('s', 'a')),
           count(*) FILTER (WHERE kind = 'a'),
           count(*) FILTER (WHERE kind = 'l'),
           count(*) FILTER (WHERE kind IN ('g', 'e')),
           count(*) FILTER (WHERE kind = 'e'),
           count(*) FILTER (WHERE kind = 'p')
    FROM activity.activity_events
    GROUP BY 1, 2
    ORDER BY 2, 1;  -- by day: a day's rows on few pages
    INSERT INTO activity.activity_daily_months SELECT profile_id, month, checksum FROM activity.activity_monthly;
    INSERT INTO activity.refresh_runs (started_at, finished_at, trigger, views, outcome)
    VALUES (now(), clock_timestamp(), 'migration',
            ARRAY['activity_monthly', 'activity_monthly_running', 'activity_daily', 'activity_profile_totals'],
            'success');
    ANALYZE activity.activity_monthly, activity.activity_monthly_running, activity.activity_daily,
            activity.activity_daily_months, activity.activity_profile_totals;
END
$$;
GRANT SELECT ON activity.activity_daily TO activity_runtime;

-- A refresh, as the objects' owner: REFRESH MATERIALIZED VIEW and ANALYZE need ownership, and the runtime may not
-- write the rollups itself. It runs in the caller's transaction (REPEATABLE READ, one snapshot for every view);
-- the caller holds the refresh lock and records the run. search_path is pinned: nothing a caller puts first can
-- stand in for the tables named here.
CREATE OR REPLACE FUNCTION activity.refresh_rollups() RETURNS text[]
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    REFRESH MATERIALIZED VIEW CONCURRENTLY activity.activity_monthly;
    REFRESH MATERIALIZED VIEW CONCURRENTLY activity.activity_monthly_running;
    -- activity_daily: the days of each (profile, month) whose events changed since the last refresh
    CREATE TEMP TABLE changed_months ON COMMIT DROP AS
    SELECT coalesce(m.profile_id, s.profile_id) AS profile_id, coalesce(m.month, s.month) AS month
    FROM activity.activity_monthly m
    FULL JOIN activity.activity_daily_months s ON s.profile_id = m.profile_id AND s.month = m.month
    WHERE m.checksum IS DISTINCT FROM s.checksum;
    ANALYZE pg_temp.changed_months;
    DELETE FROM activity.activity_daily d USING pg_temp.changed_months c
    WHERE d.profile_id = c.profile_id AND d.day >= c.month AND d.day < (c.month + interval '1 month')::date;
    INSERT INTO activity.activity_daily
    SELECT e.profile_id, (e.at AT TIME ZONE 'UTC')::date,
           count(*) FILTER (WHERE e.kind IN ('s', 'a')), count(*) FILTER (WHERE e.kind = 'a'),
           count(*) FILTER (WHERE e.kind = 'l'), count(*) FILTER (WHERE e.kind IN ('g', 'e')),
           count(*) FILTER (WHERE e.kind = 'e'), count(*) FILTER (WHERE e.kind = 'p')
    FROM activity.activity_events e JOIN pg_temp.changed_months c ON c.profile_id = e.profile_id
     AND e.at >= c.month::timestamp AT TIME ZONE 'UTC'
     AND e.at < (c.month + interval '1 month')::timestamp AT TIME ZONE 'UTC'
    GROUP BY 1, 2
    ORDER BY 2, 1;
    DELETE FROM activity.activity_daily_months s USING pg_temp.changed_months c
    WHERE s.profile_id = c.profile_id AND s.month = c.month;
    INSERT INTO activity.activity_daily_months
    SELECT m.profile_id, m.month, m.checksum FROM activity.activity_monthly m
    JOIN pg_temp.changed_months c ON c.profile_id = m.profile_id AND c.month = m.month;
    DROP TABLE pg_temp.changed_months;
    REFRESH MATERIALIZED VIEW CONCURRENTLY activity.activity_profile_totals;
    ANALYZE activity.activity_monthly, activity.activity_monthly_running, activity.activity_daily,
            activity.activity_profile_totals;
    RETURN ARRAY['activity_monthly', 'activity_monthly_running', 'activity_daily', 'activity_profile_totals'];
END
$$;
REVOKE ALL ON FUNCTION activity.refresh_rollups() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION activity.refresh_rollups() TO activity_runtime;
