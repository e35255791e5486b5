-- The refresh of the rollups: activity_daily (profile, UTC day), activity_platform_daily (every profile, UTC day),
-- activity_monthly (profile, month), activity_weekly_running (dense running totals) and activity_profile_totals (all
-- time).
--
-- activity.refresh_rollups(full_pass) is the entry point (SECURITY DEFINER: the runtime may read the rollups, not
-- write them). It runs in its caller's REPEATABLE READ transaction, whose lock the caller holds, and goes:
--
--   find what changed                     a full pass: refresh_find_changed_months  -> stale (profile, month)
--                                         a light pass: refresh_find_changed_days   -> stale (profile, day)
--   count those again from the events     refresh_recount_months / refresh_recount_days -> activity_daily
--   sum those days over every profile     refresh_sum_platform_days                 -> activity_platform_daily
--   sum the days into their months        refresh_roll_months                       -> activity_monthly
--   carry the days into running totals    refresh_roll_running_totals               -> activity_weekly_running
--   adjust the all-time totals            refresh_adjust_totals                     -> activity_profile_totals
--
-- The steps hand their rows over in temp tables the entry point creates (dropped at commit; the last three only
-- once something changed):
--   stale     (profile_id, day, month): the days to replace (day NULL: the whole month, in a full pass)
--   fresh     like activity_daily: those days counted again from the events
--   touched   (profile_id, month): the months whose days were replaced
--   old_months like activity_monthly: what those months held before
--   changed   (profile_id, from_week): each changed profile and the week of its first replaced day
--
-- What each event counts for is activity.activity_event_tally (views/event_tally.sql). Which rows only a full pass
-- picks up, and why a light pass reads from yesterday on: docs/DECISIONS.md, "The refresh costs what changed".
-- Every function here pins search_path and names every object by its schema: nothing a caller puts first can
-- stand in for them. Only the entry point may be called by the runtime role.

-- Full pass, step 1: every (profile, month) whose counts or checksum differ from the stored month's; all its days
-- will be replaced. Answers whether to take the whole-table path (bulk): from 20,000 changed months, or when more
-- than half of the months the rollups hold changed (so also when they hold nothing yet).
CREATE OR REPLACE FUNCTION activity.refresh_find_changed_months() RETURNS boolean
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    stale_months bigint;
BEGIN
    INSERT INTO pg_temp.stale (profile_id, month)
    SELECT coalesce(e.profile_id, m.profile_id), coalesce(e.month, m.month)
    FROM (SELECT profile_id, date_trunc('month', day::timestamp)::date AS month,
                 count(*) FILTER (WHERE sessions)::integer AS sessions,
                 count(*) FILTER (WHERE active_sessions)::integer AS active_sessions,
                 count(*) FILTER (WHERE logins)::integer AS logins,
                 count(*) FILTER (WHERE grants)::integer AS grants,
                 count(*) FILTER (WHERE emulations)::integer AS emulations,
                 count(*) FILTER (WHERE problems)::integer AS problems,
                 sum(hash) AS checksum
          FROM activity.activity_event_tally GROUP BY 1, 2) e
    FULL JOIN activity.activity_monthly m ON m.profile_id = e.profile_id AND m.month = e.month
    WHERE (e.sessions, e.active_sessions, e.logins, e.grants, e.emulations, e.problems, e.checksum)
          IS DISTINCT FROM
          (m.sessions, m.active_sessions, m.logins, m.grants, m.emulations, m.problems, m.checksum);
    ANALYZE pg_temp.stale;
    stale_months := (SELECT count(*) FROM pg_temp.stale);
    RETURN stale_months > 20000 OR stale_months * 2 > (
        SELECT count(*) FROM (SELECT FROM activity.activity_monthly LIMIT stale_months * 2) held);
END
$$;

