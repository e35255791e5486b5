-- The rollups' first build, in steps: what a refresh does when the rollups hold nothing and the platform has events
-- (a new deploy against Glow's database, demo data loaded after migrating), at any size.
--
-- A full pass would count all of history in one transaction: 20 minutes at ten times Glow's size, past every
-- Lambda's limit (docs/PERFORMANCE.md, "Ten times Glow"). The build instead writes one month at a time, each step
-- its own transaction, recorded in activity.rollup_build, so that a caller near its time limit stops between two
-- months and the next goes on (glow_activity/rollup_build.py). The steps, in order:
--   activity.build_rollups_month(month)   that month's days (activity_daily; summed over the profiles not
--                                         deleted, activity_platform_daily) and months (activity_monthly), from
--                                         the event tables' time indexes; once per month, however often called
--   activity.build_rollups_running(n)     running totals by week, n profiles a call, from activity_daily
--   activity.build_rollups_finish()       the all-time totals; the build's record is emptied: it is done
-- Readers meanwhile see what is built so far, and X-Data-As-Of stays what it was (no successful run yet, or the
-- last one). Every function pins search_path and names every object by its schema; they run as the rollups' owner
-- (SECURITY DEFINER), called by the refresh (the runtime role) or by a migration.

-- Whether a build is under way, or is needed: the rollups hold nothing while the platform has events.
CREATE OR REPLACE FUNCTION activity.build_rollups_needed() RETURNS boolean
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
    SELECT EXISTS (SELECT 1 FROM activity.rollup_build)
        OR NOT EXISTS (SELECT 1 FROM activity.activity_monthly) AND EXISTS (SELECT 1 FROM activity.activity_events)
$$;

-- The months left to write, oldest first: every month from the first event's to the last event's (the event
-- tables' time indexes answer min and max) that the build has not written.
CREATE OR REPLACE FUNCTION activity.build_rollups_months_left() RETURNS SETOF date
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
    SELECT g.month::date
    FROM (SELECT min(at) AS first, max(at) AS last FROM activity.activity_events) e
    CROSS JOIN LATERAL generate_series(date_trunc('month', e.first AT TIME ZONE 'UTC'),
                                       date_trunc('month', e.last AT TIME ZONE 'UTC'), interval '1 month') g(month)
    WHERE NOT EXISTS (SELECT 1 FROM activity.rollup_build b WHERE b.month = g.month::date)
    ORDER BY 1
$$;

-- One month: its days counted from the events, and its month rows summed from those days. False when the build
-- had written it already, or when there is no build to make (rollups a refresh keeps are never written here).
CREATE OR REPLACE FUNCTION activity.build_rollups_month(build_month date) RETURNS boolean
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    month_start constant timestamptz := build_month::timestamp AT TIME ZONE 'UTC';
    month_end constant timestamptz := (build_month + interval '1 month')::timestamp AT TIME ZONE 'UTC';
BEGIN
    IF NOT activity.build_rollups_needed()
       OR EXISTS (SELECT 1 FROM activity.rollup_build b WHERE b.month = build_month) THEN
        RETURN false;
    END IF;
    CREATE TEMP TABLE build_days ON COMMIT DROP AS
    SELECT e.profile_id, e.day,
           count(*) FILTER (WHERE e.sessions)::integer AS sessions,
           count(*) FILTER (WHERE e.active_sessions)::integer AS active_sessions,
           count(*) FILTER (WHERE e.logins)::integer AS logins,
           count(*) FILTER (WHERE e.grants)::integer AS grants,
           count(*) FILTER (WHERE e.emulations)::integer AS emulations,
           count(*) FILTER (WHERE e.problems)::integer AS problems,
           sum(e.hash) AS checksum
    FROM activity.activity_event_tally e
    WHERE e.at >= month_start AND e.at < month_end
    GROUP BY 1, 2;
    INSERT INTO activity.activity_daily SELECT * FROM pg_temp.build_days ORDER BY day, profile_id;
    IF NOT EXISTS (SELECT 1 FROM activity.rollup_build) THEN
        -- the build's first month: every profile's sums a day start again, leaving out the profiles deleted now
        DELETE FROM activity.activity_platform_daily;
        DELETE FROM activity.activity_platform_left_out;
        INSERT INTO activity.activity_platform_left_out SELECT id FROM public.profiles WHERE deleted_at IS NOT NULL;
    END IF;
    INSERT INTO activity.activity_platform_daily
    SELECT d.day, sum(d.sessions), sum(d.active_sessions), sum(d.logins), sum(d.grants), sum(d.emulations),
           sum(d.problems)
    FROM pg_temp.build_days d
    WHERE NOT EXISTS (SELECT 1 FROM activity.activity_platform_left_out o WHERE o.profile_id = d.profile_id)
    GROUP BY d.day
    ORDER BY d.day;
    INSERT INTO activity.activity_monthly
    SELECT d.profile_id, build_month,
           sum(d.sessions), sum(d.active_sessions), sum(d.logins), sum(d.grants), sum(d.emulations), sum(d.problems),
           min(d.day) FILTER (WHERE d.sessions > 0 OR d.logins > 0),
           max(d.day) FILTER (WHERE d.sessions > 0 OR d.logins > 0), sum(d.checksum)
    FROM pg_temp.build_days d
    GROUP BY d.profile_id
    ORDER BY d.profile_id;
    INSERT INTO activity.rollup_build (month) VALUES (build_month);
    DROP TABLE pg_temp.build_days;
    RETURN true;
END
$$;

-- The running totals by week of the next `batch` profiles (by id, after those written): a row for every week from each
-- one's first active week to the last week the rollups hold, summed from its days (migration 0005 fills the table the
-- same way, at once). All profiles at once took 3 min 39 s at ten times Glow's size, too close to a step's limit;
-- rollup_build.py asks for 20,000 at a time: 31-38 s a step there. False when no profile is left, or when no build
-- is under way.
DROP FUNCTION IF EXISTS activity.build_rollups_running();  -- all profiles in one call, before migration 0005
CREATE OR REPLACE FUNCTION activity.build_rollups_running(batch integer) RETURNS boolean
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    after constant uuid := coalesce((SELECT profile_id FROM activity.activity_weekly_running
                                     ORDER BY profile_id DESC LIMIT 1), '00000000-0000-0000-0000-000000000000');
