-- The platform schema changed once (../shared/spec/platform-schema.sql): Glow's role names, and application
-- keys. A database built before that change gets the same shape here; on one built after it (0001 already
-- has both) every statement below changes nothing.

-- Roles: Glow's vocabulary. The old names map one to one, so no (profile_id, role) key can collide.
ALTER TABLE profile_roles DROP CONSTRAINT IF EXISTS profile_roles_role_check;
UPDATE profile_roles
SET role = CASE role
    WHEN 'ta' THEN 'member'
    WHEN 'head_ta' THEN 'custom'
    WHEN 'instructor' THEN 'guest'
    WHEN 'coordinator' THEN 'instructional'
    END
WHERE role IN ('ta', 'head_ta', 'instructor', 'coordinator');
ALTER TABLE profile_roles ADD CONSTRAINT profile_roles_role_check
    CHECK (role IN ('superadmin', 'admin', 'instructional', 'member', 'guest', 'custom'));

-- Application keys: a key with no profile identifies a client application (valid only with a Bearer token).
ALTER TABLE api_keys ALTER COLUMN profile_id DROP NOT NULL;

-- A token that names its profile by e-mail is matched case-insensitively against the non-deleted profiles.
CREATE INDEX IF NOT EXISTS profiles_email_lower_idx ON profiles (lower(email)) WHERE deleted_at IS NULL;

