-- The parts of a window that are read by time answer from an index alone (no heap visits once vacuumed):
-- - activity_monthly by month: a month's rows are spread over the view, which is ordered by profile for the
--   per-profile lookups (200k rows for ten months of an admin's window: 122 ms by heap, docs/PERFORMANCE.md);
-- - the partial days at a window's ends, from the event tables by time: a day's logins and sessions lie on as
--   many heap pages as rows when they were not written in time order (10k logins: 251 ms by heap).
CREATE INDEX IF NOT EXISTS activity_monthly_month_cover_idx ON activity_monthly (month)
    INCLUDE (profile_id, sessions, active_sessions, logins, grants, emulations, problems);
DROP INDEX IF EXISTS activity_monthly_month_idx;

CREATE INDEX IF NOT EXISTS logins_logged_in_cover_idx ON logins (logged_in_at) INCLUDE (profile_id);
DROP INDEX IF EXISTS logins_logged_in_idx;

-- search walks this index by (created_at, id) too; the included columns let a window's count part skip the heap
CREATE INDEX IF NOT EXISTS sessions_created_at_id_cover_idx ON sessions (created_at, id) INCLUDE (profile_id, active);
DROP INDEX IF EXISTS sessions_created_at_id_idx;

CREATE INDEX IF NOT EXISTS grants_created_cover_idx ON grants (created_at) INCLUDE (profile_id, kind);
DROP INDEX IF EXISTS grants_created_idx;
CREATE INDEX IF NOT EXISTS problems_created_cover_idx ON problems (created_at) INCLUDE (profile_id);
DROP INDEX IF EXISTS problems_created_idx;