BEGIN
    IF NOT EXISTS (SELECT 1 FROM activity.rollup_build) THEN
        RETURN false;
    END IF;
    CREATE TEMP TABLE build_profiles ON COMMIT DROP AS
    SELECT DISTINCT m.profile_id FROM activity.activity_monthly m WHERE m.profile_id > after
    ORDER BY m.profile_id LIMIT batch;
    IF NOT EXISTS (SELECT 1 FROM pg_temp.build_profiles) THEN
        DROP TABLE pg_temp.build_profiles;
        RETURN false;
    END IF;
    INSERT INTO activity.activity_weekly_running
    WITH w AS MATERIALIZED (  -- each of their weeks with days
        SELECT d.profile_id, date_trunc('week', d.day::timestamp) AS week,
               -- integers: their running sums are then bigint, not numeric
               sum(d.sessions)::integer AS sessions, sum(d.active_sessions)::integer AS active_sessions,
               sum(d.logins)::integer AS logins, sum(d.grants)::integer AS grants,
               sum(d.emulations)::integer AS emulations, sum(d.problems)::integer AS problems
        FROM pg_temp.build_profiles b JOIN activity.activity_daily d ON d.profile_id = b.profile_id
        GROUP BY 1, 2
    )
    SELECT f.profile_id, g.week::date,
           sum(coalesce(w.sessions, 0)) OVER x, sum(coalesce(w.active_sessions, 0)) OVER x,
           sum(coalesce(w.logins, 0)) OVER x, sum(coalesce(w.grants, 0)) OVER x,
           sum(coalesce(w.emulations, 0)) OVER x, sum(coalesce(w.problems, 0)) OVER x
    FROM (SELECT profile_id, min(week) AS first FROM w GROUP BY profile_id) f
    CROSS JOIN (SELECT date_trunc('week', max(day)::timestamp) AS week FROM activity.activity_daily) last
    CROSS JOIN LATERAL generate_series(f.first, last.week, interval '7 days') g(week)
    LEFT JOIN w ON w.profile_id = f.profile_id AND w.week = g.week
    WINDOW x AS (PARTITION BY f.profile_id ORDER BY g.week);
    DROP TABLE pg_temp.build_profiles;
    RETURN true;
END
$$;

-- The all-time totals, and the end of the build: its record emptied, planner statistics for the rollups. Answers
-- when its first month was written (NULL, and nothing done, when no build is under way).
CREATE OR REPLACE FUNCTION activity.build_rollups_finish() RETURNS timestamptz
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    first_month_at constant timestamptz := (SELECT min(built_at) FROM activity.rollup_build);
BEGIN
    IF first_month_at IS NULL THEN
        RETURN NULL;
    END IF;
    DELETE FROM activity.activity_profile_totals;
    INSERT INTO activity.activity_profile_totals
    SELECT profile_id, sum(sessions), sum(active_sessions), sum(logins), sum(grants), sum(emulations), sum(problems),
           min(first_active_day), max(last_active_day)
    FROM activity.activity_monthly
    GROUP BY profile_id;
    DELETE FROM activity.rollup_build;
    ANALYZE activity.activity_monthly, activity.activity_weekly_running, activity.activity_daily,
            activity.activity_platform_daily, activity.activity_profile_totals;
    RETURN first_month_at;
END
$$;

REVOKE ALL ON FUNCTION activity.build_rollups_needed(), activity.build_rollups_months_left(),
    activity.build_rollups_month(date), activity.build_rollups_running(integer), activity.build_rollups_finish() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION activity.build_rollups_needed(), activity.build_rollups_months_left(),
    activity.build_rollups_month(date), activity.build_rollups_running(integer), activity.build_rollups_finish()
    TO activity_runtime;