-- Full pass, step 2: the days of the stale months counted again, and put in place of the stored ones. Bulk: one
-- join of whole tables by month; otherwise each month through the profile indexes (OFFSET 0 keeps the LATERAL a
-- look-up, never a scan of all events).
CREATE OR REPLACE FUNCTION activity.refresh_recount_months(bulk boolean) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF bulk THEN
        INSERT INTO pg_temp.fresh
        SELECT e.profile_id, e.day,
               count(*) FILTER (WHERE e.sessions), count(*) FILTER (WHERE e.active_sessions),
               count(*) FILTER (WHERE e.logins), count(*) FILTER (WHERE e.grants),
               count(*) FILTER (WHERE e.emulations), count(*) FILTER (WHERE e.problems), sum(e.hash)
        FROM activity.activity_event_tally e
        JOIN pg_temp.stale s
          ON s.profile_id = e.profile_id AND s.month = date_trunc('month', e.day::timestamp)::date
        GROUP BY 1, 2;
        DELETE FROM activity.activity_daily d USING pg_temp.stale s
        WHERE d.profile_id = s.profile_id AND s.month = date_trunc('month', d.day::timestamp)::date;
    ELSE
        INSERT INTO pg_temp.fresh
        SELECT e.profile_id, e.day,
               count(*) FILTER (WHERE e.sessions), count(*) FILTER (WHERE e.active_sessions),
               count(*) FILTER (WHERE e.logins), count(*) FILTER (WHERE e.grants),
               count(*) FILTER (WHERE e.emulations), count(*) FILTER (WHERE e.problems), sum(e.hash)
        FROM pg_temp.stale s
        CROSS JOIN LATERAL (SELECT * FROM activity.activity_event_tally e WHERE e.profile_id = s.profile_id
                            AND e.at >= s.month::timestamp AT TIME ZONE 'UTC'
                            AND e.at < (s.month + interval '1 month')::timestamp AT TIME ZONE 'UTC'
                            OFFSET 0) e
        GROUP BY 1, 2;
        DELETE FROM activity.activity_daily d USING pg_temp.stale s
        WHERE d.profile_id = s.profile_id AND d.day >= s.month AND d.day < (s.month + interval '1 month')::date;
    END IF;
    INSERT INTO activity.activity_daily SELECT * FROM pg_temp.fresh ORDER BY day, profile_id;
END
$$;

