-- Rollups v3: per-(profile, day) counts over all time, so that a window's loose days are read from a rollup
-- whatever their age (before: only the last three months had one; older loose days came from the event tables,
-- 557 ms for a ten-month window starting five months back). A window now costs what its edges hold, not what
-- the history holds (docs/PERFORMANCE.md).
--
-- 0005 found a materialized view of this size too slow to refresh CONCURRENTLY (its duplicate check sorts every
-- row: over 100 s at 7M events). So activity_daily is a table that each refresh maintains incrementally:
-- activity_monthly carries a checksum of each (profile, month)'s events (which event, which day, which kind),
-- and only the (profile, month) pairs whose checksum changed since the last refresh have their days recomputed
-- (usually the current month's; any back-dated insert, delete or move is caught by the checksum too).
-- Readers are never blocked: the refresh deletes and inserts rows in its own transaction.

DROP MATERIALIZED VIEW IF EXISTS activity_profile_totals;
DROP MATERIALIZED VIEW IF EXISTS activity_monthly;
DROP MATERIALIZED VIEW IF EXISTS activity_recent_daily;

-- Every event of the platform as (id, profile, time, kind): one definition for the monthly view and the daily
-- table. kind: s session, a active session, l login, g grant, e emulation, p problem.
CREATE VIEW activity_events AS
    SELECT id, profile_id, created_at AS at, CASE WHEN active THEN 'a' ELSE 's' END::"char" AS kind FROM sessions
    UNION ALL
    SELECT id, profile_id, logged_in_at, 'l'::"char" FROM logins
    UNION ALL
    SELECT id, profile_id, created_at, CASE WHEN kind = 'emulation' THEN 'e' ELSE 'g' END::"char" FROM grants
    UNION ALL
    SELECT id, profile_id, created_at, 'p'::"char" FROM problems WHERE profile_id IS NOT NULL;

CREATE MATERIALIZED VIEW activity_monthly AS
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
       -- which events, on which days, of which kinds: any change to them changes the sum
       sum(uuid_hash_extended(id, ((at AT TIME ZONE 'UTC')::date - DATE '2000-01-01') * 8 + ascii(kind::text)))
           AS checksum
FROM activity_events
GROUP BY profile_id, month
ORDER BY profile_id, month;  -- one profile's rows together: few pages per profile lookup
CREATE UNIQUE INDEX activity_monthly_uidx ON activity_monthly (profile_id, month);
CREATE INDEX activity_monthly_month_idx ON activity_monthly (month);

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
CREATE INDEX activity_profile_totals_first_day_idx ON activity_profile_totals (first_active_day);
CREATE INDEX activity_profile_totals_last_day_idx ON activity_profile_totals (last_active_day DESC NULLS LAST);

CREATE TABLE activity_daily (
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
-- An admin's window reads whole days of every profile: by day, from this index alone (no heap visits once
-- vacuumed), whatever the rows' physical order.
CREATE INDEX activity_daily_day_idx ON activity_daily (day)
    INCLUDE (profile_id, sessions, active_sessions, logins, grants, emulations, problems);

-- The checksum of each (profile, month) whose days activity_daily holds, as of the last refresh.
CREATE TABLE activity_daily_months (
    profile_id uuid    NOT NULL,
    month      date    NOT NULL,
    checksum   numeric NOT NULL,
    PRIMARY KEY (profile_id, month)
);

INSERT INTO activity_daily
SELECT profile_id,
       (at AT TIME ZONE 'UTC')::date,
       count(*) FILTER (WHERE kind IN ('s', 'a')),
       count(*) FILTER (WHERE kind = 'a'),
       count(*) FILTER (WHERE kind = 'l'),
       count(*) FILTER (WHERE kind IN ('g', 'e')),
       count(*) FILTER (WHERE kind = 'e'),
       count(*) FILTER (WHERE kind = 'p')
FROM activity_events
GROUP BY 1, 2
ORDER BY 2, 1;  -- by day: a day's rows on few pages
INSERT INTO activity_daily_months SELECT profile_id, month, checksum FROM activity_monthly;

INSERT INTO refresh_runs (started_at, finished_at, trigger, views, outcome)
VALUES (now(), clock_timestamp(), 'migration',
        ARRAY['activity_monthly', 'activity_daily', 'activity_profile_totals'], 'success');

ANALYZE activity_monthly, activity_daily, activity_daily_months, activity_profile_totals;
-- (autovacuum sets the visibility map that lets activity_daily_day_idx answer alone; the refresh's deletes and
-- inserts touch only the changed months' pages)
