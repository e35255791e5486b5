-- A coordinator's search reads each member's newest sessions from this index alone (the session's id and
-- active flag are in it), keeps the page's rows among them, and only then visits those rows: the page no
-- longer walks every profile's sessions by time to find the department's (docs/PERFORMANCE.md). It also
-- serves everything the index it replaces did, which had the same first two columns.
CREATE INDEX IF NOT EXISTS sessions_profile_created_id_idx ON sessions (profile_id, created_at, id) INCLUDE (active);
DROP INDEX IF EXISTS sessions_profile_created_idx;
