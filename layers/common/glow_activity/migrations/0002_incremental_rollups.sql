-- The rollups become tables that each refresh changes only where the events changed (issue 28), instead of
-- materialized views recomputed from all of history every five minutes.
--
-- activity.refresh_rollups(full_pass) (migrations/functions/refresh.sql) finds what changed in one of two ways:
-- - light (the schedule's and debounced calls' runs): every day from yesterday on, recomputed from the event
--   tables' time indexes and compared with the stored days; older days named by a session updated in the last
--   25 hours or by a problem count that differs (deleted problems included);
-- - full (every admin's call, and the schedule at least daily): every (profile, month) of all history compared,
--   counts and checksum, with the stored month.
-- Either way it rewrites only the days that differ, then those profiles' months, running totals and totals.
-- docs/DECISIONS.md says which rows only a full pass picks up, and why.
--
-- The new tables are created under other names and take the old ones' at the end of this transaction, so that readers
-- of the old ones are held up only for that moment. They are created empty: the platform's events are counted into
-- them afterwards a month per transaction (functions/build.sql; migration 0004), since counting all of history here
-- in one transaction would outlive a deploy's Lambda at ten times Glow's size.

-- Every event with its UTC day and its contribution to a checksum: which event, on which day, of which kind. The
-- sum over a day is that day's checksum, the sum over a month the month's, so a month's checksum is the sum of its
-- days' and a full pass can compare months without reading days.
CREATE OR REPLACE VIEW activity.activity_event_days AS
SELECT profile_id, at, kind, (at AT TIME ZONE 'UTC')::date AS day,
       uuid_hash_extended(id, ((at AT TIME ZONE 'UTC')::date - DATE '2000-01-01') * 8 + ascii(kind::text)) AS hash
FROM activity.activity_events;

CREATE TABLE activity.activity_daily_next (
    profile_id      uuid    NOT NULL,
    day             date    NOT NULL,
    sessions        integer NOT NULL,
    active_sessions integer NOT NULL,
    logins          integer NOT NULL,
    grants          integer NOT NULL,
    emulations      integer NOT NULL,
    problems        integer NOT NULL,
    checksum        numeric NOT NULL,
    CONSTRAINT activity_daily_next_pkey PRIMARY KEY (profile_id, day)
);
-- an admin's window reads whole days of every profile by day, from this index alone
CREATE INDEX activity_daily_next_day_idx ON activity.activity_daily_next (day)
    INCLUDE (profile_id, sessions, active_sessions, logins, grants, emulations, problems);
-- the light pass compares the stored problem counts with the problems table's (deleted problems leave no trace)
CREATE INDEX activity_daily_next_problems_idx ON activity.activity_daily_next (profile_id, day) INCLUDE (problems)
    WHERE problems > 0;

-- Per (profile, month): the sums of its days, its first and last active day, its checksum.
CREATE TABLE activity.activity_monthly_next (
    profile_id       uuid    NOT NULL,
    month            date    NOT NULL,
    sessions         integer NOT NULL,
    active_sessions  integer NOT NULL,
    logins           integer NOT NULL,
    grants           integer NOT NULL,
    emulations       integer NOT NULL,
    problems         integer NOT NULL,
    first_active_day date,
    last_active_day  date,
    checksum         numeric NOT NULL,
    CONSTRAINT activity_monthly_next_pkey PRIMARY KEY (profile_id, month)
);
-- a window's months by time, from the index alone
CREATE INDEX activity_monthly_next_month_cover_idx ON activity.activity_monthly_next (month)
    INCLUDE (profile_id, sessions, active_sessions, logins, grants, emulations, problems);

-- Whole months of a window as the difference of two dense running totals per profile: every profile has a row for
-- every month from its first active month to the last month the rollups hold.
CREATE TABLE activity.activity_monthly_running_next (
    profile_id      uuid   NOT NULL,
    month           date   NOT NULL,
    sessions        bigint NOT NULL,
    active_sessions bigint NOT NULL,
    logins          bigint NOT NULL,
    grants          bigint NOT NULL,
    emulations      bigint NOT NULL,
    problems        bigint NOT NULL,
    CONSTRAINT activity_monthly_running_next_pkey PRIMARY KEY (profile_id, month)
);
CREATE INDEX activity_monthly_running_next_month_idx ON activity.activity_monthly_running_next (month)
    INCLUDE (profile_id, sessions, active_sessions, logins, grants, emulations, problems);

-- All-time totals per profile: the unbounded window, and get's date-range facet (walked in order by the two day
-- indexes, stopping at the first visible profile).
CREATE TABLE activity.activity_profile_totals_next (
    profile_id       uuid   NOT NULL,
    sessions         bigint NOT NULL,
    active_sessions  bigint NOT NULL,
    logins           bigint NOT NULL,
    grants           bigint NOT NULL,
    emulations       bigint NOT NULL,
    problems         bigint NOT NULL,
    first_active_day date,
    last_active_day  date,
    CONSTRAINT activity_profile_totals_next_pkey PRIMARY KEY (profile_id)
);
CREATE INDEX activity_profile_totals_next_first_day_idx ON activity.activity_profile_totals_next (first_active_day);
CREATE INDEX activity_profile_totals_next_last_day_idx
    ON activity.activity_profile_totals_next (last_active_day DESC NULLS LAST);

