-- Many callers at once (CONTRACT.md, "Many callers at once"): what the per-caller limit, the refresh that never
-- waits on another's and the bounded exports keep. Every statement is metadata-only or touches a small table of the
-- service's own, and each is idempotent.

-- The per-caller limit's token buckets, one row per caller (a profile), shared by every function and container.
-- UNLOGGED: a bucket is worth nothing after a crash (every caller simply starts full again), and a row updated on
-- every request should not cost WAL. Read and written only by activity.take_request and activity.flush_refusals (functions/caller_limit.sql),
-- on the writer (a reader cannot read unlogged tables). `refused` counts a minute's refusals after its first, which
-- become one audit row when that minute is over.
CREATE UNLOGGED TABLE IF NOT EXISTS activity.caller_requests (
    caller           uuid             PRIMARY KEY,
    tokens           double precision NOT NULL,
    refilled_at      timestamptz      NOT NULL,
    refused_minute   timestamptz,
    refused          integer          NOT NULL DEFAULT 0,
    refused_operation text,
    refused_channel  text,
    refused_request  text
);
GRANT SELECT, INSERT, UPDATE, DELETE ON activity.caller_requests TO activity_runtime;

-- An audit row may stand for several calls: a minute's refusals of one caller after its first (429s are recorded
-- without a write per refusal). Operator commands are audited too. A constant default adds the column without a
-- rewrite; the new check is NOT VALID, since every row holds the old, narrower one (no scan under lock).
ALTER TABLE activity.audit_log ADD COLUMN IF NOT EXISTS count integer NOT NULL DEFAULT 1;
ALTER TABLE activity.audit_log DROP CONSTRAINT IF EXISTS audit_log_channel_check;
ALTER TABLE activity.audit_log ADD CONSTRAINT audit_log_channel_check
    CHECK (channel IN ('api', 'mcp', 'schedule', 'operator')) NOT VALID;

-- When a refresh's snapshot was taken (its transaction's start, after it got the lock): an admin's call that was
-- made before another full pass took its snapshot is answered by that pass instead of queueing one more.
ALTER TABLE activity.refresh_runs ADD COLUMN IF NOT EXISTS snapshot_at timestamptz;

-- Exports: an asynchronous job is claimed once, from its own `running` row (a forged or replayed event finds none
-- to claim), and a caller has at most one export running (its second request answers the first).
ALTER TABLE activity.uploads ADD COLUMN IF NOT EXISTS claimed_at timestamptz;
UPDATE activity.uploads u SET status = 'failed', error = 'superseded', completed_at = now()
WHERE u.status = 'running' AND EXISTS (
    SELECT 1 FROM activity.uploads o
    WHERE o.requested_by = u.requested_by AND o.status = 'running' AND (o.created_at, o.id) > (u.created_at, u.id));
CREATE UNIQUE INDEX IF NOT EXISTS uploads_running_per_caller_uidx ON activity.uploads (requested_by)
    WHERE status = 'running';
