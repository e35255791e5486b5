-- Indexes the service needs on the platform's tables (the tables themselves stay as they are).
CREATE INDEX IF NOT EXISTS sessions_created_at_id_idx ON sessions (created_at, id);
CREATE INDEX IF NOT EXISTS sessions_profile_created_idx ON sessions (profile_id, created_at);
CREATE INDEX IF NOT EXISTS logins_profile_logged_in_idx ON logins (profile_id, logged_in_at);
CREATE INDEX IF NOT EXISTS logins_logged_in_idx ON logins (logged_in_at);
CREATE INDEX IF NOT EXISTS grants_profile_created_idx ON grants (profile_id, created_at);
CREATE INDEX IF NOT EXISTS problems_profile_created_idx ON problems (profile_id, created_at);
CREATE INDEX IF NOT EXISTS problems_session_idx ON problems (session_id);
CREATE INDEX IF NOT EXISTS profile_departments_department_idx ON profile_departments (department_id, profile_id);
CREATE INDEX IF NOT EXISTS profile_roles_active_role_idx ON profile_roles (role, profile_id) WHERE active;
CREATE INDEX IF NOT EXISTS api_keys_profile_idx ON api_keys (profile_id);
