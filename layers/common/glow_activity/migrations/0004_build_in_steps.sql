-- The rollups' first build goes a month per transaction (migrations/functions/build.sql), so that no step of a
-- deploy or of a refresh outlives its Lambda at ten times Glow's size (docs/DECISIONS.md, "The first build in
-- steps"). Both statements are metadata-only and idempotent.

-- The months the build under way has written (days and month rows); emptied when it finishes. Its rows are the
-- build's progress: a build that stopped goes on from the first month missing here.
CREATE TABLE IF NOT EXISTS activity.rollup_build (
    month    date        PRIMARY KEY,
    built_at timestamptz NOT NULL DEFAULT clock_timestamp()
);

-- A run that was such a build: its counts are as of each month's step, so a full pass follows it (refresh.py).
ALTER TABLE activity.refresh_runs ADD COLUMN IF NOT EXISTS built boolean NOT NULL DEFAULT false;
