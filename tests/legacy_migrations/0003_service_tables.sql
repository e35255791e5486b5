-- Tables the Activity service owns.

-- One row per call after authentication (success or not).
CREATE TABLE IF NOT EXISTS audit_log (
    id          bigserial   PRIMARY KEY,
    at          timestamptz NOT NULL DEFAULT now(),
    operation   text        NOT NULL,
    profile_id  uuid,
    api_key_id  uuid,
    channel     text        NOT NULL CHECK (channel IN ('api', 'mcp', 'schedule')),
    status_code integer     NOT NULL,
    request_id  text        NOT NULL
);
CREATE INDEX IF NOT EXISTS audit_log_at_idx ON audit_log (at);
CREATE INDEX IF NOT EXISTS audit_log_request_idx ON audit_log (request_id);

-- Every refresh of the materialized views: what ran, when, why and how it ended.
CREATE TABLE IF NOT EXISTS refresh_runs (
    id          bigserial   PRIMARY KEY,
    started_at  timestamptz NOT NULL DEFAULT clock_timestamp(),
    finished_at timestamptz,
    trigger     text        NOT NULL CHECK (trigger IN ('api', 'mcp', 'schedule', 'migration', 'cli')),
    requested_by uuid,
    views       text[]      NOT NULL DEFAULT '{}',
    outcome     text        NOT NULL CHECK (outcome IN ('running', 'success', 'failed')),
    error       text
);
CREATE INDEX IF NOT EXISTS refresh_runs_success_idx ON refresh_runs (id DESC) WHERE outcome = 'success';

-- Powertools idempotency records (our PostgreSQL persistence layer).
CREATE TABLE IF NOT EXISTS idempotency_records (
    id                     text    PRIMARY KEY,
    status                 text    NOT NULL,
    expiration             bigint  NOT NULL,
    in_progress_expiration bigint,
    response_data          text,
    payload_hash           text
);
CREATE INDEX IF NOT EXISTS idempotency_records_expiration_idx ON idempotency_records (expiration);

-- Exports written to S3.
CREATE TABLE IF NOT EXISTS uploads (
    id           uuid        PRIMARY KEY,
    s3_key       text        NOT NULL,
    file_name    text        NOT NULL,
    status       text        NOT NULL CHECK (status IN ('running', 'succeeded', 'failed')),
    size_bytes   bigint,
    row_counts   jsonb,
    row_count    bigint,
    requested_by uuid        NOT NULL,
    filters      jsonb       NOT NULL DEFAULT '{}',
    created_at   timestamptz NOT NULL DEFAULT now(),
    completed_at timestamptz,
    expires_at   timestamptz,
    error        text
);
CREATE INDEX IF NOT EXISTS uploads_requested_by_idx ON uploads (requested_by, created_at);
