"""Everything the service does to the platform's tables, in one place.

The platform (Glow) owns the tables of `migrations/platform.sql`. The service reads them and writes `problems`;
it asks of them only the indexes below, each built CONCURRENTLY (`migrate.py`). A standalone database gets the
tables themselves (and the columns a later contract version added); an attached one must already have them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache
from importlib import resources

SCHEMA = "activity"  # every object of the service's own
RUNTIME_ROLE = "activity_runtime"  # NOLOGIN; the functions connect as a LOGIN member of it

# The platform tables the functions read, and the one they write (problem creates, resolve updates).
READS = (
    "departments",
    "profiles",
    "profile_departments",
    "profile_roles",
    "sessions",
    "logins",
    "grants",
    "problems",
    "api_keys",
)
WRITES = {"problems": ("INSERT", "UPDATE")}

# Columns a later version of platform.sql added: a standalone database built before gets them (nullable, so
# adding one rewrites nothing). An attached database must already have them.
ADDED_COLUMNS = (
    ("sessions", "first_run_at", "timestamptz"),
    ("sessions", "last_run_at", "timestamptz"),
)


@dataclass(frozen=True)
class PlatformIndex:
    name: str
    table: str
    columns: str  # what follows `ON public.<table>`
    why: str

    def create_sql(self) -> str:
        return f"CREATE INDEX CONCURRENTLY IF NOT EXISTS {self.name} ON public.{self.table} {self.columns}"


INDEXES = (
    PlatformIndex(
        "activity_sessions_created_idx",
        "sessions",
        "(created_at, id) INCLUDE (profile_id, active)",
        "search walks sessions by time; a window's count reads the index alone",
    ),
    PlatformIndex(
        "activity_sessions_profile_idx",
        "sessions",
        "(profile_id, created_at, id) INCLUDE (active)",
        "a coordinator's search reads each member's newest sessions from the index alone",
    ),
    PlatformIndex(
        "activity_sessions_updated_idx",
        "sessions",
        "(updated_at) INCLUDE (created_at, profile_id)",
        "a light refresh finds the sessions updated lately, whatever their created_at (an index the platform's counter"
        " updates also maintain: docs/DECISIONS.md)",
    ),
    PlatformIndex(
        "activity_logins_profile_idx", "logins", "(profile_id, logged_in_at)", "one profile's logins by time"
    ),
    PlatformIndex(
        "activity_logins_time_idx", "logins", "(logged_in_at) INCLUDE (profile_id)", "a window's partial days"
    ),
    PlatformIndex("activity_grants_profile_idx", "grants", "(profile_id, created_at)", "one profile's grants"),
    PlatformIndex(
        "activity_grants_time_idx", "grants", "(created_at) INCLUDE (profile_id, kind)", "a window's partial days"
    ),
    PlatformIndex("activity_problems_profile_idx", "problems", "(profile_id, created_at)", "one profile's problems"),
    PlatformIndex(
        "activity_problems_time_idx", "problems", "(created_at) INCLUDE (profile_id)", "newest problems, partial days"
    ),
    PlatformIndex("activity_problems_session_idx", "problems", "(session_id)", "a session's problem count"),
    PlatformIndex(
        "activity_profile_departments_department_idx",
        "profile_departments",
        "(department_id, profile_id)",
        "a department's members, for a coordinator's scope",
    ),
    PlatformIndex(
        "activity_profile_departments_c_idx",
        "profile_departments",
        '(profile_id, department_id COLLATE "C")',
        "a profile's department ids in code-point order",
    ),
    PlatformIndex(
        "activity_profile_roles_role_idx",
        "profile_roles",
        "(role, profile_id) WHERE active",
        "the profiles with a role, for the roles filter",
    ),
    PlatformIndex(
        "activity_profile_roles_profile_idx",
        "profile_roles",
        "(profile_id, role) WHERE active",
        "a profile's active roles without visiting the table",
    ),
    PlatformIndex("activity_api_keys_profile_idx", "api_keys", "(profile_id)", "a profile's keys"),
    PlatformIndex(
        "activity_profiles_email_idx",
        "profiles",
        "(lower(email)) WHERE deleted_at IS NULL",
        "a token that names its profile by e-mail",
    ),
    PlatformIndex(
        "activity_profiles_deleted_idx",
        "profiles",
        "(id) WHERE deleted_at IS NOT NULL",
        "the deleted profiles, which an admin's reads leave out",
    ),
)

# The previous layout's names of the same indexes (a standalone database it built is adopted under the new names).
LEGACY_INDEX_NAMES = {
    "sessions_created_at_id_cover_idx": "activity_sessions_created_idx",
    "sessions_profile_created_id_idx": "activity_sessions_profile_idx",
    "logins_profile_logged_in_idx": "activity_logins_profile_idx",
    "logins_logged_in_cover_idx": "activity_logins_time_idx",
    "grants_profile_created_idx": "activity_grants_profile_idx",
    "grants_created_cover_idx": "activity_grants_time_idx",
    "problems_profile_created_idx": "activity_problems_profile_idx",
    "problems_created_cover_idx": "activity_problems_time_idx",
    "problems_session_idx": "activity_problems_session_idx",
    "profile_departments_department_idx": "activity_profile_departments_department_idx",
    "profile_departments_profile_c_idx": "activity_profile_departments_c_idx",
    "profile_roles_active_role_idx": "activity_profile_roles_role_idx",
    "profile_roles_profile_active_idx": "activity_profile_roles_profile_idx",
    "api_keys_profile_idx": "activity_api_keys_profile_idx",
    "profiles_email_lower_idx": "activity_profiles_email_idx",
}


def platform_sql() -> str:
    return (resources.files("glow_activity") / "migrations" / "platform.sql").read_text(encoding="utf-8")


_TABLE = re.compile(r"CREATE TABLE IF NOT EXISTS (\w+) \((.*?)\n\);", re.S)
_COLUMN = re.compile(r"^\s+(\w+)\s+(?!KEY\b)\w", re.M)


@cache
def contract_columns() -> dict[str, tuple[str, ...]]:
    """Each platform table's columns as platform.sql states them (what every writer may rely on)."""
    tables: dict[str, tuple[str, ...]] = {}
    for table, body in _TABLE.findall(platform_sql()):
        tables[table] = tuple(c for c in _COLUMN.findall(body) if c.upper() != "PRIMARY")
    return tables