-- The swap: the old rollups and their refresh go, the new take their names.
DROP FUNCTION IF EXISTS activity.refresh_rollups();
DROP MATERIALIZED VIEW IF EXISTS activity.activity_profile_totals;
DROP MATERIALIZED VIEW IF EXISTS activity.activity_monthly_running;
DROP MATERIALIZED VIEW IF EXISTS activity.activity_monthly;
DROP TABLE IF EXISTS activity.activity_daily_months;
DROP TABLE IF EXISTS activity.activity_daily;
ALTER TABLE activity.activity_daily_next RENAME TO activity_daily;
ALTER TABLE activity.activity_daily RENAME CONSTRAINT activity_daily_next_pkey TO activity_daily_pkey;
ALTER INDEX activity.activity_daily_next_day_idx RENAME TO activity_daily_day_idx;
ALTER INDEX activity.activity_daily_next_problems_idx RENAME TO activity_daily_problems_idx;
ALTER TABLE activity.activity_monthly_next RENAME TO activity_monthly;
ALTER TABLE activity.activity_monthly RENAME CONSTRAINT activity_monthly_next_pkey TO activity_monthly_pkey;
ALTER INDEX activity.activity_monthly_next_month_cover_idx RENAME TO activity_monthly_month_cover_idx;
ALTER TABLE activity.activity_monthly_running_next RENAME TO activity_monthly_running;
ALTER TABLE activity.activity_monthly_running
    RENAME CONSTRAINT activity_monthly_running_next_pkey TO activity_monthly_running_pkey;
ALTER INDEX activity.activity_monthly_running_next_month_idx RENAME TO activity_monthly_running_month_idx;
ALTER TABLE activity.activity_profile_totals_next RENAME TO activity_profile_totals;
ALTER TABLE activity.activity_profile_totals
    RENAME CONSTRAINT activity_profile_totals_next_pkey TO activity_profile_totals_pkey;
ALTER INDEX activity.activity_profile_totals_next_first_day_idx RENAME TO activity_profile_totals_first_day_idx;
ALTER INDEX activity.activity_profile_totals_next_last_day_idx RENAME TO activity_profile_totals_last_day_idx;
GRANT SELECT ON activity.activity_daily, activity.activity_monthly, activity.activity_monthly_running,
    activity.activity_profile_totals TO activity_runtime;
-- A refresh rewrites today's rows every few minutes: vacuum them soon, so that readers' index-only scans stay so.
ALTER TABLE activity.activity_daily SET (autovacuum_vacuum_scale_factor = 0.01, autovacuum_analyze_scale_factor = 0.02);
ALTER TABLE activity.activity_monthly SET (autovacuum_vacuum_scale_factor = 0.02);
ALTER TABLE activity.activity_monthly_running SET (autovacuum_vacuum_scale_factor = 0.02);
ALTER TABLE activity.activity_profile_totals SET (autovacuum_vacuum_scale_factor = 0.05);

-- Which kind of pass each refresh was (NULL for the runs before this migration).
ALTER TABLE activity.refresh_runs ADD COLUMN IF NOT EXISTS full_pass boolean;

-- The refresh that keeps these tables, activity.refresh_rollups(full_pass), is code, not history: it lives in
-- migrations/functions/refresh.sql, applied (and re-applied whenever it changes) after the numbered migrations.

-- Empty rollups are up to date only when the platform has no events yet (a new database); otherwise the build's
-- last step records its run.
INSERT INTO activity.refresh_runs (started_at, finished_at, trigger, views, outcome, full_pass)
SELECT now(), clock_timestamp(), 'migration',
       ARRAY['activity_monthly', 'activity_monthly_running', 'activity_daily', 'activity_profile_totals'],
       'success', true
WHERE NOT EXISTS (SELECT 1 FROM activity.activity_events);
ANALYZE activity.activity_monthly, activity.activity_monthly_running, activity.activity_daily,
        activity.activity_profile_totals;