-- Light pass, step 1: the days that may have changed. Answers whether any did.
--  - every day from since_day on whose counts differ from the stored day's, counted from the event tables' time
--    indexes alone (no event id is read; the day is recounted whole, checksum included, in step 2);
--  - an older day of a session updated in the last 25 hours, when that day's count of sessions or of active
--    sessions differs from the stored day's (counted from the profile index alone: a session whose counters alone
--    changed changes nothing here);
--  - an older day whose problem count differs (a deleted problem leaves nothing to find it by): first one checksum
--    of every older problem's (profile, day) against the stored days', then, only if they differ, day by day. The
--    hashes are cut to 32 bits so that both sums stay in bigint arithmetic (a day's count times a hash fits).
CREATE OR REPLACE FUNCTION activity.refresh_find_changed_days(since_day date) RETURNS boolean
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    since constant timestamptz := since_day::timestamp AT TIME ZONE 'UTC';
BEGIN
    INSERT INTO pg_temp.stale (profile_id, day, month)
    SELECT coalesce(e.profile_id, d.profile_id), coalesce(e.day, d.day),
           date_trunc('month', coalesce(e.day, d.day)::timestamp)::date
    FROM (SELECT profile_id, day,
                 count(*) FILTER (WHERE sessions)::integer AS sessions,
                 count(*) FILTER (WHERE active_sessions)::integer AS active_sessions,
                 count(*) FILTER (WHERE logins)::integer AS logins,
                 count(*) FILTER (WHERE grants)::integer AS grants,
                 count(*) FILTER (WHERE emulations)::integer AS emulations,
                 count(*) FILTER (WHERE problems)::integer AS problems
          FROM activity.activity_event_tally WHERE at >= since GROUP BY 1, 2) e
    FULL JOIN (SELECT * FROM activity.activity_daily WHERE day >= since_day) d
      ON d.profile_id = e.profile_id AND d.day = e.day
    WHERE (e.sessions, e.active_sessions, e.logins, e.grants, e.emulations, e.problems)
          IS DISTINCT FROM (d.sessions, d.active_sessions, d.logins, d.grants, d.emulations, d.problems);

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
    RETURN EXISTS (SELECT 1 FROM pg_temp.stale);
END
$$;

-- Light pass, step 2: those days counted again whole, checksums included (the recent ones in one pass over the
-- time indexes, the older ones each through the profile indexes), and put in place of the stored ones. An older
-- day named only as a candidate may hold what it held: it is left as it is (and out of `stale`).
CREATE OR REPLACE FUNCTION activity.refresh_recount_days(since_day date) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    since constant timestamptz := since_day::timestamp AT TIME ZONE 'UTC';
BEGIN
    ANALYZE pg_temp.stale;
    INSERT INTO pg_temp.fresh
    SELECT e.profile_id, e.day,
           count(*) FILTER (WHERE e.sessions), count(*) FILTER (WHERE e.active_sessions),
           count(*) FILTER (WHERE e.logins), count(*) FILTER (WHERE e.grants),
           count(*) FILTER (WHERE e.emulations), count(*) FILTER (WHERE e.problems), sum(e.hash)
    FROM (SELECT e.* FROM activity.activity_event_tally e
          JOIN pg_temp.stale s ON s.profile_id = e.profile_id AND s.day = e.day
          WHERE e.at >= since
          UNION ALL
          SELECT e.* FROM pg_temp.stale s
          CROSS JOIN LATERAL (SELECT * FROM activity.activity_event_tally e WHERE e.profile_id = s.profile_id
                              AND e.at >= s.day::timestamp AT TIME ZONE 'UTC'
                              AND e.at < (s.day + 1)::timestamp AT TIME ZONE 'UTC'
                              OFFSET 0) e
          WHERE s.day < since_day) e
    GROUP BY 1, 2;
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
END
$$;

-- Every profile's sums a day (activity_platform_daily, migration 0006) brought up to date: the profiles deleted
-- since it was last (and any restored) leave it (or come back) with their rows of every other day, then every day
-- whose rows were replaced (a full pass: every day of a replaced month) is summed again over the profiles it does
-- not leave out, one range of activity_daily's day index a day. A day left without rows has none.
CREATE OR REPLACE FUNCTION activity.refresh_sum_platform_days() RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    CREATE TEMP TABLE platform_days ON COMMIT DROP AS
    SELECT DISTINCT s.day FROM pg_temp.stale s WHERE s.day IS NOT NULL
    UNION
    SELECT g.day::date FROM (SELECT DISTINCT s.month FROM pg_temp.stale s WHERE s.day IS NULL) m
    CROSS JOIN LATERAL generate_series(m.month::timestamp, m.month + interval '1 month' - interval '1 day',
                                       interval '1 day') g(day);
    -- sign -1: deleted since (to leave out); +1: restored (to take back)
    CREATE TEMP TABLE platform_moved ON COMMIT DROP AS
    SELECT coalesce(p.id, o.profile_id) AS profile_id, CASE WHEN o.profile_id IS NULL THEN -1 ELSE 1 END AS sign
    FROM (SELECT id FROM public.profiles WHERE deleted_at IS NOT NULL) p
    FULL JOIN activity.activity_platform_left_out o ON o.profile_id = p.id
    WHERE p.id IS NULL OR o.profile_id IS NULL;
    DELETE FROM activity.activity_platform_left_out o USING pg_temp.platform_moved m
    WHERE o.profile_id = m.profile_id AND m.sign = 1;
    INSERT INTO activity.activity_platform_left_out SELECT profile_id FROM pg_temp.platform_moved WHERE sign = -1;
    INSERT INTO activity.activity_platform_daily AS pd
    SELECT d.day, sum(m.sign * d.sessions), sum(m.sign * d.active_sessions), sum(m.sign * d.logins),
           sum(m.sign * d.grants), sum(m.sign * d.emulations), sum(m.sign * d.problems)
    FROM pg_temp.platform_moved m
    JOIN activity.activity_daily d ON d.profile_id = m.profile_id
    WHERE NOT EXISTS (SELECT 1 FROM pg_temp.platform_days c WHERE c.day = d.day)
    GROUP BY d.day
    ON CONFLICT (day) DO UPDATE
    SET sessions = pd.sessions + excluded.sessions, active_sessions = pd.active_sessions + excluded.active_sessions,
        logins = pd.logins + excluded.logins, grants = pd.grants + excluded.grants,
        emulations = pd.emulations + excluded.emulations, problems = pd.problems + excluded.problems;
    DELETE FROM activity.activity_platform_daily p USING pg_temp.platform_days c WHERE p.day = c.day;
    INSERT INTO activity.activity_platform_daily
    SELECT c.day, t.*
    FROM pg_temp.platform_days c
    CROSS JOIN LATERAL (SELECT sum(d.sessions) AS sessions, sum(d.active_sessions), sum(d.logins), sum(d.grants),
                               sum(d.emulations), sum(d.problems)
                        FROM activity.activity_daily d
                        WHERE d.day = c.day AND NOT EXISTS (SELECT 1 FROM activity.activity_platform_left_out o
                                                            WHERE o.profile_id = d.profile_id)
                        OFFSET 0) t
    WHERE t.sessions IS NOT NULL
    ORDER BY c.day;
    DROP TABLE pg_temp.platform_days, pg_temp.platform_moved;
END
$$;

-- The months of the days replaced (`touched`), summed again from their days; what they held goes to `old_months`
-- for the totals. Bulk: one join by month; otherwise each month through the primary key (a join here read all of
-- activity_daily). A month left without events has no row.
CREATE OR REPLACE FUNCTION activity.refresh_roll_months(bulk boolean) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    INSERT INTO pg_temp.touched SELECT DISTINCT profile_id, month FROM pg_temp.stale;
    ANALYZE pg_temp.touched;
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
    ELSE
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
        WHERE m.checksum IS NOT NULL;
    END IF;
END
$$;

-- Running totals by week (activity_weekly_running, migration 0005): every profile gets the weeks the rollups gained
-- (or loses those they lost); a changed profile's rows from the week of its first replaced day on (a full pass: of
-- its first replaced month's first day) are summed again from its days (`changed`): through the primary keys for a
-- one range of the daily table a profile. Answers the last week the rollups hold now.
CREATE OR REPLACE FUNCTION activity.refresh_roll_running_totals(previous_last date) RETURNS date
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    last_week constant date := (SELECT date_trunc('week', max(day)::timestamp)::date FROM activity.activity_daily);
BEGIN
    IF last_week IS NULL OR last_week < previous_last THEN
        DELETE FROM activity.activity_weekly_running WHERE last_week IS NULL OR week > last_week;
    ELSIF last_week > previous_last THEN
        INSERT INTO activity.activity_weekly_running
        SELECT r.profile_id, g.week::date, r.sessions, r.active_sessions, r.logins, r.grants, r.emulations, r.problems
        FROM activity.activity_weekly_running r
        CROSS JOIN generate_series((previous_last + 7)::timestamp, last_week::timestamp, interval '7 days') g(week)
        WHERE r.week = previous_last;
    END IF;
    INSERT INTO pg_temp.changed
    SELECT profile_id, date_trunc('week', min(coalesce(day, month))::timestamp)::date FROM pg_temp.stale
    GROUP BY profile_id;
    ANALYZE pg_temp.changed;
    DELETE FROM activity.activity_weekly_running r USING pg_temp.changed c
    WHERE r.profile_id = c.profile_id AND r.week >= c.from_week;
    -- each changed profile's weeks summed from its days: one range of the daily table's primary key a profile (a
    -- join let the planner read the whole table for a few thousand profiles: 52 s for a five-minute delta)
    CREATE TEMP TABLE weeks ON COMMIT DROP AS
    SELECT c.profile_id, w.*
    FROM pg_temp.changed c
    CROSS JOIN LATERAL (SELECT date_trunc('week', d.day::timestamp)::date AS week,
                               -- integers: their running sums are then bigint, not numeric
                               sum(d.sessions)::integer AS sessions, sum(d.active_sessions)::integer AS active_sessions,
                               sum(d.logins)::integer AS logins, sum(d.grants)::integer AS grants,
                               sum(d.emulations)::integer AS emulations, sum(d.problems)::integer AS problems
                        FROM activity.activity_daily d WHERE d.profile_id = c.profile_id AND d.day >= c.from_week
                        GROUP BY 1 OFFSET 0) w;
    ANALYZE pg_temp.weeks;
    INSERT INTO activity.activity_weekly_running
    SELECT c.profile_id, g.week::date,
           coalesce(b.sessions, 0) + sum(coalesce(w.sessions, 0)) OVER x,
           coalesce(b.active_sessions, 0) + sum(coalesce(w.active_sessions, 0)) OVER x,
           coalesce(b.logins, 0) + sum(coalesce(w.logins, 0)) OVER x,
           coalesce(b.grants, 0) + sum(coalesce(w.grants, 0)) OVER x,
           coalesce(b.emulations, 0) + sum(coalesce(w.emulations, 0)) OVER x,
           coalesce(b.problems, 0) + sum(coalesce(w.problems, 0)) OVER x
    FROM pg_temp.changed c
    CROSS JOIN LATERAL (SELECT date_trunc('week', min(d.day)::timestamp)::date AS first FROM activity.activity_daily d
                        WHERE d.profile_id = c.profile_id) f
    CROSS JOIN LATERAL (SELECT max(r.sessions) AS sessions, max(r.active_sessions) AS active_sessions,
                               max(r.logins) AS logins, max(r.grants) AS grants, max(r.emulations) AS emulations,
                               max(r.problems) AS problems
                        FROM activity.activity_weekly_running r
                        WHERE r.profile_id = c.profile_id AND r.week = c.from_week - 7) b
    CROSS JOIN LATERAL generate_series(greatest(c.from_week, f.first)::timestamp, last_week::timestamp,
                                       interval '7 days') g(week)
    LEFT JOIN pg_temp.weeks w ON w.profile_id = c.profile_id AND w.week = g.week::date
    WHERE f.first IS NOT NULL
    WINDOW x AS (PARTITION BY c.profile_id ORDER BY g.week);
    DROP TABLE pg_temp.weeks;
    RETURN last_week;
END
$$;

-- All-time totals of the changed profiles: what their touched months hold now less what they held (not a sum over
-- all their months, which grows with history); summed again from all their months only for a new profile, or when
-- its first or last active day may have gone with the months' old rows.
CREATE OR REPLACE FUNCTION activity.refresh_adjust_totals() RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
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
    DROP TABLE pg_temp.delta, pg_temp.resum;
END
$$;

-- The entry point: one pass, light or full (see the top of this file).
CREATE OR REPLACE FUNCTION activity.refresh_rollups(full_pass boolean) RETURNS text[]
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    rollups constant text[] :=
        ARRAY['activity_monthly', 'activity_weekly_running', 'activity_daily', 'activity_platform_daily',
              'activity_profile_totals'];
    -- a light pass recounts every day from this one on: at least the last 24 hours, in whole UTC days
    since_day constant date := ((now() - interval '1 day') AT TIME ZONE 'UTC')::date;
    previous_last constant date := (SELECT max(week) FROM activity.activity_weekly_running);
    last_week date;
    bulk boolean := false;
BEGIN
    CREATE TEMP TABLE stale (profile_id uuid NOT NULL, day date, month date NOT NULL) ON COMMIT DROP;
    CREATE TEMP TABLE fresh (LIKE activity.activity_daily) ON COMMIT DROP;
    IF full_pass THEN
        bulk := activity.refresh_find_changed_months();
        PERFORM activity.refresh_recount_months(bulk);
    ELSIF activity.refresh_find_changed_days(since_day) THEN
        PERFORM activity.refresh_recount_days(since_day);
    ELSE  -- nothing changed
        DROP TABLE pg_temp.stale, pg_temp.fresh;
        RETURN rollups;
    END IF;
    CREATE TEMP TABLE touched (profile_id uuid NOT NULL, month date NOT NULL) ON COMMIT DROP;
    CREATE TEMP TABLE old_months (LIKE activity.activity_monthly) ON COMMIT DROP;
    CREATE TEMP TABLE changed (profile_id uuid NOT NULL, from_week date NOT NULL) ON COMMIT DROP;
    PERFORM activity.refresh_sum_platform_days();
    PERFORM activity.refresh_roll_months(bulk);
    last_week := activity.refresh_roll_running_totals(previous_last);
    PERFORM activity.refresh_adjust_totals();
    DROP TABLE pg_temp.stale, pg_temp.fresh, pg_temp.touched, pg_temp.old_months, pg_temp.changed;
    -- planner statistics: with every full pass, and when the rollups gain or lose a week
    IF full_pass OR last_week IS DISTINCT FROM previous_last THEN
        ANALYZE activity.activity_monthly, activity.activity_weekly_running, activity.activity_daily,
                activity.activity_platform_daily, activity.activity_profile_totals;
    END IF;
    RETURN rollups;
END
$$;

-- The steps write the rollups: only the entry point may be called, and only by the runtime role.
REVOKE ALL ON FUNCTION activity.refresh_find_changed_months(), activity.refresh_recount_months(boolean),
    activity.refresh_find_changed_days(date), activity.refresh_recount_days(date),
    activity.refresh_sum_platform_days(), activity.refresh_roll_months(boolean),
    activity.refresh_roll_running_totals(date),
    activity.refresh_adjust_totals() FROM PUBLIC;
REVOKE ALL ON FUNCTION activity.refresh_rollups(boolean) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION activity.refresh_rollups(boolean) TO activity_runtime;
