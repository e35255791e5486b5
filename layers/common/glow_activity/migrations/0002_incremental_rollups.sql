-- The rollups become tables that each refresh changes only where the events changed (issue 28), instead of
-- materialized views recomputed from all of history every five minutes.
--
-- activity.refresh_rollups(full_pass) finds what changed in one of two ways:
-- - light (the schedule's and debounced calls' runs): every day from yesterday on, recomputed from the event
--   tables' time indexes and compared with the stored days; older days named by a session updated in the last
--   25 hours or by a problem count that differs (deleted problems included);
-- - full (every admin's call, and the schedule at least daily): every (profile, month) of all history compared,
--   counts and checksum, with the stored month.
-- Either way it rewrites only the days that differ, then those profiles' months, running totals and totals.
-- docs/DECISIONS.md says which rows only a full pass picks up, and why.
--
-- The new tables are built from the events first, under other names, so that readers of the old ones are held up
-- only for the moment the old are dropped and the new renamed, at the end of this transaction.

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
INSERT INTO activity.activity_daily_next
SELECT profile_id, day,
       count(*) FILTER (WHERE kind IN ('s', 'a')), count(*) FILTER (WHERE kind = 'a'),
       count(*) FILTER (WHERE kind = 'l'), count(*) FILTER (WHERE kind IN ('g', 'e')),
       count(*) FILTER (WHERE kind = 'e'), count(*) FILTER (WHERE kind = 'p'), sum(hash)
FROM activity.activity_event_days
GROUP BY profile_id, day
ORDER BY day, profile_id;  -- by day: a day's rows on few pages
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
INSERT INTO activity.activity_monthly_next
SELECT profile_id, date_trunc('month', day::timestamp)::date,
       sum(sessions), sum(active_sessions), sum(logins), sum(grants), sum(emulations), sum(problems),
       min(day) FILTER (WHERE sessions > 0 OR logins > 0), max(day) FILTER (WHERE sessions > 0 OR logins > 0),
       sum(checksum)
FROM activity.activity_daily_next
GROUP BY 1, 2
ORDER BY 1, 2;  -- one profile's rows together
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
INSERT INTO activity.activity_monthly_running_next
SELECT f.profile_id, g.month::date,
       sum(coalesce(m.sessions, 0)) OVER w, sum(coalesce(m.active_sessions, 0)) OVER w,
       sum(coalesce(m.logins, 0)) OVER w, sum(coalesce(m.grants, 0)) OVER w,
       sum(coalesce(m.emulations, 0)) OVER w, sum(coalesce(m.problems, 0)) OVER w
FROM (SELECT profile_id, min(month) AS first FROM activity.activity_monthly_next GROUP BY profile_id) f
CROSS JOIN (SELECT max(month) AS month FROM activity.activity_monthly_next) last
CROSS JOIN LATERAL generate_series(f.first::timestamp, last.month::timestamp, interval '1 month') g(month)
LEFT JOIN activity.activity_monthly_next m ON m.profile_id = f.profile_id AND m.month = g.month::date
WINDOW w AS (PARTITION BY f.profile_id ORDER BY g.month)
ORDER BY 2, 1;  -- a month's rows together: one range per window end
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
INSERT INTO activity.activity_profile_totals_next
SELECT profile_id, sum(sessions), sum(active_sessions), sum(logins), sum(grants), sum(emulations), sum(problems),
       min(first_active_day), max(last_active_day)
FROM activity.activity_monthly_next
GROUP BY profile_id;
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

-- A refresh, as the objects' owner: the runtime may read the rollups but not write them. It runs in the caller's
-- transaction (REPEATABLE READ: one snapshot for every table); the caller holds the refresh lock and records the
-- run. search_path is pinned: nothing a caller puts first can stand in for the tables named here.
CREATE FUNCTION activity.refresh_rollups(full_pass boolean) RETURNS text[]
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    -- a light pass recomputes every day from this one on: at least the last 24 hours, in whole UTC days
    since_day constant date := ((now() - interval '1 day') AT TIME ZONE 'UTC')::date;
    since constant timestamptz := since_day::timestamp AT TIME ZONE 'UTC';
    previous_last constant date := (SELECT max(month) FROM activity.activity_monthly_running);
    last_month date;
    -- a full pass that finds much of history changed (the first refresh after loading data) joins whole tables by
    -- month instead of looking each month up: from 20,000 months, or more than half of those the rollups hold
    bulk boolean := false;
    stale_months bigint;
BEGIN
    -- fresh: the days recomputed from the events; stale: the (profile, day) rows to replace with them
    CREATE TEMP TABLE fresh (LIKE activity.activity_daily) ON COMMIT DROP;
    CREATE TEMP TABLE stale (profile_id uuid NOT NULL, day date, month date NOT NULL) ON COMMIT DROP;
    IF full_pass THEN
        -- every (profile, month) whose counts or checksum differ: all its days are replaced
        INSERT INTO pg_temp.stale (profile_id, month)
        SELECT coalesce(e.profile_id, m.profile_id), coalesce(e.month, m.month)
        FROM (SELECT profile_id, date_trunc('month', day::timestamp)::date AS month,
                     count(*) FILTER (WHERE kind IN ('s', 'a'))::integer AS sessions,
                     count(*) FILTER (WHERE kind = 'a')::integer AS active_sessions,
                     count(*) FILTER (WHERE kind = 'l')::integer AS logins,
                     count(*) FILTER (WHERE kind IN ('g', 'e'))::integer AS grants,
                     count(*) FILTER (WHERE kind = 'e')::integer AS emulations,
                     count(*) FILTER (WHERE kind = 'p')::integer AS problems,
                     sum(hash) AS checksum
              FROM activity.activity_event_days GROUP BY 1, 2) e
        FULL JOIN activity.activity_monthly m ON m.profile_id = e.profile_id AND m.month = e.month
        WHERE (e.sessions, e.active_sessions, e.logins, e.grants, e.emulations, e.problems, e.checksum)
              IS DISTINCT FROM
              (m.sessions, m.active_sessions, m.logins, m.grants, m.emulations, m.problems, m.checksum);
        ANALYZE pg_temp.stale;
        stale_months := (SELECT count(*) FROM pg_temp.stale);
        bulk := stale_months > 20000 OR stale_months * 2 > (
            SELECT count(*) FROM (SELECT FROM activity.activity_monthly LIMIT stale_months * 2) held);
        IF bulk THEN
            INSERT INTO pg_temp.fresh
            SELECT e.profile_id, e.day,
                   count(*) FILTER (WHERE e.kind IN ('s', 'a')), count(*) FILTER (WHERE e.kind = 'a'),
                   count(*) FILTER (WHERE e.kind = 'l'), count(*) FILTER (WHERE e.kind IN ('g', 'e')),
                   count(*) FILTER (WHERE e.kind = 'e'), count(*) FILTER (WHERE e.kind = 'p'), sum(e.hash)
            FROM activity.activity_event_days e
            JOIN pg_temp.stale s
              ON s.profile_id = e.profile_id AND s.month = date_trunc('month', e.day::timestamp)::date
            GROUP BY 1, 2;
            DELETE FROM activity.activity_daily d USING pg_temp.stale s
            WHERE d.profile_id = s.profile_id AND s.month = date_trunc('month', d.day::timestamp)::date;
        ELSE
            INSERT INTO pg_temp.fresh
            SELECT e.profile_id, e.day,
                   count(*) FILTER (WHERE e.kind IN ('s', 'a')), count(*) FILTER (WHERE e.kind = 'a'),
                   count(*) FILTER (WHERE e.kind = 'l'), count(*) FILTER (WHERE e.kind IN ('g', 'e')),
                   count(*) FILTER (WHERE e.kind = 'e'), count(*) FILTER (WHERE e.kind = 'p'), sum(e.hash)
            FROM pg_temp.stale s
            CROSS JOIN LATERAL (SELECT * FROM activity.activity_event_days e WHERE e.profile_id = s.profile_id
                                AND e.at >= s.month::timestamp AT TIME ZONE 'UTC'
                                AND e.at < (s.month + interval '1 month')::timestamp AT TIME ZONE 'UTC'
                                OFFSET 0) e  -- each month by the profile indexes, never a scan of all
            GROUP BY 1, 2;
            DELETE FROM activity.activity_daily d USING pg_temp.stale s
            WHERE d.profile_id = s.profile_id AND d.day >= s.month AND d.day < (s.month + interval '1 month')::date;
        END IF;
        INSERT INTO activity.activity_daily SELECT * FROM pg_temp.fresh ORDER BY day, profile_id;
    ELSE
        -- every day from since_day on whose counts differ from the stored day's: counted from the time indexes
        -- alone (no event id is read: the day is then recomputed whole, checksum included, below)
        INSERT INTO pg_temp.stale (profile_id, day, month)
        SELECT coalesce(e.profile_id, d.profile_id), coalesce(e.day, d.day),
               date_trunc('month', coalesce(e.day, d.day)::timestamp)::date
        FROM (SELECT profile_id, (at AT TIME ZONE 'UTC')::date AS day,
                     count(*) FILTER (WHERE kind IN ('s', 'a'))::integer AS sessions,
                     count(*) FILTER (WHERE kind = 'a')::integer AS active_sessions,
                     count(*) FILTER (WHERE kind = 'l')::integer AS logins,
                     count(*) FILTER (WHERE kind IN ('g', 'e'))::integer AS grants,
                     count(*) FILTER (WHERE kind = 'e')::integer AS emulations,
                     count(*) FILTER (WHERE kind = 'p')::integer AS problems
              FROM activity.activity_events WHERE at >= since GROUP BY 1, 2) e
        FULL JOIN (SELECT * FROM activity.activity_daily WHERE day >= since_day) d
          ON d.profile_id = e.profile_id AND d.day = e.day
        WHERE (e.sessions, e.active_sessions, e.logins, e.grants, e.emulations, e.problems)
              IS DISTINCT FROM (d.sessions, d.active_sessions, d.logins, d.grants, d.emulations, d.problems);
        -- older days that may have changed: a session's, updated lately, whose count of sessions or of active ones
        -- differs from the stored day's (counted from the profile index alone; a session whose counters alone
        -- changed changes nothing here)
        INSERT INTO pg_temp.stale (profile_id, day, month)
        SELECT c.profile_id, c.day, date_trunc('month', c.day::timestamp)::date
        FROM (SELECT DISTINCT x.profile_id, (x.created_at AT TIME ZONE 'UTC')::date AS day FROM public.sessions x
              WHERE x.updated_at >= now() - interval '25 hours' AND x.created_at < since) c
        LEFT JOIN activity.activity_daily d ON d.profile_id = c.profile_id AND d.day = c.day
        CROSS JOIN LATERAL (SELECT count(*) AS sessions, count(*) FILTER (WHERE x.active) AS active_sessions
                            FROM public.sessions x WHERE x.profile_id = c.profile_id
                              AND x.created_at >= c.day::timestamp AT TIME ZONE 'UTC'
                              AND x.created_at < (c.day + 1)::timestamp AT TIME ZONE 'UTC') k
        WHERE (k.sessions, k.active_sessions)
              IS DISTINCT FROM (coalesce(d.sessions, 0), coalesce(d.active_sessions, 0));
        -- and a problem count that differs (a deleted problem leaves nothing to find it by): first one checksum of
        -- every older problem's (profile, day) against the stored days', then, only if they differ, day by day. The
        -- hashes are cut to 32 bits so that both sums stay in bigint arithmetic (a day's count times a hash fits)
        IF (SELECT coalesce(sum(uuid_hash_extended(x.profile_id, (x.created_at AT TIME ZONE 'UTC')::date
                                                                 - DATE '2000-01-01') & 4294967295), 0)
            FROM public.problems x WHERE x.profile_id IS NOT NULL AND x.created_at < since)
           IS DISTINCT FROM
           (SELECT coalesce(sum(d.problems * (uuid_hash_extended(d.profile_id, d.day - DATE '2000-01-01')
                                              & 4294967295)), 0)
            FROM activity.activity_daily d WHERE d.problems > 0 AND d.day < since_day)
        THEN
            INSERT INTO pg_temp.stale (profile_id, day, month)
            SELECT coalesce(q.profile_id, d.profile_id), coalesce(q.day, d.day),
                   date_trunc('month', coalesce(q.day, d.day)::timestamp)::date
            FROM (SELECT x.profile_id, (x.created_at AT TIME ZONE 'UTC')::date AS day, count(*)::integer AS n
                  FROM public.problems x WHERE x.profile_id IS NOT NULL AND x.created_at < since GROUP BY 1, 2) q
            FULL JOIN (SELECT d.profile_id, d.day, d.problems AS n FROM activity.activity_daily d
                       WHERE d.problems > 0 AND d.day < since_day) d
              ON d.profile_id = q.profile_id AND d.day = q.day
            WHERE q.n IS DISTINCT FROM d.n
              AND NOT EXISTS (SELECT 1 FROM pg_temp.stale s WHERE s.profile_id = coalesce(q.profile_id, d.profile_id)
                                                              AND s.day = coalesce(q.day, d.day));
        END IF;
        IF NOT EXISTS (SELECT 1 FROM pg_temp.stale) THEN  -- nothing changed
            DROP TABLE pg_temp.fresh, pg_temp.stale;
            RETURN ARRAY['activity_monthly', 'activity_monthly_running', 'activity_daily', 'activity_profile_totals'];
        END IF;
        ANALYZE pg_temp.stale;
        -- those days recomputed whole, checksums included: the recent ones in one pass over the time indexes, the
        -- older ones each through the profile indexes (OFFSET 0: never a scan of all events)
        INSERT INTO pg_temp.fresh
        SELECT e.profile_id, e.day,
               count(*) FILTER (WHERE e.kind IN ('s', 'a')), count(*) FILTER (WHERE e.kind = 'a'),
               count(*) FILTER (WHERE e.kind = 'l'), count(*) FILTER (WHERE e.kind IN ('g', 'e')),
               count(*) FILTER (WHERE e.kind = 'e'), count(*) FILTER (WHERE e.kind = 'p'), sum(e.hash)
        FROM (SELECT e.profile_id, e.day, e.kind, e.hash FROM activity.activity_event_days e
              JOIN pg_temp.stale s ON s.profile_id = e.profile_id AND s.day = e.day
              WHERE e.at >= since
              UNION ALL
              SELECT e.profile_id, e.day, e.kind, e.hash FROM pg_temp.stale s
              CROSS JOIN LATERAL (SELECT * FROM activity.activity_event_days e WHERE e.profile_id = s.profile_id
                                  AND e.at >= s.day::timestamp AT TIME ZONE 'UTC'
                                  AND e.at < (s.day + 1)::timestamp AT TIME ZONE 'UTC'
                                  OFFSET 0) e
              WHERE s.day < since_day) e
        GROUP BY 1, 2;
        -- an older day named only as a candidate may hold what it held: it is left as it is
        DELETE FROM pg_temp.stale s
        USING (SELECT c.profile_id, c.day FROM pg_temp.stale c
               LEFT JOIN pg_temp.fresh f ON f.profile_id = c.profile_id AND f.day = c.day
               LEFT JOIN activity.activity_daily d ON d.profile_id = c.profile_id AND d.day = c.day
               WHERE c.day < since_day
                 AND ROW(f.sessions, f.active_sessions, f.logins, f.grants, f.emulations, f.problems, f.checksum)
                     IS NOT DISTINCT FROM
                     ROW(d.sessions, d.active_sessions, d.logins, d.grants, d.emulations, d.problems, d.checksum)
              ) same
        WHERE s.profile_id = same.profile_id AND s.day = same.day;
        DELETE FROM activity.activity_daily d USING pg_temp.stale s WHERE d.profile_id = s.profile_id AND d.day = s.day;
        INSERT INTO activity.activity_daily
        SELECT f.* FROM pg_temp.fresh f JOIN pg_temp.stale s ON s.profile_id = f.profile_id AND s.day = f.day;
    END IF;

    -- the months of the days replaced: their sums again, from their days
    CREATE TEMP TABLE touched ON COMMIT DROP AS SELECT DISTINCT profile_id, month FROM pg_temp.stale;
    ANALYZE pg_temp.touched;
    CREATE TEMP TABLE old_months (LIKE activity.activity_monthly) ON COMMIT DROP;  -- what they held: see the totals
    WITH gone AS (
        DELETE FROM activity.activity_monthly m USING pg_temp.touched t
        WHERE m.profile_id = t.profile_id AND m.month = t.month
        RETURNING m.*
    )
    INSERT INTO pg_temp.old_months SELECT * FROM gone;
    IF bulk THEN
        INSERT INTO activity.activity_monthly
        SELECT d.profile_id, t.month,
               sum(d.sessions), sum(d.active_sessions), sum(d.logins), sum(d.grants), sum(d.emulations),
               sum(d.problems), min(d.day) FILTER (WHERE d.sessions > 0 OR d.logins > 0),
               max(d.day) FILTER (WHERE d.sessions > 0 OR d.logins > 0), sum(d.checksum)
        FROM pg_temp.touched t
        JOIN activity.activity_daily d
          ON d.profile_id = t.profile_id AND t.month = date_trunc('month', d.day::timestamp)::date
        GROUP BY d.profile_id, t.month;
    ELSE  -- each month through the primary key: a join here read all of activity_daily
        INSERT INTO activity.activity_monthly
        SELECT t.profile_id, t.month, m.*
        FROM pg_temp.touched t
        CROSS JOIN LATERAL (
            SELECT sum(d.sessions), sum(d.active_sessions), sum(d.logins), sum(d.grants), sum(d.emulations),
                   sum(d.problems), min(d.day) FILTER (WHERE d.sessions > 0 OR d.logins > 0),
                   max(d.day) FILTER (WHERE d.sessions > 0 OR d.logins > 0), sum(d.checksum) AS checksum
            FROM activity.activity_daily d
            WHERE d.profile_id = t.profile_id AND d.day >= t.month AND d.day < (t.month + interval '1 month')::date
        ) m
        WHERE m.checksum IS NOT NULL;  -- a month left without events has no row
    END IF;

    -- running totals: every profile gets the months the rollups gained; a changed profile's rows from its first
    -- changed month on are summed again
    last_month := (SELECT max(month) FROM activity.activity_monthly);
    IF last_month IS NULL OR last_month < previous_last THEN
        DELETE FROM activity.activity_monthly_running WHERE last_month IS NULL OR month > last_month;
    ELSIF last_month > previous_last THEN
        INSERT INTO activity.activity_monthly_running
        SELECT r.profile_id, g.month::date, r.sessions, r.active_sessions, r.logins, r.grants, r.emulations, r.problems
        FROM activity.activity_monthly_running r
        CROSS JOIN generate_series((previous_last + interval '1 month')::timestamp, last_month::timestamp,
                                   interval '1 month') g(month)
        WHERE r.month = previous_last;
    END IF;
    CREATE TEMP TABLE changed ON COMMIT DROP AS
    SELECT profile_id, min(month) AS from_month FROM pg_temp.touched GROUP BY profile_id;
    ANALYZE pg_temp.changed;
    DELETE FROM activity.activity_monthly_running r USING pg_temp.changed c
    WHERE r.profile_id = c.profile_id AND r.month >= c.from_month;
    INSERT INTO activity.activity_monthly_running
    SELECT c.profile_id, g.month::date,
           coalesce(b.sessions, 0) + sum(coalesce(m.sessions, 0)) OVER w,
           coalesce(b.active_sessions, 0) + sum(coalesce(m.active_sessions, 0)) OVER w,
           coalesce(b.logins, 0) + sum(coalesce(m.logins, 0)) OVER w,
           coalesce(b.grants, 0) + sum(coalesce(m.grants, 0)) OVER w,
           coalesce(b.emulations, 0) + sum(coalesce(m.emulations, 0)) OVER w,
           coalesce(b.problems, 0) + sum(coalesce(m.problems, 0)) OVER w
    FROM pg_temp.changed c
    -- (each profile's rows through the primary keys, as above)
    CROSS JOIN LATERAL (SELECT min(x.month) AS first FROM activity.activity_monthly x
                        WHERE x.profile_id = c.profile_id) f
    CROSS JOIN LATERAL (SELECT max(r.sessions) AS sessions, max(r.active_sessions) AS active_sessions,
                               max(r.logins) AS logins, max(r.grants) AS grants, max(r.emulations) AS emulations,
                               max(r.problems) AS problems
                        FROM activity.activity_monthly_running r
                        WHERE r.profile_id = c.profile_id AND r.month = (c.from_month - interval '1 month')::date) b
    CROSS JOIN LATERAL generate_series(greatest(c.from_month, f.first)::timestamp, last_month::timestamp,
                                       interval '1 month') g(month)
    -- (each month through the primary key: PostgreSQL guesses 1,000 rows a series and would read all months)
    LEFT JOIN LATERAL (SELECT * FROM activity.activity_monthly x WHERE x.profile_id = c.profile_id
                       AND x.month = g.month::date OFFSET 0) m ON true
    WHERE f.first IS NOT NULL
    WINDOW w AS (PARTITION BY c.profile_id ORDER BY g.month);

    -- all-time totals of the changed profiles: what their touched months hold now less what they held (not a sum
    -- over all their months, which grows with history); summed again from all their months only for a new profile,
    -- or when its first or last active day may have gone with the months' old rows
    CREATE TEMP TABLE delta ON COMMIT DROP AS
    SELECT c.profile_id,
           coalesce(n.sessions, 0) - coalesce(o.sessions, 0) AS sessions,
           coalesce(n.active_sessions, 0) - coalesce(o.active_sessions, 0) AS active_sessions,
           coalesce(n.logins, 0) - coalesce(o.logins, 0) AS logins,
           coalesce(n.grants, 0) - coalesce(o.grants, 0) AS grants,
           coalesce(n.emulations, 0) - coalesce(o.emulations, 0) AS emulations,
           coalesce(n.problems, 0) - coalesce(o.problems, 0) AS problems,
           n.first_active_day, n.last_active_day
    FROM pg_temp.changed c
    LEFT JOIN (SELECT m.profile_id, sum(m.sessions) AS sessions, sum(m.active_sessions) AS active_sessions,
                      sum(m.logins) AS logins, sum(m.grants) AS grants, sum(m.emulations) AS emulations,
                      sum(m.problems) AS problems, min(m.first_active_day) AS first_active_day,
                      max(m.last_active_day) AS last_active_day
               FROM pg_temp.touched t
               JOIN activity.activity_monthly m ON m.profile_id = t.profile_id AND m.month = t.month
               GROUP BY m.profile_id) n ON n.profile_id = c.profile_id
    LEFT JOIN (SELECT profile_id, sum(sessions) AS sessions, sum(active_sessions) AS active_sessions,
                      sum(logins) AS logins, sum(grants) AS grants, sum(emulations) AS emulations,
                      sum(problems) AS problems
               FROM pg_temp.old_months GROUP BY profile_id) o ON o.profile_id = c.profile_id;
    CREATE TEMP TABLE resum ON COMMIT DROP AS
    SELECT d.profile_id FROM pg_temp.delta d
    LEFT JOIN activity.activity_profile_totals t ON t.profile_id = d.profile_id
    WHERE t.profile_id IS NULL
       OR (d.first_active_day IS NULL OR d.first_active_day > t.first_active_day)
          AND EXISTS (SELECT 1 FROM pg_temp.touched x WHERE x.profile_id = d.profile_id
                      AND x.month = date_trunc('month', t.first_active_day::timestamp)::date)
       OR (d.last_active_day IS NULL OR d.last_active_day < t.last_active_day)
          AND EXISTS (SELECT 1 FROM pg_temp.touched x WHERE x.profile_id = d.profile_id
                      AND x.month = date_trunc('month', t.last_active_day::timestamp)::date);
    UPDATE activity.activity_profile_totals t
    SET sessions = t.sessions + d.sessions, active_sessions = t.active_sessions + d.active_sessions,
        logins = t.logins + d.logins, grants = t.grants + d.grants, emulations = t.emulations + d.emulations,
        problems = t.problems + d.problems,
        first_active_day = least(t.first_active_day, d.first_active_day),
        last_active_day = greatest(t.last_active_day, d.last_active_day)
    FROM pg_temp.delta d
    WHERE d.profile_id = t.profile_id AND NOT EXISTS (SELECT 1 FROM pg_temp.resum r WHERE r.profile_id = d.profile_id);
    DELETE FROM activity.activity_profile_totals t USING pg_temp.resum r WHERE t.profile_id = r.profile_id;
    INSERT INTO activity.activity_profile_totals
    SELECT m.profile_id, sum(m.sessions), sum(m.active_sessions), sum(m.logins), sum(m.grants), sum(m.emulations),
           sum(m.problems), min(m.first_active_day), max(m.last_active_day)
    FROM activity.activity_monthly m JOIN pg_temp.resum r ON r.profile_id = m.profile_id
    GROUP BY m.profile_id;

    DROP TABLE pg_temp.fresh, pg_temp.stale, pg_temp.touched, pg_temp.changed, pg_temp.old_months, pg_temp.delta,
               pg_temp.resum;
    -- planner statistics: with every full pass, and when the rollups gain or lose a month
    IF full_pass OR last_month IS DISTINCT FROM previous_last THEN
        ANALYZE activity.activity_monthly, activity.activity_monthly_running, activity.activity_daily,
                activity.activity_profile_totals;
    END IF;
    RETURN ARRAY['activity_monthly', 'activity_monthly_running', 'activity_daily', 'activity_profile_totals'];
END
$$;
REVOKE ALL ON FUNCTION activity.refresh_rollups(boolean) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION activity.refresh_rollups(boolean) TO activity_runtime;

INSERT INTO activity.refresh_runs (started_at, finished_at, trigger, views, outcome, full_pass)
VALUES (now(), clock_timestamp(), 'migration',
        ARRAY['activity_monthly', 'activity_monthly_running', 'activity_daily', 'activity_profile_totals'],
        'success', true);
ANALYZE activity.activity_monthly, activity.activity_monthly_running, activity.activity_daily,
        activity.activity_profile_totals;
