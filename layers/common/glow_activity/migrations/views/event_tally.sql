-- What each event counts for: the one place where an event's kind becomes the rollups' columns.
--
-- activity.activity_events (migration 0001) lists every event of the platform as (id, profile, time, kind), kind
-- being s session, a active session, l login, g grant, e emulation, p problem; activity.activity_event_days
-- (migration 0002) adds its UTC day and its checksum hash. This view turns the kind into one true/false column
-- per rollup column, named after it, so that every count the refresh makes is `count(*) FILTER (WHERE <column>)`:
--   sessions: s or a, active_sessions: a, logins: l, grants: g or e, emulations: e, problems: p.
-- A query that reads neither `hash` nor `id` is planned on the event tables' time indexes alone (the view is
-- inlined; an unread column is never computed).
CREATE OR REPLACE VIEW activity.activity_event_tally AS
SELECT profile_id, at, day, hash,
       kind IN ('s', 'a') AS sessions,
       kind = 'a' AS active_sessions,
       kind = 'l' AS logins,
       kind IN ('g', 'e') AS grants,
       kind = 'e' AS emulations,
       kind = 'p' AS problems
FROM activity.activity_event_days;
