"""Least privilege: what activity_runtime may do, exactly, and what its LOGIN member (the functions' user, the one
the whole suite runs the handlers as) cannot do."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from glow_activity import db
from glow_activity.refresh import ROLLUPS

# Every privilege activity_runtime holds on a table, view or sequence of `public` or `activity`.
EXPECTED = {
    "public.departments": {"SELECT"},
    "public.profiles": {"SELECT"},
    "public.profile_departments": {"SELECT"},
    "public.profile_roles": {"SELECT"},
    "public.sessions": {"SELECT"},
    "public.logins": {"SELECT"},
    "public.grants": {"SELECT"},
    "public.problems": {"SELECT", "INSERT", "UPDATE"},
    "public.api_keys": {"SELECT"},
    "activity.audit_log": {"INSERT"},
    "activity.audit_log_id_seq": {"USAGE"},
    "activity.refresh_runs": {"SELECT", "INSERT", "UPDATE"},
    "activity.refresh_runs_id_seq": {"USAGE"},
    "activity.idempotency_records": {"SELECT", "INSERT", "UPDATE", "DELETE"},
    "activity.uploads": {"SELECT", "INSERT", "UPDATE", "DELETE"},
    "activity.activity_monthly": {"SELECT"},
    "activity.activity_weekly_running": {"SELECT"},
    "activity.activity_profile_totals": {"SELECT"},
    "activity.activity_daily": {"SELECT"},
    "activity.activity_platform_daily": {"SELECT"},
    "activity.activity_platform_left_out": {"SELECT"},
    # the per-caller limit's buckets, through activity.take_request / flush_refusals (SECURITY INVOKER)
    "activity.caller_requests": {"SELECT", "INSERT", "UPDATE", "DELETE"},
}

GRANTS_SQL = """
SELECT n.nspname || '.' || c.relname, a.privilege_type
FROM pg_class c
JOIN pg_namespace n ON n.oid = c.relnamespace AND n.nspname IN ('public', 'activity')
CROSS JOIN LATERAL aclexplode(c.relacl) a
WHERE a.grantee = 'activity_runtime'::regrole
"""


def test_activity_runtime_holds_exactly_what_the_functions_need(conn: Any) -> None:
    held: dict[str, set[str]] = {}
    for relation, privilege in conn.run(GRANTS_SQL):
        held.setdefault(relation, set()).add(privilege)
    assert held == EXPECTED
    # no column-level grants either; of functions the refresh and the first build's steps (SECURITY DEFINER,
    # pinned search_path) and the limiter's two, which run as the caller
    column_grants = conn.run(
        "SELECT count(*) FROM pg_attribute CROSS JOIN LATERAL aclexplode(attacl) a"
        " WHERE a.grantee = 'activity_runtime'::regrole"
    )
    assert column_grants == [[0]]
    functions = conn.run(
        "SELECT p.oid::regprocedure::text, p.prosecdef, p.proconfig FROM pg_proc p"
        " JOIN pg_namespace n ON n.oid = p.pronamespace AND n.nspname = 'activity'"
        " WHERE has_function_privilege('activity_runtime', p.oid, 'EXECUTE')"
    )
    pinned = ["search_path=pg_catalog, pg_temp"]
    assert sorted(functions) == [
        ["activity.build_rollups_finish()", True, pinned],
        ["activity.build_rollups_month(date)", True, pinned],
        ["activity.build_rollups_months_left()", True, pinned],
        ["activity.build_rollups_needed()", True, pinned],
        ["activity.build_rollups_running(integer)", True, pinned],
        ["activity.flush_refusals()", False, pinned],
        ["activity.refresh_rollups(boolean)", True, ["search_path=pg_catalog, pg_temp"]],
        ["activity.take_request(uuid,integer,text,text,text)", False, None],
    ]
    assert conn.run("SELECT rolcanlogin, rolsuper FROM pg_roles WHERE rolname = 'activity_runtime'") == [[False, False]]


@pytest.fixture
def runtime(runtime_url: str) -> Iterator[Any]:
    connection = db.open_connection(db.params_from_url(runtime_url))
    yield connection
    connection.close()


FORBIDDEN = [
    "UPDATE profiles SET name = name WHERE false",
    "UPDATE profile_roles SET active = active WHERE false",
    "INSERT INTO profile_roles SELECT id, 'admin', true FROM profiles WHERE false",
    "UPDATE departments SET name = name WHERE false",
    "DELETE FROM sessions WHERE false",
    "UPDATE sessions SET run_count = run_count WHERE false",
    "INSERT INTO logins SELECT gen_random_uuid(), id, now(), 'password' FROM profiles WHERE false",
    "INSERT INTO api_keys (id, name, key_hash) SELECT gen_random_uuid(), 'x', 'y' WHERE false",
    "UPDATE api_keys SET revoked_at = NULL WHERE false",
    "INSERT INTO grants SELECT gen_random_uuid(), id, NULL, 'access', now() FROM profiles WHERE false",
    "DELETE FROM problems WHERE false",
    "UPDATE activity.audit_log SET status_code = 200 WHERE false",
    "DELETE FROM activity.audit_log WHERE false",
    "TRUNCATE activity.audit_log",
    "SELECT count(*) FROM activity.audit_log",
    "INSERT INTO activity.activity_daily SELECT * FROM activity.activity_daily WHERE false",
    "DELETE FROM activity.activity_daily WHERE false",
    "DELETE FROM activity.activity_monthly WHERE false",
    "UPDATE activity.activity_profile_totals SET sessions = 0 WHERE false",
    "INSERT INTO activity.activity_weekly_running SELECT * FROM activity.activity_weekly_running WHERE false",
    "UPDATE activity.activity_platform_daily SET sessions = 0 WHERE false",
    "DROP TABLE activity.uploads",
    "ALTER TABLE public.sessions ADD COLUMN x int",
    "CREATE SCHEMA intruder",
    "CREATE INDEX intruder_idx ON public.sessions (id)",
    "ALTER ROLE activity_runtime LOGIN",
    "SET ROLE postgres",
]


@pytest.mark.parametrize("statement", FORBIDDEN)
def test_the_runtime_user_cannot(runtime: Any, statement: str) -> None:
    assert runtime.run("SELECT current_user")[0][0] != "postgres"
    with pytest.raises(Exception, match=r"permission denied|must be owner|must be a member|must be able to SET ROLE"):
        runtime.run(statement)


def test_the_runtime_user_cannot_create_a_table_in_any_schema(runtime: Any, conn: Any) -> None:
    schemas = [
        r[0]
        for r in conn.run(
            "SELECT nspname FROM pg_namespace WHERE nspname NOT LIKE 'pg\\_temp%' AND nspname NOT LIKE 'pg\\_toast%'"
        )
    ]
    assert {"public", "activity", "pg_catalog", "information_schema"} <= set(schemas)
    for schema in schemas:
        with pytest.raises(Exception, match="permission denied"):
            runtime.run(f'CREATE TABLE "{schema}".intruder (id int)')
        with pytest.raises(Exception, match="permission denied"):
            runtime.run(f'CREATE VIEW "{schema}".intruder AS SELECT 1 AS x')


def test_the_runtime_user_adds_audit_rows_and_refreshes_through_the_definer(runtime: Any, conn: Any) -> None:
    request_id = "privileges-test"
    runtime.run(
        "INSERT INTO activity.audit_log (operation, channel, status_code, request_id)"
        " VALUES ('activity.docs', 'api', 200, :r)",
        r=request_id,
    )
    assert conn.run("SELECT count(*) FROM activity.audit_log WHERE request_id = :r", r=request_id) == [[1]]
    runtime.run("BEGIN ISOLATION LEVEL REPEATABLE READ")
    for full_pass in (False, True):
        assert runtime.run("SELECT activity.refresh_rollups(:f)", f=full_pass)[0][0][0] == "activity_monthly"
    runtime.run("ROLLBACK")


def test_the_first_builds_functions_write_nothing_when_no_build_is_under_way(runtime: Any, conn: Any) -> None:
    """The runtime may execute the build's steps (SECURITY DEFINER), but over rollups a refresh keeps they change
    nothing: a month is written only while a build is needed, totals only while one is under way."""
    from factories import World

    world = World(conn)
    member = world.profile(roles=["member"])
    world.session(member, "2025-03-04T10:00:00")
    world.login(member, "2025-05-06T10:00:00")
    conn.run("SELECT activity.refresh_rollups(true)")

    def rows() -> list[Any]:
        return [conn.run(f"SELECT * FROM activity.{table} ORDER BY 1, 2") for table in ROLLUPS]

    assert runtime.run("SELECT activity.build_rollups_needed()") == [[False]]
    # a month missing from the kept rollups (as if its rows were gone) is still not the build's to write
    # (put back afterwards: the database is the whole suite's, and a later full pass would count March twice in
    # the all-time totals, which it adjusts by what the month held before)
    march = {
        "activity_monthly": "month = '2025-03-01'",
        "activity_daily": "day >= '2025-03-01' AND day < '2025-04-01'",
    }
    for table, where in march.items():
        conn.run(f"CREATE TEMP TABLE gone_{table} AS SELECT * FROM activity.{table} WHERE {where}")
        conn.run(f"DELETE FROM activity.{table} WHERE {where}")
    try:
        kept = rows()
        for step in ("build_rollups_month(DATE '2025-03-01')", "build_rollups_running(1000)", "build_rollups_finish()"):
            runtime.run(f"SELECT activity.{step}")
        assert rows() == kept and conn.run("SELECT count(*) FROM activity.rollup_build") == [[0]]
    finally:
        for table in march:
            conn.run(f"INSERT INTO activity.{table} SELECT * FROM gone_{table}")
            conn.run(f"DROP TABLE gone_{table}")
