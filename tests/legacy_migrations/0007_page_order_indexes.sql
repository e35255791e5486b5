-- get lists each profile of its page with its department ids in code-point order (COLLATE "C", see
-- docs/DECISIONS.md) and its active roles. The primary keys' order is the database's collation, so every
-- profile's ids were sorted apart (1,000 small sorts for a page); the first index hands them over in the
-- order asked for, the second the active roles without visiting the table.
CREATE INDEX IF NOT EXISTS profile_departments_profile_c_idx
    ON profile_departments (profile_id, department_id COLLATE "C");
CREATE INDEX IF NOT EXISTS profile_roles_profile_active_idx
    ON profile_roles (profile_id, role) WHERE active;
